#!/bin/bash
# check_vm_lifecycle against the real peers (ci/peers/up.sh must have run):
# wall and CPU time, HTTP requests, and the lag between the server turning
# ACTIVE and the probe noticing, over N runs of the release binary.
#   ci/bench-vm.sh [RUNS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${1:-5}
ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}
[ -f "$ENV" ] || { echo "bench-vm: no $ENV (start ci/peers/up.sh)" >&2; exit 1; }
set -a; . "$ENV"; set +a
cargo build --release -q -p probes
BIN=$ROOT/target/release/check_vm_lifecycle
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
curl -s -m 10 -u "$OIDC_CLIENT_ID:$(cat "$OIDC_CLIENT_SECRET_FILE")" -d grant_type=client_credentials \
  --cacert "$CA_CERT" "$OIDC_TOKEN_ENDPOINT" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"], end="")' > "$W/token"
python3 - "$W" "$RUNS" "$BIN" <<'PY'
import json, os, re, resource, subprocess, sys, time
w, runs, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
args = [binary, "-t", "300", "-vvv", "--access-token", f"{w}/token", "--endpoint", os.environ["KEYSTONE_URL"],
        "--appdb-image", os.environ["IMAGE_APPDB_ID"], "--cert", os.environ["CA_CERT"],
        "--argo-host-name", "bench.fedprobe", "--output", "json"]
rows = []
for i in range(1, runs + 1):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(args, capture_output=True, text=True).stdout
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r = json.loads(out)
    perf = {p["label"]: p["value"] for p in r["perfdata"]}
    lag = next((float(m.group(1)) for d in r.get("details", [])
                for m in [re.search(r"previous poll ([0-9.]+)s earlier", d)] if m), None)
    rows.append((r["status"], wall, cpu, r["http_requests"], perf.get("create"), lag))
    print(f"run {i}: {r['status']} wall {wall:.2f}s cpu {cpu:.3f}s requests {r['http_requests']} "
          f"create {perf.get('create')}s lag<={lag}s")
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
ok = [r for r in rows if r[0] == "OK"]
def rng(k, f="%.2f"):
    v = [r[k] for r in ok if r[k] is not None]
    return f"{f % min(v)}-{f % max(v)}" if v else "n/a"
print(f"summary: {len(ok)}/{runs} OK; wall {rng(1)} s; cpu {rng(2, '%.3f')} s; requests {rng(3, '%d')}; "
      f"create->ACTIVE {rng(4)} s; ACTIVE detection lag <= {rng(5)} s; peak RSS {rss:.1f} MB")
PY
