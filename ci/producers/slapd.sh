#!/bin/bash
# A GLUE 2 BDII for tests: Debian slapd on ldap://127.0.0.1:2170, base o=glue,
# GLUE 2.0 schema (glue-schema) plus our GLUE 2.1 cloud classes
# (glue21-cloud.schema), loaded with the cloud entries of a GLUE JSON document.
#   slapd.sh up [GLUE.json]   start (if needed) and (re)load the entries
#   slapd.sh down             stop it by its recorded pid
# State: /tmp/fedprobe-slapd (override FEDPROBE_SLAPD_DIR). Port: FEDPROBE_SLAPD_PORT.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
D=${FEDPROBE_SLAPD_DIR:-/tmp/fedprobe-slapd}
PORT=${FEDPROBE_SLAPD_PORT:-2170}
URL="ldap://127.0.0.1:$PORT"

install_slapd() {
  command -v slapd >/dev/null && command -v ldapadd >/dev/null \
    && [ -f /etc/ldap/schema/GLUE20.schema ] && return 0
  # Keep apt from starting the distro slapd on every interface.
  if [ ! -f /usr/sbin/policy-rc.d ] || ! grep -q 'exit 101' /usr/sbin/policy-rc.d; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slapd ldap-utils glue-schema >/dev/null
}

running() {
  [ -f "$D/run/slapd.pid" ] && kill -0 "$(cat "$D/run/slapd.pid")" 2>/dev/null
}

up() {
  local glue=${1:-}
  if [ -z "$glue" ]; then
    if [ -s /tmp/fedprobe-producers/out/glue.json ]; then
      glue=/tmp/fedprobe-producers/out/glue.json
    else
      glue=$REPO/testdata/glue/cloud-info-provider-sample.json
    fi
  fi
  install_slapd
  mkdir -p "$D/db" "$D/run"
  # A fresh database each time: slapd 2.5.13 (mdb) dies on deleting a
  # missing suffix, and a reload is cheap (~0.1 s).
  down >/dev/null
  rm -rf "$D/db"/*
  {
    cat > "$D/slapd.conf" <<EOC
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/GLUE20.schema
include $HERE/glue21-cloud.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $D/run/slapd.pid
argsfile $D/run/slapd.args
loglevel 0
sizelimit unlimited
database mdb
maxsize 104857600
suffix "o=glue"
rootdn "o=glue"
rootpw secret
directory $D/db
index objectClass eq
access to * by * read
EOC
    slaptest -u -f "$D/slapd.conf" >/dev/null 2>&1
    /usr/sbin/slapd -f "$D/slapd.conf" -h "$URL/" </dev/null >/dev/null 2>&1
    for _ in $(seq 1 100); do
      ldapsearch -x -H "$URL" -b "" -s base >/dev/null 2>&1 && break
      sleep 0.1
    done
  }
  python3 "$HERE/glue2ldif.py" "$glue" > "$D/glue.ldif"
  ldapadd -x -H "$URL" -D o=glue -w secret -f "$D/glue.ldif" > "$D/ldapadd.log"
  local n
  n=$(ldapsearch -x -LLL -H "$URL" -b o=glue dn | grep -c '^dn:')
  echo "slapd up on $URL pid $(cat "$D/run/slapd.pid"), $n entries from $glue"
}

down() {
  if running; then
    local pid
    pid=$(cat "$D/run/slapd.pid")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "slapd pid $pid stopped"
  else
    echo "slapd not running"
  fi
}

case "${1:-}" in
  up) shift; up "${1:-}" ;;
  down) down ;;
  *) echo "usage: $0 up [GLUE.json] | down" >&2; exit 2 ;;
esac
