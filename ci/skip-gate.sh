#!/bin/bash
# Read test output on stdin; print each distinct `SKIP ...` line that no entry of the
# allow-list (argument 1) covers. An entry is `PREFIX -- REASON`: a SKIP line is allowed
# when its text after "SKIP " starts with PREFIX. Exit 2 when an entry has no reason.
set -uo pipefail
list=${1:?usage: skip-gate.sh ALLOWLIST < test-output}
prefixes=()
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in '' | '#'*) continue ;; esac
  prefix=${line%% -- *}
  reason=${line#* -- }
  if [ "$prefix" = "$line" ] || [ -z "${reason// /}" ] || [ -z "${prefix// /}" ]; then
    echo "skip-gate: no reason given: $line" >&2
    exit 2
  fi
  prefixes+=("$prefix")
done < "$list"
# No SKIP line at all is the good case: grep's exit 1 must not fail the gate.
{ grep -oE 'SKIP [^ ].*' || true; } | sort -u | while IFS= read -r skip; do
  text=${skip#SKIP }
  ok=0
  for p in "${prefixes[@]+"${prefixes[@]}"}"; do
    [ "${text#"$p"}" != "$text" ] && ok=1 && break
  done
  [ "$ok" = 1 ] || printf '%s\n' "$skip"
done
