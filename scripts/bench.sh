#!/usr/bin/env bash
# Benchmarks our plugins beside the Go ones from Debian's containernetworking-plugins
# (same configs, alternating runs, in namespaces of their own): VERSION, bridge ADD
# and DEL (layer 2, layer 3, macspoofchk with 0, 2,000 and 10,000 other attachments,
# ipspoofchk with 0 and 10,000), macvlan, host-local (empty and 10,000 allocations),
# 50 parallel ADDs, the kernel's floor, and sriov with a 64-VF PF on the full-kernel
# tier. Writes docs/benchmarks.md and docs/benchmarks.svg. Needs root. Not part of
# the test command. The host side of the scenarios (bridges, host veths, nftables
# rules, sysctls such as ip_forward) lives in a network namespace of the bench's
# own, so its `nft flush ruleset` and its settings touch nothing of the machine's.
#
#   scripts/bench.sh              everything, and writes the docs
#   scripts/bench.sh ipspoofchk   only ipspoofchk's rows and goals, printed (a few
#   scripts/bench.sh nftables     minutes); or only the nftables goals' rows.
#                                 Neither writes anything.
set -euo pipefail
only=${1:-}
case "$only" in
    "" | ipspoofchk | nftables) ;;
    *) echo "usage: $0 [ipspoofchk | nftables]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
if [ ! -x /usr/lib/cni/bridge ]; then
    apt-get update -qq && apt-get install -y -qq containernetworking-plugins >/dev/null
fi
ours="$root/target/bench-bin"
scripts/install.sh "$ours" >/dev/null
cargo build --release --quiet -p cni-bench
bench="$root/target/release/cni-bench"
own_netns=(unshare --net --)
if [ -n "$only" ]; then
    exec "${own_netns[@]}" "$bench" "$only" "$ours" /usr/lib/cni
fi
host_md=$(mktemp)
# Inside the VM only the repository is shared: the SR-IOV table is written there.
sriov_md="$root/target/bench-sriov.md"
trap 'rm -f "$host_md" "$sriov_md"' EXIT
echo "== host scenarios (this kernel)"
"${own_netns[@]}" "$bench" "$ours" /usr/lib/cni "$host_md" docs/benchmarks.svg
echo "== sriov (full-kernel tier)"
if scripts/vm/setup.sh >/dev/null && scripts/vm/run.sh "$bench" sriov "$ours" "$sriov_md"; then
    sriov_note=""
else
    sriov_note="The full-kernel tier could not run here: no SR-IOV figures in this run."
    : > "$sriov_md"
fi
{
    echo "# Benchmarks"
    echo
    echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d). Each scenario runs our"
    echo "plugins and the Go ones (Debian's containernetworking-plugins, the same configs)"
    echo "in turn, each round starting with the other one, since a plugin's time depends on"
    echo "what ran just before it; times are wall-clock per process as a runtime sees"
    echo "them, peak RSS is the plugin process's (wait4). Ours is the release build that"
    echo "scripts/install.sh installs. Each DEL gets its ADD's result as prevResult, as a"
    echo "runtime passes it. The goal pairs run our macspoofchk bridge in turn with our"
    echo "layer-2 bridge, nothing else between them: the nftables goals come from them."
    echo "ipspoofchk's pairs run our ipspoofchk bridge (static IPAM) in turn with our"
    echo "layer-2 bridge (its goal 1) and with our macspoofchk bridge of the same IPAM"
    echo "(the filter's own cost); its goal 2 compares what the filter adds to an ADD with"
    echo "10,000 other attachments (each with ipspoofchk's rules) with \`nft -f\`"
    echo "adding the same rules to an attachment's chain there (the \`floor: nft\` row)."
    echo
    echo "Linux starts a process's peak RSS at the size of the process it was forked"
    echo "from, so each plugin is forked by a small launcher rather than by the benchmark,"
    echo "which grows with the 2,000- and 10,000-attachment setups: the column's floor is"
    echo "the launcher's 1 MiB, below either plugin. The \`kernel:\` rows time bridge's own"
    echo "nf_tables transactions alone, sent by the benchmark after each plugin run: the"
    echo "kernel's share of a macspoofchk ADD and DEL (and of an ipspoofchk one, whose"
    echo "ADD transaction also carries the filter's rules). The \`kernel and parse\` rows"
    echo "time DEL's read of an attachment's rules before its transaction: the kernel's"
    echo "dumps and our parsing of them."
    echo
    sed -n '1,3p' "$host_md"
    echo
    echo "![ours/Go](benchmarks.svg)"
    echo
    echo "## On this machine's kernel"
    echo
    sed -n '4,$p' "$host_md"
    echo
    echo "## SR-IOV (full-kernel tier: a VM under TCG emulation, so absolute times are slow)"
    echo
    echo "A netdevsim PF with 64 VFs, veth stand-ins for the VF netdevs; no Go reference"
    echo "runs here (sriov-cni is not packaged). $sriov_note"
    echo
    cat "$sriov_md"
} > docs/benchmarks.md
echo "wrote docs/benchmarks.md and docs/benchmarks.svg"
