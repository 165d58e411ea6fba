#!/bin/bash
# All tests: install the Debian packages, start the real peers (Keystone, Nova, Glance,
# OIDC provider, Apache+mod_auth_openidc, slapd...), run `cargo test --workspace`, and
# always stop the peers again. Exit code: cargo test's.
#
# The real producers (ci/producers/cloud_info.sh, caso.sh) then run against the peers, so
# the tests of their output have fresh output to read.
#
# A peer that does not come up is reported loudly here and the tests that need it skip
# with a reason (they print `SKIP <test>: <reason>`); they never silently pass. A SKIP
# line that ci/skip-allowlist.txt does not list fails the run, even when cargo test passed.
#
#   FEDPROBE_PEERS_ENV   facts about the peers (default /tmp/fedprobe-peers/peers.env)
#   FEDPROBE_NO_PEERS=1  do not start or stop peers (use the ones already running)
#   FEDPROBE_NO_PRODUCERS=1  do not run the producers (their last output is used)
#   FEDPROBE_PACKAGE=0   leave out the packages. By default a whole run (no arguments) builds
#                        them (ci/package.sh: .deb, .rpm, cargo deny, the SBOM; with the dev
#                        profile, FEDPROBE_PACKAGE_PROFILE=dev, to stay in CI's time: a release
#                        build of the workspace takes longer than the rest), installs the .deb,
#                        runs the installed probes against the peers and purges it
#                        (ci/package-test.sh). The package tools install in the background
#                        while the peers start.
#   arguments replace `--workspace` for cargo test, e.g. `ci/test.sh -p probes --test icinga`
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

say() { echo "[ci/test] $*" >&2; }
loud() {
  echo "[ci/test] ##########################################################" >&2
  echo "[ci/test] $*" >&2
  echo "[ci/test] ##########################################################" >&2
}
elapsed() { local s=$1; echo "$(( $(date +%s) - s ))s"; }

export FEDPROBE_PEERS_ENV=${FEDPROBE_PEERS_ENV:-/tmp/fedprobe-peers/peers.env}
T0=$(date +%s)

# The package tools (cargo install) build while apt and the peers start; waited for below.
PACKAGE=0
if [ $# -eq 0 ] && [ "${FEDPROBE_PACKAGE:-1}" = 1 ]; then
  PACKAGE=1
  TOOLS_LOG=$(mktemp /tmp/fedprobe-package-tools.XXXXXX)
  bash ci/package.sh tools > "$TOOLS_LOG" 2>&1 &
  tools_pid=$!
fi

if ! bash ci/install-deps.sh; then
  loud "ci/install-deps.sh FAILED: tests needing those packages will skip"
fi

started_peers=0
started_slapd=0
stop_peers() {
  if [ -n "${tools_pid:-}" ] && kill -0 "$tools_pid" 2>/dev/null; then
    pkill -TERM -P "$tools_pid" 2>/dev/null; kill -TERM "$tools_pid" 2>/dev/null
  fi
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

if [ "${FEDPROBE_NO_PRODUCERS:-0}" != 1 ] && [ -f "$FEDPROBE_PEERS_ENV" ]; then
  for producer in cloud_info caso; do
    t=$(date +%s)
    if bash "ci/producers/$producer.sh" >&2; then
      say "ci/producers/$producer.sh ok in $(elapsed "$t")"
    else
      if [ "$producer" = caso ]; then
        OUT_CASO_LOG=/tmp/fedprobe-producers/out/caso.log
        # A fresh Nova has run no server yet, so cASO has nothing to account: the usage
        # tests run caso.sh again once theirs have run (usage_peers::refresh_caso_spool).
        say "ci/producers/caso.sh gave no records ($OUT_CASO_LOG): the usage tests run it again after their servers, and SKIP (failing the run) if it still gives none"
      else
        loud "ci/producers/$producer.sh FAILED: the tests of its output will SKIP (and fail the run)"
      fi
    fi
  done
fi

# OpenNebula's own client (pyone) against the fixture the OpenNebula tests use: drift fails the run
if ! bash ci/peers/opennebula.sh check >&2; then
  loud "ci/peers/opennebula.sh check FAILED: the OpenNebula fixture drifted from pyone"
  one_rc=1
fi
# The GLUE producer for an OpenNebula site (cloud-info-provider 1.2.0's formatter) against
# that fixture; its venv is also what harness/tests/it/clouds.rs runs the producer with.
if ! bash ci/producers/cloud_info_one.sh >&2; then
  loud "ci/producers/cloud_info_one.sh FAILED: the OpenNebula GLUE tests will fail"
  one_rc=1
fi
# The GCE fixture: its venv (the probes' GCE tests start their own fixtures from it), then
# Google's own clients against a private fixture, so a fixture drifting from the API fails.
gce_rc=0
if ! bash ci/peers/gce.sh check >&2; then
  loud "ci/peers/gce.sh check FAILED: the GCE fixture disagrees with google-api-python-client"
  gce_rc=1
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
if ! unlisted=$(bash ci/skip-gate.sh ci/skip-allowlist.txt < "$LOG"); then
  loud "ci/skip-allowlist.txt is malformed: every line needs ' -- ' and a reason"
  rc=1
elif [ -n "$unlisted" ]; then
  loud "$(printf '%s\n' "$unlisted" | wc -l) SKIP line(s) not on ci/skip-allowlist.txt: the run FAILS"
  printf '%s\n' "$unlisted" >&2
  [ "$rc" = 0 ] && rc=1
fi
rm -f "$LOG"
[ "${one_rc:-0}" = 1 ] && [ "$rc" = 0 ] && rc=1
[ "$rc" = 0 ] && [ "$gce_rc" != 0 ] && rc=1
say "cargo test exit $rc after $(elapsed "$t") (whole run $(elapsed "$T0"))"

# The fuzz targets (probes/fuzz, their own workspace) compile on stable: they are only run
# under libFuzzer by ci/fuzz.sh, so without this a changed API leaves them broken unseen.
if [ $# -eq 0 ]; then
  t=$(date +%s)
  if cargo check -q --bins --manifest-path probes/fuzz/Cargo.toml --target-dir target/fuzz-check; then
    say "fuzz targets compile ($(elapsed "$t"))"
  else
    loud "the fuzz targets (probes/fuzz) do not compile"
    [ "$rc" = 0 ] && rc=1
  fi
fi

# Microsoft's own SDKs against the Azure fixture (started by up.sh): a fixture drifting from
# the REST API the SDKs are generated from fails the run.
if [ $# -eq 0 ] && [ -f "${FEDPROBE_PEERS_DIR:-/tmp/fedprobe-peers}/azure.env" ]; then
  bash ci/peers/azure.sh client >&2 || { loud "ci/peers/azure.sh client FAILED"; [ "$rc" = 0 ] && rc=1; }
fi

# The packages, in a whole run: built (ci/package.sh), installed with dpkg, the installed
# novaprobe run against the peers while they are still up, purged (ci/package-test.sh).
if [ "$PACKAGE" = 1 ]; then
  t=$(date +%s)
  wait "$tools_pid"
  tools_rc=$?
  tools_pid=""
  cat "$TOOLS_LOG" >&2; rm -f "$TOOLS_LOG"
  say "package tools ready (exit $tools_rc) $(elapsed "$t") after the tests ended"
  export FEDPROBE_PACKAGE_PROFILE=${FEDPROBE_PACKAGE_PROFILE:-dev}
  if [ "$tools_rc" = 0 ] && bash ci/package.sh && bash ci/package-test.sh; then
    say "packages built, installed, run and purged in $(elapsed "$t")"
  else
    loud "packages FAILED after $(elapsed "$t") (ci/package.sh, ci/package-test.sh)"
    [ "$rc" = 0 ] && rc=1
  fi
fi

# --- fault matrix (issue 9): it stops and starts real peers, so it runs alone, after the rest,
# one test at a time; docs/verdicts.md is rewritten from its output when all of it passed.
# FEDPROBE_FAULT_MATRIX=0 leaves it out.
if [ $# -eq 0 ] && [ "${FEDPROBE_FAULT_MATRIX:-1}" = 1 ] && [ -f "$FEDPROBE_PEERS_ENV" ]; then
  t=$(date +%s)
  FLOG=$(mktemp /tmp/fedprobe-fault-matrix.XXXXXX)
  cargo test -p probes --test it -- --ignored fault_matrix --test-threads=1 --show-output 2>&1 | tee "$FLOG"
  frc=${PIPESTATUS[0]}
  if [ "$frc" = 0 ] && python3 ci/verdicts.py "$FLOG" > docs/verdicts.md.new; then
    mv docs/verdicts.md.new docs/verdicts.md && say "docs/verdicts.md rewritten"
  else
    rm -f docs/verdicts.md.new
  fi
  rm -f "$FLOG"
  say "fault matrix exit $frc after $(elapsed "$t")"
  [ "$rc" = 0 ] && rc=$frc
fi
exit "$rc"
