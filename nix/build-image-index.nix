# buildImageIndex: one multi-platform image — an OCI image index over images built for other
# platforms (`architecture`) — as an OCI image layout; its stream is the `stream` attribute,
# and copyToRegistry pushes it as a manifest list.
{
  # the plugin's primitives: argument checks
  prims,
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
  passthru ? { },
  meta ? { },
  # name, tag, images, format: checked by the plugin (prims.checkArgs)
  ...
}@args:
let
  index = prims.checkArgs "buildImageIndex" (builtins.removeAttrs args [ "compressor" "passthru" "meta" ]);
  stream = stowageDerivation "build-index-stream" {
    name = "stream-${index.baseName}";
    inherit (args) images;
    reference = "${index.name}:${index.tag}";
    inherit (index) format;
  };
  named = stream // { imageName = index.name; imageTag = index.tag; };
in
archive "buildImageIndex" { stream = named; inherit compressor; default = "none"; inherit (index) format; name = index.baseName; }
# a registry or an OCI layout takes an image for several platforms; Docker and podman do not
// { inherit (copies named) copyToRegistry copyTo; }
// passthru
// {
  inherit meta passthru;
  imageName = index.name;
  imageTag = index.tag;
}
