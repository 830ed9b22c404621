#!/usr/bin/env bash
# What `make test` runs: vet, every test against real emulators with coverage of
# shared/ and functions/ together, a brief fuzz of every decoder, then the figures.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p tests/artifacts
go vet ./... || exit 1
go test -count=1 -timeout "${TEST_TIMEOUT:-25m}" -coverpkg=./shared/...,./functions/... \
  -coverprofile=tests/artifacts/cover.out ./... 2>&1 | tee tests/artifacts/test.log
status=${PIPESTATUS[0]}
fuzz=0
if [ "$status" = 0 ]; then infra/fuzz.sh || fuzz=1; fi
passed=$(grep -c '^ok ' tests/artifacts/test.log)
# A failed package ends with "FAIL	<import path>"; a build failure prints
# "FAIL	<import path> [build failed]" and counts the same.
failed=$(grep -cE '^FAIL[[:space:]]+[[:alnum:]]' tests/artifacts/test.log)
failing_tests=$(grep -E '^[[:space:]]*--- FAIL' tests/artifacts/test.log | sed -E 's/^[[:space:]]*--- FAIL: ([^ ]+).*/\1/' | sort -u)
echo
if [ -s tests/artifacts/cover.out ]; then
  go tool cover -func=tests/artifacts/cover.out | tail -1 | awk '{print "coverage of shared/ and functions/ (statements): " $NF}'
fi
[ "$fuzz" = 0 ] || { echo "fuzzing found a failure (see above)"; failed=$((failed+1)); }
echo "packages: $passed passed, $failed failed"
[ -z "$failing_tests" ] || { echo "failing tests:"; echo "$failing_tests" | sed 's/^/  /'; }
[ "$status" = 0 ] && [ "$fuzz" = 0 ]
