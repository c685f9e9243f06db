#!/usr/bin/env bash
# A real, throwaway PostgreSQL on 127.0.0.1 for local development, the tests and CI (the PostgreSQL store).
#
#   postgres.sh start    install Debian's postgresql if initdb is missing, make the cluster once, start it
#   postgres.sh stop     stop the server started by `start` (pg_ctl stop, fast: its sessions are ended)
#   postgres.sh status   say whether it is running and answering (exit 0 yes, 1 no)
#   postgres.sh env      KEY=VALUE lines for the sidecar and the tests (split each line on the first '=')
#
# The cluster listens on 127.0.0.1 only, on port ${CALLBACK_POSTGRES_PORT:-5433} (away from a system server
# on 5432), with password (SCRAM) authentication for its one superuser, `callback`, whose password is made
# once and kept. As root the server runs as the `postgres` user (PostgreSQL refuses to run as root);
# otherwise as whoever calls this. Everything lives under ${CALLBACK_CACHE_DIR:-/var/cache/callback-sidecar}
# (as root) or ~/.cache/callback-sidecar; nothing is written elsewhere. The data is for tests: `stop` keeps
# it, deleting $STATE starts afresh.
set -euo pipefail

if [ "$(id -u)" = 0 ]; then
  CACHE=${CALLBACK_CACHE_DIR:-/var/cache/callback-sidecar}
else
  CACHE=${CALLBACK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/callback-sidecar}
fi
STATE=$CACHE/postgres-dev                    # lock, password, log; the cluster below it
DATA=$STATE/cluster                          # the data directory (initdb's); complete iff PG_VERSION exists
SOCKETS=$STATE/run                           # the server's Unix socket and lock file
LOGFILE=$STATE/postgres.log
PASSWORD_FILE=$STATE/password                # the `callback` superuser's password, made once
HOST=127.0.0.1
PORT=${CALLBACK_POSTGRES_PORT:-5433}
SUPERUSER=callback
DATABASE=callback                            # the sidecar's own database (`env`); tests make their own
READY_TIMEOUT=${CALLBACK_POSTGRES_READY_TIMEOUT:-30}

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Take the state lock so that two callers (parallel tests, two checkouts) never initialise or start at once.
take_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 300 9 || die "could not take $STATE/lock"
}

# The server's own programs: on PATH (the build machines), else Debian's newest /usr/lib/postgresql/N/bin.
pg_bin() {
  local dir
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return 0
  fi
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1) || true
  [ -n "$dir" ] && [ -x "$dir/initdb" ] || return 1
  echo "$dir"
}

install_server() {
  pg_bin >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "initdb is missing and this is not root: install Debian's postgresql package"
  log "start: installing Debian's postgresql (initdb is missing)"
  local policy=/usr/sbin/policy-rc.d restore=false
  # The package would start a cluster of its own on 5432: `start` runs ours, by pg_ctl.
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    restore=true
  fi
  {
    apt-get -o DPkg::Lock::Timeout=600 update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postgresql
  } >&2 || { $restore && rm -f "$policy"; die "apt-get install postgresql failed"; }
  $restore && rm -f "$policy"
  pg_bin >/dev/null || die "postgresql is installed but no initdb was found"
}

# Runs a server program as the server's user: `postgres` when we are root.
as_server() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' user to run the server as (Debian's postgresql makes it)"
    # From /: the caller's directory may be closed to that user.
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

password() {
  if [ ! -s "$PASSWORD_FILE" ]; then
    mkdir -p "$STATE"
    (umask 077 && openssl rand -hex 24 >"$PASSWORD_FILE.tmp" && mv "$PASSWORD_FILE.tmp" "$PASSWORD_FILE")
  fi
  cat "$PASSWORD_FILE"
}

# The cluster, made once: SCRAM passwords for TCP, the superuser `callback`, UTF-8, no locale surprises.
init_cluster() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  local bin pwfile
  bin=$(pg_bin)
  rm -rf "$DATA"
  mkdir -p "$DATA" "$SOCKETS"
  pwfile=$(mktemp "$STATE/pwfile.XXXXXX")
  password >"$pwfile"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$DATA" "$SOCKETS" "$pwfile"; fi
  chmod 700 "$DATA"
  log "start: initdb $DATA"
  as_server "$bin/initdb" -D "$DATA" -U "$SUPERUSER" --pwfile="$pwfile" --auth-local=scram-sha-256 \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$STATE/initdb.log" 2>&1 ||
    { rm -f "$pwfile"; tail -n 20 "$STATE/initdb.log" >&2; die "initdb failed (full log: $STATE/initdb.log)"; }
  rm -f "$pwfile"
}

# Does the server answer on its TCP address (not only its socket)?
answers() {
  local bin
  bin=$(pg_bin) || return 1
  "$bin/pg_isready" -q -h "$HOST" -p "$PORT" -t 2 2>/dev/null
}

running() {
  local bin
  bin=$(pg_bin) || return 1
  [ -f "$DATA/PG_VERSION" ] && as_server "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

port_in_use() {
  python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))' \
    "$HOST" "$PORT" 2>/dev/null
}

# SQL as the superuser over TCP, as the sidecar connects.
psql_admin() {
  PGPASSWORD=$(password) "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U "$SUPERUSER" -d postgres "$@"
}

start() {
  local bin
  take_lock
  install_server
  bin=$(pg_bin)
  if running; then
    if answers; then
      log "start: already running on $HOST:$PORT"
      return 0
    fi
    log "start: running but not answering on $HOST:$PORT: restarting it"
    as_server "$bin/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  elif port_in_use; then
    die "something else already listens on $HOST:$PORT; set CALLBACK_POSTGRES_PORT to another port"
  fi
  init_cluster
  mkdir -p "$SOCKETS"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$SOCKETS"; fi
  touch "$LOGFILE"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$LOGFILE"; fi
  # pg_ctl detaches the server; it must inherit no descriptor of ours but 0-2, neither our lock (fd 9) nor
  # one a caller holds (`flock FILE cmd` would otherwise stay locked for as long as the server runs).
  (
    close_inherited_fds
    as_server "$bin/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t "$READY_TIMEOUT" \
      -o "-c listen_addresses=$HOST -p $PORT -k $SOCKETS -c max_connections=200" start
  ) </dev/null >/dev/null ||
    { tail -n 25 "$LOGFILE" >&2; die "the server did not start (log: $LOGFILE)"; }
  answers || { tail -n 25 "$LOGFILE" >&2; die "the server started but does not answer on $HOST:$PORT"; }
  if [ -z "$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" ]; then
    psql_admin -c "CREATE DATABASE $DATABASE"
  fi
  log "start: PostgreSQL $("$bin/postgres" -V | awk '{print $3}') ready on $HOST:$PORT; log $LOGFILE"
}

# Closes every descriptor of this (sub)shell above 2.
close_inherited_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

stop() {
  local bin
  take_lock
  if bin=$(pg_bin) && running; then
    as_server "$bin/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    log "stop: stopped"
  else
    log "stop: not running"
  fi
}

status() {
  if running && answers; then
    echo "running: answering on $HOST:$PORT ($DATA)"
  elif running; then
    echo "unhealthy: running but not answering on $HOST:$PORT"
    return 1
  else
    echo "stopped"
    return 1
  fi
}

print_env() {
  cat <<ENV
Data__Provider=postgres
Data__ConnectionString=Host=$HOST;Port=$PORT;Username=$SUPERUSER;Password=$(password);Database=$DATABASE
ENV
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
env) print_env ;;
*)
  echo "usage: $0 start|stop|status|env" >&2
  exit 2
  ;;
esac
