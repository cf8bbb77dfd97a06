#!/usr/bin/env bash
# Builds what the packages and the image ship, from a checkout or from the source
# release (where vendor/ holds the vendored crates: then nothing is fetched, and
# Cargo.lock must match them exactly).
#
#   scripts/release/build.sh [--static] OUTDIR
#
# OUTDIR gets cni-plugins (every plugin, one multi-call binary), cnitool, and
# man/{cnitool.1,cni-plugins.8}.
#   default   glibc linked dynamically: the distribution build (Debian, RPM)
#   --static  glibc's static libc, non-PIE: the image and the vendor .deb
#
# Reproducible: the build directory and CARGO_HOME are remapped out of the binaries
# (panic locations name source files), so two builds in different directories give
# the same bytes. The release profile (Cargo.toml) sets LTO, one codegen unit and
# strip. Honours CARGO_TARGET_DIR (default: target/ under the source).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
static=false
if [ "${1:-}" = --static ]; then
    static=true
    shift
fi
out=${1:?usage: build.sh [--static] OUTDIR}
cd "$root"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
target=x86_64-unknown-linux-gnu

cargo_args=(--release --target "$target" -p cni-plugins -p cnitool -p cni-docgen)
if [ -d vendor ]; then
    # The vendored crates, without a .cargo/config.toml in the tree: a checkout that
    # happens to hold vendor/ still builds, and the flags say what happens.
    cargo_args+=(--offline --frozen
        --config 'source.crates-io.replace-with="vendored-sources"'
        --config "source.vendored-sources.directory=\"$root/vendor\"")
fi
cargo_home=${CARGO_HOME:-$HOME/.cargo}
# A distribution's own RUSTFLAGS (e.g. %build_rustflags) come first; ours follow.
flags="${RUSTFLAGS:+$RUSTFLAGS }--remap-path-prefix=$root=/usr/src/cni-plugins-rs-$version --remap-path-prefix=$cargo_home=/usr/src/cargo"
if $static; then
    flags="$flags -C target-feature=+crt-static -C relocation-model=static"
fi
target_dir=${CARGO_TARGET_DIR:-$root/target}
# A build of its own per flavour, so that neither reuses the other's objects.
flavour=$($static && echo static || echo dist)
export CARGO_TARGET_DIR="$target_dir/$flavour"
# Locale, timezone and umask do not reach the binaries, but they reach file modes.
export LC_ALL=C.UTF-8 TZ=UTC
umask 022
RUSTFLAGS="$flags" cargo build "${cargo_args[@]}" >&2

bin="$CARGO_TARGET_DIR/$target/release"
mkdir -p "$out/man"
# Each file is written aside and renamed into place: another build into the same
# OUTDIR (tests run side by side) never shows a reader a half-written binary.
staging=$(mktemp -d "$out/.staging.XXXXXX")
trap 'rm -rf "$staging"' EXIT
install -m 0755 "$bin/cni-plugins" "$bin/cnitool" "$staging/"
"$bin/cni-docgen" man "$root" "$staging" >/dev/null
chmod 0644 "$staging"/*.[18]
mv -f "$staging/cni-plugins" "$staging/cnitool" "$out/"
mv -f "$staging/cnitool.1" "$staging/cni-plugins.8" "$out/man/"
echo "$out"
