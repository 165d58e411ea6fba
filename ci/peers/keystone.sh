#!/bin/bash
# Keystone (PyPI) under gunicorn on http://127.0.0.1:5000: MariaDB, fernet tokens, federation
# methods enabled. Header-trust on this port: only Apache (5001/5443) validates bearer tokens.
set -e
. "$(dirname "$0")/lib.sh"
D=$P/keystone; V=$OS_VENV
export OS_KEYSTONE_CONFIG_DIR=$D/etc
mkdir -p "$D/etc" "$D/fernet-keys" "$D/credential-keys" "$P/secrets"
[ -s "$P/secrets/admin_password" ] || gen_secret > "$P/secrets/admin_password"
chmod 600 "$P/secrets/admin_password"
cat > "$D/etc/keystone.conf" <<EOC
[DEFAULT]
log_file = $LOG/keystone.log
[database]
connection = $(db_url keystone)
[token]
provider = fernet
expiration = 7200
[fernet_tokens]
key_repository = $D/fernet-keys
[credential]
key_repository = $D/credential-keys
[auth]
methods = password,token,openid,mapped,application_credential
[openid]
# Apache mod_auth_openidc passes the validated claims as OIDC-<claim> headers -> HTTP_OIDC_<CLAIM>
remote_id_attribute = HTTP_OIDC_ISS
[federation]
assertion_prefix = HTTP_OIDC_
trusted_dashboard = https://127.0.0.1:$KS_APACHE_TLS_PORT/dashboard
[oslo_middleware]
# links in responses follow Apache's X-Forwarded-Proto/Host (https://127.0.0.1:5443)
enable_proxy_headers_parsing = true
EOC
cat > "$D/wsgi_public.py" <<'EOW'
import sys
sys.argv = sys.argv[:1]   # oslo.config would otherwise parse gunicorn's argv and the worker crash-loops
from keystone.server import wsgi
application = wsgi.initialize_public_application()
EOW
KM="$V/bin/keystone-manage --config-file $D/etc/keystone.conf"
{
  $KM fernet_setup --keystone-user root --keystone-group root
  $KM credential_setup --keystone-user root --keystone-group root
  $KM db_sync
  $KM bootstrap --bootstrap-password "$(cat "$P/secrets/admin_password")" --bootstrap-region-id RegionOne \
    --bootstrap-public-url "https://127.0.0.1:$KS_APACHE_TLS_PORT/v3" \
    --bootstrap-internal-url "http://127.0.0.1:$KS_PORT/v3" --bootstrap-admin-url "http://127.0.0.1:$KS_PORT/v3"
} > "$LOG/keystone-manage.log" 2>&1 || fail_with_log keystone-manage "$LOG/keystone-manage.log"
cd "$D"
start_bg keystone "$LOG/keystone-gunicorn.log" "$V/bin/gunicorn" --no-control-socket --chdir "$D" \
  -b 127.0.0.1:$KS_PORT -w 2 --timeout 120 --access-logfile "$LOG/keystone-access.log" wsgi_public:application
# /v3 answers 200 only once a worker really serves (gunicorn accepts while its worker crash-loops)
for i in $(seq 1 120); do
  curl -m 5 -sf "$KS" -o /dev/null && break
  alive keystone || fail_with_log keystone "$LOG/keystone-gunicorn.log" "$LOG/keystone.log"
  sleep 0.5
done
curl -m 5 -sf "$KS" -o /dev/null || fail_with_log keystone "$LOG/keystone-gunicorn.log" "$LOG/keystone.log"
[ -n "$(admin_token)" ] || fail_with_log "keystone admin login" "$LOG/keystone.log"
log "keystone up (pid $(cat "$RUN/keystone.pid")) on $KS"
