#!/bin/bash
# Start the oidc-provider (op.mjs) on https://127.0.0.1:8443, then script an authorization-code
# login to obtain a refresh token (written to $P/secrets/oidc_refresh_token).
set -e
. "$(dirname "$0")/lib.sh"
D=$P/oidc; mkdir -p "$D" "$P/secrets"
cp "$PEERS_SRC/oidc/op.mjs" "$D/op.mjs"
ln -sfn "$NODE_DIR/node_modules" "$D/node_modules"
export OP_ISSUER=https://127.0.0.1:$OP_PORT OP_PORT OP_TLS_KEY=$P/tls/server.key OP_TLS_CERT=$P/tls/server-chain.pem \
  OP_CLIENT_ID=fedprobe OP_CLIENT_SECRET_FILE=$P/secrets/oidc_client_secret \
  OP_USER=probe-monitor OP_USER_PASSWORD_FILE=$P/secrets/oidc_user_password \
  OP_REDIRECT_URI=https://fedprobe.invalid/callback
[ -s "$OP_CLIENT_SECRET_FILE" ] || gen_secret > "$OP_CLIENT_SECRET_FILE"
[ -s "$OP_USER_PASSWORD_FILE" ] || gen_secret > "$OP_USER_PASSWORD_FILE"
chmod 600 "$OP_CLIENT_SECRET_FILE" "$OP_USER_PASSWORD_FILE"
cd "$D"
start_bg oidc-provider "$LOG/oidc-provider.log" node "$D/op.mjs"
for i in $(seq 1 50); do
  curl -m 3 -sf --cacert "$P/tls/ca.pem" "$OP_ISSUER/.well-known/openid-configuration" -o /dev/null && break
  alive oidc-provider || fail_with_log oidc-provider "$LOG/oidc-provider.log"
  sleep 0.2
done
curl -m 3 -sf --cacert "$P/tls/ca.pem" "$OP_ISSUER/jwks" -o /dev/null || fail_with_log oidc-provider "$LOG/oidc-provider.log"
# client_credentials must give a JWT access token
AT=$(curl -m 10 -sf --cacert "$P/tls/ca.pem" -u "$OP_CLIENT_ID:$(cat "$OP_CLIENT_SECRET_FILE")" \
      -d grant_type=client_credentials -d 'scope=openid email profile eduperson_entitlement' "$OP_ISSUER/token" | json 'd["access_token"]') \
  || fail_with_log "oidc-provider client_credentials" "$LOG/oidc-provider.log"
[ "$(echo "$AT" | tr -cd . | wc -c)" = 2 ] || die "client_credentials access token is not a JWT"
# scripted authorization-code login -> refresh token
rm -f "$P/secrets/oidc_refresh_token"
if python3 "$PEERS_SRC/oidc/oidc_login.py" "$OP_ISSUER" "$OP_CLIENT_ID" "$OP_CLIENT_SECRET_FILE" "$OP_USER" \
     "$OP_USER_PASSWORD_FILE" "$OP_REDIRECT_URI" "$P/tls/ca.pem" "$P/secrets/oidc_refresh_token" > "$LOG/oidc-login.log" 2>&1; then
  cat "$LOG/oidc-login.log"
else
  cat "$LOG/oidc-login.log" >&2; fail_with_log "oidc refresh-token login" "$LOG/oidc-provider.log"
fi
log "oidc-provider up (pid $(cat "$RUN/oidc-provider.pid")) at $OP_ISSUER"
