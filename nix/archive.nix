# The image archive of a stream derivation, plain or compressed: what buildLayeredImage and
# mergeImages return, with the stream as its `stream` attribute.
{
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
}:
# the public function this serves, for error messages
function:
{
  # the stream derivation to run
  stream,
  # "none", "gz" or "zstd"
  compressor,
  # the archive's name, without extension
  name,
}:
let
  extension = { none = "tar"; gz = "tar.gz"; zstd = "tar.zst"; }.${compressor} or (throw
    "stowage.${function}: argument 'compressor' is ${builtins.toJSON compressor}; it must be \"none\", \"gz\" or \"zstd\"");
in
stowageDerivation "build-archive" {
  name = "${name}.${extension}";
  inherit stream compressor;
}
// { inherit stream; }
