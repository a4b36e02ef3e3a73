#!/usr/bin/env bash
# Runs the whole test suite, as root: formatting and vet, the unit tests and
# the integration tests against the real containerd (build tag
# "integration"), all with the race detector, then a short fuzz run of the
# manifest parser. It first sets up what the tests need (hack/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/setup.sh

export CGO_ENABLED=1 # the race detector needs cgo
fuzztime="${PODSUP_FUZZTIME:-30s}"

echo "== gofmt, go vet"
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [ -n "$unformatted" ]; then
	echo "not gofmt'ed:" $unformatted >&2
	exit 1
fi
go vet ./...
go vet -tags integration ./...

echo "== unit and integration tests (-race)"
export PODSUP_SUMMARY_FILE="$(mktemp)"
go test -race -count=1 -tags integration -timeout 25m ./...
cat "$PODSUP_SUMMARY_FILE"

echo "== fuzz FuzzParse for $fuzztime"
go test -run '^$' -fuzz FuzzParse -fuzztime "$fuzztime" ./manifest
echo "== all tests passed"
