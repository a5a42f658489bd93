#!/usr/bin/env bash
# Installs everything stowage needs on Debian 12 (as root) and lays out Nix's C++ headers.
# Idempotent: a second run installs nothing and finishes in about a second.
#
# Debian's nix-bin ships Nix's libraries and pkg-config files but no headers, so the headers
# come from Debian's own source package of the same version (fetch-debian-source.sh: the
# machine's apt sources are never touched).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${STOWAGE_BUILD_DIR:-$here/build}
nix_prefix=$build/nix-2.8

# What the plugin and `make demo` need; `STOWAGE_SETUP=demo` installs these alone.
demo_packages=(
  # Nix itself and what its headers include
  nix-bin nlohmann-json3-dev libboost-dev libgc-dev
  # the C++ side of the plugin
  g++ pkg-config
  # fetching and unpacking Debian's source package for the headers
  dpkg-dev xz-utils ca-certificates
  # podman runs the demo's image; busybox-static is its shell, and the Nix sandbox's
  podman runc busybox-static
)
# What `make test` and `make bench` need besides.
test_packages=(
  # the image tools the tests check images with
  skopeo umoci jq
  # scripts/make-fixtures.sh: one of the tools whose images tests/fixtures holds
  buildah
  # mount and umount: the small tmpfs disks of the full-disk tests
  mount
  # a registry to push to and pull from (distribution)
  docker-registry
  # htpasswd (bcrypt) for the registry tests with basic auth; openssl makes their CA
  apache2-utils
  # a real Docker Engine, which loads the gz archives
  docker.io
  # sshd: the remote builder (ssh-ng://) that tests/remote_builder.rs starts on 127.0.0.1
  openssh-server
  # make bench: its baselines (what dockerTools' compressors run) and the peak-memory
  # measurement
  tar openssl time pigz zstd
  # building Nix 2.26 and libgit2 from source (setup-nix-2.26.sh); python3-venv also holds
  # the SBOM validators
  cmake bison flex python3-venv libarchive-dev libboost-context-dev libboost-coroutine-dev
  libboost-container-dev libbrotli-dev libcurl4-openssl-dev libsodium-dev libsqlite3-dev
  libssl-dev libtoml11-dev libreadline-dev libhttp-parser-dev zlib1g-dev
)
case ${STOWAGE_SETUP:-all} in
  demo) packages=("${demo_packages[@]}") ;;
  all) packages=("${demo_packages[@]}" "${test_packages[@]}") ;;
  *) echo "setup: STOWAGE_SETUP is '$STOWAGE_SETUP'; it must be demo or all" >&2; exit 1 ;;
esac

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

# cargo-fuzz for `make fuzz` and the fuzz runs of `make test`, from crates.io, pinned.
cargo_fuzz_version=0.13.2
if [[ ${STOWAGE_SETUP:-all} == all ]] &&
  [[ $(cargo fuzz --version 2>/dev/null) != "cargo-fuzz $cargo_fuzz_version" ]]; then
  echo "setup: installing cargo-fuzz $cargo_fuzz_version" >&2
  cargo install --quiet --locked cargo-fuzz --version "$cargo_fuzz_version" >&2
fi

nix_version=$(PKG_CONFIG_PATH=/usr/lib/nix/pkgconfig pkg-config --modversion nix-expr)
stamp=$nix_prefix/.headers-$nix_version
if [[ ! -e $stamp ]]; then
  echo "setup: laying out Nix $nix_version headers under $nix_prefix" >&2
  src=$build/nix-$nix_version-src
  rm -rf "$src" "$nix_prefix"
  mkdir -p "$src/tree"
  "$here/scripts/fetch-debian-source.sh" bookworm "$src" "nix=$(dpkg-query -W -f='${source:Version}' nix-bin)"
  tar -xf "$src"/nix_*.orig.tar.* -C "$src/tree" --strip-components=1 --wildcards '*/src/lib*'
  inc=$nix_prefix/include/nix
  mkdir -p "$inc/flake" "$inc/builtins" "$inc/build"
  # the layout of upstream's `make install`
  cp "$src"/tree/src/lib*/*.hh "$inc/"
  cp "$src"/tree/src/libexpr/flake/*.hh "$inc/flake/"
  cp "$src"/tree/src/libstore/builtins/*.hh "$inc/builtins/"
  cp "$src"/tree/src/libstore/build/*.hh "$inc/build/"
  # Nix's headers expect a config.h they never include; these values match Debian's binaries
  # (HAVE_BOEHMGC changes EvalState's layout: getting it wrong is a silent ABI mismatch).
  cat > "$inc/config.h" <<CFG
#define PACKAGE_NAME "nix"
#define PACKAGE_TARNAME "nix"
#define PACKAGE_VERSION "$nix_version"
#define PACKAGE_STRING "nix $nix_version"
#define SYSTEM "$(uname -m)-linux"
#define HAVE_BOEHMGC 1
#define HAVE_STRUCT_DIRENT_D_TYPE 1
#define ENABLE_S3 0
CFG
  rm -rf "$src"
  touch "$stamp"
fi
# Nix's build users (build-users-group = nixbld), so tests build as unprivileged users as a
# multi-user Nix does; Debian's nix-bin does not make them.
getent group nixbld >/dev/null || groupadd --system nixbld
for i in 1 2 3 4; do
  id "nixbld$i" >/dev/null 2>&1 ||
    useradd --system --gid nixbld --groups nixbld --no-create-home --home-dir /var/empty \
      --shell /usr/sbin/nologin --comment "Nix build user $i" "nixbld$i"
done

echo "setup: ok (Nix $nix_version, headers in $nix_prefix/include)" >&2

# The tests' independent SBOM validators, from PyPI, in a virtual environment of the project's
# own (Debian's python3 takes no pip installs system-wide); versions pinned.
validators=$build/validators
validator_versions=(spdx-tools==0.8.5 'cyclonedx-python-lib[json-validation]==11.12.0')
if [[ ${STOWAGE_SETUP:-all} == all && ! -e $validators/.installed ]]; then
  echo "setup: installing ${validator_versions[*]} into $validators" >&2
  rm -rf "$validators"
  python3 -m venv "$validators"
  "$validators/bin/pip" install -q --disable-pip-version-check "${validator_versions[@]}" >&2
  touch "$validators/.installed"
fi

# Nix 2.26, built from source, unless a run is limited to other releases (make test NIX=2.8)
# or only the demo is set up.
if [[ ${STOWAGE_SETUP:-all} == all && " ${STOWAGE_NIXES:-2.26} " == *" 2.26 "* ]]; then
  "$here/scripts/setup-nix-2.26.sh"
fi
