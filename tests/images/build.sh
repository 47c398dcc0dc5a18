#!/usr/bin/env bash
# Builds the local stand-in images the end-to-end deploy tests run in place of the upstream Redis, TiDB, Kafka and
# NGINX images (nothing can be pulled on the test machines). Each image is a root filesystem staged from this
# host's binaries (the binary, the shared libraries ldd lists with the dynamic loader, busybox-static as /bin/sh
# and the small tools, /etc/passwd and /etc/group) and loaded with `docker import`. README.md beside this script
# says what each stand-in does and does not do.
#
# Usage: tests/images/build.sh [KEY...]      KEY: redis, tidb, kafka, nginx (default: all four, in that order)
#
# Output contract: stdout carries exactly one line per image, `<key>=<repository>:<tag>`, in the order above;
# everything else (progress, apt, errors) goes to stderr. Exit status 0 only when every requested image exists.
#
# Idempotent and fast when nothing changed: the fingerprint of an image is the sha256 of this script and of every
# host file copied into it. The tag ends with its first 12 hex digits, and an image carrying the label
# io.comet.test.fingerprint=<fingerprint> under that tag is reused without staging anything.
#
# Needs root (apt-get, the Docker socket). Missing Debian packages are installed with apt-get. tansu (the
# Kafka-protocol broker) comes from $COMET_TOOLS_DIR/bin/tansu (default /opt/comet-tools), which .ci/services.sh
# downloads.
set -euo pipefail
# Staged directories and files must be readable by the images' non-root users whatever the caller's umask.
umask 022

script_path="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
tools_dir="${COMET_TOOLS_DIR:-/opt/comet-tools}"
tansu_bin="$tools_dir/bin/tansu"
all_keys=(redis tidb kafka nginx)
fingerprint_label=io.comet.test.fingerprint
# The PATH every image sets (Docker's default).
image_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() {
  printf 'images: %s\n' "$*" >&2
}

fail() {
  printf 'images: error: %s\n' "$*" >&2
  exit 1
}

# --- prerequisites -------------------------------------------------------------------------------------------

is_static() {
  local out
  out="$(ldd "$1" 2>&1 || true)"
  case "$out" in
    *"not a dynamic executable"* | *"statically linked"*) return 0 ;;
  esac
  return 1
}

ensure_packages() {
  local packages=()
  [ -x /usr/sbin/mariadbd ] && command -v mariadb-install-db >/dev/null 2>&1 || packages+=(mariadb-server)
  command -v mariadb >/dev/null 2>&1 && command -v mariadb-admin >/dev/null 2>&1 || packages+=(mariadb-client)
  command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || packages+=(redis-tools)
  [ -x /usr/sbin/nginx ] && [ -f /etc/nginx/mime.types ] || packages+=(nginx-light)
  command -v curl >/dev/null 2>&1 || packages+=(curl)
  if [ ! -x /bin/busybox ] || ! is_static /bin/busybox; then packages+=(busybox-static); fi
  [ -f /etc/ssl/certs/ca-certificates.crt ] || packages+=(ca-certificates)
  command -v getent >/dev/null 2>&1 || packages+=(libc-bin)
  command -v setpriv >/dev/null 2>&1 || packages+=(util-linux)
  if [ "${#packages[@]}" -gt 0 ]; then
    log "installing Debian packages: ${packages[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
  fi
  command -v docker >/dev/null 2>&1 || fail "the docker CLI is missing"
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || fail "the Docker Engine does not answer"
}

# --- manifest: what goes into an image ------------------------------------------------------------------------
# manifest_src/manifest_dest are parallel arrays: a host file and its path in the image (files are copied with
# symlinks resolved). manifest_seen prevents duplicates (the same library needed by several binaries).

manifest_src=()
manifest_dest=()
declare -A manifest_seen=()

manifest_reset() {
  manifest_src=()
  manifest_dest=()
  manifest_seen=()
}

add_file() {
  local src="$1" dest="$2"
  [ -f "$src" ] || fail "missing file $src"
  [ -n "${manifest_seen[$dest]:-}" ] && return 0
  manifest_seen[$dest]=1
  manifest_src+=("$src")
  manifest_dest+=("$dest")
}

# add_binary SRC DEST: the binary and every shared library ldd lists, the dynamic loader included, at the paths
# ldd prints (the loader path is compiled into the binary, the libraries are found through the default paths).
add_binary() {
  local src="$1" dest="$2" listing lib
  add_file "$(readlink -f "$src")" "$dest"
  is_static "$src" && return 0
  listing="$(ldd "$src")" || fail "ldd failed on $src"
  case "$listing" in
    *"not found"*) fail "$src needs libraries this host lacks: $(grep 'not found' <<<"$listing" | tr -s ' \t\n' ' ')" ;;
  esac
  while read -r lib; do
    add_file "$(readlink -f "$lib")" "$lib"
  done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$listing")
}

# add_tree SRCDIR DESTDIR: every regular file below SRCDIR.
add_tree() {
  local src="$1" dest="$2" file
  while IFS= read -r file; do
    add_file "$file" "$dest/${file#"$src"/}"
  done < <(find "$src" -type f | LC_ALL=C sort)
}

# Files every image gets: busybox (the shell and small tools) and glibc's libgcc_s, which glibc loads at run time
# for thread cancellation and which ldd does not list for every binary.
add_base() {
  add_file /bin/busybox /bin/busybox
  local gcc_s=/lib/x86_64-linux-gnu/libgcc_s.so.1
  [ -f "$gcc_s" ] && add_file "$gcc_s" "$gcc_s"
  return 0
}

# fingerprint: sha256 over this script and, in manifest order, every destination path with its content hash.
fingerprint() {
  {
    sha256sum <"$script_path" | cut -d' ' -f1
    paste -d' ' <(printf '%s\n' "${manifest_dest[@]}") <(sha256sum -- "${manifest_src[@]}" | cut -d' ' -f1)
  } | sha256sum | cut -d' ' -f1
}

# --- staging -------------------------------------------------------------------------------------------------

stage_dir=""
stage_root=""
cleanup() {
  if [ -n "$stage_dir" ] && [ -d "$stage_dir" ]; then
    rm -rf "$stage_dir"
  fi
}
trap cleanup EXIT

# stage_new: a root filesystem at $stage_root with the manifest copied in and the common skeleton.
stage_new() {
  cleanup
  stage_dir="$(mktemp -d "${TMPDIR:-/tmp}/comet-test-image.XXXXXX")"
  stage_root="$stage_dir/rootfs"
  local root="$stage_root" i
  mkdir -p "$root"
  for ((i = 0; i < ${#manifest_src[@]}; i++)); do
    install -D -m "$(stat -c %a "${manifest_src[$i]}")" "${manifest_src[$i]}" "$root${manifest_dest[$i]}"
  done
  install -d -m 0755 "$root"/{bin,sbin,etc,usr/bin,usr/sbin,usr/local/bin,proc,sys,dev,run,var,root}
  chmod 0700 "$root/root"
  install -d -m 1777 "$root/tmp" "$root/var/tmp"
  cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
EOF
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
  printf '/bin/sh\n' >"$root/etc/shells"
}

add_user() {
  local root="$1" name="$2" id="$3" home="$4" shell="$5"
  printf '%s:x:%s:%s::%s:%s\n' "$name" "$id" "$id" "$home" "$shell" >>"$root/etc/passwd"
  printf '%s:x:%s:\n' "$name" "$id" >>"$root/etc/group"
}

# busybox applets as symlinks in /bin, except where the image has a real program of that name on its PATH (for
# other programs; busybox's own shell runs its applets first anyway).
link_applets() {
  local root="$1" applet
  while read -r applet; do
    [ -n "$applet" ] || continue
    if [ -e "$root/usr/local/bin/$applet" ] || [ -e "$root/usr/sbin/$applet" ] || [ -e "$root/usr/bin/$applet" ] ||
      [ -e "$root/sbin/$applet" ] || [ -e "$root/bin/$applet" ]; then
      continue
    fi
    ln -s busybox "$root/bin/$applet"
  done < <("$root/bin/busybox" --list)
}

# write_exec ROOT PATH: stdin becomes an executable script at PATH in the image.
write_exec() {
  install -D -m 0755 /dev/stdin "$1$2"
}

# import_image REF FINGERPRINT CHANGE...: tars the staged root filesystem into `docker import`.
import_image() {
  local ref="$1" fp="$2" root="$stage_dir/rootfs"
  shift 2
  local changes=() change
  for change in "$@" "LABEL $fingerprint_label=$fp"; do
    changes+=(--change "$change")
  done
  link_applets "$root"
  tar --numeric-owner -C "$root" -cf - . |
    docker import --message "comet-test stand-in built by tests/images/build.sh" "${changes[@]}" - "$ref" >/dev/null
  cleanup
  stage_dir=""
}

# up_to_date REF FINGERPRINT: true when REF exists with that fingerprint label.
up_to_date() {
  local have
  have="$(docker image inspect --format "{{ index .Config.Labels \"$fingerprint_label\" }}" "$1" 2>/dev/null)" || return 1
  [ "$have" = "$2" ]
}

# tag_for VERSION FINGERPRINT: the image tag, lowercase.
tag_for() {
  printf '%s-%s' "$1" "${2:0:12}" | tr '[:upper:]' '[:lower:]'
}

# --- redis ---------------------------------------------------------------------------------------------------
# The Debian redis-server and redis-cli. Like docker.io/library/redis: entrypoint docker-entrypoint.sh, which
# (as root, for redis-server) hands /data to the redis user (uid 999) and re-executes itself as that user;
# WORKDIR /data; CMD redis-server. The compose entrypoint reads /run/secrets/redis_password in its /bin/sh -c as
# root before docker-entrypoint.sh runs, so the secret may stay root-only (0600) while Redis runs unprivileged.

redis_manifest() {
  add_base
  add_binary "$(command -v redis-server)" /usr/bin/redis-server
  add_binary "$(command -v redis-cli)" /usr/bin/redis-cli
  # Cluster init resolves member names with getent (busybox has none) and drops to the redis user with setpriv.
  add_binary "$(command -v getent)" /usr/bin/getent
  add_binary "$(command -v setpriv)" /usr/bin/setpriv
}

redis_version() {
  redis-server --version | sed -n 's/.* v=\([0-9][0-9.]*\).*/\1/p'
}

redis_build() {
  local ref="$1" fp="$2" version="$3" root
  stage_new
  root="$stage_root"
  add_user "$root" redis 999 /data /bin/false
  install -d -m 0755 -o 999 -g 999 "$root/data"
  write_exec "$root" /usr/local/bin/docker-entrypoint.sh <<'EOF'
#!/bin/sh
# Stand-in for the docker.io/library/redis entrypoint (same behaviour, busybox + setpriv instead of gosu).
set -e

# first arg is `-f` or `--some-option`, or a `something.conf`: run redis-server with them
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# as root: hand the working directory (/data) to redis and come back as that user
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis:redis '{}' +
	# Full path: busybox's shell runs its own (reduced) setpriv applet in preference to PATH.
	exec /usr/bin/setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# the upstream image's umask for Redis' files
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

# The upstream image compiles Redis with protected mode off; Debian's Redis keeps it on. Appended options win over
# the configuration file (or stdin), so this also overrides an explicit `protected-mode yes`.
if [ "$1" = 'redis-server' ]; then
	set -- "$@" --protected-mode no
fi

exec "$@"
EOF
  import_image "$ref" "$fp" \
    "ENV PATH=$image_path" \
    'ENTRYPOINT ["docker-entrypoint.sh"]' \
    'CMD ["redis-server"]' \
    'WORKDIR /data' \
    'EXPOSE 6379' \
    "LABEL org.opencontainers.image.title=comet-test/redis" \
    "LABEL org.opencontainers.image.version=$version" \
    'LABEL org.opencontainers.image.description="Stand-in for docker.io/library/redis: Debian redis-server on busybox"'
}

# --- tidb ----------------------------------------------------------------------------------------------------
# MariaDB speaking the MySQL protocol on TiDB's port 4000, with an HTTP status endpoint on 10080. The datadir is
# initialised at build time (root@'%' with an empty password and every privilege, as on a fresh TiDB) and copied
# into /data on the first start.

mariadb_share=/usr/share/mysql

tidb_manifest() {
  add_base
  add_binary /usr/sbin/mariadbd /usr/sbin/mariadbd
  add_binary "$(command -v mariadb)" /usr/bin/mariadb
  add_binary "$(command -v mariadb-admin)" /usr/bin/mariadb-admin
  add_tree "$mariadb_share/charsets" "$mariadb_share/charsets"
  add_file "$mariadb_share/english/errmsg.sys" "$mariadb_share/english/errmsg.sys"
  # Only read at build time (the pre-initialised datadir), but they shape the image.
  add_file "$(command -v mariadb-install-db)" /usr/share/standin/build/mariadb-install-db
  local sql
  for sql in "$mariadb_share"/*.sql; do
    add_file "$sql" "/usr/share/standin/build/$(basename "$sql")"
  done
}

tidb_version() {
  mariadbd --version | sed -n 's/.* Ver \([0-9][0-9.]*\).*/\1/p'
}

tidb_build() {
  local ref="$1" fp="$2" version="$3" root
  stage_new
  root="$stage_root"
  # Build-time-only inputs are in the manifest for the fingerprint; they are not needed in the image.
  rm -rf "$root/usr/share/standin/build"
  install -d -m 0755 "$root/data" "$root/run/mysqld" "$root/etc/mysql"
  ln -s mariadb "$root/usr/bin/mysql"
  ln -s mariadb-admin "$root/usr/bin/mysqladmin"
  # The upstream image's entrypoint path, for anyone who sets it explicitly.
  ln -s usr/local/bin/tidb-standin "$root/tidb-server"
  cat >"$root/etc/mysql/my.cnf" <<'EOF'
# TiDB stand-in: MariaDB on TiDB's port, reachable from other containers, data in /data.
[client-server]
socket = /run/mysqld/mysqld.sock
port = 4000

[mysqld]
user = root
datadir = /data
bind-address = 0.0.0.0
port = 4000
pid-file = /run/mysqld/mysqld.pid
skip-name-resolve
lc-messages-dir = /usr/share/mysql
character-sets-dir = /usr/share/mysql/charsets
# TiDB's defaults: utf8mb4 with the binary collation.
character-set-server = utf8mb4
collation-server = utf8mb4_bin
# TiDB has no connection cap by default; MariaDB's 151 is easy to reach with several connection pools.
max-connections = 1000
# Must match the size the datadir was initialised with at build time.
innodb-log-file-size = 16M
EOF
  # Like a fresh TiDB: root@'%' without password is the only account (mariadb.sys owns MariaDB's system views).
  # mariadb-install-db also creates root and anonymous accounts for this host's name; they go too.
  local init_sql="$stage_dir/init.sql" host
  host="$(hostname)"
  cat >"$init_sql" <<EOF
FLUSH PRIVILEGES;
CREATE USER 'root'@'%' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
DROP USER IF EXISTS 'root'@'localhost', 'root'@'127.0.0.1', 'root'@'::1', 'root'@'$host';
DROP USER IF EXISTS 'mysql'@'localhost', ''@'localhost', ''@'$host';
DELETE FROM mysql.proxies_priv WHERE User = 'root' AND Host <> '%';
FLUSH PRIVILEGES;
CREATE DATABASE test;
EOF
  log "tidb: initialising the MariaDB datadir"
  mariadb-install-db --no-defaults --datadir="$root/usr/share/standin/datadir" --user=root \
    --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
    --innodb-log-file-size=16M --extra-file="$init_sql" >"$stage_dir/install-db.log" 2>&1 || {
    cat "$stage_dir/install-db.log" >&2
    fail "mariadb-install-db failed"
  }
  write_exec "$root" /usr/local/bin/tidb-standin <<'EOF'
#!/bin/sh
# TiDB stand-in entrypoint: MariaDB on port 4000 (TiDB's MySQL port) and the status endpoint on 10080.
# TiDB's own options (--store, --path, ...) are accepted and ignored, except --status (status port) and -P.
# A first argument that is not an option is run as a command instead (e.g. `docker run IMAGE mariadb -h ...`).
set -eu
log() { echo "tidb-standin: $*" >&2; }

case "${1:-}" in
	'' | -*) ;;
	*) exec "$@" ;;
esac

status_port=10080
sql_port=4000
while [ $# -gt 0 ]; do
	case "$1" in
		--status=* | -status=*) status_port="${1#*=}" ;;
		--status | -status) status_port="$2"; shift ;;
		-P=* | --P=*) sql_port="${1#*=}" ;;
		-P | --P) sql_port="$2"; shift ;;
		*) log "ignoring TiDB option $1" ;;
	esac
	shift
done

if [ ! -d /data/mysql ]; then
	log "empty /data: copying the pre-initialised datadir (root@'%' without password)"
	mkdir -p /data
	cp -a /usr/share/standin/datadir/. /data/
fi
mkdir -p /run/mysqld
rm -f /run/mysqld/mysqld.sock /run/mysqld/mysqld.pid

mariadbd --port="$sql_port" &
mariadbd_pid=$!
# SIGTERM/SIGINT go to mariadbd, which shuts down cleanly; this script then exits with its status.
trap 'log "stopping MariaDB"; kill -TERM "$mariadbd_pid" 2>/dev/null || true' TERM INT

# One handler process per connection (busybox nc in persistent listen mode).
nc -ll -p "$status_port" -e /usr/local/bin/tidb-status &
status_pid=$!
log "MariaDB on 0.0.0.0:$sql_port, status on 0.0.0.0:$status_port/status"

# `wait` returns early when a trapped signal arrives; keep waiting until mariadbd is gone.
rc=0
wait "$mariadbd_pid" || rc=$?
while kill -0 "$mariadbd_pid" 2>/dev/null; do
	rc=0
	wait "$mariadbd_pid" || rc=$?
done
kill "$status_pid" 2>/dev/null || true
log "MariaDB exited with status $rc"
exit "$rc"
EOF
  write_exec "$root" /usr/local/bin/tidb-status <<EOF
#!/bin/sh
# One HTTP exchange on stdin/stdout (run by busybox nc per connection). GET /status answers 200 with TiDB-like
# JSON when MariaDB answers a ping, 503 otherwise; any other path is 404.
version="$version"
EOF
  cat >>"$root/usr/local/bin/tidb-status" <<'EOF'
cr="$(printf '\r')"
IFS=' ' read -r method target _ || exit 0
# Drain the request headers (up to the empty line).
while IFS= read -r -t 2 line; do
	line="${line%"$cr"}"
	[ -n "$line" ] || break
done
case "$target" in
	/status | /status\?*)
		if mariadb-admin --connect-timeout=2 ping >/dev/null 2>&1; then
			status="200 OK"
			body="{\"connections\":0,\"version\":\"$version-MariaDB (TiDB stand-in)\",\"git_hash\":\"\",\"status\":{\"init_stats_completed\":true}}"
		else
			status="503 Service Unavailable"
			body='{"error":"MariaDB does not answer"}'
		fi
		;;
	*)
		status="404 Not Found"
		body='{"error":"not found"}'
		;;
esac
printf 'HTTP/1.0 %s\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' \
	"$status" "${#body}"
[ "$method" = HEAD ] || printf '%s' "$body"
EOF
  import_image "$ref" "$fp" \
    "ENV PATH=$image_path" \
    'ENTRYPOINT ["/usr/local/bin/tidb-standin"]' \
    'WORKDIR /' \
    'EXPOSE 4000 10080' \
    "LABEL org.opencontainers.image.title=comet-test/tidb-standin" \
    "LABEL org.opencontainers.image.version=$version" \
    'LABEL org.opencontainers.image.description="Stand-in for docker.io/pingcap/tidb: MariaDB on port 4000, status on 10080"'
}

# --- kafka ---------------------------------------------------------------------------------------------------
# tansu (an Apache-Kafka-compatible broker, in-memory storage) configured from the KAFKA_* variables the
# docker.io/apache/kafka image reads. One broker only.

kafka_manifest() {
  add_base
  [ -x "$tansu_bin" ] || fail "tansu is missing at $tansu_bin: run 'bash .ci/services.sh' (it downloads tansu into \$COMET_TOOLS_DIR, default /opt/comet-tools)"
  add_binary "$tansu_bin" /usr/local/bin/tansu
}

kafka_version() {
  "$tansu_bin" --version | sed -n 's/^tansu \([0-9][0-9.]*\).*/\1/p'
}

kafka_build() {
  local ref="$1" fp="$2" version="$3" root
  stage_new
  root="$stage_root"
  add_user "$root" appuser 1000 /home/appuser /bin/sh
  install -d -m 0755 -o 1000 -g 1000 "$root/home/appuser" "$root/var/lib/kafka/data"
  write_exec "$root" /etc/kafka/docker/run <<'EOF'
#!/bin/sh
# Kafka stand-in: runs tansu with the listener and cluster id the apache/kafka image would take from
# KAFKA_LISTENERS, KAFKA_ADVERTISED_LISTENERS and CLUSTER_ID. Storage is in memory: topics and messages are
# lost when the container stops, and KAFKA_LOG_DIRS is not used.
set -eu
log() { echo "kafka-standin: $*" >&2; }

# listener_address LIST NAME: the host:port of listener NAME in a Kafka listener list (NAME://host:port,...).
listener_address() {
	old_ifs="$IFS"
	IFS=','
	for entry in $1; do
		if [ "${entry%%://*}" = "$2" ]; then
			IFS="$old_ifs"
			echo "${entry#*://}"
			return 0
		fi
	done
	IFS="$old_ifs"
	return 1
}

name="${KAFKA_INTER_BROKER_LISTENER_NAME:-PLAINTEXT}"
advertised="$(listener_address "${KAFKA_ADVERTISED_LISTENERS:-PLAINTEXT://localhost:9092}" "$name")" ||
	{ log "KAFKA_ADVERTISED_LISTENERS has no $name listener"; exit 1; }
listen="$(listener_address "${KAFKA_LISTENERS:-PLAINTEXT://:9092}" "$name")" ||
	{ log "KAFKA_LISTENERS has no $name listener"; exit 1; }
listen_host="${listen%:*}"
listen_port="${listen##*:}"
[ -n "$listen_host" ] || listen_host=0.0.0.0
advertised_host="${advertised%:*}"
[ -n "$advertised_host" ] || advertised="$(hostname):${advertised##*:}"

voters="${KAFKA_CONTROLLER_QUORUM_VOTERS:-}"
case "$voters" in
	*,*)
		log "KAFKA_CONTROLLER_QUORUM_VOTERS lists several brokers ($voters): the tansu stand-in supports one broker only"
		exit 1
		;;
esac
[ -n "${KAFKA_PROCESS_ROLES:-}" ] && log "ignoring KAFKA_PROCESS_ROLES=$KAFKA_PROCESS_ROLES (no KRaft controller; tansu is a single broker)"

log "tansu on tcp://$listen_host:$listen_port, advertised as tcp://$advertised, in-memory storage"
# tansu runs as a child rather than as PID 1: this shell, waiting, reaps the processes the health check leaves
# behind (busybox timeout's watchdog), which tansu would leave as zombies. SIGTERM/SIGINT are passed on.
tansu broker \
	--cluster-id "${CLUSTER_ID:-tansu_cluster}" \
	--listener-url "tcp://$listen_host:$listen_port" \
	--advertised-listener-url "tcp://$advertised" \
	--storage-engine memory://tansu/ &
tansu_pid=$!
trap 'kill -TERM "$tansu_pid" 2>/dev/null || true' TERM INT
rc=0
wait "$tansu_pid" || rc=$?
while kill -0 "$tansu_pid" 2>/dev/null; do
	rc=0
	wait "$tansu_pid" || rc=$?
done
log "tansu exited with status $rc"
exit "$rc"
EOF
  write_exec "$root" /opt/kafka/bin/kafka-broker-api-versions.sh <<'EOF'
#!/bin/sh
# Stand-in for Kafka's kafka-broker-api-versions.sh as used by health checks: a real Kafka-protocol round trip
# (tansu's metadata request listing the topics) to the first --bootstrap-server. Exit 0 when the broker
# answers. KAFKA_HEAP_OPTS and other options are accepted and ignored.
server=localhost:9092
while [ $# -gt 0 ]; do
	case "$1" in
		--bootstrap-server) server="$2"; shift ;;
		--bootstrap-server=*) server="${1#*=}" ;;
	esac
	shift
done
server="${server%%,*}"
# tansu's client retries for about 25 s against a dead broker; a health check must fail sooner.
timeout 8 tansu topic list --broker "tcp://$server" >/dev/null || {
	echo "no Kafka-protocol answer from $server" >&2
	exit 1
}
echo "$server: broker answers (tansu stand-in)"
EOF
  import_image "$ref" "$fp" \
    "ENV PATH=$image_path" \
    'CMD ["/etc/kafka/docker/run"]' \
    'USER appuser' \
    'WORKDIR /home/appuser' \
    'EXPOSE 9092' \
    "LABEL org.opencontainers.image.title=comet-test/kafka-standin" \
    "LABEL org.opencontainers.image.version=$version" \
    'LABEL org.opencontainers.image.description="Stand-in for docker.io/apache/kafka: tansu (Kafka protocol, memory storage), one broker"'
}

# --- nginx ---------------------------------------------------------------------------------------------------
# Debian's nginx (nginx-light) and curl (the health check). No `user` directive in our rendered configuration,
# so the workers run as Debian's compile-time default nobody:nogroup, both present in /etc/passwd and /etc/group.

nginx_manifest() {
  add_base
  add_binary /usr/sbin/nginx /usr/sbin/nginx
  add_binary "$(command -v curl)" /usr/bin/curl
  add_file /etc/nginx/mime.types /etc/nginx/mime.types
  add_file "$(readlink -f /etc/ssl/certs/ca-certificates.crt)" /etc/ssl/certs/ca-certificates.crt
}

nginx_version() {
  /usr/sbin/nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9][0-9.]*\).*|\1|p'
}

nginx_build() {
  local ref="$1" fp="$2" version="$3" root
  stage_new
  root="$stage_root"
  # The upstream image's user, for configurations that say `user nginx;`.
  add_user "$root" nginx 101 /nonexistent /bin/false
  install -d -m 0755 "$root/etc/nginx/tls" "$root/etc/nginx/conf.d" "$root/usr/share/nginx/html" "$root/var/log/nginx"
  ln -s /dev/stdout "$root/var/log/nginx/access.log"
  ln -s /dev/stderr "$root/var/log/nginx/error.log"
  printf '<!doctype html><title>comet-test/nginx</title><p>nginx stand-in image.</p>\n' >"$root/usr/share/nginx/html/index.html"
  cat >"$root/etc/nginx/nginx.conf" <<'EOF'
# Default configuration of the comet-test/nginx image; deployments bind-mount their own over it. Everything
# writable lives under /tmp, so the image also runs with a read-only root filesystem and a tmpfs on /tmp.
worker_processes auto;
pid /tmp/nginx.pid;
error_log stderr notice;

events {
  worker_connections 1024;
}

http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  client_body_temp_path /tmp/client_temp;
  proxy_temp_path /tmp/proxy_temp;
  fastcgi_temp_path /tmp/fastcgi_temp;
  uwsgi_temp_path /tmp/uwsgi_temp;
  scgi_temp_path /tmp/scgi_temp;
  access_log /dev/stdout;
  include /etc/nginx/conf.d/*.conf;

  server {
    listen 80 default_server;
    root /usr/share/nginx/html;

    location = /healthz {
      default_type text/plain;
      return 200 "ok\n";
    }
  }
}
EOF
  import_image "$ref" "$fp" \
    "ENV PATH=$image_path" \
    'CMD ["nginx", "-g", "daemon off;"]' \
    'WORKDIR /' \
    'EXPOSE 80 443' \
    "LABEL org.opencontainers.image.title=comet-test/nginx" \
    "LABEL org.opencontainers.image.version=$version" \
    'LABEL org.opencontainers.image.description="Stand-in for docker.io/library/nginx: Debian nginx-light and curl on busybox"'
}

# --- main ----------------------------------------------------------------------------------------------------

repository_for() {
  case "$1" in
    redis) echo comet-test/redis ;;
    tidb) echo comet-test/tidb-standin ;;
    kafka) echo comet-test/kafka-standin ;;
    nginx) echo comet-test/nginx ;;
  esac
}

# Version part of the tag: the version of the tool that actually runs.
version_prefix_for() {
  case "$1" in
    tidb) echo mariadb- ;;
    kafka) echo tansu- ;;
    *) echo "" ;;
  esac
}

build_one() {
  local key="$1" version fp ref started
  manifest_reset
  "${key}_manifest"
  version="$("${key}_version")"
  [ -n "$version" ] || fail "$key: could not read the tool version"
  fp="$(fingerprint)"
  ref="$(repository_for "$key"):$(tag_for "$(version_prefix_for "$key")$version" "$fp")"
  if up_to_date "$ref" "$fp"; then
    log "$key: $ref is up to date"
  else
    started=$SECONDS
    log "$key: building $ref"
    "${key}_build" "$ref" "$fp" "$version"
    up_to_date "$ref" "$fp" || fail "$key: $ref was imported but does not carry $fingerprint_label=$fp"
    log "$key: built $ref ($(docker image inspect --format '{{.Size}}' "$ref" | awk '{ printf "%.0f MB", $1 / 1e6 }') in $((SECONDS - started)) s)"
  fi
  built_refs+=("$key=$ref")
}

main() {
  local keys=("$@") key known k
  [ "${#keys[@]}" -gt 0 ] || keys=("${all_keys[@]}")
  for key in "${keys[@]}"; do
    known=""
    for k in "${all_keys[@]}"; do [ "$k" = "$key" ] && known=1; done
    [ -n "$known" ] || fail "unknown image key '$key' (known: ${all_keys[*]})"
  done
  ensure_packages
  built_refs=()
  for key in "${keys[@]}"; do
    build_one "$key"
  done
  # stdout: the contract, only once every image exists.
  printf '%s\n' "${built_refs[@]}"
}

main "$@"
