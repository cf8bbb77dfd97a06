#!/usr/bin/env bash
# Builds the installer image (deploy/Containerfile) with podman, offline: FROM
# scratch, the static release binaries, the licence texts, the third-party notices
# and the SBOM, with the OCI labels of the release. Prints the image name.
#   IMAGE       the name to tag (default localhost/cni-plugins-rs:<version>)
#   SOURCE_URL  where the source release is published (the source label; default:
#               the source tarball's name, as the project has no public URL yet)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
image=${IMAGE:-localhost/cni-plugins-rs:$version}
out=$("$root/scripts/release/build.sh" --static "$root/target/static-out")
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$out/cni-plugins" "$out/cnitool" "$root/deploy/Containerfile" "$context/"
mkdir "$context/licenses"
cp "$root/LICENSE" "$root/THIRD-PARTY-NOTICES" "$context/licenses/"
"$root/scripts/release/sbom.sh" "$version" >"$context/licenses/cni-plugins-rs.cdx.json"
# The licence expression of the binaries, as the notices state it.
licences=$(sed -n 's/^Licence of the binaries (SPDX): //p' "$root/THIRD-PARTY-NOTICES")
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || sed -n 1p "$root/libcni/COMMIT")
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct HEAD 2>/dev/null || date +%s)}
# OCI image-spec annotations, as labels.
podman build --quiet --pull=never --network=none \
    --label "org.opencontainers.image.title=cni-plugins-rs" \
    --label "org.opencontainers.image.description=CNI plugins in Rust: installer of bridge, macvlan, vlan, sriov, tuning, host-local, static and cnitool" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.source=${SOURCE_URL:-cni-plugins-rs-$version.tar.gz}" \
    --label "org.opencontainers.image.licenses=$licences" \
    --label "org.opencontainers.image.created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)" \
    -t "$image" -f "$context/Containerfile" "$context" >&2
echo "$image"
