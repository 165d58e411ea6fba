#!/bin/bash
# Break and mend one running peer, for the fault-matrix tests (probes/tests/it/fault_matrix.rs).
# Acts only through the pid files in $P/run and what start_bg recorded beside them.
#
#   ctl.sh stop NAME     SIGTERM the process group of $RUN/NAME.pid, SIGKILL after 20 s
#   ctl.sh kill NAME     SIGKILL the process group at once (a crash)
#   ctl.sh start NAME    start it again as up.sh did (same argv, environment, cwd and log),
#                        then wait until its port answers (services without a port: 2 s alive)
#   ctl.sh pause NAME    SIGSTOP the group: the port stays open but nothing answers (a hang)
#   ctl.sh resume NAME   SIGCONT the group
#   ctl.sh alive NAME    exit 0 when it runs
# NAME is a pid file's name: keystone, glance, nova-api, nova-compute (pause/resume only),
# nova-conductor, nova-scheduler, placement, neutron, mariadb, oidc-provider. (Apache and RabbitMQ have their
# own stop procedures in down.sh and are not handled here.)
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
cmd=${1:-}; name=${2:-}
[ -n "$cmd" ] && [ -n "$name" ] || die "usage: ctl.sh stop|kill|start|pause|resume|alive NAME"
case "$name" in apache|rabbitmq|*/*) die "ctl.sh does not handle $name" ;; esac
pidf=$RUN/$name.pid
# nova-compute with the fake driver cannot start again on its old state (its node uuid is not
# the one in Nova's database: "Duplicate compute node record"), so it is only ever paused.
if [ "$name" = nova-compute ] && { [ "$cmd" = stop ] || [ "$cmd" = kill ] || [ "$cmd" = start ]; }; then
  die "nova-compute cannot be started again on its state: use pause/resume"
fi

port_of() {
  case "$1" in
    keystone) echo $KS_PORT ;; glance) echo $GLANCE_PORT ;; nova-api) echo $NOVA_PORT ;;
    placement) echo $PLACEMENT_PORT ;; neutron) echo $NEUTRON_PORT ;; mariadb) echo $MARIADB_PORT ;;
    oidc-provider) echo $OP_PORT ;; *) echo "" ;;
  esac
}

wait_gone() {  # pid seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

# the group leader's pid, only if that process still runs
leader() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null && cat "$pidf"; }

case "$cmd" in
  alive) leader >/dev/null ;;
  stop | kill)
    pid=$(leader) || { log "ctl: $name is not running"; exit 0; }
    # never break what cannot be mended: peers from an up.sh older than start_bg's records
    [ -f "$RUN/$name.cmd" ] && [ -f "$RUN/$name.env" ] || die "no $RUN/$name.cmd: started by an older up.sh, not stopping it"
    if [ "$cmd" = kill ]; then
      kill -KILL -- "-$pid" 2>/dev/null
    else
      kill -CONT -- "-$pid" 2>/dev/null   # a paused group cannot act on SIGTERM
      kill -TERM -- "-$pid" 2>/dev/null
      wait_gone "$pid" 20 || { log "ctl: $name ($pid) ignored SIGTERM, SIGKILL"; kill -KILL -- "-$pid" 2>/dev/null; }
    fi
    wait_gone "$pid" 5
    # stray group members (gunicorn workers) of a dead leader
    kill -0 -- "-$pid" 2>/dev/null && { sleep 1; kill -KILL -- "-$pid" 2>/dev/null; }
    port=$(port_of "$name")
    if [ -n "$port" ]; then
      for ((i = 0; i < 50; i++)); do ss -ltnH "sport = :$port" | grep -q . || break; sleep 0.1; done
    fi
    log "ctl: $name ($pid) stopped" ;;
  start)
    if pid=$(leader); then log "ctl: $name already runs ($pid)"; exit 0; fi
    [ -f "$RUN/$name.cmd" ] && [ -f "$RUN/$name.env" ] || die "no $RUN/$name.cmd: started by an older up.sh"
    mapfile -d '' rec < "$RUN/$name.cmd"
    mapfile -d '' envv < "$RUN/$name.env"
    cwd=${rec[0]}; logf=${rec[1]}; argv=("${rec[@]:2}")
    set +m
    (cd "$cwd" && exec setsid env -i "${envv[@]}" "${argv[@]}" >>"$logf" 2>&1 </dev/null) &
    echo $! > "$pidf"
    port=$(port_of "$name")
    if [ -n "$port" ]; then
      # Up to 120 s: a Node OP once took over 60 s to listen again on a
      # loaded CI machine. A process that dies ends the wait at once.
      for ((i = 0; i < 600; i++)); do
        ss -ltnH "sport = :$port" | grep -q . && break
        alive "$name" || fail_with_log "$name" "$logf"
        sleep 0.2
      done
      ss -ltnH "sport = :$port" | grep -q . || fail_with_log "$name (port $port)" "$logf"
    else
      sleep 2; alive "$name" || fail_with_log "$name" "$logf"
    fi
    if [ "$name" = oidc-provider ]; then
      # the OP keeps grants in memory: the refresh token up.sh wrote died with it
      python3 "$PEERS_SRC/oidc/oidc_login.py" "$OIDC_ISSUER" fedprobe "$P/secrets/oidc_client_secret" \
        probe-monitor "$P/secrets/oidc_user_password" https://fedprobe.invalid/callback "$P/tls/ca.pem" \
        "$P/secrets/oidc_refresh_token" > "$LOG/oidc-login.log" 2>&1 || fail_with_log "oidc login" "$LOG/oidc-login.log"
    fi
    log "ctl: $name started again ($(cat "$pidf")${i:+, port after ${i} polls of 0.2 s})" ;;
  pause | resume)
    pid=$(leader) || die "$name is not running"
    if [ "$cmd" = pause ]; then kill -STOP -- "-$pid"; else kill -CONT -- "-$pid"; fi
    log "ctl: $name ($pid) ${cmd}d" ;;
  *) die "usage: ctl.sh stop|kill|start|pause|resume|alive NAME" ;;
esac
