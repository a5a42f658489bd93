# buildLayeredImage: a derivation whose output is the image archive (docker-archive), plain or
# compressed; its `stream` attribute is the matching streamLayeredImage.
{
  # ./stream-layered-image.nix, applied (its errors name buildLayeredImage)
  streamLayeredImage,
  # ./archive.nix, applied
  archive,
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
in
archive "buildLayeredImage" { inherit stream compressor; name = baseNameOf stream.imageName; }
// passthru
// {
  inherit meta passthru;
  inherit (stream) imageName imageTag;
}
