#!/bin/bash
# check_object_storage against production's ARGO `swiftprobe` and against
# the floor, on the real Swift of the peers (ci/peers/up.sh must have run).
# Each round runs, in turn: our probe, swiftprobe, the floor (the Swift
# calls our probe makes, sent directly from Python over kept-alive
# connections, login included). Same OIDC access token file, same object
# size (swiftprobe's fixed 27-byte object). Medians and ratios.
#
# swiftprobe is NOT part of this repository: give a checkout of
# github.com/ARGOeu-Metrics/argo-probe-fedcloud in ARGO_FEDCLOUD_SRC (the
# directory holding src/argo_probe_fedcloud/swiftprobe.py). Its Python deps
# (the ones swiftprobe.py and helpers.py import) go into a venv from PyPI
# under $FEDPROBE_BENCH_DIR (default /tmp/fedprobe-bench). From a bare clone
# or mirror of that repository:
#   git -C MIRROR archive --prefix=argo-probe-fedcloud/ HEAD | tar -x -C /tmp/fedprobe-bench
# (measured at its commit 461991b).
#   ARGO_FEDCLOUD_SRC=/path/to/argo-probe-fedcloud ci/bench-object.sh [RUNS]
# FEDPROBE_BENCH_PROFILE=release builds our probe in release (default debug).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${1:-5}
ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}
SRC=${ARGO_FEDCLOUD_SRC:?set ARGO_FEDCLOUD_SRC to a checkout of ARGOeu-Metrics/argo-probe-fedcloud}
[ -f "$SRC/src/argo_probe_fedcloud/swiftprobe.py" ] || { echo "bench-object: no $SRC/src/argo_probe_fedcloud/swiftprobe.py" >&2; exit 1; }
[ -f "$ENV" ] || { echo "bench-object: no $ENV (start ci/peers/up.sh)" >&2; exit 1; }
set -a; . "$ENV"; set +a
PROFILE=${FEDPROBE_BENCH_PROFILE:-debug}
if [ "$PROFILE" = release ]; then
  CARGO_INCREMENTAL=0 cargo build -q --release -p probes --bin check_object_storage
else
  CARGO_INCREMENTAL=0 cargo build -q -p probes --bin check_object_storage
fi
BIN=$ROOT/target/$PROFILE/check_object_storage
B=${FEDPROBE_BENCH_DIR:-/tmp/fedprobe-bench}
VENV=$B/swiftprobe-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import requests, keystoneauth1, keystoneclient' 2>/dev/null; then
  mkdir -p "$B"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "requests==2.32.3" "keystoneauth1==5.8.0" "python-keystoneclient==5.5.0" > "$B/pip.log" 2>&1
fi
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
curl -s -m 10 -u "$OIDC_CLIENT_ID:$(cat "$OIDC_CLIENT_SECRET_FILE")" -d grant_type=client_credentials \
  --cacert "$CA_CERT" "$OIDC_TOKEN_ENDPOINT" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"], end="")' > "$W/token"
python3 - "$W" "$RUNS" "$BIN" "$VENV/bin/python" "$SRC/src" <<'PY'
import http.client, json, os, ssl, statistics, subprocess, sys, time, uuid
from urllib.parse import urlsplit
w, runs, binary, py, src = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
env = os.environ
SIZE = 27  # swiftprobe's object: "This is just an ASCII file\n"
ours = [binary, "-t", "120", "--access-token", f"{w}/token", "--endpoint", env["KEYSTONE_URL"],
        "--identity-provider", env["IDP"], "--cert", env["CA_CERT"], "--size", str(SIZE)]
theirs = [py, "-m", "argo_probe_fedcloud.swiftprobe", "-t", "120", "--access-token", f"{w}/token",
          "--endpoint", env["KEYSTONE_URL"], "--identity-provider", env["IDP"]]
# swiftprobe's Keystone session does not verify TLS; its Swift session
# verifies against requests' bundle: the peers' CA is given there.
theirs_env = dict(env, PYTHONPATH=src, REQUESTS_CA_BUNDLE=env["CA_CERT"])
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
            c.request(method, u.path + (f"?{u.query}" if u.query else ""), body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.headers, r.read()
        except (http.client.HTTPException, OSError):
            conns.pop(key, None)
            if attempt:
                raise
def ok(st, what):
    if not 200 <= st < 300:
        raise SystemExit(f"floor: {what} answered {st}")
def floor():
    """Our probe's calls: federated login, project list, scoped token; PUT
    container, PUT object, GET object, list, DELETE object, HEAD object
    (404), DELETE container, HEAD container (404)."""
    token = open(f"{w}/token").read().strip()
    ks = env["KEYSTONE_URL"].rstrip("/")
    t0 = time.monotonic()
    st, h, _ = call("POST", f"{ks}/OS-FEDERATION/identity_providers/{env['IDP']}/protocols/{env['PROTOCOL']}/auth",
                    headers={"Authorization": f"Bearer {token}"})
    ok(st, "federated login")
    unscoped = h["X-Subject-Token"]
    call("GET", f"{ks}/auth/projects", headers={"X-Auth-Token": unscoped})
    body = json.dumps({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
                                "scope": {"project": {"id": env["OPS_PROJECT_ID"]}}}})
    st, h, data = call("POST", f"{ks}/auth/tokens", body=body, headers={"Content-Type": "application/json"})
    ok(st, "scoped token")
    scoped = h["X-Subject-Token"]
    login = time.monotonic() - t0
    cat = json.loads(data)["token"]["catalog"]
    swift = next(e["url"] for s in cat if s["type"] == "object-store"
                 for e in s["endpoints"] if e["interface"] == "public").rstrip("/")
    hdr = {"X-Auth-Token": scoped}
    c = f"{swift}/fedprobe-floor-{uuid.uuid4().hex[:10]}"
    o = f"{c}/probe.bin"
    data = b"x" * SIZE
    ok(call("PUT", c, headers=hdr)[0], "PUT container")
    ok(call("PUT", o, body=data, headers=hdr)[0], "PUT object")
    st, _, got = call("GET", o, headers=hdr)
    ok(st, "GET object")
    assert got == data
    ok(call("GET", f"{c}?format=json", headers=hdr)[0], "list")
    ok(call("DELETE", o, headers=hdr)[0], "DELETE object")
    assert call("HEAD", o, headers=hdr)[0] == 404
    ok(call("DELETE", c, headers=hdr)[0], "DELETE container")
    assert call("HEAD", c, headers=hdr)[0] == 404
    # The account's containers left by any of the three (ours: fedprobe-,
    # swiftprobe's: container-), for the leftover count printed at the end.
    st, _, data = call("GET", f"{swift}?format=json", headers=hdr)
    left = [x["name"] for x in json.loads(data or b"[]") if x["name"].startswith(("fedprobe-", "container-"))]
    return time.monotonic() - t0, login, left
def timed(cmd, e=None):
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, env=e)
    return time.monotonic() - t0, out
res = {"check_object_storage": [], "swiftprobe": [], "floor": []}
logins = {"check_object_storage": [], "floor": []}
left = []
for i in range(runs):
    wall, out = timed(ours)
    first = (out.stdout.splitlines() or ["(no output)"])[0][:160]
    print(f"round {i+1}: check_object_storage {wall:.3f}s {first}", flush=True)
    if out.returncode == 0:
        res["check_object_storage"].append(wall)
        auth = [p for p in out.stdout.split("|", 1)[-1].split() if p.startswith("auth=")]
        if auth:
            logins["check_object_storage"].append(float(auth[0][5:].split("s")[0]))
    wall, out = timed(theirs, theirs_env)
    first = (out.stdout.splitlines() or [out.stderr.strip()[-160:]])[0][:160]
    print(f"round {i+1}: swiftprobe {wall:.3f}s {first}", flush=True)
    if out.returncode == 0:
        res["swiftprobe"].append(wall)
    conns.clear()
    f, login, left = floor()
    res["floor"].append(f)
    logins["floor"].append(login)
    print(f"round {i+1}: floor {f:.3f}s (login {login:.3f}s)", flush=True)
med = {k: statistics.median(v) for k, v in res.items() if v}
for k, v in res.items():
    m = f"{med[k]:.3f}s" if k in med else "n/a"
    print(f"median {k}: {m} ({len(v)}/{runs} OK)")
for k, v in logins.items():
    if v:
        print(f"median login of {k}: {statistics.median(v):.3f}s")
print(f"containers left in the account after the last round: {len(left)} {left[:5]}")
if "check_object_storage" in med:
    print(f"ratio check_object_storage/floor {med['check_object_storage'] / med['floor']:.2f}")
    if "swiftprobe" in med:
        print(f"ratio swiftprobe/floor {med['swiftprobe'] / med['floor']:.2f}, "
              f"check_object_storage/swiftprobe {med['check_object_storage'] / med['swiftprobe']:.2f}")
PY
