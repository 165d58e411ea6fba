#!/usr/bin/env python3
"""Print the binary targets of one workspace package, one per line, from `cargo metadata`.

The packages' probe list comes from here (ci/package.sh, ci/package-test.sh), not from a
hand list: cargo discovers probes/src/bin/*.rs, so a new probe is packaged without an edit.

    cargo metadata --format-version 1 --no-deps --locked | ci/workspace-bins.py probes
    ci/workspace-bins.py --version fedprobe < metadata.json   # the package's version
"""
import json
import sys


def main() -> int:
    args = sys.argv[1:]
    want_version = args[:1] == ["--version"]
    if want_version:
        args = args[1:]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    meta = json.load(sys.stdin)
    for pkg in meta["packages"]:
        if pkg["name"] != args[0]:
            continue
        if want_version:
            print(pkg["version"])
            return 0
        bins = sorted(t["name"] for t in pkg["targets"] if "bin" in t["kind"])
        if not bins:
            print(f"package {args[0]} has no binaries", file=sys.stderr)
            return 1
        print("\n".join(bins))
        return 0
    print(f"no package {args[0]} in the workspace", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
