#!/bin/sh
# Run a probe for Icinga and append what it printed (and its exit code) to
# the file named first, so a test can compare it with what Icinga parsed.
record=$1
shift
out=$("$@")
rc=$?
printf '%s\n' "$out"
{
  printf '%s\n' "$out"
  printf '=== exit %s\n' "$rc"
} >>"$record"
exit "$rc"
