#!/usr/bin/env bash
# Runs the ownership harness (testkit/tests/ownership.rs) for a long time: random
# planted node state, random sequences of ADD, CHECK, DEL and GC, some at once,
# some ADDs killed. The test command runs a fixed seed's cases (100 on this
# machine's kernel, 3 on the full-kernel tier); this runs as many as asked, with
# the seed asked, and prints the seed of a failure.
#
#   sudo scripts/ownership.sh [CASES] [SEED]
#       the networks this machine's kernel carries (defaults: 5000, a seed from the clock)
#   sudo scripts/ownership.sh --full-kernel [CASES] [SEED]
#       vlan, a bridge VLAN and sriov (netdevsim) in the full-kernel VM
#       (scripts/vm/setup.sh; defaults: 50 cases, about 35 s each under emulation)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "ownership: run as root (the harness makes namespaces)" >&2; exit 1; }
full_kernel=false
if [ "${1:-}" = --full-kernel ]; then
    full_kernel=true
    shift
fi
seed=${2:-$(date +%s)}
cargo build --quiet --workspace --bins
if $full_kernel; then
    cases=${1:-50}
    echo "ownership: $cases cases on the full-kernel tier, seed $seed"
    cargo test --quiet --no-run -p testkit --test ownership
    scripts/vm/setup.sh
    VMTEST_TIMEOUT=${VMTEST_TIMEOUT:-$((cases * 60 + 600))} scripts/vm/run.sh \
        env CNI_TEST_TIER=full-kernel OWNERSHIP_KERNEL_CASES="$cases" OWNERSHIP_SEED="$seed" \
        cargo test --quiet -p testkit --test ownership -- --exact \
        nothing_a_verb_does_reaches_what_is_not_its_own_on_a_full_kernel --nocapture
else
    cases=${1:-5000}
    echo "ownership: $cases cases, seed $seed"
    OWNERSHIP_CASES=$cases OWNERSHIP_SEED=$seed \
        cargo test --quiet -p testkit --test ownership -- --exact \
        nothing_a_verb_does_reaches_what_is_not_its_own --nocapture
fi
