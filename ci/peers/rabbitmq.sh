#!/bin/bash
# Debian rabbitmq-server (run as user rabbitmq) bound to 127.0.0.1 only: AMQP 5672, epmd 4369,
# erlang distribution 25672. State in $P/rabbitmq (wiped at each up).
set -e
. "$(dirname "$0")/lib.sh"
D=$P/rabbitmq; mkdir -p "$D/mnesia" "$D/log"; chown -R rabbitmq:rabbitmq "$D"
chmod 755 "$P"
cat > "$D/env.sh" <<EOC
export HOME=/var/lib/rabbitmq ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
  RABBITMQ_NODE_PORT=$RABBIT_PORT RABBITMQ_NODENAME=rabbit@localhost RABBITMQ_DIST_PORT=25672 \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
  RABBITMQ_MNESIA_BASE=$D/mnesia RABBITMQ_LOG_BASE=$D/log RABBITMQ_PID_FILE=$D/rabbit.pid
EOC
chmod 644 "$D/env.sh"
cd /var/lib/rabbitmq
start_bg rabbitmq "$LOG/rabbitmq.log" su rabbitmq -s /bin/sh -c ". $D/env.sh; exec /usr/lib/rabbitmq/bin/rabbitmq-server"
ctl() { su rabbitmq -s /bin/sh -c ". $D/env.sh; /usr/lib/rabbitmq/bin/rabbitmqctl -q -n rabbit@localhost $*"; }
for i in $(seq 1 90); do
  ctl status >/dev/null 2>&1 && break
  alive rabbitmq || fail_with_log rabbitmq "$LOG/rabbitmq.log" "$D"/log/*.log
  sleep 1
done
timeout 60 su rabbitmq -s /bin/sh -c ". $D/env.sh; /usr/lib/rabbitmq/bin/rabbitmqctl -q -n rabbit@localhost await_startup" \
  || fail_with_log rabbitmq "$LOG/rabbitmq.log" "$D"/log/*.log
# readiness: the AMQP port answers (curl gets a protocol error, not a refused connection)
ss -ltnH "sport = :$RABBIT_PORT" | grep -q "127.0.0.1:$RABBIT_PORT" || fail_with_log "rabbitmq (port $RABBIT_PORT)" "$LOG/rabbitmq.log"
log "rabbitmq up (pid $(cat "$RUN/rabbitmq.pid")) on 127.0.0.1:$RABBIT_PORT"
