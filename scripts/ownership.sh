#!/usr/bin/env bash
# Runs the ownership harness (testkit/tests/ownership.rs) for a long time: random
# planted node state, random sequences of ADD, CHECK, DEL and GC, some at once,
# some ADDs killed. The test command runs a few dozen cases with a fixed seed; this
# runs as many as asked, with the seed asked, and prints the seed of a failure.
#
#   sudo scripts/ownership.sh [CASES] [SEED]     (defaults: 5000, a seed from the clock)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "ownership: run as root (the harness makes namespaces)" >&2; exit 1; }
cases=${1:-5000}
seed=${2:-$(date +%s)}
cargo build --quiet --workspace --bins
echo "ownership: $cases cases, seed $seed"
OWNERSHIP_CASES=$cases OWNERSHIP_SEED=$seed \
    cargo test --quiet -p testkit --test ownership -- --nocapture
