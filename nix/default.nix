# stowage's Nix library. With the plugin (libstowage.so) loaded, `import ./nix` is
# builtins.stowage. Without it — on any Nix or Lix, "library mode" — `import ./nix { builder =
# ./stowage; }` gives the same functions, with the same results and images, built by the
# stowage executable given (`make builder` makes one); the plugin is used whenever it is
# loaded, whatever is given. Without the plugin, arguments are checked when the image is built
# (the build log says what is wrong), and fakeNss is a derivation.
let
  plugin = builtins.stowage or null;
  library =
    {
      # the image builder: a path to the `stowage` executable, a store path, or a derivation
      # whose output has bin/stowage
      builder ? null,
      # the system images are built on (in a flake, whose evaluation is pure, give it)
      system ? builder.system or builtins.currentSystem or (throw
        "stowage: give `system` (such as \"x86_64-linux\"): this evaluation is pure, so it is not known"),
    }:
    if plugin != null then
      plugin
    else if builder == null then
      throw notLoaded
    else
      import ./stowage.nix (import ./library.nix { inherit builder system; });
  notLoaded = ''
    stowage: the plugin is not loaded, and no image builder was given.
    Either load the plugin — `nix --option plugin-files /path/to/libstowage.so …` (before a `nix`
    subcommand), or `plugin-files = /path/to/libstowage.so` in nix.conf — or give the stowage
    executable: `import ./nix { builder = ./stowage; }` (`make builder` in the stowage checkout
    makes target/builder/stowage).'';
  # without the plugin, every function says how to get one
  unavailable = builtins.mapAttrs (_: _: throw notLoaded) (library { builder = "stowage"; system = "none"; });
in
(if plugin != null then plugin else unavailable) // { __functor = _: library; }
