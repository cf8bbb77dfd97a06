#!/usr/bin/env bash
# The main job: attach two network namespaces to a cnv-bridge network with
# macspoofchk and host-local addressing, using cnitool as a runtime would; show the
# interfaces, ping across, show that a forged source MAC is dropped, CHECK, DEL.
#
#   scripts/demo.sh --two-nodes   the seed's case across two nodes: VMs on VLAN 1223
#   on two "nodes" (each with br1 and a trunk uplink) reach each other and an ERP host
#   behind a data-centre switch, and not a VM on VLAN 100; a pod that takes the ERP
#   host's address poisons the other pods' ARP entries for it, unless its NAD has
#   ipspoofchk. Needs bridge VLAN filtering; where the kernel lacks it, it runs
#   inside the full-kernel tier's VM.
#
# Everything happens inside a throwaway network and mount namespace that stands in
# for the node, so the machine's own interfaces, nftables and /var/lib/cni are never
# touched, and an interrupted run leaves nothing behind. Needs root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if [ "${CNI_DEMO_INSIDE:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }
    for tool in ip nft ping unshare; do
        command -v "$tool" >/dev/null || { echo "demo: needs $tool (apt-get install iproute2 nftables iputils-ping util-linux)" >&2; exit 1; }
    done
    (cd "$root" && cargo build --workspace --bins --quiet)
    if [ "${1:-}" = --two-nodes ] && [ -z "${VMTEST_IN_VM:-}" ] &&
        ! unshare --net sh -c 'ip link add p type bridge vlan_filtering 1' 2>/dev/null; then
        echo "This kernel has no bridge VLAN filtering: running the two-node demo in the full-kernel tier's VM."
        "$root/scripts/vm/setup.sh" >/dev/null
        exec "$root/scripts/vm/run.sh" "$0" "$@"
    fi
    exec env CNI_DEMO_INSIDE=1 unshare --mount --net --propagation private "$0" "$@"
fi

bin="$root/target/debug"
# Fresh tmpfs over directories that exist on every machine (and never hold the
# repository): nothing is created on the real filesystem, so even a killed run
# leaves no trace.
case "$root/" in /run/*|/var/lib/*) echo "demo: run it from a checkout outside /run and /var/lib" >&2; exit 1 ;; esac
for dir in /run /var/lib; do mount -t tmpfs tmpfs "$dir"; done
work=/run/cni-demo
mkdir -p /var/lib/cni "$work"
ip link set lo up
mkdir -p "$work/bin" "$work/net.d"
ln -s "$bin/bridge" "$work/bin/cnv-bridge"
ln -s "$bin/host-local" "$work/bin/host-local"
export CNI_PATH="$work/bin" NETCONFPATH="$work/net.d"
cnitool="$bin/cnitool"

say() { printf '\n== %s\n' "$*"; }
indent() { sed 's/^/   /'; }

if [ "${1:-}" = --two-nodes ]; then
    ln -s "$bin/tuning" "$work/bin/cnv-tuning"
    exec "$root/scripts/demo-two-nodes.sh"
fi

vlan_line=""
if ip link add demo-probe type bridge vlan_filtering 1 2>/dev/null; then
    ip link del demo-probe
    vlan_line='
    "vlan": 1223,'
    echo "This kernel has bridge VLAN filtering: both pods go on VLAN 1223, as in the seed's example."
else
    echo "This kernel has no bridge VLAN filtering: the demo runs untagged (the full-kernel test tier covers VLAN 1223)."
fi

cat > "$NETCONFPATH/10-vlan-net.conflist" <<CONF
{
  "cniVersion": "1.0.0",
  "name": "vlan-net-1223",
  "plugins": [{
    "type": "cnv-bridge",
    "bridge": "br1",$vlan_line
    "macspoofchk": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.12.23.0/24"}]], "dataDir": "$work/ipam"}
  }]
}
CONF
say "network configuration ($NETCONFPATH/10-vlan-net.conflist)"
indent < "$NETCONFPATH/10-vlan-net.conflist"

ip netns add pod-a
ip netns add pod-b
say "attach pod-a and pod-b with cnitool add"
for pod in pod-a pod-b; do
    address=$("$cnitool" add vlan-net-1223 /run/netns/$pod | sed -n 's/.*"address": "\(.*\)".*/\1/p')
    echo "   $pod: eth0 $address"
done

say "what the kernel shows"
for pod in pod-a pod-b; do
    ip -n $pod -br addr show eth0 | sed "s/^/   $pod: /"
done
ip -br link show master br1 | sed 's/^/   node: port of br1: /'

say "ping pod-b from pod-a"
if ip netns exec pod-a ping -c 2 -W 1 10.12.23.3 >/dev/null; then
    echo "   10.12.23.3 answers"
else
    echo "   FAILED: pod-b does not answer" >&2; exit 1
fi

say "macspoofchk: pod-a sends with a forged source MAC"
real_mac=$(ip -n pod-a -br link show eth0 | awk '{print $3}')
ip -n pod-a link set eth0 address 02:de:ad:be:ef:01
ip -n pod-b neigh flush all
if ip netns exec pod-a ping -c 2 -W 1 10.12.23.3 >/dev/null; then
    echo "   FAILED: the forged frames got through" >&2; exit 1
fi
protected=$(nft list ruleset | grep -c 'drop comment "macspoofchk-' || true)
echo "   source 02:de:ad:be:ef:01 instead of $real_mac: dropped (table bridge nat guards $protected ports)"
ip -n pod-a link set eth0 address "$real_mac"
ip -n pod-b neigh flush all
ip netns exec pod-a ping -c 1 -W 1 10.12.23.3 >/dev/null && echo "   real MAC restored: pod-b answers again"

say "cnitool check"
for pod in pod-a pod-b; do
    "$cnitool" check vlan-net-1223 /run/netns/$pod && echo "   $pod: ok"
done

say "cnitool del"
for pod in pod-a pod-b; do
    "$cnitool" del vlan-net-1223 /run/netns/$pod && echo "   $pod: detached"
done
left_links=$(ip -br link | grep -c veth || true)
left_rules=$(nft list ruleset | grep -c macspoofchk || true)
left_ips=$(find "$work/ipam" -name '10.*' | wc -l)
left_cache=$(find /var/lib/cni/results -type f 2>/dev/null | wc -l)
echo "   left behind: $left_links veths, $left_rules macspoofchk rules, $left_ips addresses, $left_cache cache entries"
[ "$left_links$left_rules$left_ips$left_cache" = 0000 ] || { echo "demo: DEL left state behind" >&2; exit 1; }
echo
echo "demo: done; the namespaces that stood in for the node are gone with this process."
