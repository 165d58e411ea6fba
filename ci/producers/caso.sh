#!/bin/bash
# Real APEL records: cASO (PyPI) against the local OpenStack described by
# /tmp/fedprobe-peers/peers.env. Its SSM messenger writes the dirq spool
# $OUT/apel (cloud v0.4 messages; public IP / accelerator JSON when there is
# such usage). cASO reads all projects' servers, so it logs in as the admin
# with system scope, as a site's accounting user does.
#   caso.sh [SITE_NAME]
. "$(dirname "$0")/lib.sh"
SITE=${1:-FEDPROBE-TEST}
ensure_venv
load_peers
mkdir -p "$OUT/caso-spool" "$OUT/apel"
# A fresh extraction each time: drop last-run marks and old messages.
rm -rf "$OUT/caso-spool"/lastrun.* "$OUT/apel"/*
cat > "$OUT/voms.json" <<EOJ
{"ops": {"projects": ["$OPS_PROJECT_ID"]}, "vo.access.egi.eu": {"projects": ["$VO_PROJECT_ID"]}}
EOJ
cat > "$OUT/caso.conf" <<EOC
[DEFAULT]
site_name = $SITE
service_name = fedprobe-test
projects = $OPS_PROJECT_ID,$VO_PROJECT_ID
messengers = ssm
spooldir = $OUT/caso-spool
extractor = ${CASO_EXTRACTORS:-nova}
mapping_file = $OUT/voms.json
region_name = $REGION

[ssm]
output_path = $OUT/apel

[keystone_auth]
auth_type = password
auth_url = $KEYSTONE_URL
username = $ADMIN_USER
password = $(cat "$ADMIN_PASSWORD_FILE")
user_domain_name = $USER_DOMAIN_NAME
project_domain_name = $PROJECT_DOMAIN_NAME
project_name = $ADMIN_PROJECT_NAME
cafile = $CA_CERT
EOC
chmod 600 "$OUT/caso.conf"
"$VENV/bin/caso-extract" --config-file "$OUT/caso.conf" \
  --extract-from 2020-01-01 > "$OUT/caso.log" 2>&1
n=$(find "$OUT/apel" -type f ! -name '*.tmp' | wc -l)
echo "caso: $n message(s) in $OUT/apel"
[ "$n" -gt 0 ]
