#!/bin/bash
# Real neutron-server API (PyPI) under gunicorn on http://127.0.0.1:9696 (https front :9697):
# ML2 without agents (one own mechanism driver binds every port: ml2_bindall/), the L3 router
# plugin (routers and floating IPs as API objects; no L3 agent), sqlite.
# FEDPROBE_NEUTRON_STUB=1 starts the 30-line read-only stub (neutron_stub.py) instead.
#   neutron.sh prepare | start | (both)
set -e
. "$(dirname "$0")/lib.sh"
MODE=${1:-all}
D=$P/neutron; V=$NT_VENV
mkdir -p "$D/etc/plugins/ml2" "$D/state"
if [ "${FEDPROBE_NEUTRON_STUB:-0}" = 1 ]; then
  [ "$MODE" = prepare ] && exit 0
  start_bg neutron "$LOG/neutron-stub.log" python3 "$PEERS_SRC/neutron_stub.py" $NEUTRON_PORT
  wait_http neutron-stub "http://127.0.0.1:$NEUTRON_PORT/" 50 0.2 neutron "$LOG/neutron-stub.log"
  log "neutron STUB up (pid $(cat "$RUN/neutron.pid")) on http://127.0.0.1:$NEUTRON_PORT"; exit 0
fi
export OS_NEUTRON_CONFIG_DIR=$D/etc
if [ "$MODE" != start ]; then
cp "$V/etc/neutron/api-paste.ini" "$D/etc/"
cat > "$D/etc/neutron.conf" <<EOC
[DEFAULT]
log_file = $LOG/neutron.log
state_path = $D/state
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = rabbit://guest:guest@127.0.0.1:$RABBIT_PORT/
api_paste_config = $D/etc/api-paste.ini
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
[database]
connection = sqlite:///$D/neutron.db
[keystone_authtoken]
www_authenticate_uri = https://127.0.0.1:$KS_APACHE_TLS_PORT/v3
auth_url = http://127.0.0.1:$KS_PORT
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = neutron
password = $(cat "$P/secrets/service_password")
[oslo_concurrency]
lock_path = $D/state
[oslo_middleware]
enable_proxy_headers_parsing = true
EOC
chmod 600 "$D/etc/neutron.conf"
# the peers' own mechanism driver (no L2 agent here): without a binding Nova refuses to boot a
# server on a network (PortBindingFailed). Built from a copy so the source tree stays clean.
rm -rf "$D/ml2_bindall"; cp -r "$PEERS_SRC/ml2_bindall" "$D/ml2_bindall"
"$V/bin/pip" install -q --no-deps "$D/ml2_bindall" > "$LOG/neutron-ml2.log" 2>&1 \
  || fail_with_log neutron-ml2 "$LOG/neutron-ml2.log"
printf '[ml2]\ntype_drivers = flat,vlan\ntenant_network_types =\nmechanism_drivers = fedprobe_bindall\nextension_drivers = port_security\n[ml2_type_flat]\nflat_networks = *\n' \
  > "$D/etc/plugins/ml2/ml2_conf.ini"
printf 'import sys\nsys.argv = sys.argv[:1]\nfrom neutron.wsgi.api import application  # noqa\n' > "$D/wsgi_neutron.py"
# neutron's alembic migrations do not run on sqlite: create the schema from the models, then stamp
{
  "$V/bin/python" -c "from neutron.db.migration.models import head; import sqlalchemy as sa; head.get_metadata().create_all(sa.create_engine('sqlite:///$D/neutron.db'))"
  "$V/bin/neutron-db-manage" --config-file "$D/etc/neutron.conf" --config-file "$D/etc/plugins/ml2/ml2_conf.ini" stamp heads
} > "$LOG/neutron-dbsetup.log" 2>&1 || fail_with_log neutron-db "$LOG/neutron-dbsetup.log"
log "neutron: database ready"
fi
[ "$MODE" = prepare ] && exit 0
cd "$D"
start_bg neutron "$LOG/neutron-gunicorn.log" "$V/bin/gunicorn" --no-control-socket --chdir "$D" \
  -b 127.0.0.1:$NEUTRON_PORT -w 1 --timeout 120 --access-logfile "$LOG/neutron-access.log" wsgi_neutron:application
for i in $(seq 1 120); do
  curl -m 5 -sf "http://127.0.0.1:$NEUTRON_PORT/" -o /dev/null && break
  alive neutron || fail_with_log neutron "$LOG/neutron-gunicorn.log" "$LOG/neutron.log"
  sleep 0.5
done
code=$(curl -m 20 -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $(admin_token)" "http://127.0.0.1:$NEUTRON_PORT/v2.0/networks")
[ "$code" = 200 ] || fail_with_log "neutron (authenticated GET /v2.0/networks -> $code)" "$LOG/neutron-gunicorn.log" "$LOG/neutron.log"
log "neutron up (pid $(cat "$RUN/neutron.pid")) on http://127.0.0.1:$NEUTRON_PORT"
