#!/usr/bin/env bash
# Provides Nix 2.26.3, built with shared libraries, at build/nix-2.26, so stowage can be built
# and tested against a modern Nix as well as Debian's 2.8.
#
# The build (nix-2.26/build.sh, about ten minutes on two cores) is cached machine-wide under
# $STOWAGE_CACHE_DIR (default /var/cache/stowage), keyed on the recipe (build.sh and its
# patches), so fresh clones on the same machine — CI's among them — reuse it; build/nix-2.26 is
# a link to it. Nix's paths are fixed at build time, hence a fixed place rather than the clone.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${STOWAGE_BUILD_DIR:-$here/build}
cache=${STOWAGE_CACHE_DIR:-/var/cache/stowage}
recipe=$(cat "$here"/scripts/nix-2.26/* | sha256sum | cut -c1-16)
prefix=$cache/nix-2.26.3-$recipe

if [[ ! -e $prefix/.complete ]]; then
  echo "setup: building Nix 2.26.3 into $prefix (about ten minutes, once per machine)" >&2
  work=$cache/work
  rm -rf "$work" "$prefix" "$cache"/nix-2.26.3-*
  mkdir -p "$work"
  "$here/scripts/nix-2.26/build.sh" "$prefix" "$work"
  rm -rf "$work"
  touch "$prefix/.complete"
fi
mkdir -p "$build"
[[ -L $build/nix-2.26 || ! -e $build/nix-2.26 ]] || rm -rf "$build/nix-2.26"
ln -sfn "$prefix" "$build/nix-2.26"
echo "setup: ok (Nix 2.26 in $prefix)" >&2
