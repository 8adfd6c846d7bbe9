#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl, etcd and helm from Go modules (no binary
# downloads), caches them under ~/.cache/rostersync keyed by versions + go.mod/go.sum, and prints the
# bin directory on stdout. A warm cache returns in well under a second.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="-mod=mod" CGO_ENABLED=0
command -v go >/dev/null || { echo "build.sh: Go is required (go 1.26+)" >&2; exit 1; }

key="$( (echo "$K8S_VERSION $ETCD_VERSION $HELM_VERSION $(go env GOVERSION)"; cat "$here"/tools/*/go.mod "$here"/tools/*/go.sum) | sha256sum | cut -c1-16)"
cache="${ROSTERSYNC_CACHE:-$HOME/.cache/rostersync}/k8s-$K8S_VERSION-$key"
bin="$cache/bin"
want=(kube-apiserver kube-controller-manager kubectl etcd helm)

complete() { for b in "${want[@]}"; do [ -x "$bin/$b" ] || return 1; done; }
if complete; then echo "$bin"; exit 0; fi
mkdir -p "$bin"
# A private Go build cache, deleted once every binary is built: the shared one would keep ~5 GB of
# compiled Kubernetes packages that nothing reads again (the binaries themselves are the cache).
# Kept after a failed build, so that a retry resumes.
export GOCACHE="$cache/go-build"

log() { echo "build.sh: $*" >&2; }
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

if [ ! -x "$bin/etcd" ]; then
  log "building etcd $ETCD_VERSION"
  (cd "$here/tools/etcd" && go build -trimpath -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3 >&2) && mv "$bin/etcd.tmp" "$bin/etcd"
fi

if [ ! -x "$bin/helm" ]; then
  log "building helm $HELM_VERSION"
  (cd "$here/tools/helm" && go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    -o "$bin/helm.tmp" helm.sh/helm/v4/cmd/helm >&2) && mv "$bin/helm.tmp" "$bin/helm"
fi

major="${K8S_VERSION#v}"; minor="${major#*.}"; major="${major%%.*}"; minor="${minor%%.*}"
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
for cmd in kube-apiserver kube-controller-manager kubectl; do
  [ -x "$bin/$cmd" ] && continue
  log "building $cmd $K8S_VERSION (cold: several minutes on 2 cores)"
  (cd "$here/tools/kubernetes" && go build -trimpath -ldflags "$ld" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2) \
    && mv "$bin/$cmd.tmp" "$bin/$cmd"
done

complete || { log "some binaries are missing in $bin"; exit 1; }
rm -rf "$GOCACHE"
echo "$bin"
