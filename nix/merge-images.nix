# streamMergedImages / mergeImages: several images — stowage images (archives or streams) and
# other docker-archives or OCI archives — as one docker-archive holding all of them.
# The argument: a list of images, or { images; name ? "merged-images"; compressor ? "none"; }.
{
  # the plugin's primitives: argument checks
  prims,
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
  # ./archive.nix, applied
  archive,
}:
let
  # the stream derivation and the archive, for the public function named (which errors name)
  merged = function: arg:
    let
      # like dockerTools.mergeImages, the argument may be just the list of images
      # (anything else is refused by the core's check, naming the function)
      args = if builtins.isList arg then { images = arg; } else if builtins.isAttrs arg then arg else prims.checkArgs function arg;
      # compressor is the archive's business (./archive.nix checks it)
      checked = prims.checkArgs function
        (builtins.removeAttrs args (if function == "mergeImages" then [ "compressor" ] else [ ]));
      stream = stowageDerivation "build-merge-stream" ({
        name = "stream-${checked.name}";
        inherit (args) images;
      } // (if checked ? format then { inherit (checked) format; } else { }));
    in
    {
      inherit stream;
      # plain, as dockerTools.mergeImages writes it, unless `compressor` says otherwise
      archive = archive function {
        inherit stream;
        compressor = args.compressor or null;
        default = "none";
        format = checked.format or "docker-archive";
        inherit (checked) name;
      };
    };
in
{
  streamMergedImages = arg: (merged "streamMergedImages" arg).stream;
  mergeImages = arg: (merged "mergeImages" arg).archive;
}
