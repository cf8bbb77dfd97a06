#!/usr/bin/env bash
# Measures the two netlink approaches considered for libcni, as docs/design.md
# records them: release binaries of the same bridge-ADD-shaped sequence (veth pair,
# look-up, link up, address, delete), each run as a fresh process as a CNI plugin
# is, alternating, inside a network namespace of its own. Needs root.
set -euo pipefail
cd "$(dirname "$0")/netlink-choice"
runs=${1:-300}
cargo build --release --quiet
export SYNC=$PWD/target/release/sync-veth RTNL=$PWD/target/release/rtnl-veth RUNS=$runs
unshare --net bash -c '
    ip link set lo up
    for i in $(seq 1 "$RUNS"); do
        for bin in SYNC RTNL; do
            start=$(date +%s%N); "${!bin}" "$i"; end=$(date +%s%N)
            echo "$bin $(( (end - start) / 1000 ))"
        done
    done' > /tmp/netlink-choice.$$
for bin in SYNC RTNL; do
    grep "^$bin " /tmp/netlink-choice.$$ | cut -d" " -f2 | sort -n | awk -v name="$bin" '
        { v[NR] = $1 } END { printf "%s: runs %d, median %d us, p95 %d us\n", name, NR, v[int(NR/2)+1], v[int(NR*0.95)] }'
done
rm -f /tmp/netlink-choice.$$
for bin in sync-veth rtnl-veth; do
    printf "%s: %d bytes (stripped, lto)\n" "$bin" "$(stat -c %s target/release/$bin)"
done
