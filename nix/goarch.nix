# builtins.stowage.goarch without the plugin: the GOARCH name (and variant) of a Nix system, from
# the table the core reads too (./platforms.json; crates/core/src/image/platform.rs says where
# its names come from).
system:
let
  table = builtins.fromJSON (builtins.readFile ./platforms.json);
  parts = builtins.match "([^-]*)-(.*)" system;
  cpu = builtins.elemAt parts 0;
  kernel = builtins.elemAt parts 1;
  rows = builtins.filter (row: builtins.head row == cpu) table.cpus;
  unknown = problem: throw "stowage.goarch: unknown system '${system}': ${problem}";
in
if !builtins.isString system then
  throw "stowage.goarch: the argument is a ${builtins.typeOf system} while a string was expected"
else if parts == null then
  unknown "a Nix system is <cpu>-<os>, like x86_64-linux"
else if !builtins.elem kernel table.kernels then
  unknown "'${kernel}' is not an operating system Nix knows (one of: ${builtins.concatStringsSep ", " table.kernels})"
else if rows == [ ] then
  unknown "Go has no GOARCH name for the CPU '${cpu}'"
else
  let row = builtins.head rows; in
  { architecture = builtins.elemAt row 1; }
  // (if builtins.elemAt row 2 != null then { variant = builtins.elemAt row 2; } else { })
