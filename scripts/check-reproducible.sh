#!/usr/bin/env bash
# Builds a source release twice and compares every artifact byte for byte.
#
#   scripts/check-reproducible.sh [DIST [OUT]]
#
# DIST holds the release's two tarballs (default dist/, from scripts/release.sh);
# OUT receives the two builds, a/ and b/ (default target/reproducible). Each build
# unpacks both tarballs into an empty directory of its own (b's path is longer and
# deeper), with a CARGO_HOME of its own, at a later time, under another umask,
# locale and timezone, and with the network cut off (unshare -n), and makes:
#   - the static binaries (scripts/release/build.sh --static), as the image has them;
#   - the Debian package (dpkg-buildpackage -b, DEB_BUILD_OPTIONS=nocheck);
#   - the RPM (rpmbuild -bb from the spec in the tarball);
# then prints the SHA-256 of each artifact in a and in b, and fails on any
# difference. Needs root for unshare, dpkg-dev, debhelper and rpm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dist=$(cd "${1:-$root/dist}" && pwd)
out=${2:-$root/target/reproducible}
source_tar=$(find "$dist" -maxdepth 1 -name 'cni-plugins-rs-*.tar.gz' ! -name '*-vendor.tar.gz' | head -n 1)
[ -n "$source_tar" ] || { echo "reproducible: no source tarball in $dist" >&2; exit 1; }
name=$(basename "$source_tar" .tar.gz)
vendor_tar=$dist/$name-vendor.tar.gz
[ -f "$vendor_tar" ] || { echo "reproducible: no $name-vendor.tar.gz in $dist" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)

# build DIR: the three builds of one tree, side by side (each ends in a
# single-threaded LTO link, so two cores are best used by running them together).
build() {
    local dir=$1 tree=$1/src/$name
    mkdir -p "$tree" "$dir/cargo-home" "$dir/rpmbuild/SOURCES" "$dir/artifacts"
    tar -xzf "$source_tar" -C "$dir/src"
    tar -xzf "$vendor_tar" -C "$tree"
    cp "$source_tar" "$vendor_tar" "$dir/rpmbuild/SOURCES/"
    # dpkg-buildpackage writes beside the tree; a copy keeps it apart from the others.
    cp -a "$tree" "$dir/deb"
    export CARGO_HOME=$dir/cargo-home
    (cd "$tree" && unshare -n scripts/release/build.sh --static "$dir/static") >"$dir/static.log" 2>&1 &
    local static=$!
    (cd "$dir/deb" && DEB_BUILD_OPTIONS=nocheck unshare -n dpkg-buildpackage -us -uc -b -d) >"$dir/deb.log" 2>&1 &
    local deb=$!
    (unshare -n rpmbuild -bb --nodeps --define "_topdir $dir/rpmbuild" "$tree/rpm/cni-plugins-rs.spec") >"$dir/rpm.log" 2>&1 &
    local rpm=$!
    local failed=0
    wait "$static" || { echo "reproducible: the static build in $dir failed (its log: $dir/static.log)" >&2; failed=1; }
    wait "$deb" || { echo "reproducible: the Debian build in $dir failed (its log: $dir/deb.log)" >&2; failed=1; }
    wait "$rpm" || { echo "reproducible: the RPM build in $dir failed (its log: $dir/rpm.log)" >&2; failed=1; }
    [ "$failed" = 0 ] || return 1
    cp "$dir/static/cni-plugins" "$dir/artifacts/cni-plugins.static"
    cp "$dir/static/cnitool" "$dir/artifacts/cnitool.static"
    cp "$dir"/*.deb "$dir/rpmbuild/RPMS/x86_64/"*.rpm "$dir/artifacts/"
}

echo "== build a: $out/a" >&2
(umask 022 && LC_ALL=C.UTF-8 TZ=UTC build "$out/a")
sleep 2
echo "== build b: $out/b/a/longer/path, two seconds later, umask 002, another locale and timezone" >&2
(umask 002 && LC_ALL=C TZ=Pacific/Auckland build "$out/b/a/longer/path")
ln -sfn "$out/b/a/longer/path/artifacts" "$out/b/artifacts"

status=0
printf '%-44s %-16s %-16s %s\n' artifact "sha256 (a)" "sha256 (b)" verdict
for file in "$out/a/artifacts/"*; do
    artifact=$(basename "$file")
    a=$(sha256sum "$file" | cut -d' ' -f1)
    b=$(sha256sum "$out/b/artifacts/$artifact" 2>/dev/null | cut -d' ' -f1 || true)
    verdict=identical
    if [ "$a" != "$b" ]; then
        verdict=DIFFERENT
        status=1
    fi
    printf '%-44s %-16s %-16s %s\n' "$artifact" "${a:0:16}" "${b:0:16}" "$verdict"
done
count=$(find "$out/a/artifacts" -type f | wc -l)
if [ "$status" = 0 ]; then
    echo "reproducible: $count artifacts, byte-identical in both builds"
else
    echo "reproducible: artifacts differ between the two builds (diffoscope can say where)" >&2
fi
exit "$status"
