#!/bin/bash
# The long soak of issue 9: RUNS (default 200) check_vm_lifecycle runs against the running peers,
# through a proxy that resets 6% of the TLS tunnels to Nova at a random point, then one clean run.
# Passes when every status is a right one (OK, WARNING for a reaped leftover, CRITICAL naming the
# cut transport), nothing is left in Nova and the probe's peak RSS stays under 64 MB; appends the
# numbers to BENCHMARKS.md. The CI phase of ci/test.sh runs the same test with 12 runs.
#
#   ci/soak.sh [RUNS]     FEDPROBE_PEERS_ENV as for ci/test.sh; FEDPROBE_SOAK_SEED to replay
# It starts and stops no peer.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${1:-200}
export FEDPROBE_PEERS_ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}
[ -f "$FEDPROBE_PEERS_ENV" ] || { echo "soak: no $FEDPROBE_PEERS_ENV (start ci/peers/up.sh)" >&2; exit 2; }
LOG=$(mktemp /tmp/fedprobe-soak.XXXXXX)
t=$(date +%s)
FEDPROBE_SOAK_RUNS=$RUNS cargo test -p probes --test it -- --ignored \
  fault_matrix::soak_vm_runs_with_resets_to_nova --exact --show-output 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
line=$(grep -o 'SOAK runs .*' "$LOG" | tail -1)
rm -f "$LOG"
[ -n "$line" ] || { echo "soak: the test printed no SOAK line (exit $rc)" >&2; exit 1; }
result=passed; [ "$rc" = 0 ] || result="FAILED (exit $rc)"
if ! grep -q '^## Soak' BENCHMARKS.md; then
  printf '\n## Soak (`bash ci/soak.sh RUNS`)\n\n%s\n%s\n\n' \
    'check_vm_lifecycle runs one after another against the real peers, 6% of the tunnels to Nova reset' \
    'by the proxy of `probes/tests/it/faults/proxy.rs`; "left" is counted by the admin at the end.' >> BENCHMARKS.md
fi
echo "- $(date -u '+%Y-%m-%d %H:%M') UTC, $(( $(date +%s) - t )) s, $result: ${line#SOAK }" >> BENCHMARKS.md
echo "soak: $result; recorded in BENCHMARKS.md" >&2
exit $rc
