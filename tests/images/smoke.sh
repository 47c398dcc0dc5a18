#!/usr/bin/env bash
# Smoke test of the stand-in images from build.sh: each image is run the way our rendered compose file runs the
# upstream image (same entrypoint or command, environment, secret and volume mounts, health-check command and,
# for NGINX, the read-only root filesystem, tmpfs, capabilities and no-new-privileges), on a user-defined
# network, and checked from the outside. Health checks use the rendered commands and retries; only the interval
# is 1 s instead of 10-15 s so that the run stays short.
#
# Usage: tests/images/smoke.sh        (needs root, the Docker Engine and a cometctl binary; see find_cometctl)
#
# Everything it creates (containers, networks, volumes, temporary files) carries the label
# io.comet.test.smoke=<run id> and is removed on exit, whatever the outcome; the images stay. Results go to stdout
# (`ok - ...` / `FAIL - ...`), progress and diagnostics to stderr. Exit status 0 only when every check passed.
#
# Not mirrored here, on purpose: the compose `ulimits: nofile: 1048576` of Kafka and NGINX. The Engine on the
# test machines runs with a hard limit of 20,000 open files and refuses to create such containers ("error setting
# rlimits"), with any image.
#
# Single-quoted `$` below is meant for the container's shell or copied from the compose file.
# shellcheck disable=SC2016
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
run_id="comet-smoke-$$-$(date +%s)"
label="io.comet.test.smoke=$run_id"
net="$run_id-net"
cluster_net="$run_id-cluster"
work=""
failures=0
checks=0

log() {
  printf 'smoke: %s\n' "$*" >&2
}

die() {
  printf 'smoke: error: %s\n' "$*" >&2
  exit 1
}

ok() {
  checks=$((checks + 1))
  printf 'ok - %s\n' "$*"
}

not_ok() {
  checks=$((checks + 1))
  failures=$((failures + 1))
  printf 'FAIL - %s\n' "$*"
}

# check DESCRIPTION COMMAND...: records the outcome of COMMAND (its output goes to stderr).
check() {
  local description="$1"
  shift
  if "$@" >&2; then ok "$description"; else not_ok "$description"; fi
}

cleanup() {
  local ids
  ids="$(docker ps -aq --filter "label=$label")"
  # shellcheck disable=SC2086 # one id per word
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null
  ids="$(docker network ls -q --filter "label=$label")"
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker network rm $ids >/dev/null
  ids="$(docker volume ls -q --filter "label=$label")"
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker volume rm $ids >/dev/null
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# diagnose CONTAINER: its state, health log and last log lines, on stderr.
diagnose() {
  {
    echo "--- $1: $(docker inspect -f '{{.State.Status}} exit={{.State.ExitCode}}' "$1" 2>&1)"
    docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}health exit={{.ExitCode}}: {{.Output}}{{end}}{{end}}' "$1" 2>&1 | tail -n 5
    docker logs --tail 30 "$1" 2>&1
    echo "---"
  } >&2
}

# wait_healthy CONTAINER [SECONDS]: polls the health status; false on unhealthy, exit or timeout.
wait_healthy() {
  local name="$1" deadline=$((SECONDS + ${2:-120})) state
  while [ "$SECONDS" -lt "$deadline" ]; do
    state="$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$name" 2>/dev/null)" || state=gone
    case "$state" in
      "running healthy") return 0 ;;
      "running unhealthy" | exited* | dead* | gone)
        echo "$name: $state" >&2
        diagnose "$name"
        return 1
        ;;
    esac
    sleep 0.5
  done
  echo "$name: not healthy after ${2:-120} s ($state)" >&2
  diagnose "$name"
  return 1
}

# wait_exited CONTAINER SECONDS: true once the container has stopped.
wait_exited() {
  local name="$1" deadline=$((SECONDS + $2))
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(docker inspect -f '{{.State.Running}}' "$name")" = false ] && return 0
    sleep 0.2
  done
  return 1
}

exit_code() {
  docker inspect -f '{{.State.ExitCode}}' "$1"
}

# in_compose FILE LINE...: every LINE (as written in the compose file, `$$` for `$`) occurs in FILE. Catches a
# template change that this script's copies of the entrypoints and health checks have not followed.
in_compose() {
  local file="$1" line
  shift
  for line in "$@"; do
    if ! grep -qF -- "$line" "$file"; then
      echo "not in $file: $line" >&2
      return 1
    fi
  done
}

# unescape: the compose file's `$$` is a literal `$` in the container.
unescape() {
  printf '%s' "${1//\$\$/\$}"
}

find_cometctl() {
  if [ -n "${COMETCTL:-}" ]; then
    [ -x "$COMETCTL" ] || die "COMETCTL=$COMETCTL is not executable"
    echo "$COMETCTL"
    return
  fi
  local candidate
  for candidate in "${CARGO_TARGET_DIR:-$repo/target}/debug/cometctl" "$(command -v cometctl || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      echo "$candidate"
      return
    fi
  done
  log "no cometctl binary (set COMETCTL=/path/to/cometctl to skip this): building it with cargo"
  (cd "$repo" && cargo build --locked -q -p cometctl >&2)
  echo "${CARGO_TARGET_DIR:-$repo/target}/debug/cometctl"
}

# --- images and rendered deployments -------------------------------------------------------------------------

log "building the images (tests/images/build.sh)"
build_output="$(bash "$here/build.sh")"
declare -A image=()
while IFS='=' read -r key ref; do
  [[ "$key=$ref" =~ ^(redis|tidb|kafka|nginx)=comet-test/[a-z-]+:[a-z0-9][a-z0-9._-]*$ ]] ||
    die "build.sh printed an unexpected line: $key=$ref"
  image[$key]="$ref"
done <<<"$build_output"
[ "${#image[@]}" -eq 4 ] || die "build.sh printed ${#image[@]} images, expected 4"
ok "build.sh printed redis=${image[redis]} tidb=${image[tidb]} kafka=${image[kafka]} nginx=${image[nginx]}"

work="$(mktemp -d "${TMPDIR:-/tmp}/comet-smoke.XXXXXX")"
cometctl="$(find_cometctl)"
log "rendering two deployments with $cometctl (10k MAU: standalone Redis; 1.5m MAU: Redis Cluster)"
for size in 10k 1.5m; do
  mkdir -p "$work/$size"
  (cd "$work/$size" && "$cometctl" init --mau "$size" --name smoke --target swarm --no-progress >/dev/null 2>&1 &&
    "$cometctl" render --target compose --dir . --no-progress >/dev/null 2>&1) ||
    die "cometctl init/render failed for $size (run it by hand in $work/$size)"
done
small="$work/10k"
large="$work/1.5m"
compose_small="$small/rendered/compose.yaml"
compose_large="$large/rendered/compose.yaml"
secret="$small/secrets/redis_password"
cluster_secret="$large/secrets/redis_password"

# The rendered health checks (compose form; `$$` is `$`). CMD-form checks run as the health check's shell form
# here (docker run cannot take the exec form) and once more in exec form with `docker exec`.
redis_health='REDISCLI_AUTH=\"$$(cat /run/secrets/redis_password)\" redis-cli ping | grep -q PONG'
tidb_health=(/bin/busybox wget -q --spider http://127.0.0.1:10080/status)
kafka_health='KAFKA_HEAP_OPTS=-Xmx128m /opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server localhost:9092 > /dev/null'
nginx_health=(curl -fsS -o /dev/null http://127.0.0.1:80/healthz)

# Entrypoint scripts as rendered (block scalars, so without the YAML indentation).
redis_entrypoint_lines=(
  'exec docker-entrypoint.sh redis-server - <<EOF'
  'requirepass "$$(cat /run/secrets/redis_password)"'
  'appendonly yes'
  '# Writes fail once the limit is reached (default noeviction) instead of the kernel killing Redis.'
  'maxmemory 3072mb'
  'EOF'
)
redis_cluster_lines=(
  'masterauth "$$(cat /run/secrets/redis_password)"'
  'cluster-enabled yes'
  'cluster-config-file nodes.conf'
  'cluster-node-timeout 5000'
  '# Container IPs change on restart; clients are redirected by name instead.'
  'cluster-preferred-endpoint-type hostname'
)
# The cluster-init job with three primaries and no replicas (the rendered one lists six members, one replica each).
redis_init_lines=(
  'set -eu'
  'export REDISCLI_AUTH="$$(cat /run/secrets/redis_password)"'
  "if redis-cli -h redis-1 cluster info | grep -q '^cluster_state:ok'; then"
  '  echo "Redis cluster already formed."'
  '  exit 0'
  'fi'
  "# CLUSTER MEET only accepts IP addresses, so the members' names are resolved here."
  'addresses=""'
  'for member in redis-1 redis-2 redis-3; do'
  "  ip=\"\$\$(getent hosts \"\$\$member\" | awk '{ print \$\$1; exit }')\""
  '  [ -n "$$ip" ] || { echo "Cannot resolve $$member." >&2; exit 1; }'
  '  addresses="$$addresses $$ip:6379"'
  'done'
  'exec redis-cli --cluster create $$addresses --cluster-replicas 0 --cluster-yes'
)

check "the rendered compose files still use the entrypoints and health checks copied here" \
  in_compose "$compose_small" "test: [\"CMD-SHELL\", \"$redis_health\"]" \
  'test: ["CMD", "/bin/busybox", "wget", "-q", "--spider", "http://127.0.0.1:10080/status"]' \
  "test: [\"CMD-SHELL\", \"$kafka_health\"]" \
  'test: ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:80/healthz"]' \
  "${redis_entrypoint_lines[@]}" \
  'KAFKA_LISTENERS: PLAINTEXT://:9092,CONTROLLER://:9093' \
  'KAFKA_ADVERTISED_LISTENERS: PLAINTEXT://kafka-1:9092' \
  'CLUSTER_ID: XTHCicrBV0emqozYuvfz8A' \
  '- --status=10080' \
  '- ./nginx/nginx.conf:/etc/nginx/nginx.conf:ro'
check "the rendered cluster-mode compose file still uses the Redis Cluster lines copied here" \
  in_compose "$compose_large" "${redis_cluster_lines[@]}" 'cluster-announce-hostname redis-1' \
  "${redis_init_lines[@]:0:8}" "${redis_init_lines[@]:9:4}"

# The shell forms, as the container sees them.
redis_health="$(unescape "${redis_health//\\\"/\"}")"
redis_script() { # redis_script NODE CLUSTER(0|1)
  local line
  for line in "${redis_entrypoint_lines[@]:0:5}"; do unescape "$line"$'\n'; done
  if [ "$2" = 1 ]; then
    for line in "${redis_cluster_lines[@]:0:5}"; do unescape "$line"$'\n'; done
    printf 'cluster-announce-hostname %s\n' "$1"
    unescape "${redis_cluster_lines[5]}"$'\n'
  fi
  printf 'EOF\n'
}
redis_init_script="$(for line in "${redis_init_lines[@]}"; do unescape "$line"$'\n'; done)"

# --- start everything ----------------------------------------------------------------------------------------

docker network create --label "$label" "$net" >/dev/null
docker network create --label "$label" "$cluster_net" >/dev/null
for v in redis-1 tidb kafka-1 c-redis-1 c-redis-2 c-redis-3; do
  docker volume create --label "$label" "$run_id-$v-data" >/dev/null
done

# run NAME ALIAS NETWORK DOCKER-RUN-ARGS...: a detached container with the run label and a network alias.
run() {
  local name="$1" alias="$2" network="$3"
  shift 3
  docker run -d --label "$label" --name "$run_id-$name" --network "$network" --network-alias "$alias" "$@" >/dev/null
}

# oneoff NETWORK DOCKER-RUN-ARGS...: a one-off container on NETWORK, removed afterwards, stdin attached.
oneoff() {
  local network="$1"
  shift
  timeout 90 docker run --rm -i --label "$label" --network "$network" "$@"
}

log "starting Redis (standalone and a 3-node cluster), the TiDB, Kafka and NGINX stand-ins"
run redis-1 redis-1 "$net" \
  -v "$secret:/run/secrets/redis_password:ro" -v "$run_id-redis-1-data:/data" \
  --health-cmd "$redis_health" --health-interval 1s --health-timeout 5s --health-retries 3 --health-start-period 10s \
  --entrypoint /bin/sh "${image[redis]}" -c "$(redis_script redis-1 0)"
for n in 1 2 3; do
  run "c-redis-$n" "redis-$n" "$cluster_net" \
    -v "$cluster_secret:/run/secrets/redis_password:ro" -v "$run_id-c-redis-$n-data:/data" \
    --health-cmd "$redis_health" --health-interval 1s --health-timeout 5s --health-retries 3 --health-start-period 10s \
    --entrypoint /bin/sh "${image[redis]}" -c "$(redis_script "redis-$n" 1)"
done
run tidb tidb "$net" -v "$run_id-tidb-data:/data" \
  --health-cmd "${tidb_health[*]}" --health-interval 1s --health-timeout 5s --health-retries 6 --health-start-period 60s \
  "${image[tidb]}" --store=unistore --path=/data --status=10080
# shellcheck disable=SC2054 # the commas belong to the values
kafka_env=(
  -e CLUSTER_ID=XTHCicrBV0emqozYuvfz8A -e KAFKA_NODE_ID=1 -e KAFKA_PROCESS_ROLES=broker,controller
  -e KAFKA_CONTROLLER_QUORUM_VOTERS=1@kafka-1:9093 -e KAFKA_LISTENERS=PLAINTEXT://:9092,CONTROLLER://:9093
  -e KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://kafka-1:9092
  -e KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
  -e KAFKA_INTER_BROKER_LISTENER_NAME=PLAINTEXT -e KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER
  -e KAFKA_LOG_DIRS=/var/lib/kafka/data -e KAFKA_AUTO_CREATE_TOPICS_ENABLE=false -e KAFKA_NUM_PARTITIONS=3
  -e KAFKA_DEFAULT_REPLICATION_FACTOR=1 -e KAFKA_MIN_INSYNC_REPLICAS=1 -e KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1
  -e KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1 -e KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1
  -e KAFKA_LOG_RETENTION_HOURS=168 -e KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=3000 -e "KAFKA_HEAP_OPTS=-Xms512m -Xmx512m"
)
run kafka-1 kafka-1 "$net" "${kafka_env[@]}" -v "$run_id-kafka-1-data:/var/lib/kafka/data" \
  --health-cmd "$kafka_health" --health-interval 1s --health-timeout 10s --health-retries 5 --health-start-period 60s \
  "${image[kafka]}"
# The health-check script against a port nobody listens on must fail (runs while the rest starts).
docker run -d --label "$label" --name "$run_id-kafka-nobroker" --entrypoint /opt/kafka/bin/kafka-broker-api-versions.sh \
  "${image[kafka]}" --bootstrap-server localhost:9092 >/dev/null
nginx_opts=(
  --read-only --tmpfs /tmp
  --cap-drop ALL --cap-add CHOWN --cap-add DAC_OVERRIDE --cap-add NET_BIND_SERVICE --cap-add SETGID --cap-add SETUID
  --security-opt no-new-privileges:true
  -v "$small/rendered/nginx/nginx.conf:/etc/nginx/nginx.conf:ro"
  -v "$small/tls/cert.pem:/etc/nginx/tls/cert.pem:ro"
  -v "$small/tls/key.pem:/etc/nginx/tls/key.pem:ro"
)
run nginx nginx "$net" "${nginx_opts[@]}" -p 127.0.0.1::80 -p 127.0.0.1::443 \
  --health-cmd "${nginx_health[*]}" --health-interval 1s --health-timeout 5s --health-retries 3 --health-start-period 10s \
  "${image[nginx]}"

# --- redis ---------------------------------------------------------------------------------------------------
# Check functions run inside `if`, where `set -e` does not apply: each step is chained explicitly.

r="$run_id-redis-1"
password="$(cat "$secret")"

# redis_in CONTAINER ARGS...: redis-cli inside CONTAINER, authenticated the way the health check does it.
redis_in() {
  local container="$1"
  shift
  # The single quotes are for the container's shell.
  # shellcheck disable=SC2016
  docker exec "$container" sh -c 'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" exec redis-cli "$@"' redis-cli "$@"
}

redis_runs_as_redis() {
  docker exec "$r" cat /proc/1/status | grep -Eq '^Uid:[[:space:]]+999[[:space:]]'
}

redis_config_applied() {
  [ "$(redis_in "$r" config get maxmemory | tail -n 1)" = 3221225472 ] &&
    [ "$(redis_in "$r" config get appendonly | tail -n 1)" = yes ]
}

redis_over_network() {
  local out
  out="$(oneoff "$net" --entrypoint redis-cli "${image[redis]}" -h redis-1 ping 2>&1)"
  echo "without password: $out"
  echo "$out" | grep -q NOAUTH || return 1
  out="$(oneoff "$net" -e "REDISCLI_AUTH=$password" --entrypoint redis-cli "${image[redis]}" -h redis-1 set smoke:key v1)"
  echo "with password: $out"
  [ "$out" = OK ]
}

redis_survives_restart() {
  docker restart "$r" >/dev/null && wait_healthy "$r" 60 && [ "$(redis_in "$r" get smoke:key)" = v1 ]
}

# stops_cleanly CONTAINER GRACE: docker stop within the grace period, exit code 0.
stops_cleanly() {
  local started=$SECONDS
  docker stop -t "$2" "$1" >/dev/null || return 1
  echo "$1 stopped in $((SECONDS - started)) s, exit code $(exit_code "$1")"
  [ "$(exit_code "$1")" = 0 ] && [ $((SECONDS - started)) -lt "$2" ]
}

check "redis: healthy with the rendered entrypoint and health check" wait_healthy "$r"
check "redis: redis-server runs as the redis user (uid 999), not root" redis_runs_as_redis
check "redis: configuration from stdin applied (maxmemory 3072mb, appendonly yes)" redis_config_applied
check "redis: another container reaches redis-1:6379; the password is required" redis_over_network
check "redis: data survives a restart (append-only file in the /data volume)" redis_survives_restart
check "redis: stops cleanly on SIGTERM (exit 0)" stops_cleanly "$r" 30

# --- redis cluster -------------------------------------------------------------------------------------------

init_job() {
  oneoff "$cluster_net" -v "$cluster_secret:/run/secrets/redis_password:ro" --entrypoint /bin/sh "${image[redis]}" \
    -c "$redis_init_script"
}

cluster_forms() {
  local out
  out="$(init_job 2>&1)" || {
    echo "$out"
    return 1
  }
  echo "$out" | tail -n 3
}

cluster_works() {
  local c="$run_id-c-redis-1" key deadline=$((SECONDS + 30))
  # The nodes agree on the new configuration a moment after `--cluster create` returns.
  until redis_in "$c" cluster info | grep -q '^cluster_state:ok'; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
  for key in a b c d e f g h; do
    [ "$(redis_in "$c" -c set "smoke:$key" "$key")" = OK ] || return 1
  done
  [ "$(redis_in "$c" -c get smoke:h)" = h ]
}

cluster_init_idempotent() {
  init_job | grep -q 'already formed'
}

for n in 1 2 3; do
  check "redis cluster: node redis-$n healthy with the rendered cluster-mode entrypoint" wait_healthy "$run_id-c-redis-$n"
done
check "redis cluster: the init job (getent, awk, redis-cli --cluster create) forms the cluster" cluster_forms
check "redis cluster: cluster_state:ok, keys in every slot range reachable with -c" cluster_works
check "redis cluster: a second init run sees the formed cluster and exits 0" cluster_init_idempotent

# --- tidb ----------------------------------------------------------------------------------------------------

t="$run_id-tidb"

# sql ARGS...: the mariadb client in a second container of the image, as root without password over TCP.
sql() {
  oneoff "$net" "${image[tidb]}" mariadb -h tidb -P 4000 -u root -N -B "$@"
}

tidb_root_login() {
  local out
  out="$(sql -e 'SELECT CURRENT_USER(); SHOW GRANTS;')" || return 1
  echo "$out"
  echo "$out" | grep -qx 'root@%' &&
    echo "$out" | grep -qF 'GRANT ALL PRIVILEGES ON *.* TO `root`@`%` WITH GRANT OPTION'
}

tidb_ddl_dml() {
  local out
  out="$(sql -e "CREATE DATABASE smoke; CREATE TABLE smoke.t (id BIGINT PRIMARY KEY, v VARCHAR(16), KEY v (v));
                 INSERT INTO smoke.t VALUES (1, 'a'), (2, 'A'); SELECT COUNT(*) FROM smoke.t WHERE v = 'a';
                 SELECT @@collation_server;")" || return 1
  echo "$out"
  [ "$out" = "$(printf '1\nutf8mb4_bin')" ]
}

tidb_status_follows_mariadb() {
  local failed_while_stopped=no
  # The single quotes are for the container's shell.
  # shellcheck disable=SC2016
  docker exec "$t" sh -c 'kill -STOP "$(cat /run/mysqld/mysqld.pid)"' || return 1
  docker exec "$t" "${tidb_health[@]}" || failed_while_stopped=yes
  # shellcheck disable=SC2016
  docker exec "$t" sh -c 'kill -CONT "$(cat /run/mysqld/mysqld.pid)"' || return 1
  echo "health check failed while mariadbd was stopped: $failed_while_stopped"
  [ "$failed_while_stopped" = yes ] && docker exec "$t" "${tidb_health[@]}"
}

tidb_stops_cleanly() {
  stops_cleanly "$t" 30 && docker logs "$t" 2>&1 | grep -q 'Shutdown complete'
}

tidb_restarts_with_data() {
  docker start "$t" >/dev/null && wait_healthy "$t" 60 || return 1
  [ "$(docker logs "$t" 2>&1 | grep -c 'copying the pre-initialised datadir')" = 1 ] &&
    [ "$(sql -e 'SELECT COUNT(*) FROM smoke.t')" = 2 ]
}

tidb_exits_with_mariadb() {
  # shellcheck disable=SC2016
  docker exec "$t" sh -c 'kill -KILL "$(cat /run/mysqld/mysqld.pid)"' || return 1
  wait_exited "$t" 20 || return 1
  echo "exit code $(exit_code "$t")"
  [ "$(exit_code "$t")" != 0 ]
}

check "tidb: healthy (status endpoint on 10080 answered by the rendered health check)" wait_healthy "$t"
check "tidb: the health check in exec form (no shell) succeeds" docker exec "$t" "${tidb_health[@]}"
check "tidb: root with an empty password logs in over TCP from another container, as root@'%' with ALL ... WITH GRANT OPTION" tidb_root_login
check "tidb: DDL and DML over TCP (utf8mb4_bin like TiDB)" tidb_ddl_dml
check "tidb: the status endpoint fails while MariaDB does not answer (mariadbd stopped with SIGSTOP)" tidb_status_follows_mariadb
check "tidb: SIGTERM reaches MariaDB, which shuts down cleanly (exit 0, 'Shutdown complete')" tidb_stops_cleanly
check "tidb: restarts on its /data volume without re-initialising; the data is still there" tidb_restarts_with_data
check "tidb: the container exits (non-zero) when mariadbd dies" tidb_exits_with_mariadb

# --- kafka ---------------------------------------------------------------------------------------------------

k="$run_id-kafka-1"

kafka_round_trip() {
  local out
  oneoff "$net" "${image[kafka]}" tansu topic create --broker tcp://kafka-1:9092 --partitions 3 smoke >/dev/null || return 1
  printf '%s\n' '{"key":"k1","value":"hello from smoke"}' |
    oneoff "$net" "${image[kafka]}" tansu cat produce --broker tcp://kafka-1:9092 smoke || return 1
  out="$(oneoff "$net" "${image[kafka]}" tansu cat consume --broker tcp://kafka-1:9092 --max-wait-time-ms 2000 smoke)" || return 1
  echo "$out"
  echo "$out" | grep -q 'hello from smoke'
}

kafka_health_fails_without_broker() {
  local c="$run_id-kafka-nobroker"
  wait_exited "$c" 30 || return 1
  docker logs "$c" 2>&1 | tail -n 1
  [ "$(exit_code "$c")" != 0 ]
}

kafka_refuses_several_brokers() {
  local out rc=0
  out="$(timeout 30 docker run --rm --label "$label" -e KAFKA_CONTROLLER_QUORUM_VOTERS=1@kafka-1:9093,2@kafka-2:9093 \
    "${image[kafka]}" 2>&1)" || rc=$?
  echo "$out"
  [ "$rc" = 1 ] && echo "$out" | grep -q 'one broker only'
}

check "kafka: healthy with the rendered environment and health check" wait_healthy "$k"
check "kafka: the health-check script makes a Kafka-protocol round trip" \
  docker exec "$k" /opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server localhost:9092
check "kafka: produce and consume from another container through the advertised kafka-1:9092" kafka_round_trip
check "kafka: the health-check script fails when no broker answers" kafka_health_fails_without_broker
check "kafka: a plan with several brokers is refused (exit 1), not run as unconnected brokers" kafka_refuses_several_brokers
check "kafka: stops on SIGTERM (exit 0)" stops_cleanly "$k" 60

# --- nginx ---------------------------------------------------------------------------------------------------

x="$run_id-nginx"

nginx_workers_as_nobody() {
  local users
  users="$(docker exec "$x" ps -o user,args | awk '/nginx: worker process/ && !/awk/ { print $1 }' | sort -u)"
  echo "worker users: $users"
  [ "$users" = nobody ]
}

nginx_http_healthz() {
  [ "$(curl -fsS "http://$(docker port "$x" 80/tcp | head -n 1)/healthz")" = ok ]
}

nginx_https_healthz() {
  curl -ksS -D - -o /dev/null "https://$(docker port "$x" 443/tcp | head -n 1)/healthz" |
    grep -qi '^strict-transport-security: max-age=63072000'
}

nginx_proxies_via_resolver() {
  local code
  code="$(curl -ks -o /dev/null -w '%{http_code}' "https://$(docker port "$x" 443/tcp | head -n 1)/v3/anything")"
  echo "GET /v3/anything: $code; $(docker logs "$x" 2>&1 | grep -m 1 'could not be resolved' || true)"
  [ "$code" = 502 ]
}

check "nginx: nginx -t accepts the rendered nginx.conf in the image (same mounts and restrictions)" \
  oneoff "$net" "${nginx_opts[@]}" "${image[nginx]}" nginx -t
check "nginx: healthy with the rendered health check (read-only root, tmpfs /tmp, capabilities dropped)" wait_healthy "$x"
check "nginx: the health check in exec form (no shell) succeeds" docker exec "$x" "${nginx_health[@]}"
check "nginx: workers run as Debian's compile-time default user nobody" nginx_workers_as_nobody
check "nginx: /healthz through the published HTTP port" nginx_http_healthz
check "nginx: /healthz over TLS through the published HTTPS port (rendered certificate, HSTS header)" nginx_https_healthz
check "nginx: /v3/ is proxied per request through Docker's resolver (502 without an api container)" nginx_proxies_via_resolver
check "nginx: stops on SIGTERM (exit 0)" stops_cleanly "$x" 30

# -------------------------------------------------------------------------------------------------------------

if [ "$failures" -gt 0 ]; then
  log "$failures of $checks checks failed"
  exit 1
fi
log "all $checks checks passed"
