#!/usr/bin/env bash
# Usage: hack/pg/down.sh DIR — stops the private cluster that hack/pg/up.sh DIR started (if any).
set -uo pipefail
dir="${1:?usage: hack/pg/down.sh DIR}"
[ -d "$dir" ] || exit 0
if [ -f "$dir/pgbin" ] && [ -d "$dir/data" ]; then
  run_as_pg=()
  [ "$(id -u)" = 0 ] && run_as_pg=(runuser -u postgres --)
  "${run_as_pg[@]}" "$(cat "$dir/pgbin")/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
    || "${run_as_pg[@]}" "$(cat "$dir/pgbin")/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
fi
rm -rf "$dir"
