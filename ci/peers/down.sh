#!/bin/bash
# Stop every peer started by up.sh, by recorded PID only (never by process name):
#   - apache through its own pid file (apache2 -f <our config> -k stop)
#   - rabbitmq through rabbitmqctl stop, then epmd by the pid of the process listening on 4369
#   - everything else: SIGTERM to the process group of the recorded pid (each was started with
#     setsid, so gunicorn workers and children go too, cinder-volume's privsep helper too),
#     SIGKILL after 15 s; then cinder's bind mount is undone
#   - the orchestrator (IM) first, through im.sh stop (it also drops its facts from peers.env)
# Then prints which peer ports are still open.
. "$(dirname "$0")/lib.sh"
set +e
[ -d "$RUN" ] || { log "down: nothing recorded in $RUN"; }

# the orchestrator, before the cloud it deploys on
[ -f "$RUN/im.pid" ] && bash "$(dirname "$0")/im.sh" stop

wait_gone() {  # pid seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

# apache
if [ -f "$P/apache/httpd.pid" ] && [ -f "$P/apache/httpd.conf" ]; then
  AP=$(cat "$P/apache/httpd.pid")
  /usr/sbin/apache2 -f "$P/apache/httpd.conf" -k stop 2>/dev/null
  wait_gone "$AP" 15 || { log "down: apache $AP still alive, SIGKILL"; kill -KILL "$AP" 2>/dev/null; }
  log "down: apache ($AP) stopped"
fi
rm -f "$RUN/apache.pid"

# the SAML SP's Apache and the IdP (saml.sh stops them by their pid files)
if [ -f "$P/saml/apache/httpd.pid" ] || [ -f "$RUN/saml-idp.pid" ]; then
  bash "$(dirname "$0")/saml.sh" stop
fi

# rabbitmq
if [ -f "$RUN/rabbitmq.pid" ]; then
  RP=$(cat "$RUN/rabbitmq.pid")
  if kill -0 "$RP" 2>/dev/null && [ -f "$P/rabbitmq/env.sh" ]; then
    timeout 60 su rabbitmq -s /bin/sh -c ". $P/rabbitmq/env.sh; /usr/lib/rabbitmq/bin/rabbitmqctl -q -n rabbit@localhost stop" 2>/dev/null
  fi
  wait_gone "$RP" 20 || { kill -TERM -- "-$RP" 2>/dev/null; wait_gone "$RP" 5 || kill -KILL -- "-$RP" 2>/dev/null; }
  log "down: rabbitmq ($RP) stopped"
  rm -f "$RUN/rabbitmq.pid"
  # epmd is started by the erlang VM as a daemon and outlives it: stop the one on our port
  EP=$(ss -ltnpH "sport = :4369" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  if [ -n "$EP" ] && [ "$(cat /proc/"$EP"/comm 2>/dev/null)" = epmd ]; then
    kill "$EP" && log "down: epmd ($EP) stopped"
  fi
fi

# everything else (process groups)
bash "$(dirname "$0")/opennebula.sh" stop

for f in "$RUN"/*.pid; do
  [ -f "$f" ] || continue
  name=$(basename "$f" .pid); pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  fi
done
for f in "$RUN"/*.pid; do
  [ -f "$f" ] || continue
  name=$(basename "$f" .pid); pid=$(cat "$f")
  if ! wait_gone "$pid" 15; then
    log "down: $name ($pid) ignored SIGTERM, SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  fi
  # stray group members (gunicorn workers) of a dead leader
  kill -0 -- "-$pid" 2>/dev/null && { sleep 1; kill -KILL -- "-$pid" 2>/dev/null; }
  log "down: $name ($pid) stopped"
  rm -f "$f"
done

rm -f "$P/moto.env"   # moto was stopped with the others (its pid is in $RUN)

# cinder's bind mount (after cinder-volume has stopped using it)
umount_under_p

sleep 0.5
open=""
for port in $ALL_PORTS; do
  ss -ltnH "sport = :$port" 2>/dev/null | grep -q . && open="$open $port"
done
if [ -n "$open" ]; then
  echo "down: ports still open:$open"
  ss -ltnpH | grep -E ":($(echo $open | tr ' ' '|')) " || true
else
  echo "down: all peer ports closed ($ALL_PORTS)"
fi
