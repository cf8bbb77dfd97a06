#!/usr/bin/env bash
# Makes a source release of the committed HEAD: writes to dist/ (or $DIST)
#   cni-plugins-rs-VERSION.tar.gz          the source (git archive)
#   cni-plugins-rs-VERSION-vendor.tar.gz   every crate of Cargo.lock (cargo vendor),
#                                          unpacked as vendor/ inside the source
#   cni-plugins-rs-VERSION.cdx.json        a CycloneDX SBOM of the shipped binaries
#   SHA256SUMS                             of the three
#
#   scripts/release.sh VERSION
#
# Refuses when VERSION is not the version of Cargo.toml, debian/changelog and the
# RPM spec, when CHANGELOG.md has no entry for it, when the work tree has
# uncommitted changes, or when THIRD-PARTY-NOTICES, debian/copyright or a licence
# no longer match Cargo.lock. Every archive is sorted, owned by root, and dated
# SOURCE_DATE_EPOCH (the commit's time), so a second run gives the same bytes.
# Needs git, cargo, python3, and cargo-about and cargo-cyclonedx (it says how to
# install a missing one). docs/packaging.md is the whole checklist.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=${1:?usage: scripts/release.sh VERSION}
dist=${DIST:-$root/dist}
name=cni-plugins-rs-$version

fail() {
    echo "release: $*" >&2
    exit 1
}

# The version, everywhere it is written.
cargo_version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
[ "$cargo_version" = "$version" ] || fail "Cargo.toml says $cargo_version, not $version"
grep -q "^## \[$version\] - [0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}$" CHANGELOG.md ||
    fail "CHANGELOG.md has no entry \"## [$version] - YYYY-MM-DD\""
deb_version=$(sed -n '1s/^cni-plugins-rs (\([^-)]*\)-[^)]*).*/\1/p' debian/changelog)
[ "$deb_version" = "$version" ] || fail "debian/changelog's first entry is $deb_version, not $version"
spec_version=$(sed -n 's/^Version:[[:space:]]*//p' rpm/cni-plugins-rs.spec)
[ "$spec_version" = "$version" ] || fail "rpm/cni-plugins-rs.spec says $spec_version, not $version"
git diff-index --quiet HEAD -- || fail "uncommitted changes: a release is made of a commit"

scripts/release/licences.sh check

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}
export LC_ALL=C.UTF-8 TZ=UTC
umask 022
mkdir -p "$dist"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Sorted, root-owned, dated: the same tree gives the same bytes.
reproducible_tar() {
    tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --owner=0 --group=0 \
        --numeric-owner --mode=go-w --format=gnu "$@"
}

echo "== $name.tar.gz" >&2
# tar.umask: files 0644 and directories 0755, whatever the committer's modes.
git -c tar.umask=0022 archive --format=tar --prefix="$name/" HEAD | gzip -9n >"$dist/$name.tar.gz"

echo "== $name-vendor.tar.gz" >&2
cargo vendor --locked --versioned-dirs --quiet "$work/vendor" >/dev/null
reproducible_tar -C "$work" -cf - vendor | gzip -9n >"$dist/$name-vendor.tar.gz"

echo "== $name.cdx.json" >&2
scripts/release/sbom.sh "$version" >"$dist/$name.cdx.json"

(cd "$dist" && sha256sum "$name.tar.gz" "$name-vendor.tar.gz" "$name.cdx.json" >SHA256SUMS)
echo "== dist/SHA256SUMS" >&2
cat "$dist/SHA256SUMS" >&2
echo "$dist"
