# The primitives of stowage's functions without the plugin ("library mode"): what the plugin
# computes while evaluating, the builder computes at build time instead. The image builder is
# given (`builder`); arguments are checked by it, before it writes anything, with the plugin's
# messages; fakeNss is a derivation it builds.
{
  # the image builder: a path to the `stowage` executable (./stowage), a store path, or a
  # derivation whose output has bin/stowage
  builder,
  # the system images are built on (and for, unless `architecture` says otherwise)
  system,
}:
let
  # the crate's version, as the plugin's builder carries it in its store path's name
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package.version;
  storePrefix = "${builtins.storeDir}/";
  isStorePath = s: builtins.substring 0 (builtins.stringLength storePrefix) s == storePrefix;
  # An executable outside the store is added as the plugin adds its own builder (the file alone,
  # by its NAR hash, named stowage-VERSION), so the same executable gives the same store path —
  # and so the same derivations and the same images — in both modes.
  executable =
    if builtins.isPath builder then
      builtins.path { path = builder; name = "stowage-${version}"; }
    else if builtins.isAttrs builder then
      "${builder}/bin/stowage"
    else if builtins.isString builder && isStorePath builder then
      builtins.storePath builder
    else if builtins.isString builder then
      builtins.path { path = builder; name = "stowage-${version}"; }
    else
      throw "stowage: argument 'builder' is a ${builtins.typeOf builder}; give the stowage executable: a path (./stowage), a store path, or a derivation with bin/stowage";
  # What the core's check says of an argument that is no set (see the core's args.rs); any other
  # mistake is the builder's to report.
  kinds = { int = "an integer"; bool = "a Boolean"; string = "a string"; path = "a path"; null = "null";
    list = "a list"; lambda = "a function"; float = "a float"; };
in
{
  inherit version system;
  builder = _: executable;
  checkArgs = function: args:
    if builtins.isAttrs args then
      args
    else
      throw "stowage.${function}: the argument is ${kinds.${builtins.typeOf args}} while a set was expected";
  goarch = import ./goarch.nix;
  # (fakeNss is a derivation the builder writes: ./stowage.nix makes it)
}
