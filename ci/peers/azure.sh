#!/bin/bash
# The Azure fixture (ci/peers/azure_fixture.py, stdlib only): Entra ID v2.0 token endpoint, ARM
# Microsoft.Compute (VMs, disks, images, sizes, LROs) and the disk SAS data plane; routes and
# shapes from the REST API specification subset in testdata/azure-spec/. HTTPS with the peers'
# CA ($P/tls, from tls.sh) on 127.0.0.1:$AZURE_PORT; stopped by its recorded pid.
#
#   azure.sh install   venv $CACHE/venv-azure: azure-identity + azure-mgmt-compute (requirements-azure.lock)
#   azure.sh start     start the fixture; writes $P/azure.env and the client secret file
#   azure.sh stop      stop the fixture by its pid file
#   azure.sh client    run Microsoft's SDKs against the running fixture (ci/peers/azure_sdk_check.py)
. "$(dirname "$0")/lib.sh"
set -e
AZURE_PORT=${AZURE_PORT:-15180}
AZURE_VENV=$CACHE/venv-azure
LOCK=$PEERS_SRC/requirements-azure.lock
URL=https://127.0.0.1:$AZURE_PORT

install() {
  local stamp; stamp=$(sha256sum "$LOCK" | cut -c1-16)
  if [ -x "$AZURE_VENV/bin/python" ] && [ "$(cat "$AZURE_VENV/.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "venv $AZURE_VENV: cached"; return 0
  fi
  rm -rf "$AZURE_VENV"; mkdir -p "$CACHE" "$LOG"
  python3 -m venv "$AZURE_VENV"
  "$AZURE_VENV/bin/pip" install -q -r "$LOCK" > "$LOG/pip-azure.log" 2>&1 || { tail -n 30 "$LOG/pip-azure.log" >&2; die "pip (azure)"; }
  echo "$stamp" > "$AZURE_VENV/.stamp"
  log "venv $AZURE_VENV: installed"
}

start() {
  [ -f "$P/tls/server.key" ] || die "azure: no $P/tls/server.key (run tls.sh first)"
  mkdir -p "$P/azure" "$LOG" "$P/secrets"
  alive azure && { log "azure fixture already running"; return 0; }
  printf '%s' fixture-secret > "$P/secrets/azure_client_secret"; chmod 600 "$P/secrets/azure_client_secret"
  start_bg azure "$LOG/azure.log" python3 "$PEERS_SRC/azure_fixture.py" --port "$AZURE_PORT" \
    --tls-cert "$P/tls/server-chain.pem" --tls-key "$P/tls/server.key"
  wait_http azure "$URL/fedprobe-tenant/v2.0/.well-known/openid-configuration" 50 0.2 azure "$LOG/azure.log"
  cat > "$P/azure.env" <<ENV
AZURE_URL=$URL
AZURE_AUTHORITY=$URL
AZURE_TENANT=fedprobe-tenant
AZURE_CLIENT_ID=fedprobe-app
AZURE_CLIENT_SECRET_FILE=$P/secrets/azure_client_secret
AZURE_SUBSCRIPTION=0000-sub
AZURE_RESOURCE_GROUP=fedprobe-rg
AZURE_LOCATION=westeurope
AZURE_IMAGE=egi-monitoring
AZURE_PYTHON=$AZURE_VENV/bin/python
AZURE_FIXTURE=$PEERS_SRC/azure_fixture.py
ENV
  log "azure fixture up on $URL (pid $(cat "$RUN/azure.pid"))"
}

stop() { stop_pids azure; rm -f "$P/azure.env"; log "azure fixture stopped"; }

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  client) install; REQUESTS_CA_BUNDLE=$P/tls/ca.pem SSL_CERT_FILE=$P/tls/ca.pem \
            "$AZURE_VENV/bin/python" "$PEERS_SRC/azure_sdk_check.py" "$URL" ;;
  *) echo "usage: $0 install|start|stop|client" >&2; exit 2 ;;
esac
