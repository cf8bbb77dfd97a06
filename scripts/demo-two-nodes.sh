#!/usr/bin/env bash
# The two-node part of scripts/demo.sh (run by it, inside its throwaway namespaces,
# with CNI_PATH and the binaries set up). The seed's case: VMs in the ERP VLAN 1223
# on two nodes reach each other and the ERP host across a data-centre switch, and
# not a VM on VLAN 100; a forged source MAC is dropped on each node. Node 1 uses the
# seed's NAD (cnv-bridge, VLAN 1223, macspoofchk); node 2 the console's chain
# (cnv-bridge, then cnv-tuning), with the VM's MAC from CNI_ARGS as Multus passes it
# to every delegate: the bridge creates the port with it (so macspoofchk allows it)
# and tuning sets it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/debug"
cnitool="$bin/cnitool"
say() { printf '\n== %s\n' "$*"; }

say "the lab: two nodes, a data-centre switch, an ERP host on VLAN 1223"
for ns in node1 node2 switch erp pod-a pod-b pod-c pod-d pod-e; do ip netns add $ns; ip -n $ns link set lo up; done
# The switch: a VLAN-aware bridge; trunks to the nodes, an access port to the ERP host.
ip -n switch link add dc type bridge vlan_filtering 1
ip -n switch link set dc up
for n in 1 2; do
    ip link add sw$n netns switch type veth peer name uplink netns node$n
    ip -n switch link set sw$n master dc up
    for vid in 1223 100; do bridge -n switch vlan add vid $vid dev sw$n; done
    # Each node: br1 with VLAN filtering, its uplink a trunk for 1223 and 100.
    ip -n node$n link add br1 type bridge vlan_filtering 1
    ip -n node$n link set br1 up
    ip -n node$n link set uplink master br1 up
    for vid in 1223 100; do bridge -n node$n vlan add vid $vid dev uplink; done
    echo "   node$n: br1, uplink trunk for VLANs 1223 and 100"
done
ip link add sw3 netns switch type veth peer name eth0 netns erp
ip -n switch link set sw3 master dc up
bridge -n switch vlan del vid 1 dev sw3
bridge -n switch vlan add vid 1223 dev sw3 pvid untagged
ip -n erp addr add 10.12.23.100/24 dev eth0
ip -n erp link set eth0 up
echo "   ERP host: 10.12.23.100 on VLAN 1223 behind the switch"

net=$NETCONFPATH
cat > "$net/10-seed.conflist" <<CONF
{"cniVersion": "0.3.1", "name": "vlan-net-1223", "plugins": [
  {"type": "cnv-bridge", "bridge": "br1", "vlan": 1223, "macspoofchk": true}]}
CONF
cat > "$net/20-console.conflist" <<CONF
{"cniVersion": "0.3.1", "name": "vlan-net-1223-tuned", "plugins": [
  {"type": "cnv-bridge", "bridge": "br1", "vlan": 1223, "macspoofchk": true, "ipam": {}},
  {"type": "cnv-tuning"}]}
CONF
cat > "$net/30-other.conflist" <<CONF
{"cniVersion": "0.3.1", "name": "vlan-net-100", "plugins": [
  {"type": "cnv-bridge", "bridge": "br1", "vlan": 100, "macspoofchk": true}]}
CONF

say "attach: both NADs on both nodes, and pod-c on VLAN 100"
echo "   node1: pod-a (the seed's NAD), pod-d (cnv-bridge + cnv-tuning)"
echo "   node2: pod-b (cnv-bridge + cnv-tuning), pod-e (the seed's NAD), pod-c (VLAN 100)"
ip netns exec node1 "$cnitool" add vlan-net-1223 /run/netns/pod-a >/dev/null
CNI_ARGS="IgnoreUnknown=true;MAC=02:12:23:00:00:0d" \
    ip netns exec node1 "$cnitool" add vlan-net-1223-tuned /run/netns/pod-d >/dev/null
CNI_ARGS="IgnoreUnknown=true;MAC=02:12:23:00:00:0b" \
    ip netns exec node2 "$cnitool" add vlan-net-1223-tuned /run/netns/pod-b >/dev/null
ip netns exec node2 "$cnitool" add vlan-net-1223 /run/netns/pod-e >/dev/null
ip netns exec node2 "$cnitool" add vlan-net-100 /run/netns/pod-c >/dev/null
# Layer 2 only: the VMs address themselves.
for pair in pod-a:11 pod-b:12 pod-c:13 pod-d:14 pod-e:15; do
    pod=${pair%%:*}
    ip -n $pod addr add 10.12.23.${pair##*:}/24 dev eth0
    echo "   $pod: eth0 $(ip -n $pod -br link show eth0 | awk '{print $3}') 10.12.23.${pair##*:}/24"
done
echo "   pod-b's MAC is the one Multus would pass (CNI_ARGS MAC=): $(ip -n pod-b -br link show eth0 | awk '{print $3}')"

reach() { ip netns exec "$1" ping -c 2 -W 1 "$2" >/dev/null 2>&1; }
say "who reaches whom"
reach pod-a 10.12.23.12 && echo "   pod-a (node1) -> pod-b (node2): answers" || { echo "   FAILED: pod-a does not reach pod-b" >&2; exit 1; }
reach pod-a 10.12.23.100 && echo "   pod-a (node1) -> ERP host: answers" || { echo "   FAILED: pod-a does not reach the ERP host" >&2; exit 1; }
reach pod-b 10.12.23.100 && echo "   pod-b (node2) -> ERP host: answers" || { echo "   FAILED: pod-b does not reach the ERP host" >&2; exit 1; }
reach pod-d 10.12.23.15 && echo "   pod-d (node1, chain) -> pod-e (node2, seed NAD): answers" || { echo "   FAILED: pod-d does not reach pod-e" >&2; exit 1; }
reach pod-e 10.12.23.100 && echo "   pod-e (node2) -> ERP host: answers" || { echo "   FAILED: pod-e does not reach the ERP host" >&2; exit 1; }
reach pod-d 10.12.23.100 && echo "   pod-d (node1) -> ERP host: answers" || { echo "   FAILED: pod-d does not reach the ERP host" >&2; exit 1; }
if reach pod-a 10.12.23.13; then echo "   FAILED: VLAN 1223 reached VLAN 100" >&2; exit 1; fi
echo "   pod-a -> pod-c (VLAN 100): no answer, as it must be"

say "macspoofchk on each node"
for pair in pod-a:node1 pod-b:node2; do
    pod=${pair%%:*}
    real=$(ip -n $pod -br link show eth0 | awk '{print $3}')
    ip -n $pod link set eth0 address 02:de:ad:be:ef:01
    ip -n erp neigh flush all
    if reach $pod 10.12.23.100; then echo "   FAILED: forged frames from $pod got through" >&2; exit 1; fi
    echo "   $pod on ${pair##*:}: forged source MAC dropped"
    ip -n $pod link set eth0 address "$real"
done
ip -n erp neigh flush all
reach pod-a 10.12.23.100 && echo "   real MACs restored: the ERP host answers again"

say "cnitool del (the NADs are cniVersion 0.3.1, which has no CHECK)"
ip netns exec node1 "$cnitool" del vlan-net-1223 /run/netns/pod-a
ip netns exec node1 "$cnitool" del vlan-net-1223-tuned /run/netns/pod-d
ip netns exec node2 "$cnitool" del vlan-net-1223-tuned /run/netns/pod-b
ip netns exec node2 "$cnitool" del vlan-net-1223 /run/netns/pod-e
ip netns exec node2 "$cnitool" del vlan-net-100 /run/netns/pod-c
left=$(for n in node1 node2; do ip netns exec $n nft list ruleset | grep -c macspoofchk || true; done | awk '{s += $1} END {print s}')
echo "   left behind: $left macspoofchk rules"
[ "$left" = 0 ] || { echo "demo: DEL left rules behind" >&2; exit 1; }
echo
echo "demo: two nodes done; the lab's namespaces are gone with this process."
