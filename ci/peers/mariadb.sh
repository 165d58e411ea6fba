#!/bin/bash
# MariaDB (Debian) on 127.0.0.1:3306 with a throw-away datadir in $P/mariadb, for keystone, glance,
# placement and nova (sqlite gives "database is locked" in nova as soon as a few servers are
# booted in parallel). Durability settings are off: the data lives for one CI run.
set -e
. "$(dirname "$0")/lib.sh"
D=$P/mariadb; mkdir -p "$D/data" "$D/run"; chown -R mysql:mysql "$D"
[ -s "$P/secrets/db_password" ] || { gen_secret > "$P/secrets/db_password"; chmod 600 "$P/secrets/db_password"; }
cat > "$D/my.cnf" <<EOC
[mysqld]
user = mysql
datadir = $D/data
socket = $D/run/mysqld.sock
pid-file = $D/run/mysqld.pid
bind-address = 127.0.0.1
port = $MARIADB_PORT
skip-name-resolve
log-error = $LOG/mariadb.log
skip-log-bin
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
max_connections = 1000
innodb_buffer_pool_size = 256M
innodb_log_file_size = 64M
innodb_flush_log_at_trx_commit = 0
innodb_doublewrite = 0
sync_binlog = 0
[client]
socket = $D/run/mysqld.sock
EOC
chmod 644 "$D/my.cnf"
/usr/bin/mariadb-install-db --defaults-file="$D/my.cnf" --auth-root-authentication-method=socket --skip-test-db \
  > "$LOG/mariadb-install.log" 2>&1 || fail_with_log mariadb-install-db "$LOG/mariadb-install.log"
start_bg mariadb "$LOG/mariadb.out" /usr/sbin/mariadbd --defaults-file="$D/my.cnf"
for i in $(seq 1 100); do
  mariadb --defaults-file="$D/my.cnf" -uroot -e 'select 1' >/dev/null 2>&1 && break
  alive mariadb || fail_with_log mariadb "$LOG/mariadb.out" "$LOG/mariadb.log"
  sleep 0.2
done
PW=$(cat "$P/secrets/db_password")
mariadb --defaults-file="$D/my.cnf" -uroot > "$LOG/mariadb-setup.log" 2>&1 <<EOS || fail_with_log "mariadb setup" "$LOG/mariadb-setup.log" "$LOG/mariadb.log"
CREATE USER 'fedprobe'@'127.0.0.1' IDENTIFIED BY '$PW';
CREATE DATABASE keystone; CREATE DATABASE glance; CREATE DATABASE placement;
CREATE DATABASE nova_api; CREATE DATABASE nova; CREATE DATABASE nova_cell0;
GRANT ALL PRIVILEGES ON *.* TO 'fedprobe'@'127.0.0.1';
EOS
log "mariadb up (pid $(cat "$RUN/mariadb.pid")) on 127.0.0.1:$MARIADB_PORT"
