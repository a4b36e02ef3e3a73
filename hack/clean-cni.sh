#!/usr/bin/env bash
# Removes the bridge plugin's masquerade rules (nat POSTROUTING rules and
# their CNI-* chains) whose sandbox no longer exists in any containerd
# namespace: what an interrupted test run or a killed podsup that never
# restarted leaves behind. Left in place, a rule makes the next CNI DEL of a
# sandbox with the same ID fail with "chain busy" (podsup's sandbox IDs are
# derived from the pod's name). Rules of live sandboxes are kept, and so is
# every rule whose sandbox ID is not of podsup's form (<12 hex>_pause.<n>):
# another runtime's rules on the host (podman's, a CRI's) are not podsup's to
# touch. The IDs of other test sandboxes are random and never reused.
set -euo pipefail

# Every containerd podsup's tests use: Debian's, the containerd 2.3 of
# hack/containerd2.sh and the private ones tests start; ctr 1.6 reads the
# container lists of 2.x as well.
declare -A live=()
for sock in /run/containerd/containerd.sock /run/podsup-test/containerd2/containerd.sock /run/podsup-ctrd-*/c.sock; do
	[ -S "$sock" ] || continue
	for ns in $(ctr --address "$sock" --timeout 10s namespaces ls -q 2>/dev/null); do
		for id in $(ctr --address "$sock" -n "$ns" containers ls -q); do
			live[$id]=1
		done
	done
done

removed=0
while IFS= read -r rule; do
	id="$(sed -n 's/.*id: \\"\([^\\]*\)\\".*/\1/p' <<<"$rule")"
	chain="$(sed -n 's/.* -j \(CNI-[0-9a-f]*\)$/\1/p' <<<"$rule")"
	[ -n "$id" ] && [ -n "$chain" ] || continue
	[[ "$id" =~ ^[0-9a-f]{12}_pause\.[0-9]+$ ]] || continue
	[ -z "${live[$id]:-}" ] || continue
	eval "iptables -w -t nat ${rule/-A POSTROUTING/-D POSTROUTING}" 2>/dev/null || continue
	iptables -w -t nat -F "$chain" 2>/dev/null || true
	iptables -w -t nat -X "$chain" 2>/dev/null || true
	removed=$((removed + 1))
done < <(iptables -w -t nat -S POSTROUTING | grep -- '-j CNI-' | grep 'id: ' || true)
echo "clean-cni: removed $removed masquerade rules of sandboxes that no longer exist"
