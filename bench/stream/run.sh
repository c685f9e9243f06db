#!/usr/bin/env bash
# The loopback comparison: the same stream of Asterisk 22 events, from the same fake AMI server
# (fake-ami.c), parsed in one run by our client, a naive .NET client, a raw .NET floor and the AMI clients
# that Debian and npm offer; then the Ping round trip of each. Prints a markdown table and writes it to
# bench/results/stream.md.
#
#   bash bench/stream/run.sh            warm-up: 2 s and at least 300,000 events; then 1,000,000 timed events;
#                                       2,000 pings (+200 untimed); 3 rounds (about 10 minutes)
#   bash bench/stream/run.sh --quick    warm-up 0.5 s / 50,000 events, 100,000 events, 500 pings (+100),
#                                       1 round (under a minute)
#   options: --events N  --warm-s S  --warm-events N  --pings N  --ping-warmup N  --rounds N
#            --clients "raw naive ..."  --no-install
#
# It installs what is missing (as root): gcc, the npm packages of bench/peers (npm ci, from the committed
# lock file), Debian's python3-panoramisk and libtelephony-asterisk-ami-perl. A peer that cannot be installed
# is reported as such in the table. Every server and client has a time limit; nothing outlives the script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
peers="$repo/bench/peers"
fixture="$repo/tests/fixtures/ami/events-callback.txt"
out="$repo/bench/results/stream.md"

events=1000000
warm_s=2
warm_events=300000
pings=2000
warmup=200
rounds=3
install=1
clients="raw naive frames connection connection-every-value asterisk-manager asterisk-ami yana asterisk-ami-client panoramisk telephony-asterisk-ami"
args=""
client_limit=300 # seconds, per client run

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) events=100000 warm_s=0.5 warm_events=50000 pings=500 warmup=100 rounds=1; args="$args --quick" ;;
    --events) events="$2"; args="$args --events $2"; shift ;;
    --warm-s) warm_s="$2"; args="$args --warm-s $2"; shift ;;
    --warm-events) warm_events="$2"; args="$args --warm-events $2"; shift ;;
    --pings) pings="$2"; args="$args --pings $2"; shift ;;
    --ping-warmup) warmup="$2"; args="$args --ping-warmup $2"; shift ;;
    --rounds) rounds="$2"; args="$args --rounds $2"; shift ;;
    --clients) clients="$2"; args="$args --clients \"$2\""; shift ;;
    --no-install) install=0 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

# One benchmark at a time on this machine: two runs at once would measure each other.
exec 9>"${TMPDIR:-/tmp}/callback-bench.lock"
if ! flock -n 9; then
  echo "waiting for another benchmark run to finish (at most 1 hour)..." >&2
  flock -w 3600 9 || { echo "gave up waiting for the other benchmark run" >&2; exit 1; }
fi
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '== %s\n' "$*" >&2; }
can_install() { [ "$install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=0
apt_install() {
  can_install || return 1
  if [ "$apt_updated" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$work/apt.log" 2>&1
}

# ---- build and install ----
say "building the fake server and the .NET clients"
if ! command -v cc >/dev/null; then apt_install gcc libc6-dev || { echo "no C compiler (apt-get install gcc)" >&2; exit 1; }; fi
mkdir -p "$here/bin"
cc -O2 -o "$here/bin/fake-ami" "$here/fake-ami.c"
dotnet build "$repo/bench/Callback.Bench" -c Release -nologo -v quiet -clp:ErrorsOnly >&2
bench_dll="$repo/bench/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll"

declare -A status
node_status="ok"
if ! command -v node >/dev/null; then
  node_status="node is not installed"
elif [ ! -d "$peers/node_modules/asterisk-manager" ] || [ ! -d "$peers/node_modules/asterisk-ami" ] ||
  [ ! -d "$peers/node_modules/yana" ] || [ ! -d "$peers/node_modules/asterisk-ami-client" ]; then
  if [ "$install" = 1 ] && command -v npm >/dev/null; then
    say "npm ci in bench/peers"
    (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error >&2) || node_status="npm ci failed"
  else
    node_status="bench/peers/node_modules missing (npm ci)"
  fi
fi
for c in asterisk-manager asterisk-ami yana asterisk-ami-client; do
  status[$c]="$node_status"
  if [ "$node_status" = ok ] && [ ! -d "$peers/node_modules/$c" ]; then status[$c]="npm package $c not installed"; fi
done

python=/usr/bin/python3
status[panoramisk]=ok
if ! "$python" -c 'import panoramisk' 2>/dev/null; then
  say "apt-get install python3-panoramisk"
  apt_install python3-panoramisk || true
  "$python" -c 'import panoramisk' 2>/dev/null ||
    status[panoramisk]="python3-panoramisk not installable here ($(tail -n 1 "$work/apt.log" 2>/dev/null || echo 'apt-get unavailable'))"
fi
status[telephony-asterisk-ami]=ok
if ! perl -MTelephony::Asterisk::AMI -e 1 2>/dev/null; then
  say "apt-get install libtelephony-asterisk-ami-perl"
  apt_install libtelephony-asterisk-ami-perl || true
  perl -MTelephony::Asterisk::AMI -e 1 2>/dev/null ||
    status[telephony-asterisk-ami]="libtelephony-asterisk-ami-perl not installable here ($(tail -n 1 "$work/apt.log" 2>/dev/null || echo 'apt-get unavailable'))"
fi
for c in raw naive frames connection connection-every-value; do status[$c]=ok; done

# ---- what each client is ----
declare -A kind label
kind[raw]=floor; label[raw]='.NET raw floor: ReadAsync 16 KiB + count `\r\n\r\n`'
kind[naive]=naive; label[naive]='.NET naive: `StreamReader.ReadLineAsync` + `Dictionary`'
kind[frames]=ours; label[frames]='**ours**: `FrameReader` draining a `PipeReader` on the socket'
kind[connection]=ours; label[connection]='**ours**: `Connection.Receive` + `Client.send` (reads each event'"'"'s name)'
kind[connection-every-value]=ours; label[connection-every-value]='ours: `Connection.Receive`, every key and value decoded (as the peers do)'
kind[asterisk-manager]=peer; label[asterisk-manager]="npm asterisk-manager"
kind[asterisk-ami]=peer; label[asterisk-ami]="npm asterisk-ami"
kind[yana]=peer; label[yana]="npm yana"
kind[asterisk-ami-client]=peer; label[asterisk-ami-client]="npm asterisk-ami-client"
kind[panoramisk]=peer; label[panoramisk]="Debian python3-panoramisk"
kind[telephony-asterisk-ami]=peer; label[telephony-asterisk-ami]="Debian libtelephony-asterisk-ami-perl"

client_command() { # name port
  case "$1" in
    raw|naive|frames|connection|connection-every-value)
      echo dotnet "$bench_dll" stream --client "$1" --port "$2" --pings "$pings" --warmup "$warmup" ;;
    asterisk-manager|asterisk-ami|yana|asterisk-ami-client) echo node "$peers/node-client.js" "$1" "$2" "$pings" "$warmup" ;;
    panoramisk) echo "$python" "$peers/panoramisk-client.py" "$2" "$pings" "$warmup" ;;
    telephony-asterisk-ami) echo perl "$peers/perl-client.pl" "$2" "$pings" "$warmup" ;;
  esac
}

: >"$work/clients.tsv"
for c in $clients; do
  [ -n "${kind[$c]:-}" ] || { echo "unknown client: $c" >&2; exit 2; }
  printf '%s\t%s\t%s\t%s\n' "$c" "${kind[$c]}" "${label[$c]}" "${status[$c]}" >>"$work/clients.tsv"
done

# ---- one server + one client ----
run_one() { # name round
  local name="$1" round="$2" portfile="$work/port" port i
  rm -f "$portfile"
  "$here/bin/fake-ami" --fixture "$fixture" --events "$events" --warmup-s "$warm_s" --warmup-events "$warm_events" --port 0 --port-file "$portfile" \
    --timeout-s $((client_limit + 30)) >"$work/$name.$round.server.json" 2>"$work/$name.$round.server.log" &
  server_pid=$!
  for i in $(seq 1 200); do [ -s "$portfile" ] && break; sleep 0.05; done
  port="$(cat "$portfile")"
  # shellcheck disable=SC2046
  timeout "$client_limit" $(client_command "$name" "$port") >"$work/$name.$round.client.json" 2>"$work/$name.$round.client.log" || true
  wait "$server_pid" || true
  server_pid=""
  local line
  line="$(tail -n 1 "$work/$name.$round.client.json" 2>/dev/null | cut -c1-160)"
  say "$name round $round: ${line:-no output} | server: $(cat "$work/$name.$round.server.json" 2>/dev/null)"
}

for round in $(seq 1 "$rounds"); do
  for c in $clients; do
    if [ "${status[$c]}" = ok ]; then run_one "$c" "$round"; fi
  done
done

# ---- environment and the table ----
first_json=""
for f in "$work"/*.1.server.json; do [ -s "$f" ] && first_json="$(tail -n 1 "$f")" && break; done || true
json_field() { printf '%s' "$first_json" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
{
  printf 'args\t%s\n' "$args"
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'cpu\t%s\n' "$(awk -F ': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  printf 'cores\t%s\n' "$(nproc)"
  printf 'load\t%s\n' "$(cut -d ' ' -f 1-3 /proc/loadavg)"
  printf 'events\t%s\n' "$events"
  printf 'warm_s\t%s\n' "$warm_s"
  printf 'warm_events\t%s\n' "$warm_events"
  printf 'pings\t%s\n' "$pings"
  printf 'warmup\t%s\n' "$warmup"
  printf 'rounds\t%s\n' "$rounds"
  printf 'first_write_events\t%s\n' "$(json_field first_write_events)"
  printf 'event_bytes\t%s\n' "$(json_field event_bytes_mean)"
  printf 'version:.NET\t%s\n' "$(dotnet --version 2>/dev/null)"
  printf 'version:node\t%s\n' "$(node --version 2>/dev/null || echo none)"
  for c in asterisk-manager asterisk-ami yana asterisk-ami-client asterisk-ami-connector; do
    printf 'version:npm %s\t%s\n' "$c" "$(node -p "require('$peers/node_modules/$c/package.json').version" 2>/dev/null || echo none)"
  done
  printf 'version:python\t%s\n' "$("$python" --version 2>&1)"
  printf 'version:python3-panoramisk\t%s\n' "$(dpkg-query -W -f '${Version}' python3-panoramisk 2>/dev/null || echo none)"
  printf 'version:perl\t%s\n' "$(perl -e 'print $^V')"
  printf 'version:libtelephony-asterisk-ami-perl\t%s\n' "$(dpkg-query -W -f '${Version}' libtelephony-asterisk-ami-perl 2>/dev/null || echo none)"
} >"$work/env.tsv"

dotnet "$bench_dll" report --work "$work" --out "$out"
