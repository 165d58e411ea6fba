#!/bin/bash
# Glance (PyPI) under gunicorn on http://127.0.0.1:9292 (https front :9393 in apache.sh):
# MariaDB, file store, keystone auth.
#   glance.sh prepare | start | (both)
set -e
. "$(dirname "$0")/lib.sh"
MODE=${1:-all}
D=$P/glance; V=$OS_VENV
export OS_GLANCE_CONFIG_DIR=$D/etc
if [ "$MODE" != start ]; then
mkdir -p "$D/etc" "$D/images" "$D/staging" "$D/tasks"
cp "$V/etc/glance/glance-api-paste.ini" "$D/etc/"
cat > "$D/etc/glance-api.conf" <<EOC
[DEFAULT]
log_file = $LOG/glance-api.log
enabled_backends = fs:file
show_multiple_locations = false
[database]
connection = $(db_url glance)
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $D/images/
[os_glance_staging_store]
filesystem_store_datadir = $D/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $D/tasks/
[paste_deploy]
flavor = keystone
config_file = $D/etc/glance-api-paste.ini
[keystone_authtoken]
www_authenticate_uri = https://127.0.0.1:$KS_APACHE_TLS_PORT/v3
auth_url = http://127.0.0.1:$KS_PORT
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = glance
password = $(cat "$P/secrets/service_password")
[oslo_policy]
enforce_new_defaults = true
[oslo_middleware]
enable_proxy_headers_parsing = true
EOC
chmod 600 "$D/etc/glance-api.conf"
"$V/bin/glance-manage" --config-file "$D/etc/glance-api.conf" db_sync > "$LOG/glance-manage.log" 2>&1 \
  || fail_with_log glance-manage "$LOG/glance-manage.log"
log "glance: database ready"
fi
[ "$MODE" = prepare ] && exit 0
cd "$D"
# standalone glance-api refuses to start in recent releases: serve the WSGI app with gunicorn
start_bg glance "$LOG/glance-gunicorn.log" "$V/bin/gunicorn" --no-control-socket --chdir "$D" \
  -b 127.0.0.1:$GLANCE_PORT -w 2 --timeout 300 --access-logfile "$LOG/glance-access.log" glance.wsgi.api:application
for i in $(seq 1 120); do
  curl -m 5 -sf "http://127.0.0.1:$GLANCE_PORT/versions" -o /dev/null && break
  alive glance || fail_with_log glance "$LOG/glance-gunicorn.log" "$LOG/glance-api.log"
  sleep 0.5
done
curl -m 5 -sf "http://127.0.0.1:$GLANCE_PORT/versions" -o /dev/null || fail_with_log glance "$LOG/glance-gunicorn.log" "$LOG/glance-api.log"
code=$(curl -m 10 -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $(admin_token)" "http://127.0.0.1:$GLANCE_PORT/v2/images")
[ "$code" = 200 ] || fail_with_log "glance (authenticated GET /v2/images -> $code)" "$LOG/glance-gunicorn.log" "$LOG/glance-api.log"
log "glance up (pid $(cat "$RUN/glance.pid")) on http://127.0.0.1:$GLANCE_PORT"
