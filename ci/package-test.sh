#!/bin/bash
# Install the .deb from ci/package.sh with dpkg, run the installed novaprobe and swiftprobe
# with ARGO's command lines against the real peers (ci/peers), curl `fedprobe serve --demo`, check the man pages, completions and
# engine files are where the package says, purge it and check nothing is left. The .rpm
# is listed with `rpm -qpl` when rpm is installed. Needs root.
#
#   FEDPROBE_PEERS_ENV   facts about the peers (default /tmp/fedprobe-peers/peers.env)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=target/package
PEERS_ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}
say() { echo "[package-test] $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

deb=$(ls "$OUT"/fedprobe_*.deb 2>/dev/null | head -1 || true)
[ -n "$deb" ] || fail "no .deb in $OUT (run ci/package.sh)"
[ "$(id -u)" = 0 ] || fail "dpkg -i needs root"
if dpkg-query -W -f='${Status}' fedprobe 2>/dev/null | grep -q 'install ok installed'; then
  fail "fedprobe is installed already; this test installs and purges it itself"
fi

work=$(mktemp -d /tmp/fedprobe-package-test.XXXXXX)
purge() {
  dpkg -P fedprobe >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap purge EXIT

say "dpkg -i $deb"
dpkg -i "$deb" >&2
files=$(dpkg -L fedprobe)
# Every probe of the workspace (cargo metadata), installed, linked and answering --help.
probes=$(cargo metadata --format-version 1 --no-deps --locked | python3 ci/workspace-bins.py probes)
for b in $probes; do
  [ -x "/usr/libexec/argo/probes/fedcloud/$b" ] || fail "probe $b is not installed"
  [ "$(readlink -f "/usr/lib/nagios/plugins/$b")" = "/usr/libexec/argo/probes/fedcloud/$b" ] ||
    fail "/usr/lib/nagios/plugins/$b does not link to the probe"
  "/usr/lib/nagios/plugins/$b" --help >/dev/null || fail "installed $b --help"
done
for want in /usr/bin/fedprobe \
  /usr/share/doc/fedprobe/CHANGELOG.md \
  /usr/share/man/man1/novaprobe.1.gz /usr/share/man/man1/swiftprobe.1.gz \
  /usr/share/man/man1/fedprobe-run.1.gz /usr/share/man/man1/fedprobe-serve.1.gz \
  /usr/share/bash-completion/completions/fedprobe \
  /usr/share/fedprobe/icinga2/fedprobe-commands.conf \
  /usr/share/fedprobe/sensu/checks.json \
  /usr/share/fedprobe/guidelines/eosc-iaas-2026.1.toml \
  /etc/fedprobe/sites/example.toml; do
  grep -qx "$want" <<< "$files" || fail "$want is not in the package"
  [ -e "$want" ] || fail "$want is not installed"
done
[ "$(readlink -f /usr/lib/nagios/plugins/novaprobe)" = /usr/libexec/argo/probes/fedcloud/novaprobe ] ||
  fail "/usr/lib/nagios/plugins/novaprobe does not link to the probe"
/usr/lib/nagios/plugins/novaprobe --version >/dev/null || fail "novaprobe --version"
man -l /usr/share/man/man1/novaprobe.1.gz 2>/dev/null | grep -q -- '--appdb-image' ||
  fail "the novaprobe man page does not document --appdb-image"
fedprobe guideline | cmp -s - /usr/share/fedprobe/guidelines/eosc-iaas-2026.1.toml ||
  fail "the installed guideline is not the embedded one"

if [ -f "$PEERS_ENV" ]; then
  get() { sed -n "s/^$1=//p" "$PEERS_ENV" | tail -1; }
  secret=$(cat "$(get OIDC_CLIENT_SECRET_FILE)")
  token_url=$(get OIDC_TOKEN_ENDPOINT)
  [ -n "$token_url" ] || token_url="$(get OIDC_ISSUER)/token"
  scope=$(get OIDC_SCOPES | tr ',' ' ')
  # An access token from the real OIDC provider, into a file as ARGO keeps it.
  curl -fsS --cacert "$(get CA_CERT)" -u "$(get OIDC_CLIENT_ID):$secret" \
    --data-urlencode grant_type=client_credentials --data-urlencode "scope=${scope:-openid}" \
    "$token_url" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' \
    > "$work/oidc" || fail "no access token from the peers' OIDC provider"
  host="package-test-$$"
  set +e
  out=$(/usr/libexec/argo/probes/fedcloud/novaprobe -t 300 -v --access-token "$work/oidc" \
    --appdb-image "$(get IMAGE_APPDB_ID)" --endpoint "$(get KEYSTONE_URL)" \
    --region "$(get REGION)" --cert "$(get CA_CERT)" --argo-host-name "$host")
  rc=$?
  set -e
  printf '%s\n' "$out" | head -3 >&2
  [ "$rc" = 0 ] || fail "installed novaprobe exit $rc against the real peers"
  grep -q '^VM_LIFECYCLE OK - Compute instance=' <<< "$out" || fail "unexpected novaprobe output"
  if grep -qF "$(cat "$work/oidc")" <<< "$out"; then fail "the token is in the output"; fi
  # The installed harness against the real peers: `fedprobe init` writes a profile from the
  # clouds.yaml entry after a dry login (the provider's first command).
  set +e
  out=$(cd "$work" && fedprobe init --os-cloud "$(get OS_CLOUD_OIDC_NAME)" \
    --clouds-yaml "$(get CLOUDS_YAML)" --vo ops --out site.toml 2>&1)
  rc=$?
  set -e
  [ "$rc" = 0 ] || { printf '%s\n' "$out" | tail -5 >&2; fail "installed fedprobe init exit $rc against the real peers"; }
  grep -q '^dry login: OK' <<< "$out" || fail "installed fedprobe init: no dry login OK"
  grep -q '^site = ' "$work/site.toml" || fail "installed fedprobe init wrote no profile"
  say "installed fedprobe init: $(grep '^dry login' <<< "$out")"
  # swiftprobe with ARGO's command line for eu.egi.cloud.OpenStack-Swift.
  if [ -n "$(get SWIFT_URL)" ]; then
    set +e
    out=$(/usr/libexec/argo/probes/fedcloud/swiftprobe -t 300 -v --access-token "$work/oidc" \
      --endpoint "$(get KEYSTONE_URL)" --cert "$(get CA_CERT)" --identity-provider "$(get IDP)")
    rc=$?
    set -e
    printf '%s\n' "$out" | head -2 >&2
    [ "$rc" = 0 ] || fail "installed swiftprobe exit $rc against the real peers"
    grep -q '^OBJECT_STORAGE OK - container fedprobe-' <<< "$out" || fail "unexpected swiftprobe output"
    if grep -qF "$(cat "$work/oidc")" <<< "$out"; then fail "the token is in the output"; fi
  else
    say "SKIP installed swiftprobe: the peers run no Swift (no SWIFT_URL in $PEERS_ENV)"
  fi
else
  say "SKIP installed novaprobe against the real peers: no $PEERS_ENV"
fi

# The exporter a newcomer curls first.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fedprobe serve --demo --listen "127.0.0.1:$port" 2>"$work/serve.log" &
serve_pid=$!
scraped=""
for _ in $(seq 1 50); do
  scraped=$(curl -fsS "http://127.0.0.1:$port/probe?target=DEMO-000&module=check_token_auth" 2>/dev/null) && break
  sleep 0.2
done
kill -TERM "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
grep -q '^probe_success{site="DEMO-000",probe="check_token_auth"} 1$' <<< "$scraped" ||
  fail "fedprobe serve --demo: no probe_success 1 ($(head -c 300 "$work/serve.log"))"

say "dpkg -P fedprobe"
dpkg -P fedprobe >&2
for f in $files; do
  # Directories shared with other packages (/usr, /usr/lib/nagios/plugins ...) stay.
  if [ -e "$f" ] && [ ! -d "$f" ]; then fail "$f is left after dpkg -P"; fi
done
for d in /usr/libexec/argo/probes/fedcloud /usr/share/fedprobe /etc/fedprobe; do
  [ ! -e "$d" ] || fail "$d is left after dpkg -P"
done

rpmfile=$(ls "$OUT"/fedprobe-*.rpm 2>/dev/null | head -1 || true)
if [ -n "$rpmfile" ] && command -v rpm >/dev/null; then
  list=$(rpm -qpl "$rpmfile" 2>/dev/null)
  for want in /usr/bin/fedprobe /usr/libexec/argo/probes/fedcloud/novaprobe \
    /usr/share/man/man1/novaprobe.1.gz /etc/fedprobe/sites/example.toml; do
    grep -qx "$want" <<< "$list" || fail "$want is not in $rpmfile"
  done
  rpm -qpc "$rpmfile" 2>/dev/null | grep -qx /etc/fedprobe/sites/example.toml ||
    fail "the sample profile is not a config file in the .rpm"
  python3 ci/package-contents.py rpm "$rpmfile" fedprobe $probes || fail "the .rpm's contents"
  say "rpm -qpl: $(wc -l <<< "$list") files"
  if command -v rpmlint >/dev/null; then
    # Findings a cargo-generate-rpm package has by design are filtered in
    # packaging/rpmlint.toml (each with its reason); anything else fails.
    rpmlint -c packaging/rpmlint.toml "$rpmfile" > "$work/rpmlint.log" 2>&1 ||
      { cat "$work/rpmlint.log" >&2; fail "rpmlint $rpmfile"; }
    say "rpmlint: $(tail -1 "$work/rpmlint.log")"
  else
    say "SKIP rpmlint: not installed (ci/install-deps.sh installs it)"
  fi
else
  say "SKIP .rpm check: ${rpmfile:-no .rpm} / rpm ${rpmfile:+not installed}"
fi
say "ok"
