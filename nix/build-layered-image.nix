# buildLayeredImage: a derivation whose output is the image archive (docker-archive), plain or
# compressed; its `stream` attribute is the matching streamLayeredImage.
{
  # ./names.nix
  names,
  # ./stream-layered-image.nix, applied (its errors name buildLayeredImage)
  streamLayeredImage,
  # ./archive.nix, applied
  archive,
  # ./copy-to.nix, applied
  copies,
}:
{
  # "none", "gz" or "zstd" (null: gz, or none for an OCI folder)
  compressor ? null,
  # "docker-archive", "oci-archive" or "oci-dir": the stream's too
  format ? "docker-archive",
  passthru ? { },
  meta ? { },
  # everything else is streamLayeredImage's
  ...
}@args:
let
  stream = streamLayeredImage (builtins.removeAttrs args [ "compressor" "passthru" "meta" ]);
in
archive "buildLayeredImage" { inherit stream compressor format; name = names.baseName stream.imageName; }
// copies stream { attach = [ stream.sbom stream.provenance ]; tags = args.tags or [ ]; }
// passthru
// {
  inherit meta passthru;
  inherit (stream) imageName imageTag sbom provenance;
}
