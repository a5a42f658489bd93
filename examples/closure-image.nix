# The image of a real program's closure, for scripts/layer-chart.sh: every shared library the
# program loads becomes a store path holding that library and referring to the libraries it
# needs, as in a Nix-built program's closure. `closure` is a JSON file the script writes:
#   { "program": NAME, "paths": [ { "name": …, "file": …, "needs": [ NAME … ] } … ] }
# Built without the sandbox (the files are the machine's own).
{ closure, maxLayers ? 100 }:
let
  s = builtins.stowage;
  spec = builtins.fromJSON (builtins.readFile closure);
  storePath = p: derivation {
    inherit (p) name;
    system = builtins.currentSystem;
    builder = "/bin/busybox";
    args = [
      "sh"
      "-c"
      ("/bin/busybox mkdir -p $out/lib && /bin/busybox cp ${p.file} $out/lib/ && "
        + "echo ${toString (map (n: paths.${n}) p.needs)} > $out/lib/.needs")
    ];
  };
  paths = builtins.listToAttrs (map (p: { inherit (p) name; value = storePath p; }) spec.paths);
in
s.streamLayeredImage {
  name = "closure-of-${spec.program}";
  tag = "latest";
  contents = [ paths.${spec.program} ];
  inherit maxLayers;
}
