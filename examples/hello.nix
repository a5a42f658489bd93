# An example image: Debian's static busybox as the shell, fakeNss for user lookups.
# Build with the plugin loaded (and /bin/busybox visible to the sandbox):
#   nix-build --option plugin-files target/release/libstowage.so \
#     --option sandbox-paths /bin/busybox examples/hello.nix
let
  s = builtins.stowage;
  # busybox from the host (Debian's busybox-static), as bin/busybox and bin/sh
  busybox = derivation {
    name = "busybox";
    system = builtins.currentSystem;
    builder = "/bin/busybox";
    args = [ "sh" "-c" "/bin/busybox mkdir -p $out/bin && /bin/busybox cp /bin/busybox $out/bin/ && /bin/busybox ln -s busybox $out/bin/sh" ];
  };
in
s.buildLayeredImage {
  name = "localhost/stowage-demo";
  tag = "latest";
  contents = [ busybox (s.fakeNss { }) ];
  config = {
    Cmd = [ "/bin/sh" "-c" "echo \"$GREETING from a stowage image, running as $(id -un)\"; ls /" ];
    Env = [ "GREETING=Hi" "PATH=/bin" "GREETING=Hello" ];
  };
}
