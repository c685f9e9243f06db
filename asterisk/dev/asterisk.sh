#!/usr/bin/env bash
# A real Asterisk (Debian sid, 22.x) on 127.0.0.1 for local development, the tests, CI and the demo.
#
#   asterisk.sh provision   build (once) a Debian sid root with Asterisk + English/French sounds, cached
#   asterisk.sh start       provision if needed, install our configs, start Asterisk, wait for TLS AMI
#   asterisk.sh stop        stop the Asterisk started by `start` (by its recorded pid), unmount
#   asterisk.sh status      say whether it is running and answering (exit 0 yes, 1 no or unhealthy)
#   asterisk.sh env         KEY=VALUE lines for the sidecar and the tests (split each line on the first '=')
#   asterisk.sh env-sip     the same with the visitor rung through the SIP trunk (SIPp phones), + SIP_* keys
#   asterisk.sh monitor-env credentials of the dev-only read=all recorder user (fixtures, the Real SIP tests)
#
# Run as root. Asterisk is not packaged for Debian 12, so it runs in a chroot of Debian sid; the chroot
# shares the host network, so AMI is on 127.0.0.1:5038 (plain) and 127.0.0.1:5039 (TLS), SIP on 127.0.0.1:5060
# (UDP) and RTP on 127.0.0.1:31000-31999.
# Everything lives under ${CALLBACK_CACHE_DIR:-/var/cache/callback-sidecar}; nothing is written elsewhere.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONF_DIR=$(cd "$HERE/.." && pwd)                 # the shipped configs: asterisk/*.conf
CACHE=${CALLBACK_CACHE_DIR:-/var/cache/callback-sidecar}
ROOT=$CACHE/asterisk-sid                         # the provisioned root; complete iff $MARKER exists in it
MARKER=.callback-provisioned
STATE=$CACHE/asterisk-dev                        # everything else of ours: pid, console output, certs, secrets
TLS_DIR=$STATE/tls                               # dev CA and server certificate (host side)
PIDFILE=$STATE/asterisk.pid
FINGERPRINT_FILE=$STATE/config.sha256            # what `config_fingerprint` said when it was started
CONSOLE=$STATE/asterisk.console                  # Asterisk's own stdout/stderr
SECRET_FILE=$STATE/secret                        # the [callback] user's dev secret, made once
MONITOR_SECRET_FILE=$STATE/monitor-secret        # the dev-only [callback-recorder] user's secret
CALL_MONITOR_SECRET_FILE=$STATE/call-monitor-secret  # the shipped [callback-monitor] user's dev secret
FULL_LOG=/var/log/asterisk/full                  # inside the root; on the host: $ROOT$FULL_LOG
AMI_HOST=127.0.0.1
TLS_PORT=5039
READY_TIMEOUT=${CALLBACK_ASTERISK_READY_TIMEOUT:-30}
SIP_HOST=127.0.0.1                               # PJSIP's UDP transport (pjsip-dev.conf) and the SIPp phones
SIP_PORT=5060
TRUNK_SIP_PORT=5070                              # the SIPp "carrier": the visitor's phone, the inbound caller
OWNER_SIP_PORT=5071                              # the owner's SIPp phone (pjsip-dev.conf)
OWNER_RING_SECONDS=4
PACKAGES=(asterisk asterisk-core-sounds-en asterisk-core-sounds-fr)
APT_OPT=(-o Acquire::Check-Valid-Until=false)    # the sid Release file we are served can be past its date

log() { printf 'asterisk.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mount need it)"; }

# Take the cache lock so that two callers (parallel tests, CI steps) never provision or start at once.
take_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 900 9 || die "could not take $STATE/lock"
}

# The Debian mirror apt already uses on this host (one-line and deb822 sources), never a hard-coded host.
debian_mirror() {
  if [ -n "${CALLBACK_DEBIAN_MIRROR:-}" ]; then echo "$CALLBACK_DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(
    {
      cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -nE 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p'
      cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -nE 's/^[[:space:]]*URIs:[[:space:]]*//Ip' | tr -s '[:blank:]' '\n'
    } | grep -E '^https?://.*/debian/?$' | head -n 1
  ) || true
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list*; set CALLBACK_DEBIAN_MIRROR"
  echo "${uri%/}"
}

# Mount points at or below $1, deepest first.
mounts_under() {
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

unmount_under() {
  local m
  for m in $(mounts_under "$1"); do
    umount "$m" 2>/dev/null || umount -l "$m" || die "cannot unmount $m"
  done
}

# Delete a root we built, never following a bind mount into the host.
remove_tree() {
  [ -e "$1" ] || return 0
  unmount_under "$1"
  [ -z "$(mounts_under "$1")" ] || die "$1 still has mounts; not deleting it"
  rm -rf --one-file-system "$1"
}

provisioned() { [ -f "$ROOT/$MARKER" ]; }

# Run one long provisioning step (debootstrap, apt-get) in a process group of its own and wait for it, so
# that an interrupted provision (Ctrl-C, a CI timeout) stops the step too instead of leaving it to write on.
# (The step keeps our lock open: should it outlive us anyway, the next provision waits for it.)
STEP_PID=
run_step() {
  local rc=0
  setsid "$@" &
  STEP_PID=$!
  wait "$STEP_PID" || rc=$?
  STEP_PID=
  return "$rc"
}

stop_step() {
  if [ -n "$STEP_PID" ]; then kill -TERM -- "-$STEP_PID" 2>/dev/null || true; fi
}

provision() {
  if provisioned; then log "provision: cached at $ROOT"; return 0; fi
  need_root
  local t0 t1 tmp mirror
  t0=$(now)
  if ! command -v debootstrap >/dev/null; then
    log "provision: installing debootstrap"
    apt-get install -y debootstrap >/dev/null || { apt-get update >/dev/null && apt-get install -y debootstrap >/dev/null; }
  fi
  mirror=$(debian_mirror)
  tmp=$CACHE/asterisk-sid.partial
  remove_tree "$tmp"
  remove_tree "$ROOT"             # a root without the marker is a half-made one: start again
  trap 'stop_step; unmount_under "'"$tmp"'"' EXIT
  trap 'exit 130' INT TERM
  log "provision: debootstrap --variant=minbase sid from $mirror"
  t1=$(now)
  run_step debootstrap --variant=minbase sid "$tmp" "$mirror" >"$STATE/debootstrap.log" 2>&1 ||
    { tail -n 30 "$STATE/debootstrap.log" >&2; die "debootstrap failed (full log: $STATE/debootstrap.log)"; }
  log "provision: debootstrap took $(since "$t1") s"

  # HTTPS to the mirror may go through a proxy whose CA only the host trusts.
  mkdir -p "$tmp/etc/ssl/certs" "$tmp/usr/local/share/ca-certificates"
  cp -L /etc/ssl/certs/ca-certificates.crt "$tmp/etc/ssl/certs/ca-certificates.crt"
  cp -rL /usr/local/share/ca-certificates/. "$tmp/usr/local/share/ca-certificates/" 2>/dev/null || true
  # Packages must not start services inside the chroot: `start` does that, by pid.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 755 "$tmp/usr/sbin/policy-rc.d"

  mount -t proc proc "$tmp/proc"
  t1=$(now)
  log "provision: apt-get install ${PACKAGES[*]}"
  if ! run_step chroot "$tmp" env DEBIAN_FRONTEND=noninteractive LC_ALL=C sh -c \
    'apt-get "$@" update && apt-get "$@" install -y --no-install-recommends '"${PACKAGES[*]}"' && apt-get clean' \
    sh "${APT_OPT[@]}" >"$STATE/apt.log" 2>&1; then
    tail -n 30 "$STATE/apt.log" >&2
    die "apt-get in the chroot failed (full log: $STATE/apt.log)"
  fi
  log "provision: packages took $(since "$t1") s"
  unmount_under "$tmp"
  trap - EXIT INT TERM

  chroot "$tmp" /usr/sbin/asterisk -V >"$tmp/$MARKER"
  mv "$tmp" "$ROOT"
  log "provision: $(cat "$ROOT/$MARKER") ready in $ROOT after $(since "$t0") s"
}

# ---- running it -------------------------------------------------------------------------------------------

# A random secret made once and kept: the tests and the sidecar read it back with `env`.
secret_in() {
  if [ ! -s "$1" ]; then
    mkdir -p "$STATE"
    (umask 077 && openssl rand -hex 24 >"$1.tmp" && mv "$1.tmp" "$1")
  fi
  cat "$1"
}

# The pid recorded by `start`, if that process is still our Asterisk (alive, not a zombie, in our root).
running_pid() {
  local pid state
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [ -r "/proc/$pid/stat" ] || return 1
  state=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$pid/stat")
  [ "$state" != Z ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = asterisk ] || return 1
  [ "$(readlink "/proc/$pid/root")" = "$(readlink -f "$ROOT")" ] || return 1
  echo "$pid"
}

# Does something on 127.0.0.1:5039 complete a TLS handshake checked against our CA (for the name and the
# address the sidecar uses) and greet with the AMI banner?
tls_ami_answers() {
  [ -s "$TLS_DIR/ca.pem" ] || return 1
  python3 - "$AMI_HOST" "$TLS_PORT" "$TLS_DIR/ca.pem" <<'PY' 2>/dev/null
import socket, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection((host, port), timeout=2) as raw:
    with ctx.wrap_socket(raw, server_hostname=host) as tls:
        data = b""
        while b"\r\n" not in data:
            chunk = tls.recv(256)
            if not chunk:
                break
            data += chunk
        # Say goodbye properly, so the probe leaves no TLS error in Asterisk's log.
        try:
            tls.sendall(b"Action: Logoff\r\n\r\n")
            while tls.recv(256):
                pass
            tls.unwrap()
        except OSError:
            pass
sys.exit(0 if data.startswith(b"Asterisk Call Manager/") else 1)
PY
}

# Is a UDP socket bound to $SIP_HOST:$SIP_PORT (an Asterisk started with configs from before chan_pjsip has none)?
sip_listens() {
  local hex
  hex=$(printf '%08X:%04X' "$(python3 -c 'import ipaddress,sys; print(int.from_bytes(ipaddress.ip_address(sys.argv[1]).packed, "little"))' "$SIP_HOST")" "$SIP_PORT")
  grep -q " $hex " /proc/net/udp
}

# Something listens on the TLS port at all (ours or not)?
port_in_use() {
  python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))' \
    "$AMI_HOST" "$TLS_PORT" 2>/dev/null
}

# Our configs into the root's /etc/asterisk, with the development differences applied:
# the dev secrets, the demo owner, the dev logger/modules and the dev-only recorder user.
install_config() {
  local etc=$ROOT/etc/asterisk secret monitor_secret call_monitor_secret
  secret=$(secret_in "$SECRET_FILE")
  monitor_secret=$(secret_in "$MONITOR_SECRET_FILE")
  call_monitor_secret=$(secret_in "$CALL_MONITOR_SECRET_FILE")
  grep -qx 'secret = CHANGE-ME-to-a-long-random-secret' "$CONF_DIR/manager.conf" ||
    die "asterisk/manager.conf no longer has the placeholder secret line this script replaces"
  grep -qx 'secret = CHANGE-ME-to-another-long-random-secret' "$CONF_DIR/manager.conf" ||
    die "asterisk/manager.conf no longer has the monitor's placeholder secret line this script replaces"
  grep -qx 'CALLBACK_OWNER=PJSIP/owner' "$CONF_DIR/extensions.conf" ||
    die "asterisk/extensions.conf no longer has the CALLBACK_OWNER line this script replaces"
  {
    sed -e "s|^secret = CHANGE-ME-to-a-long-random-secret\$|secret = $secret|" \
      -e "s|^secret = CHANGE-ME-to-another-long-random-secret\$|secret = $call_monitor_secret|" "$CONF_DIR/manager.conf"
    echo
    sed "s|@MONITOR_SECRET@|$monitor_secret|" "$HERE/manager-dev.conf"
  } >"$etc/manager.conf"
  grep -qx 'CALLBACK_OWNER_RING_SECONDS=30' "$CONF_DIR/extensions.conf" ||
    die "asterisk/extensions.conf no longer has the CALLBACK_OWNER_RING_SECONDS line this script replaces"
  # The Local-channel lists ring the Local owner; SIP visitors get PJSIP/owner back from pjsip-dev.conf.
  # The owner rings 4 s, so that the no-answer tests stay short.
  {
    sed -e 's|^CALLBACK_OWNER=PJSIP/owner$|CALLBACK_OWNER=Local/owner@demo-owner|' \
      -e 's|^CALLBACK_OWNER_RING_SECONDS=30$|CALLBACK_OWNER_RING_SECONDS='"$OWNER_RING_SECONDS"'|' \
      "$CONF_DIR/extensions.conf"
    echo
    cat "$HERE/extensions-dev.conf"
  } >"$etc/extensions.conf"
  install_pjsip "$etc"
  cp "$HERE/logger.conf" "$HERE/modules.conf" "$HERE/rtp.conf" "$etc/"
  # Debian's sample users.conf only makes pbx_config log a deprecation WARNING at every start.
  rm -f "$etc/users.conf"
  # Asterisk reads its configs as the asterisk user; the manager.conf now holds secrets.
  chroot "$ROOT" chown root:asterisk /etc/asterisk/manager.conf /etc/asterisk/extensions.conf
  chmod 0640 "$etc/manager.conf"

  bash "$CONF_DIR/tls/make-certs.sh" "$TLS_DIR"
  mkdir -p "$etc/keys"
  cp "$TLS_DIR/asterisk.pem" "$TLS_DIR/asterisk.key" "$etc/keys/"
  chroot "$ROOT" chown -R root:asterisk /etc/asterisk/keys
  chmod 0644 "$etc/keys/asterisk.pem"
  chmod 0640 "$etc/keys/asterisk.key"
}

# The shipped pjsip.conf as shipped, but for its placeholder provider address, which becomes the SIPp carrier
# on loopback, then pjsip-dev.conf (loopback bind, the owner's fixed contact). A shipped line this relies on
# that is gone is an error, not a silently different test bed.
install_pjsip() {
  local line
  for line in 'contact = sip:sip.provider.example' 'match = sip.provider.example' 'bind = 0.0.0.0:5060'; do
    grep -qx "$line" "$CONF_DIR/pjsip.conf" || die "asterisk/pjsip.conf no longer has the line '$line'"
  done
  {
    sed -e "s|^contact = sip:sip.provider.example\$|contact = sip:$SIP_HOST:$TRUNK_SIP_PORT|" \
      -e "s|^match = sip.provider.example\$|match = $SIP_HOST|" \
      "$CONF_DIR/pjsip.conf"
    echo
    echo '#include pjsip-dev.conf'
  } >"$1/pjsip.conf"
  cp "$HERE/pjsip-dev.conf" "$1/"
}

# What the configs `install_config` copies hash to: an Asterisk started from other configs (an older
# checkout, a changed dialplan or manager user) is restarted, since most changes need a full restart.
config_fingerprint() {
  cat "$CONF_DIR"/*.conf "$HERE"/*.conf "$CONF_DIR/tls/make-certs.sh" | sha256sum | cut -d' ' -f1
}

start() {
  local pid t0 deadline
  need_root
  provision
  if pid=$(running_pid); then
    if [ "$(cat "$FINGERPRINT_FILE" 2>/dev/null)" != "$(config_fingerprint)" ]; then
      log "start: pid $pid runs other configs than these: restarting it"
      stop_asterisk
    elif tls_ami_answers && sip_listens; then
      log "start: already running (pid $pid)"
      return 0
    else
      log "start: pid $pid is running but TLS AMI or SIP on $SIP_HOST:$SIP_PORT does not answer: restarting it"
      stop_asterisk
    fi
  elif port_in_use; then
    die "something else already listens on $AMI_HOST:$TLS_PORT; not starting a second Asterisk"
  fi
  t0=$(now)
  install_config
  config_fingerprint >"$FINGERPRINT_FILE"
  unmount_under "$ROOT"            # from a run that was killed before `stop`
  mount -t proc proc "$ROOT/proc"
  chroot "$ROOT" install -d -o asterisk -g asterisk /run/asterisk /var/log/asterisk
  # A fresh log each start: what a test greps for is from this run only.
  rm -f "$ROOT/var/log/asterisk/"{full,messages.log}
  : >"$CONSOLE"
  # -f: stay in the foreground (so $! is Asterisk itself), -vvv: the dialplan lines for the full log,
  # -U/-G: drop root. setsid: a signal to the caller's process group (Ctrl-C, a test runner) does not reach it.
  # Asterisk outlives this script: it must inherit no descriptor but 0-2, neither our lock nor one a caller
  # holds (`flock FILE cmd` would otherwise stay locked for as long as Asterisk runs).
  (
    close_inherited_fds
    exec setsid chroot "$ROOT" /usr/sbin/asterisk -f -n -vvv -U asterisk -G asterisk
  ) </dev/null >>"$CONSOLE" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  deadline=$(($(date +%s) + READY_TIMEOUT))
  until tls_ami_answers; do
    if ! running_pid >/dev/null; then
      start_failed "Asterisk (pid $pid) exited during start-up"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      start_failed "TLS AMI on $AMI_HOST:$TLS_PORT did not answer within $READY_TIMEOUT s (pid $pid left running; \`stop\` ends it)"
    fi
    sleep 0.2
  done
  log "start: Asterisk pid $pid ready on $AMI_HOST:$TLS_PORT (TLS) after $(since "$t0") s; full log $ROOT$FULL_LOG"
}

# Closes every descriptor of this (sub)shell above 2.
close_inherited_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

start_failed() {
  log "ERROR: $1"
  log "--- last lines of $CONSOLE"
  tail -n 25 "$CONSOLE" >&2 || true
  log "--- last lines of $ROOT$FULL_LOG"
  tail -n 25 "$ROOT$FULL_LOG" >&2 || true
  exit 1
}

# Wait up to $2 seconds for pid $1 to be gone.
wait_gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    running_pid >/dev/null || return 0
    sleep 0.1
  done
  return 1
}

stop_asterisk() {
  local pid
  if pid=$(running_pid); then
    # Graceful first (hangs up calls, closes AMI sessions), then SIGTERM, then SIGKILL, all to this pid only.
    timeout 10 chroot "$ROOT" /usr/sbin/asterisk -rx 'core stop now' >/dev/null 2>&1 || true
    if ! wait_gone "$pid" 10; then
      log "stop: pid $pid still there after 'core stop now': SIGTERM"
      kill -TERM "$pid" 2>/dev/null || true
      if ! wait_gone "$pid" 5; then
        log "stop: pid $pid still there: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || die "pid $pid did not exit"
      fi
    fi
    log "stop: Asterisk pid $pid stopped"
  else
    log "stop: not running"
  fi
  rm -f "$PIDFILE"
  unmount_under "$ROOT"
}

stop() {
  local t0
  t0=$(now)
  stop_asterisk
  log "stop: done in $(since "$t0") s"
}

status() {
  local pid
  if ! provisioned; then echo "not provisioned ($ROOT)"; return 1; fi
  if ! pid=$(running_pid); then echo "stopped ($(cat "$ROOT/$MARKER"))"; return 1; fi
  if tls_ami_answers; then
    echo "running: pid $pid, TLS AMI answering on $AMI_HOST:$TLS_PORT ($(cat "$ROOT/$MARKER"))"
  else
    echo "unhealthy: pid $pid running but TLS AMI not answering on $AMI_HOST:$TLS_PORT"
    return 1
  fi
}

print_env() {
  cat <<ENV
Ami__Host=$AMI_HOST
Ami__Port=$TLS_PORT
Ami__UseTls=true
Ami__Username=callback
Ami__Secret=$(secret_in "$SECRET_FILE")
Ami__CaCertificate=$TLS_DIR/ca.pem
Monitor__Username=callback-monitor
Monitor__Secret=$(secret_in "$CALL_MONITOR_SECRET_FILE")
Originate__Channel=Local/{number}@demo-visitor
Originate__Context=callback-{language}
Originate__Exten=s
Originate__Priority=1
Originate__CallerId=Callback <0000000000>
ASTERISK_FULL_LOG=$ROOT$FULL_LOG
ENV
}

# The same, for callbacks that ring SIPp phones through the shipped pjsip.conf instead of Local channels.
print_sip_env() {
  # A visitor who does not answer is given up after 5 s (the sidecar's default is 30 s).
  print_env | sed "s|^Originate__Channel=.*|Originate__Channel=PJSIP/{number}@trunk|"
  cat <<ENV
Originate__Timeout=5000
SIP_ASTERISK=$SIP_HOST:$SIP_PORT
SIP_TRUNK=$SIP_HOST:$TRUNK_SIP_PORT
SIP_OWNER=$SIP_HOST:$OWNER_SIP_PORT
SIP_OWNER_RING_SECONDS=$OWNER_RING_SECONDS
ENV
}

print_monitor_env() {
  cat <<ENV
AMI_MONITOR_USERNAME=callback-recorder
AMI_MONITOR_SECRET=$(secret_in "$MONITOR_SECRET_FILE")
ENV
}

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  [ $# -eq 1 ] || usage
  case $1 in
    provision) need_root; take_lock; provision ;;
    start) take_lock; start ;;
    stop) need_root; take_lock; stop ;;
    status) status ;;
    env) take_lock; print_env ;;
    env-sip) take_lock; print_sip_env ;;
    monitor-env) take_lock; print_monitor_env ;;
    *) usage ;;
  esac
}

# Sourcing the file (for a test of one function) does not run anything.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
