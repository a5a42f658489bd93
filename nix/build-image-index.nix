# buildImageIndex: one multi-platform image — an OCI image index over images built for other
# platforms (`architecture`) — as an OCI image layout; its stream is the `stream` attribute,
# and copyToRegistry pushes it as a manifest list.
{
  # ./names.nix
  names,
  # the call of a public function, for its derivations (./stowage.nix)
  call,
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
  # ./archive.nix, applied
  archive,
  # ./copy-to.nix, applied
  copies,
}:
{
  # "none" (default), "gz" or "zstd" for the layout's tarball
  compressor ? null,
  # "oci-archive" or "oci-dir"
  format ? "oci-archive",
  passthru ? { },
  meta ? { },
  # name, tag, images: checked by the core
  ...
}@args:
let
  called = call "buildImageIndex" (builtins.removeAttrs args [ "compressor" "passthru" "meta" ]);
  name = builtins.seq called (names.imageName (args.name or null));
  tag = args.tag or "latest";
  stream = stowageDerivation "build-index-stream" (called // {
    name = "stream-${names.baseName name}";
    images = args.images or [ ];
  });
  named = stream // { imageName = name; imageTag = tag; };
in
archive "buildImageIndex" { stream = named; inherit compressor format; default = "none"; name = names.baseName name; }
# a registry or an OCI layout takes an image for several platforms; Docker and podman do not
// { inherit (copies named { }) copyToRegistry copyTo; }
// passthru
// {
  inherit meta passthru;
  imageName = name;
  imageTag = tag;
}
