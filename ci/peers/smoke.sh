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
TMP=$(mktemp -d)
# what a failed run leaves behind is deleted again (best effort, bounded): the server (which
# detaches the volume), then the volume, then the object and its container
SID="" VID="" CONT=""
cleanup() {
  local i k=(-s -m 20 --cacert "$CA_CERT" -o /dev/null -H "X-Auth-Token: ${ST:-}")
  if [ -n "$SID" ]; then
    curl "${k[@]}" -X DELETE "$NOVA_URL/servers/$SID"
    for i in $(seq 1 30); do [ "$(curl "${k[@]}" -w '%{http_code}' "$NOVA_URL/servers/$SID")" = 404 ] && break; sleep 1; done
  fi
  [ -n "$VID" ] && curl "${k[@]}" -X DELETE "$CINDER/volumes/$VID"
  [ -n "$CONT" ] && { curl "${k[@]}" -X DELETE "$SWIFT/$CONT/blob.bin"; curl "${k[@]}" -X DELETE "$SWIFT/$CONT"; }
  rm -rf "$TMP"
}
trap cleanup EXIT
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

STEP="catalog: volumev3, block-storage, object-store"
pub() { j '[e["url"] for s in d["token"]["catalog"] if s["type"]=="'"$1"'" for e in s["endpoints"] if e["interface"]=="public"][0]' 2>/dev/null; }
CINDER=$(pub volumev3); CAT_BS=$(pub block-storage); SWIFT=$(pub object-store)
[ "$CINDER" = "$CINDER_URL/$PID" ] && [ "$CAT_BS" = "$CINDER" ] && [ "$SWIFT" = "$SWIFT_URL/AUTH_$PID" ] \
  || fail "volumev3 '$CINDER', block-storage '$CAT_BS', object-store '$SWIFT'"
ok "$CINDER, $SWIFT"

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

VH=(-H "X-Auth-Token: $ST" -H 'Content-Type: application/json' -H 'OpenStack-API-Version: volume 3.44')
# wait_volume STATUS|gone SECONDS : poll the volume $VID
wait_volume() {
  local i s=""
  for ((i = 0; i < $2; i++)); do
    code=$("${C[@]}" "${VH[@]}" "$CINDER/volumes/$VID")
    [ "$1" = gone ] && [ "$code" = 404 ] && return 0
    [ "$code" = 200 ] || fail "HTTP $code"
    s=$(j 'd["volume"]["status"]'); [ "$s" = "$1" ] && return 0
    case "$s" in error*) fail "volume $s" ;; esac
    sleep 1
  done
  fail "volume still ${s:-HTTP $code} after $2 s (want $1)"
}
STEP="cinder create volume"
code=$("${C[@]}" "${VH[@]}" -X POST "$CINDER/volumes" -d '{"volume":{"size":1,"name":"fedprobe-smoke"}}')
[ "$code" = 202 ] || fail "HTTP $code"; VID=$(j 'd["volume"]["id"]'); ok "$VID"
STEP="volume available, backing file on the NFS share"; B0=$(date +%s)
wait_volume available 60
[ -f "$CINDER_EXPORT_DIR/volume-$VID" ] || fail "no $CINDER_EXPORT_DIR/volume-$VID"
ok "$(( $(date +%s) - B0 ))s, $(stat -c '%s bytes apparent, %b blocks' "$CINDER_EXPORT_DIR/volume-$VID")"
STEP="attach volume to the server (nova)"
code=$("${C[@]}" "${NH[@]}" -X POST "$NOVA_URL/servers/$SID/os-volume_attachments" -d "{\"volumeAttachment\":{\"volumeId\":\"$VID\"}}")
[ "$code" = 200 ] || fail "HTTP $code"; ok "device $(j 'd["volumeAttachment"]["device"]')"
STEP="volume in-use, attached to the server"; B0=$(date +%s)
wait_volume in-use 60
[ "$(j 'd["volume"]["attachments"][0]["server_id"]')" = "$SID" ] || fail "attachments $(j 'd["volume"]["attachments"]')"
ok "$(( $(date +%s) - B0 ))s"
STEP="detach volume (nova, with its service token)"; B0=$(date +%s)
code=$("${C[@]}" "${NH[@]}" -X DELETE "$NOVA_URL/servers/$SID/os-volume_attachments/$VID"); [ "$code" = 202 ] || fail "HTTP $code"
wait_volume available 60; ok "available after $(( $(date +%s) - B0 ))s"
STEP="delete volume"
code=$("${C[@]}" "${VH[@]}" -X DELETE "$CINDER/volumes/$VID"); [ "$code" = 202 ] || fail "HTTP $code"
wait_volume gone 60
[ ! -e "$CINDER_EXPORT_DIR/volume-$VID" ] || fail "backing file still there"; VID=""; ok "404, backing file gone"

STEP="delete server"
code=$("${C[@]}" "${NH[@]}" -X DELETE "$NOVA_URL/servers/$SID"); [ "$code" = 204 ] || fail "HTTP $code"
for i in $(seq 1 60); do
  code=$("${C[@]}" "${NH[@]}" "$NOVA_URL/servers/$SID"); [ "$code" = 404 ] && break; sleep 1
done
[ "$code" = 404 ] || fail "still HTTP $code"; SID=""; ok "404"

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

SH=(-H "X-Auth-Token: $ST")
STEP="swift create container"
CONT=fedprobe-smoke-$$
code=$("${C[@]}" "${SH[@]}" -X PUT "$SWIFT/$CONT"); [ "$code" = 201 ] || fail "HTTP $code"; ok "$CONT"
STEP="swift put object"
head -c 1048576 /dev/urandom > "$TMP/obj"; MD5=$(md5sum < "$TMP/obj" | cut -d' ' -f1)
code=$("${C[@]}" "${SH[@]}" -X PUT -H "ETag: $MD5" -T "$TMP/obj" "$SWIFT/$CONT/blob.bin"); [ "$code" = 201 ] || fail "HTTP $code"
[ "$(hdr ETag)" = "$MD5" ] || fail "ETag $(hdr ETag) != md5 $MD5"; ok "1 MiB, ETag = md5"
STEP="swift get object"
code=$(curl -s -m 30 --cacert "$CA_CERT" "${SH[@]}" -D "$HDRS" -o "$TMP/obj.back" -w '%{http_code}' "$SWIFT/$CONT/blob.bin")
[ "$code" = 200 ] || fail "HTTP $code"
cmp -s "$TMP/obj" "$TMP/obj.back" || fail "object content differs"
[ "$(hdr ETag)" = "$MD5" ] || fail "ETag $(hdr ETag)"; ok "same bytes, same ETag"
STEP="swift list container"
code=$("${C[@]}" "${SH[@]}" "$SWIFT/$CONT"); [ "$code" = 200 ] && [ "$(cat "$BODY")" = blob.bin ] || fail "HTTP $code"; ok
STEP="swift delete object and container"
code=$("${C[@]}" "${SH[@]}" -X DELETE "$SWIFT/$CONT/blob.bin"); [ "$code" = 204 ] || fail "object: HTTP $code"
code=$("${C[@]}" "${SH[@]}" -X DELETE "$SWIFT/$CONT"); [ "$code" = 204 ] || fail "container: HTTP $code"
code=$("${C[@]}" "${SH[@]}" -I "$SWIFT/$CONT"); [ "$code" = 404 ] || fail "container after delete: HTTP $code"; CONT=""; ok "404"

STEP="neutron (https front)"
code=$("${C[@]}" -H "X-Auth-Token: $ST" "$NEUTRON_URL/v2.0/networks"); [ "$code" = 200 ] || fail "HTTP $code"; ok "$NEUTRON_KIND"
if [ "$NEUTRON_KIND" = real ]; then
  STEP="neutron topology as the project sees it (network, router to the external network, floating IP)"
  NETS=$(cat "$BODY")
  code=$("${C[@]}" -H "X-Auth-Token: $ST" "$NEUTRON_URL/v2.0/routers"); [ "$code" = 200 ] || fail "routers: HTTP $code"
  out=$(python3 -c 'import json,sys; n=json.loads(sys.argv[1])["networks"]; r=json.load(open(sys.argv[2]))["routers"]
ext=[x["id"] for x in n if x.get("router:external")]; own=[x for x in n if not x.get("router:external") and x["subnets"]]
gw=[x for x in r if (x.get("external_gateway_info") or {}).get("network_id") in ext]
print(f"{len(own)} own network(s), {len(gw)} router(s) to {len(ext)} external") if own and gw else sys.exit("missing: "+json.dumps([bool(own), bool(gw), bool(ext)]))' "$NETS" "$BODY") || fail "$out"
  code=$("${C[@]}" -H "X-Auth-Token: $ST" -H 'Content-Type: application/json' -X POST \
    -d "{\"floatingip\":{\"floating_network_id\":\"$EXTERNAL_NETWORK_ID\",\"description\":\"fedprobe-smoke\"}}" "$NEUTRON_URL/v2.0/floatingips")
  [ "$code" = 201 ] || fail "floating IP: HTTP $code"
  FIP=$(j 'd["floatingip"]["id"]'); FIPA=$(j 'd["floatingip"]["floating_ip_address"]')
  code=$("${C[@]}" -H "X-Auth-Token: $ST" -X DELETE "$NEUTRON_URL/v2.0/floatingips/$FIP"); [ "$code" = 204 ] || fail "release: HTTP $code"
  ok "$out; floating IP $FIPA allocated and released"
fi

STEP="clouds.yaml entries through openstacksdk"
OSPY=$P/cache/venv-os/bin/python
if [ -x "$OSPY" ]; then
  out=$(PYTHONWARNINGS=ignore timeout 120 "$OSPY" "$(dirname "$0")/clouds_check.py" "$CLOUDS_YAML" \
        "$OS_CLOUD_NAME" "$OS_CLOUD_APPCRED_NAME" "$OS_CLOUD_OIDC_NAME" 2>&1) || fail "$out"
  ok "$OS_CLOUD_NAME, $OS_CLOUD_APPCRED_NAME, $OS_CLOUD_OIDC_NAME"
fi

if [ -n "${SAML_KEYSTONE_URL:-}" ]; then
  # keystoneauth1's own ECP client (= openstack --os-auth-type v3samlpassword), independent of fedprobe's
  STEP="SAML2 ECP login (keystoneauth1 v3samlpassword) on $SAML_KEYSTONE_URL"
  out=$(PYTHONWARNINGS=ignore timeout 60 "$P/cache/venv-os/bin/python" - "$SAML_KEYSTONE_URL" "$SAML_IDP" \
        "$SAML_PROTOCOL" "$SAML_IDP_URL" "$SAML_CREDENTIALS_FILE" "$CA_CERT" "$OPS_PROJECT_ID" <<'EOP' 2>&1
import sys
from keystoneauth1 import session
from keystoneauth1.extras._saml2.v3 import saml2
url, idp, proto, idp_url, cred, ca, project = sys.argv[1:]
user, _, pw = open(cred).read().strip().partition(":")
s = session.Session(verify=ca)
a = saml2.Password(auth_url=url, identity_provider=idp, protocol=proto, identity_provider_url=idp_url,
                   username=user, password=pw, project_id=project)
ref = a.get_access(s)
print(ref.username, ref.project_id == project)
EOP
  ) || fail "$out"
  [ "$(echo "$out" | tail -1)" = "probe-saml True" ] || fail "$out"
  ok "user probe-saml, scoped to $OPS_PROJECT_NAME"
fi
STEP="OpenNebula fixture through pyone"
out=$(timeout 120 bash "$(dirname "$0")/opennebula.sh" check 2>&1) || fail "$out"; ok "$(echo "$out" | tail -1)"
STEP="azure fixture (client-secret token, VM sizes)"
if [ -f "$P/azure.env" ]; then
  . "$P/azure.env"
  code=$("${C[@]}" -d grant_type=client_credentials -d "client_id=$AZURE_CLIENT_ID" \
    --data-urlencode "client_secret@$AZURE_CLIENT_SECRET_FILE" -d scope=https://management.azure.com/.default \
    "$AZURE_AUTHORITY/$AZURE_TENANT/oauth2/v2.0/token"); [ "$code" = 200 ] || fail "token: HTTP $code"
  AZT=$(j 'd["access_token"]')
  code=$("${C[@]}" -H "Authorization: Bearer $AZT" \
    "$AZURE_URL/subscriptions/$AZURE_SUBSCRIPTION/providers/Microsoft.Compute/locations/$AZURE_LOCATION/vmSizes?api-version=2024-07-01")
  [ "$code" = 200 ] || fail "vmSizes: HTTP $code"; ok "$(j 'len(d["value"])') sizes"
fi
STEP="gce fixture through google-api-python-client"
if [ -f "$P/gce.env" ]; then
  out=$(timeout 300 bash "$(dirname "$0")/gce.sh" client 2>&1) || fail "$out"
  ok "$(echo "$out" | tail -n 1)"
fi
if [ -n "${IM_URL:-}" ]; then
  STEP="orchestrator (IM) version and the monitor's IM account"
  code=$("${C[@]}" "$IM_URL/version"); [ "$code" = 200 ] || fail "HTTP $code"
  IMV=$(cat "$BODY")
  IMA="id = im; type = InfrastructureManager; username = $IM_USER; password = $(cat "$IM_PASSWORD_FILE")"
  code=$("${C[@]}" -H "Authorization: $IMA" -H 'Accept: application/json' "$IM_URL/infrastructures")
  [ "$code" = 200 ] || fail "list: HTTP $code"
  code=$("${C[@]}" -H "Authorization: id = im; type = InfrastructureManager; username = $IM_USER; password = wrong" \
    -H 'Accept: application/json' "$IM_URL/infrastructures")
  [ "$code" = 401 ] || fail "a wrong IM password: HTTP $code (want 401)"
  ok "IM $IMV, user db enforced"
fi

echo "smoke: all checks passed in $(( $(date +%s) - T0 ))s"
