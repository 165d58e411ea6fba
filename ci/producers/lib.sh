# Shared by the producer scripts: the venv and the peers' facts.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
P=${FEDPROBE_PRODUCERS_DIR:-/tmp/fedprobe-producers}
VENV=$P/venv
OUT=$P/out
PEERS_ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}

# cloud-info-provider and caso from PyPI, pinned to what was tested.
ensure_venv() {
  if [ ! -x "$VENV/bin/cloud-info-provider-service" ] || [ ! -x "$VENV/bin/caso-extract" ]; then
    mkdir -p "$P"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "cloud-info-provider==1.2.0" "caso==5.2.2" mock > "$P/pip.log" 2>&1
  fi
}

load_peers() {
  if [ ! -f "$PEERS_ENV" ]; then
    echo "no $PEERS_ENV: bring the local OpenStack up first (ci/peers/up.sh)" >&2
    exit 3
  fi
  # Plain shell variables, not exported: names like OS_CLOUD_NAME would
  # confuse openstacksdk's environment-based cloud.
  # shellcheck disable=SC1090
  . "$PEERS_ENV"
}
