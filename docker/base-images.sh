#!/usr/bin/env bash
# docker/base-images.sh — make local stand-ins for the two base images the Dockerfile uses:
#   mcr.microsoft.com/dotnet/sdk:10.0.401-noble-aot  (Debian bookworm minbase + the host's whole .NET SDK +
#                                                     clang, llvm, zlib1g-dev: what a Native AOT publish needs)
#   mcr.microsoft.com/dotnet/runtime-deps:10.0       (Debian bookworm minbase + the libraries a native .NET
#                                                     program loads; no .NET at all)
#
# AGAINST THE REAL REGISTRY NONE OF THIS IS NEEDED: `docker build` pulls the official images.
# This script exists only for machines that cannot reach a container registry. It does nothing
# for a tag that is already present locally (pulled or made earlier), so it is safe to run always.
# The two tags must be the Dockerfile's defaults; the script checks that they still are.
#
# What the stand-ins copy from the official images: user/group `app` uid/gid 1654, APP_UID=1654,
# ASPNETCORE_HTTP_PORTS=8080, DOTNET_RUNNING_IN_CONTAINER=true, no USER (the Dockerfile says
# `USER $APP_UID`); in the SDK, DOTNET_ROOT=/usr/share/dotnet with /usr/bin/dotnet and the AOT variant's
# packages (clang, llvm, zlib1g-dev). The runtime-deps stand-in has what the official one installs
# (ca-certificates, libc6, libgcc-s1, libssl3, libstdc++6, tzdata) plus zlib1g, and no libicu: the app
# runs with InvariantGlobalization, so ICU is never loaded. Differences: Debian- not Ubuntu-based
# (build and run stand-ins share bookworm's glibc, as the official ones share noble's); the SDK is
# whatever the host has installed, under the tag's name (the script warns when the versions differ);
# the host's extra CA certificates (/usr/local/share/ca-certificates) are trusted inside, so that
# restore works behind a TLS-intercepting proxy.
#
# Usage: docker/base-images.sh            (starts the engine via docker/engine.sh if needed)
# Env:   CALLBACK_CACHE_DIR   cache root (default /var/cache/callback-sidecar); each debootstrapped
#                             root is cached as a tarball under $CALLBACK_CACHE_DIR/base/, named by its
#                             recipe, so re-runs are fast; the cache is optional and rebuilt when missing
#        DEBIAN_MIRROR        Debian mirror for debootstrap (default: the one apt already uses)
#        FORCE=1              re-create both images even if present
# Needs: root (debootstrap, chroot), dotnet on PATH.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${CALLBACK_CACHE_DIR:-/var/cache/callback-sidecar}"
BASE_CACHE="$CACHE_DIR/base"
SDK_TAG=mcr.microsoft.com/dotnet/sdk:10.0.401-noble-aot
DEPS_TAG=mcr.microsoft.com/dotnet/runtime-deps:10.0
# Debian packages of each root (debootstrap adds their dependencies): the runtime-deps root has only what
# a native .NET program loads; the SDK root also has ICU (the SDK itself is not invariant) and the AOT
# toolchain: clang links, llvm-objcopy strips the symbols, zlib1g-dev is linked in.
DEPS_PACKAGES=ca-certificates,libssl3,tzdata,zlib1g,libgcc-s1,libstdc++6
SDK_PACKAGES=ca-certificates,libicu72,libssl3,tzdata,zlib1g,libgcc-s1,libstdc++6,netbase,clang,llvm,zlib1g-dev
SUITE=bookworm
IMG_DOTNET=usr/share/dotnet   # where .NET lives inside the images (as in the official ones)

T0=$(date +%s.%N)
log() { printf 'base-images: [%6.1fs] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*" >&2; }
command -v bc >/dev/null || log() { echo "base-images: $*" >&2; }

[[ $(id -u) == 0 ]] || { echo "base-images: must run as root (debootstrap/chroot)" >&2; exit 1; }

# The stand-ins are only useful under the tags the Dockerfile builds from by default.
for arg in "SDK_IMAGE=$SDK_TAG" "RUNTIME_IMAGE=$DEPS_TAG"; do
  grep -qx "ARG $arg" "$HERE/../Dockerfile" || {
    echo "base-images: the Dockerfile no longer says 'ARG $arg'; update the tags in $0" >&2; exit 1; }
done

"$HERE/engine.sh" start
export $("$HERE/engine.sh" env 2>/dev/null)
DOCKER="${DOCKER_CLI:-/usr/bin/docker}"

have() { [[ "${FORCE:-0}" != 1 ]] && "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
need_sdk=1; need_deps=1
have "$SDK_TAG" && { log "$SDK_TAG present, kept"; need_sdk=0; }
have "$DEPS_TAG" && { log "$DEPS_TAG present, kept"; need_deps=0; }
(( need_sdk + need_deps == 0 )) && { log "nothing to do"; exit 0; }

# --- find the host's .NET installation (not hard-coded) ---------------------------------------
DOTNET_BIN="$(readlink -f "$(command -v dotnet)")" || { echo "base-images: dotnet not on PATH" >&2; exit 1; }
DOTNET_DIR="$(dirname "$DOTNET_BIN")"
# cross-check with `dotnet --info` (Base Path: <root>/sdk/<version>/)
info_root="$(dotnet --info 2>/dev/null | sed -n 's/^ *Base Path: *\(.*\)\/sdk\/[^/]*\/\?$/\1/p' | head -n1)"
if [[ -n "$info_root" && "$(readlink -f "$info_root")" != "$DOTNET_DIR" ]]; then
  log "warning: dotnet --info says $info_root, binary is in $DOTNET_DIR; using $DOTNET_DIR"
fi
DOTNET_VERSION="$(ls "$DOTNET_DIR/shared/Microsoft.NETCore.App" | sort -V | tail -n1)"
ASPNET_VERSION="$(ls "$DOTNET_DIR/shared/Microsoft.AspNetCore.App" 2>/dev/null | sort -V | tail -n1)"
SDK_VERSION="$(ls "$DOTNET_DIR/sdk" 2>/dev/null | sort -V | tail -n1)"
log ".NET at $DOTNET_DIR: runtime $DOTNET_VERSION, aspnet ${ASPNET_VERSION:-none}, sdk ${SDK_VERSION:-none}"
if (( need_sdk )); then
  [[ -n "$SDK_VERSION" ]] || { echo "base-images: no SDK under $DOTNET_DIR" >&2; exit 1; }
  tag_version="${SDK_TAG##*:}"; tag_version="${tag_version%%-*}"
  # The AOT lock file (src/Callback/packages.aot.lock.json) records the ILCompiler of the SDK it was made with.
  [[ "$SDK_VERSION" == "$tag_version" ]] ||
    log "warning: the host's SDK is $SDK_VERSION, the tag names $tag_version; the stand-in gets $SDK_VERSION"
fi

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

RECIPE=3   # bump when the root recipe below changes, so an old cached tarball is not reused
WORK="$(mktemp -d "${TMPDIR:-/tmp}/callback-base.XXXXXX")"
cleanup() { rm -rf --one-file-system "$WORK"; }
trap cleanup EXIT

# root KIND PACKAGES DIR: unpacks into DIR the Debian root of that recipe, debootstrapped once and cached.
root() {
  local kind="$1" packages="$2" dir="$3" tar
  tar="$BASE_CACHE/$SUITE-minbase-$kind-$(echo "$RECIPE $SUITE $packages" | sha256sum | cut -c1-12).tar"
  if [[ -s "$tar" ]]; then
    log "using cached $kind root $tar"
  else
    command -v debootstrap >/dev/null || {
      log "installing debootstrap"
      export DEBIAN_FRONTEND=noninteractive
      apt-cache show debootstrap >/dev/null 2>&1 || apt-get update
      apt-get install -y --no-install-recommends debootstrap >&2
    }
    local m; m="$(mirror)"
    log "debootstrap --variant=minbase $SUITE for $kind (packages: $packages)"
    debootstrap --variant=minbase --include="$packages" "$SUITE" "$dir" ${m:+"$m"} >"$WORK/debootstrap-$kind.log" 2>&1 \
      || { tail -n 30 "$WORK/debootstrap-$kind.log" >&2; exit 1; }
    chroot "$dir" apt-get clean
    # documentation and message catalogues are not needed by .NET (saves ~50 MB)
    rm -rf "$dir/usr/share/doc/"* "$dir/usr/share/man/"* "$dir/usr/share/info/"* \
           "$dir/usr/share/locale/"* "$dir/usr/share/lintian" \
           "$dir/var/lib/apt/lists/"* "$dir/var/log/"*.log "$dir/var/cache/debconf/"*-old \
           "$dir/etc/hostname" "$dir/etc/resolv.conf"
    # the container runtime provides /etc/hosts, /etc/hostname, /etc/resolv.conf at run time
    : > "$dir/etc/hosts"
    mkdir -p "$BASE_CACHE"
    rm -f "$BASE_CACHE/$SUITE-minbase-$kind-"*.tar   # this kind's roots of older recipes
    tar -C "$dir" --numeric-owner -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
    rm -rf --one-file-system "$dir"
    log "debootstrapped $kind root cached: $tar ($(du -h "$tar" | cut -f1))"
  fi
  # per-run customisation (cheap): the host's extra CA certificates, user app
  mkdir -p "$dir"
  tar -C "$dir" --numeric-owner -xpf "$tar"
  local extra=(/usr/local/share/ca-certificates/*.crt)
  if (( ${#extra[@]} )); then
    mkdir -p "$dir/usr/local/share/ca-certificates"
    cp "${extra[@]}" "$dir/usr/local/share/ca-certificates/"
    log "trusting ${#extra[@]} extra CA certificate(s) from the host"
  fi
  chroot "$dir" update-ca-certificates >/dev/null 2>&1
  # as the official images: groupadd --gid=$APP_UID app && useradd --no-log-init --uid=$APP_UID --gid=$APP_UID --create-home app
  chroot "$dir" groupadd --gid 1654 app
  chroot "$dir" useradd --no-log-init --uid 1654 --gid 1654 --create-home app
}

# --- import ----------------------------------------------------------------------------------------
COMMON_CHANGES=(
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  --change "ENV APP_UID=1654"
  --change "ENV ASPNETCORE_HTTP_PORTS=8080"
  --change "ENV DOTNET_RUNNING_IN_CONTAINER=true"
  --change "LABEL org.opencontainers.image.description=local-stand-in-built-by-docker/base-images.sh"
  --change 'CMD ["bash"]'
)
DOTNET_REL="${DOTNET_DIR#/}"
import() { # tag, root dir, then paths (relative to /) of .NET content to add under $IMG_DOTNET
  local tag="$1" dir="$2"; shift 2
  local t old dotnet_args=(); t=$(date +%s)
  old="$("$DOCKER" image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
  # The .NET folder is renamed to $IMG_DOTNET with --transform, and its own directory entry is included
  # (otherwise the import creates it with mode 0700 and the non-root user cannot run dotnet).
  (( $# )) && dotnet_args=(-C / --transform "s,^$DOTNET_REL,$IMG_DOTNET," --no-recursion "$DOTNET_REL" --recursion "$@")
  tar --numeric-owner -cf - -C "$dir" . "${dotnet_args[@]}" \
    | "$DOCKER" import "${COMMON_CHANGES[@]}" "${EXTRA_CHANGES[@]}" - "$tag" >/dev/null
  # with FORCE=1 the image the tag pointed to before is left untagged: remove it if nothing uses it
  [[ -n "$old" && "$old" != "$("$DOCKER" image inspect -f '{{.Id}}' "$tag")" ]] && { "$DOCKER" rmi "$old" >/dev/null 2>&1 || true; }
  log "imported $tag in $(( $(date +%s) - t )) s: $("$DOCKER" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
}

shopt -s nullglob   # no extra CA certificates: an empty list
if (( need_deps )); then
  root runtime-deps "$DEPS_PACKAGES" "$WORK/deps"
  EXTRA_CHANGES=()
  import "$DEPS_TAG" "$WORK/deps"
  rm -rf --one-file-system "$WORK/deps"
fi
if (( need_sdk )); then
  root sdk-aot "$SDK_PACKAGES" "$WORK/sdk"
  mkdir -p "$WORK/sdk/usr/bin" "$WORK/sdk/$(dirname "$IMG_DOTNET")"
  ln -sf "/$IMG_DOTNET/dotnet" "$WORK/sdk/usr/bin/dotnet"
  EXTRA_CHANGES=(
    --change "ENV DOTNET_ROOT=/$IMG_DOTNET"
    --change "ENV DOTNET_VERSION=$DOTNET_VERSION"
    --change "ENV ASPNET_VERSION=$ASPNET_VERSION"
    --change "ENV DOTNET_SDK_VERSION=$SDK_VERSION"
    --change "ENV DOTNET_USE_POLLING_FILE_WATCHER=true"
    --change "ENV NUGET_XMLDOC_MODE=skip"
    --change "ENV DOTNET_NOLOGO=true"
    --change "ENV DOTNET_CLI_TELEMETRY_OPTOUT=1"
  )
  import "$SDK_TAG" "$WORK/sdk" $(cd / && find "$DOTNET_REL" -mindepth 1 -maxdepth 1 | sort)
fi
log "done"
