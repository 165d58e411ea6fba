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
for i in $(seq 1 "$RUNS"); do
  /usr/bin/time -f '%e %U %S' -o "$W/time.$i" "$BIN" -t 300 -vvv --access-token "$W/token" \
    --endpoint "$KEYSTONE_URL" --appdb-image "$IMAGE_APPDB_ID" --cert "$CA_CERT" \
    --argo-host-name bench.fedprobe --output json > "$W/run.$i.json" || true
done
python3 - "$W" "$RUNS" <<'PY'
import json, re, sys
w, runs = sys.argv[1], int(sys.argv[2])
rows = []
for i in range(1, runs + 1):
    wall, user, sys_ = map(float, open(f"{w}/time.{i}").read().split())
    r = json.load(open(f"{w}/run.{i}.json"))
    perf = {p["label"]: p["value"] for p in r["perfdata"]}
    lag = next((float(m.group(1)) for d in r.get("details", [])
                for m in [re.search(r"previous poll ([0-9.]+)s earlier", d)] if m), None)
    rows.append((r["status"], wall, user + sys_, r["http_requests"], perf.get("create"), lag))
    print(f"run {i}: {r['status']} wall {wall:.2f}s cpu {user+sys_:.2f}s requests {r['http_requests']} "
          f"create {perf.get('create')}s lag<={lag}s")
ok = [r for r in rows if r[0] == "OK"]
def rng(k):
    v = [r[k] for r in ok if r[k] is not None]
    return f"{min(v):.2f}-{max(v):.2f}" if v else "n/a"
print(f"summary: {len(ok)}/{runs} OK; wall {rng(1)} s; cpu {rng(2)} s; requests {rng(3)}; "
      f"create->ACTIVE {rng(4)} s; ACTIVE detection lag <= {rng(5)} s")
PY
