#!/usr/bin/env bash
# Scale benchmark of the harness: one process serves N virtual demo sites
# and runs the whole guideline against all of them.
#   ci/bench-harness.sh [SITES] [BOOT_DELAY] [JOBS] [JOBS_PER_SITE]
# Writes key=value numbers to ci/bench-harness.out (and stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
SITES=${1:-500}
BOOT=${2:-5s}
JOBS=${3:-64}
PER_SITE=${4:-2}
OUT=ci/bench-harness.out
REPORTS=$(mktemp -d)
trap 'rm -rf "$REPORTS"' EXIT

# The profile the packages ship (Cargo.toml's dist); FEDPROBE_BENCH_PROFILE=release
# measures a plain release build.
PROFILE=${FEDPROBE_BENCH_PROFILE:-dist}
cargo build --profile "$PROFILE" -q -p fedprobe >&2
BIN=target/$PROFILE/fedprobe
TIMEFILE=$(mktemp)
start=$(date +%s.%N)
set +e
/usr/bin/time -f 'max_rss_kb=%M' -o "$TIMEFILE" \
  "$BIN" demo --sites "$SITES" --boot-delay "$BOOT" --jobs "$JOBS" --jobs-per-site "$PER_SITE" \
  --quiet --format json --report-dir "$REPORTS" > "$REPORTS/stdout.json"
rc=$?
set -e
end=$(date +%s.%N)
python3 - "$REPORTS/fedprobe.json" "$SITES" "$BOOT" "$JOBS" "$PER_SITE" "$start" "$end" "$rc" "$(cat "$TIMEFILE")" > "$OUT" <<'PY'
import json, statistics, sys
doc = json.load(open(sys.argv[1]))
sites, boot, jobs, per_site, start, end, rc, rss = sys.argv[2:10]
durations = {}
for s in doc["sites"]:
    for p in s["run"]["probes"]:
        durations.setdefault(p["probe"], []).append(p["result"]["duration"])
print(f"sites={sites}\nboot_delay={boot}\njobs={jobs}\njobs_per_site={per_site}")
print(f"exit_code={rc}\nwall_seconds={float(end) - float(start):.2f}\n{rss}")
print(f"run_seconds={doc['duration']}\nstatus={doc['status']}")
for k, v in doc["totals"].items():
    print(f"totals_{k}={v}")
for probe, ds in sorted(durations.items()):
    ds.sort()
    p95 = ds[max(0, int(len(ds) * 0.95) - 1)]
    print(f"{probe}_mean_seconds={statistics.mean(ds):.3f}\n{probe}_p95_seconds={p95:.3f}")
PY
rm -f "$TIMEFILE"
cat "$OUT"
