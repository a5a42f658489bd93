#!/usr/bin/env bash
# Loads the plugin into Debian's Nix and shows what it offers, then builds the example image
# (examples/hello.nix) with nix-build, loads it into podman and runs it. Everything lives under
# build/demo (its own Nix store and podman store): the machine's /nix/store is left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
plugin=${STOWAGE_PLUGIN:-$here/target/release/libstowage.so}
demo=$here/build/demo
mkdir -p "$demo/etc"
cat > "$demo/etc/nix.conf" <<CONF
substituters =
build-users-group =
experimental-features = nix-command
CONF
export NIX_STORE_DIR=$demo/store NIX_STATE_DIR=$demo/state NIX_LOG_DIR=$demo/log
export NIX_CONF_DIR=$demo/etc NIX_USER_CONF_FILES=/dev/null
nix() { command nix --option plugin-files "$plugin" "$@"; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "builtins.stowage, loaded with --option plugin-files $plugin"
nix eval --expr 'builtins.mapAttrs (_: builtins.typeOf) builtins.stowage'
nix eval --raw --expr '"version " + builtins.stowage.version + "\n"'

step 'builtins.stowage.goarch "armv7l-linux"'
nix eval --json --expr 'builtins.stowage.goarch "armv7l-linux"'; echo

step 'builtins.stowage.fakeNss { extraPasswdLines = [ "app:x:1000:1000::/home/app:/bin/sh" ]; }'
nss=$(nix eval --raw --expr 'builtins.stowage.fakeNss { extraPasswdLines = [ "app:x:1000:1000::/home/app:/bin/sh" ]; extraGroupLines = [ "app:x:1000:" ]; }')
echo "$nss  (store root: $(nix eval --raw --expr builtins.storeDir))"
(cd "$nss" && find . -mindepth 1 | sort)
for f in etc/passwd etc/group etc/nsswitch.conf; do
  step "$f"
  cat "$nss/$f"
done

step "nix-build examples/hello.nix (sandboxed)"
image=$(command nix-build --option plugin-files "$plugin" --option sandbox true --option sandbox-paths /bin/busybox \
  --no-out-link "$here/examples/hello.nix")
ls -l "$image"
podman=(podman --root "$demo/podman/store" --runroot "$demo/podman/run" --storage-driver vfs
        --cgroup-manager cgroupfs --events-backend file)

# Debian 12's podman cannot read gzip-compressed archives (Docker can): unpack on the way in.
step "gzip -dc $image | podman load"
gzip -dc "$image" | "${podman[@]}" load -q

step "podman run localhost/stowage-demo:latest"
# runc, no network, explicit limits: what this kind of host needs to run containers
"${podman[@]}" --runtime runc run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  localhost/stowage-demo:latest

step "What to try next"
# (with your own Nix and podman, not the demo's throw-away stores)
cat >&2 <<NEXT
- Stream the image into podman without writing an archive (the image's .stream attribute):
    \$(nix-build --option plugin-files $plugin --option sandbox-paths /bin/busybox \\
        -A stream $here/examples/hello.nix) | podman load
- Start a flake with an image (its flake.nix takes nixpkgs as an input):
    nix --extra-experimental-features 'nix-command flakes' flake init -t $here
    nix --option plugin-files $plugin build .#image
- Push an image to a registry, no daemon needed:
    $here/target/release/stowage push ./result docker://HOST:PORT/hello:latest
- dockerTools to stowage, function by function: $here/docs/migrating-from-dockertools.md
NEXT
