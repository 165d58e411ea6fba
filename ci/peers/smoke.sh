#!/bin/bash
# Quick end-to-end check of the running peers, with curl only, through the https fronts and the
# local CA (as the probes talk to production). Exits non-zero on the first failure.
set -u -o pipefail
P=${FEDPROBE_PEERS_DIR:-/tmp/fedprobe-peers}
[ -f "$P/peers.env" ] || { echo "smoke: no $P/peers.env (run up.sh)"; exit 1; }
while IFS='=' read -r k v; do
  case "$k" in ''|\#*) continue ;; esac
  printf -v "$k" '%s' "$v"
done < "$P/peers.env"
T0=$(date +%s)
STEP=""
ok()   { echo "smoke: ok   $STEP${1:+ ($1)}"; }
fail() { echo "smoke: FAIL $STEP: $*" >&2; [ -n "${BODY:-}" ] && echo "  body: $(head -c 600 "$BODY")" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
BODY=$TMP/body; HDRS=$TMP/hdrs
C=(curl -s -m 30 --cacert "$CA_CERT" -D "$HDRS" -o "$BODY" -w '%{http_code}')
j() { python3 -c "import json,sys; d=json.load(open('$BODY')); print($1)"; }
hdr() { awk -F': ' -v h="$(echo "$1" | tr A-Z a-z)" 'tolower($1)==h{print $2}' "$HDRS" | tr -d '\r'; }
FED="$KEYSTONE_URL/OS-FEDERATION/identity_providers/$IDP/protocols/$PROTOCOL/auth"
CLIENT_SECRET=$(cat "$OIDC_CLIENT_SECRET_FILE")

STEP="oidc client_credentials token"
code=$("${C[@]}" -u "$OIDC_CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \
        --data-urlencode "scope=${OIDC_SCOPES//,/ }" "$OIDC_TOKEN_ENDPOINT")
[ "$code" = 200 ] || fail "HTTP $code"
AT=$(j 'd["access_token"]'); [ "$(echo "$AT" | tr -cd . | wc -c)" = 2 ] || fail "not a JWT"; ok

if [ -n "${OIDC_REFRESH_TOKEN_FILE:-}" ]; then
  STEP="oidc refresh_token grant"
  code=$("${C[@]}" -u "$OIDC_CLIENT_ID:$CLIENT_SECRET" -d grant_type=refresh_token \
          --data-urlencode "refresh_token=$(cat "$OIDC_REFRESH_TOKEN_FILE")" \
          --data-urlencode "scope=${OIDC_SCOPES//,/ }" "$OIDC_TOKEN_ENDPOINT")
  [ "$code" = 200 ] || fail "HTTP $code"
  RT_AT=$(j 'd["access_token"]'); ok
  STEP="federated login with the refreshed token"
  code=$("${C[@]}" -X POST -H "Authorization: Bearer $RT_AT" "$FED")
  [ "$code" = 201 ] && [ -n "$(hdr X-Subject-Token)" ] || fail "HTTP $code"
  ok "user $(j 'd["token"]["user"]["name"]')"
fi

STEP="federated login (client_credentials token) on $KEYSTONE_URL"
code=$("${C[@]}" -X POST -H "Authorization: Bearer $AT" "$FED")
[ "$code" = 201 ] || fail "HTTP $code"
UT=$(hdr X-Subject-Token); [ -n "$UT" ] || fail "no X-Subject-Token"
ok "methods $(j 'd["token"]["methods"]'), user $(j 'd["token"]["user"]["name"]')"

STEP="garbage bearer token"
code=$("${C[@]}" -X POST -H "Authorization: Bearer not.a.jwt" "$FED")
[ "$code" = 401 ] || fail "HTTP $code (want 401)"
hdr WWW-Authenticate | grep -q 'invalid_token' || fail "no WWW-Authenticate invalid_token"
ok "401, $(hdr WWW-Authenticate | cut -c1-40)"

STEP="missing bearer token"
code=$("${C[@]}" -X POST "$FED"); [ "$code" = 401 ] || fail "HTTP $code (want 401)"; ok

STEP="GET /auth/projects"
code=$("${C[@]}" -H "X-Auth-Token: $UT" "$KEYSTONE_URL/auth/projects"); [ "$code" = 200 ] || fail "HTTP $code"
NAMES=$(j '",".join(sorted(p["name"] for p in d["projects"]))')
[ "$NAMES" = "$OPS_PROJECT_NAME,$VO_PROJECT_NAME" ] || fail "projects $NAMES"
PID=$(j '[p["id"] for p in d["projects"] if "ops" in p["name"]][0]')
[ "$PID" = "$OPS_PROJECT_ID" ] || fail "ops project id $PID != $OPS_PROJECT_ID"
ok "$NAMES"

STEP="project-scoped token"
code=$("${C[@]}" -X POST -H 'Content-Type: application/json' "$KEYSTONE_URL/auth/tokens" \
  -d "{\"auth\":{\"identity\":{\"methods\":[\"token\"],\"token\":{\"id\":\"$UT\"}},\"scope\":{\"project\":{\"id\":\"$PID\"}}}}")
[ "$code" = 201 ] || fail "HTTP $code"
ST=$(hdr X-Subject-Token)
CAT_NOVA=$(j '[e["url"] for s in d["token"]["catalog"] if s["type"]=="compute" for e in s["endpoints"] if e["interface"]=="public"][0]')
CAT_GLANCE=$(j '[e["url"] for s in d["token"]["catalog"] if s["type"]=="image" for e in s["endpoints"] if e["interface"]=="public"][0]')
[ "$CAT_NOVA" = "$NOVA_URL" ] && [ "$CAT_GLANCE" = "$GLANCE_URL" ] || fail "catalog $CAT_NOVA $CAT_GLANCE"
ok "roles $(j '[r["name"] for r in d["token"]["roles"]]'), public compute $CAT_NOVA"

STEP="password login (probe-user) on $KEYSTONE_URL"
PW=$(cat "$PASSWORD_FILE")
code=$("${C[@]}" -X POST -H 'Content-Type: application/json' "$KEYSTONE_URL/auth/tokens" \
  -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"$PASSWORD_USER\",\"domain\":{\"name\":\"$USER_DOMAIN_NAME\"},\"password\":\"$PW\"}}},\"scope\":{\"project\":{\"name\":\"$PASSWORD_PROJECT_NAME\",\"domain\":{\"name\":\"$PROJECT_DOMAIN_NAME\"}}}}}")
[ "$code" = 201 ] || fail "HTTP $code"; ok

STEP="application credential login"
code=$("${C[@]}" -X POST -H 'Content-Type: application/json' "$KEYSTONE_URL/auth/tokens" \
  -d "{\"auth\":{\"identity\":{\"methods\":[\"application_credential\"],\"application_credential\":{\"id\":\"$APP_CRED_ID\",\"secret\":\"$(cat "$APP_CRED_SECRET_FILE")\"}}}}")
[ "$code" = 201 ] || fail "HTTP $code"
[ "$(j 'd["token"]["project"]["id"]')" = "$OPS_PROJECT_ID" ] || fail "app cred not scoped to ops"; ok

NH=(-H "X-Auth-Token: $ST" -H 'Content-Type: application/json' -H 'OpenStack-API-Version: compute 2.79')
STEP="nova flavors"
code=$("${C[@]}" "${NH[@]}" "$NOVA_URL/flavors/detail?minDisk=8"); [ "$code" = 200 ] || fail "HTTP $code"
[ "$(j '[f["id"] for f in d["flavors"] if f["name"]=="'"$FLAVOR_NAME"'"][0]')" = "$FLAVOR_ID" ] || fail "no $FLAVOR_NAME"; ok

STEP="fixture image visible"
code=$("${C[@]}" -H "X-Auth-Token: $ST" "$GLANCE_URL/v2/images/$IMAGE_ID"); [ "$code" = 200 ] || fail "HTTP $code"
[ "$(j 'd["ad:appid"]')" = "$IMAGE_APPDB_ID" ] || fail "ad:appid"
[ "$(j 'json.loads(d["APPLIANCE_ATTRIBUTES"])["eu.egi.cloud.image_ref"]')" = "$IMAGE_REGISTRY_REF" ] || fail "image_ref"; ok

STEP="boot server"
code=$("${C[@]}" "${NH[@]}" -X POST "$NOVA_URL/servers" \
  -d "{\"server\":{\"name\":\"fedprobe-smoke\",\"imageRef\":\"$IMAGE_ID\",\"flavorRef\":\"$FLAVOR_ID\",\"networks\":\"none\",\"metadata\":{\"fedprobe\":\"smoke\"}}}")
[ "$code" = 202 ] || fail "HTTP $code"
SID=$(j 'd["server"]["id"]'); ok "$SID, Location $(hdr Location)"
STEP="server ACTIVE"; B0=$(date +%s); S=""
for i in $(seq 1 120); do
  code=$("${C[@]}" "${NH[@]}" "$NOVA_URL/servers/$SID"); [ "$code" = 200 ] || fail "HTTP $code"
  S=$(j 'd["server"]["status"]'); case "$S" in ACTIVE) break ;; ERROR) fail "ERROR $(j 'd["server"].get("fault")')" ;; esac
  sleep 1
done
[ "$S" = ACTIVE ] || fail "still $S"; ok "$(( $(date +%s) - B0 ))s"

STEP="os-simple-tenant-usage of own project"
# nova clamps 'end' to now and MariaDB stores launched_at in whole seconds (rounded): a server that
# has just become ACTIVE can be missing for up to a second, so ask again briefly
for i in 1 2 3 4 5; do
  code=$("${C[@]}" "${NH[@]}" "$NOVA_URL/os-simple-tenant-usage/$PID?start=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%S)&end=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%S)")
  [ "$code" = 200 ] || fail "HTTP $code"
  j '[s["instance_id"] for s in d["tenant_usage"].get("server_usages",[])]' | grep -q "$SID" && break
  sleep 1
done
j '[s["instance_id"] for s in d["tenant_usage"].get("server_usages",[])]' | grep -q "$SID" || fail "server not in usage"
ok "after $i request(s)"

STEP="delete server"
code=$("${C[@]}" "${NH[@]}" -X DELETE "$NOVA_URL/servers/$SID"); [ "$code" = 204 ] || fail "HTTP $code"
for i in $(seq 1 60); do
  code=$("${C[@]}" "${NH[@]}" "$NOVA_URL/servers/$SID"); [ "$code" = 404 ] && break; sleep 1
done
[ "$code" = 404 ] || fail "still HTTP $code"; ok "404"

GH=(-H "X-Auth-Token: $ST")
STEP="glance create private image"
code=$("${C[@]}" "${GH[@]}" -H 'Content-Type: application/json' -X POST "$GLANCE_URL/v2/images" \
  -d '{"name":"fedprobe-smoke","disk_format":"raw","container_format":"bare","visibility":"private","fedprobe":"smoke"}')
[ "$code" = 201 ] || fail "HTTP $code"; IID=$(j 'd["id"]'); [ "$(j 'd["status"]')" = queued ] || fail "not queued"; ok "$IID"
STEP="glance upload"
head -c 1048576 /dev/urandom > "$TMP/img.raw"; MD5=$(md5sum < "$TMP/img.raw" | cut -d' ' -f1)
code=$("${C[@]}" "${GH[@]}" -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$TMP/img.raw" "$GLANCE_URL/v2/images/$IID/file")
[ "$code" = 204 ] || fail "HTTP $code"
code=$("${C[@]}" "${GH[@]}" "$GLANCE_URL/v2/images/$IID"); [ "$code" = 200 ] || fail "HTTP $code"
[ "$(j 'd["status"]')" = active ] && [ "$(j 'd["checksum"]')" = "$MD5" ] || fail "status/checksum"
ok "active, md5 ok, $(j 'd["os_hash_algo"]')"
STEP="glance download"
code=$(curl -s -m 30 --cacert "$CA_CERT" "${GH[@]}" -o "$TMP/dl.raw" -w '%{http_code}' "$GLANCE_URL/v2/images/$IID/file")
[ "$code" = 200 ] && [ "$(md5sum < "$TMP/dl.raw" | cut -d' ' -f1)" = "$MD5" ] || fail "HTTP $code or md5"; ok
STEP="glance delete"
code=$("${C[@]}" "${GH[@]}" -X DELETE "$GLANCE_URL/v2/images/$IID"); [ "$code" = 204 ] || fail "HTTP $code"
code=$("${C[@]}" "${GH[@]}" "$GLANCE_URL/v2/images/$IID"); [ "$code" = 404 ] || fail "after delete HTTP $code"; ok "404"

STEP="neutron (https front)"
code=$("${C[@]}" -H "X-Auth-Token: $ST" "$NEUTRON_URL/v2.0/networks"); [ "$code" = 200 ] || fail "HTTP $code"; ok "$NEUTRON_KIND"

STEP="clouds.yaml entries through openstacksdk"
OSPY=$P/cache/venv-os/bin/python
if [ -x "$OSPY" ]; then
  out=$(PYTHONWARNINGS=ignore timeout 120 "$OSPY" "$(dirname "$0")/clouds_check.py" "$CLOUDS_YAML" \
        "$OS_CLOUD_NAME" "$OS_CLOUD_APPCRED_NAME" "$OS_CLOUD_OIDC_NAME" 2>&1) || fail "$out"
  ok "$OS_CLOUD_NAME, $OS_CLOUD_APPCRED_NAME, $OS_CLOUD_OIDC_NAME"
fi

echo "smoke: all checks passed in $(( $(date +%s) - T0 ))s"
