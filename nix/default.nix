# stowage's Nix library: `import ./nix` from a checkout gives the same functions as
# `builtins.stowage`, which the plugin (libstowage.so) provides.
if builtins ? stowage then
  builtins.stowage
else
  throw ''
    stowage: the plugin is not loaded, so builtins.stowage does not exist.
    Load it with `nix --option plugin-files /path/to/libstowage.so …` (the option goes before a
    `nix` subcommand), or add `plugin-files = /path/to/libstowage.so` to nix.conf.
    `make` in the stowage checkout builds target/release/libstowage.so.''
