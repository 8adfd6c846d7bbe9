#!/usr/bin/env bash
# Usage: hack/sqlx/cli.sh — prints the bin directory of sqlx-cli (`sqlx`, `cargo-sqlx`) on stdout.
# The version is the sqlx in Cargo.lock, so the CLI always matches the macros' query data format.
# Built once from crates.io (`cargo install`, several minutes on 2 cores) and cached under
# ~/.cache/rostersync keyed by that version; a warm cache returns at once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

version="$(awk '$0 == "name = \"sqlx\"" { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")"
[ -n "$version" ] || { echo "sqlx/cli.sh: no sqlx in Cargo.lock" >&2; exit 1; }
cache_root="${ROSTERSYNC_CACHE:-$HOME/.cache/rostersync}"
cache="$cache_root/sqlx-cli-$version"
bin="$cache/bin"

complete() { [ -x "$bin/sqlx" ] && [ -x "$bin/cargo-sqlx" ]; }
if complete; then echo "$bin"; exit 0; fi

echo "sqlx/cli.sh: building sqlx-cli $version (once; cached in $cache)" >&2
mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root/sqlx-cli-$version.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# Outside the repository, so that its .cargo/config.toml does not apply to this build.
(cd "$cache_root" && cargo install sqlx-cli --locked --no-default-features --features postgres,rustls \
  --version "=$version" --root "$tmp" --quiet >&2)
rm -rf "$cache" && mv "$tmp" "$cache"
trap - EXIT
complete || { echo "sqlx/cli.sh: sqlx-cli installed but not found in $bin" >&2; exit 1; }
echo "$bin"
