#!/usr/bin/env bash
# The main command: hack/demo.sh [--once]
# Builds what is needed; starts Postgres, a real control plane, the pod runner, a seeded Clever
# emulator (about 2,000 students) and the controller; installs the CRDs and examples/demo/;
# triggers Sync Now, waits for the run and shows `kubectl get rostersync -o wide` and
# `rostersync history`. Keeps running until Ctrl-C, or with --once exits after showing the result
# (non-zero if the sync did not succeed). Everything is stopped and removed on exit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
once=0
[ "${1:-}" = "--once" ] && once=1
log() { echo "demo: $*" >&2; }

# shellcheck source=hack/setup.sh
source "$root/hack/setup.sh"
ensure_prerequisites

state="$(mktemp -d /tmp/rostersync-demo.XXXXXX)"
chmod 755 "$state"
pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$root/hack/k8s/down.sh" "$state/k8s" >/dev/null 2>&1 || true
  "$root/hack/pg/down.sh" "$state/pg" >/dev/null 2>&1 || true
  [ -n "${KEEP_STATE:-}" ] && log "logs kept in $state" || rm -rf "$state"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building the control plane binaries (cached) and rostersync"
"$root/hack/k8s/build.sh" >/dev/null
cargo build --locked --bin rostersync >&2
bin="${CARGO_TARGET_DIR:-$root/target}/debug/rostersync"

log "starting Postgres and the control plane"
"$root/hack/pg/up.sh" "$state/pg" >&2
"$root/hack/k8s/up.sh" "$state/k8s" >&2
# shellcheck disable=SC1091
source "$state/pg/env"
# shellcheck disable=SC1091
source "$state/k8s/env"

log "starting the Clever emulator (2,000 students)"
export CLEVER_EMULATOR_TOKEN="demo-district-token-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
"$bin" clever-emulator --students 2000 --seed 42 >"$state/emulator.url" 2>"$state/emulator.log" &
pids+=($!)
for _ in $(seq 1 600); do [ -s "$state/emulator.url" ] && break; sleep 0.1; done
api_base="$(head -n1 "$state/emulator.url")"
api_base="${api_base%/}"
[ -n "$api_base" ] || { log "the emulator did not start; see $state/emulator.log"; exit 1; }

log "installing the CRDs, RBAC and examples/demo/"
"$bin" crds | kubectl apply --server-side -f - >&2
kubectl wait --for condition=established --timeout=60s crd -l '!none' >&2 2>/dev/null ||
  kubectl wait --for condition=established --timeout=60s crd --all >&2
kubectl apply -f examples/demo/namespace.yaml >&2
kubectl apply -f deploy/rbac/sync.yaml >&2
kubectl -n district-a create secret generic springfield-clever --from-literal=token="$CLEVER_EMULATOR_TOKEN" >&2
kubectl apply -f examples/demo/journeypolicy.yaml -f examples/demo/schedule.yaml >&2
sed "s#http://127.0.0.1:0#${api_base}#" examples/demo/connection.yaml | kubectl apply -f - >&2

log "starting the pod runner and the controller"
"$bin" pod-runner --binary "rostersync=$bin" --log-dir "$state/pods" 2>"$state/pod-runner.log" &
pids+=($!)
# Credentials go only to allowed hosts: the emulator's exact host:port (instead of Clever's).
api_host="${api_base#*://}"
api_host="${api_host%%/*}"
"$bin" controller --metrics-addr 127.0.0.1:0 --sync-image rostersync:demo \
  --allowed-api-host "$api_host" 2>"$state/controller.log" &
pids+=($!)

kubectl -n district-a wait --for=condition=Ready --timeout=120s rosterconnection/springfield >&2
token="demo-$(date +%s)"
log "Sync Now ($token)"
kubectl -n district-a annotate syncschedule nightly "rostersync.io/sync-now=$token" --overwrite >&2
result=""
for _ in $(seq 1 600); do
  result="$(kubectl -n district-a get syncschedule nightly -o jsonpath='{.status.lastRun.result}' 2>/dev/null || true)"
  case "$result" in Succeeded | Failed | Held) break ;; esac
  sleep 0.5
done
echo
kubectl get rostersync -n district-a -o wide
echo
"$bin" history --limit 5
echo
log "the sync finished: ${result:-no result}"
if [ "$once" = 1 ]; then
  [ "$result" = "Succeeded" ]
  exit $?
fi
log "running; press Ctrl-C to stop (logs in $state)"
while true; do sleep 3600 & wait $!; done
