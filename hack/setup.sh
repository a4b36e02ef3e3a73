#!/usr/bin/env bash
# Installs and starts what podsup and its tests need on Debian bookworm, as
# root, on a machine without systemd: containerd, runc, the CNI plugins,
# iptables, busybox-static (the offline test and example images are built
# from it), etcd and the registry for later tests, and Chromium for the status
# page test. Safe to run again: it installs only what is missing and starts
# containerd only if it is not answering. It also builds and starts
# containerd 2.3 beside it and points the tests at it (see below).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
	echo "hack/setup.sh: run as root (podsup runs containers)" >&2
	exit 1
fi

packages=(
	containerd runc containernetworking-plugins iptables iproute2
	busybox-static procps psmisc e2fsprogs util-linux bsdutils ca-certificates curl
	docker-registry apache2-utils
	chromium fonts-dejavu-core
)
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
install_missing "${packages[@]}"

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null || { echo "hack/setup.sh: Go is not installed (want /usr/local/go)" >&2; exit 1; }

# containerd, in the background: there is no systemd to start it.
if ! ctr version >/dev/null 2>&1; then
	mkdir -p /var/log
	echo "starting containerd (log: /var/log/containerd.log)"
	nohup containerd >>/var/log/containerd.log 2>&1 </dev/null &
	for _ in $(seq 1 60); do
		ctr version >/dev/null 2>&1 && break
		sleep 0.5
	done
	ctr version >/dev/null 2>&1 || { echo "containerd did not start; see /var/log/containerd.log" >&2; exit 1; }
fi

# By default (PODSUP_CONTAINERD=2), also containerd 2.3 on a socket of its
# own (hack/containerd2.sh; built once per machine), and the tests pointed at
# it: the shared daemon through PODSUP_TEST_CONTAINERD, the private ones tests
# start through PODSUP_TEST_CONTAINERD_BIN. Debian's containerd 1.6 above is
# started either way: hack/test.sh runs a part of the suite against it, and
# with PODSUP_CONTAINERD=1 the whole suite.
case "${PODSUP_CONTAINERD:-2}" in
1) ;;
2)
	bash "$(dirname "${BASH_SOURCE[0]}")/containerd2.sh" start
	eval "$(bash "$(dirname "${BASH_SOURCE[0]}")/containerd2.sh" env)"
	;;
*)
	echo "hack/setup.sh: PODSUP_CONTAINERD=$PODSUP_CONTAINERD: want 1 (Debian's containerd 1.6) or 2 (containerd 2.3)" >&2
	exit 1
	;;
esac

# Masquerade rules of sandboxes that no longer exist (an interrupted run)
# would make the CNI DEL of a later sandbox with the same ID fail.
bash "$(dirname "${BASH_SOURCE[0]}")/clean-cni.sh"

# The control plane the integration tests start (etcd, kube-apiserver built
# from the k8s.io/kubernetes module, kubectl; for e2e/kubeadm kubeadm,
# kube-controller-manager, kube-scheduler and etcd 3.7), built or found in the cache
# (/var/cache/podsup-test) before the suite: on a new machine the first
# build takes many minutes, which must not count against the suite's
# -timeout.
echo "building the test control plane (once per machine)"
CGO_ENABLED=1 go test -count=1 -tags integration -timeout 90m -run '^TestBuild$' ./internal/testenv/kube
