#!/usr/bin/env bash
# Runs the whole test suite, as root: formatting and vet, the unit tests and
# the integration tests against the real containerd (build tag
# "integration"), all with the race detector, then short fuzz runs of the
# manifest parser, the push API and the token file reader. It first sets up
# what the tests need (hack/setup.sh).
#
#   hack/test.sh               the suite
#   hack/test.sh --under-load  the suite while CPU hogs keep every core busy
#                              at normal priority, as on a shared machine
#
# The suite runs against containerd 2.3 (built and started by
# hack/containerd2.sh), and its pod lifecycle, network and crash recovery
# tests also against Debian's containerd 1.6, at the same time.
# PODSUP_CONTAINERD=1 hack/test.sh runs the whole suite against 1.6 alone.
set -euo pipefail
cd "$(dirname "$0")/.."

under_load=false
for arg in "$@"; do
	case "$arg" in
	--under-load) under_load=true ;;
	*)
		echo "usage: hack/test.sh [--under-load]" >&2
		exit 2
		;;
	esac
done

source hack/setup.sh

export CGO_ENABLED=1 # the race detector needs cgo
fuzztime="${PODSUP_FUZZTIME:-40s}" # of the manifest parser
work="$(mktemp -d)"
hogs=()
compat_pid=
cleanup() {
	if [ -n "$compat_pid" ]; then
		pkill -P "$compat_pid" 2>/dev/null || true
		kill "$compat_pid" 2>/dev/null || true
	fi
	if [ "${#hogs[@]}" -gt 0 ]; then
		kill "${hogs[@]}" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

if $under_load; then
	# One hog per core, at the tests' own priority: every test process
	# competes for the CPU the whole time.
	for _ in $(seq "$(nproc)"); do
		sha256sum /dev/zero >/dev/null &
		hogs+=("$!")
	done
	echo "== under load: ${#hogs[@]} CPU hogs (sha256sum /dev/zero), pids ${hogs[*]}"
fi
start=$SECONDS

echo "== gofmt, go vet"
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [ -n "$unformatted" ]; then
	echo "not gofmt'ed:" $unformatted >&2
	exit 1
fi
go vet ./...
go vet -tags integration ./...

echo "== unit and integration tests (-race)"
# The podsup binary the end-to-end packages (e2e/...) run, built once for
# all of them.
go build -race -o "$work/podsup" .
export PODSUP_E2E_BINARY="$work/podsup"
export PODSUP_SUMMARY_DIR="$work/summary"
mkdir -p "$PODSUP_SUMMARY_DIR"
# Four packages at a time, three tests of each: most of an integration
# test's time is spent waiting for containers, probes and back-offs, not on
# the CPU. The slowest packages are named first, so they start first and
# the four slots end together.
slowest=(./e2e/reliability ./cni ./e2e/lifecycle ./e2e/network ./manifest ./supervisor)
if [ "${PODSUP_CONTAINERD:-2}" = 2 ]; then
	# Debian's containerd 1.6, still supported: pod lifecycle, restarts,
	# network and crash recovery, beside the main run.
	(
		export PODSUP_TEST_CONTAINERD=/run/containerd/containerd.sock PODSUP_TEST_CONTAINERD_BIN=
		export PODSUP_SUMMARY_DIR="$work/summary-1.6"
		mkdir -p "$PODSUP_SUMMARY_DIR"
		go test -race -count=1 -tags integration -timeout 45m -p 2 -parallel 3 ./e2e/lifecycle ./e2e/network &&
			go test -race -count=1 -tags integration -timeout 45m -parallel 3 \
				-run '^TestReliability(CrashLoop|ContainerdRestarts)$' ./e2e/reliability
	) >"$work/compat.log" 2>&1 &
	compat_pid=$!
fi
main=0
go test -race -count=1 -tags integration -timeout 45m -p 4 -parallel 3 "${slowest[@]}" ./... || main=$?
if [ -n "$compat_pid" ]; then
	echo
	echo "== the same against Debian's containerd 1.6: e2e/lifecycle, e2e/network, crash recovery"
	compat=0
	wait "$compat_pid" || compat=$?
	compat_pid=
	cat "$work/compat.log"
	[ "$compat" = 0 ] || exit "$compat"
fi
[ "$main" = 0 ] || exit "$main"
echo
echo "== figures recorded by the tests"
cat "$PODSUP_SUMMARY_DIR"/* 2>/dev/null || true
if [ -n "$compat_pid" ]; then
	echo "== figures recorded against containerd 1.6"
	cat "$work/summary-1.6"/* 2>/dev/null || true
fi

# Each fuzz target for a fixed time, 75 s in all, seeded with the hostile
# corpus (internal/hostile).
fuzz() {
	echo "== fuzz $2 for $3"
	go test -run '^$' -fuzz "^$2\$" -fuzztime "$3" "$1"
}
fuzz ./manifest FuzzParse "$fuzztime"
fuzz ./api FuzzPutManifest 25s
fuzz ./api FuzzReadTokenFile 10s
echo "== all tests passed in $((SECONDS - start)) s$($under_load && echo " under load")"
