# buildLayeredImage: a derivation whose output is the image archive (docker-archive), plain or
# compressed; its `stream` attribute is the matching streamLayeredImage.
{
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
  # ./stream-layered-image.nix, applied (its errors name buildLayeredImage)
  streamLayeredImage,
}:
{
  # "none", "gz" or "zstd"
  compressor ? "gz",
  passthru ? { },
  meta ? { },
  # everything else is streamLayeredImage's
  ...
}@args:
let
  stream = streamLayeredImage (builtins.removeAttrs args [ "compressor" "passthru" "meta" ]);
  extension = { none = "tar"; gz = "tar.gz"; zstd = "tar.zst"; }.${compressor} or (throw
    "stowage.buildLayeredImage: argument 'compressor' is ${builtins.toJSON compressor}; it must be \"none\", \"gz\" or \"zstd\"");
  archive = stowageDerivation "build-archive" {
    name = "${baseNameOf stream.imageName}.${extension}";
    inherit stream compressor;
  };
in
archive
// passthru
// {
  inherit meta stream passthru;
  inherit (stream) imageName imageTag;
}
