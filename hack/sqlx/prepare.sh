#!/usr/bin/env bash
# Usage: hack/sqlx/prepare.sh [--check]
# Regenerates .sqlx/, the query data that sqlx's compile-time checked macros (`sqlx::query!` and
# friends) build against offline (.cargo/config.toml sets SQLX_OFFLINE=true), by describing every
# such query against a scratch database migrated with migrations/. Run it after adding or changing a
# query or a migration, and commit .sqlx/ (docs/development.md).
#   --check  verify instead that the committed .sqlx/ matches the code (hack/test.sh runs this); exits
#            non-zero, saying what to run, when a query's data is missing, differs or is stale.
# Uses the Postgres in DATABASE_URL when it is reachable (in a new database there, dropped at the end),
# otherwise starts a private one (hack/pg/up.sh) and stops it at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
log() { echo "sqlx/prepare.sh: $*" >&2; }

check=()
case "${1:-}" in
  "") ;;
  --check) check=(--check) ;;
  *) echo "usage: hack/sqlx/prepare.sh [--check]" >&2; exit 2 ;;
esac

bin="$("$root/hack/sqlx/cli.sh")"
export PATH="$bin:$PATH"

state="$(mktemp -d /tmp/rostersync-sqlx.XXXXXX)"
chmod 755 "$state"
scratch=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ -n "$scratch" ] && sqlx database drop -y --database-url "$scratch" >/dev/null 2>&1
  "$root/hack/pg/down.sh" "$state/pg" >/dev/null 2>&1 || true
  rm -rf "$state"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$root/hack/pg/up.sh" "$state/pg"
# shellcheck disable=SC1091
source "$state/pg/env"
scratch="$(python3 - "$DATABASE_URL" <<'PY'
import secrets, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
print(url._replace(path="/rostersync_sqlx_" + secrets.token_hex(4)).geturl())
PY
)"
sqlx database create --database-url "$scratch"
sqlx migrate run --source "$root/migrations" --database-url "$scratch" >/dev/null

# `cargo sqlx prepare` touches the crate's root source files (src/lib.rs, src/main.rs, tests/*.rs, ...)
# so that its `cargo check` expands the macros again. Their times are put back afterwards: otherwise
# the next `cargo build` or `cargo test` would recompile the whole crate and all its tests for nothing.
cargo metadata --no-deps --format-version 1 >"$state/metadata.json"
mtimes() { # save|restore
  python3 - "$1" "$state/metadata.json" "$state/mtimes.json" <<'PY'
import json, os, sys
mode, metadata, saved = sys.argv[1:]
if mode == "save":
    meta = json.load(open(metadata))
    paths = {t["src_path"] for p in meta["packages"] for t in p["targets"]}
    json.dump({p: [os.stat(p).st_atime_ns, os.stat(p).st_mtime_ns] for p in paths if os.path.exists(p)},
              open(saved, "w"))
else:
    for path, times in json.load(open(saved)).items():
        if os.path.exists(path):
            os.utime(path, ns=tuple(times))
PY
}
mtimes save

# Lib and bins: what `cargo check` builds by default. If a test ever uses the macros, add
# `--all-targets` after `--` here.
status=0
cargo sqlx prepare "${check[@]}" --database-url "$scratch" -- --locked || status=$?
mtimes restore

if [ "${#check[@]}" = 0 ]; then
  [ "$status" = 0 ] || { log "failed (see the errors above)"; exit "$status"; }
  log ".sqlx/ regenerated ($(find .sqlx -name 'query-*.json' | wc -l) queries); commit it"
  exit 0
fi

fix="run hack/sqlx/prepare.sh (it regenerates .sqlx/ from a scratch database) and commit .sqlx/; see docs/development.md"
if [ "$status" != 0 ]; then
  log "FAILED: the committed .sqlx/ does not match the queries in the code, or a query does not compile"
  log "against the migrated schema (see the errors above). Fix the query if needed, then $fix"
  exit 1
fi
# `prepare --check` only warns about data of queries that no longer exist: fail on those too.
target_dir="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["target_directory"])' "$state/metadata.json")"
stale="$(comm -23 <(cd .sqlx && ls query-*.json 2>/dev/null | sort) \
                  <(cd "$target_dir/sqlx-prepare-check" && ls query-*.json 2>/dev/null | sort))"
if [ -n "$stale" ]; then
  log "FAILED: .sqlx/ holds data of queries that are no longer in the code:"
  echo "$stale" | sed 's/^/  .sqlx\//' >&2
  log "$fix"
  exit 1
fi
log ".sqlx/ matches the code ($(find .sqlx -name 'query-*.json' | wc -l) queries)"
