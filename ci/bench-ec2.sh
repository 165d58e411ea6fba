#!/bin/bash
# check_vm_lifecycle on moto (ci/peers/moto.sh) against the floor of the same EC2 calls:
# the probe's sequence (DescribeAvailabilityZones x2, DescribeImages, DescribeInstanceTypes,
# DescribeInstances by tag, RunInstances, DescribeInstances until running, TerminateInstances,
# DescribeInstances until terminated) sent by a bare Python http.client on one kept-alive
# connection, unsigned (moto checks no signature), timed without interpreter start-up.
# Alternating probe/floor runs in one go; medians of RUNS each.
#   ci/bench-ec2.sh [RUNS]      FEDPROBE_BENCH_PROFILE=debug to time the debug build
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${1:-5}
PROFILE=${FEDPROBE_BENCH_PROFILE:-release}
ENV=${FEDPROBE_MOTO_ENV:-/tmp/fedprobe-peers/moto.env}
[ -f "$ENV" ] || { echo "bench-ec2: no $ENV (start ci/peers/moto.sh start)" >&2; exit 1; }
set -a; . "$ENV"; set +a
if [ "$PROFILE" = release ]; then cargo build --release -q -p probes --bin check_vm_lifecycle
else cargo build -q -p probes --bin check_vm_lifecycle; fi
BIN=$ROOT/target/$PROFILE/check_vm_lifecycle
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
printf AKIDFEDPROBEBENCH > "$W/ak"; printf bench-secret > "$W/sk"
"$MOTO_VENV/bin/python" - "$W" "$RUNS" "$BIN" "$MOTO_URL" <<'PY'
import http.client, json, statistics, subprocess, sys, time, urllib.parse
w, runs, binary, url = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
host = urllib.parse.urlparse(url).netloc
AUTH = "AWS4-HMAC-SHA256 Credential=AKIDFEDPROBEBENCH/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0"

def floor(conn, n):
    def call(action, **p):
        body = urllib.parse.urlencode({"Action": action, "Version": "2016-11-15", **p})
        conn.request("POST", "/", body, {"Content-Type": "application/x-www-form-urlencoded",
                                         "Authorization": AUTH})
        r = conn.getresponse(); data = r.read().decode()
        assert r.status == 200, (action, r.status, data[:200])
        return data
    t0 = time.monotonic()
    call("DescribeAvailabilityZones"); call("DescribeAvailabilityZones")
    call("DescribeImages", **{"ImageId.1": "ami-760aaa0f"})
    call("DescribeInstanceTypes", **{"InstanceType.1": "t3.micro"})
    call("DescribeInstances", **{"Filter.1.Name": "tag-key", "Filter.1.Value.1": "argo-mon-host"})
    t_create = time.monotonic()
    run = call("RunInstances", ImageId="ami-760aaa0f", InstanceType="t3.micro", MinCount="1",
               MaxCount="1", ClientToken=f"floor-{n}-{time.time()}",
               **{"TagSpecification.1.ResourceType": "instance",
                  "TagSpecification.1.Tag.1.Key": "fedprobe-run",
                  "TagSpecification.1.Tag.1.Value": f"floor{n}"})
    iid = run.split("<instanceId>")[1].split("<")[0]
    for _ in range(100):
        if "<name>running</name>" in call("DescribeInstances", **{"InstanceId.1": iid}): break
    create = time.monotonic() - t_create
    t_del = time.monotonic()
    call("TerminateInstances", **{"InstanceId.1": iid})
    for _ in range(100):
        if "<name>terminated</name>" in call("DescribeInstances", **{"InstanceId.1": iid}): break
    return time.monotonic() - t0, create, time.monotonic() - t_del

def probe():
    t0 = time.monotonic()
    out = subprocess.run([binary, "--cloud", "ec2", "--endpoint", url, "--ec2-access-key-file",
                          f"{w}/ak", "--ec2-secret-key-file", f"{w}/sk", "--image", "ami-760aaa0f",
                          "-t", "60", "--output", "json"], capture_output=True, text=True).stdout
    wall = time.monotonic() - t0
    r = json.loads(out)
    perf = {p["label"]: p["value"] for p in r["perfdata"]}
    assert r["status"] == "OK", r["summary"]
    return wall, perf["total"], perf["create"], perf["delete"], r["http_requests"]

conn = http.client.HTTPConnection(host, timeout=30)
P, F = [], []
floor(conn, 0); probe()  # warm moto's lazily loaded AMIs and instance types
for i in range(1, runs + 1):
    P.append(probe()); F.append(floor(conn, i))
    print(f"run {i}: probe wall {P[-1][0]:.3f}s (own total {P[-1][1]:.3f}s, create {P[-1][2]:.3f}s, "
          f"delete {P[-1][3]:.3f}s, {P[-1][4]} requests) | floor {F[-1][0]:.3f}s "
          f"(create {F[-1][1]:.3f}s, delete {F[-1][2]:.3f}s)")
m = lambda rows, k: statistics.median(r[k] for r in rows)
print(f"median of {runs}: probe process {m(P,0):.3f}s, probe's own total {m(P,1):.3f}s, "
      f"create->running {m(P,2):.3f}s, delete->gone {m(P,3):.3f}s, {int(m(P,4))} HTTP requests | "
      f"floor {m(F,0):.3f}s (create {m(F,1):.3f}s, delete {m(F,2):.3f}s); "
      f"probe/floor {m(P,0)/m(F,0):.1f}x")
PY
