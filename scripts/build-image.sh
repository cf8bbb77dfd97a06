#!/usr/bin/env bash
# Builds the installer image (deploy/Containerfile) with podman, offline: FROM
# scratch, the static release binaries copied in. Prints the image name.
#   IMAGE  the name to tag (default localhost/cni-plugins-rs:<version>)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
image=${IMAGE:-localhost/cni-plugins-rs:$version}
out=$("$root/scripts/build-release.sh")
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$out/cni-plugins" "$out/cnitool" "$root/deploy/Containerfile" "$context/"
podman build --quiet --pull=never --network=none -t "$image" -f "$context/Containerfile" "$context" >&2
echo "$image"
