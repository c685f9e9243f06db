#!/usr/bin/env bash
# Debian packages the test suite uses: debootstrap builds the local Asterisk 22 root (Debian sid), openssl
# makes its certificates, docker.io runs the container tests, nginx the reverse-proxy tests and chromium
# the demo page test (driven by playwright-core from npm, installed by that test with `npm ci`), sip-tester
# (SIPp) the phones of the Real SIP tests and of the demo, postgresql the server of the PostgreSQL store
# tests (postgres/dev/postgres.sh runs its own cluster on 127.0.0.1:5433).
# Idempotent: installs only what is missing, and reads the package lists only then. Services the packages
# would start (nginx on port 80, dockerd) are not started: the tests start their own, on loopback.
set -euo pipefail
needed=(debootstrap openssl ca-certificates python3 bc docker.io nginx chromium sip-tester postgresql)
missing=()
for p in "${needed[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages (${missing[*]}) and not root: the tests that need them will say they are skipped" >&2
  exit 0
fi
policy=/usr/sbin/policy-rc.d
restore_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
  restore_policy=true
fi
trap '$restore_policy && rm -f "$policy"' EXIT
apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
