#!/bin/bash
# Swift (PyPI) on 127.0.0.1: proxy :8080 (https front :8090 in apache.sh) with keystone auth
# (authtoken + keystoneauth: operator roles admin, member), account :6202, container :6201,
# object :6200. One replica on one "disk", a directory under $P/swift/node/d1. No replicators,
# auditors or updaters: with one replica there is nothing for them to do.
#   swift.sh prepare   config + rings (needs nothing running)
#   swift.sh start     start the four servers; ready when an authenticated account HEAD works
#                      (needs keystone with the swift service user: setup_cloud.py)
#   swift.sh stop      stop them (by recorded pid)
#   swift.sh           prepare + start
set -e
. "$(dirname "$0")/lib.sh"
MODE=${1:-all}
D=$P/swift; E=$D/etc; V=$ST_VENV
SERVERS="swift-account swift-container swift-object swift-proxy"

if [ "$MODE" = stop ]; then stop_pids $SERVERS; log "swift stopped"; exit 0; fi

if [ "$MODE" != start ]; then
for s in $SERVERS; do alive "$s" && die "$s is running (swift.sh stop first)"; done
rm -rf "$D"; mkdir -p "$E" "$D/node/d1"
cat > "$E/swift.conf" <<EOC
[swift-hash]
swift_hash_path_suffix = $(gen_secret)
swift_hash_path_prefix = $(gen_secret)
[storage-policy:0]
name = Policy-0
default = yes
EOC
# every server names swift_dir, else swift reads /etc/swift. user = root: swift drops privileges
# to this user and Debian has no "swift" user. mount_check = false: the device is a directory.
# workers = 0: serve in the main process, half the memory of one worker, enough for tests.
COMMON="[DEFAULT]
bind_ip = 127.0.0.1
workers = 0
user = root
swift_dir = $E
devices = $D/node
mount_check = false
log_level = INFO"
for kind in object container account; do
  port_var=SWIFT_${kind^^}_PORT
  cat > "$E/$kind-server.conf" <<EOC
$COMMON
bind_port = ${!port_var}
[pipeline:main]
pipeline = $kind-server
[app:$kind-server]
use = egg:swift#$kind
EOC
done
cat > "$E/proxy-server.conf" <<EOC
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $SWIFT_PORT
workers = 0
user = root
swift_dir = $E
log_level = INFO
[pipeline:main]
# no memcache: without memcached the proxy only caches account/container info per request
pipeline = catch_errors gatekeeper healthcheck proxy-logging listing_formats authtoken keystoneauth copy dlo slo versioned_writes symlink proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
# the first PUT into a project's account creates the account
account_autocreate = true
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = https://127.0.0.1:$KS_APACHE_TLS_PORT/v3
auth_url = http://127.0.0.1:$KS_PORT
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = swift
password = $(cat "$P/secrets/service_password")
# let keystoneauth answer anonymous requests (401 with WWW-Authenticate; public containers)
delay_auth_decision = true
[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = admin, member
reseller_admin_role = ResellerAdmin
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:dlo]
use = egg:swift#dlo
[filter:slo]
use = egg:swift#slo
[filter:versioned_writes]
use = egg:swift#versioned_writes
[filter:symlink]
use = egg:swift#symlink
EOC
chmod 600 "$E"/*.conf
"$V/bin/python" "$PEERS_SRC/swift_rings.py" "$E" $SWIFT_OBJECT_PORT $SWIFT_CONTAINER_PORT $SWIFT_ACCOUNT_PORT \
  > "$LOG/swift-rings.log" 2>&1 || fail_with_log "swift rings" "$LOG/swift-rings.log"
log "swift: config and rings ready"
fi
[ "$MODE" = prepare ] && exit 0

# -v: log to stdout (our log file) too; swift's syslog target /dev/log does not exist here, so
# it sends syslog datagrams to 127.0.0.1:514 where nobody listens
for kind in account container object proxy; do
  start_bg "swift-$kind" "$LOG/swift-$kind.log" "$V/bin/swift-$kind-server" "$E/$kind-server.conf" -v
done
wait_http swift-proxy "http://127.0.0.1:$SWIFT_PORT/healthcheck" 120 0.5 swift-proxy "$LOG/swift-proxy.log"
for kind in account container object; do
  # the backends have no healthcheck filter: any answer below 500 means up
  port_var=SWIFT_${kind^^}_PORT
  wait_http "swift-$kind" "http://127.0.0.1:${!port_var}/healthcheck" 60 0.5 "swift-$kind" "$LOG/swift-$kind.log"
done
# authtoken (service user swift) + keystoneauth + account autocreate through to the backends
T=$(admin_token)
AP=$(curl -m 10 -s -H "X-Auth-Token: $T" -H "X-Subject-Token: $T" "$KS/auth/tokens" | json 'd["token"]["project"]["id"]')
code=$(curl -m 20 -s -o /dev/null -w '%{http_code}' -I -H "X-Auth-Token: $T" "http://127.0.0.1:$SWIFT_PORT/v1/AUTH_$AP")
case "$code" in 200|204) ;; *) fail_with_log "swift (authenticated HEAD of the admin account -> $code)" "$LOG/swift-proxy.log" ;; esac
log "swift up (proxy pid $(cat "$RUN/swift-proxy.pid")) on http://127.0.0.1:$SWIFT_PORT"
