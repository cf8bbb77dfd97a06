#!/usr/bin/env bash
# Runs CMD as root inside a throwaway VM with a stock Debian kernel, in the
# repository's directory (shared read-write, so target/ writes survive), streaming
# its output. Exits with CMD's status; 124 on timeout, 125 when the VM itself failed.
# Needs scripts/vm/setup.sh to have run.
#   VMTEST_DIR      the setup's directory (default /var/cache/cni-vmtest)
#   VMTEST_ACCEL    kvm|tcg (default: kvm only where the CPU has vmx/svm; else tcg)
#   VMTEST_TIMEOUT  seconds (default 900)
#   VMTEST_MEM, VMTEST_SMP, VMTEST_MODULES
set -uo pipefail
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${VMTEST_DIR:-/var/cache/cni-vmtest}
[ -f "$dir/vmlinux" ] && [ -f "$dir/initrd.img" ] || { echo "vm/run: run scripts/vm/setup.sh first" >&2; exit 125; }
kver=$(cat "$dir/kernel-version")
modules=${VMTEST_MODULES-8021q,bridge,veth,macvlan,dummy,netdevsim}

accel=${VMTEST_ACCEL:-}
if [ -z "$accel" ]; then
    # /dev/kvm on this machine kind is PVM and cannot run a stock kernel.
    if [ -w /dev/kvm ] && grep -qE 'vmx|svm' /proc/cpuinfo; then accel=kvm; else accel=tcg; fi
fi
cpu=max
[ "$accel" = kvm ] && cpu=host

run=$(mktemp -d /tmp/cni-vmrun.XXXXXX)
trap '[ -n "${VMTEST_KEEP:-}" ] || rm -rf "$run"' EXIT
{
    echo "cd $(printf %q "$PWD")"
    export -p | grep -v -E ' (PWD|OLDPWD|SHLVL|TERM|_)=' 
    echo "export VMTEST_IN_VM=1 TERM=dumb NO_COLOR=1 CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never"
    printf 'exec'; printf ' %q' "$@"; echo
} > "$run/command.sh"
touch "$run/status" "$run/kernel.log"

timeout_s=${VMTEST_TIMEOUT:-900}
timeout --foreground "$timeout_s" qemu-system-x86_64 \
    -accel "$accel" -cpu "$cpu" -m "${VMTEST_MEM:-1024M}" -smp "${VMTEST_SMP:-2}" \
    -nodefaults -no-reboot -display none -M q35 \
    -kernel "$dir/vmlinux" -initrd "$dir/initrd.img" \
    -append "console=ttyS1 loglevel=5 panic=-1 cryptomgr.notests rodata=off vmtest.run=$run vmtest.share=$repo vmtest.modules=$modules" \
    -chardev stdio,id=out,signal=off -serial chardev:out \
    -serial "file:$run/kernel.log" -serial "file:$run/status" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$dir/root/lib/modules,mount_tag=modules,security_model=none,readonly=on" \
    -virtfs "local,path=$repo,mount_tag=share,security_model=none,multidevs=remap" \
    -virtfs "local,path=$run,mount_tag=run,security_model=none" < /dev/null
qemu_status=$?
status=$(tr -dc '0-9' < "$run/status")
if grep -qE 'WARNING:|BUG:|Oops' "$run/kernel.log"; then
    echo "vm/run: the guest kernel reported:" >&2
    grep -E -A5 'WARNING:|BUG:|Oops' "$run/kernel.log" | head -n 40 >&2
fi
if [ "$qemu_status" = 124 ]; then
    echo "vm/run: timed out after ${timeout_s}s" >&2
    tail -n 20 "$run/kernel.log" >&2
    exit 124
fi
if [ -z "$status" ]; then
    echo "vm/run: the VM stopped before reporting (qemu exit $qemu_status); kernel log tail:" >&2
    tail -n 30 "$run/kernel.log" >&2
    exit 125
fi
exit "$status"
