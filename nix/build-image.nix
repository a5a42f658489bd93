# buildImage: dockerTools' single-layer image — copyToRoot copied into the root, runAsRoot run
# as root chrooted in the unpacked image (no VM), extraCommands as the build user — as the
# image archive, with its stream as the `stream` attribute.
{
  # ./names.nix
  names,
  # the call of a public function, for its derivations (./stowage.nix)
  call,
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
  # the derivation listing what a runtime config refers to, if anything (./stowage.nix)
  configReferences,
  # ./archive.nix, applied
  archive,
  # ./copy-to.nix, applied
  copies,
  # ./attestations.nix, applied
  attestations,
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
  # includeStorePaths, diskSize, buildVMMemorySize: checked by the core
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
  called = call "buildImage"
    (builtins.removeAttrs args [ "passthru" "meta" "compressor" "contents" ] // { copyToRoot = roots; });
  name = builtins.seq called (names.imageName (args.name or null));
  baseName = names.baseName name;
  references = configReferences baseName config;
  # the layer's root: copyToRoot and what the scripts changed
  layer = stowageDerivation "build-customisation" (called // {
    name = "layer-${baseName}";
    inherit fromImage runAsRoot extraCommands nativeBuildInputs keepContentsDirlinks;
    copyToRoot = roots;
    shell = if shell != null then "${shell}/bin/sh" else null;
  });
  stream = stowageDerivation "build-stream" (called // {
    name = "stream-${baseName}";
    inherit config fromImage;
    customisation = layer;
    exportReferencesGraph.closure = [ layer ] ++ (if references != null then [ references ] else [ ]);
  } // (if references != null then { configReferences = references; } else { }));
  imageTag = if (args.tag or null) != null then args.tag else builtins.substring 0 32 (baseNameOf stream.outPath);
  named = stream // { imageName = name; inherit imageTag; };
  documents = attestations {
    stream = named;
    function = "buildImage";
    inherit baseName;
    contents = roots;
    inRoot = names.storeItems roots;
  };
in
archive "buildImage" { stream = named; inherit compressor format; name = baseName; }
// copies named { attach = [ documents.sbom documents.provenance ]; tags = args.tags or [ ]; }
// documents
// passthru
// {
  inherit meta passthru imageTag;
  imageName = name;
}
