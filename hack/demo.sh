#!/usr/bin/env bash
# Runs podsup on the bundled examples/, as root: sets up containerd (see
# hack/setup.sh), builds podsup and the offline busybox image the examples
# use, imports it, and runs podsup in the foreground with its state under
# /tmp/podsup-demo. Stop it with Ctrl-C; its pods stop with it.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/setup.sh

work=/tmp/podsup-demo
mkdir -p "$work"
CGO_ENABLED=0 go build -ldflags "-s -w" -o "$work/podsup" .
go run ./hack/mkimage -o "$work/busybox.tar" -ref localhost/podsup/busybox:1 >/dev/null
ctr -n podsup images import "$work/busybox.tar" >/dev/null

echo "podsup: running examples/ (try: curl localhost:8080; $work/podsup pods)"
exec "$work/podsup" run --manifests examples --root-dir "$work/root" --log-dir "$work/logs" "$@"
