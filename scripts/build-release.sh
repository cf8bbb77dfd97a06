#!/usr/bin/env bash
# Builds the release binaries: statically linked (glibc's static libc), stripped,
# LTO with one codegen unit (see [profile.release]), non-PIE. Prints the directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=x86_64-unknown-linux-gnu
cd "$root"
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release --quiet --target "$target" -p cni-plugins -p cnitool >&2
echo "$root/target/$target/release"
