#!/bin/bash
# check_vm_lifecycle against the real peers (ci/peers/up.sh must have run):
# wall and CPU time, HTTP requests, and the lag between the server turning
# ACTIVE and the probe noticing, over N runs of the release binary, each
# round followed by the floor (the same calls made directly), medians compared.
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
# Interleaved rounds: the probe, then the floor (the same API calls made
# directly: federated login, scoped token, create with known ids, poll every
# 50 ms, delete, poll until gone, over kept-alive connections), so both see
# the same machine load. Medians of the rounds, and their ratio.
import http.client, json, os, re, resource, ssl, statistics, subprocess, sys, time
from urllib.parse import urlsplit
w, runs, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
env = os.environ
args = [binary, "-t", "300", "-vvv", "--access-token", f"{w}/token", "--endpoint", env["KEYSTONE_URL"],
        "--appdb-image", env["IMAGE_APPDB_ID"], "--cert", env["CA_CERT"],
        "--argo-host-name", "bench.fedprobe", "--output", "json"]
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
            data = r.read()
            return r.status, r.headers, data
        except (http.client.HTTPException, OSError):
            conns.pop(key, None)
            if attempt:
                raise
def floor(ids):
    token = open(f"{w}/token").read().strip()
    ks = env["KEYSTONE_URL"].rstrip("/")
    t0 = time.monotonic()
    st, h, _ = call("POST", f"{ks}/OS-FEDERATION/identity_providers/{env['IDP']}/protocols/{env['PROTOCOL']}/auth",
                    headers={"Authorization": f"Bearer {token}"})
    unscoped = h["X-Subject-Token"]
    call("GET", f"{ks}/auth/projects", headers={"X-Auth-Token": unscoped})
    st, h, data = call("POST", f"{ks}/auth/tokens", body={"auth": {"identity": {"methods": ["token"],
        "token": {"id": unscoped}}, "scope": {"project": {"id": env["OPS_PROJECT_ID"]}}}},
        headers={"Content-Type": "application/json"})
    scoped = h["X-Subject-Token"]
    cat = json.loads(data)["token"]["catalog"]
    nova = next(e["url"] for s in cat if s["type"] == "compute" for e in s["endpoints"] if e["interface"] == "public")
    hdr = {"X-Auth-Token": scoped, "Content-Type": "application/json",
           "OpenStack-API-Version": "compute 2.37", "X-OpenStack-Nova-API-Version": "2.37"}
    server = {"name": "fedprobe-floor", "imageRef": ids["image"], "flavorRef": ids["flavor"],
              "networks": [{"uuid": ids["network"]}] if ids.get("network") else "none"}
    st, _, data = call("POST", f"{nova}/servers", body={"server": server}, headers=hdr)
    sid = json.loads(data)["server"]["id"]
    for _ in range(6000):
        st, _, data = call("GET", f"{nova}/servers/{sid}", headers=hdr)
        if json.loads(data)["server"]["status"] == "ACTIVE":
            break
        time.sleep(0.05)
    call("DELETE", f"{nova}/servers/{sid}", headers=hdr)
    for _ in range(6000):
        st, _, _ = call("GET", f"{nova}/servers/{sid}", headers=hdr)
        if st == 404:
            break
        time.sleep(0.05)
    return time.monotonic() - t0
def ids_of(r):
    found = {}
    for s in r["steps"]:
        m = re.match(r"(\S+) \(", s["message"])
        if s["check"] == "VM-02" and m: found["image"] = m.group(1)
        m = re.match(r"\S+ \(([^)]+)\)", s["message"])
        if s["check"] == "VM-03" and m: found["flavor"] = m.group(1)
        if s["check"] == "VM-04" and m: found["network"] = m.group(1)
    return found
rows, floors = [], []
peak_kb = 0
for i in range(1, runs + 1):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    # The probe's own peak RSS from GNU time: the children's ru_maxrss of this
    # process would count Python's own pages (Linux keeps the pre-exec high
    # water mark of a forked child).
    out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f"{w}/rss"] + args,
                         capture_output=True, text=True).stdout
    wall = time.monotonic() - t0
    peak_kb = max(peak_kb, int(open(f"{w}/rss").read().split()[-1]))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r = json.loads(out)
    perf = {p["label"]: p["value"] for p in r["perfdata"]}
    lag = next((float(m.group(1)) for d in r.get("details", [])
                for m in [re.search(r"previous poll ([0-9.]+)s earlier", d)] if m), None)
    rows.append((r["status"], wall, cpu, r["http_requests"], perf.get("create"), lag))
    fl = floor(ids_of(r)) if r["status"] == "OK" else None
    floors.append(fl)
    print(f"round {i}: probe {r['status']} wall {wall:.2f}s cpu {cpu:.3f}s requests {r['http_requests']} "
          f"create {perf.get('create')}s lag<={lag}s | floor {fl if fl is None else round(fl, 2)}s")
rss = peak_kb / 1024
ok = [r for r in rows if r[0] == "OK"]
def rng(k, f="%.2f"):
    v = [r[k] for r in ok if r[k] is not None]
    return f"{f % min(v)}-{f % max(v)}" if v else "n/a"
print(f"summary: {len(ok)}/{runs} OK; wall {rng(1)} s; cpu {rng(2, '%.3f')} s; requests {rng(3, '%d')}; "
      f"create->ACTIVE {rng(4)} s; ACTIVE detection lag <= {rng(5)} s; peak RSS {rss:.1f} MB")
walls = [r[1] for r in rows if r[0] == "OK"]
fl = [f for f in floors if f is not None]
if walls and fl:
    pm, fm = statistics.median(walls), statistics.median(fl)
    print(f"median: probe {pm:.2f} s, floor {fm:.2f} s, ratio {pm / fm:.2f}x (target 1.2x)")
PY
