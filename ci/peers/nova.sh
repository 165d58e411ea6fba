#!/bin/bash
# Placement (8778) + nova-api (8774, https front 8784) + nova-conductor/scheduler/compute with
# compute_driver = fake.SmallFakeDriver, all from PyPI, MariaDB (mariadb.sh), RabbitMQ for RPC.
# Volumes (cinder.sh) attach to the fake servers; nova sends cinder a service token.
# nova-compute with the fake driver cannot restart on old state: up.sh always wipes $P/nova.
#   nova.sh prepare   config + database syncs (needs nothing running: up.sh overlaps it with keystone)
#   nova.sh start     start the services and wait for the fake compute node to be usable
#   nova.sh           both
set -e
. "$(dirname "$0")/lib.sh"
MODE=${1:-all}
D=$P/nova; PD=$P/placement; V=$OS_VENV; NB=$V/bin
SVC_PW=$(cat "$P/secrets/service_password")
NC="--config-file $D/etc/nova.conf"
if [ "$MODE" != start ]; then
mkdir -p "$D/etc" "$D/state" "$D/instances" "$PD/etc"
cp "$V/etc/nova/api-paste.ini" "$D/etc/"
AUTH="auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
password = $SVC_PW"
cat > "$PD/etc/placement.conf" <<EOC
[DEFAULT]
log_file = $LOG/placement.log
[placement_database]
connection = $(db_url placement)
[api]
auth_strategy = keystone
[keystone_authtoken]
www_authenticate_uri = https://127.0.0.1:$KS_APACHE_TLS_PORT/v3
auth_url = http://127.0.0.1:$KS_PORT
username = placement
$AUTH
EOC
cat > "$D/etc/nova.conf" <<EOC
[DEFAULT]
log_dir = $LOG
state_path = $D/state
instances_path = $D/instances
transport_url = rabbit://guest:guest@127.0.0.1:$RABBIT_PORT/
compute_driver = fake.SmallFakeDriver
my_ip = 127.0.0.1
host = fakehost
# headroom for parallel tests on the small fake node (2 vcpus, 8 GB)
initial_cpu_allocation_ratio = 16.0
initial_ram_allocation_ratio = 4.0
initial_disk_allocation_ratio = 4.0
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 2
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $D/etc/api-paste.ini
[api_database]
connection = $(db_url nova_api)
[database]
connection = $(db_url nova)
[keystone_authtoken]
www_authenticate_uri = https://127.0.0.1:$KS_APACHE_TLS_PORT/v3
auth_url = http://127.0.0.1:$KS_PORT
username = nova
$AUTH
[placement]
auth_url = http://127.0.0.1:$KS_PORT/v3
username = placement
region_name = RegionOne
valid_interfaces = internal
$AUTH
[glance]
api_servers = http://127.0.0.1:$GLANCE_PORT
[neutron]
auth_url = http://127.0.0.1:$KS_PORT/v3
username = nova
region_name = RegionOne
endpoint_override = http://127.0.0.1:$NEUTRON_PORT
$AUTH
[cinder]
# nova-api, -conductor and -compute call cinder on its internal (http) endpoint: the public one
# is https with the local CA
catalog_info = volumev3::internalURL
os_region_name = RegionOne
[service_user]
# a service token next to the user's on calls to cinder & co. Cinder refuses a detach
# (attachment delete) from nova without it (409 ConflictNovaUsingAttachment, OSSA-2023-003)
send_service_user_token = true
auth_url = http://127.0.0.1:$KS_PORT
username = nova
$AUTH
[oslo_concurrency]
lock_path = $D/state
[oslo_middleware]
enable_proxy_headers_parsing = true
[oslo_messaging_rabbit]
heartbeat_timeout_threshold = 0
EOC
chmod 600 "$D/etc/nova.conf" "$PD/etc/placement.conf"
# oslo.config must not parse gunicorn's argv; oslo.log would name the API's log gunicorn.log,
# so the API reads one more config file (OS_NOVA_CONFIG_FILES) that names its log
printf 'import sys\nsys.argv = sys.argv[:1]\nfrom nova.wsgi.osapi_compute import application  # noqa\n' > "$D/wsgi_compute.py"
printf '[DEFAULT]\nlog_file = %s\n' "$LOG/nova-api.log" > "$D/etc/nova-api.conf"
(
  set -e
  echo "== placement-manage db sync"; "$NB/placement-manage" --config-file "$PD/etc/placement.conf" db sync
  echo "== nova-manage api_db sync"; "$NB/nova-manage" $NC api_db sync
  echo "== nova-manage cell_v2 map_cell0"; "$NB/nova-manage" $NC cell_v2 map_cell0 --database_connection "$(db_url nova_cell0)"
  echo "== nova-manage cell_v2 create_cell"; "$NB/nova-manage" $NC cell_v2 create_cell --name cell1
  echo "== nova-manage db sync"; "$NB/nova-manage" $NC db sync
) > "$LOG/nova-manage.log" 2>&1 || fail_with_log nova-manage "$LOG/nova-manage.log"
log "nova: databases ready"
fi
[ "$MODE" = prepare ] && exit 0
cd "$D"
OS_PLACEMENT_CONFIG_DIR=$PD/etc start_bg placement "$LOG/placement-gunicorn.log" "$NB/gunicorn" --no-control-socket \
  --chdir "$PD" -b 127.0.0.1:$PLACEMENT_PORT -w 1 --timeout 120 --access-logfile "$LOG/placement-access.log" \
  placement.wsgi.api:application
OS_NOVA_CONFIG_DIR=$D/etc OS_NOVA_CONFIG_FILES="api-paste.ini;nova.conf;nova-api.conf" start_bg nova-api "$LOG/nova-api-gunicorn.log" "$NB/gunicorn" --no-control-socket \
  --chdir "$D" -b 127.0.0.1:$NOVA_PORT -w 2 --timeout 120 --access-logfile "$LOG/nova-api-access.log" \
  wsgi_compute:application
for s in conductor scheduler compute; do start_bg nova-$s "$LOG/nova-$s.out" "$NB/nova-$s" $NC; done
wait_http placement "http://127.0.0.1:$PLACEMENT_PORT/" 120 0.5 placement "$LOG/placement-gunicorn.log" "$LOG/placement.log"
wait_http nova-api "http://127.0.0.1:$NOVA_PORT/" 120 0.5 nova-api "$LOG/nova-api-gunicorn.log" "$LOG/nova-api.log"
code=$(curl -m 20 -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $(admin_token)" "http://127.0.0.1:$NOVA_PORT/v2.1/flavors")
[ "$code" = 200 ] || fail_with_log "nova-api (authenticated GET /flavors -> $code)" "$LOG/nova-api-gunicorn.log" "$LOG/nova-api.log"
# wait until the fake compute node is in placement and mapped into cell1 (the scheduler discovers
# hosts every 2 s; nova-manage discover_hosts now and then as a fallback). SQL reads are cheap.
q() { mariadb --defaults-file="$P/mariadb/my.cnf" -uroot -N -e "$2" "$1" 2>/dev/null; }
for i in $(seq 1 120); do
  for s in conductor scheduler compute; do
    alive nova-$s || fail_with_log nova-$s "$LOG/nova-$s.out" "$LOG/nova-$s.log"
  done
  q placement "select name from resource_providers" | grep -q fakehost \
    && q nova_api "select host from host_mappings" | grep -q fakehost && break
  [ $((i % 10)) = 0 ] && "$NB/nova-manage" $NC cell_v2 discover_hosts --verbose >> "$LOG/nova-discover.log" 2>&1 || true
  sleep 0.5
done
q nova_api "select host from host_mappings" | grep -q fakehost \
  || fail_with_log "nova-compute registration" "$LOG/nova-compute.log" "$LOG/nova-scheduler.log" "$LOG/nova-conductor.log" "$LOG/nova-discover.log"
# the compute service must be reported up
T=$(admin_token)
for i in $(seq 1 60); do
  curl -m 10 -s -H "X-Auth-Token: $T" "http://127.0.0.1:$NOVA_PORT/v2.1/os-services?binary=nova-compute" \
    | grep -q '"state": "up"' && break
  sleep 1
done
curl -m 10 -s -H "X-Auth-Token: $T" "http://127.0.0.1:$NOVA_PORT/v2.1/os-services?binary=nova-compute" | grep -q '"state": "up"' \
  || fail_with_log "nova-compute service state" "$LOG/nova-compute.log"
log "nova up: api pid $(cat "$RUN/nova-api.pid"), placement pid $(cat "$RUN/placement.pid"), compute host fakehost"
