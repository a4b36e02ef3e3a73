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
# hack/containerd2.sh), then its pod lifecycle and network tests against
# Debian's containerd 1.6.
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
echo "== setup took $SECONDS s"

export CGO_ENABLED=1 # the race detector needs cgo
# Builds that do not depend on where the clone is: CI clones afresh, and
# with paths in them no compiled package of the last run could be reused
# (go vet alone took over 2 minutes on an idle machine).
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath"
fuzztime="${PODSUP_FUZZTIME:-150000x}" # of the manifest parser: runs, or a duration
work="$(mktemp -d)"
hogs=()
cleanup() {
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
# A phase header, with the seconds since the start of the tests.
phase() { echo "== [$((SECONDS - start)) s] $*"; }

phase "gofmt, go vet"
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [ -n "$unformatted" ]; then
	echo "not gofmt'ed:" $unformatted >&2
	exit 1
fi
go vet ./...
go vet -tags integration ./...

phase "unit and integration tests (-race)"
# The podsup binary the end-to-end packages (e2e/...) run, built once for
# all of them.
go build -race -o "$work/podsup" .
export PODSUP_E2E_BINARY="$work/podsup"
# And podsup as shipped, for the test that feeds it the hostile corpus.
CGO_ENABLED=0 go build -ldflags "-s -w" -o "$work/podsup-release" .
export PODSUP_E2E_RELEASE_BINARY="$work/podsup-release"
export PODSUP_SUMMARY_DIR="$work/summary"
mkdir -p "$PODSUP_SUMMARY_DIR"
# The reliability tests, the long pole, in a run of their own with three
# at a time: the crash loop alone takes seven to eight minutes, and with
# two at a time the others queued behind it for as long again. Beside it,
# three packages at a time, two tests of each (-parallel defaults to the
# cores): most of an integration test's time is spent waiting for
# containers, probes and back-offs, not on the CPU, but more at once made
# containerd's own calls time out under load. The slowest packages are
# named first, so they start first and the slots end together. go vet
# checked every package above, so go test's own vet pass is off.
flags=(-race -count=1 -tags integration -timeout 45m -vet=off)
go test "${flags[@]}" -parallel 3 ./e2e/reliability &
reliability=$!
slowest=(./e2e/kubeadm ./cni ./e2e/lifecycle ./e2e/network ./manifest ./supervisor)
others=$(go list -tags integration ./... | grep -v '/e2e/reliability$')
status=0
go test "${flags[@]}" -p 3 "${slowest[@]}" $others || status=$?
wait "$reliability" || status=$?
[ "$status" = 0 ] || exit "$status"
if [ "${PODSUP_CONTAINERD:-2}" = 2 ]; then
	# Debian's containerd 1.6, still supported: pod lifecycle across
	# containerd and podsup restarts, the pod network, and the refusal of
	# user namespaces that it cannot make, after the main
	# run (at the same time, the two made a load average near 90 with the
	# CPU hogs of --under-load, and containerd 1.6 dropped shims whose state
	# it could not read in time).
	echo
	phase "against Debian's containerd 1.6: lifecycle, network, user namespaces refused"
	mkdir -p "$work/summary-1.6"
	PODSUP_TEST_CONTAINERD=/run/containerd/containerd.sock PODSUP_TEST_CONTAINERD_BIN= \
		PODSUP_SUMMARY_DIR="$work/summary-1.6" \
		go test "${flags[@]}" -p 2 -parallel 3 \
		-run '^(TestContainerdRestart|TestCrashWhileCreatingPods|TestPodNetwork|TestNetworkSurvivesCrashes|TestUserNamespace)$' \
		./e2e/lifecycle ./e2e/network ./e2e/volumes
fi
echo
echo "== figures recorded by the tests"
cat "$PODSUP_SUMMARY_DIR"/* 2>/dev/null || true
if [ "${PODSUP_CONTAINERD:-2}" = 2 ]; then
	echo "== figures recorded against containerd 1.6"
	cat "$work/summary-1.6"/* 2>/dev/null || true
fi

# The hostile corpus's inputs of a megabyte and more, which the race run
# leaves out: minutes of CPU under the race detector for a parser that runs
# in one goroutine.
phase "the hostile corpus, whole, without the race detector"
go test -count=1 -vet=off -run '^TestHostileCorpusParse$' ./manifest

# Each fuzz target for a fixed number of runs (about 75 s in all on an idle
# machine), seeded with the hostile corpus (internal/hostile). Not for a
# fixed time: Go 1.26's fuzzing coordinator can report its own -fuzztime
# deadline as a failure ("context deadline exceeded", golang/go#75804,
# fixed in Go 1.27), which it did here on a loaded machine.
fuzz() {
	phase "fuzz $2 for $3"
	go test -vet=off -run '^$' -fuzz "^$2\$" -fuzztime "$3" "$1"
}
fuzz ./manifest FuzzParse "$fuzztime"
fuzz ./api FuzzPutManifest 30000x
fuzz ./api FuzzReadTokenFile 10000x
echo "== all tests passed in $((SECONDS - start)) s$($under_load && echo " under load")"
