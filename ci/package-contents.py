#!/usr/bin/env python3
"""Check a built package holds every workspace binary (ci/package.sh runs it).

    package-contents.py deb|rpm PACKAGE_FILE HARNESS_BIN PROBE...

The probes (the probes crate's binaries, ci/workspace-bins.py) must be in
/usr/libexec/argo/probes/fedcloud/ with nothing else there, the harness in /usr/bin,
the release notes in /usr/share/doc/fedprobe/, and each probe linked from the Nagios
plugin directory: in the .deb as a symlink entry, in the .rpm by its %post scriptlet.
Exit 1 with every problem listed.
"""
import posixpath
import subprocess
import sys

PROBE_DIR = "/usr/libexec/argo/probes/fedcloud"


def deb_entries(path):
    """{path: symlink target or None} from `dpkg-deb -c`."""
    out = subprocess.run(["dpkg-deb", "-c", path], check=True, capture_output=True, text=True)
    entries = {}
    for line in out.stdout.splitlines():
        # perms owner size date time ./path[ -> target]
        name = line.split(None, 5)[5]
        target = None
        if line.startswith("l") and " -> " in name:
            name, target = name.split(" -> ", 1)
        entries[name[1:].rstrip("/")] = target
    return entries


def rpm_entries(path):
    out = subprocess.run(["rpm", "-qpl", path], check=True, capture_output=True, text=True)
    scripts = subprocess.run(
        ["rpm", "-qp", "--scripts", path], check=True, capture_output=True, text=True
    ).stdout
    return {line: None for line in out.stdout.splitlines()}, scripts


def main() -> int:
    if len(sys.argv) < 5 or sys.argv[1] not in ("deb", "rpm"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, path, harness, probes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    problems = []
    if kind == "deb":
        entries = deb_entries(path)
        for p in probes:
            link = f"/usr/lib/nagios/plugins/{p}"
            target = entries.get(link) or "missing"
            # cargo-deb writes the link relative to its directory.
            target = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
            if target != f"{PROBE_DIR}/{p}":
                problems.append(f"{link} is not a symlink to {PROBE_DIR}/{p}")
    else:
        entries, scripts = rpm_entries(path)
        # The %post scriptlet links every file of the probe directory.
        if f"for p in {PROBE_DIR}/*" not in scripts:
            problems.append("the %post scriptlet does not link the probe directory's files")
    want = [f"/usr/bin/{harness}", "/usr/share/doc/fedprobe/CHANGELOG.md"]
    want += [f"{PROBE_DIR}/{p}" for p in probes]
    for w in want:
        if w not in entries:
            problems.append(f"{w} is missing")
    extra = sorted(
        e for e in entries if e.startswith(PROBE_DIR + "/") and e[len(PROBE_DIR) + 1 :] not in probes
    )
    for e in extra:
        problems.append(f"{e} is not a workspace binary (stale?)")
    for p in problems:
        print(f"[package] {path}: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"[package] {path}: {len(probes)} probes + {harness}, links, release notes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
