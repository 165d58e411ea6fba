#!/bin/bash
# The Google Compute Engine fixture (ci/peers/gce_fixture.py): compute v1 and the two token
# endpoints (OAuth2 JWT-bearer grant, Security Token Service), routes and shapes from the
# compute v1 discovery document bundled in google-api-python-client (pinned in
# requirements-gce.lock). Bound to 127.0.0.1:$GCE_PORT; stopped by its recorded pid.
#
#   gce.sh install   venv $CACHE/venv-gce (cached while the lock file is unchanged)
#   gce.sh start     service-account key + fixture; writes $P/gce.env
#   gce.sh stop      stop the fixture by its pid file
#   gce.sh client    run Google's clients against the running fixture (ci/peers/gce_client_check.py)
#   gce.sh check     install, then a private fixture on a free port, the client check, stop it
#                    (what ci/test.sh runs: independent of the running peers)
. "$(dirname "$0")/lib.sh"
set -e
GCE_PORT=${GCE_PORT:-15080}
GCE_VENV=$CACHE/venv-gce
LOCK=$PEERS_SRC/requirements-gce.lock

install() {
  local stamp; stamp=$(sha256sum "$LOCK" | cut -c1-16)
  if [ -x "$GCE_VENV/bin/python" ] && [ "$(cat "$GCE_VENV/.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "venv $GCE_VENV: cached"; return 0
  fi
  rm -rf "$GCE_VENV"; mkdir -p "$CACHE"
  python3 -m venv "$GCE_VENV"
  "$GCE_VENV/bin/pip" install -q -r "$LOCK" > "$LOG/pip-gce.log" 2>&1 || { tail -n 30 "$LOG/pip-gce.log" >&2; die "pip (gce)"; }
  echo "$stamp" > "$GCE_VENV/.stamp"
  log "venv $GCE_VENV: installed"
}

start() {
  install
  mkdir -p "$P/gce" "$LOG"
  alive gce && { log "gce fixture already running"; return 0; }
  # the service-account key a probe signs its JWT with; the fixture checks signatures with it
  if [ ! -f "$P/gce/sa.json" ]; then
    "$GCE_VENV/bin/python" "$PEERS_SRC/gce_fixture.py" --make-key "$P/gce/sa.json" \
      --token-uri "http://127.0.0.1:$GCE_PORT/token"
    chmod 600 "$P/gce/sa.json"
  fi
  start_bg gce "$LOG/gce.log" "$GCE_VENV/bin/python" "$PEERS_SRC/gce_fixture.py" \
    --port "$GCE_PORT" --key "$P/gce/sa.json"
  wait_http gce "http://127.0.0.1:$GCE_PORT/healthz" 50 0.2 gce "$LOG/gce.log"
  cat > "$P/gce.env" <<ENV
GCE_URL=http://127.0.0.1:$GCE_PORT/compute/v1/
GCE_ROOT=http://127.0.0.1:$GCE_PORT/
GCE_STS_URL=http://127.0.0.1:$GCE_PORT/v1/token
GCE_TOKEN_URL=http://127.0.0.1:$GCE_PORT/token
GCE_KEY_FILE=$P/gce/sa.json
GCE_PYTHON=$GCE_VENV/bin/python
GCE_FIXTURE=$PEERS_SRC/gce_fixture.py
ENV
  log "gce fixture up on 127.0.0.1:$GCE_PORT (pid $(cat "$RUN/gce.pid"))"
}

stop() { stop_pids gce; log "gce fixture stopped"; }

# check: its own key and fixture (port 0: the fixture prints the one it got), stopped by pid
check() {
  install
  local d pid port rc
  d=$(mktemp -d /tmp/fedprobe-gce-check.XXXXXX)
  "$GCE_VENV/bin/python" "$PEERS_SRC/gce_fixture.py" --make-key "$d/sa.json"
  "$GCE_VENV/bin/python" "$PEERS_SRC/gce_fixture.py" --port 0 --key "$d/sa.json" > "$d/out" 2> "$d/log" &
  pid=$!
  for _ in $(seq 1 50); do grep -q listening "$d/out" 2>/dev/null && break; sleep 0.1; done
  port=$(sed -n 's/^listening 127.0.0.1:\([0-9]*\).*/\1/p' "$d/out")
  if [ -z "$port" ]; then kill "$pid" 2>/dev/null; tail -n 20 "$d/log" >&2; die "gce fixture did not start"; fi
  # not under set -e: the fixture is stopped whatever the check says
  rc=0
  timeout 300 "$GCE_VENV/bin/python" "$PEERS_SRC/gce_client_check.py" "http://127.0.0.1:$port/" "$d/sa.json" || rc=$?
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true  # 143: the SIGTERM we sent
  [ $rc = 0 ] || tail -n 30 "$d/log" >&2
  rm -rf "$d"
  return $rc
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  check) check ;;
  client) "$GCE_VENV/bin/python" "$PEERS_SRC/gce_client_check.py" "http://127.0.0.1:$GCE_PORT/" "$P/gce/sa.json" ;;
  *) echo "usage: $0 install|start|stop|client|check" >&2; exit 2 ;;
esac
