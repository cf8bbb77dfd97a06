#!/usr/bin/env bash
# Builds the vendor package cni-plugins-rs-static: the static multi-call binary and
# cnitool under /opt/cni/bin, the path kubelet, containerd and CRI-O use by default,
# for nodes that take packages from us rather than from their distribution (the
# distribution package is debian/, under /usr/lib/cni-plugins-rs). It sits beside
# Debian's containernetworking-plugins (/usr/lib/cni) without a file conflict.
# Reproducible: files dated SOURCE_DATE_EPOCH (debian/changelog's date), sorted.
# Prints the path of the .deb (in target/).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
version=$(dpkg-parsechangelog -SVersion)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(dpkg-parsechangelog -STimestamp)}
out=$(scripts/release/build.sh --static "$root/target/static-out")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"
umask 022
"$out/cni-plugins" install "$stage/opt/cni/bin" >/dev/null
doc=$stage/usr/share/doc/cni-plugins-rs-static
mkdir -p "$stage/DEBIAN" "$doc" "$stage/usr/share/lintian/overrides"
cp debian/copyright "$doc/copyright"
gzip -9n -c debian/changelog >"$doc/changelog.Debian.gz"
gzip -9n -c CHANGELOG.md >"$doc/changelog.gz"
gzip -9n -c THIRD-PARTY-NOTICES >"$doc/THIRD-PARTY-NOTICES.gz"
gzip -9n -c README.md >"$doc/README.md.gz"
cat >"$stage/usr/share/lintian/overrides/cni-plugins-rs-static" <<'OVERRIDES'
# A vendor package, not one for the Debian archive: /opt/cni/bin is where kubelet,
# containerd and CRI-O look for CNI plugins by default, and the distribution
# package (cni-plugins-rs) is the one that follows the FHS.
cni-plugins-rs-static: dir-or-file-in-opt [opt/*]
# Built from the upstream source release, not uploaded to the Debian archive:
# there is no ITP bug for the first changelog entry to close.
cni-plugins-rs-static: initial-upload-closes-no-bugs [usr/share/doc/cni-plugins-rs-static/changelog.Debian.gz:1]
OVERRIDES
size=$(du -sk --apparent-size "$stage/opt" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: cni-plugins-rs-static
Version: $version
Architecture: amd64
Maintainer: $(sed -n 's/^Maintainer: //p' debian/control)
Installed-Size: $size
Section: net
Priority: optional
Description: CNI plugins in Rust, static build for /opt/cni/bin
 Drop-in replacements for the reference CNI plugins (bridge/cnv-bridge,
 macvlan, vlan, sriov, tuning/cnv-tuning, host-local, static) and cnitool,
 compatible with their configurations, results, nftables names and IPAM
 files. Installed under /opt/cni/bin as one statically linked multi-call
 binary, as the installer image ships it.
CONTROL
(cd "$stage" && find usr opt -type f ! -type l -print0 | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb="$root/target/cni-plugins-rs-static_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
