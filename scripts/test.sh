#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints, unit tests, black-box tests of
# the plugin binaries, and the privileged tests (as root, each in namespaces it
# creates itself). Tests that need what this machine lacks are reported as skipped,
# with their reason, and never counted as passed.
set -euo pipefail
cd "$(dirname "$0")/.."

skip_log=$(mktemp)
trap 'rm -f "$skip_log"' EXIT
export CNI_TEST_SKIP_LOG="$skip_log"

if [ "$(id -u)" != 0 ]; then
    if [ "${CI:-}" = true ]; then
        echo "error: the privileged tests need root, and CI=true forbids skipping them" >&2
        exit 1
    fi
    echo "note: not root: the privileged tests will be skipped (each says why)"
fi

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== build"
cargo build --workspace --bins --quiet

echo "== tests"
status=0
log=$(mktemp)
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast --failure-output final 2>&1 | tee "$log" || status=$?
    passed=$(sed -n 's/.* tests\{0,1\} run: \([0-9]*\) passed.*/\1/p' "$log" | tail -n 1)
    failed=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' "$log" | tail -n 1)
else
    cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
    passed=$(sed -n 's/^test result: .* \([0-9]*\) passed.*/\1/p' "$log" | paste -sd+ | bc)
    failed=$(sed -n 's/^test result: .* \([0-9]*\) failed.*/\1/p' "$log" | paste -sd+ | bc)
fi
rm -f "$log"

skipped=$(sort -u "$skip_log" | wc -l)
if [ "$skipped" -gt 0 ]; then
    echo "== skipped (not counted as passed)"
    sort -u "$skip_log" | sed 's/^/  /'
fi
passed=$(( ${passed:-0} - skipped ))
echo "tests: ${passed} passed, ${failed:-0} failed, ${skipped} skipped"
exit "$status"
