# buildLayer (nix2container's): a layer that is a derivation of its own, planned and hashed
# once; images take it in their `layers` (crates/core/src/functions/layer.rs).
{
  # ./names.nix
  names,
  # the call of a public function, for its derivations (./stowage.nix)
  call,
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
}:
{
  # store paths whose closures go into the layer
  deps ? [ ],
  # store paths merged into the image root (as `contents` is), their closures in the layer
  copyToRoot ? null,
  # layers this one is built on (buildLayer's): their store paths are left out of this one
  layers ? [ ],
  # ignore, reproducible, perms, maxLayers: checked by the core
  ...
}@args:
let
  toList = x: if x == null then [ ] else if builtins.isList x then x else [ x ];
  # (lists given are passed as they are, so that an error about them points at the caller's code)
  called = call "buildLayer" (args // (if builtins.isList copyToRoot then { } else { copyToRoot = toList copyToRoot; }));
  itemsOf = x: if builtins.isList x then names.storeItems x else [ ];
in
stowageDerivation "build-layer" (called // {
  name = "layer";
  exportReferencesGraph.closure = itemsOf deps ++ itemsOf (toList copyToRoot) ++ itemsOf layers;
})
// { inherit layers; }
