#!/usr/bin/env bash
# build.sh PREFIX WORK — the recipe for Nix 2.26.3 with shared libraries, installed into PREFIX
# (WORK is scratch space). setup-nix-2.26.sh caches the result, keyed on this folder's contents.
#
# Debian 12 has no such Nix: trixie's binary package is static (it exports no C++ symbols, so it
# cannot load plugins), so this builds trixie's source package, with libgit2 1.9 (also from
# trixie) beside it, and Meson from PyPI (Debian 12's is too old). Needs the packages
# setup-debian.sh installs.
set -euo pipefail
prefix=$1 work=$2
here=$(cd "$(dirname "$0")/../.." && pwd)
nix_source=nix=2.26.3+dfsg-1
libgit2_source=libgit2=1.9.0+ds-2+deb13u1
meson_version=1.6.1
ninja_version=1.11.1.1
jobs=$(nproc)

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "meson==$meson_version" "ninja==$ninja_version" >&2
export PATH=$work/venv/bin:$PATH

"$here/scripts/fetch-debian-source.sh" trixie "$work" "$nix_source" "$libgit2_source"

# libgit2 1.9 (Debian 12 has 1.5), installed into the same prefix.
mkdir -p "$work/libgit2"
tar -xf "$work"/libgit2_*.orig.tar.* -C "$work/libgit2" --strip-components=1
cmake -S "$work/libgit2" -B "$work/libgit2/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_INSTALL_RPATH="$prefix/lib" \
  -DUSE_SSH=OFF -DUSE_HTTPS=OpenSSL -DUSE_HTTP_PARSER=http-parser -DREGEX_BACKEND=regcomp \
  -DUSE_NTLMCLIENT=OFF -DBUILD_TESTS=OFF -DBUILD_CLI=OFF >&2
ninja -C "$work/libgit2/build" -j "$jobs" install >&2

# Boehm GC 8.2.2's traceable_allocator<void> keeps its typedefs private; Boost's small_vector
# (used by Nix 2.26's evaluator) needs them. A copy with them public goes first on the path.
mkdir -p "$work/gc-fix/gc"
sed 's/^class traceable_allocator<void> {$/class traceable_allocator<void> {\npublic:/' \
  /usr/include/gc/gc_allocator.h > "$work/gc-fix/gc/gc_allocator.h"
grep -q '^public:' "$work/gc-fix/gc/gc_allocator.h"

mkdir -p "$work/nix"
tar -xf "$work"/nix_*.orig.tar.* -C "$work/nix" --strip-components=1
for p in "$here"/scripts/nix-2.26/*.patch; do
  patch -d "$work/nix" -p1 --quiet < "$p"
done
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
(cd "$work/nix" && meson setup build --prefix="$prefix" --libdir=lib --localstatedir="$prefix/var" \
  --sysconfdir="$prefix/etc" -Ddefault_library=shared -Doptimization=2 \
  -Ddebug=false -Dunit-tests=false -Ddoc-gen=false -Dbindings=false \
  -Dlibexpr:gc=enabled -Dlibstore:seccomp-sandboxing=disabled \
  -Dlibstore:sandbox-shell=/bin/busybox -Dlibutil:cpuid=disabled -Dlibcmd:markdown=disabled \
  -Dlibcmd:readline-flavor=readline \
  -Dcpp_args="-I$work/gc-fix" -Dcpp_link_args="-Wl,-rpath,$prefix/lib" >&2)
ninja -C "$work/nix/build" -j "$jobs" >&2
ninja -C "$work/nix/build" install >&2

"$prefix/bin/nix" --version >&2
