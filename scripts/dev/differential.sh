#!/usr/bin/env bash
# The differential harness, longer than in CI: generated invocations of bridge,
# cnv-bridge, macvlan, host-local and static through Debian's Go plugins and ours,
# compared (results, error codes, kernel state, files). Needs root.
#   scripts/dev/differential.sh [CASES] [SEED]     (default 5000 cases, seed 20261201)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "differential: run as root" >&2; exit 1; }
[ -x /usr/lib/cni/bridge ] || { apt-get update -qq && apt-get install -y -qq containernetworking-plugins >/dev/null; }
cargo build --workspace --bins --quiet
CNI_DIFF_CASES=${1:-5000} CNI_DIFF_SEED=${2:-20261201} \
    cargo nextest run -p testkit --test differential --no-capture --hide-progress-bar
