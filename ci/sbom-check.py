#!/usr/bin/env python3
"""Check a CycloneDX SBOM from cargo-cyclonedx against the workspace (ci/package.sh).

    cargo tree -p PKG -e normal --prefix none -f '{p}' | sbom-check.py SBOM.cdx.json Cargo.lock

Well-formed: JSON with bomFormat CycloneDX, a specVersion, a serialNumber, the package as
metadata.component and a name, version and pkg:cargo purl on every component.
Complete: every crate `cargo tree` prints (what the shipped binary is built from) is a
component. Honest: every component is a crate of Cargo.lock at its locked version.
Exit 1 with every problem listed.
"""
import json
import sys
import tomllib


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    sbom_path, lock_path = sys.argv[1], sys.argv[2]
    problems = []
    try:
        with open(sbom_path, encoding="utf-8") as f:
            bom = json.load(f)
    except (OSError, ValueError) as e:
        print(f"[sbom] {sbom_path}: not readable JSON: {e}", file=sys.stderr)
        return 1
    with open(lock_path, "rb") as f:
        locked = {(p["name"], p["version"]) for p in tomllib.load(f)["package"]}

    if bom.get("bomFormat") != "CycloneDX":
        problems.append(f"bomFormat is {bom.get('bomFormat')!r}, not 'CycloneDX'")
    if not str(bom.get("specVersion", "")).startswith("1."):
        problems.append(f"specVersion {bom.get('specVersion')!r}")
    if not str(bom.get("serialNumber", "")).startswith("urn:uuid:"):
        problems.append("no urn:uuid serialNumber")
    root = (bom.get("metadata") or {}).get("component") or {}
    if not root.get("name"):
        problems.append("no metadata.component (the package itself)")

    listed = set()
    for c in bom.get("components") or []:
        name, version, purl = c.get("name"), c.get("version"), c.get("purl", "")
        if not name or not version or not purl.startswith(f"pkg:cargo/{name}@{version}"):
            problems.append(f"component {name}@{version}: no name, version or pkg:cargo purl")
            continue
        listed.add((name, version))
        if (name, version) not in locked:
            problems.append(f"component {name}@{version} is not in {lock_path}")

    wanted = set()
    for line in sys.stdin:
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("v"):
            wanted.add((parts[0], parts[1][1:]))
    if not wanted:
        problems.append("no crates on stdin (cargo tree printed nothing?)")
    root_key = (root.get("name"), root.get("version"))
    for name, version in sorted(wanted - listed - {root_key}):
        problems.append(f"{name}@{version} is built into the package but not in the SBOM")

    for p in problems:
        print(f"[sbom] {sbom_path}: {p}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"[sbom] {sbom_path}: CycloneDX {bom['specVersion']}, {len(listed)} components, "
        f"all {len(wanted)} crates of the build listed, all in {lock_path}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
