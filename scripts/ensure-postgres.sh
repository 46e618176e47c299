#!/usr/bin/env bash
# Make sure a PostgreSQL cluster runs on this machine with role `leadpipe` (password `leadpipe`, SUPERUSER, LOGIN:
# the tests create and drop a database per test) and database `leadpipe`. Idempotent; installs Debian's
# postgresql package when missing (needs root). Exports nothing: prints the URL as the only line on stdout.
set -euo pipefail

role=leadpipe password=leadpipe db=leadpipe
cluster="${LEADPIPE_PG_CLUSTER:-main}"  # another name only to try this script beside a cluster in use
say() { echo "ensure-postgres: $*" >&2; }
url_for() { echo "postgresql://${role}:${password}@127.0.0.1:$1/${db}"; }

# Fast path: already usable.
if [ "$cluster" = main ] && command -v psql >/dev/null 2>&1 && PGCONNECT_TIMEOUT=3 psql "$(url_for 5432)" -tAc 'select 1' >/dev/null 2>&1; then
  url_for 5432
  exit 0
fi

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    say "need root for: $*"; exit 1
  fi
}

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  say "installing PostgreSQL from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c {found=1} END {exit !found}'; then
  say "creating cluster $version/$cluster"
  as_root pg_createcluster "$version" "$cluster" >/dev/null
fi
port="$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c {print $3}')"
status="$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c {print $4}')"
if [ "$status" != "online" ]; then
  say "starting cluster $version/$cluster on port $port"
  as_root pg_ctlcluster "$version" "$cluster" start
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$port" || { say "PostgreSQL $version does not answer on 127.0.0.1:$port"; exit 1; }

psql_admin() { as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"; }
psql_admin -d postgres <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN
    CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD '${password}';
  END IF;
END
\$\$;
SQL
if [ "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '${db}'")" != 1 ]; then
  psql_admin -d postgres -c "CREATE DATABASE ${db} OWNER ${role}"
fi
PGCONNECT_TIMEOUT=5 psql "$(url_for "$port")" -tAc 'select 1' >/dev/null
url_for "$port"
