# buildImage: dockerTools' single-layer image — copyToRoot copied into the root, runAsRoot run
# as root chrooted in the unpacked image (no VM), extraCommands as the build user — as the
# image archive, with its stream as the `stream` attribute.
{
  # the plugin's primitives: argument checks, store paths a value refers to
  prims,
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
  # ./archive.nix, applied
  archive,
  # ./copy-to.nix, applied
  copies,
}:
{
  # paths copied into the image root (`contents` is dockerTools' old name for it)
  copyToRoot ? null,
  contents ? null,
  config ? { },
  fromImage ? null,
  runAsRoot ? null,
  extraCommands ? null,
  shell ? null,
  nativeBuildInputs ? [ ],
  keepContentsDirlinks ? false,
  compressor ? null,
  format ? "docker-archive",
  passthru ? { },
  meta ? { },
  # name, tag, fromImageName, fromImageTag, architecture, created, uid, gid,
  # includeStorePaths, diskSize, buildVMMemorySize: checked by the plugin (prims.checkArgs)
  ...
}@args:
let
  toList = x: if x == null then [ ] else if builtins.isList x then x else [ x ];
  roots =
    if contents != null then
      builtins.trace "stowage.buildImage: 'contents' is deprecated (as in dockerTools); use 'copyToRoot'"
        (toList copyToRoot ++ toList contents)
    else
      toList copyToRoot;
  image = prims.checkArgs "buildImage"
    (builtins.removeAttrs args [ "passthru" "meta" "compressor" "contents" ] // { copyToRoot = roots; });
  # the layer's root: copyToRoot and what the scripts changed
  layer = stowageDerivation "build-customisation" {
    name = "layer-${image.baseName}";
    inherit image fromImage runAsRoot extraCommands nativeBuildInputs keepContentsDirlinks;
    copyToRoot = roots;
    shell = if shell != null then "${shell}/bin/sh" else null;
    storeDir = builtins.storeDir;
  };
  stream = stowageDerivation "build-stream" {
    name = "stream-${image.baseName}";
    inherit image config fromImage;
    customisation = layer;
    storeDir = builtins.storeDir;
    exportReferencesGraph.closure = [ layer ] ++ prims.referencedPaths config;
  };
  imageTag = if image.tag != null then image.tag else builtins.substring 0 32 (baseNameOf stream.outPath);
  named = stream // { imageName = image.name; inherit imageTag; };
in
archive "buildImage" { stream = named; inherit compressor format; name = image.baseName; }
// copies named
// passthru
// {
  inherit meta passthru imageTag;
  imageName = image.name;
}
