# streamMergedImages / mergeImages: several images — stowage images (archives or streams) and
# other docker-archives or OCI archives — as one docker-archive holding all of them.
# The argument: a list of images, or { images; name ? "merged-images"; compressor ? "none"; }.
{
  # the plugin's primitives, or the library's: argument checks
  prims,
  # the call of a public function, for its derivations (./stowage.nix)
  call,
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
      called = call function (builtins.removeAttrs args (if function == "mergeImages" then [ "compressor" ] else [ ]));
      name = builtins.seq called (if builtins.isString (args.name or null) then args.name else "merged-images");
      stream = stowageDerivation "build-merge-stream" (called // {
        name = "stream-${name}";
        images = args.images or [ ];
      });
    in
    {
      inherit stream;
      # plain, as dockerTools.mergeImages writes it, unless `compressor` says otherwise
      archive = archive function {
        inherit stream name;
        compressor = args.compressor or null;
        default = "none";
        format = args.format or "docker-archive";
      };
    };
in
{
  streamMergedImages = arg: (merged "streamMergedImages" arg).stream;
  mergeImages = arg: (merged "mergeImages" arg).archive;
}
