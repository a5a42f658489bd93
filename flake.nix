{
  description = "stowage: container images from the Nix store, built by a Nix plugin";

  # Evaluating `lib` needs the plugin loaded (`--option plugin-files …/libstowage.so`).
  outputs = { self }: {
    lib = import ./nix;
  };
}
