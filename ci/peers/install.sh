#!/bin/bash
# Install everything the peers need. Idempotent; python venvs and node_modules are cached under
# $P/cache and reused while the lock files in ci/peers/ are unchanged.
#   install.sh apt | python | node | all | storage | im
set -e
. "$(dirname "$0")/lib.sh"
mkdir -p "$CACHE" "$LOG"

# libapache2-mod-auth-mellon, xmlsec1: the SAML SP and the signatures of the pysaml2 IdP (saml.sh)
# nfs-common: mount.nfs, which cinder's NFS driver insists on at start-up; qemu-utils: qemu-img (cinder)
APT_PKGS="mariadb-server rabbitmq-server apache2 libapache2-mod-auth-openidc slapd ldap-utils glue-schema openssl curl ca-certificates nfs-common qemu-utils libapache2-mod-auth-mellon xmlsec1"

install_apt() {
  # apt must never start the distro daemons (they would listen on all interfaces)
  if [ "$(cat /usr/sbin/policy-rc.d 2>/dev/null)" != "$(printf '#!/bin/sh\nexit 101')" ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  fi
  chmod 755 /usr/sbin/policy-rc.d
  local missing=""
  for p in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  if [ -z "$missing" ]; then log "apt: all packages present"; return 0; fi
  log "apt: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q > "$LOG/apt-update.log" 2>&1 || { tail -20 "$LOG/apt-update.log"; die "apt-get update failed"; }
  apt-get install -y -q --no-install-recommends $missing > "$LOG/apt-install.log" 2>&1 \
    || { tail -30 "$LOG/apt-install.log"; die "apt-get install failed"; }
}

# make_venv DIR "LOCKFILE..." LOGNAME PKGS... : (re)create venv unless its stamp matches the lock files
# (VENV_BIN: the program whose presence shows a complete venv, default gunicorn)
make_venv() {
  local dir=$1 locks=$2 logname=$3; shift 3
  local stamp lock; stamp=$( (cat $locks 2>/dev/null; echo "$*"; python3 --version) | sha256sum | cut -c1-16)
  if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ] && [ -x "$dir/bin/${VENV_BIN:-gunicorn}" ]; then
    log "venv $dir: cached"; return 0
  fi
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip > "$LOG/$logname.log" 2>&1
  local c=(); for lock in $locks; do [ -f "$lock" ] && c+=(-c "$lock"); done
  "$dir/bin/pip" install --progress-bar off "${c[@]}" "$@" >> "$LOG/$logname.log" 2>&1 \
    || { tail -30 "$LOG/$logname.log"; echo "pip install into $dir failed" >&2; return 1; }
  echo "$stamp" > "$dir/.stamp"
  log "venv $dir: installed ($(grep -c . < <("$dir/bin/pip" freeze)) packages)"
}

install_python() {
  # three venvs in parallel: neutron pins some libraries differently from nova/keystone/glance;
  # cinder + swift have their own venv (same pins as venv-os plus their own), so adding or
  # upgrading them never rebuilds the venv the core services run from
  make_venv "$OS_VENV" "$PEERS_SRC/requirements-os.lock" pip-os keystone glance nova openstack-placement gunicorn PyMySQL &
  local a=$!
  make_venv "$NT_VENV" "$PEERS_SRC/requirements-neutron.lock" pip-neutron neutron gunicorn &
  local b=$!
  make_venv "$ST_VENV" "$PEERS_SRC/requirements-os.lock $PEERS_SRC/requirements-storage.lock" pip-storage $STORAGE_PKGS &
  local s=$!
  install_im &
  local i=$!
  local rc=0
  wait $a || rc=1
  wait $b || rc=1
  wait $s || rc=1
  wait $i || rc=1
  return $rc
}

# the Infrastructure Manager (im.sh): its own venv, pinned by requirements-im.lock
install_im() { VENV_BIN=im_service make_venv "$IM_VENV" "$PEERS_SRC/requirements-im.lock" pip-im IM; }

install_node() {
  local stamp; stamp=$( (cat "$PEERS_SRC/oidc/package.json" "$PEERS_SRC/oidc/package-lock.json" 2>/dev/null; node --version) | sha256sum | cut -c1-16)
  if [ -f "$NODE_DIR/.stamp" ] && [ "$(cat "$NODE_DIR/.stamp")" = "$stamp" ] && [ -d "$NODE_DIR/node_modules/oidc-provider" ]; then
    log "node_modules: cached"; return 0
  fi
  rm -rf "$NODE_DIR"; mkdir -p "$NODE_DIR"
  cp "$PEERS_SRC/oidc/package.json" "$NODE_DIR/"
  [ -f "$PEERS_SRC/oidc/package-lock.json" ] && cp "$PEERS_SRC/oidc/package-lock.json" "$NODE_DIR/"
  if [ -f "$NODE_DIR/package-lock.json" ]; then
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error) > "$LOG/npm.log" 2>&1
  else
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error) > "$LOG/npm.log" 2>&1
  fi || { tail -30 "$LOG/npm.log"; die "npm install failed"; }
  echo "$stamp" > "$NODE_DIR/.stamp"
  log "node_modules: installed oidc-provider $(node -p "require('$NODE_DIR/node_modules/oidc-provider/package.json').version")"
}

case "${1:-all}" in
  apt) install_apt ;;
  python) install_python ;;
  storage) make_venv "$ST_VENV" "$PEERS_SRC/requirements-os.lock $PEERS_SRC/requirements-storage.lock" pip-storage $STORAGE_PKGS ;;
  node) install_node ;;
  im) install_im ;;
  all) install_apt; install_python; install_node ;;
  *) die "usage: install.sh apt|python|node|all|storage|im" ;;
esac
