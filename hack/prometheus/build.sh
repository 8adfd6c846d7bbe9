#!/usr/bin/env bash
# Builds promtool from Go modules (no binary downloads), like hack/k8s/build.sh builds the control
# plane: the Prometheus module version is in versions.env and pinned, with its dependencies, by
# tools/promtool/go.mod and go.sum. Caches the binary under ~/.cache/rostersync keyed by that version,
# the Go version and go.mod/go.sum, and prints the bin directory on stdout. A warm cache returns at once.
# promtool validates the chart's PrometheusRule (tests/prometheus_rules.rs).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="-mod=mod" CGO_ENABLED=0
command -v go >/dev/null || { echo "prometheus/build.sh: Go is required (go 1.26+)" >&2; exit 1; }

key="$( (echo "$PROMETHEUS_MODULE_VERSION $(go env GOVERSION)"; cat "$here"/tools/promtool/go.mod "$here"/tools/promtool/go.sum) | sha256sum | cut -c1-16)"
cache="${ROSTERSYNC_CACHE:-$HOME/.cache/rostersync}/prometheus-$PROMETHEUS_MODULE_VERSION-$key"
bin="$cache/bin"

if [ -x "$bin/promtool" ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin"
# A private Go build cache, deleted once promtool is built (kept after a failure, so a retry resumes).
export GOCACHE="$cache/go-build"
echo "prometheus/build.sh: building promtool (prometheus $PROMETHEUS_MODULE_VERSION; cold: minutes on 2 cores)" >&2
(cd "$here/tools/promtool" && go build -trimpath -ldflags "-s -w" \
  -o "$bin/promtool.tmp" github.com/prometheus/prometheus/cmd/promtool >&2) && mv "$bin/promtool.tmp" "$bin/promtool"
[ -x "$bin/promtool" ] || { echo "prometheus/build.sh: promtool is missing in $bin" >&2; exit 1; }
rm -rf "$GOCACHE"
echo "$bin"
