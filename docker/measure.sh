#!/usr/bin/env bash
# docker/measure.sh — build the image and measure it as shipped (the Native AOT executable on the
# runtime-deps image); prints a Markdown report on stdout.
#
#   docker/measure.sh [RUNS]       RUNS start measurements (default 5)
#   MEASURE_QUICK=1                only one build, from the layers cached by earlier builds (what
#                                  `bench/run.sh --quick` uses): the cold and one-file build times are
#                                  not measured
#
# Builds from a clean export of the committed tree (git archive HEAD), so uncommitted work in the
# checkout does not leak into the numbers. Starts the engine (docker/engine.sh) and makes the base
# images (docker/base-images.sh) if needed; leaves the engine running (stop it with engine.sh stop).
# Uses host networking (the engine runs without a bridge) and port ${MEASURE_PORT:-18080} on 127.0.0.1.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(git -C "$HERE" rev-parse --show-toplevel)"
RUNS="${1:-5}"
# Seconds of idling before the RSS is read (2 in a quick run).
IDLE=$([ "${MEASURE_QUICK:-0}" = 1 ] && echo 2 || echo 10)
PORT="${MEASURE_PORT:-18080}"
TAG="${MEASURE_TAG:-callback-sidecar}"
NAME="callback-sidecar-measure"

"$HERE/engine.sh" start >&2
export $("$HERE/engine.sh" env 2>/dev/null)
DOCKER="${DOCKER_CLI:-/usr/bin/docker}"
"$HERE/base-images.sh" >&2

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

CTX="$(mktemp -d "${TMPDIR:-/tmp}/callback-measure.XXXXXX")"
cleanup() { "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true; rm -rf "$CTX"; }
trap cleanup EXIT
git -C "$REPO" archive HEAD | tar -x -C "$CTX"
COMMIT="$(git -C "$REPO" rev-parse --short HEAD)"

build() { # label, extra args
  local label="$1"; shift
  local t0 t1
  t0=$(now)
  "$DOCKER" build --network host "$@" -t "$TAG" "$CTX" >"$CTX.build.log" 2>&1 || { cat "$CTX.build.log" >&2; exit 1; }
  t1=$(now)
  echo "| $label | $(secs "$t0" "$t1") s |"
}

echo "## Image build and run ($(date -u +%Y-%m-%d), commit $COMMIT, $(nproc) cores, $("$DOCKER" version -f 'engine {{.Server.Version}}'), BuildKit)"
echo
echo "| build | wall time |"
echo "| --- | --- |"
if [ "${MEASURE_QUICK:-0}" = 1 ]; then
  build "quick run: one build reusing cached layers (cold and one-file builds not measured)"
else
  build "cold (\`--no-cache\`: restore from NuGet + publish)" --no-cache
  build "warm, nothing changed (all layers cached)"
  echo "// measure.sh: a source change" >> "$CTX/src/Callback/Program.fs"
  build "warm, one source file changed (restore layer cached, publish re-runs)"
fi
echo
SIZE=$("$DOCKER" image inspect -f '{{.Size}}' "$TAG")
BASE_TAG=$(sed -n 's/^ARG RUNTIME_IMAGE=//p' "$CTX/Dockerfile")
BASE=$("$DOCKER" image inspect -f '{{.Size}}' "$BASE_TAG")
printf 'Image size (`docker image inspect -f {{.Size}}`): %s MB, of which base image (`%s`) %s MB, app layer %s MB.\n\n' \
  "$(awk -v s="$SIZE" 'BEGIN{printf "%.1f", s/1e6}')" "$BASE_TAG" "$(awk -v s="$BASE" 'BEGIN{printf "%.1f", s/1e6}')" \
  "$(awk -v s="$SIZE" -v b="$BASE" 'BEGIN{printf "%.1f", (s-b)/1e6}')"

RUN_ARGS=(--network host --read-only
  -e ASPNETCORE_URLS="http://127.0.0.1:$PORT" -e ASPNETCORE_HTTP_PORTS="$PORT"
  -e Ami__Host=127.0.0.1 -e Ami__Port=5039 -e Ami__Username=callback -e Ami__Secret=measure-only
  -e 'Originate__Channel=PJSIP/{number}@trunk')

starts=(); healthy=(); stops=()
for i in $(seq 1 "$RUNS"); do
  "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true
  t0=$(now)
  "$DOCKER" run -d --name "$NAME" "${RUN_ARGS[@]}" "$TAG" >/dev/null
  until curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
    [[ "$("$DOCKER" inspect -f '{{.State.Running}}' "$NAME")" == true ]] || { "$DOCKER" logs "$NAME" >&2; exit 1; }
    sleep 0.01
  done
  t1=$(now); starts+=("$(secs "$t0" "$t1")")
  until [[ "$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$NAME")" == healthy ]]; do
    (( ($(now) - t0) / 1000000000 < 60 )) || { echo "not healthy after 60 s" >&2; exit 1; }
    sleep 0.1
  done
  t2=$(now); healthy+=("$(secs "$t0" "$t2")")
  if (( i == RUNS )); then
    sleep "$IDLE"   # idle
    PID=$("$DOCKER" inspect -f '{{.State.Pid}}' "$NAME")
    UIDS=$(awk '/^Uid:/ {print $2}' "/proc/$PID/status")
    EXE=$(readlink "/proc/$PID/exe")
    JIT=$(grep -cE '/(libcoreclr|libclrjit)\.so' "/proc/$PID/maps" || true)
    RSS=$(awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$PID/status")
    STATS=$("$DOCKER" stats --no-stream --format '{{.MemUsage}}' "$NAME" | cut -d/ -f1)
    RO=$("$DOCKER" inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$NAME")
    HC=$("$DOCKER" inspect -f '{{with index .State.Health.Log 0}}{{.ExitCode}}{{end}}' "$NAME")
  fi
  t3=$(now); "$DOCKER" stop "$NAME" >/dev/null; t4=$(now); stops+=("$(secs "$t3" "$t4")")
  EXIT=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$NAME")
done

echo "Load average during the runs: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared; start times vary with it)."
echo
echo "| run ($RUNS runs, median; \`--read-only\`) | value |"
echo "| --- | --- |"
echo "| \`docker run -d\` → first 200 from /healthz | $(printf '%s\n' "${starts[@]}" | median) s (all: ${starts[*]}) |"
echo "| \`docker run -d\` → health status \`healthy\` | $(printf '%s\n' "${healthy[@]}" | median) s (first check runs one --interval after start) |"
echo "| \`docker stop\` (SIGTERM) | $(printf '%s\n' "${stops[@]}" | median) s, exit code $EXIT |"
echo "| idle RSS of the app process after $IDLE s (VmRSS from /proc/PID/status) | $RSS MiB |"
echo "| idle memory charged to the container (\`docker stats\`, page cache excluded) | $STATS |"
echo "| uid of the app process | $UIDS |"
echo "| the app process's executable (/proc/PID/exe); libcoreclr/libclrjit mappings | \`$EXE\`; $JIT |"
echo "| read-only root filesystem | $RO; health check exit code $HC |"
