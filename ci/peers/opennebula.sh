#!/bin/bash
# OpenNebula for the tests: the pyone venv, the fixture (ci/peers/one_fixture.py) checked by
# pyone, and a real oned with the dummy drivers when one was built beforehand (its source is in
# no package registry, so this script does not build it: point ONE_LOCATION at a self-contained
# install made beforehand). Everything on 127.0.0.1; stopped by recorded PID.
#
#   install        venv $CACHE/venv-one with pyone (pinned below)
#   check          pyone drives a fresh fixture (ci/peers/one_pyone_check.py); fails on drift
#   fixture-start  a long-running fixture on 127.0.0.1:$ONE_FIXTURE_PORT (pid in $RUN)
#   oned-start     configure and start oned from $ONE_LOCATION, then set it up for the probes
#                  (dummy host, dummy datastores, a boot image); facts in $P/opennebula/oned.env
#   up             install, then oned-start when $ONE_LOCATION/bin/oned exists
#   stop           stop what this script started (fixture, oned and its drivers)
. "$(dirname "$0")/lib.sh"
set -e
PYONE_VERSION=7.3.80
ONE_VENV=$CACHE/venv-one
ONE_DIR=$P/opennebula
ONE_LOCATION=${ONE_LOCATION:-/opt/fedprobe-one}
ONED_PORT=${ONED_PORT:-12633}
ONE_MON_PORT=${ONE_MON_PORT:-14124}
ONE_HM_PORT=${ONE_HM_PORT:-12101}
ONE_FIXTURE_PORT=${ONE_FIXTURE_PORT:-12634}

install() {
  mkdir -p "$CACHE" "$LOG"
  if [ -x "$ONE_VENV/bin/python" ] && "$ONE_VENV/bin/pip" show pyone 2>/dev/null | grep -x "Version: $PYONE_VERSION" > /dev/null; then
    log "venv $ONE_VENV: cached (pyone $PYONE_VERSION)"; return 0
  fi
  rm -rf "$ONE_VENV"
  python3 -m venv "$ONE_VENV"
  "$ONE_VENV/bin/pip" install -q --progress-bar off "pyone==$PYONE_VERSION" > "$LOG/pip-one.log" 2>&1 \
    || { tail -20 "$LOG/pip-one.log"; die "pip install pyone failed"; }
  log "venv $ONE_VENV: pyone $PYONE_VERSION installed"
}

check() {
  "$ONE_VENV/bin/python" "$PEERS_SRC/one_pyone_check.py"
}

fixture_start() {
  mkdir -p "$ONE_DIR" "$RUN" "$LOG"
  [ -s "$ONE_DIR/fixture_auth" ] || { echo "fedprobe:$(gen_secret)" > "$ONE_DIR/fixture_auth"; chmod 600 "$ONE_DIR/fixture_auth"; }
  setsid "$ONE_VENV/bin/python" "$PEERS_SRC/one_fixture.py" --port "$ONE_FIXTURE_PORT" \
    --session-file "$ONE_DIR/fixture_auth" > "$LOG/one-fixture.out" 2>&1 < /dev/null &
  echo $! > "$RUN/one-fixture.pid"
  for _ in $(seq 1 50); do grep -q '^PORT' "$LOG/one-fixture.out" && break; sleep 0.2; done
  grep -q '^PORT' "$LOG/one-fixture.out" || die "fixture did not start: $(tail -5 "$LOG/one-fixture.out")"
  log "OpenNebula fixture on http://127.0.0.1:$ONE_FIXTURE_PORT/RPC2 (session file $ONE_DIR/fixture_auth)"
}

# oned.conf and monitord.conf: loopback only, own ports, the dummy VMM and IM drivers, and no
# marketplace drivers that would reach the internet (the bootstrap's "OpenNebula Public" and
# "Linux Containers" marketplaces are monitored only when their drivers are loaded).
oned_config() {
  local E=$ONE_LOCATION/etc
  [ -f "$E/oned.conf.fedprobe-orig" ] || cp "$E/oned.conf" "$E/oned.conf.fedprobe-orig"
  [ -f "$E/monitord.conf.fedprobe-orig" ] || cp "$E/monitord.conf" "$E/monitord.conf.fedprobe-orig"
  sed -e "s/^PORT = 2633/PORT = $ONED_PORT/" \
      -e 's/^LISTEN_ADDRESS = "0.0.0.0"/LISTEN_ADDRESS = "127.0.0.1"/' \
      -e 's/^GRPC_LISTEN_ADDRESS = "0.0.0.0"/GRPC_LISTEN_ADDRESS = "127.0.0.1"/' \
      -e "s/-p 2101 -l 2102 -b 127.0.0.1/-p $ONE_HM_PORT -l $((ONE_HM_PORT + 1)) -b 127.0.0.1/" \
      -e 's/^#VM_MAD = \[ NAME="dummy", SUNSTONE_NAME="Testing", EXECUTABLE="one_vmm_dummy",/VM_MAD = [ NAME="dummy", SUNSTONE_NAME="Testing", EXECUTABLE="one_vmm_dummy",/' \
      -e 's/^#  TYPE="xml" \]/  TYPE="xml" ]/' \
      -e 's/-t 15 -m http,s3,one,linuxcontainers/-t 15 -m http,s3/' \
      "$E/oned.conf.fedprobe-orig" > "$E/oned.conf"
  grep -q "^LISTEN_ADDRESS = \"127.0.0.1\"" "$E/oned.conf" || die "oned.conf: LISTEN_ADDRESS not set to loopback"
  grep -q -- "-m http,s3\"" "$E/oned.conf" || grep -q -- "-m http,s3 " "$E/oned.conf" || die "oned.conf: marketplace drivers not restricted"
  python3 - "$E/monitord.conf.fedprobe-orig" "$E/monitord.conf" "$ONE_MON_PORT" <<'PY'
import re, sys
src, dst, port = sys.argv[1:]
s = open(src).read()
s = s.replace('ADDRESS         = "::"', 'ADDRESS         = "127.0.0.1"')
s = s.replace('MONITOR_ADDRESS = "auto"', 'MONITOR_ADDRESS = "127.0.0.1"')
s = s.replace('PORT    = 4124', f'PORT    = {port}')
s, n = re.subn(r'# IM_MAD = \[\n#     NAME          = "dummy",\n((?:#.*\n)*?)# \]',
               lambda m: 'IM_MAD = [\n     NAME          = "dummy",\n' + re.sub(r'^# ?', '', m.group(1), flags=re.M) + ']', s)
if n != 1 or 'ADDRESS         = "127.0.0.1"' not in s:
    sys.exit("monitord.conf: dummy IM_MAD or loopback address not set")
open(dst, "w").write(s)
PY
}

oned_start() {
  [ -x "$ONE_LOCATION/bin/oned" ] || die "no oned at $ONE_LOCATION/bin/oned (see ci/peers/NOTES.md)"
  mkdir -p "$ONE_DIR" "$RUN" "$LOG"
  oned_config
  [ -s "$ONE_DIR/one_auth" ] || { echo "oneadmin:$(gen_secret)" > "$ONE_DIR/one_auth"; chmod 600 "$ONE_DIR/one_auth"; }
  # a fresh database each start: oned bootstraps oneadmin from ONE_AUTH on an empty one
  rm -f "$ONE_LOCATION/var/one.db"
  ONE_LOCATION=$ONE_LOCATION ONE_AUTH=$ONE_DIR/one_auth setsid "$ONE_LOCATION/bin/oned" -f \
    > "$LOG/oned.out" 2>&1 < /dev/null &
  echo $! > "$RUN/oned.pid"
  local url=http://127.0.0.1:$ONED_PORT/RPC2
  for _ in $(seq 1 120); do
    curl -s -m 2 -o /dev/null "$url" -d '<?xml version="1.0"?><methodCall><methodName>one.system.version</methodName><params><param><value><string>x</string></value></param></params></methodCall>' && break
    sleep 0.5
  done
  ONE_URL=$url ONE_AUTH_FILE=$ONE_DIR/one_auth "$ONE_VENV/bin/python" - > "$ONE_DIR/oned.env" <<'PY'
import os, time, pyone
one = pyone.OneServer(os.environ["ONE_URL"], session=open(os.environ["ONE_AUTH_FILE"]).read().strip())
# the default system and image datastores use ssh/fs drivers: the dummy ones need no host access
one.datastore.update(0, 'TM_MAD="dummy"', 1)
one.datastore.update(1, 'TM_MAD="dummy"\nDS_MAD="dummy"', 1)
hid = one.host.allocate("dummy-host-1", "dummy", "dummy", -1)
for _ in range(60):
    if one.host.info(hid).STATE == 2:
        break
    time.sleep(1)
img = one.image.allocate('NAME="ttylinux"\nTYPE="OS"\nPATH="/dev/null"\nSIZE="10"', 1, False)
for _ in range(60):
    if one.image.info(img).STATE == 1:
        break
    time.sleep(0.5)
print(f"ONED_URL={os.environ['ONE_URL']}")
print(f"ONED_SESSION_FILE={os.environ['ONE_AUTH_FILE']}")
print(f"ONED_VERSION={one.system.version()}")
print("ONED_IMAGE=ttylinux")
PY
  log "oned $(grep ONED_VERSION "$ONE_DIR/oned.env" | cut -d= -f2) on $url (facts in $ONE_DIR/oned.env)"
}

stop() {
  local f pid
  for f in "$RUN/one-fixture.pid" "$RUN/oned.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
    log "stopped $(basename "$f" .pid) ($pid)"
    rm -f "$f"
  done
  rm -f "$ONE_DIR/oned.env"
}

case "${1:-}" in
  install) install ;;
  check) check ;;
  fixture-start) fixture_start ;;
  oned-start) oned_start ;;
  up) install; if [ -x "$ONE_LOCATION/bin/oned" ]; then oned_start; else log "no oned at $ONE_LOCATION: the real-oned tests will SKIP"; fi ;;
  stop) stop ;;
  *) die "usage: opennebula.sh install|check|fixture-start|oned-start|up|stop" ;;
esac
