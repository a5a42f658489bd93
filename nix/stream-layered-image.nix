# streamLayeredImage: a derivation whose output is an executable that writes a docker-archive
# to stdout (for `docker load`, `podman load`; skopeo reads docker-archives from files only).
{
  # the plugin's primitives: argument checks, store paths a value refers to
  prims,
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
  # ./copy-to.nix, applied
  copies,
}:
# the public function this serves, for error messages
function:
{
  # store paths merged into the image root (as symlinks), their closures in the store layers
  contents ? [ ],
  # the image config's `config` object (Cmd, Env, …); its store paths join the closure
  config ? { },
  # attributes added to the result, as in dockerTools
  passthru ? { },
  meta ? { },
  # the base image: an image archive, or a stowage image (archive or stream)
  fromImage ? null,
  # scripts run in the customisation layer's root (as the build user; as fake root,
  # chrooted with enableFakechroot), by `shell` (bin/sh of a store path) with the `bin` of
  # nativeBuildInputs on PATH; their text keeps its context, so what it names is built first
  extraCommands ? null,
  fakeRootCommands ? null,
  enableFakechroot ? false,
  shell ? null,
  nativeBuildInputs ? [ ],
  # name, tag, architecture, created, mtime, uid, gid, uname, gname, maxLayers,
  # includeStorePaths, fromImageName, fromImageTag: checked by the plugin (prims.checkArgs)
  ...
}@args:
let
  contentsList = if builtins.isList contents then contents else [ contents ];
  # (a list given is passed as it is, so that an error about it points at the caller's code)
  image = prims.checkArgs function (builtins.removeAttrs args [ "passthru" "meta" ]
    // (if builtins.isList contents then { } else { contents = contentsList; }));
  # the customisation layer's entries, when scripts make it
  customisation =
    if image.customise or false then
      stowageDerivation "build-customisation" {
        name = "customisation-${image.baseName}";
        inherit image extraCommands fakeRootCommands enableFakechroot nativeBuildInputs;
        contents = contentsList;
        shell = if shell != null then "${shell}/bin/sh" else image.sandboxShell;
        storeDir = builtins.storeDir;
      }
    else
      null;
  stream = stowageDerivation "build-stream" ({
    name = "stream-${image.baseName}";
    inherit image config fromImage;
    contents = contentsList;
    storeDir = builtins.storeDir;
    exportReferencesGraph.closure =
      contentsList ++ prims.referencedPaths config ++ (if customisation != null then [ customisation ] else [ ]);
  } // (if customisation != null then { inherit customisation; } else { }));
  named = stream // {
    imageName = image.name;
    # without a tag, the derivation's hash (what the archive's RepoTags carry too)
    imageTag = if image.tag != null then image.tag else builtins.substring 0 32 (baseNameOf stream.outPath);
  };
in
named
// copies named
// passthru
// {
  inherit meta;
  inherit (named) imageName imageTag;
  passthru = passthru;
}
