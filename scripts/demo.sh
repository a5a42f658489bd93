#!/usr/bin/env bash
# Loads the plugin into Debian's Nix and shows what it offers, in a throw-away store under
# build/demo (the machine's own /nix/store is left alone).
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
