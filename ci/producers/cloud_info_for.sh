#!/bin/bash
# The real cloud-info-provider (lib.sh's venv) for a caller's own cloud and
# project, into the caller's own file: tests that make their own project and
# flavors publish with it and leave the shared out/glue.json alone.
#   cloud_info_for.sh CLOUDS_YAML CLOUD SITE_YAML OUT_JSON [SITE]
# Exit status: the producer's. Its stderr goes to OUT_JSON.err.
. "$(dirname "$0")/lib.sh"
[ $# -ge 4 ] || { echo "usage: $0 CLOUDS_YAML CLOUD SITE_YAML OUT_JSON [SITE]" >&2; exit 3; }
CLOUDS=$1 CLOUD=$2 SITE_YAML=$3 OUT_JSON=$4 SITE=${5:-FEDPROBE-TEST}
ensure_venv
load_peers
export OS_CLIENT_CONFIG_FILE=$CLOUDS
export REQUESTS_CA_BUNDLE=$CA_CERT SSL_CERT_FILE=$CA_CERT
rc=0
"$VENV/bin/python" "$HERE/run_cip.py" "$SITE" \
  --middleware openstack --format glue21json --publisher stdout \
  --os-cloud "$CLOUD" --exit-on-share-errors \
  "$SITE_YAML" > "$OUT_JSON.tmp" 2> "$OUT_JSON.err" || rc=$?
if [ $rc -eq 0 ]; then
  mv "$OUT_JSON.tmp" "$OUT_JSON"
else
  rm -f "$OUT_JSON.tmp"
fi
exit $rc
