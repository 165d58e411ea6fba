#!/bin/bash
# The long soaks of issue 9, one after another: RUNS (default 200) check_vm_lifecycle runs and
# RUNS check_image_upload runs against the running peers, through a proxy that resets 6% of the
# TLS tunnels to Nova (resp. Glance) at a random point; every 10th run is sent SIGTERM and every
# 10th SIGKILL at a random moment; then one clean run. Passes when every status is a right one
# (OK, WARNING for a reaped leftover, CRITICAL naming the cut transport, UNKNOWN naming the
# SIGTERM), nothing is left (Nova: the next run reaps; Glance: nothing of a run that printed a
# result, what a SIGKILL left is counted and removed by the admin) and the probe's peak RSS
# (wait4's, through /usr/bin/time) stays under 64 MB; appends the numbers to BENCHMARKS.md.
# The CI phase of ci/test.sh runs the same tests with 12 runs each.
#
#   ci/soak.sh [RUNS] [vm|image|both]   FEDPROBE_PEERS_ENV as for ci/test.sh;
#                                       FEDPROBE_SOAK_SEED to replay; FEDPROBE_SOAK_BUDGET_SECS
#                                       to start no run after that many seconds (the line
#                                       says "runs N of RUNS")
# It starts and stops no peer.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
RUNS=${1:-200}
KIND=${2:-both}
case $KIND in
  vm) TESTS=(soak_vm_runs_with_resets_to_nova) ;;
  image) TESTS=(soak_image_runs_with_resets_to_glance) ;;
  both) TESTS=(soak_vm_runs_with_resets_to_nova soak_image_runs_with_resets_to_glance) ;;
  *) echo "usage: ci/soak.sh [RUNS] [vm|image|both]" >&2; exit 2 ;;
esac
export FEDPROBE_PEERS_ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}
[ -f "$FEDPROBE_PEERS_ENV" ] || { echo "soak: no $FEDPROBE_PEERS_ENV (start ci/peers/up.sh)" >&2; exit 2; }
if ! grep -q '^## Soak' BENCHMARKS.md; then
  printf '\n## Soak (`bash ci/soak.sh RUNS [vm|image|both]`)\n\n%s\n%s\n\n' \
    'check_vm_lifecycle / check_image_upload runs one after another against the real peers, 6% of the' \
    'tunnels to Nova / Glance reset by the proxy of `probes/tests/it/faults/proxy.rs`; "left" is counted by the admin at the end.' >> BENCHMARKS.md
fi
status=0
for test in "${TESTS[@]}"; do
  LOG=$(mktemp /tmp/fedprobe-soak.XXXXXX)
  t=$(date +%s)
  FEDPROBE_SOAK_RUNS=$RUNS cargo test -p probes --test it -- --ignored \
    "fault_matrix::$test" --exact --show-output 2>&1 | tee "$LOG"
  rc=${PIPESTATUS[0]}
  line=$(grep -Eo 'SOAK (vm|image) runs .*' "$LOG" | tail -1)
  rm -f "$LOG"
  if [ -z "$line" ]; then
    echo "soak: $test printed no SOAK line (exit $rc)" >&2
    status=1
    continue
  fi
  result=passed; [ "$rc" = 0 ] || { result="FAILED (exit $rc)"; status=$rc; }
  # Appended at the end of the Soak section, not of the file (sections follow it).
  entry="- $(date -u '+%Y-%m-%d %H:%M') UTC, $(( $(date +%s) - t )) s, $result: ${line#SOAK }"
  ENTRY=$entry python3 - BENCHMARKS.md <<'PY'
import os, re, sys
path = sys.argv[1]
text = open(path).read()
start = text.index("\n## Soak")
nxt = re.search(r"\n## ", text[start + 1:])
end = start + 1 + nxt.start() if nxt else len(text)
body = text[:end].rstrip("\n") + "\n" + os.environ["ENTRY"] + "\n"
open(path, "w").write(body + ("\n" + text[end:].lstrip("\n") if nxt else ""))
PY
  echo "soak: $test $result; recorded in BENCHMARKS.md" >&2
done
exit "$status"
