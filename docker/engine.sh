#!/usr/bin/env bash
# docker/engine.sh — run a private Docker daemon for building and testing the image.
#
# Usage: docker/engine.sh start|stop|status|env
#   start   install Debian's docker.io if dockerd is missing, start dockerd, wait until it answers
#           (already running -> ok)
#   stop    stop dockerd by its pid, unmount what it left under its exec/data roots
#   status  print state; exit 0 if running, 3 if not
#   env     print KEY=value lines for callers:  export $(docker/engine.sh env)
#           or  eval "$(docker/engine.sh env)"; export DOCKER_HOST DOCKER_BUILDKIT
#
# The daemon is started with flags that work in a restricted sandbox without a bridge or iptables:
#   --iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2
# Containers therefore only have loopback: every `docker build` / `docker run` needs --network host
# (port mapping with -p does nothing).
#
# State lives under ${CALLBACK_CACHE_DIR:-/var/cache/callback-sidecar}/docker:
#   docker.sock, docker.pid, dockerd.log, data/ (--data-root), exec/ (--exec-root)
#
# CLI: Debian's /usr/bin/docker (from docker.io) is used with DOCKER_BUILDKIT=1. A newer docker CLI
# elsewhere on PATH may talk to this daemon too, but only with the legacy builder (DOCKER_BUILDKIT=0).
# Override with DOCKER_CLI=/path/to/docker.
set -euo pipefail

CACHE_DIR="${CALLBACK_CACHE_DIR:-/var/cache/callback-sidecar}"
STATE="$CACHE_DIR/docker"
SOCK="$STATE/docker.sock"
PIDFILE="$STATE/docker.pid"
LOG="$STATE/dockerd.log"
DATA="$STATE/data"
EXEC="$STATE/exec"
export DOCKER_HOST="unix://$SOCK"
export DOCKER_BUILDKIT=1
DOCKER_CLI="${DOCKER_CLI:-/usr/bin/docker}"

log() { echo "engine: $*" >&2; }

daemon_pid() {
  local pid
  [[ -s "$PIDFILE" ]] || return 1
  pid="$(cat "$PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -d "/proc/$pid" ]] || return 1
  # make sure the pid really is a dockerd (pids get reused)
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] || return 1
  echo "$pid"
}

answers() { "$DOCKER_CLI" version >/dev/null 2>&1; }

install_engine() {
  if command -v dockerd >/dev/null 2>&1 && [[ -x /usr/bin/docker ]]; then return 0; fi
  log "dockerd or /usr/bin/docker missing: installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show docker.io >/dev/null 2>&1; then apt-get update; fi
  # Keep the package's maintainer scripts from starting a system-wide daemon with default flags.
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  apt-get install -y --no-install-recommends docker.io || { [[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d; exit 1; }
  [[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
  return 0
}

unmount_leftovers() {
  # Unmount anything still mounted under our exec root or data root (netns bind mounts, overlays), deepest first.
  local m
  { awk '{print $5}' /proc/self/mountinfo | grep -E "^($EXEC|$DATA)(/|$)" || true; } | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
}

start() {
  install_engine
  if [[ "$DOCKER_CLI" == /usr/bin/docker && -x /usr/local/bin/docker ]]; then
    log "note: $(/usr/local/bin/docker --version 2>/dev/null) is also on PATH; not used (BuildKit needs Debian's CLI)"
  fi
  log "CLI: $DOCKER_CLI ($("$DOCKER_CLI" --version)), DOCKER_BUILDKIT=1"
  mkdir -p "$STATE" "$DATA" "$EXEC"
  if pid="$(daemon_pid)"; then
    if answers; then log "already running (pid $pid) at $DOCKER_HOST"; return 0; fi
    log "dockerd pid $pid exists but does not answer yet; waiting"
  else
    rm -f "$PIDFILE"
    unmount_leftovers
    log "starting dockerd ($(dockerd --version))"
    setsid dockerd \
      --iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2 \
      --host="$DOCKER_HOST" --data-root="$DATA" --exec-root="$EXEC" --pidfile="$PIDFILE" \
      >>"$LOG" 2>&1 </dev/null &
  fi
  local i
  for i in $(seq 1 120); do
    if answers; then
      log "running (pid $(daemon_pid || echo '?')) at $DOCKER_HOST"
      return 0
    fi
    if (( i > 10 )) && ! daemon_pid >/dev/null; then
      log "dockerd exited; last log lines:"; tail -n 20 "$LOG" >&2; return 1
    fi
    sleep 0.5
  done
  log "dockerd did not answer within 60 s; see $LOG"; tail -n 20 "$LOG" >&2
  return 1
}

stop() {
  local pid i
  if pid="$(daemon_pid)"; then
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    for i in $(seq 1 60); do [[ -d "/proc/$pid" ]] || break; sleep 0.5; done
    if [[ -d "/proc/$pid" ]]; then log "dockerd still alive after 30 s: SIGKILL pid $pid"; kill -KILL "$pid" || true; sleep 1; fi
  else
    log "dockerd not running"
  fi
  # A containerd that dockerd started itself can outlive a killed dockerd: stop it by its own pidfile.
  local cpidf="$EXEC/containerd/containerd.pid" cpid
  if [[ -s "$cpidf" ]]; then
    cpid="$(cat "$cpidf")"
    if [[ "$cpid" =~ ^[0-9]+$ && "$(cat "/proc/$cpid/comm" 2>/dev/null)" == containerd ]]; then
      log "stopping leftover containerd (pid $cpid)"; kill -TERM "$cpid" || true
      for i in $(seq 1 20); do [[ -d "/proc/$cpid" ]] || break; sleep 0.5; done
    fi
  fi
  rm -f "$PIDFILE"
  unmount_leftovers
  log "stopped"
}

status() {
  local pid
  if pid="$(daemon_pid)" && answers; then
    echo "running pid=$pid DOCKER_HOST=$DOCKER_HOST cli=$DOCKER_CLI server=$("$DOCKER_CLI" version -f '{{.Server.Version}}' 2>/dev/null)"
    return 0
  fi
  echo "stopped DOCKER_HOST=$DOCKER_HOST cli=$DOCKER_CLI"
  return 3
}

case "${1:-}" in
  start)  start ;;
  stop)   stop ;;
  status) status ;;
  env)    echo "DOCKER_HOST=$DOCKER_HOST"; echo "DOCKER_BUILDKIT=1"; log "use CLI $DOCKER_CLI" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
