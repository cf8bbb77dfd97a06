#!/usr/bin/env bash
# The licence check and the generated licence files of a release.
#
#   scripts/release/licences.sh check    fails when a crate of Cargo.lock has no
#                                        licence on the allowlist (about.toml), or
#                                        when THIRD-PARTY-NOTICES or debian/copyright
#                                        no longer match Cargo.lock
#   scripts/release/licences.sh update   rewrites those two files
#
# Needs cargo-about (cargo install --locked --features cli cargo-about@0.9.3) and
# python3; reads the crates from the registry cache, or from vendor/ offline.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mode=${1:?usage: licences.sh check|update}
command -v cargo-about >/dev/null || {
    echo "licences: cargo-about is missing: cargo install --locked --features cli cargo-about@0.9.3" >&2
    exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Every crate of the lock (all are in the vendored tarball): on the allowlist.
python3 scripts/release/licences.py check

# The notices cover what the binaries link: cargo-about fails (--fail) on a crate
# whose licence it cannot read or that is not accepted.
about_args=(--format json --fail --locked)
[ -d vendor ] && about_args+=(--offline)
for crate in multicall cnitool; do
    cargo about generate "${about_args[@]}" -m "$crate/Cargo.toml" -o "$work/$crate.json" 2>"$work/about.log" ||
        { cat "$work/about.log" >&2; exit 1; }
done
python3 scripts/release/licences.py notices "$work/multicall.json" "$work/cnitool.json" >"$work/THIRD-PARTY-NOTICES"
python3 scripts/release/licences.py debian-copyright >"$work/copyright"

case $mode in
update)
    cp "$work/THIRD-PARTY-NOTICES" THIRD-PARTY-NOTICES
    cp "$work/copyright" debian/copyright
    echo "licences: THIRD-PARTY-NOTICES and debian/copyright rewritten"
    ;;
check)
    stale=0
    for pair in "THIRD-PARTY-NOTICES:$work/THIRD-PARTY-NOTICES" "debian/copyright:$work/copyright"; do
        if ! diff -u "${pair%%:*}" "${pair#*:}" >"$work/diff"; then
            echo "licences: ${pair%%:*} does not match Cargo.lock; run scripts/release/licences.sh update" >&2
            head -n 40 "$work/diff" >&2
            stale=1
        fi
    done
    expression=$(sed -n 's/^Licence of the binaries (SPDX): //p' "$work/THIRD-PARTY-NOTICES")
    spec_licence=$(sed -n 's/^License:[[:space:]]*//p' rpm/cni-plugins-rs.spec)
    if [ "$spec_licence" != "$expression" ]; then
        echo "licences: rpm/cni-plugins-rs.spec says License: $spec_licence; the binaries are $expression" >&2
        stale=1
    fi
    [ "$stale" = 0 ] && echo "licences: THIRD-PARTY-NOTICES and debian/copyright match Cargo.lock"
    exit "$stale"
    ;;
*)
    echo "usage: licences.sh check|update" >&2
    exit 2
    ;;
esac
