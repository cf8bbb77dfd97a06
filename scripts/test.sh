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
scripts/dev/layers.sh

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

# The full-kernel tier: the tests that skipped here for want of a kernel feature
# (their own probes said so) run again inside a VM with a stock Debian kernel.
kernel_tests=$(grep 'the full-kernel tier runs it' "$skip_log" | cut -d: -f1 | sort -u || true)
vm_passed=0
vm_failed=0
ran_in_vm=""
if [ -n "$kernel_tests" ]; then
    count=$(echo "$kernel_tests" | wc -l)
    echo "== full-kernel tier: $count tests need kernel features this machine lacks; running them in a VM"
    if scripts/vm/setup.sh; then
        # A skip names its test function; a test inside a module is listed by nextest as
        # `module::function`, so the name is matched as the last path segment.
        filter=$(echo "$kernel_tests" | sed 's/.*/test(\/(^|::)&$\/)/' | paste -sd'|' | sed 's/|test(/ | test(/g')
        vm_log=$(mktemp)
        # The tier takes about ten minutes under emulation; a hung VM ends at thirty.
        VMTEST_TIMEOUT=${VMTEST_TIMEOUT:-1800} scripts/vm/run.sh env CNI_TEST_TIER=full-kernel \
            cargo nextest run --workspace --no-fail-fast \
            --hide-progress-bar --failure-output final -E "$filter" 2>&1 | tee "$vm_log" || status=1
        # Each test once: nextest repeats the failures in its summary.
        vm_passed=$({ grep -E '^ +PASS ' "$vm_log" || true; } | sed -E 's/^ +PASS +\[[^]]*\] +//' | sort -u | wc -l)
        vm_failed=$({ grep -E '^ +(FAIL|SIGSEGV|SIGABRT|TIMEOUT) ' "$vm_log" || true; } | sed -E 's/^ +[A-Z]+ +\[[^]]*\] +//' | sort -u | wc -l)
        echo "== where the kernel-dependent tests ran"
        { grep -E '^ +(PASS|FAIL) ' "$vm_log" || true; } | sed -E 's/^ +(PASS|FAIL) +\[[^]]*\] +/  full-kernel tier: \1 /' | sort -u
        ran_in_vm=$kernel_tests
        if [ $((vm_passed + vm_failed)) -lt "$count" ]; then
            echo "error: the full-kernel tier ran $((vm_passed + vm_failed)) of $count tests" >&2
            status=1
        fi
        rm -f "$vm_log"
    elif [ "${CI:-}" = true ]; then
        echo "error: the full-kernel tier could not be set up, and CI=true requires it" >&2
        status=1
    else
        echo "note: the full-kernel tier could not be set up here; its tests stay skipped"
    fi
fi

# Skips that no tier made up for.
remaining=$(sort -u "$skip_log" | while IFS= read -r line; do
    name=${line%%:*}
    if ! echo "$ran_in_vm" | grep -qxF "$name"; then echo "$line"; fi
done)
skipped=0
if [ -n "$remaining" ]; then
    skipped=$(echo "$remaining" | wc -l)
    echo "== skipped (not counted as passed)"
    echo "$remaining" | sed 's/^/  /'
fi
host_skips=$(sort -u "$skip_log" | wc -l)
passed=$(( ${passed:-0} - host_skips + vm_passed ))
failed=$(( ${failed:-0} + vm_failed ))
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
