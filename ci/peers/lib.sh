# shellcheck shell=bash
# Common helpers for ci/peers/*.sh. Source it; it defines the layout of the state directory.
#
#   $P                 state dir (FEDPROBE_PEERS_DIR, default /tmp/fedprobe-peers)
#   $P/cache/          kept across up.sh runs: python venvs, node_modules (stamped by lock file hash)
#   $P/run/            pid files of every process we started
#   $P/log/            all logs
#   $P/tls/            local CA + server cert (regenerated at each up)
#   $P/secrets/        secret files referenced from peers.env
#   $P/<svc>/          per-service config + sqlite dbs (wiped at each up)
set -o pipefail
PEERS_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
P=${FEDPROBE_PEERS_DIR:-/tmp/fedprobe-peers}
export FEDPROBE_PEERS_DIR=$P
CACHE=$P/cache
RUN=$P/run
LOG=$P/log
OS_VENV=$CACHE/venv-os
NT_VENV=$CACHE/venv-neutron
ST_VENV=$CACHE/venv-storage   # cinder + swift
STORAGE_PKGS="cinder swift keystonemiddleware gunicorn PyMySQL"
IM_VENV=$CACHE/venv-im        # the Infrastructure Manager (im.sh)
NODE_DIR=$CACHE/oidc-node
export PYTHONWARNINGS=ignore

# Fixed ports (all on 127.0.0.1)
KS_PORT=5000            # keystone gunicorn (plain http, header-trust federation: never expose)
KS_APACHE_HTTP_PORT=5001
KS_APACHE_TLS_PORT=5443
OP_PORT=8443            # oidc-provider https
NOVA_PORT=8774
NOVA_TLS_PORT=8784
PLACEMENT_PORT=8778
GLANCE_PORT=9292
GLANCE_TLS_PORT=9393
NEUTRON_PORT=9696
NEUTRON_TLS_PORT=9697
CINDER_PORT=8776
CINDER_TLS_PORT=8786
SWIFT_PORT=8080         # swift proxy
SWIFT_TLS_PORT=8090
SWIFT_OBJECT_PORT=6200
SWIFT_CONTAINER_PORT=6201
SWIFT_ACCOUNT_PORT=6202
RABBIT_PORT=5672        # + epmd 4369, erlang distribution 25672
MARIADB_PORT=3306
ALL_PORTS="$MARIADB_PORT $KS_PORT $KS_APACHE_HTTP_PORT $KS_APACHE_TLS_PORT $OP_PORT $NOVA_PORT $NOVA_TLS_PORT $PLACEMENT_PORT $GLANCE_PORT $GLANCE_TLS_PORT $NEUTRON_PORT $NEUTRON_TLS_PORT $CINDER_PORT $CINDER_TLS_PORT $SWIFT_PORT $SWIFT_TLS_PORT $SWIFT_OBJECT_PORT $SWIFT_CONTAINER_PORT $SWIFT_ACCOUNT_PORT $RABBIT_PORT 25672 4369"
# SAML2 ECP (saml.sh): mellon SP (https) and the pysaml2 IdP (https)
SAML_SP_PORT=17443
SAML_IDP_PORT=17088
SAML_NOECP_PORT=17444   # the same SP software without ECP (fault tests)
ALL_PORTS="$ALL_PORTS $SAML_SP_PORT $SAML_IDP_PORT $SAML_NOECP_PORT"
IM_PORT=18800           # Infrastructure Manager REST (im.sh; plain http, loopback only)
ALL_PORTS="$ALL_PORTS $IM_PORT"
export P KS_PORT KS_APACHE_HTTP_PORT KS_APACHE_TLS_PORT OP_PORT NOVA_PORT NOVA_TLS_PORT PLACEMENT_PORT \
  GLANCE_PORT GLANCE_TLS_PORT NEUTRON_PORT NEUTRON_TLS_PORT CINDER_PORT CINDER_TLS_PORT SWIFT_PORT SWIFT_TLS_PORT \
  SWIFT_OBJECT_PORT SWIFT_CONTAINER_PORT SWIFT_ACCOUNT_PORT RABBIT_PORT MARIADB_PORT IM_PORT

export KS=http://127.0.0.1:$KS_PORT/v3
export OIDC_ISSUER=https://127.0.0.1:$OP_PORT
export IMAGE_APPDB_ID=1017 IMAGE_REGISTRY_REF=registry.egi.eu/egi_vm_images/monitoring:1.0

log()  { echo "[peers $(date +%H:%M:%S)] $*"; }
die()  { echo "[peers] FATAL: $*" >&2; exit 1; }

# fail_with_log NAME LOGFILE... : print the tail of the given logs and exit non-zero
fail_with_log() {
  local name=$1; shift
  echo "[peers] FATAL: $name did not come up" >&2
  for f in "$@"; do
    [ -f "$f" ] || continue
    echo "----- last lines of $f -----" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}

# start_bg NAME LOGFILE CMD... : start CMD in the background (own session), record its pid in $RUN/NAME.pid
# The recorded pid is the leader of a new session/process group: down.sh signals the whole group.
# (Without job control, as in a script, the background child is no group leader, so setsid does not
# fork and $! is the service's own pid; set +m makes sure of that.)
start_bg() {
  local name=$1 logf=$2; shift 2
  mkdir -p "$RUN" "$(dirname "$logf")"
  # how to start it again (ctl.sh start NAME), recorded before the service can rename itself
  # (gunicorn and oslo.service rewrite their argv); NUL-separated: cwd, log, argv...
  printf '%s\0' "$PWD" "$logf" "$@" > "$RUN/$name.cmd"
  (umask 077; env -0 > "$RUN/$name.env")
  set +m
  setsid "$@" >"$logf" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
}

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# wait_http NAME URL TRIES SLEEP PIDNAME LOGS... : poll URL (curl -m 3) until any HTTP answer < 500
wait_http() {
  local name=$1 url=$2 tries=$3 pause=$4 pidname=$5; shift 5
  local i code
  for ((i = 0; i < tries; i++)); do
    code=$(curl -m 3 -s -k -o /dev/null -w '%{http_code}' "$url" 2>/dev/null) || true
    if [ -n "$code" ] && [ "$code" != 000 ] && [ "$code" -lt 500 ]; then return 0; fi
    if [ -n "$pidname" ] && ! alive "$pidname"; then
      echo "[peers] $name process (pid file $RUN/$pidname.pid) died" >&2; fail_with_log "$name" "$@"
    fi
    sleep "$pause"
  done
  echo "[peers] $name: $url still not answering (last code ${code:-none})" >&2
  fail_with_log "$name" "$@"
}

# phase NAME CMD... : run CMD and print its duration
phase() {
  local name=$1; shift
  local s ms; s=$(date +%s%N)
  log "=== phase $name"
  "$@" || die "phase $name failed"
  ms=$(( ($(date +%s%N) - s) / 1000000 ))
  printf '[timing] %-28s %4d.%ds\n' "$name" $((ms / 1000)) $((ms % 1000 / 100)) | tee -a "$P/timings.txt"
}

# json PYEXPR : evaluate PYEXPR with d = parsed stdin
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# db_url NAME : SQLAlchemy URL of database NAME on the peers' MariaDB (written by mariadb.sh)
db_url() { echo "mysql+pymysql://fedprobe:$(cat "$P/secrets/db_password")@127.0.0.1:$MARIADB_PORT/$1?charset=utf8mb4"; }

# keystone token helpers (talk to keystone directly)
admin_token() {
  local pw; pw=$(cat "$P/secrets/admin_password")
  curl -m 10 -s -D - -o /dev/null -X POST $KS/auth/tokens -H 'Content-Type: application/json' \
    -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"admin\",\"domain\":{\"id\":\"default\"},\"password\":\"$pw\"}}},\"scope\":{\"project\":{\"name\":\"admin\",\"domain\":{\"id\":\"default\"}}}}}" \
    | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}' | tr -d '\r'
}
subject_token() { awk -F': ' 'tolower($1)=="x-subject-token"{print $2}' | tr -d '\r'; }

# random secret (alnum, 32 chars, no trailing newline: secret files hold exactly the secret)
gen_secret() { python3 -c 'import secrets,string,sys; sys.stdout.write("".join(secrets.choice(string.ascii_letters+string.digits) for _ in range(32)))'; }

# stop_pids NAME... : SIGTERM the process groups of these recorded pids (started by start_bg),
# SIGKILL after 15 s, remove their pid files. (down.sh stops everything; this stops a few.)
stop_pids() {
  local name pid i
  for name in "$@"; do
    [ -f "$RUN/$name.pid" ] && kill -TERM -- "-$(cat "$RUN/$name.pid")" 2>/dev/null
  done
  for name in "$@"; do
    [ -f "$RUN/$name.pid" ] || continue
    pid=$(cat "$RUN/$name.pid")
    for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { log "$name ($pid) ignored SIGTERM, SIGKILL"; kill -KILL -- "-$pid" 2>/dev/null; }
    rm -f "$RUN/$name.pid"
  done
  return 0
}

# umount_under_p : undo every mount below $P (cinder's bind mount), deepest first, so that no
# rm -rf of the state dir ever deletes through a mount
umount_under_p() {
  local m
  for m in $(awk -v p="$P/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" && log "umounted $m"
  done
  return 0
}
