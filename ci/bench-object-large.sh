#!/bin/bash
# check_object_storage against the real Swift of ci/peers/up.sh at large sizes,
# side by side with the floor: the same PUT and GET made with curl through the
# same https front (zeros from /dev/zero, Content-Length set), in the same run.
# Prints size, wall, MB/s up and down, peak RSS.
#   ci/bench-object-large.sh [SIZE...]        (default: 1G; at most 5G, Swift's object limit)
# Swift stores on the peers' disk: a size is skipped unless it has room for it plus 4 GiB.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SIZES=("${@:-1G}")
ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}
[ -f "$ENV" ] || { echo "bench-object-large: no $ENV (start ci/peers/up.sh)" >&2; exit 1; }
set -a; . "$ENV"; set +a
cargo build --release -q -p probes --bin check_object_storage
BIN=$ROOT/target/release/check_object_storage
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
curl -s -m 10 -u "$OIDC_CLIENT_ID:$(cat "$OIDC_CLIENT_SECRET_FILE")" -d grant_type=client_credentials \
  --cacert "$CA_CERT" "$OIDC_TOKEN_ENDPOINT" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"], end="")' > "$W/token"
# The floor's token: the ops project's password user, straight from Keystone (never printed);
# the probe's federated login lands in the same project, so both use one Swift account.
python3 - "$W/keystone-token" <<'PY'
import json, os, sys, urllib.request
pw = open(os.environ["PASSWORD_FILE"]).read().strip()
body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": os.environ["PASSWORD_USER"], "domain": {"name": os.environ["USER_DOMAIN_NAME"]},
    "password": pw}}}, "scope": {"project": {"id": os.environ["OPS_PROJECT_ID"]}}}}
req = urllib.request.Request(os.environ["KEYSTONE_DIRECT_URL"] + "/auth/tokens",
    data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=30) as r:
    open(sys.argv[1], "w").write(r.headers["X-Subject-Token"])
PY
ACCOUNT="$SWIFT_URL/AUTH_$OPS_PROJECT_ID"

bytes_of() { python3 -c 'import sys; u={"":1,"K":1<<10,"M":1<<20,"G":1<<30}; s=sys.argv[1].upper().rstrip("IB"); print(int(s.rstrip("KMG"))*u[s[len(s.rstrip("KMG")):]])' "$1"; }
free_bytes() { df -B1 --output=avail "$SWIFT_DEVICES_DIR" | tail -1; }

echo "| size | what | wall | upload | download | peak RSS | result |"
echo "|---|---|---|---|---|---|---|"
for SIZE in "${SIZES[@]}"; do
  N=$(bytes_of "$SIZE")
  if [ "$(free_bytes)" -lt $((N + (4 << 30))) ]; then
    echo "bench-object-large: skip $SIZE: $(( $(free_bytes) >> 30 )) GiB free in $SWIFT_DEVICES_DIR" >&2
    continue
  fi
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$W/rss" "$BIN" -t 3h --access-token "$W/token" --endpoint "$KEYSTONE_URL" \
    --cert "$CA_CERT" --identity-provider "$IDP" --size "$SIZE" > "$W/out" || true
  t1=$(date +%s.%N)
  python3 - "$W/out" "$(tail -1 "$W/rss")" "$t0" "$t1" "$SIZE" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
perf = dict(re.findall(r"(\w+)=([0-9.]+)", out.split("|", 1)[1] if "|" in out else ""))
print(f"| {sys.argv[5]} | check_object_storage | {float(sys.argv[4]) - float(sys.argv[3]):.1f} s "
      f"| {perf.get('put_rate', '-')} MB/s | {perf.get('get_rate', '-')} MB/s "
      f"| {int(sys.argv[2]) / 1024:.1f} MB | {out.split(' - ')[0]} |")
PY
  TOKEN=$(cat "$W/keystone-token")
  C="fedprobe-bench-floor-$$"
  t0=$(date +%s.%N)
  curl -s -m 30 --cacert "$CA_CERT" -H "X-Auth-Token: $TOKEN" -X PUT -o /dev/null "$ACCOUNT/$C"
  u0=$(date +%s.%N)
  head -c "$N" /dev/zero | curl -s -m 10800 --cacert "$CA_CERT" -H "X-Auth-Token: $TOKEN" \
    -H 'Content-Type: application/octet-stream' -H "Content-Length: $N" -T - -o /dev/null \
    -w '%{http_code}\n' "$ACCOUNT/$C/object" > "$W/put"
  u1=$(date +%s.%N)
  got=$(curl -s -m 10800 --cacert "$CA_CERT" -H "X-Auth-Token: $TOKEN" -o /dev/null -w '%{size_download}' \
    "$ACCOUNT/$C/object")
  d1=$(date +%s.%N)
  curl -s -m 60 --cacert "$CA_CERT" -H "X-Auth-Token: $TOKEN" -X DELETE -o /dev/null "$ACCOUNT/$C/object"
  curl -s -m 60 --cacert "$CA_CERT" -H "X-Auth-Token: $TOKEN" -X DELETE -o /dev/null "$ACCOUNT/$C"
  t1=$(date +%s.%N)
  python3 - "$N" "$t0" "$u0" "$u1" "$d1" "$t1" "$got" "$(cat "$W/put")" "$SIZE" <<'PY'
import sys
n, t0, u0, u1, d1, t1 = int(sys.argv[1]), *map(float, sys.argv[2:7])
got, put, size = int(sys.argv[7]), sys.argv[8], sys.argv[9]
ok = "OK" if put == "201" and got == n else f"PUT {put}, got {got} bytes"
print(f"| {size} | curl floor | {t1 - t0:.1f} s | {n / 1e6 / (u1 - u0):.2f} MB/s | {n / 1e6 / (d1 - u1):.2f} MB/s | - | {ok} |")
PY
done
echo "bench-object-large: $(nproc) cores, $(date -u +%F); MB = 10^6 bytes" >&2
