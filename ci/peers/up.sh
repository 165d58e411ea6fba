#!/bin/bash
# Install (cached) and start every peer the fedprobe integration tests use, bound to 127.0.0.1,
# then write $FEDPROBE_PEERS_DIR/peers.env and clouds.yaml. See NOTES.md.
#
#   FEDPROBE_PEERS_DIR    state dir (default /tmp/fedprobe-peers)
#   FEDPROBE_NEUTRON_STUB=1  use the read-only neutron stub instead of real neutron
#
# Re-running it stops the running peers (down.sh) and starts them on fresh state; python venvs
# and node_modules under $FEDPROBE_PEERS_DIR/cache are reused while the lock files are unchanged.
set -e -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
T_ALL=$(date +%s%N)
[ "$(id -u)" = 0 ] || die "up.sh needs root (apt-get, su rabbitmq)"
for c in python3 node npm curl; do command -v $c >/dev/null || die "$c not found"; done
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "node >= 20 needed by oidc-provider 9"

if [ -d "$RUN" ] && ls "$RUN"/*.pid >/dev/null 2>&1; then
  log "stopping the running peers first"
  bash "$HERE/down.sh"
fi
busy=""
for port in $ALL_PORTS; do ss -ltnH "sport = :$port" | grep -q . && busy="$busy $port"; done
if [ -n "$busy" ]; then
  ss -ltnpH | grep -E ":($(echo $busy | tr ' ' '|')) " >&2 || true
  die "ports$busy are in use by processes up.sh did not record; stop them first"
fi
# fresh service state at every up (nova-compute with the fake driver cannot restart on old state);
# a bind mount left by an interrupted run goes first, so rm -rf never deletes through it
mkdir -p "$P"
umount_under_p
find "$P" -mindepth 1 -maxdepth 1 ! -name cache -exec rm -rf {} +
mkdir -p "$CACHE" "$RUN" "$LOG" "$P/secrets"
chmod 755 "$P"; chmod 700 "$P/secrets"
: > "$P/timings.txt"
MEM0=$(free -m | awk '/^Mem:/{print $3}')

# run_parallel NAME=CMD... : run the commands concurrently, each with its output in $LOG/up-NAME.out;
# print their outputs; fail (with the output of the failed one) if any fails
run_parallel() {
  local spec name pids=() names=() rc=0 i
  for spec in "$@"; do
    name=${spec%%=*}
    ( s=$(date +%s%N); set +e; bash -c "${spec#*=}"; r=$?
      ms=$(( ($(date +%s%N) - s) / 1000000 ))
      printf '[timing]   %-26s %4d.%ds\n' "$name" $((ms / 1000)) $((ms % 1000 / 100)); exit $r ) > "$LOG/up-$name.out" 2>&1 &
    pids+=($!); names+=("$name")
  done
  for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
      grep -v '^\[timing\]' "$LOG/up-${names[$i]}.out" | tail -n 5 || true
    else
      echo "[peers] ===== ${names[$i]} FAILED; its output: =====" >&2
      tail -n 60 "$LOG/up-${names[$i]}.out" >&2
      rc=1
    fi
  done
  for i in "${!pids[@]}"; do grep '^\[timing\]' "$LOG/up-${names[$i]}.out" | tee -a "$P/timings.txt" || true; done
  return $rc
}

# --- install (apt, pip, npm are independent: run them side by side)
phase install run_parallel apt="bash $HERE/install.sh apt" python="bash $HERE/install.sh python" node="bash $HERE/install.sh node"
T_START=$(date +%s%N)

# --- secrets (fresh at every up; only ever referenced by path)
for s in admin_password service_password db_password probe_user_password app_cred_secret oidc_client_secret oidc_user_password; do
  gen_secret > "$P/secrets/$s"
done
chmod 600 "$P"/secrets/*

phase tls bash "$HERE/tls.sh"
phase azure bash "$HERE/azure.sh" start  # stdlib fixture; its SDK venv is made by `azure.sh client`; stopped by down.sh (pid file)
phase base run_parallel mariadb="bash $HERE/mariadb.sh" rabbitmq="bash $HERE/rabbitmq.sh" oidc="bash $HERE/oidc.sh"
# keystone, the database syncs of glance/neutron/nova/cinder and the swift rings need only MariaDB (or nothing)
phase keystone+db-sync run_parallel keystone="bash $HERE/keystone.sh" \
  nova-db="bash $HERE/nova.sh prepare" neutron-db="bash $HERE/neutron.sh prepare" glance-db="bash $HERE/glance.sh prepare" \
  cinder-db="bash $HERE/cinder.sh prepare" swift-rings="bash $HERE/swift.sh prepare"
phase keystone-setup+apache run_parallel setup="python3 $HERE/setup_cloud.py keystone" apache="bash $HERE/apache.sh"
phase services run_parallel glance="bash $HERE/glance.sh start" neutron="bash $HERE/neutron.sh start" nova="bash $HERE/nova.sh start" \
  cinder="bash $HERE/cinder.sh start" swift="bash $HERE/swift.sh start"
phase fixture python3 "$HERE/setup_cloud.py" fixture
[ "${FEDPROBE_NEUTRON_STUB:-0}" = 1 ] || phase network python3 "$HERE/setup_cloud.py" network
# OpenNebula: pyone venv, and a real oned when one was installed beforehand (non-fatal)
bash "$HERE/opennebula.sh" up || log "opennebula.sh up FAILED: the real-oned tests will SKIP"
phase env python3 "$HERE/setup_cloud.py" env
# SAML2 ECP (mellon SP + pysaml2 IdP) in front of Keystone; adds the SAML_* facts to peers.env
phase saml bash "$HERE/saml.sh" start
phase gce bash "$HERE/gce.sh" start   # the GCE fixture (own port, own $P/gce.env)
# the federation's orchestrator, last: it appends its facts to peers.env
phase im bash "$HERE/im.sh" start
# moto (EC2/EBS/STS) for the EC2 backend: own venv, own port, facts in $P/moto.env
phase moto bash "$HERE/moto.sh" start

MEM1=$(free -m | awk '/^Mem:/{print $3}')
RSS=0
for f in "$RUN"/*.pid; do
  pid=$(cat "$f")
  r=$(ps -o rss= -g "$pid" 2>/dev/null | awk '{s+=$1} END {print s+0}')
  RSS=$((RSS + r))
done
EP=$(ss -ltnpH "sport = :4369" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
[ -n "$EP" ] && RSS=$((RSS + $(ps -o rss= -p "$EP" | awk '{print $1+0}')))
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
{
  printf '[timing] %-28s %4d.%ds\n' "start (after install)" $(( $(ms $T_START) / 1000 )) $(( $(ms $T_START) % 1000 / 100 ))
  printf '[timing] %-28s %4d.%ds\n' "total" $(( $(ms $T_ALL) / 1000 )) $(( $(ms $T_ALL) % 1000 / 100 ))
  echo "[memory] peers RSS ${RSS} kB (~$((RSS / 1024)) MB); 'used' grew by $((MEM1 - MEM0)) MB"
} | tee -a "$P/timings.txt"
log "peers are up; facts in $P/peers.env (smoke test: $HERE/smoke.sh, stop: $HERE/down.sh)"
