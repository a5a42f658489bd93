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
  # "none", "gz" or "zstd"; null: the format's default (none for an OCI folder, else `default`)
  compressor,
  # what `compressor = null` means for this function's archives
  default ? "gz",
  # "docker-archive", "oci-archive" or "oci-dir" (checked by the plugin)
  format ? "docker-archive",
  # the archive's name, without extension
  name,
}:
let
  chosen = if compressor != null then compressor else if format == "oci-dir" then "none" else default;
  compressed = { none = ""; gz = ".gz"; zstd = ".zst"; }.${chosen} or (throw
    "stowage.${function}: argument 'compressor' is ${builtins.toJSON chosen}; it must be \"none\", \"gz\" or \"zstd\"");
  suffix =
    if format == "oci-dir" then
      (if chosen == "none" then "-oci" else throw
        "stowage.${function}: argument 'compressor' is ${builtins.toJSON chosen}, but an OCI folder (format = \"oci-dir\") keeps its blobs as they are: leave compressor out or set it to \"none\"")
    else if format == "oci-archive" then ".oci.tar${compressed}"
    else ".tar${compressed}";
in
stowageDerivation "build-archive" {
  name = "${name}${suffix}";
  inherit stream;
  compressor = chosen;
}
// { inherit stream; }
