#!/usr/bin/env bash
# Prints a CycloneDX 1.5 SBOM (JSON) of what a release ships: the cni-plugins and
# cnitool binaries and every crate linked into them, for x86_64-unknown-linux-gnu.
#
#   scripts/release/sbom.sh VERSION
#
# cargo-cyclonedx describes each crate of the workspace; this joins the two shipped
# ones into one document whose subject is cni-plugins-rs VERSION. It runs on a copy
# of HEAD (cargo-cyclonedx writes beside each manifest), and the result names no
# local path, carries SOURCE_DATE_EPOCH as its time and a serial number derived
# from its content: the same commit gives the same bytes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=${1:?usage: sbom.sh VERSION}
command -v cargo-cyclonedx >/dev/null || {
    echo "sbom: cargo-cyclonedx is missing: cargo install --locked cargo-cyclonedx@0.5.9" >&2
    exit 1
}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct HEAD)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$root" archive --format=tar HEAD | tar -x -C "$work"
(cd "$work" && cargo cyclonedx --quiet --format json --spec-version 1.5 --no-build-deps \
    --target x86_64-unknown-linux-gnu --manifest-path multicall/Cargo.toml >&2)
python3 - "$work" "$version" <<'PY'
import datetime, hashlib, json, os, sys, uuid

work, version = sys.argv[1], sys.argv[2]
shipped = [json.load(open(os.path.join(work, p)))
           for p in ("multicall/cni-plugins.cdx.json", "cnitool/cnitool.cdx.json")]
local = f"path+file://{work}"

def clean(value):
    """Local paths out: a path dependency is named by its place in the source."""
    if isinstance(value, str):
        return value.replace(local, "path+file:///cni-plugins-rs")
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    return value

components, dependencies = {}, {}
for bom in shipped:
    for c in bom["components"]:
        components[c["bom-ref"]] = c
    for d in bom.get("dependencies", []):
        dependencies[d["ref"]] = d
subjects = [bom["metadata"]["component"] for bom in shipped]
for s in subjects:
    components[s["bom-ref"]] = s
product_ref = f"cni-plugins-rs@{version}"
dependencies[product_ref] = {"ref": product_ref,
                             "dependsOn": sorted(s["bom-ref"] for s in subjects)}
when = datetime.datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]),
                                       datetime.timezone.utc)
bom = clean({
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "version": 1,
    "metadata": {
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tools": shipped[0]["metadata"].get("tools", []),
        "component": {
            "type": "application",
            "bom-ref": product_ref,
            "name": "cni-plugins-rs",
            "version": version,
            "description": "CNI plugins in Rust: bridge, macvlan, vlan, sriov, tuning, host-local, static, and cnitool",
            "licenses": [{"license": {"id": "Apache-2.0"}}],
        },
        "properties": [{"name": "cdx:rustc:sbom:target:triple",
                        "value": "x86_64-unknown-linux-gnu"}],
    },
    "components": [components[k] for k in sorted(components)],
    "dependencies": [dependencies[k] for k in sorted(dependencies)],
})
body = json.dumps(bom, sort_keys=True).encode()
bom["serialNumber"] = "urn:uuid:" + str(uuid.UUID(bytes=hashlib.sha256(body).digest()[:16], version=5))
print(json.dumps(bom, indent=2, sort_keys=True))
PY
