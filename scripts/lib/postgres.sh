# Sourced: starts a private PostgreSQL server for a script, as the tests do.
# `pg_start` makes a cluster in a temporary folder (as the `postgres` user
# when run as root: the server refuses root) with logical replication on, on a
# free loopback port; sets `pg_port`, `pg_bin` and `pg_url DB`, and stops the
# server and removes the folder when the script exits (`pg_cleanup`, chained
# with `on_exit`). PostgreSQL's server package provides the programs
# (`apt-get install postgresql`), or SLUICE_PG_BIN names their folder.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

pg_start() {
  pg_bin="${SLUICE_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)}"
  if [ ! -x "$pg_bin/initdb" ]; then
    echo "PostgreSQL's server programs were not found: apt-get install postgresql" >&2
    return 1
  fi
  pg_dir=$(mktemp -d)
  pg_as_owner=()
  on_exit pg_cleanup
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$pg_dir"
    pg_as_owner=(runuser -u postgres --)
  fi
  pg_port=$(free_port)
  "${pg_as_owner[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U sluice --auth=trust --no-sync > /dev/null
  cat >> "$pg_dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pg_dir'
wal_level = logical
CONF
  "${pg_as_owner[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w start > /dev/null
}

pg_cleanup() {
  "${pg_as_owner[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop > /dev/null 2>&1 || true
  rm -rf "$pg_dir"
}

pg_url() { echo "postgresql://sluice@127.0.0.1:$pg_port/$1"; }

# psql DB ARGS...: psql on database DB of the private server, quietly.
psql() { "$pg_bin/psql" -q -X -v ON_ERROR_STOP=1 "$(pg_url "$1")" "${@:2}"; }
