# streamLayeredImage: a derivation whose output is an executable that writes a docker-archive
# to stdout (for `docker load`, `podman load`; skopeo reads docker-archives from files only).
{
  # ./names.nix
  names,
  # the call of a public function, for its derivations (./stowage.nix)
  call,
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
  # the derivation listing what a runtime config refers to, if anything (./stowage.nix)
  configReferences,
  # ./copy-to.nix, applied
  copies,
  # ./attestations.nix, applied
  attestations,
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
  # layers made by buildLayer, below the image's own (their store paths in no other layer)
  layers ? [ ],
  # name, tag, architecture, created, mtime, uid, gid, uname, gname, maxLayers,
  # includeStorePaths, fromImageName, fromImageTag, perms, format: checked by the core
  ...
}@args:
let
  contentsList = if builtins.isList contents then contents else [ contents ];
  # (a list given is passed as it is, so that an error about it points at the caller's code)
  called = call function (builtins.removeAttrs args [ "passthru" "meta" ]
    // (if builtins.isList contents then { } else { contents = contentsList; }));
  name = builtins.seq called (names.imageName (args.name or null));
  baseName = names.baseName name;
  references = configReferences baseName config;
  # the customisation layer's entries, when scripts make it
  customisation =
    if names.isScript extraCommands || names.isScript fakeRootCommands then
      stowageDerivation "build-customisation" (called // {
        name = "customisation-${baseName}";
        inherit extraCommands fakeRootCommands enableFakechroot nativeBuildInputs;
        contents = contentsList;
        # null: the shell Nix puts into the sandbox
        shell = if shell != null then "${shell}/bin/sh" else null;
      })
    else
      null;
  internal = builtins.filter (drv: drv != null) [ customisation references ];
  stream = stowageDerivation "build-stream" (called // {
    name = "stream-${baseName}";
    inherit config fromImage;
    contents = contentsList;
    exportReferencesGraph.closure = names.storeItems contentsList ++ internal
      ++ (if builtins.isList layers then names.storeItems layers else [ ]);
  } // (if customisation != null then { inherit customisation; } else { })
    // (if references != null then { configReferences = references; } else { }));
  named = stream // {
    imageName = name;
    # without a tag, the derivation's hash (what the archive's RepoTags carry too)
    imageTag = if (args.tag or null) != null then args.tag else builtins.substring 0 32 (baseNameOf stream.outPath);
  };
  documents = attestations { stream = named; inherit function baseName; contents = contentsList; };
in
named
// copies named { attach = [ documents.sbom documents.provenance ]; tags = args.tags or [ ]; }
// documents
// passthru
// {
  inherit meta;
  inherit (named) imageName imageTag;
  passthru = passthru;
}
