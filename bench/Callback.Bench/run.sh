#!/usr/bin/env bash
# In-memory AMI parser benchmarks (BenchmarkDotNet): the product's FrameReader against the raw floor and a
# naive reader, per message, on real Asterisk 22 messages. Writes bench/results/parser.md.
#
#   bash bench/Callback.Bench/run.sh            BenchmarkDotNet's default job, both mixes (10-25 minutes), then
#                                               the interleaved comparison (parser-compare.md) and the CPU
#                                               profile (parser-cpu-profile.md)
#   bash bench/Callback.Bench/run.sh --quick    its short job in process, one mix (about 30 s + build), and
#                                               a short Ping breakdown; no comparison, no profile
#   other arguments go to BenchmarkDotNet, e.g.  --filter '*FrameReader*'  (a filtered run writes no results)
#
# By hand, after a build:
#   dotnet bench/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll compare --out bench/results/parser-compare.md
#       the readers interleaved in one process (robust to load drift on a shared machine)
#   dotnet bench/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll profile --out bench/results/parser-cpu-profile.md
#       EventPipe CPU sampling of FrameReader and of Connection.Receive's mechanics, summarized
#   dotnet bench/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll ping --out bench/results/ping-layers.md
#       a Ping round trip layer by layer (raw stream, pipe, Connection, deadline, Client.send), interleaved
#   dotnet bench/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll fold --out bench/results/fold.md
#       the call fold's throughput on one thread, over every recorded callback transcript
#   bench/results/parser-profile.md explains what bounds the parser and the Ping.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# One benchmark at a time on this machine: two runs at once would measure each other.
exec 9>"${TMPDIR:-/tmp}/callback-bench.lock"
if ! flock -n 9; then
  echo "waiting for another benchmark run to finish (at most 1 hour)..." >&2
  flock -w 3600 9 || { echo "gave up waiting for the other benchmark run" >&2; exit 1; }
fi
cd "$here"
dotnet build -c Release -nologo -v quiet -clp:ErrorsOnly
dotnet bin/Release/net10.0/Callback.Bench.dll parser --results "$repo/bench/results/parser.md" "$@"
case " $* " in
  *" --filter "*) ;;
  *" --quick "*)
    dotnet bin/Release/net10.0/Callback.Bench.dll fold --rounds 3 --out "$repo/bench/results/fold.md" >/dev/null
    dotnet bin/Release/net10.0/Callback.Bench.dll ping --pings 1000 --out "$repo/bench/results/ping-layers.md" >/dev/null ;;
  *)
    dotnet bin/Release/net10.0/Callback.Bench.dll compare --out "$repo/bench/results/parser-compare.md" >/dev/null
    dotnet bin/Release/net10.0/Callback.Bench.dll fold --out "$repo/bench/results/fold.md" >/dev/null
    dotnet bin/Release/net10.0/Callback.Bench.dll ping --pings 5000 --out "$repo/bench/results/ping-layers.md" >/dev/null
    dotnet bin/Release/net10.0/Callback.Bench.dll profile --out "$repo/bench/results/parser-cpu-profile.md" >/dev/null ;;
esac
