#!/bin/bash
# Run the cargo-fuzz targets of probes/fuzz under libFuzzer, one at a time, SECS each (default
# 300), and append one row per target to BENCHMARKS.md ("Fuzzing"): runs, execs/s, corpus
# size, crashes. A crash fails the script; its input is left in probes/fuzz/artifacts/TARGET/
# (add it to probes/tests/it/fuzz_answers.rs as a regression test once fixed).
#
#   ci/fuzz.sh [SECS] [TARGET...]     default: every target `cargo fuzz list` names
# Needs a nightly toolchain and cargo-fuzz (`cargo install --locked cargo-fuzz`). The build goes
# to target/fuzz (the workspace's target dir); corpora stay in probes/fuzz/corpus (git-ignored).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-300}
shift || true
cd "$ROOT/probes" || exit 2
command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz is not installed" >&2; exit 2; }
export CARGO_INCREMENTAL=0
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(cargo +nightly fuzz list)
# Seeds from the repository, where there are some.
seeds() {
  case $1 in
    apel_message) echo "$ROOT/testdata/apel/good $ROOT/testdata/apel/bad" ;;
    glue_document) echo "$ROOT/testdata/glue" ;;
  esac
}
if ! grep -q '^## Fuzzing' "$ROOT/BENCHMARKS.md"; then
  printf '\n## Fuzzing (`bash ci/fuzz.sh SECS`)\n\n%s\n%s\n\n%s\n%s\n' \
    'Each target of `probes/fuzz` under libFuzzer (`cargo +nightly fuzz run`, AddressSanitizer, one' \
    'at a time, 2 shared cores); the corpus grows from the run before when it is kept.' \
    '| date (UTC) | target | secs | runs | execs/s | corpus | crashes |' \
    '|---|---|---|---|---|---|---|' >> "$ROOT/BENCHMARKS.md"
fi
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  LOG=$(mktemp /tmp/fedprobe-fuzz.XXXXXX)
  # shellcheck disable=SC2046
  cargo +nightly fuzz run --target-dir "$ROOT/target/fuzz" "$t" "fuzz/corpus/$t" $(seeds "$t") -- \
    -max_total_time="$SECS" -print_final_stats=1 -rss_limit_mb=2048 -timeout=30 >"$LOG" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOG" | grep -o '[0-9]*$' | tail -1)
  eps=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$LOG" | grep -o '[0-9]*$' | tail -1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) 2>/dev/null | wc -l)
  if [ "$rc" != 0 ]; then
    status=1
    echo "fuzz: $t exit $rc; last lines:" >&2
    tail -30 "$LOG" >&2
  fi
  echo "| $(date -u '+%Y-%m-%d %H:%M') | $t | $SECS | ${runs:-?} | ${eps:-?} | $corpus | $crashes$([ "$rc" = 0 ] || echo " (exit $rc)") |" | tee -a "$ROOT/BENCHMARKS.md"
  rm -f "$LOG"
done
exit "$status"
