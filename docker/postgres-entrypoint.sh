#!/bin/sh
# Postgres from Debian's package with the official image's interface: POSTGRES_USER, POSTGRES_PASSWORD and
# POSTGRES_DB create the role and database on first start, the data lives in PGDATA, the command is
# `postgres [ARGS…]`. Listens on every address with password authentication unless ARGS say otherwise.
set -eu
bin=$(echo /usr/lib/postgresql/*/bin)
[ "${1:-}" = postgres ] && shift
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" >"$pwfile"
    "$bin/initdb" -D "$PGDATA" -U "${POSTGRES_USER:=postgres}" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    if [ "${POSTGRES_DB:=$POSTGRES_USER}" != postgres ]; then
        echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\"" | "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
    fi
fi
exec "$bin/postgres" -D "$PGDATA" "$@"
