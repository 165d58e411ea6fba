#!/bin/bash
# moto (PyPI `moto[server]`): a real EC2/EBS/STS Query API server on 127.0.0.1:$MOTO_PORT, state in
# memory, for the EC2 backend's tests (probes/tests/it/ec2.rs). Own venv $CACHE/venv-moto, pinned by
# requirements-moto.lock (it carries boto3/botocore too: ci/ec2_client_check.py and the vendored
# service-model checks use botocore's own service definitions from it).
#   moto.sh install   the venv only (cached while the lock file is unchanged)
#   moto.sh start     venv, start, wait for /moto-api/, MOTO_* facts into $P/moto.env
#   moto.sh stop      stop it by its recorded pid
#   moto.sh status    exit 0 when it runs and answers
#   moto.sh reset     wipe moto's in-memory state (between test runs)
# moto validates no credential in its default mode (any keys, any web identity token): see NOTES.md.
set -e
. "$(dirname "$0")/lib.sh"
MODE=${1:-start}
MOTO_PORT=${MOTO_PORT:-15050}
MOTO_VENV=$CACHE/venv-moto
URL=http://127.0.0.1:$MOTO_PORT

answers() { curl -m 3 -s -o /dev/null -w '%{http_code}' "$URL/moto-api/" 2>/dev/null | grep -qx 200; }

install_venv() {
  local lock=$PEERS_SRC/requirements-moto.lock stamp
  stamp=$( (cat "$lock"; python3 --version) | sha256sum | cut -c1-16)
  if [ -f "$MOTO_VENV/.stamp" ] && [ "$(cat "$MOTO_VENV/.stamp")" = "$stamp" ] && [ -x "$MOTO_VENV/bin/moto_server" ]; then
    log "venv $MOTO_VENV: cached"; return 0
  fi
  mkdir -p "$LOG"
  rm -rf "$MOTO_VENV"
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install --progress-bar off -r "$lock" > "$LOG/pip-moto.log" 2>&1 \
    || { tail -30 "$LOG/pip-moto.log"; die "pip install into $MOTO_VENV failed"; }
  echo "$stamp" > "$MOTO_VENV/.stamp"
  log "venv $MOTO_VENV: installed"
}

case "$MODE" in
  install) install_venv; exit 0 ;;
  stop) stop_pids moto; rm -f "$P/moto.env"; log "moto stopped"; exit 0 ;;
  status)
    alive moto && answers && { log "moto runs ($(cat "$RUN/moto.pid")) on $URL"; exit 0; }
    log "moto is not running"; exit 1 ;;
  reset) curl -m 5 -sf -X POST "$URL/moto-api/reset" >/dev/null; exit 0 ;;
  start) ;;
  *) die "usage: moto.sh install|start|stop|status|reset" ;;
esac

alive moto && die "moto is running (moto.sh stop first)"
ss -ltnH "sport = :$MOTO_PORT" | grep -q . && die "port $MOTO_PORT is taken"
install_venv
mkdir -p "$RUN" "$LOG"
# MOTO_ENABLE_AMI_VALIDATION: RunInstances with an unknown image fails as on AWS
MOTO_ENABLE_AMI_VALIDATION=true start_bg moto "$LOG/moto.log" "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
wait_http moto "$URL/moto-api/" 100 0.2 moto "$LOG/moto.log"
cat > "$P/moto.env" <<EOE
MOTO_URL=$URL
MOTO_VENV=$MOTO_VENV
MOTO_VERSION=$("$MOTO_VENV/bin/python" -c 'import moto; print(moto.__version__)')
BOTOCORE_VERSION=$("$MOTO_VENV/bin/python" -c 'import botocore; print(botocore.__version__)')
EOE
log "moto up on $URL ($(grep MOTO_VERSION "$P/moto.env"))"
