#!/usr/bin/env bash
# docker/smoke.sh — build the image and check it the way it is meant to run; exit 0 only if every check passes.
#
#   docker/smoke.sh
#
# Checks, on a container started with --read-only and host networking on 127.0.0.1:${SMOKE_PORT:-18080}:
#   the image builds; GET /healthz answers 200; the app runs as uid 1654; the HEALTHCHECK turns `healthy`;
#   `docker stop` takes under 10 s and the app exits 0; without settings the app refuses to start (exit 2).
# AMI settings: any Ami__* / Originate__* variables in the environment are passed in (Ami__CaCertificate is
# mounted read-only); without them, placeholders (the checks above never reach AMI). With real settings and
# SMOKE_CALLBACK_NUMBER set, it also POSTs /callback for that number and wants 200 with "callSpooled":true.
# Starts the engine (docker/engine.sh) and base images (docker/base-images.sh) if needed, and stops the
# engine again at the end if it was not running before. Prints one "ok"/"FAIL" line per check.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
PORT="${SMOKE_PORT:-18080}"
TAG="${SMOKE_TAG:-callback-sidecar}"
NAME="callback-sidecar-smoke-$$"

was_running=0
"$HERE/engine.sh" status >/dev/null 2>&1 && was_running=1
"$HERE/engine.sh" start >&2
export $("$HERE/engine.sh" env 2>/dev/null)
DOCKER="${DOCKER_CLI:-/usr/bin/docker}"

failed=0
check() { if [[ "$2" == 0 ]]; then echo "ok - $1"; else echo "FAIL - $1"; failed=1; fi; }
finish() {
  "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true
  (( was_running )) || "$HERE/engine.sh" stop >&2 || true
}
trap finish EXIT

"$HERE/base-images.sh" >&2
if "$DOCKER" build --network host -t "$TAG" "$REPO" >"${TMPDIR:-/tmp}/$NAME.build.log" 2>&1; then
  check "docker build" 0; rm -f "${TMPDIR:-/tmp}/$NAME.build.log"
else
  tail -n 40 "${TMPDIR:-/tmp}/$NAME.build.log" >&2; check "docker build (log: ${TMPDIR:-/tmp}/$NAME.build.log)" 1; exit 1
fi

set +e
"$DOCKER" run --rm --network host --read-only -e ASPNETCORE_HTTP_PORTS="$PORT" "$TAG" >/dev/null 2>&1
code=$?
set -e
check "without settings the app refuses to start (exit $code, want 2)" "$([[ $code == 2 ]]; echo $?)"

args=(--network host --read-only -e ASPNETCORE_URLS="http://127.0.0.1:$PORT" -e ASPNETCORE_HTTP_PORTS="$PORT")
if env | grep -q -E '^(Ami|Originate)__'; then
  while IFS= read -r line; do
    key="${line%%=*}"; value="${line#*=}"
    if [[ "$key" == Ami__CaCertificate ]]; then
      args+=(-v "$value:/run/ami-ca.pem:ro"); value=/run/ami-ca.pem
    fi
    args+=(-e "$key=$value")
  done < <(env | grep -E '^(Ami|Originate)__')
else
  args+=(-e Ami__Host=127.0.0.1 -e Ami__Username=smoke -e Ami__Secret=smoke-only -e 'Originate__Channel=PJSIP/{number}@trunk')
fi

"$DOCKER" run -d --name "$NAME" "${args[@]}" "$TAG" >/dev/null
t0=$(date +%s)
up=1
while (( $(date +%s) - t0 < 30 )); do
  if curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then up=0; break; fi
  [[ "$("$DOCKER" inspect -f '{{.State.Running}}' "$NAME")" == true ]] || break
  sleep 0.1
done
check "GET /healthz answers 200 (read-only root filesystem)" "$up"
(( up == 0 )) || { "$DOCKER" logs "$NAME" >&2 || true; exit 1; }

pid="$("$DOCKER" inspect -f '{{.State.Pid}}' "$NAME")"
uid="$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")"
check "runs as uid 1654, not root (uid $uid)" "$([[ "$uid" == 1654 ]]; echo $?)"

if [[ -n "${SMOKE_CALLBACK_NUMBER:-}" ]]; then
  body="$(curl -s -w '\n%{http_code}' "http://127.0.0.1:$PORT/callback" \
          --data-urlencode "phoneNumber=$SMOKE_CALLBACK_NUMBER" -d language=fr || true)"
  check "POST /callback reaches Asterisk over TLS from the container ($(echo "$body" | tr '\n' ' '))" \
    "$([[ "$(echo "$body" | tail -n1)" == 200 && "$body" == *'"callSpooled":true'* ]]; echo $?)"
fi

status=starting
while (( $(date +%s) - t0 < 60 )); do
  status="$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$NAME")"
  [[ "$status" == healthy || "$status" == unhealthy ]] && break
  sleep 0.5
done
check "HEALTHCHECK turns healthy ($status after $(( $(date +%s) - t0 )) s)" "$([[ "$status" == healthy ]]; echo $?)"

s0=$(date +%s%N)
"$DOCKER" stop -t 10 "$NAME" >/dev/null
ms=$(( ($(date +%s%N) - s0) / 1000000 ))
exit_code="$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$NAME")"
check "docker stop takes < 10 s (${ms} ms) and the app exits 0 (exit $exit_code)" \
  "$([[ $ms -lt 10000 && "$exit_code" == 0 ]]; echo $?)"

exit "$failed"
