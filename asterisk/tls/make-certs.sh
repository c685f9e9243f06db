#!/usr/bin/env bash
# make-certs.sh OUTDIR — a private CA and a server certificate for Asterisk's TLS manager port (5039).
#
# For testing and for a sidecar on the same host. Files written to OUTDIR:
#   ca.pem          the CA certificate: give THIS to the sidecar (Ami__CaCertificate) so it can verify Asterisk
#   ca.key          the CA key: keep it offline or delete it; it is only needed to re-issue asterisk.pem
#   asterisk.pem    the server certificate (manager.conf tlscertfile)
#   asterisk.key    the server key (manager.conf tlsprivatekey), mode 0640, group "asterisk" when it exists,
#                   because Asterisk drops root and must still be able to read it
# The server certificate names DNS:localhost and IP:127.0.0.1; set CERT_SAN (e.g.
# "DNS:pbx.example.org,IP:192.0.2.10") to name the host the sidecar really connects to.
# Idempotent: files that are present, matching and valid for 30 more days are kept as they are.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1
san=${CERT_SAN:-DNS:localhost,IP:127.0.0.1}
days_left=$((30 * 24 * 3600))
mkdir -p "$out"
cd "$out"
umask 077

valid() { [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend "$days_left" >/dev/null 2>&1; }
same_key() { # certificate $1 was made for key $2
  [ -s "$2" ] && [ "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl pkey -in "$2" -pubout 2>/dev/null)" ]
}

if ! { valid ca.pem && same_key ca.pem ca.key; }; then
  echo "make-certs: new CA in $out" >&2
  openssl req -x509 -new -newkey rsa:3072 -nodes -sha256 -days 3650 \
    -subj "/CN=Callback sidecar private CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout ca.key -out ca.pem 2>/dev/null
  rm -f asterisk.pem # signed by the old CA: re-issue below
fi

# Re-issue the server certificate when it is missing, expiring, not from this CA or names other hosts.
if ! { valid asterisk.pem && same_key asterisk.pem asterisk.key &&
  openssl verify -CAfile ca.pem asterisk.pem >/dev/null 2>&1 &&
  [ "$(cat asterisk.san 2>/dev/null)" = "$san" ]; }; then
  echo "make-certs: new server certificate for $san in $out" >&2
  # 825 days: the longest lifetime that current TLS clients still accept for a server certificate.
  first=${san%%,*}
  openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=${first#*:}" \
    -keyout asterisk.key -out asterisk.csr 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=$san" >asterisk.ext
  openssl x509 -req -in asterisk.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -sha256 \
    -extfile asterisk.ext -out asterisk.pem 2>/dev/null
  rm -f asterisk.csr asterisk.ext ca.srl
  printf '%s\n' "$san" >asterisk.san
fi

chmod 0644 ca.pem asterisk.pem asterisk.san
chmod 0600 ca.key
if getent group asterisk >/dev/null 2>&1; then
  chgrp asterisk asterisk.key
  chmod 0640 asterisk.key
else
  chmod 0600 asterisk.key
fi
