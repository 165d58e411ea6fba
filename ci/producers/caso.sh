#!/bin/bash
# Real APEL records: cASO (PyPI) against the local OpenStack described by
# /tmp/fedprobe-peers/peers.env. Its SSM messenger writes the dirq spool
# $OUT/apel (cloud v0.4 messages; public IP / accelerator JSON when there is
# such usage). cASO reads all projects' servers, so it logs in as the admin
# as a dedicated accounting user: member of the VO projects, system reader
# (to list projects), which this script creates with the admin account if
# missing (an additive change to the peers' Keystone; nothing else touched).
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
# The accounting user (password kept under $OUT).
[ -s "$OUT/caso_user_password" ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$OUT/caso_user_password"
chmod 600 "$OUT/caso_user_password"
OS_AUTH_URL=$KEYSTONE_URL OS_ADMIN=$ADMIN_USER OS_ADMIN_PW_FILE=$ADMIN_PASSWORD_FILE \
OS_ADMIN_PROJECT=$ADMIN_PROJECT_NAME OS_CACERT=$CA_CERT CASO_PW_FILE=$OUT/caso_user_password \
CASO_PROJECTS="$OPS_PROJECT_ID $VO_PROJECT_ID" "$VENV/bin/python" - <<'EOPY'
import os
from keystoneauth1 import session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client

e = os.environ
auth = v3.Password(auth_url=e["OS_AUTH_URL"], username=e["OS_ADMIN"],
                   password=open(e["OS_ADMIN_PW_FILE"]).read().strip(),
                   user_domain_id="default", project_name=e["OS_ADMIN_PROJECT"],
                   project_domain_id="default")
ks = client.Client(session=session.Session(auth=auth, verify=e["OS_CACERT"]), interface="public")
pw = open(e["CASO_PW_FILE"]).read().strip()
users = ks.users.list(name="fedprobe-caso", domain="default")
user = users[0] if users else ks.users.create(name="fedprobe-caso", domain="default", password=pw)
ks.users.update(user, password=pw)
roles = {r.name: r for r in ks.roles.list()}
for p in e["CASO_PROJECTS"].split():
    ks.roles.grant(roles["member"], user=user, project=p)
ks.roles.grant(roles["reader"], user=user, system="all")
EOPY
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
username = fedprobe-caso
password = $(cat "$OUT/caso_user_password")
user_domain_name = $USER_DOMAIN_NAME
project_domain_name = $PROJECT_DOMAIN_NAME
cafile = $CA_CERT
EOC
chmod 600 "$OUT/caso.conf"
"$VENV/bin/caso-extract" --config-file "$OUT/caso.conf" \
  --extract-from 2020-01-01 > "$OUT/caso.log" 2>&1
n=$(find "$OUT/apel" -type f ! -name '*.tmp' | wc -l)
echo "caso: $n message(s) in $OUT/apel"
[ "$n" -gt 0 ]
