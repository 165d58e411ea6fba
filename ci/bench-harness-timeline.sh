#!/usr/bin/env bash
# Where a harness run's memory goes, over time: a measurement build that
# counts its live heap by size class (feature heap-count) serves N demo
# sites and prints, every INTERVAL ms, the live heap, its peak, the
# resident memory, the open descriptors, the jobs queued (of sites
# admitted), running and done, and the sites admitted, complete and handed
# to the reports; then the run's maxima.
#   ci/bench-harness-timeline.sh [SITES] [INTERVAL_MS] [BOOT_DELAY]
set -euo pipefail
cd "$(dirname "$0")/.."
SITES=${1:-1000}
EVERY=${2:-500}
BOOT=${3:-5s}
TARGET=${CARGO_TARGET_DIR:-target}/heap-count
REPORTS=$(mktemp -d)
trap 'rm -rf "$REPORTS"' EXIT
PROFILE=${FEDPROBE_BENCH_PROFILE:-dist}
CARGO_TARGET_DIR=$TARGET cargo build --profile "$PROFILE" -q -p fedprobe --features heap-count >&2
FEDPROBE_HEAP_TRACE=$EVERY "$TARGET/$PROFILE/fedprobe" demo --sites "$SITES" \
  --boot-delay "$BOOT" --jobs 2500 --jobs-per-site 5 --quiet --format json \
  --report-dir "$REPORTS" 2> "$REPORTS/trace" > /dev/null || echo "exit code $?"
grep '^heap ' "$REPORTS/trace"
awk '/^heap /{for(i=2;i<=NF;i++){split($i,a,"=");v=a[2]+0;
  if(a[1]=="live"&&v>h)h=v; if(a[1]=="rss"&&v>r)r=v; if(a[1]=="fds"&&v>f)f=v}}
  END{printf "max_live_heap_mb=%d\nmax_rss_mb=%d\nmax_fds=%d\n",h,r,f}' "$REPORTS/trace"
