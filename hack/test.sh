#!/usr/bin/env bash
# Runs the whole test suite, as root: formatting and vet, the unit tests and
# the integration tests against the real containerd (build tag
# "integration"), all with the race detector, then short fuzz runs of the
# manifest parser, the push API and the token file reader. It first sets up
# what the tests need (hack/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/setup.sh

export CGO_ENABLED=1 # the race detector needs cgo
fuzztime="${PODSUP_FUZZTIME:-40s}" # of the manifest parser

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

# Each fuzz target for a fixed time, 75 s in all, seeded with the hostile
# corpus (internal/hostile).
fuzz() {
	echo "== fuzz $2 for $3"
	go test -run '^$' -fuzz "^$2\$" -fuzztime "$3" "$1"
}
fuzz ./manifest FuzzParse "$fuzztime"
fuzz ./api FuzzPutManifest 25s
fuzz ./api FuzzReadTokenFile 10s
echo "== all tests passed"
