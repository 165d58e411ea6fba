#!/bin/bash
# check_block_storage against the real peers (ci/peers/up.sh must have run):
# wall time of the probe (debug build) against the floor, the same calls
# made directly in a tight loop (login, limits, volume create and poll,
# server create and poll, attach and poll, the server's attachments, detach
# and poll, volume delete and poll, server delete and poll; every poll 50 ms,
# kept-alive connections). Rounds interleaved, medians and their ratio.
#   ci/bench-block.sh [RUNS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${1:-3}
ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}
[ -f "$ENV" ] || { echo "bench-block: no $ENV (start ci/peers/up.sh)" >&2; exit 1; }
set -a; . "$ENV"; set +a
CARGO_INCREMENTAL=0 cargo build -q -p probes --bin check_block_storage
BIN=$ROOT/target/debug/check_block_storage
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
curl -s -m 10 -u "$OIDC_CLIENT_ID:$(cat "$OIDC_CLIENT_SECRET_FILE")" -d grant_type=client_credentials \
  --cacert "$CA_CERT" "$OIDC_TOKEN_ENDPOINT" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"], end="")' > "$W/token"
python3 - "$W" "$RUNS" "$BIN" <<'PY'
import http.client, json, os, ssl, statistics, subprocess, sys, time
from urllib.parse import urlsplit
w, runs, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
env = os.environ
args = [binary, "-t", "300", "--access-token", f"{w}/token", "--endpoint", env["KEYSTONE_URL"],
        "--appdb-image", env["IMAGE_APPDB_ID"], "--cert", env["CA_CERT"],
        "--argo-host-name", "bench-block.fedprobe"]
tls = ssl.create_default_context(cafile=env["CA_CERT"])
conns = {}
def call(method, url, body=None, headers=None):
    u = urlsplit(url)
    key = (u.scheme, u.netloc)
    for attempt in (0, 1):
        c = conns.get(key)
        if c is None:
            c = (http.client.HTTPSConnection(u.netloc, context=tls, timeout=60) if u.scheme == "https"
                 else http.client.HTTPConnection(u.netloc, timeout=60))
            conns[key] = c
        try:
            c.request(method, u.path + (f"?{u.query}" if u.query else ""),
                      body=json.dumps(body) if body is not None else None, headers=headers or {})
            r = c.getresponse()
            return r.status, r.headers, r.read()
        except (http.client.HTTPException, OSError):
            conns.pop(key, None)
            if attempt:
                raise
def until(what, f):
    for _ in range(6000):
        if f():
            return
        time.sleep(0.05)
    raise SystemExit(f"floor: {what} never happened")
def floor():
    token = open(f"{w}/token").read().strip()
    ks = env["KEYSTONE_URL"].rstrip("/")
    t0 = time.monotonic()
    _, h, _ = call("POST", f"{ks}/OS-FEDERATION/identity_providers/{env['IDP']}/protocols/{env['PROTOCOL']}/auth",
                   headers={"Authorization": f"Bearer {token}"})
    unscoped = h["X-Subject-Token"]
    call("GET", f"{ks}/auth/projects", headers={"X-Auth-Token": unscoped})
    _, h, data = call("POST", f"{ks}/auth/tokens", body={"auth": {"identity": {"methods": ["token"],
        "token": {"id": unscoped}}, "scope": {"project": {"id": env["OPS_PROJECT_ID"]}}}},
        headers={"Content-Type": "application/json"})
    scoped = h["X-Subject-Token"]
    cat = json.loads(data)["token"]["catalog"]
    url = lambda t: next(e["url"] for s in cat if s["type"] == t for e in s["endpoints"] if e["interface"] == "public")
    nova, cinder, neutron = url("compute"), url("volumev3"), url("network").rstrip("/")
    hdr = {"X-Auth-Token": scoped, "Content-Type": "application/json",
           "OpenStack-API-Version": "compute 2.37", "X-OpenStack-Nova-API-Version": "2.37"}
    vhdr = {"X-Auth-Token": scoped, "Content-Type": "application/json", "OpenStack-API-Version": "volume 3.12"}
    call("GET", f"{cinder}/limits", headers=vhdr)
    _, _, data = call("POST", f"{cinder}/volumes", body={"volume": {"name": "fedprobe-floor", "size": 1}}, headers=vhdr)
    vid = json.loads(data)["volume"]["id"]
    vstatus = lambda: json.loads(call("GET", f"{cinder}/volumes/{vid}", headers=vhdr)[2])["volume"]["status"]
    until("available", lambda: vstatus() == "available")
    _, _, data = call("GET", f"{neutron}/v2.0/networks", headers=hdr)
    net = next((n["id"] for n in json.loads(data)["networks"]
                if n.get("project_id") == env["OPS_PROJECT_ID"] and n["status"] == "ACTIVE"), None)
    server = {"name": "fedprobe-floor", "imageRef": env["IMAGE_ID"], "flavorRef": env["FLAVOR_ID"],
              "networks": [{"uuid": net}] if net else "none"}
    _, _, data = call("POST", f"{nova}/servers", body={"server": server}, headers=hdr)
    sid = json.loads(data)["server"]["id"]
    until("ACTIVE", lambda: json.loads(call("GET", f"{nova}/servers/{sid}", headers=hdr)[2])["server"]["status"] == "ACTIVE")
    call("POST", f"{nova}/servers/{sid}/os-volume_attachments", body={"volumeAttachment": {"volumeId": vid}}, headers=hdr)
    until("in-use", lambda: vstatus() == "in-use")
    call("GET", f"{nova}/servers/{sid}/os-volume_attachments", headers=hdr)
    call("DELETE", f"{nova}/servers/{sid}/os-volume_attachments/{vid}", headers=hdr)
    until("available again", lambda: vstatus() == "available")
    call("DELETE", f"{cinder}/volumes/{vid}", headers=vhdr)
    until("volume gone", lambda: call("GET", f"{cinder}/volumes/{vid}", headers=vhdr)[0] == 404)
    call("DELETE", f"{nova}/servers/{sid}", headers=hdr)
    until("server gone", lambda: call("GET", f"{nova}/servers/{sid}", headers=hdr)[0] == 404)
    return time.monotonic() - t0
probe, base = [], []
for i in range(runs):
    t0 = time.monotonic()
    out = subprocess.run(args, capture_output=True, text=True)
    wall = time.monotonic() - t0
    ok = out.returncode == 0
    print(f"round {i+1}: probe {wall:.2f}s ({'OK' if ok else out.stdout.splitlines()[0][:200]})", flush=True)
    if ok:
        probe.append(wall)
    conns.clear()
    f = floor()
    base.append(f)
    print(f"round {i+1}: floor {f:.2f}s", flush=True)
if probe:
    mp, mf = statistics.median(probe), statistics.median(base)
    print(f"median probe {mp:.2f}s, floor {mf:.2f}s, ratio {mp / mf:.2f} ({len(probe)}/{runs} probe runs OK)")
PY
