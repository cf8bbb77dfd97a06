#!/usr/bin/env bash
# Runs each fuzz target (fuzz/) for a bounded time with cargo-fuzz on the nightly
# toolchain, seeded with the project's own test data. Any crash is copied into
# testdata/fuzz-regressions/<target>/, where libcni/tests/fuzz_regressions.rs (and runtime/tests/ for lists)
# replays it on every test run. Not part of the test command.
#   scripts/dev/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cd "$root/fuzz"
status=0
for target in config result cni_args; do
    corpus="$root/target/fuzz-corpus/$target"
    mkdir -p "$corpus"
    case $target in
        config|result) cp "$root"/testdata/results/*.json "$corpus/" ;;
        cni_args) printf 'IgnoreUnknown=1;K8S_POD_NAME=a;IP=10.0.0.1/24' > "$corpus/seed" ;;
    esac
    echo "== fuzzing $target for ${seconds}s"
    if ! cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -n 3; then
        status=1
    fi
    for crash in artifacts/"$target"/crash-* artifacts/"$target"/oom-* artifacts/"$target"/timeout-*; do
        [ -e "$crash" ] || continue
        cp "$crash" "$root/testdata/fuzz-regressions/$target/"
        echo "kept $(basename "$crash") as a regression input for $target"
        status=1
    done
done
exit $status
