#!/bin/bash
# Sizing: how many probe runs per hour one monitoring host sustains, measured as a
# monitoring engine runs them (one plugin process per check), against the demo cloud.
#
#   bash ci/bench-sizing.sh [RUNS] [PARALLEL] [PROBE]     defaults: 400 16 check_vm_lifecycle
#
# Starts `fedprobe demo --sites 20 --serve` (VM boot 1 s, loopback only), runs PROBE
# RUNS times over the 20 sites with PARALLEL at once (xargs -P), each under GNU time,
# and prints: runs, wall, runs/hour at that parallelism, per run wall/CPU/peak RSS, and
# the CPU ceiling 3600 * cores / CPU per run. Binaries from target/release if built,
# else target/debug (say which). Stops the demo by its PID.
#   FEDPROBE_BENCH_BIN_DIR   where the probes and fedprobe are (overrides the above)
#   FEDPROBE_BENCH_BOOT      demo VM boot delay (default 1s)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-400}
PAR=${2:-16}
PROBE=${3:-check_vm_lifecycle}
say() { echo "[bench-sizing] $*" >&2; }

BIN=${FEDPROBE_BENCH_BIN_DIR:-}
if [ -z "$BIN" ]; then
  BIN=$ROOT/target/debug
  [ -x "$ROOT/target/release/$PROBE" ] && [ -x "$ROOT/target/release/fedprobe" ] && BIN=$ROOT/target/release
fi
[ -x "$BIN/$PROBE" ] && [ -x "$BIN/fedprobe" ] || { say "no $PROBE / fedprobe in $BIN"; exit 1; }
[ -x /usr/bin/time ] || { say "GNU time missing (apt-get install time)"; exit 1; }

work=$(mktemp -d /tmp/fedprobe-bench-sizing.XXXXXX)
demo_pid=""
cleanup() {
  # `demo --serve` serves until Ctrl-C: SIGINT.
  if [ -n "$demo_pid" ]; then kill -INT "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$BIN/fedprobe" demo --sites 20 --boot-delay "${FEDPROBE_BENCH_BOOT:-1s}" --serve -q \
  --report-dir "$work/report" >/dev/null 2>"$work/demo.log" &
demo_pid=$!
for _ in $(seq 1 600); do
  grep -q 'serving until' "$work/demo.log" && break
  kill -0 "$demo_pid" 2>/dev/null || { say "demo exited: $(tail -5 "$work/demo.log")"; exit 1; }
  sleep 0.2
done
keystone0=$(sed -n 's/^keystone = "\(.*\)"$/\1/p' "$work/demo.log" | head -1)
token=$(sed -n 's/^file = "\(.*\)"$/\1/p' "$work/demo.log" | head -1)
[ -n "$keystone0" ] && [ -f "$token" ] || { say "no demo profile in $work/demo.log"; exit 1; }
base=${keystone0%/s0/identity/v3}

case "$PROBE" in
  check_vm_lifecycle) extra="--registry-image egi.ubuntu.22.04 -t 120" ;;
  *) extra="-t 60" ;;
esac
# One line per run: the site index.
for i in $(seq 0 $((RUNS - 1))); do echo $((i % 20)); done >"$work/jobs"
export BIN PROBE base token extra work
one() {
  # shellcheck disable=SC2086
  /usr/bin/time -f '%e %U %S %M %x' -a -o "$work/times" \
    "$BIN/$PROBE" --endpoint "$base/s$1/identity/v3" --access-token "$token" \
    --argo-host-name "bench-$1" $extra >"$work/out.$1.$$" 2>&1 || true
}
export -f one
say "$RUNS runs of $PROBE over 20 demo sites, $PAR at once, binaries in $BIN"
t0=$(date +%s.%N)
xargs -P "$PAR" -I{} bash -c 'one {}' <"$work/jobs"
t1=$(date +%s.%N)
cores=$(nproc)
python3 - "$work/times" "$t0" "$t1" "$RUNS" "$PAR" "$cores" <<'EOF'
import sys
path, t0, t1, runs, par, cores = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rows = []
for line in open(path):
    f = line.split()
    if len(f) == 5 and not line.startswith("Command"):
        rows.append((float(f[0]), float(f[1]) + float(f[2]), int(f[3]), int(f[4])))
wall = t1 - t0
ok = sum(1 for r in rows if r[3] == 0)
cpu = sum(r[1] for r in rows) / len(rows)
w = sorted(r[0] for r in rows)
rss = max(r[2] for r in rows) / 1024
print(f"runs {len(rows)} ({ok} exit 0), parallel {par}, wall {wall:.1f} s")
print(f"sustained {len(rows) / wall * 3600:.0f} runs/hour at parallel {par}")
print(f"per run: wall median {w[len(w)//2]:.2f} s, max {w[-1]:.2f} s; CPU (user+sys) mean {cpu*1000:.1f} ms; peak RSS {rss:.1f} MB")
print(f"CPU ceiling: 3600 * {cores} cores / {cpu*1000:.1f} ms = {3600*cores/cpu:.0f} runs/hour")
EOF
