#!/usr/bin/env bash
# The one test command: hack/test.sh [extra cargo test args]
# Installs what is missing, builds, brings up Postgres, checks that the committed sqlx query data
# (.sqlx/) matches the code (hack/sqlx/prepare.sh --check), brings up a real Kubernetes control plane,
# runs the whole suite (`cargo test --all-targets`, including every test that needs a server) and tears
# everything down on exit (also on failure or Ctrl-C). Exits with the tests' status.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { echo "test.sh: $*" >&2; }
started=$SECONDS

# shellcheck source=hack/setup.sh
source "$root/hack/setup.sh"
ensure_prerequisites

state="$(mktemp -d /tmp/rostersync-test.XXXXXX)"
chmod 755 "$state"
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ -n "${KEEP_STATE:-}" ] && { log "keeping $state"; exit "$status"; }
  "$root/hack/k8s/down.sh" "$state/k8s" >/dev/null 2>&1 || true
  "$root/hack/pg/down.sh" "$state/pg" >/dev/null 2>&1 || true
  rm -rf "$state"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building the control plane binaries, promtool, luahealth and sqlx-cli (cached under ~/.cache/rostersync)"
"$root/hack/k8s/build.sh" >/dev/null
promtool_bin="$("$root/hack/prometheus/build.sh")"
luahealth_bin="$("$root/hack/argocd/build.sh")"
"$root/hack/sqlx/cli.sh" >/dev/null
log "building the crate and its tests"
if ! cargo build --all-targets --locked 2>&1 | tee "$state/cargo-build.log"; then
  if grep -q 'no cached data for this query' "$state/cargo-build.log"; then
    log "FAILED: .sqlx/ has no data for a changed sqlx::query! (or friend): run hack/sqlx/prepare.sh and"
    log "commit .sqlx/ (see docs/development.md)"
  fi
  exit 1
fi

log "starting Postgres"
"$root/hack/pg/up.sh" "$state/pg"
# shellcheck disable=SC1091
source "$state/pg/env"
# The compile-time checked queries were built from the committed .sqlx/ (offline): check that it is
# what the code's queries give against the migrated schema (a scratch database on this Postgres).
log "checking that .sqlx/ matches the queries (hack/sqlx/prepare.sh --check)"
"$root/hack/sqlx/prepare.sh" --check
log "starting the control plane"
"$root/hack/k8s/up.sh" "$state/k8s"
# shellcheck disable=SC1091
source "$state/k8s/env"
# promtool checks the chart's PrometheusRule (tests/prometheus_rules.rs); luahealth evaluates the
# Argo CD health check (deploy/argocd/health.lua) on the objects' real status.
export PATH="$promtool_bin:$luahealth_bin:$PATH"
export ROSTERSYNC_REQUIRE_SERVERS=1
log "setup took $((SECONDS - started))s; running the suite"

set +e
cargo test --all-targets --locked --no-fail-fast "$@" 2>&1 | tee "$state/cargo-test.log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '[0-9]+ passed' "$state/cargo-test.log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$state/cargo-test.log" | awk '{s+=$1} END {print s+0}')

# The main command is part of the suite: the demo must pass end to end (its own servers).
if [ -z "${SKIP_DEMO:-}" ]; then
  log "running the demo once: hack/demo.sh --once"
  if "$root/hack/demo.sh" --once >"$state/demo.log" 2>&1; then
    passed=$((passed + 1)); echo "demo: hack/demo.sh --once ... ok"
  else
    failed=$((failed + 1)); echo "demo: hack/demo.sh --once ... FAILED"; tail -n 60 "$state/demo.log"
    [ "$status" = 0 ] && status=1
  fi
fi
echo "${passed} passed, ${failed} failed"
log "finished in $((SECONDS - started))s with status $status"
exit "$status"
