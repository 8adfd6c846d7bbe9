#!/usr/bin/env bash
# A benchmark: many districts on one controller (docs/performance.md). Builds the release
# binary, starts Postgres and the control plane (hack/pg/up.sh, hack/k8s/up.sh) unless DATABASE_URL
# and KUBECONFIG are given, and runs `rostersync bench scale` with the arguments given (default: a
# small run, 20 districts). It prints a readable table (stderr) and JSON (stdout); the servers it
# started are stopped on exit, also on failure or Ctrl-C.
#
#   hack/scale.sh                                     # 20 districts, at rest only
#   hack/scale.sh --sizes 100,1000,3000 --restart-at 1000 --slot-at 1000 > scale.json
#   hack/scale.sh --help                              # every flag of `rostersync bench scale`
#
# A benchmark, not a test: it asserts nothing and is not part of hack/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
here="$(pwd)"

if [ "$#" -eq 0 ]; then
  set -- --sizes 20
fi
cargo build --release --bin rostersync >&2
bin="$here/target/release/rostersync"
if [ "${1:-}" = "--help" ]; then
  exec "$bin" bench scale --help
fi

dir="$(mktemp -d /tmp/rostersync-scale.XXXXXX)"
started=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for s in "${started[@]}"; do
    "hack/$s/down.sh" "$dir/$s" >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

extra=()
if [ -z "${DATABASE_URL:-}" ]; then
  hack/pg/up.sh "$dir/pg" >&2
  started+=(pg)
  # shellcheck disable=SC1091
  source "$dir/pg/env"
fi
if [ -z "${KUBECONFIG:-}" ]; then
  hack/k8s/up.sh "$dir/k8s" >&2
  started+=(k8s)
  # shellcheck disable=SC1091
  source "$dir/k8s/env"
  # A throwaway cluster: deleting its districts one by one would only take time.
  extra+=(--keep)
fi
echo "scale.sh: $(uptime)" >&2
"$bin" bench scale "${extra[@]}" "$@"
echo "scale.sh: $(uptime)" >&2
