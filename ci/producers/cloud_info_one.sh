#!/bin/bash
# GLUE 2.1 JSON of an OpenNebula site: cloud-info-provider 1.2.0 (PyPI, the venv
# of lib.sh) with the OpenNebula provider of cip_opennebula.py, against the
# OpenNebula fixture (ci/peers/one_fixture.py, started here on a free loopback
# port and stopped by PID). Writes $OUT/glue-one.json. Also makes sure the venv
# exists for harness/tests/it/clouds.rs, which runs the same producer itself.
#   cloud_info_one.sh [SITE_NAME]
. "$(dirname "$0")/lib.sh"
SITE=${1:-FEDPROBE-ONE}
ONE_PY=${FEDPROBE_ONE_PYTHON:-/tmp/fedprobe-peers/cache/venv-one/bin/python}
ensure_venv
mkdir -p "$OUT"
[ -x "$ONE_PY" ] || { echo "no $ONE_PY: bash ci/peers/opennebula.sh install makes the fixture's venv" >&2; exit 3; }
work=$(mktemp -d)
echo "fedprobe:cip-one-$RANDOM$RANDOM" > "$work/one_auth"
"$ONE_PY" "$HERE/../peers/one_fixture.py" --session-file "$work/one_auth" > "$work/fixture.out" 2>&1 &
fx=$!
trap 'rc=$?; kill "$fx" 2>/dev/null; wait "$fx" 2>/dev/null || true; rm -rf "$work"; exit $rc' EXIT
for _ in $(seq 50); do grep -q '^PORT ' "$work/fixture.out" && break; sleep 0.1; done
port=$(awk '/^PORT /{print $2}' "$work/fixture.out")
[ -n "$port" ] || { cat "$work/fixture.out" >&2; exit 1; }
url="http://127.0.0.1:$port/RPC2"
printf 'gocdb: %s\nendpoint: %s\nvos:\n  - name: ops\n    auth:\n      group: ops\n' "$SITE" "$url" > "$work/site.yaml"
"$VENV/bin/python" "$HERE/cip_opennebula.py" "$SITE" "$work/site.yaml" \
  --on-auth "$(cat "$work/one_auth")" --on-rpcxml-endpoint "$url" > "$OUT/glue-one.json.tmp"
mv "$OUT/glue-one.json.tmp" "$OUT/glue-one.json"
python3 - "$OUT/glue-one.json" <<'EOPY'
import json, sys
d = json.load(open(sys.argv[1]))
print("glue-one.json:", ", ".join(f"{k} {len(v)}" for k, v in d.items()))
EOPY
