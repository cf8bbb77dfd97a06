#!/usr/bin/env bash
# The two-node part of scripts/demo.sh (run by it, inside its throwaway namespaces,
# with CNI_PATH and the binaries set up). The seed's case: VMs in the ERP VLAN 1223
# on two nodes reach each other and the ERP host across a data-centre switch, and
# not a VM on VLAN 100; a forged source MAC is dropped on each node. Node 1 uses the
# seed's NAD (cnv-bridge, VLAN 1223, macspoofchk); node 2 the console's chain
# (cnv-bridge, then cnv-tuning), with the VM's MAC from CNI_ARGS as Multus passes it
# to every delegate: the bridge creates the port with it (so macspoofchk allows it)
# and tuning sets it. Then a guarded NAD on VLAN 1223 (cnv-bridge with macspoofchk
# and ipspoofchk, host-local with one range per node) and an attacker pod that takes
# the ERP host's address 10.12.23.100 with only `ip` and `ping`: from a pod on the
# seed's NAD (no ipspoofchk) it poisons the other pods' ARP entries for the ERP
# host; from a pod on the guarded NAD its ARP and IPv4 from that address are dropped
# at its port, so the other pods and the ERP host keep the right MACs.
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
erp_mac=02:12:23:00:01:00
ip -n erp link set eth0 address $erp_mac
ip -n erp addr add 10.12.23.100/24 dev eth0
ip -n erp link set eth0 up
echo "   ERP host: 10.12.23.100 on VLAN 1223 behind the switch, MAC $erp_mac"

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

# ipspoofchk. host-local keeps its allocations on the node, so each node's copy of
# the guarded NAD has its own range of the subnet, away from the ERP host and the
# addresses the VMs above gave themselves.
guarded=$(dirname "$net")/guarded
fail() { echo "   FAILED: $*" >&2; exit 1; }
mac() { ip -n "$1" -br link show eth0 | awk '{print $3}'; }
ipv4() { ip -n "$1" -4 -br addr show eth0 | awk '{print $3}' | cut -d/ -f1; }
# The MAC a namespace's neighbour table holds for an address (empty if none).
neigh() { ip -n "$1" neigh show "$2" dev eth0 | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}'; }
# The ERP host's neighbour table: address and MAC, a line each.
erp_entries() { ip -n erp neigh show dev eth0 | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $1, $(i + 1)}' | sort; }
say "ipspoofchk: a guarded NAD on VLAN 1223, one host-local range per node"
for n in 1 2; do
    first=10.12.23.$((n + 1))1 last=10.12.23.$((n + 1))9
    mkdir -p "$guarded/node$n"
    cat > "$guarded/node$n/40-guarded.conflist" <<CONF
{"cniVersion": "1.0.0", "name": "vlan-net-1223-guarded", "plugins": [
  {"type": "cnv-bridge", "bridge": "br1", "vlan": 1223, "macspoofchk": true, "ipspoofchk": true,
   "ipam": {"type": "host-local", "dataDir": "/var/lib/cni/node$n",
            "ranges": [[{"subnet": "10.12.23.0/24", "rangeStart": "$first", "rangeEnd": "$last"}]]}}]}
CONF
    echo "   node$n: vlan-net-1223-guarded (cnv-bridge, VLAN 1223, macspoofchk, ipspoofchk), host-local $first-$last"
done
for pod in pod-f pod-g pod-h; do ip netns add $pod; ip -n $pod link set lo up; done
CNI_ARGS="IgnoreUnknown=true;MAC=02:12:23:00:00:0f" NETCONFPATH=$guarded/node1 \
    ip netns exec node1 "$cnitool" add vlan-net-1223-guarded /run/netns/pod-f >/dev/null
NETCONFPATH=$guarded/node1 ip netns exec node1 "$cnitool" add vlan-net-1223-guarded /run/netns/pod-h >/dev/null
NETCONFPATH=$guarded/node2 ip netns exec node2 "$cnitool" add vlan-net-1223-guarded /run/netns/pod-g >/dev/null
for pair in pod-f:"node1, the attacker" pod-h:node1 pod-g:node2; do
    pod=${pair%%:*}
    echo "   $pod (${pair#*:}): eth0 $(mac $pod) $(ip -n $pod -4 -br addr show eth0 | awk '{print $3}') from IPAM"
done
ruleset=$(ip netns exec node1 nft list ruleset)
echo "   node1: $(echo "$ruleset" | grep -c "ipspoofchk-") ipspoofchk rules (table bridge nat) for pod-f and pod-h; pod-f's that name its address:"
echo "$ruleset" | grep -F "$(ipv4 pod-f) " | grep ipspoofchk- | sed -e 's/ comment .*//' -e 's/^[[:space:]]*/      /'

say "who reaches whom on the guarded NAD"
reach pod-f 10.12.23.100 && echo "   pod-f (node1) -> ERP host: answers" || fail "pod-f does not reach the ERP host"
reach pod-h 10.12.23.100 && echo "   pod-h (node1) -> ERP host: answers" || fail "pod-h does not reach the ERP host"
reach pod-g 10.12.23.100 && echo "   pod-g (node2) -> ERP host: answers" || fail "pod-g does not reach the ERP host"
reach pod-f "$(ipv4 pod-g)" && echo "   pod-f (node1) -> pod-g (node2): answers" || fail "pod-f does not reach pod-g"
reach pod-h "$(ipv4 pod-f)" && echo "   pod-h (node1) -> pod-f (node1): answers" || fail "pod-h does not reach pod-f"
reach pod-g 10.12.23.11 && echo "   pod-g (node2, guarded) -> pod-a (node1, seed NAD): answers" || fail "pod-g does not reach pod-a"

# learn POD...: each POD learns 10.12.23.100 from the ERP host; then the kernel's
# locktime (1 s, within which it ignores a new MAC for a neighbour) runs out, so an
# unprotected pod would take the attacker's word.
learn() {
    for pod in "$@"; do
        reach $pod 10.12.23.100 || fail "$pod does not reach the ERP host"
        [ "$(neigh $pod 10.12.23.100)" = $erp_mac ] || fail "$pod did not learn the ERP host's MAC"
    done
    echo "   $(echo "$*" | sed 's/ / and /g') map 10.12.23.100 to the ERP host's MAC $erp_mac"
    sleep 2
}
# attack ATTACKER TARGET...: what a tenant can do in its own pod. ATTACKER takes the
# ERP host's address and pings each TARGET from it: the kernel asks for the target
# with ARP requests saying that 10.12.23.100 is at ATTACKER's MAC, which every pod
# on the VLAN that knows 10.12.23.100 believes. Sets `answered` to the targets that
# replied (to the attacker).
attack() {
    local attacker=$1 target
    shift
    ip -n $attacker addr add 10.12.23.100/32 dev eth0
    ip -n $attacker neigh flush dev eth0
    answered=""
    for target in "$@"; do
        if ip netns exec $attacker ping -c 2 -W 1 -I 10.12.23.100 "$(ipv4 $target)" >/dev/null 2>&1; then
            answered="$answered $target"
        fi
    done
}

say "the attack without ipspoofchk: pod-a (the seed's NAD, macspoofchk only) takes 10.12.23.100"
echo "   (pod-g and pod-h are guarded too: ipspoofchk filters what a port sends, not what it receives)"
learn pod-g pod-h
attack pod-a pod-g pod-h
[ "$answered" = " pod-g pod-h" ] || fail "pod-a's pings from 10.12.23.100 were answered by${answered:- nobody}"
echo "   pod-a pings pod-g and pod-h from 10.12.23.100: they answer, to pod-a"
attacker_mac=$(mac pod-a)
for pod in pod-g pod-h; do
    [ "$(neigh $pod 10.12.23.100)" = "$attacker_mac" ] ||
        fail "$pod kept the ERP host's MAC without ipspoofchk: the contrast proves nothing"
    echo "   without ipspoofchk: $pod now maps 10.12.23.100 to the attacker's MAC $attacker_mac"
done
ip -n pod-a addr del 10.12.23.100/32 dev eth0
for pod in pod-a pod-b pod-d pod-e pod-f pod-g pod-h; do ip -n $pod neigh flush dev eth0; done
echo "   restored: pod-a gave the address back, the pods on VLAN 1223 forgot their neighbours"

say "the same attack with ipspoofchk: pod-f (the guarded NAD) takes 10.12.23.100"
learn pod-g pod-h
erp_before=$(erp_entries)
for pod in pod-f pod-g pod-h; do
    echo "$erp_before" | grep -qx "$(ipv4 $pod) $(mac $pod)" || fail "the ERP host has no entry for $pod"
done
attack pod-f pod-g pod-h
[ -z "$answered" ] || fail "pod-f's pings from 10.12.23.100 were answered by$answered"
echo "   pod-f pings pod-g and pod-h from 10.12.23.100: no answer (node1 drops its ARP and IPv4 from that address)"
for pod in pod-g pod-h; do
    now=$(neigh $pod 10.12.23.100)
    [ "$now" = $erp_mac ] || fail "with ipspoofchk, $pod maps 10.12.23.100 to ${now:-nothing}"
    echo "   with ipspoofchk: $pod still maps 10.12.23.100 to the ERP host's MAC $erp_mac"
done
[ "$(erp_entries)" = "$erp_before" ] || fail "the ERP host's neighbour entries changed: $(erp_entries | tr '\n' ' ')"
echo "   with ipspoofchk: the ERP host's entries for the pods are unchanged (all $(echo "$erp_before" | wc -l); pod-f, pod-g and pod-h at their own MACs)"
ip -n pod-g neigh flush dev eth0
reach pod-g 10.12.23.100 || fail "pod-g does not reach the ERP host while pod-f holds its address"
[ "$(neigh pod-g 10.12.23.100)" = $erp_mac ] || fail "pod-g resolved 10.12.23.100 to $(neigh pod-g 10.12.23.100)"
echo "   with ipspoofchk: pod-g asks for 10.12.23.100 again while pod-f holds it: only the ERP host's MAC answers, pod-g reaches it"
ip -n pod-f addr del 10.12.23.100/32 dev eth0
reach pod-f 10.12.23.100 || fail "pod-f does not reach the ERP host from its own address"
echo "   pod-f gave the address back: from its own address it reaches the ERP host again"
for pair in pod-f:1 pod-g:2 pod-h:1; do
    NETCONFPATH=$guarded/node${pair##*:} ip netns exec node${pair##*:} \
        "$cnitool" check vlan-net-1223-guarded /run/netns/${pair%%:*} || fail "cnitool check of ${pair%%:*}"
done
echo "   cnitool check (the guarded NAD is cniVersion 1.0.0): pod-f, pod-g and pod-h ok"

say "cnitool del (the seed's NADs are cniVersion 0.3.1, which has no CHECK)"
ip netns exec node1 "$cnitool" del vlan-net-1223 /run/netns/pod-a
ip netns exec node1 "$cnitool" del vlan-net-1223-tuned /run/netns/pod-d
ip netns exec node2 "$cnitool" del vlan-net-1223-tuned /run/netns/pod-b
ip netns exec node2 "$cnitool" del vlan-net-1223 /run/netns/pod-e
ip netns exec node2 "$cnitool" del vlan-net-100 /run/netns/pod-c
for pair in pod-f:1 pod-h:1 pod-g:2; do
    NETCONFPATH=$guarded/node${pair##*:} ip netns exec node${pair##*:} \
        "$cnitool" del vlan-net-1223-guarded /run/netns/${pair%%:*}
done
rules() { for n in node1 node2; do ip netns exec $n nft list ruleset | grep -c "$1" || true; done | awk '{s += $1} END {print s}'; }
left=$(rules macspoofchk)
left_ip=$(rules ipspoofchk)
left_addresses=$(find /var/lib/cni/node1 /var/lib/cni/node2 -name '10.*' | wc -l)
echo "   left behind: $left macspoofchk rules, $left_ip ipspoofchk rules, $left_addresses guarded addresses"
[ "$left$left_ip$left_addresses" = 000 ] || { echo "demo: DEL left rules or addresses behind" >&2; exit 1; }
echo
echo "demo: two nodes done; the lab's namespaces are gone with this process."
