#!/bin/bash
# Cinder (PyPI, the release of the peers' nova): cinder-api under gunicorn on :8776 (https front
# :8786 in apache.sh), cinder-scheduler, cinder-volume; MariaDB database "cinder", RabbitMQ.
# Backend: the NFS driver on a local directory bind-mounted where the driver expects its NFS
# mount; volumes are real sparse files. (LVM cannot work here: the kernel has no device-mapper;
# see NOTES.md.)
#   cinder.sh prepare   database + config + db sync (needs MariaDB only)
#   cinder.sh start     bind mount + start the three services; ready when cinder-volume reports up
#                       (needs keystone with the cinder service user: setup_cloud.py)
#   cinder.sh stop      stop them (by recorded pid) and umount
#   cinder.sh           prepare + start
set -e
. "$(dirname "$0")/lib.sh"
MODE=${1:-all}
D=$P/cinder; E=$D/etc; V=$ST_VENV
SERVICES="cinder-api cinder-scheduler cinder-volume"
# the "NFS share" is never contacted: os-brick skips mounting when /proc/mounts already lists
# <nfs_mount_point_base>/<md5 of the share string>, and that is where we bind-mount the export
SHARE=127.0.0.1:$D/nfs-export
MNT=$D/mnt/$(printf '%s' "$SHARE" | md5sum | cut -d' ' -f1)

if [ "$MODE" = stop ]; then
  stop_pids $SERVICES
  if awk '{print $2}' /proc/mounts | grep -qxF "$MNT"; then umount "$MNT"; fi
  log "cinder stopped"; exit 0
fi

if [ "$MODE" != start ]; then
for s in $SERVICES; do alive "$s" && die "$s is running (cinder.sh stop first)"; done
awk '{print $2}' /proc/mounts | grep -qxF "$MNT" && umount "$MNT"
rm -rf "$D"; mkdir -p "$E" "$D/state" "$D/lock" "$D/nfs-export" "$D/mnt"
mariadb --defaults-file="$P/mariadb/my.cnf" -uroot -e 'DROP DATABASE IF EXISTS cinder; CREATE DATABASE cinder;' \
  > "$LOG/cinder-db.log" 2>&1 || fail_with_log "cinder database" "$LOG/cinder-db.log"
echo "$SHARE" > "$E/nfs_shares"
cp "$V/etc/cinder/api-paste.ini" "$V/etc/cinder/resource_filters.json" "$E/"
SVC_PW=$(cat "$P/secrets/service_password")
AUTH="auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = cinder
password = $SVC_PW"
cat > "$E/cinder.conf" <<EOC
[DEFAULT]
host = cinderhost
my_ip = 127.0.0.1
log_dir = $LOG
state_path = $D/state
transport_url = rabbit://guest:guest@127.0.0.1:$RABBIT_PORT/
auth_strategy = keystone
api_paste_config = $E/api-paste.ini
enabled_backends = nfs-1
# create-from-image: glance direct (the catalog's public glance is https with the local CA)
glance_api_servers = http://127.0.0.1:$GLANCE_PORT
# the list filters users may use (GET /attachments?volume_id=...): the default path is in /etc,
# and without the file every filter is refused as "Invalid filters"
resource_query_filters_file = $E/resource_filters.json
[database]
connection = $(db_url cinder)
[keystone_authtoken]
www_authenticate_uri = https://127.0.0.1:$KS_APACHE_TLS_PORT/v3
auth_url = http://127.0.0.1:$KS_PORT
$AUTH
service_token_roles_required = true
[nova]
# cinder asks nova on every attachment delete whether the server still uses it, re-scoping the
# user's token at the catalog's identity URL: public is https with the local CA, so use direct
token_auth_url = http://127.0.0.1:$KS_PORT/v3
interface = internal
region_name = RegionOne
auth_url = http://127.0.0.1:$KS_PORT
$AUTH
[oslo_concurrency]
lock_path = $D/lock
[oslo_messaging_rabbit]
heartbeat_timeout_threshold = 0
[oslo_middleware]
enable_proxy_headers_parsing = true
# privsep helpers would be started through sudo + cinder-rootwrap; there is no sudo here and we
# run as root, so call the venv's helper directly
[cinder_sys_admin]
helper_command = $V/bin/privsep-helper --config-file $E/cinder.conf
[privsep_osbrick]
helper_command = $V/bin/privsep-helper --config-file $E/cinder.conf
[nfs-1]
volume_driver = cinder.volume.drivers.nfs.NfsDriver
volume_backend_name = nfs-1
nfs_shares_config = $E/nfs_shares
nfs_mount_point_base = $D/mnt
nfs_sparsed_volumes = true
nfs_snapshot_support = true
# false: skip the driver's probing for an "insecure environment" (two WARNINGs at start-up)
nas_secure_file_operations = false
nas_secure_file_permissions = false
EOC
printf '[DEFAULT]\nlog_file = %s\n' "$LOG/cinder-api.log" > "$E/cinder-api.conf"
chmod 600 "$E/cinder.conf"
# oslo.config must read our files, not gunicorn's argv
cat > "$D/wsgi_volume.py" <<EOW
import sys
sys.argv = [sys.argv[0], '--config-file', '$E/cinder.conf', '--config-file', '$E/cinder-api.conf']
from cinder.wsgi.api import application  # noqa
EOW
"$V/bin/cinder-manage" --config-file "$E/cinder.conf" db sync > "$LOG/cinder-manage.log" 2>&1 \
  || fail_with_log cinder-manage "$LOG/cinder-manage.log"
log "cinder: database ready"
fi
[ "$MODE" = prepare ] && exit 0

mkdir -p "$MNT"
awk '{print $2}' /proc/mounts | grep -qxF "$MNT" || mount --bind "$D/nfs-export" "$MNT"
start_bg cinder-api "$LOG/cinder-api-gunicorn.log" "$V/bin/gunicorn" --no-control-socket --chdir "$D" \
  -b 127.0.0.1:$CINDER_PORT -w 1 --timeout 120 --access-logfile "$LOG/cinder-api-access.log" wsgi_volume:application
for s in scheduler volume; do start_bg cinder-$s "$LOG/cinder-$s.out" "$V/bin/cinder-$s" --config-file "$E/cinder.conf"; done
wait_http cinder-api "http://127.0.0.1:$CINDER_PORT/" 120 0.5 cinder-api "$LOG/cinder-api-gunicorn.log" "$LOG/cinder-api.log"
# ready = scheduler and the backend's volume service report up (10-20 s after start)
T=$(admin_token)
AP=$(curl -m 10 -s -H "X-Auth-Token: $T" -H "X-Subject-Token: $T" "$KS/auth/tokens" | json 'd["token"]["project"]["id"]')
up=""
for i in $(seq 1 90); do
  for s in $SERVICES; do alive "$s" || fail_with_log "$s" "$LOG/$s.out" "$LOG/$s.log" "$LOG/cinder-api-gunicorn.log"; done
  up=$(curl -m 10 -s -H "X-Auth-Token: $T" "http://127.0.0.1:$CINDER_PORT/v3/$AP/os-services" 2>/dev/null \
       | json '" ".join(sorted(s["binary"] for s in d["services"] if s["state"] == "up"))' 2>/dev/null) || true
  [ "$up" = "cinder-scheduler cinder-volume" ] && break
  sleep 1
done
[ "$up" = "cinder-scheduler cinder-volume" ] \
  || fail_with_log "cinder services (up: '${up:-none}')" "$LOG/cinder-volume.log" "$LOG/cinder-scheduler.log" "$LOG/cinder-api.log"
log "cinder up (api pid $(cat "$RUN/cinder-api.pid")) on http://127.0.0.1:$CINDER_PORT, backend nfs-1 in $D/nfs-export"
