#!/usr/bin/env bash
# Builds the release binaries and installs them into DESTDIR (default /opt/cni/bin):
# the plugins as one statically linked multi-call binary under each plugin's name
# (bridge, cnv-bridge, host-local, static, macvlan, vlan, sriov: hard links to one
# file), and cnitool. Each name is replaced atomically (written, then renamed), so a
# runtime never execs a half-written file; running it again is harmless.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-/opt/cni/bin}
out=$("$root/scripts/release/build.sh" --static "$root/target/static-out")
"$out/cni-plugins" install "$dest"
