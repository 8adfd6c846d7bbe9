#!/usr/bin/env bash
# Usage: hack/pg/up.sh DIR
# Provides a Postgres for tests and writes DIR/env (source it: exports DATABASE_URL).
# If DATABASE_URL already points at a reachable server, that server is used as it is. Otherwise
# Debian's postgresql is installed when missing, and a private cluster is started under DIR on a free
# 127.0.0.1 port, run as the postgres user (Postgres refuses to run as root). Tests create a fresh
# database each from this URL.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib/common.sh"
dir="${1:?usage: hack/pg/up.sh DIR}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

if [ -n "${DATABASE_URL:-}" ] && command -v psql >/dev/null && psql "$DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1; then
  echo "export DATABASE_URL='$DATABASE_URL'" > "$dir/env"
  echo "pg/up.sh: using the reachable server in DATABASE_URL" >&2
  exit 0
fi

pgbin=""
find_pgbin() { pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"; [ -x "$pgbin/initdb" ]; }
if ! find_pgbin; then
  echo "pg/up.sh: installing Debian's postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  apt-get install -y -qq postgresql >&2
  find_pgbin || { echo "pg/up.sh: postgresql installed but initdb not found" >&2; exit 1; }
fi

run_as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  run_as_pg=(runuser -u postgres --)
  chown postgres "$dir"
fi

data="$dir/data" port="$(free_port)"
# Password authentication over TCP (as in production), so that tests prove what a credential can
# do: a district role's URL works with its password and not without. The Unix socket (the scripts'
# psql) trusts the local postgres user.
password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$password" > "$dir/pwfile"
chmod 600 "$dir/pwfile"
[ -n "${run_as_pg[*]}" ] && chown postgres "$dir/pwfile"
"${run_as_pg[@]}" "$pgbin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  --pwfile="$dir/pwfile" -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
  || { tail -n 20 "$dir/initdb.log" >&2; exit 1; }
cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 256MB
work_mem = 32MB
maintenance_work_mem = 256MB
CONF
# A port that was free when picked can be taken by another process before postgres binds it (tests
# start servers and connections in parallel): then it starts again on a new port, three times at most.
for attempt in 1 2 3; do
  "${run_as_pg[@]}" "$pgbin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start >/dev/null && break
  if [ "$attempt" -lt 3 ] && grep -q "Address already in use" "$dir/postgres.log"; then
    port="$(free_port)"
    echo "port = $port" >> "$data/postgresql.conf" # the last setting wins
    echo "pg/up.sh: another process took the port; starting again on $port" >&2
    continue
  fi
  echo "pg/up.sh: postgres did not start" >&2
  tail -n 30 "$dir/postgres.log" >&2
  exit 1
done
echo "$pgbin" > "$dir/pgbin"
rm -f "$dir/pwfile"
url="postgres://postgres:$password@127.0.0.1:$port/postgres"
echo "export DATABASE_URL='$url'" > "$dir/env"
echo "pg/up.sh: postgres ready at 127.0.0.1:$port" >&2
