#!/bin/bash
# Build fedprobe's .deb and .rpm, check the dependency policy (deny.toml) and write a
# CycloneDX SBOM beside the packages. Output in target/package/:
#   fedprobe_<version>-1_amd64.deb  fedprobe-<version>-1.x86_64.rpm
#   probes.cdx.json fedprobe.cdx.json (SBOMs)  SHA256SUMS
#
# Tools come from crates.io with `cargo install --locked` at the versions below, skipped
# when that version is installed already. cargo-deny's advisory check needs the RustSec
# database from GitHub: where it cannot be fetched the script says so and checks the rest.
#
#   FEDPROBE_PACKAGE_NO_AUDIT=1   skip cargo deny and the SBOM (packages only)
#   FEDPROBE_PACKAGE_PROFILE=dev  package unoptimised binaries (quick local checks only)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

OUT=target/package
STAGE=target/package-stage
say() { echo "[package] $*" >&2; }
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 ))s"; }

# name, binary, version
TOOLS="cargo-deb cargo-deb 3.8.0
cargo-generate-rpm cargo-generate-rpm 0.21.1
cargo-deny cargo-deny 0.19.0
cargo-cyclonedx cargo-cyclonedx 0.5.7"

install_tool() {
  local name=$1 bin=$2 version=$3
  if "$bin" --version 2>/dev/null | grep -q "$version"; then
    return 0
  fi
  local t=$(date +%s)
  say "cargo install --locked $name@$version"
  cargo install --locked --quiet "$name" --version "$version"
  say "$name installed in $(( $(date +%s) - t ))s"
}

need="cargo-deb cargo-generate-rpm"
[ "${FEDPROBE_PACKAGE_NO_AUDIT:-0}" = 1 ] || need="$need cargo-deny cargo-cyclonedx"
while read -r name bin version; do
  case " $need " in *" $name "*) install_tool "$name" "$bin" "$version" ;; esac
done <<< "$TOOLS"

PROFILE=${FEDPROBE_PACKAGE_PROFILE:-release}
BIN_DIR=target/$PROFILE
[ "$PROFILE" = dev ] && BIN_DIR=target/debug
say "building the binaries ($PROFILE)"
cargo build --locked --profile "$PROFILE" -p probes -p fedprobe --bins

say "generating man pages, completions, Icinga 2 commands"
rm -rf "$STAGE" && mkdir -p "$STAGE"
"$BIN_DIR/fedprobe" gen-docs "$STAGE" >/dev/null
gzip -9n "$STAGE"/man/man1/*.1
# The shipped Icinga file is the committed one; it must be what the probes generate.
if ! cmp -s "$STAGE/icinga2/fedprobe-commands.conf" packaging/icinga2/fedprobe-commands.conf; then
  say "packaging/icinga2/fedprobe-commands.conf is stale: run target/release/fedprobe gen-docs DIR and copy DIR/icinga2/fedprobe-commands.conf"
  exit 1
fi

rm -rf "$OUT" && mkdir -p "$OUT"
say "cargo deb"
cargo deb --no-build --locked --profile "$PROFILE" -p fedprobe -o "$OUT" >/dev/null
say "cargo generate-rpm"
cargo generate-rpm -p harness --profile "$PROFILE" -o "$OUT"

if [ "${FEDPROBE_PACKAGE_NO_AUDIT:-0}" != 1 ]; then
  say "cargo deny check licenses bans sources"
  cargo deny --locked check licenses bans sources
  # Advisories need the RustSec database (a git clone from GitHub).
  if cargo deny --locked fetch db >/dev/null 2>&1; then
    say "cargo deny check advisories"
    cargo deny --locked check --disable-fetch advisories
  else
    say "SKIP advisories: the RustSec advisory database cannot be fetched from here"
  fi
  say "cargo cyclonedx (SBOM)"
  cargo cyclonedx --format json --spec-version 1.5 >/dev/null
  for f in probes/probes.cdx.json harness/fedprobe.cdx.json; do
    mv "$f" "$OUT/"
  done
  rm -f fakecloud/*.cdx.json
fi

(cd "$OUT" && sha256sum -- * > SHA256SUMS)
say "done in $(elapsed):"
ls -l "$OUT" >&2
