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
# shellcheck source=../lib/gotool.sh
source "$here/../lib/gotool.sh"
build_go_tool promtool "$here/tools/promtool" github.com/prometheus/prometheus/cmd/promtool \
  prometheus "$PROMETHEUS_MODULE_VERSION"
