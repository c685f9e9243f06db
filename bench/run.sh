#!/usr/bin/env bash
# Every benchmark of the callback sidecar, in one command.
#
#   bench/run.sh [--quick] [--worktree] [--experiments] [--only e2e,startup,stream,parser]
#
#   --quick     about 1/5 of the calls and starts, the shipped build (Native AOT) and the framework-dependent
#               one only (no ReadyToRun, no runtime knobs), no waiting for Asterisk between chunks, one
#               cached image build: under 2 minutes once Asterisk, the base images and this commit's
#               builds are cached (the first run on a new commit adds its publishes and an image build,
#               1-2 minutes); the numbers are indicative only
#   --worktree  measure the working tree's src/Callback instead of the last commit (to try a change)
#   --experiments  also publish and measure (start-up, memory, size) a build the project does not ship:
#               self-contained + trimmed + ReadyToRun (F# trim warnings are not errors for it). Adds a few
#               minutes.
#   --only      run only the named benchmarks (default: all six: e2e,startup,stream,parser,container,status)
#
# In order:
#   1. e2e      POST /callback against a raw AMI/TLS client (the protocol floor), same real Asterisk 22,
#               sequential, 8 and 32 concurrent clients   -> bench/results/e2e.md
#   2. startup  start -> first 200 from /healthz, idle RSS, published size: the Native AOT executable the
#               image ships (needs clang), the framework-dependent build the tests run, ReadyToRun, and
#               the runtime settings that matter           -> bench/results/startup.md
#   3. bench/stream/run.sh and the BenchmarkDotNet project bench/Callback.Bench, when they exist.
#   4. status   AMI event -> SSE frame and -> GET /calls/{id} latency, the published sidecar's monitor fed
#               a storm of unrelated events by a fake AMI server (Callback.Bench status) -> bench/results/status.md
#
# Needs root (the local Asterisk runs in a chroot; asterisk/dev/asterisk.sh provisions it the first time,
# about 2.5 min), the .NET 10 SDK and clang (for Native AOT). The sidecar under test is published from a
# clean copy of src/Callback (last commit, or the working tree with --worktree) into a cache directory,
# never into the repository's own bin/ and obj/, so concurrent builds of the repository do not disturb a
# run. The e2e benchmark runs the framework-dependent build (`dotnet Callback.dll`).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RESULTS=$HERE/results
WORK=${CALLBACK_BENCH_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/callback-sidecar-bench}
QUICK=0
WORKTREE=0
EXPERIMENTS=0
ONLY=e2e,startup,stream,parser,container,status
ARGS=("$@")
for ((i = 0; i < ${#ARGS[@]}; i++)); do
  arg=${ARGS[$i]}
  case $arg in
    --only) i=$((i + 1)); ONLY=${ARGS[$i]:-} ;;
    --only=*) ONLY=${arg#--only=} ;;
    --quick) QUICK=1 ;;
    --worktree) WORKTREE=1 ;;
    --experiments) EXPERIMENTS=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
wanted() { [[ ",$ONLY," == *",$1,"* ]]; }
T0=$(date +%s)
mkdir -p "$WORK" "$RESULTS"
cd "$REPO"

# ---- the machine, for every results file -------------------------------------------------------------
ASTERISK_STATUS=
machine() {
  local cpu mem dotnet_sdk dotnet_rt
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
  mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  dotnet_sdk=$(dotnet --version 2>/dev/null || echo '?')
  dotnet_rt=$(dotnet --list-runtimes 2>/dev/null | awk '/Microsoft.AspNetCore.App/ { v = $2 } END { print v }')
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores ($cpu), $mem RAM, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "- load average when the run started: $LOAD_AT_START (other builds may share the machine: numbers are indicative)"
  echo "- .NET SDK $dotnet_sdk, ASP.NET Core runtime $dotnet_rt"
  echo "- Asterisk: ${ASTERISK_STATUS:-not checked}"
  echo "- sidecar measured: $SOURCE_DESC"
  echo "- mode: $([ "$QUICK" = 1 ] && echo 'quick (bench/run.sh --quick: ~1/5 of the calls and starts)' || echo 'full (bench/run.sh)')$([ "$EXPERIMENTS" = 1 ] && echo ', with --experiments')"
}
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

E2E_OK=1  # 1 = nothing failed (or not asked for)
STARTUP_OK=1
ASTERISK_OK=0
SIDECAR_ENV=()
ASTERISK_ROOT=

# ---- 0. the sidecar under test, published from a clean copy -------------------------------------------
if wanted e2e || wanted startup || wanted status; then
PATHS=(src/Callback Directory.Build.props Directory.Packages.props global.json)
snapshot_tar() {
  if [ "$WORKTREE" = 1 ]; then
    tar --exclude=bin --exclude=obj --sort=name --mtime='2000-01-01' --owner=0 --group=0 -cf - "${PATHS[@]}"
  else
    git archive --format=tar HEAD "${PATHS[@]}"
  fi
}
if [ "$WORKTREE" = 1 ]; then
  SOURCE_DESC="working tree on top of $(git rev-parse --short HEAD) ($(git status --porcelain -- src/Callback | wc -l) changed file(s) in src/Callback)"
else
  SOURCE_DESC="commit $(git rev-parse --short HEAD); src/Callback last changed in $(git log -1 --format='%h (%s)' HEAD -- src/Callback | cut -c1-100)"
fi
# The cache key is the content only (git archive would also embed the commit id).
if [ "$WORKTREE" = 1 ]; then
  KEY=$(snapshot_tar | sha256sum | cut -c1-16)
else
  KEY=$(git ls-tree -r HEAD -- "${PATHS[@]}" | sha256sum | cut -c1-16)
fi
SNAP=$WORK/src-$KEY
PUB=$WORK/publish-$KEY
if [ ! -f "$PUB/.done" ]; then
  log "publishing the sidecar ($SOURCE_DESC)"
  rm -rf "$SNAP" "$PUB"
  mkdir -p "$SNAP/plain"
  snapshot_tar | tar -x -C "$SNAP/plain"
  dotnet publish "$SNAP/plain/src/Callback" -c Release -o "$PUB/plain" -nologo -v quiet --disable-build-servers \
    >"$WORK/publish-plain.log" 2>&1 &
else
  log "sidecar already published for this source ($KEY)"
fi
# Native AOT, as the Dockerfile publishes it (what the image ships), from its own copy so that the
# publishes can run at once without sharing obj/. Needs clang (Debian's clang-NN will do).
CC=$(command -v clang || ls /usr/bin/clang-[0-9]* 2>/dev/null | sort -V | tail -n 1 || true)
if { wanted startup || wanted e2e || wanted status; } && [ ! -x "$PUB/aot/Callback" ]; then
  if [ -n "$CC" ]; then
    rm -rf "$SNAP/aot"
    mkdir -p "$SNAP/aot"
    snapshot_tar | tar -x -C "$SNAP/aot"
    dotnet publish "$SNAP/aot/src/Callback" -c Release -r linux-x64 -p:PublishAot=true \
      -p:CppCompilerAndLinker="$(basename "$CC")" -p:StripSymbols=true -p:CopyOutputSymbolsToPublishDirectory=false \
      -o "$PUB/aot" -nologo -v quiet --disable-build-servers >"$WORK/publish-aot.log" 2>&1 &
  else
    log "no clang: the Native AOT build (what the image ships) is not measured"
  fi
fi
# ReadyToRun (not in --quick: it would double the build time), from its own copy as well.
if [ "$QUICK" = 0 ] && [ ! -f "$PUB/r2r/Callback.dll" ]; then
  rm -rf "$SNAP/r2r"
  mkdir -p "$SNAP/r2r"
  snapshot_tar | tar -x -C "$SNAP/r2r"
  dotnet publish "$SNAP/r2r/src/Callback" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
    -o "$PUB/r2r" -nologo -v quiet --disable-build-servers >"$WORK/publish-r2r.log" 2>&1 &
fi

log "building the harnesses (bench/e2e, bench/startup)"
for p in e2e startup; do
  dotnet build "$HERE/$p" -c Release -nologo -v quiet --disable-build-servers >"$WORK/build-$p.log" 2>&1 &
done
BUILD_FAILED=0
for job in $(jobs -p); do wait "$job" || BUILD_FAILED=1; done
if [ "$BUILD_FAILED" = 1 ]; then
  tail -n 30 "$WORK"/publish-*.log "$WORK"/build-*.log >&2
  rm -rf "$PUB"
  exit 1
fi
if [ "$EXPERIMENTS" = 1 ] && [ ! -f "$PUB/.experiments" ]; then
  log "experiments: publishing self-contained trimmed ReadyToRun"
  rm -rf "$SNAP/trim"
  mkdir -p "$SNAP/trim"
  snapshot_tar | tar -x -C "$SNAP/trim"
  dotnet publish "$SNAP/trim/src/Callback" -c Release -r linux-x64 --self-contained true -p:PublishTrimmed=true \
    -p:PublishReadyToRun=true -p:TreatWarningsAsErrors=false -o "$PUB/trim-r2r" -nologo -v quiet \
    --disable-build-servers >"$WORK/publish-trim.log" 2>&1 ||
    { tail -n 30 "$WORK/publish-trim.log" >&2; exit 1; }
  touch "$PUB/.experiments"
fi
if [ ! -f "$PUB/.done" ]; then
  touch "$PUB/.done"
  # Keep the cache small: only the newest few snapshots.
  ls -dt "$WORK"/publish-*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
  ls -dt "$WORK"/src-*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
fi
E2E_DLL=$HERE/e2e/bin/Release/net10.0/CallbackE2eBench.dll
STARTUP_DLL=$HERE/startup/bin/Release/net10.0/CallbackStartupBench.dll
fi

# ---- Asterisk and the sidecar's settings ----------------------------------------------------------------
if wanted e2e; then
if bash asterisk/dev/asterisk.sh start >"$WORK/asterisk-start.log" 2>&1; then
  ASTERISK_OK=1
  ASTERISK_STATUS=$(bash asterisk/dev/asterisk.sh status 2>/dev/null || true)
  ASTERISK_STATUS=${ASTERISK_STATUS#running: }
  ASTERISK_STATUS=$(sed -E 's/^pid [0-9]+, //' <<<"$ASTERISK_STATUS")
else
  log "Asterisk could not be started (see below): the end-to-end benchmark is skipped"
  tail -n 10 "$WORK/asterisk-start.log" >&2
  ASTERISK_STATUS="could not be started"
fi
fi
if wanted e2e || wanted startup; then
# KEY=VALUE lines, split on the first '=' (values hold spaces and <>): never sourced.
while IFS= read -r line; do
  [ -n "$line" ] || continue
  k=${line%%=*}
  v=${line#*=}
  case $k in
    ASTERISK_FULL_LOG) ASTERISK_ROOT=${v%/var/log/asterisk/full} ;;
    *) SIDECAR_ENV+=("$k=$v") ;;
  esac
done < <(bash asterisk/dev/asterisk.sh env)
fi

# ---- 1. end to end -------------------------------------------------------------------------------------
if wanted e2e; then
if [ "$QUICK" = 1 ]; then
  E2E_ARGS=(--phase 1:40 --phase 8:80 --phase 32:128 --warmup 6 --probes 50 --drain-seconds 0 --phase-seconds 60)
else
  E2E_ARGS=(--phase 1:200 --phase 8:400 --phase 32:640 --warmup 16 --probes 200 --drain-seconds 20 --phase-seconds 300)
fi
E2E_OK=0
if [ "$ASTERISK_OK" = 1 ]; then
  # The sidecar as the image ships it (the Native AOT executable), else the framework-dependent build.
  if [ -x "$PUB/aot/Callback" ]; then
    E2E_SIDECAR=$PUB/aot/Callback
    E2E_SIDECAR_DESC="the Native AOT executable the image ships"
  else
    E2E_SIDECAR=$PUB/plain/Callback.dll
    E2E_SIDECAR_DESC="the framework-dependent build (no clang here for Native AOT)"
  fi
  log "e2e: sidecar ($E2E_SIDECAR_DESC) vs raw AMI floor against the real Asterisk"
  if env "${SIDECAR_ENV[@]}" timeout 1200 dotnet "$E2E_DLL" --sidecar-dll "$E2E_SIDECAR" \
    "${E2E_ARGS[@]}" --asterisk-root "$ASTERISK_ROOT" --asterisk-start "bash '$REPO/asterisk/dev/asterisk.sh' start" \
    --work "$WORK/e2e" --out "$WORK/e2e-body.md"; then
    E2E_OK=1
  else
    log "e2e: the harness failed (its output is above)"
  fi
fi
{
  echo "# End-to-end callback latency: sidecar vs raw AMI floor"
  echo
  machine
  echo
  echo "Produced by \`bench/run.sh$([ "$QUICK" = 1 ] && echo ' --quick')\` (harness: \`bench/e2e\`). Both clients run in the same"
  echo "process, against the same Asterisk, in the same run: the **floor** is a minimal raw client (TCP, TLS"
  echo "checked against the dev CA, greeting, Login, Originate with \`Async: true\`, Logoff, each response read up"
  echo "to its blank line, nothing from src/); the **sidecar** is \`POST /callback\` (form-encoded, keep-alive"
  echo "HTTP/1.1 like a reverse proxy) to the published sidecar (${E2E_SIDECAR_DESC:-not started}), which does the same AMI exchange. Every call"
  echo "uses a distinct valid number (1-514/438/450/613-555-0200…0999, en/fr alternating); a call counts only"
  echo "when all three AMI answers (floor) or all five booleans and 200 (sidecar) came back."
  echo "Sequential: the two clients take turns call by call (floor, sidecar, sidecar, floor, …) in 4 chunks;"
  echo "8 and 32 concurrent clients: floor, sidecar, sidecar, floor chunks (ABBA), so that drift in the"
  echo "machine's load falls on both alike$([ "$QUICK" = 1 ] && echo '; chunks run back to back (calls of the previous chunk still up in Asterisk)' || echo '; between chunks the harness waits (at most 20 s) for Asterisk to hang up the previous chunk'"'"'s calls (each lives ~6 s)')."
  echo "Percentiles are nearest-rank; with 200 samples p99 is the second-worst call. *SYNs dropped*: the"
  echo "kernel's TcpExt ListenOverflows during the chunks: Asterisk's manager listens with a backlog of 10, so"
  echo "more simultaneous connects than that are dropped and retried by TCP after 1 s."
  echo
  if [ "$E2E_OK" = 1 ]; then
    cat "$WORK/e2e-body.md"
  else
    echo "**Not measured in this run**: $([ "$ASTERISK_OK" = 1 ] && echo 'the harness failed' || echo 'Asterisk could not be started')."
  fi
} >"$RESULTS/e2e.md"
fi

# ---- 2. start-up, memory, size -------------------------------------------------------------------------
if wanted startup; then
# The image runs the Native AOT executable; `dotnet fsi build.fsx test` and `demo` run the JIT build
# (`dotnet Callback.dll`), kept as the comparison row.
VARIANTS=()
[ -x "$PUB/aot/Callback" ] && VARIANTS+=("as shipped: Native AOT (/app/Callback in the image)|$PUB/aot/Callback")
VARIANTS+=("framework-dependent (dotnet Callback.dll, what tests run)|$PUB/plain/Callback.dll")
if [ "$QUICK" = 1 ]; then
  STARTUP_ARGS=(--runs 4 --rss-runs 1 --idle-seconds 2)
  [ -f "$PUB/r2r/Callback.dll" ] && VARIANTS+=("ReadyToRun|$PUB/r2r/Callback.dll")
else
  STARTUP_ARGS=(--runs 10 --rss-runs 3 --idle-seconds 5)
  VARIANTS+=(
    "framework-dependent, gcServer=0|$PUB/plain/Callback.dll|DOTNET_gcServer=0"
    "framework-dependent, gcServer=0, gcConcurrent=0|$PUB/plain/Callback.dll|DOTNET_gcServer=0 DOTNET_gcConcurrent=0"
    "framework-dependent, GCgen0size=4 MiB|$PUB/plain/Callback.dll|DOTNET_GCgen0size=0x400000"
    "framework-dependent, TieredPGO=0|$PUB/plain/Callback.dll|DOTNET_TieredPGO=0"
    "framework-dependent, TieredCompilation=0|$PUB/plain/Callback.dll|DOTNET_TieredCompilation=0"
    "framework-dependent, W^X off|$PUB/plain/Callback.dll|DOTNET_EnableWriteXorExecute=0"
    "ReadyToRun|$PUB/r2r/Callback.dll"
    "ReadyToRun, gcServer=0|$PUB/r2r/Callback.dll|DOTNET_gcServer=0"
    "ReadyToRun, TieredPGO=0|$PUB/r2r/Callback.dll|DOTNET_TieredPGO=0"
    "ReadyToRun, W^X off|$PUB/r2r/Callback.dll|DOTNET_EnableWriteXorExecute=0"
    "ReadyToRun, W^X off, gcServer=0, TieredPGO=0|$PUB/r2r/Callback.dll|DOTNET_EnableWriteXorExecute=0 DOTNET_gcServer=0 DOTNET_TieredPGO=0"
  )
fi
if [ "$EXPERIMENTS" = 1 ]; then
  VARIANTS+=("experiment: self-contained, trimmed, ReadyToRun|$PUB/trim-r2r/Callback")
fi
VARIANT_ARGS=()
for v in "${VARIANTS[@]}"; do VARIANT_ARGS+=(--variant "$v"); done
log "startup: ${#VARIANTS[@]} variants"
STARTUP_OK=0
if env "${SIDECAR_ENV[@]}" timeout 900 dotnet "$STARTUP_DLL" "${STARTUP_ARGS[@]}" "${VARIANT_ARGS[@]}" \
  --out "$WORK/startup-body.md"; then
  STARTUP_OK=1
fi
size_of() { du -sh "$1" | cut -f1; }
{
  echo "# Start-up time, memory and size of the published sidecar"
  echo
  machine
  echo
  echo "Produced by \`bench/run.sh$([ "$QUICK" = 1 ] && echo ' --quick')\` (harness: \`bench/startup\`). **Start → 200**: from just before"
  echo "the process (\`Callback\`, or \`dotnet Callback.dll\`) is created (in the publish directory, as the image's \`WORKDIR /app\`) to the first"
  echo "200 from \`GET /healthz\`, polled about every millisecond; median of ${STARTUP_ARGS[1]} starts per variant, the"
  echo "variants taking turns. **CPU ms at ready**: user + system time the process had used by then (less"
  echo "sensitive to a busy machine than wall time). **Idle RSS**: VmRSS from /proc/<pid>/status after"
  echo "${STARTUP_ARGS[5]} s idle after ready (no request served), median of ${STARTUP_ARGS[3]} start(s); *anon* is the process's own"
  echo "memory (GC heap, JIT'd code, stacks), *file* the mapped executable, runtime and assemblies (shared between"
  echo "processes using the same .NET, but counted in each one's RSS). Targets: start → 200 < 300 ms, idle RSS < 60 MB."
  echo "Environment variables are the runtime's own knobs; where a project property does the same, it is in the last table."
  echo
  echo "## Published size (\`du -sh\` of the publish directory)"
  echo
  echo "| publish | command | size |"
  echo "| --- | --- | ---: |"
  if [ -x "$PUB/aot/Callback" ]; then
    echo "| as shipped: Native AOT (includes the runtime; symbols stripped) | \`dotnet publish src/Callback -c Release -r linux-x64 -p:PublishAot=true -p:StripSymbols=true -p:CopyOutputSymbolsToPublishDirectory=false\` | $(size_of "$PUB/aot") |"
  fi
  echo "| framework-dependent (what tests run) | \`dotnet publish src/Callback -c Release\` | $(size_of "$PUB/plain") |"
  if [ -f "$PUB/r2r/Callback.dll" ]; then
    echo "| ReadyToRun | \`dotnet publish src/Callback -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true\` | $(size_of "$PUB/r2r") |"
  fi
  if [ "$EXPERIMENTS" = 1 ]; then
    echo "| experiment: self-contained, trimmed, ReadyToRun (includes the runtime) | \`… -r linux-x64 --self-contained true -p:PublishTrimmed=true -p:PublishReadyToRun=true\` | $(size_of "$PUB/trim-r2r") |"
  fi
  echo
  echo "## Start → ready and idle memory"
  echo
  if [ "$STARTUP_OK" = 1 ]; then
    cat "$WORK/startup-body.md"
  else
    echo "**Not measured in this run**: the start-up harness failed (see the console output)."
  fi
  echo
  echo "Under-load RSS (peak during the c=32 run) is in \`bench/results/e2e.md\`."
  echo
  echo "## The same settings as project properties (src/Callback/Callback.fsproj)"
  echo
  echo "| environment variable | project property | runtimeconfig.json |"
  echo "| --- | --- | --- |"
  echo "| \`DOTNET_gcServer=0\` | \`<ServerGarbageCollection>false</ServerGarbageCollection>\` (Microsoft.NET.Sdk.Web makes it true) | \`System.GC.Server\` |"
  echo "| \`DOTNET_gcConcurrent=0\` | \`<ConcurrentGarbageCollection>false</ConcurrentGarbageCollection>\` | \`System.GC.Concurrent\` |"
  echo "| \`DOTNET_GCgen0size=0x400000\` | none (environment only, e.g. \`ENV\` in the Dockerfile) | – |"
  echo "| \`DOTNET_TieredPGO=0\` | \`<TieredPGO>false</TieredPGO>\` | \`System.Runtime.TieredPGO\` |"
  echo "| \`DOTNET_TieredCompilation=0\` | \`<TieredCompilation>false</TieredCompilation>\` | \`System.Runtime.TieredCompilation\` |"
  echo "| \`DOTNET_EnableWriteXorExecute=0\` | none (environment only; turns off a security hardening) | – |"
  echo "| ReadyToRun | \`<PublishReadyToRun>true</PublishReadyToRun>\` with \`<RuntimeIdentifier>linux-x64</RuntimeIdentifier>\` and \`<SelfContained>false</SelfContained>\` | – |"
} >"$RESULTS/startup.md"
fi

# ---- 3. the other benchmarks, when present ------------------------------------------------------------
OTHER_STATUS=()
if wanted stream; then
if [ -f "$HERE/stream/run.sh" ]; then
  log "bench/stream/run.sh"
  if bash "$HERE/stream/run.sh" $([ "$QUICK" = 1 ] && echo --quick); then
    OTHER_STATUS+=("bench/stream/run.sh: done")
  else
    OTHER_STATUS+=("bench/stream/run.sh: FAILED (exit $?)")
  fi
else
  OTHER_STATUS+=("bench/stream/run.sh: not there yet, skipped")
fi
fi
if wanted parser; then
BDN_PROJ=$(ls "$HERE"/Callback.Bench/*.fsproj "$HERE"/Callback.Bench/*.csproj 2>/dev/null | head -n 1 || true)
if [ -x "$HERE/Callback.Bench/run.sh" ] || [ -f "$HERE/Callback.Bench/run.sh" ]; then
  log "bench/Callback.Bench/run.sh"
  if bash "$HERE/Callback.Bench/run.sh" $([ "$QUICK" = 1 ] && echo --quick); then
    OTHER_STATUS+=("bench/Callback.Bench: done")
  else
    OTHER_STATUS+=("bench/Callback.Bench: FAILED (exit $?)")
  fi
elif [ -n "$BDN_PROJ" ]; then
  log "BenchmarkDotNet: $BDN_PROJ"
  BDN_ARGS=(--filter '*')
  [ "$QUICK" = 1 ] && BDN_ARGS+=(--job short)
  if dotnet run -c Release --project "$BDN_PROJ" -- "${BDN_ARGS[@]}"; then
    OTHER_STATUS+=("bench/Callback.Bench: done")
  else
    OTHER_STATUS+=("bench/Callback.Bench: FAILED (exit $?)")
  fi
else
  OTHER_STATUS+=("bench/Callback.Bench: no project yet, skipped")
fi
fi

if wanted container; then
  # Image size, build, start → 200, healthy, RSS, stop: docker/measure.sh (engine and base images made if
  # missing; the engine is stopped again if this script started it).
  log "docker/measure.sh"
  engine_was_running=0
  bash "$HERE/../docker/engine.sh" status >/dev/null 2>&1 && engine_was_running=1
  if MEASURE_QUICK=$QUICK bash "$HERE/../docker/measure.sh" $([ "$QUICK" = 1 ] && echo 1 || echo 5) >"$RESULTS/container.md"; then
    OTHER_STATUS+=("docker/measure.sh: done -> bench/results/container.md")
  else
    OTHER_STATUS+=("docker/measure.sh: FAILED (exit $?)")
  fi
  [ "$engine_was_running" = 1 ] || bash "$HERE/../docker/engine.sh" stop >/dev/null 2>&1 || true
fi

# ---- 4. call status latency ---------------------------------------------------------------------------
if wanted status; then
  # The sidecar as the image ships it (Native AOT), else the framework-dependent build.
  STATUS_SIDECAR=$PUB/plain/Callback.dll
  [ -x "$PUB/aot/Callback" ] && STATUS_SIDECAR=$PUB/aot/Callback
  # The full run adds 100,000 events/s (5x the target's rate) to show the headroom.
  if [ "$QUICK" = 1 ]; then
    STATUS_ARGS=(--rates 0,1000,20000 --calls 10 --warmup 2)
  else
    STATUS_ARGS=(--rates 0,1000,20000,100000 --calls 200 --warmup 10)
  fi
  log "status: event -> SSE / GET latency ($(basename "$STATUS_SIDECAR"))"
  if dotnet build "$HERE/Callback.Bench" -c Release -nologo -v quiet -clp:ErrorsOnly >"$WORK/build-status.log" 2>&1 &&
    timeout 900 dotnet "$HERE/Callback.Bench/bin/Release/net10.0/Callback.Bench.dll" status --sidecar "$STATUS_SIDECAR" \
      "${STATUS_ARGS[@]}" --work "$WORK" --out "$RESULTS/status.md" >/dev/null; then
    OTHER_STATUS+=("Callback.Bench status: done -> bench/results/status.md")
  else
    tail -n 20 "$WORK/build-status.log" "$WORK/status-sidecar.log" >&2 || true
    OTHER_STATUS+=("Callback.Bench status: FAILED (exit $?)")
  fi
fi

# ---- print -------------------------------------------------------------------------------------------
echo
if wanted e2e; then cat "$RESULTS/e2e.md"; echo; fi
if wanted startup; then cat "$RESULTS/startup.md"; echo; fi
for s in "${OTHER_STATUS[@]}"; do echo "- $s"; done
log "all benchmarks done in $(($(date +%s) - T0)) s; results in bench/results/"
# Exit 1 when a benchmark that could run failed (a missing one, or no Asterisk, is not a failure here).
if { wanted e2e && [ "$ASTERISK_OK" = 1 ] && [ "$E2E_OK" = 0 ]; } || [ "$STARTUP_OK" = 0 ] ||
  printf '%s\n' "${OTHER_STATUS[@]}" | grep -q FAILED; then
  log "some benchmark FAILED (see above)"
  exit 1
fi
