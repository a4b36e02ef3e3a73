#!/usr/bin/env bash
# Builds containerd 2.3 (containerd, ctr, containerd-shim-runc-v2) and the
# runc it pins, from the Go module proxy, once per machine, into
# $PODSUP_TEST_CACHE/containerd-v2.3.7/bin (default /var/cache/podsup-test),
# and starts that containerd in the background on a socket, root, state, runc
# root and shim socket directory of its own, beside Debian's containerd 1.6,
# which it never touches. Debian bookworm, as root, no systemd.
#
#   hack/containerd2.sh          build (or find in the cache) and start
#   hack/containerd2.sh build    only build; prints the bin directory
#   hack/containerd2.sh start    same as no argument
#   hack/containerd2.sh stop     stop the daemon this script started
#   hack/containerd2.sh env      print the exports that point the tests at it
#
# The tests use it with
#   PODSUP_TEST_CONTAINERD=/run/podsup-test/containerd2/containerd.sock
#   PODSUP_TEST_CONTAINERD_BIN=/var/cache/podsup-test/containerd-v2.3.7/bin
# (hack/test.sh sets both when PODSUP_CONTAINERD=2).
#
# Safe to run again: it builds only what the cache lacks and starts the
# daemon only if it is not answering. It touches nothing of Debian's
# containerd (/run/containerd, /var/lib/containerd, /etc/containerd).
set -euo pipefail

version=v2.3.7
# runc: the version containerd pins in script/setup/runc-version. runc's own
# Makefile adds the libpathrs tag, which needs the Rust libpathrs library
# (not in bookworm); without it runc uses its Go fallback (pathrs-lite).
runc_version=v1.5.2
runc_tags="seccomp urfave_cli_no_docs"
# As containerd's Makefile: urfave_cli_no_docs everywhere, and a static shim
# without cgo or gRPC.
tags="urfave_cli_no_docs"
shim_tags="urfave_cli_no_docs no_grpc"

cache="${PODSUP_TEST_CACHE:-/var/cache/podsup-test}/containerd-$version"
bin="$cache/bin"
run=/run/podsup-test/containerd2
sock="$run/containerd.sock"
root=/var/lib/podsup-test/containerd2
log=/var/log/podsup-containerd2.log

if [ "$(id -u)" != 0 ]; then
	echo "hack/containerd2.sh: run as root" >&2
	exit 1
fi
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

# recipe names everything a build depends on: a change rebuilds.
recipe="containerd $version tags=[$tags] shim_tags=[$shim_tags] runc $runc_version tags=[$runc_tags] $(go env GOVERSION 2>/dev/null || echo nogo)"

cached() {
	[ "$(cat "$bin/.recipe" 2>/dev/null)" = "$recipe" ] &&
		[ -x "$bin/containerd" ] && [ -x "$bin/ctr" ] &&
		[ -x "$bin/containerd-shim-runc-v2" ] && [ -x "$bin/runc" ]
}

build() {
	cached && return 0
	command -v go >/dev/null || { echo "hack/containerd2.sh: Go is not installed (want /usr/local/go)" >&2; exit 1; }
	# runc's seccomp support links libseccomp through cgo and pkg-config.
	source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
	install_missing libseccomp-dev pkg-config gcc libc6-dev
	mkdir -p "$cache"
	# One build at a time; a second caller waits, then finds it cached.
	exec 9>"$cache/.lock"
	flock 9
	if cached; then
		exec 9>&-
		return 0
	fi
	local start=$SECONDS
	echo "building containerd $version and runc $runc_version into $bin (once per machine; minutes)"
	# Under the lock, other build directories are those of interrupted builds.
	rm -rf "$cache"/build.*
	local tmp
	tmp="$(mktemp -d "$cache/build.XXXXXX")"
	chmod 755 "$tmp"
	local pkg=github.com/containerd/containerd/v2
	local ld="-s -w -X $pkg/version.Version=$version -X $pkg/version.Package=$pkg"
	# go install of a module at a version builds it as released (it has no
	# replace directives); GOWORK and GOFLAGS of the caller do not apply.
	(
		cd /
		export GOBIN="$tmp" GOWORK=off GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
		CGO_ENABLED=1 go install -tags "$tags" -ldflags "$ld" \
			"$pkg/cmd/containerd@$version" "$pkg/cmd/ctr@$version"
		CGO_ENABLED=0 go install -tags "$shim_tags" -ldflags "$ld -extldflags -static" \
			"$pkg/cmd/containerd-shim-runc-v2@$version"
		CGO_ENABLED=1 go install -tags "$runc_tags" -ldflags "-X main.gitCommit=$runc_version" \
			"github.com/opencontainers/runc@$runc_version"
	)
	"$tmp/runc" --version | grep -q "seccomp" || { echo "runc built without seccomp" >&2; exit 1; }
	echo "$recipe" >"$tmp/.recipe"
	rm -rf "$bin.old"
	[ -d "$bin" ] && mv "$bin" "$bin.old"
	mv "$tmp" "$bin"
	rm -rf "$bin.old"
	exec 9>&-
	echo "built in $((SECONDS - start)) s"
}

answers() {
	"$bin/ctr" --address "$sock" --timeout 5s version >/dev/null 2>&1
}

config() {
	# Version 3, the format of containerd 2.0 to 2.2; 2.3 (whose own format
	# is 4) migrates it on load. Every path is podsup's own: the
	# defaults (/run/containerd/s for shim sockets, /opt/containerd, the
	# NRI socket) are shared with other containerds on the host.
	#
	# The runc options reach containers the CRI plugin makes. A client that
	# gives no runtime options (podsup) gets the shim's defaults: "runc"
	# found on the PATH the daemon passes to its shims (the built one first)
	# and the runc root /run/containerd/runc, compiled into the shim, which
	# the daemon's config cannot change.
	cat <<EOF
version = 3
root = "$root"
state = "$run/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "$run/s"

[plugins."io.containerd.internal.v1.opt"]
  path = "$root/opt"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  BinaryName = "$bin/runc"
  Root = "$run/runc"

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "/etc/cni/net.d"
EOF
}

start() {
	build
	if ! answers; then
		mkdir -p "$run" "$root" "$(dirname "$log")"
		config >"$run/config.toml"
		echo "starting containerd $version on $sock (log: $log)"
		# Its own PATH: the daemon starts the shim it finds there, and the
		# shim the runc it finds there, not Debian's.
		PATH="$bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
			setsid nohup "$bin/containerd" --config "$run/config.toml" >>"$log" 2>&1 </dev/null &
		echo "$!" >"$run/containerd.pid"
		for _ in $(seq 1 120); do
			answers && break
			kill -0 "$(cat "$run/containerd.pid")" 2>/dev/null || break
			sleep 0.5
		done
		answers || { echo "containerd $version did not start; see $log" >&2; exit 1; }
	fi
	"$bin/ctr" --address "$sock" version
}

stop() {
	local pid
	pid="$(cat "$run/containerd.pid" 2>/dev/null)" || { echo "no $run/containerd.pid" >&2; return 0; }
	if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" != "$bin/containerd" ]; then
		echo "process $pid is not $bin/containerd; nothing stopped" >&2
		return 0
	fi
	kill -TERM "$pid"
	for _ in $(seq 1 60); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	rm -f "$run/containerd.pid"
}

case "${1:-start}" in
build)
	build
	echo "$bin"
	;;
start) start ;;
stop) stop ;;
env)
	echo "export PODSUP_TEST_CONTAINERD=$sock"
	echo "export PODSUP_TEST_CONTAINERD_BIN=$bin"
	;;
*)
	echo "usage: hack/containerd2.sh [build|start|stop|env]" >&2
	exit 2
	;;
esac
