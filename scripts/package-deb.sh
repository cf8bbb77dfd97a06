#!/usr/bin/env bash
# Builds a Debian package that installs the suite under /opt/cni/bin, the path
# kubelet, containerd and CRI-O use by default: it sits beside Debian's
# containernetworking-plugins (/usr/lib/cni) without a file conflict.
# Prints the path of the .deb (in target/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
out=$("$root/scripts/build-release.sh")
stage=$(mktemp -d)
chmod 755 "$stage"
trap 'rm -rf "$stage"' EXIT
"$out/cni-plugins" install "$stage/opt/cni/bin" >/dev/null
mkdir -p "$stage/DEBIAN" "$stage/usr/share/doc/cni-plugins-rs"
cp "$root/README.md" "$stage/usr/share/doc/cni-plugins-rs/README.md"
size=$(du -sk --apparent-size "$stage/opt" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: cni-plugins-rs
Version: $version
Architecture: amd64
Maintainer: CNI plugins in Rust maintainers <cni-plugins-rs@localhost>
Installed-Size: $size
Section: net
Priority: optional
Homepage: https://localhost/cni-plugins-rs
Description: CNI plugins (bridge/cnv-bridge, macvlan, vlan, sriov, host-local, static) and cnitool
 Drop-in replacements for the reference CNI plugins, compatible with their
 configurations, results, nftables names and IPAM files. Installed under
 /opt/cni/bin as one statically linked multi-call binary.
CONTROL
deb="$root/target/cni-plugins-rs_${version}_amd64.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
