#!/bin/bash
# All tests: install the Debian packages, start the real peers (Keystone, Nova, Glance,
# OIDC provider, Apache+mod_auth_openidc, slapd...), run `cargo test --workspace`, and
# always stop the peers again. Exit code: cargo test's.
#
# A peer that does not come up is reported loudly here and the tests that need it skip
# with a reason (they print `SKIP <test>: <reason>`); they never silently pass.
#
#   FEDPROBE_PEERS_ENV   facts about the peers (default /tmp/fedprobe-peers/peers.env)
#   FEDPROBE_NO_PEERS=1  do not start or stop peers (use the ones already running)
#   FEDPROBE_SKIP_PACKAGE=1  skip building and installing the packages (whole runs only)
#   arguments replace `--workspace` for cargo test, e.g. `ci/test.sh -p probes --test icinga`
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

say() { echo "[ci/test] $*" >&2; }
loud() {
  echo "[ci/test] ##########################################################" >&2
  echo "[ci/test] $*" >&2
  echo "[ci/test] ##########################################################" >&2
}
elapsed() { local s=$1; echo "$(( $(date +%s) - s ))s"; }

export FEDPROBE_PEERS_ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}
T0=$(date +%s)

if ! bash ci/install-deps.sh; then
  loud "ci/install-deps.sh FAILED: tests needing those packages will skip"
fi

started_peers=0
started_slapd=0
stop_peers() {
  if [ "$started_slapd" = 1 ]; then
    bash ci/producers/slapd.sh down >&2 || say "slapd down failed"
  fi
  if [ "$started_peers" = 1 ]; then
    say "stopping the peers"
    bash ci/peers/down.sh >&2 || say "ci/peers/down.sh failed"
  fi
}
trap stop_peers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${FEDPROBE_NO_PEERS:-0}" = 1 ]; then
  say "FEDPROBE_NO_PEERS=1: using whatever peers run now ($FEDPROBE_PEERS_ENV)"
else
  if [ -f ci/peers/up.sh ]; then
    t=$(date +%s)
    started_peers=1
    if bash ci/peers/up.sh >&2; then
      say "peers up in $(elapsed "$t")"
    else
      loud "ci/peers/up.sh FAILED after $(elapsed "$t"): tests against real services will SKIP"
    fi
  else
    loud "ci/peers/up.sh is missing: tests against real services will SKIP"
  fi
  if [ -f ci/producers/slapd.sh ]; then
    started_slapd=1
    bash ci/producers/slapd.sh up >&2 || loud "ci/producers/slapd.sh up FAILED: BDII tests will SKIP"
  fi
fi
if [ -f "$FEDPROBE_PEERS_ENV" ]; then
  say "peers: $FEDPROBE_PEERS_ENV"
else
  loud "no $FEDPROBE_PEERS_ENV: tests against real services will SKIP"
fi

t=$(date +%s)
LOG=$(mktemp /tmp/fedprobe-cargo-test.XXXXXX)
# --show-output: the SKIP lines of passing tests are printed, not swallowed.
if [ $# -gt 0 ]; then
  cargo test "$@" 2>&1 | tee "$LOG"
else
  cargo test --workspace --no-fail-fast -- --show-output 2>&1 | tee "$LOG"
fi
rc=${PIPESTATUS[0]}
skips=$(grep -hoE '(SKIP|NOTE) [^ ].*' "$LOG" | sort -u || true)
if [ -n "$skips" ]; then
  loud "$(printf '%s\n' "$skips" | wc -l) SKIP/NOTE line(s) from the tests:"
  printf '%s\n' "$skips" >&2
fi
rm -f "$LOG"
say "cargo test exit $rc after $(elapsed "$t") (whole run $(elapsed "$T0"))"

# The packages, in a whole run: built (ci/package.sh), installed with dpkg, the installed
# novaprobe run against the peers while they are still up, purged (ci/package-test.sh).
if [ $# -eq 0 ] && [ "${FEDPROBE_SKIP_PACKAGE:-0}" != 1 ]; then
  t=$(date +%s)
  if bash ci/package.sh && bash ci/package-test.sh; then
    say "packages built, installed, run and purged in $(elapsed "$t")"
  else
    loud "packages FAILED after $(elapsed "$t") (ci/package.sh, ci/package-test.sh)"
    [ "$rc" = 0 ] && rc=1
  fi
fi
exit $rc
