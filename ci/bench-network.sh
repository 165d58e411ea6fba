#!/bin/bash
# check_network against the real peers (ci/peers/up.sh must have run): wall
# time of the probe (debug build unless FEDPROBE_BENCH_PROFILE=release)
# against the floor, the same Keystone, Neutron, Glance and Nova calls made
# directly from Python over kept-alive connections (taken from a `-vvv` run
# of the probe): federated login, project list, scoped token; the compute
# version; Neutron quota details, networks, subnets, routers, router ports;
# security group, two ingress rules, the group read back; image, flavors;
# server in the group on the project network, polled until ACTIVE; its port;
# floating IP allocated, associated, read back, listed by port,
# disassociated, read back, released, polled until 404; server deleted and
# polled until 404; group deleted and read until 404. Every poll 50 ms.
# Rounds interleaved, medians and their ratio.
#   ci/bench-network.sh [RUNS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${1:-3}
ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}
[ -f "$ENV" ] || { echo "bench-network: no $ENV (start ci/peers/up.sh)" >&2; exit 1; }
set -a; . "$ENV"; set +a
PROFILE=${FEDPROBE_BENCH_PROFILE:-debug}
if [ "$PROFILE" = release ]; then
  CARGO_INCREMENTAL=0 cargo build -q --release -p probes --bin check_network
else
  CARGO_INCREMENTAL=0 cargo build -q -p probes --bin check_network
fi
BIN=$ROOT/target/$PROFILE/check_network
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
curl -s -m 10 -u "$OIDC_CLIENT_ID:$(cat "$OIDC_CLIENT_SECRET_FILE")" -d grant_type=client_credentials \
  --cacert "$CA_CERT" "$OIDC_TOKEN_ENDPOINT" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"], end="")' > "$W/token"
python3 - "$W" "$RUNS" "$BIN" <<'PY'
import http.client, json, os, ssl, statistics, subprocess, sys, time, uuid
from urllib.parse import urlsplit, urlencode
w, runs, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
env = os.environ
args = [binary, "-t", "240", "--access-token", f"{w}/token", "--endpoint", env["KEYSTONE_URL"],
        "--identity-provider", env["IDP"], "--image", env["IMAGE_ID"], "--cert", env["CA_CERT"]]
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
            return r.status, r.headers, (json.loads(data) if data and r.headers.get("Content-Type", "").startswith("application/json") else None)
        except (http.client.HTTPException, OSError):
            conns.pop(key, None)
            if attempt:
                raise
def ok(r, what):
    if not 200 <= r[0] < 300:
        raise SystemExit(f"floor: {what} answered {r[0]}: {r[2]}")
    return r[2]
def until(what, f):
    for _ in range(6000):
        if f():
            return
        time.sleep(0.05)
    raise SystemExit(f"floor: {what} never happened")
made = []  # (url, headers) of what the floor created, removed if it fails midway
def floor():
    try:
        return floor_run()
    except BaseException:
        for u, h in reversed(made):
            try:
                call("DELETE", u, headers=h)
                until(f"{u} gone", lambda: call("GET", u, headers=h)[0] == 404)
            except BaseException as e:
                print(f"floor cleanup: {u}: {e}", file=sys.stderr)
        raise
    finally:
        made.clear()
def floor_run():
    token = open(f"{w}/token").read().strip()
    ks = env["KEYSTONE_URL"].rstrip("/")
    project = env["OPS_PROJECT_ID"]
    t0 = time.monotonic()
    r = call("POST", f"{ks}/OS-FEDERATION/identity_providers/{env['IDP']}/protocols/{env['PROTOCOL']}/auth",
             headers={"Authorization": f"Bearer {token}"})
    ok(r, "federated login")
    unscoped = r[1]["X-Subject-Token"]
    call("GET", f"{ks}/auth/projects", headers={"X-Auth-Token": unscoped})
    r = call("POST", f"{ks}/auth/tokens", body={"auth": {"identity": {"methods": ["token"],
        "token": {"id": unscoped}}, "scope": {"project": {"id": project}}}},
        headers={"Content-Type": "application/json"})
    scoped = r[1]["X-Subject-Token"]
    cat = r[2]["token"]["catalog"]
    url = lambda t: next(e["url"] for s in cat if s["type"] == t for e in s["endpoints"] if e["interface"] == "public").rstrip("/")
    nova, glance, neutron = url("compute"), url("image"), url("network") + "/v2.0"
    hdr = {"X-Auth-Token": scoped, "Content-Type": "application/json",
           "OpenStack-API-Version": "compute 2.37", "X-OpenStack-Nova-API-Version": "2.37"}
    q = lambda path, **kw: f"{neutron}/{path}" + (f"?{urlencode(kw)}" if kw else "")
    call("GET", nova, headers=hdr)
    ok(call("GET", q(f"quotas/{project}/details"), headers=hdr), "quota details")
    nets = ok(call("GET", q("networks"), headers=hdr), "networks")["networks"]
    net = next(n for n in nets if n.get("project_id") == project and not n.get("router:external"))
    ext = next(n for n in nets if n.get("router:external"))
    ok(call("GET", q("subnets", network_id=net["id"]), headers=hdr), "subnets")
    ok(call("GET", q("routers"), headers=hdr), "routers")
    ok(call("GET", q("ports", network_id=net["id"]), headers=hdr), "ports")
    name = f"fedprobe-floor-{uuid.uuid4().hex[:10]}"
    sg = ok(call("POST", q("security-groups"), body={"security_group": {"name": name, "description": "floor"}},
                 headers=hdr), "security group")["security_group"]["id"]
    made.append((q(f"security-groups/{sg}"), hdr))
    for rule in ({"protocol": "tcp", "port_range_min": 22, "port_range_max": 22}, {"protocol": "icmp"}):
        ok(call("POST", q("security-group-rules"), body={"security_group_rule": dict(rule,
            security_group_id=sg, direction="ingress", ethertype="IPv4")}, headers=hdr), "rule")
    ok(call("GET", q(f"security-groups/{sg}"), headers=hdr), "group read back")
    ok(call("GET", f"{glance}/v2/images/{env['IMAGE_ID']}", headers=hdr), "image")
    ok(call("GET", f"{nova}/flavors/detail", headers=hdr), "flavors")
    server = {"name": name, "imageRef": env["IMAGE_ID"], "flavorRef": env["FLAVOR_ID"],
              "networks": [{"uuid": net["id"]}], "security_groups": [{"name": name}]}
    sid = ok(call("POST", f"{nova}/servers", body={"server": server}, headers=hdr), "server")["server"]["id"]
    made.append((f"{nova}/servers/{sid}", hdr))
    until("ACTIVE", lambda: call("GET", f"{nova}/servers/{sid}", headers=hdr)[2]["server"]["status"] == "ACTIVE")
    port = ok(call("GET", q("ports", device_id=sid), headers=hdr), "server port")["ports"][0]["id"]
    fip = ok(call("POST", q("floatingips"), body={"floatingip": {"floating_network_id": ext["id"],
              "description": name}}, headers=hdr), "allocate")["floatingip"]["id"]
    made.append((q(f"floatingips/{fip}"), hdr))
    ok(call("PUT", q(f"floatingips/{fip}"), body={"floatingip": {"port_id": port}}, headers=hdr), "associate")
    until("on the port", lambda: call("GET", q(f"floatingips/{fip}"), headers=hdr)[2]["floatingip"]["port_id"] == port)
    ok(call("GET", q("floatingips", port_id=port), headers=hdr), "by port")
    ok(call("PUT", q(f"floatingips/{fip}"), body={"floatingip": {"port_id": None}}, headers=hdr), "disassociate")
    until("off the port", lambda: call("GET", q(f"floatingips/{fip}"), headers=hdr)[2]["floatingip"]["port_id"] is None)
    ok(call("DELETE", q(f"floatingips/{fip}"), headers=hdr), "release")
    until("fip gone", lambda: call("GET", q(f"floatingips/{fip}"), headers=hdr)[0] == 404)
    ok(call("DELETE", f"{nova}/servers/{sid}", headers=hdr), "server delete")
    until("server gone", lambda: call("GET", f"{nova}/servers/{sid}", headers=hdr)[0] == 404)
    ok(call("DELETE", q(f"security-groups/{sg}"), headers=hdr), "group delete")
    until("group gone", lambda: call("GET", q(f"security-groups/{sg}"), headers=hdr)[0] == 404)
    return time.monotonic() - t0
probe, base = [], []
for i in range(runs):
    t0 = time.monotonic()
    out = subprocess.run(args, capture_output=True, text=True)
    wall = time.monotonic() - t0
    good = out.returncode == 0
    perf = out.stdout.split("|", 1)[-1].split("\n")[0].strip() if good else ""
    print(f"round {i+1}: probe {wall:.2f}s ({'OK' if good else out.stdout.splitlines()[0][:200]}) {perf}", flush=True)
    if good:
        probe.append(wall)
    conns.clear()
    f = floor()
    base.append(f)
    print(f"round {i+1}: floor {f:.2f}s", flush=True)
if probe:
    mp, mf = statistics.median(probe), statistics.median(base)
    print(f"median probe {mp:.2f}s, floor {mf:.2f}s, ratio {mp / mf:.2f} ({len(probe)}/{runs} probe runs OK)")
PY
