#!/usr/bin/env bash
# In-memory AMI parser benchmarks (BenchmarkDotNet): the product's FrameReader against the raw floor and a
# naive reader, per message, on real Asterisk 22 messages. Writes bench/results/parser.md.
#
#   bash bench/Callback.Bench/run.sh            BenchmarkDotNet's default job (several minutes)
#   bash bench/Callback.Bench/run.sh --quick    its short job (1 launch, 3 warm-ups, 3 iterations)
#   other arguments go to BenchmarkDotNet, e.g.  --filter '*FrameReader*'
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"
dotnet build -c Release -nologo -v quiet -clp:ErrorsOnly
dotnet bin/Release/net10.0/Callback.Bench.dll parser --results "$repo/bench/results/parser.md" "$@"
