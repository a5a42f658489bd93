#!/usr/bin/env bash
# Installs everything stowage needs on Debian 12 (as root) and lays out Nix's C++ headers.
# Idempotent: a second run installs nothing and finishes in about a second.
#
# Debian's nix-bin ships Nix's libraries and pkg-config files but no headers, so the headers
# come from Debian's own source package of the same version, fetched through a private apt
# configuration under the build folder: the machine's apt sources are never touched.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${STOWAGE_BUILD_DIR:-$here/build}
nix_prefix=$build/nix-2.8

packages=(
  # Nix itself and what its headers include
  nix-bin nlohmann-json3-dev libboost-dev libgc-dev
  # the C++ side of the plugin
  g++ pkg-config
  # fetching and unpacking Debian's source package for the headers
  dpkg-dev xz-utils ca-certificates
  # the image tools the tests check images with, and a static shell for test images
  skopeo podman runc umoci jq busybox-static
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# Rust comes from rustup (Debian 12's rustc is too old for the crates stowage uses).
export PATH=$HOME/.cargo/bin:$PATH
rust_minor=$(rustc --version 2>/dev/null | sed -nE 's/^rustc 1\.([0-9]+).*/\1/p')
if [[ -z $rust_minor ]] || ((rust_minor < 80)); then
  echo "setup: stowage needs Rust 1.80 or newer (rustup); found: $(rustc --version 2>&1 || true)" >&2
  exit 1
fi

nix_version=$(PKG_CONFIG_PATH=/usr/lib/nix/pkgconfig pkg-config --modversion nix-expr)
stamp=$nix_prefix/.headers-$nix_version
if [[ ! -e $stamp ]]; then
  echo "setup: laying out Nix $nix_version headers under $nix_prefix" >&2
  apt_dir=$build/apt-src
  rm -rf "$apt_dir" "$nix_prefix"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/src"
  # the same mirror and keyring as the machine's own bookworm entry, as deb-src
  cat > "$apt_dir/sources.list" <<SRC
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
SRC
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
            -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update -q >&2
  deb_version=$(dpkg-query -W -f='${source:Version}' nix-bin)
  (cd "$apt_dir/src" && apt-get "${apt_opts[@]}" source --download-only "nix=$deb_version" >&2)
  orig=$(ls "$apt_dir"/src/nix_*.orig.tar.*)
  mkdir -p "$apt_dir/tree"
  tar -xf "$orig" -C "$apt_dir/tree" --strip-components=1 --wildcards '*/src/lib*'
  inc=$nix_prefix/include/nix
  mkdir -p "$inc/flake" "$inc/builtins" "$inc/build"
  # the layout of upstream's `make install`
  cp "$apt_dir"/tree/src/lib*/*.hh "$inc/"
  cp "$apt_dir"/tree/src/libexpr/flake/*.hh "$inc/flake/"
  cp "$apt_dir"/tree/src/libstore/builtins/*.hh "$inc/builtins/"
  cp "$apt_dir"/tree/src/libstore/build/*.hh "$inc/build/"
  # Nix's headers expect a config.h they never include; these values match Debian's binaries
  # (HAVE_BOEHMGC changes EvalState's layout: getting it wrong is a silent ABI mismatch).
  cat > "$inc/config.h" <<CFG
#define PACKAGE_NAME "nix"
#define PACKAGE_TARNAME "nix"
#define PACKAGE_VERSION "$nix_version"
#define PACKAGE_STRING "nix $nix_version"
#define SYSTEM "x86_64-linux"
#define HAVE_BOEHMGC 1
#define HAVE_STRUCT_DIRENT_D_TYPE 1
#define ENABLE_S3 0
CFG
  rm -rf "$apt_dir"
  touch "$stamp"
fi
echo "setup: ok (Nix $nix_version, headers in $nix_prefix/include)" >&2
