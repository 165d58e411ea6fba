#!/usr/bin/env bash
# The harness at scale beside the floor of its traffic, in one run:
#   ci/bench-harness-floor.sh [SITES] [ROUNDS]
# Each round runs `fedprobe demo` over SITES sites (boot delay 5 s, --jobs 2500
# --jobs-per-site 5), then fakecloud's `traffic_floor` example twice: the same
# HTTP requests (read from a one-site demo run's report: method, answer size,
# repeats; the image uploaded, hashed on both ends, downloaded and compared)
# sent by reqwest to a bare hyper server, first paced (each run's requests
# spread over the time the probe's run took, the same job limits), then
# back to back. One site of each first. Prints wall, CPU and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
SITES=${1:-1000}
ROUNDS=${2:-2}
PROFILE=${FEDPROBE_BENCH_PROFILE:-dist}
cargo build --profile "$PROFILE" -q -p fedprobe >&2
cargo build --profile "$PROFILE" -q -p fakecloud --example traffic_floor >&2
BIN=target/$PROFILE/fedprobe
FLOOR=target/$PROFILE/examples/traffic_floor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

DEMO=(--boot-delay 5s --jobs 2500 --jobs-per-site 5 --quiet --format json --report-dir)

# The requests of one site's run, from its report's evidence lines.
mkdir -p "$WORK/one"
"$BIN" demo --sites 1 "${DEMO[@]}" "$WORK/one" > /dev/null
table() { # PACED(1/0)
  python3 - "$WORK/one/fedprobe.json" "$1" <<'PY'
import json, re, sys
site = json.load(open(sys.argv[1]))["sites"][0]
paced = sys.argv[2] == "1"
pat = re.compile(r"^http: (\S+) (\S+) -> (\d+)[^(]*\((\d+) bytes\) in [0-9.]+s(?:; (\d+) times in a row)?")
for i, p in enumerate(site["run"]["probes"]):
    r = p["result"]
    calls = [m.groups() for m in map(pat.match, r["details"]) if m]
    image = max((int(c[3]) for c in calls if c[0] == "GET" and c[1].endswith("/file")), default=0)
    listed = sum(int(c[4] or 1) for c in calls)
    total = max(r["http_requests"], listed, 1)
    pause = r["duration"] * 1000.0 / total if paced else 0.0
    for method, url, _status, n, rep in calls:
        n, kind, req = int(n), "json", 0
        if method == "PUT" and url.endswith("/file"):
            kind, req, n = "upload", image, 0
        elif method == "GET" and url.endswith("/file") and n >= 65536:
            kind = "download"
        elif method in ("POST", "PUT", "PATCH"):
            req = 4096 if url.endswith(".bin") else 300
        print(f"{i}\t{method}\t{req}\t{n}\t{rep or 1}\t{kind}\t{pause:.3f}")
    if r["http_requests"] > listed:  # left out of the bounded evidence
        print(f"{i}\tGET\t0\t1024\t{r['http_requests'] - listed}\tjson\t{pause:.3f}")
PY
}
table 1 > "$WORK/paced.tsv"
table 0 > "$WORK/burst.tsv"
echo "requests_per_site=$(awk -F'\t' '{s+=$5} END {print s}' "$WORK/paced.tsv")"

timed() { # LABEL SITES CMD...
  local label=$1 n=$2; shift 2
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" > "$WORK/out" 2>&1 || {
    echo "$label failed:" >&2; tail -5 "$WORK/out" >&2; exit 1; }
  read -r wall user sys rss < "$WORK/time"
  printf '| %s | %s | %s s | %.1f s | %d MB |\n' "$label" "$n" "$wall" \
    "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" $((rss / 1024))
}

echo "| run | sites | wall | CPU (user+sys) | peak RSS |"
echo "|---|---|---|---|---|"
rm -rf "$WORK/r" && mkdir "$WORK/r"
timed "fedprobe demo" 1 "$BIN" demo --sites 1 "${DEMO[@]}" "$WORK/r"
timed "floor, paced" 1 "$FLOOR" "$WORK/paced.tsv" 1 2500 5
for r in $(seq "$ROUNDS"); do
  rm -rf "$WORK/r" && mkdir "$WORK/r"
  timed "fedprobe demo" "$SITES" "$BIN" demo --sites "$SITES" "${DEMO[@]}" "$WORK/r"
  timed "floor, paced" "$SITES" "$FLOOR" "$WORK/paced.tsv" "$SITES" 2500 5
  timed "floor, back to back" "$SITES" "$FLOOR" "$WORK/burst.tsv" "$SITES" 2500 5
done
