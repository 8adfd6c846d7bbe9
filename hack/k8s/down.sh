#!/usr/bin/env bash
# Usage: hack/k8s/down.sh DIR — stops what hack/k8s/up.sh DIR started (TERM, then KILL after a
# timeout; the API server before etcd) and removes DIR's state.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib/common.sh"
dir="${1:?usage: hack/k8s/down.sh DIR}"
[ -d "$dir" ] || exit 0
for c in kube-controller-manager kube-apiserver etcd; do stop_pid "$dir/run/$c.pid" 15; done
rm -rf "$dir/etcd" "$dir/run" "$dir/pki" "$dir/kubeconfig" "$dir/env"
[ "${KEEP_LOGS:-}" = 1 ] || rm -rf "$dir/logs"
rmdir "$dir" 2>/dev/null || true
