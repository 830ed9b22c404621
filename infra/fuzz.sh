#!/usr/bin/env bash
# Runs every Fuzz* target in the repository briefly (FUZZTIME, default 5s each):
# the decoders of events and requests must never panic on hostile input.
# Targets are discovered, so a new one is fuzzed without editing this file.
set -euo pipefail
FUZZTIME=${FUZZTIME:-5s}
grep -rl --include='*_test.go' '^func Fuzz' shared functions infra tests 2>/dev/null | while read -r file; do
  pkg="./$(dirname "$file")"
  for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
    echo "fuzz $pkg $name ($FUZZTIME)"
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/fuzz-$name.log 2>&1 || { cat /tmp/fuzz-$name.log; exit 1; }
  done
done
