#!/bin/bash
# Real GLUE 2.1 JSON: cloud-info-provider (PyPI) against the local OpenStack
# described by /tmp/fedprobe-peers/peers.env. Writes $OUT/glue.json.
#   cloud_info.sh [SITE_NAME]
# The federated (OIDC client-credentials) login of clouds.yaml is used, as a
# site would. GOCDB is not reachable from here: its lookup is answered
# locally (gocdb_id/site_name); everything else is the package's own code.
. "$(dirname "$0")/lib.sh"
SITE=${1:-FEDPROBE-TEST}
ensure_venv
load_peers
mkdir -p "$OUT"
cat > "$OUT/site.yaml" <<EOY
gocdb: $SITE
endpoint: $KEYSTONE_URL
vos:
  - name: ops
    auth:
      project_id: $OPS_PROJECT_ID
  - name: vo.access.egi.eu
    auth:
      project_id: $VO_PROJECT_ID
EOY
cat > "$OUT/run_cip.py" <<'EOPY'
import sys
from cloud_info_provider import core
from cloud_info_provider.providers import utils

site = sys.argv.pop(1)
# No route to goc.egi.eu here; answer the lookup the way GOCDB would.
utils.find_in_gocdb = lambda url, svc_type, insecure=False, timeout=None: {
    "gocdb_id": "fedprobe-1", "site_name": site}
core.main()
EOPY
export OS_CLIENT_CONFIG_FILE=$CLOUDS_YAML
export REQUESTS_CA_BUNDLE=$CA_CERT SSL_CERT_FILE=$CA_CERT
"$VENV/bin/python" "$OUT/run_cip.py" "$SITE" \
  --middleware openstack --format glue21json --publisher stdout \
  --os-cloud "$OS_CLOUD_OIDC_NAME" --exit-on-share-errors \
  "$OUT/site.yaml" > "$OUT/glue.json.tmp" 2> "$OUT/cloud_info.err"
mv "$OUT/glue.json.tmp" "$OUT/glue.json"
python3 - "$OUT/glue.json" <<'EOPY'
import json, sys
d = json.load(open(sys.argv[1]))
print("glue.json:", ", ".join(f"{k} {len(v)}" for k, v in d.items()))
EOPY
