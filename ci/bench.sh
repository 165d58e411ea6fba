#!/bin/bash
# Benchmarks of the release probes (results go to BENCHMARKS.md by hand):
#   - start-up: hyperfine over `check_* --help` (median; target < 5 ms)
#   - peak RSS: /usr/bin/time -v, for --help and for a full run (target < 15 MB)
#   - one full check_token_auth run against a loopback Keystone stub (ci/bench/keystone_stub.py)
# Needs hyperfine and GNU time (ci/install-deps.sh), python3. Prints a Markdown table.
#   FEDPROBE_BENCH_RUNS   hyperfine runs per command (default 200)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${FEDPROBE_BENCH_RUNS:-200}
OUT=$ROOT/target/bench
mkdir -p "$OUT"

for tool in hyperfine /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing (run ci/install-deps.sh)" >&2; exit 1; }
done

echo "bench: cargo build --release -p probes" >&2
cargo build --release -q -p probes
BIN=$ROOT/target/release
PROBES=$(cd "$BIN" && ls check_* | grep -v '\.d$' | sort)

# median seconds from a hyperfine JSON export, as milliseconds
median_ms() { python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$1"; }
# peak RSS in MB of one run of the command
peak_mb() {
  /usr/bin/time -v "$@" 2>"$OUT/time.txt" >/dev/null || true
  awk -F: '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$OUT/time.txt"
}
met() { python3 -c 'import sys; print("yes" if float(sys.argv[1]) < float(sys.argv[2]) else "**no**")' "$1" "$2"; }

# Loopback Keystone stub for the full run.
TOKDIR=$(mktemp -d)
STUB_PID=""
cleanup() { [ -n "$STUB_PID" ] && kill "$STUB_PID" 2>/dev/null; rm -rf "$TOKDIR"; }
trap cleanup EXIT
printf 'bench-monitor-access-token-0123456789' > "$TOKDIR/token"
python3 ci/bench/keystone_stub.py "$TOKDIR/port" "$TOKDIR/token" &
STUB_PID=$!
for _ in $(seq 50); do [ -s "$TOKDIR/port" ] && break; sleep 0.1; done
PORT=$(cat "$TOKDIR/port")
FULL=("$BIN/check_token_auth" --endpoint "http://127.0.0.1:$PORT/v3" --access-token "$TOKDIR/token" -t 10)
"${FULL[@]}" >"$OUT/full-run.txt" || { echo "bench: full run did not end OK:" >&2; cat "$OUT/full-run.txt" >&2; exit 1; }

echo "| what | median wall | peak RSS | target | met? |"
echo "|---|---|---|---|---|"
for p in $PROBES; do
  hyperfine -N --style none --warmup 10 --runs "$RUNS" --export-json "$OUT/$p-help.json" "$BIN/$p --help" >/dev/null 2>"$OUT/hyperfine.err" \
    || { cat "$OUT/hyperfine.err" >&2; exit 1; }
  ms=$(median_ms "$OUT/$p-help.json")
  mb=$(peak_mb "$BIN/$p" --help)
  echo "| \`$p --help\` start-up | $ms ms | $mb MB | < 5 ms, < 15 MB | $(met "$ms" 5) / $(met "$mb" 15) |"
done
hyperfine -N --style none --warmup 5 --runs "$((RUNS / 2))" --export-json "$OUT/full-run.json" "${FULL[*]}" >/dev/null 2>"$OUT/hyperfine.err" \
  || { cat "$OUT/hyperfine.err" >&2; exit 1; }
ms=$(median_ms "$OUT/full-run.json")
mb=$(peak_mb "${FULL[@]}")
echo "| \`check_token_auth\` full run, loopback stub | $ms ms | $mb MB | RSS < 15 MB | $(met "$mb" 15) |"
echo "bench: full-run output: $(head -1 "$OUT/full-run.txt")" >&2
echo "bench: $(nproc) cores, $(awk '/model name/ {sub(/.*: /,""); print; exit}' /proc/cpuinfo), $(date -u +%F)" >&2
