#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on loopback, installing Debian's
# postgresql first if it is missing. Prints the admin URI on stdout
# (postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable); everything
# else goes to stderr. Stop it with stop.sh PG_DIR.
#
#   PG_DIR    state dir (data, socket, log, pid)    default .local/postgres
#   PG_PORT   port on 127.0.0.1                      default 15432
#   PG_DURABLE  set to 1 to keep fsync and synchronous commits on (the
#             tests turn them off; a benchmark of PostgreSQL keeps them)
#
# PostgreSQL refuses to run as root: as root, the cluster runs as the
# postgres user the Debian package creates (or one made here if missing).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PG_DIR=${PG_DIR:-$HERE/../.local/postgres}
PG_PORT=${PG_PORT:-15432}
PG_START_TIMEOUT=${PG_START_TIMEOUT:-60}
log() { echo "start-postgres: $*" >&2; }

bindir() { ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1; }
if [[ -z $(bindir) ]]; then
  log "installing postgresql"
  apt-get install -y -q postgresql > /dev/null 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q postgresql > /dev/null; }
fi
BIN=$(bindir)
[[ -n $BIN ]] || { log "no PostgreSQL binaries under /usr/lib/postgresql"; exit 1; }

mkdir -p "$PG_DIR"
PG_DIR=$(cd "$PG_DIR" && pwd)
as=()
if [[ $(id -u) -eq 0 ]]; then
  id postgres > /dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  chown -R postgres "$PG_DIR"
  # The user must be able to reach the directory.
  d=$PG_DIR
  while [[ $d != / ]]; do chmod o+x "$d" 2> /dev/null || true; d=$(dirname "$d"); done
  as=(runuser -u postgres --)
fi

if [[ ! -f $PG_DIR/data/PG_VERSION ]]; then
  log "initdb in $PG_DIR/data"
  "${as[@]}" "$BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 > "$PG_DIR/initdb.log" 2>&1 ||
    { tail -n 20 "$PG_DIR/initdb.log" >&2; exit 1; }
fi
# Durability is not what the tests are about: no fsync, unless PG_DURABLE.
opts="-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200"
[[ ${PG_DURABLE:-} == 1 ]] || opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
"${as[@]}" "$BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t "$PG_START_TIMEOUT" -o "$opts" \
  start > /dev/null || { tail -n 20 "$PG_DIR/postgres.log" >&2; exit 1; }
head -n 1 "$PG_DIR/data/postmaster.pid" > "$PG_DIR/postgres.pid"
log "PostgreSQL ready on 127.0.0.1:$PG_PORT"
echo "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
