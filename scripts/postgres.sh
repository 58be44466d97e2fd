#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the test suite and benchmarks.
#   scripts/postgres.sh start   install (Debian package) if absent, init, start; idempotent
#   scripts/postgres.sh url     print the connection URL
#   scripts/postgres.sh stop    stop it
set -euo pipefail
PORT="${FLEDGLING_PG_PORT:-54329}"
DATA="${FLEDGLING_PG_DIR:-/tmp/fledgling-pg-$PORT}"
URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

as_pg() {
  # initdb and postgres refuse to run as root.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    if ! BIN="$(find_bin)"; then
      echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
      BIN="$(find_bin)"
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
      useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    if [ ! -f "$DATA/PG_VERSION" ]; then
      mkdir -p "$DATA"
      [ "$(id -u)" = 0 ] && chown postgres "$DATA"
      as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
      as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
        -o "-h 127.0.0.1 -p $PORT -k $DATA -c fsync=off -c max_connections=200" start >/dev/null
    fi
    echo "postgres.sh: PostgreSQL running at $URL" >&2
    ;;
  url) echo "$URL" ;;
  stop)
    BIN="$(find_bin)"
    as_pg "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null || true
    ;;
  *) echo "usage: scripts/postgres.sh start|url|stop" >&2; exit 2 ;;
esac
