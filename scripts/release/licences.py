#!/usr/bin/env python3
"""The licences of the crates in Cargo.lock, for the release.

    licences.py debian-copyright   writes debian/copyright (DEP-5) to stdout
    licences.py check              fails when a crate's licence expression allows no
                                   licence of the allowlist (about.toml's `accepted`)
    licences.py notices JSON...    writes THIRD-PARTY-NOTICES to stdout from the
                                   `cargo about generate --format json` output of
                                   each shipped binary's crate

Reads `cargo metadata` (every package of Cargo.lock, for every platform: the
vendored-crates tarball holds them all, so the copyright file covers them all) and
the licence texts in LICENSES/. Run from the source tree; it needs the crates'
manifests (the registry cache, or vendor/ with the release's cargo flags).
"""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# The line of THIRD-PARTY-NOTICES that gives the binaries' licence expression; the
# RPM spec's License: and the image's licences label must say the same.
EXPRESSION_LABEL = "Licence of the binaries (SPDX):"


def accepted_licences():
    """The allowlist, read from about.toml so that cargo-about and this agree
    ($ABOUT_TOML names another, for the test that the check can fail)."""
    path = os.environ.get("ABOUT_TOML") or os.path.join(ROOT, "about.toml")
    text = open(path, encoding="utf-8").read()
    block = re.search(r"accepted\s*=\s*\[(.*?)\]", text, re.S)
    return re.findall(r'"([^"]+)"', block.group(1))


def packages():
    args = ["cargo", "metadata", "--format-version", "1", "--locked"]
    if os.path.isdir(os.path.join(ROOT, "vendor")):
        args += [
            "--offline",
            "--config", 'source.crates-io.replace-with="vendored-sources"',
            "--config", f'source.vendored-sources.directory="{ROOT}/vendor"',
        ]
    meta = json.loads(subprocess.check_output(args, cwd=ROOT))
    third = [p for p in meta["packages"] if p["source"]]
    return sorted(third, key=lambda p: (p["name"], p["version"]))


def alternatives(expression):
    """An SPDX expression as a list of alternatives, each a set of licences that
    must all hold. Handles OR, AND, parentheses and the old "A/B" form."""
    tokens = re.findall(r"\(|\)|[A-Za-z0-9.+\-]+", expression.replace("/", " OR "))
    pos = 0

    def parse_or():
        nonlocal pos
        result = parse_and()
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            result = result + parse_and()
        return result

    def parse_and():
        nonlocal pos
        result = parse_atom()
        while pos < len(tokens) and tokens[pos] == "AND":
            pos += 1
            right = parse_atom()
            result = [a | b for a in result for b in right]
        return result

    def parse_atom():
        nonlocal pos
        token = tokens[pos]
        pos += 1
        if token == "(":
            result = parse_or()
            pos += 1  # ")"
            return result
        return [frozenset([token])]

    return parse_or()


def dep5_expression(expression):
    """SPDX to DEP-5 syntax: lowercase operators, no slashes."""
    text = expression.replace("/", " OR ")
    text = re.sub(r"\bOR\b", "or", text)
    return re.sub(r"\bAND\b", "and", text)


def check():
    accepted = set(accepted_licences())
    bad = []
    for p in packages():
        if not p.get("license"):
            bad.append(f"{p['name']} {p['version']}: no licence expression")
        elif not any(choice <= accepted for choice in alternatives(p["license"])):
            bad.append(f"{p['name']} {p['version']}: {p['license']}")
    if bad:
        print("licences not on the allowlist (about.toml `accepted`):", file=sys.stderr)
        for line in bad:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"licences: {len(packages())} crates, each under a licence of the allowlist")
    return 0


def licence_paragraph(spdx):
    if spdx == "Apache-2.0":
        return (
            "License: Apache-2.0\n"
            " On Debian systems, the full text of the Apache License, Version 2.0 is in\n"
            " /usr/share/common-licenses/Apache-2.0.\n"
        )
    if spdx == "LGPL-2.1-or-later":
        return (
            "License: LGPL-2.1-or-later\n"
            " On Debian systems, the full text of the GNU Lesser General Public License\n"
            " version 2.1 is in /usr/share/common-licenses/LGPL-2.1.\n"
        )
    path = os.path.join(ROOT, "LICENSES", f"{spdx}.txt")
    text = open(path, encoding="utf-8").read().strip("\n")
    body = "\n".join(f" {line}" if line.strip() else " ." for line in text.split("\n"))
    return f"License: {spdx}\n{body}\n"


def debian_copyright():
    out = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: cni-plugins-rs\n"
        "Upstream-Contact: CNI plugins in Rust maintainers <maintainers@cni-plugins-rs.invalid>\n"
        "Comment: Generated by scripts/release/licences.py debian-copyright from\n"
        " Cargo.lock; the vendored crates are in vendor/<name>-<version>/ (the\n"
        " orig-vendor component tarball).\n",
        "Files: *\n"
        "Copyright: 2026 The cni-plugins-rs authors\n"
        "License: Apache-2.0\n",
    ]
    used = {"Apache-2.0"}
    for p in packages():
        authors = [re.sub(r"\s*<[^>]*>", "", a).strip() for a in p.get("authors") or []]
        authors = [a for a in authors if a] or [f"The {p['name']} authors"]
        holders = "\n ".join(authors)
        out.append(
            f"Files: vendor/{p['name']}-{p['version']}/*\n"
            f"Copyright: {holders}\n"
            f"License: {dep5_expression(p['license'])}\n"
        )
        for choice in alternatives(p["license"]):
            used |= choice
    for spdx in sorted(used):
        out.append(licence_paragraph(spdx))
    sys.stdout.write("\n".join(out))
    return 0


def notices(reports):
    """One text of each licence, with every third-party crate it covers, merged
    over the shipped binaries (cargo-about reports one crate graph at a time)."""
    texts = {}
    for report in reports:
        for licence in json.load(open(report, encoding="utf-8"))["licenses"]:
            crates = texts.setdefault((licence["id"], licence["name"], licence["text"]), set())
            for use in licence["used_by"]:
                crate = use["crate"]
                if crate.get("source"):  # the workspace's own crates are LICENSE's
                    crates.add((crate["name"], crate["version"]))
    entries = sorted(
        ((key, crates) for key, crates in texts.items() if crates),
        key=lambda entry: (entry[0][0], sorted(entry[1])),
    )
    every_crate = set().union(*(crates for _, crates in entries))
    # cargo-about chose one accepted licence per crate; the binaries are under all
    # of the chosen ones together (the suite's own first).
    chosen = sorted({key[0] for key, _ in entries} - {"Apache-2.0"})
    expression = " AND ".join(["Apache-2.0"] + chosen)
    out = [
        "Third-party notices for cni-plugins-rs\n"
        "\n"
        "The cni-plugins and cnitool binaries are built from the crates below; each\n"
        "licence is given with its full text and the crates it covers. cni-plugins-rs\n"
        "itself is licensed under the Apache License, Version 2.0 (LICENSE).\n"
        "\n"
        "Generated from Cargo.lock by cargo-about and scripts/release/licences.sh; do\n"
        "not edit.\n"
        "\n"
        f"{EXPRESSION_LABEL} {expression}\n"
        "\n"
        f"Crates ({len(every_crate)}):\n"
        + "".join(f"  {name} {version}\n" for name, version in sorted(every_crate))
    ]
    for (spdx, name, text), crates in entries:
        covered = "".join(f"  {n} {v}\n" for n, v in sorted(crates))
        out.append(
            "=" * 80 + f"\n{name} ({spdx})\n\nUsed by:\n{covered}\n{text.strip()}\n"
        )
    sys.stdout.write("\n".join(out))
    return 0


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "check":
        return check()
    if command == "notices":
        return notices(sys.argv[2:])
    if command == "debian-copyright":
        return debian_copyright()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
