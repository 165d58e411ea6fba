#!/bin/bash
# Local CA + server certificate for 127.0.0.1/localhost, regenerated at each up.
# Not installed system-wide: clients get CA_CERT ($P/tls/ca.pem) explicitly.
set -e
. "$(dirname "$0")/lib.sh"
D=$P/tls; rm -rf "$D"; mkdir -p "$D"; cd "$D"
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 365 -keyout ca.key -out ca.pem \
  -subj "/O=fedprobe peers/CN=fedprobe peers test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -keyout server.key -out server.csr -subj "/O=fedprobe peers/CN=127.0.0.1" 2>/dev/null
cat > server.ext <<'EOX'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EOX
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -sha256 \
  -extfile server.ext -out server.crt 2>/dev/null
cat server.crt ca.pem > server-chain.pem
chmod 600 ca.key server.key   # read by root only (apache reads it before dropping privileges)
openssl verify -CAfile ca.pem server.crt >/dev/null
log "tls: CA $D/ca.pem, server cert $D/server.crt (127.0.0.1, localhost)"
