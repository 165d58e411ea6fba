#!/bin/bash
# The Infrastructure Manager (PyPI `IM`, the orchestrator behind the federation's orchestration
# services) with its REST API on 127.0.0.1:$IM_PORT, plain http, sqlite under $P/im. It deploys on
# the peers' OpenStack with the credentials each request carries (no cloud credentials here).
#   im.sh start    venv (install.sh im), config, start, wait for GET /version, IM facts into peers.env
#   im.sh stop     stop it (by recorded pid), drop the IM facts from peers.env
#   im.sh status   exit 0 when it runs and answers
# Needs the peers' CA ($P/tls/ca.pem): IM checks the site's TLS (VERIFI_SSL) against it.
set -e
. "$(dirname "$0")/lib.sh"
MODE=${1:-start}
D=$P/im
IM_USER=fedprobe

# drop_facts : remove the IM_* lines from peers.env (atomically, as setup_cloud.py writes it)
drop_facts() {
  [ -f "$P/peers.env" ] || return 0
  grep -v '^IM_' "$P/peers.env" > "$P/peers.env.im" || true
  mv "$P/peers.env.im" "$P/peers.env"
}

answers() { curl -m 3 -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$IM_PORT/version" 2>/dev/null | grep -qx 200; }

case "$MODE" in
  stop)
    stop_pids im
    drop_facts
    log "im stopped"; exit 0 ;;
  status)
    alive im && answers && { log "im runs ($(cat "$RUN/im.pid")) on http://127.0.0.1:$IM_PORT"; exit 0; }
    log "im is not running"; exit 1 ;;
  start) ;;
  *) die "usage: im.sh start|stop|status" ;;
esac

alive im && die "im is running (im.sh stop first)"
[ -f "$P/tls/ca.pem" ] || die "no $P/tls/ca.pem: start the peers first (up.sh)"
ss -ltnH "sport = :$IM_PORT" | grep -q . && die "port $IM_PORT is taken"
bash "$PEERS_SRC/install.sh" im
rm -rf "$D"; mkdir -p "$D/remote" "$RUN" "$LOG"
# IM's own user: any name and password, checked against USER_DB (without one, IM takes anyone)
[ -s "$P/secrets/im_password" ] || { gen_secret > "$P/secrets/im_password"; chmod 600 "$P/secrets/im_password"; }
python3 - "$D/users.json" "$IM_USER" "$P/secrets/im_password" <<'EOP'
import json, sys
json.dump({"users": [{"username": sys.argv[2], "password": open(sys.argv[3]).read().strip()}]}, open(sys.argv[1], "w"))
EOP
chmod 600 "$D/users.json"
# IM has no --config flag: it reads <site-packages>/im.cfg (then etc/im.cfg, /etc/im/im.cfg)
SITE=$("$IM_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > "$D/im.cfg" <<EOC
[im]
REST_ADDRESS = 127.0.0.1
REST_PORT = $IM_PORT
REST_SSL = False
DATA_DB = sqlite://$D/inf.dat
USER_DB = $D/users.json
LOG_FILE = $LOG/im.log
LOG_LEVEL = DEBUG
REMOTE_CONF_DIR = $D/remote
# (sic) libcloud checks the site's certificate against SSL_CERT_FILE / REQUESTS_CA_BUNDLE
VERIFI_SSL = True
VM_INFO_UPDATE_FREQUENCY = 5
WAIT_RUNNING_VM_TIMEOUT = 120
EOC
cp "$D/im.cfg" "$SITE/im.cfg"
CA=$P/tls/ca.pem
SSL_CERT_FILE=$CA REQUESTS_CA_BUNDLE=$CA start_bg im "$LOG/im.out" "$IM_VENV/bin/im_service"
for ((i = 0; i < 120; i++)); do
  answers && break
  alive im || fail_with_log im "$LOG/im.out" "$LOG/im.log"
  sleep 0.5
done
answers || fail_with_log "im (GET /version)" "$LOG/im.out" "$LOG/im.log"
VERSION=$(curl -m 3 -s "http://127.0.0.1:$IM_PORT/version")
drop_facts
if [ -f "$P/peers.env" ]; then
  { echo "IM_URL=http://127.0.0.1:$IM_PORT"; echo "IM_VERSION=$VERSION"; echo "IM_USER=$IM_USER"
    echo "IM_PASSWORD_FILE=$P/secrets/im_password"; echo "IM_LOG=$LOG/im.log"; } >> "$P/peers.env"
fi
log "im $VERSION up (pid $(cat "$RUN/im.pid")) on http://127.0.0.1:$IM_PORT"
