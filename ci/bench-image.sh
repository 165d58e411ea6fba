#!/bin/bash
# check_image_upload against the real Glance of ci/peers/up.sh at large sizes,
# side by side with the floor: the same upload and download made with curl
# (create the record, PUT the bytes, GET them to /dev/null, delete) in the
# same run. Prints size, wall, MB/s up and down, peak RSS.
#   ci/bench-image.sh [SIZE...]        (default: 10G)
# Glance stores on the peers' disk: a size is skipped unless the store has
# room for it plus 4 GiB.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SIZES=("${@:-10G}")
ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}
[ -f "$ENV" ] || { echo "bench-image: no $ENV (start ci/peers/up.sh)" >&2; exit 1; }
set -a; . "$ENV"; set +a
STORE=${GLANCE_STORE:-$FEDPROBE_PEERS_DIR/glance/images}
cargo build --release -q -p probes
BIN=$ROOT/target/release/check_image_upload
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
curl -s -m 10 -u "$OIDC_CLIENT_ID:$(cat "$OIDC_CLIENT_SECRET_FILE")" -d grant_type=client_credentials \
  --cacert "$CA_CERT" "$OIDC_TOKEN_ENDPOINT" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"], end="")' > "$W/token"
# The floor's token: the admin's, straight from Keystone (never printed).
python3 - "$W/keystone-token" <<'PY'
import json, os, sys, urllib.request
pw = open(os.environ["ADMIN_PASSWORD_FILE"]).read().strip()
body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": os.environ["ADMIN_USER"], "domain": {"name": "Default"}, "password": pw}}},
    "scope": {"project": {"name": os.environ["ADMIN_PROJECT_NAME"], "domain": {"name": "Default"}}}}}
req = urllib.request.Request(os.environ["KEYSTONE_DIRECT_URL"] + "/auth/tokens",
    data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=30) as r:
    open(sys.argv[1], "w").write(r.headers["X-Subject-Token"])
PY

bytes_of() { python3 -c 'import sys; u={"":1,"K":1<<10,"M":1<<20,"G":1<<30,"T":1<<40}; s=sys.argv[1].upper().rstrip("IB"); print(int(s.rstrip("KMGT"))*u[s[len(s.rstrip("KMGT")):]])' "$1"; }
free_bytes() { df -B1 --output=avail "$STORE" | tail -1; }

echo "| size | what | wall | upload | download | peak RSS | result |"
echo "|---|---|---|---|---|---|---|"
for SIZE in "${SIZES[@]}"; do
  N=$(bytes_of "$SIZE")
  if [ "$(free_bytes)" -lt $((N + (4 << 30))) ]; then
    echo "bench-image: skip $SIZE: $(( $(free_bytes) >> 30 )) GiB free in $STORE" >&2
    continue
  fi
  # The probe, release build, its own peak RSS from GNU time.
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$W/rss" "$BIN" -t 3h --access-token "$W/token" --endpoint "$KEYSTONE_URL" \
    --region "$REGION" --ca-cert "$CA_CERT" --size "$SIZE" > "$W/out" || true
  t1=$(date +%s.%N)
  python3 - "$W/out" "$(tail -1 "$W/rss")" "$t0" "$t1" "$SIZE" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
perf = dict(re.findall(r"(\w+)=([0-9.]+)", out.split("|", 1)[1] if "|" in out else ""))
print(f"| {sys.argv[5]} | check_image_upload | {float(sys.argv[4]) - float(sys.argv[3]):.1f} s "
      f"| {perf.get('upload_rate', '-')} MB/s | {perf.get('download_rate', '-')} MB/s "
      f"| {int(sys.argv[2]) / 1024:.1f} MB | {out.split(' - ')[0]} |")
PY
  # The floor: the same bytes' worth with curl (zeros from /dev/zero, Content-Length set).
  TOKEN=$(cat "$W/keystone-token")
  t0=$(date +%s.%N)
  ID=$(curl -s -m 30 --cacert "$CA_CERT" -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"fedprobe-bench-floor","disk_format":"raw","container_format":"bare","visibility":"private"}' \
    "$GLANCE_URL/v2/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  u0=$(date +%s.%N)
  head -c "$N" /dev/zero | curl -s -m 10800 --cacert "$CA_CERT" -H "X-Auth-Token: $TOKEN" \
    -H 'Content-Type: application/octet-stream' -H "Content-Length: $N" -T - -o /dev/null \
    -w '%{http_code}\n' "$GLANCE_URL/v2/images/$ID/file" > "$W/put"
  u1=$(date +%s.%N)
  for _ in $(seq 600); do
    st=$(curl -s -m 10 --cacert "$CA_CERT" -H "X-Auth-Token: $TOKEN" "$GLANCE_URL/v2/images/$ID" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [ "$st" = active ] && break; sleep 0.2
  done
  d0=$(date +%s.%N)
  got=$(curl -s -m 10800 --cacert "$CA_CERT" -H "X-Auth-Token: $TOKEN" -o /dev/null -w '%{size_download}' \
    "$GLANCE_URL/v2/images/$ID/file")
  d1=$(date +%s.%N)
  curl -s -m 60 --cacert "$CA_CERT" -H "X-Auth-Token: $TOKEN" -X DELETE "$GLANCE_URL/v2/images/$ID" -o /dev/null
  t1=$(date +%s.%N)
  python3 - "$N" "$t0" "$u0" "$u1" "$d0" "$d1" "$t1" "$got" "$(cat "$W/put")" "$SIZE" <<'PY'
import sys
n, t0, u0, u1, d0, d1, t1 = int(sys.argv[1]), *map(float, sys.argv[2:8])
got, put, size = int(sys.argv[8]), sys.argv[9], sys.argv[10]
ok = "OK" if put in ("204", "201") and got == n else f"PUT {put}, got {got} bytes"
print(f"| {size} | curl floor | {t1 - t0:.1f} s | {n / 1e6 / (u1 - u0):.2f} MB/s | {n / 1e6 / (d1 - d0):.2f} MB/s | - | {ok} |")
PY
done
echo "bench-image: $(nproc) cores, $(date -u +%F); MB = 10^6 bytes" >&2
