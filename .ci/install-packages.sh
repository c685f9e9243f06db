#!/usr/bin/env bash
# Debian packages the test suite uses: debootstrap builds the local Asterisk 22 root (Debian sid), openssl
# makes its certificates, docker.io and nginx run the container and reverse-proxy tests.
# Idempotent: installs only what is missing, and updates the package lists only then.
set -euo pipefail
needed=(debootstrap openssl ca-certificates python3)
missing=()
for p in "${needed[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages (${missing[*]}) and not root: the tests that need them will say they are skipped" >&2
    exit 0
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
