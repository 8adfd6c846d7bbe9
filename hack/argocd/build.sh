#!/usr/bin/env bash
# Builds luahealth (tools/luahealth: Argo CD's Lua engine, gopher-lua, evaluating deploy/argocd's
# health check against an object) from Go modules, cached under ~/.cache/rostersync; prints the bin
# directory. tests/argocd_health.rs runs it against the objects' real status.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/gotool.sh
source "$here/../lib/gotool.sh"
build_go_tool luahealth "$here/tools/luahealth" . luahealth "$(awk '/gopher-lua/ {print $3}' "$here/tools/luahealth/go.mod")"
