#!/usr/bin/env bash
# docker/base-images.sh — make local stand-ins for the two .NET base images the Dockerfile uses:
#   mcr.microsoft.com/dotnet/sdk:10.0     (Debian bookworm minbase + the host's whole .NET SDK)
#   mcr.microsoft.com/dotnet/aspnet:10.0  (Debian bookworm minbase + dotnet host, host/, shared/)
#
# AGAINST THE REAL REGISTRY NONE OF THIS IS NEEDED: `docker build` pulls the official images.
# This script exists only for machines that cannot reach a container registry. It does nothing
# for a tag that is already present locally (pulled or made earlier), so it is safe to run always.
#
# What the stand-ins copy from the official images: user/group `app` uid/gid 1654, APP_UID=1654,
# ASPNETCORE_HTTP_PORTS=8080, DOTNET_ROOT=/usr/share/dotnet with /usr/bin/dotnet, no USER (the
# Dockerfile says `USER $APP_UID`). Differences: Debian- not Ubuntu-based; the .NET versions are
# whatever the host has installed; the host's extra CA certificates (/usr/local/share/ca-certificates)
# are trusted inside, so that restore works behind a TLS-intercepting proxy.
#
# Usage: docker/base-images.sh            (starts the engine via docker/engine.sh if needed)
# Env:   CALLBACK_CACHE_DIR   cache root (default /var/cache/callback-sidecar); the debootstrapped
#                             root is cached as a tarball under $CALLBACK_CACHE_DIR/base/ so re-runs are
#                             fast; the cache is optional and rebuilt when missing
#        DEBIAN_MIRROR        Debian mirror for debootstrap (default: the one apt already uses)
#        FORCE=1              re-create both images even if present
# Needs: root (debootstrap, chroot), dotnet on PATH.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${CALLBACK_CACHE_DIR:-/var/cache/callback-sidecar}"
BASE_CACHE="$CACHE_DIR/base"
SDK_TAG=mcr.microsoft.com/dotnet/sdk:10.0
ASPNET_TAG=mcr.microsoft.com/dotnet/aspnet:10.0
PACKAGES=ca-certificates,libicu72,libssl3,tzdata,zlib1g,libgcc-s1,libstdc++6,netbase
SUITE=bookworm
IMG_DOTNET=usr/share/dotnet   # where .NET lives inside the images (as in the official ones)

T0=$(date +%s.%N)
log() { printf 'base-images: [%6.1fs] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*" >&2; }
command -v bc >/dev/null || log() { echo "base-images: $*" >&2; }

[[ $(id -u) == 0 ]] || { echo "base-images: must run as root (debootstrap/chroot)" >&2; exit 1; }

"$HERE/engine.sh" start
export $("$HERE/engine.sh" env 2>/dev/null)
DOCKER="${DOCKER_CLI:-/usr/bin/docker}"

have() { [[ "${FORCE:-0}" != 1 ]] && "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
need_sdk=1; need_aspnet=1
have "$SDK_TAG" && { log "$SDK_TAG present, kept"; need_sdk=0; }
have "$ASPNET_TAG" && { log "$ASPNET_TAG present, kept"; need_aspnet=0; }
(( need_sdk + need_aspnet == 0 )) && { log "nothing to do"; exit 0; }

# --- find the host's .NET installation (not hard-coded) ---------------------------------------
DOTNET_BIN="$(readlink -f "$(command -v dotnet)")" || { echo "base-images: dotnet not on PATH" >&2; exit 1; }
DOTNET_DIR="$(dirname "$DOTNET_BIN")"
# cross-check with `dotnet --info` (Base Path: <root>/sdk/<version>/)
info_root="$(dotnet --info 2>/dev/null | sed -n 's/^ *Base Path: *\(.*\)\/sdk\/[^/]*\/\?$/\1/p' | head -n1)"
if [[ -n "$info_root" && "$(readlink -f "$info_root")" != "$DOTNET_DIR" ]]; then
  log "warning: dotnet --info says $info_root, binary is in $DOTNET_DIR; using $DOTNET_DIR"
fi
[[ -d "$DOTNET_DIR/shared/Microsoft.AspNetCore.App" ]] || { echo "base-images: no ASP.NET Core runtime in $DOTNET_DIR" >&2; exit 1; }
DOTNET_VERSION="$(ls "$DOTNET_DIR/shared/Microsoft.NETCore.App" | sort -V | tail -n1)"
ASPNET_VERSION="$(ls "$DOTNET_DIR/shared/Microsoft.AspNetCore.App" | sort -V | tail -n1)"
SDK_VERSION="$(ls "$DOTNET_DIR/sdk" 2>/dev/null | sort -V | tail -n1)"
log ".NET at $DOTNET_DIR: runtime $DOTNET_VERSION, aspnet $ASPNET_VERSION, sdk ${SDK_VERSION:-none}"
if (( need_sdk )) && [[ -z "$SDK_VERSION" ]]; then echo "base-images: no SDK under $DOTNET_DIR" >&2; exit 1; fi

# --- the Debian root (cached tarball) ------------------------------------------------------------
mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  # deb822 .sources: the URIs: line of a stanza whose Suites: has bookworm (not -security)
  m="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$SUITE" '
        /^URIs:/ {u=$2} /^Suites:/ { for (i=2;i<=NF;i++) if ($i==s) {print u; exit} } /^$/ {u=""}')"
  # one-line format: deb URI bookworm main
  [[ -z "$m" ]] && m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk -v s="$SUITE" '$1=="deb" { u=""; for (i=2;i<=NF;i++) { if ($i ~ /^\[/) continue; if (u=="") {u=$i; continue} if ($i==s) {print u; exit} break } }')"
  echo "$m"   # empty: debootstrap uses its own default mirror
}

RECIPE=2   # bump when the root recipe below changes, so an old cached tarball is not reused
ROOT_TAR="$BASE_CACHE/$SUITE-minbase-$(echo "$RECIPE $SUITE $PACKAGES" | sha256sum | cut -c1-12).tar"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/callback-base.XXXXXX")"
cleanup() { rm -rf --one-file-system "$WORK"; }
trap cleanup EXIT

if [[ -s "$ROOT_TAR" ]]; then
  log "using cached root $ROOT_TAR"
else
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-cache show debootstrap >/dev/null 2>&1 || apt-get update
    apt-get install -y --no-install-recommends debootstrap >&2
  }
  M="$(mirror)"
  log "debootstrap --variant=minbase $SUITE (packages: $PACKAGES)"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$WORK/root" ${M:+"$M"} >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }
  chroot "$WORK/root" apt-get clean
  # documentation and message catalogues are not needed by .NET (saves ~50 MB)
  rm -rf "$WORK/root/usr/share/doc/"* "$WORK/root/usr/share/man/"* "$WORK/root/usr/share/info/"* \
         "$WORK/root/usr/share/locale/"* "$WORK/root/usr/share/lintian" \
         "$WORK/root/var/lib/apt/lists/"* "$WORK/root/var/log/"*.log "$WORK/root/var/cache/debconf/"*-old \
         "$WORK/root/etc/hostname" "$WORK/root/etc/resolv.conf"
  # the container runtime provides /etc/hosts, /etc/hostname, /etc/resolv.conf at run time
  : > "$WORK/root/etc/hosts"
  mkdir -p "$BASE_CACHE"
  rm -f "$BASE_CACHE/$SUITE-minbase-"*.tar   # roots of older recipes
  tar -C "$WORK/root" --numeric-owner -cf "$ROOT_TAR.tmp" . && mv "$ROOT_TAR.tmp" "$ROOT_TAR"
  rm -rf --one-file-system "$WORK/root"
  log "debootstrapped root cached: $ROOT_TAR ($(du -h "$ROOT_TAR" | cut -f1))"
fi

# --- per-run customisation (cheap): CA certificates, user app, /usr/bin/dotnet -----------------
mkdir -p "$WORK/root"
tar -C "$WORK/root" --numeric-owner -xpf "$ROOT_TAR"
shopt -s nullglob
extra=(/usr/local/share/ca-certificates/*.crt)
if (( ${#extra[@]} )); then
  mkdir -p "$WORK/root/usr/local/share/ca-certificates"
  cp "${extra[@]}" "$WORK/root/usr/local/share/ca-certificates/"
  log "trusting ${#extra[@]} extra CA certificate(s) from the host"
fi
chroot "$WORK/root" update-ca-certificates >/dev/null 2>&1
# as the official images: groupadd --gid=$APP_UID app && useradd --no-log-init --uid=$APP_UID --gid=$APP_UID --create-home app
chroot "$WORK/root" groupadd --gid 1654 app
chroot "$WORK/root" useradd --no-log-init --uid 1654 --gid 1654 --create-home app
mkdir -p "$WORK/root/usr/bin" "$WORK/root/$(dirname "$IMG_DOTNET")"
ln -sf "/$IMG_DOTNET/dotnet" "$WORK/root/usr/bin/dotnet"

# --- import ----------------------------------------------------------------------------------------
COMMON_CHANGES=(
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  --change "ENV APP_UID=1654"
  --change "ENV ASPNETCORE_HTTP_PORTS=8080"
  --change "ENV DOTNET_RUNNING_IN_CONTAINER=true"
  --change "ENV DOTNET_ROOT=/$IMG_DOTNET"
  --change "ENV DOTNET_VERSION=$DOTNET_VERSION"
  --change "ENV ASPNET_VERSION=$ASPNET_VERSION"
  --change "LABEL org.opencontainers.image.description=local-stand-in-built-by-docker/base-images.sh"
  --change 'CMD ["bash"]'
)
# tar the root plus the .NET folder; the .NET folder is renamed to $IMG_DOTNET with --transform,
# and its own directory entry is included (otherwise the import creates it with mode 0700 and the
# non-root user cannot run dotnet).
DOTNET_REL="${DOTNET_DIR#/}"
import() { # tag, then paths (relative to /) of .NET content to include, besides the .NET dir itself
  local tag="$1"; shift
  local t old; t=$(date +%s)
  old="$("$DOCKER" image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
  tar --numeric-owner -cf - \
      -C "$WORK/root" . \
      -C / --transform "s,^$DOTNET_REL,$IMG_DOTNET," \
      --no-recursion "$DOTNET_REL" --recursion "$@" \
    | "$DOCKER" import "${COMMON_CHANGES[@]}" "${EXTRA_CHANGES[@]}" - "$tag" >/dev/null
  # with FORCE=1 the image the tag pointed to before is left untagged: remove it if nothing uses it
  [[ -n "$old" && "$old" != "$("$DOCKER" image inspect -f '{{.Id}}' "$tag")" ]] && { "$DOCKER" rmi "$old" >/dev/null 2>&1 || true; }
  log "imported $tag in $(( $(date +%s) - t )) s: $("$DOCKER" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
}

if (( need_aspnet )); then
  EXTRA_CHANGES=()
  import "$ASPNET_TAG" "$DOTNET_REL/dotnet" "$DOTNET_REL/host" "$DOTNET_REL/shared" \
         $(cd / && ls -d "$DOTNET_REL"/LICENSE.txt "$DOTNET_REL"/ThirdPartyNotices.txt 2>/dev/null)
fi
if (( need_sdk )); then
  EXTRA_CHANGES=(
    --change "ENV DOTNET_SDK_VERSION=$SDK_VERSION"
    --change "ENV DOTNET_USE_POLLING_FILE_WATCHER=true"
    --change "ENV NUGET_XMLDOC_MODE=skip"
    --change "ENV DOTNET_NOLOGO=true"
    --change "ENV DOTNET_CLI_TELEMETRY_OPTOUT=1"
  )
  import "$SDK_TAG" $(cd / && find "$DOTNET_REL" -mindepth 1 -maxdepth 1 | sort)
fi
log "done"
