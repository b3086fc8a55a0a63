#!/usr/bin/env bash
# Starts and stops a throw-away PostgreSQL server (Debian's postgresql package) for the integration tests, bound to
# 127.0.0.1 on a free port, its data and socket in one folder.
#
# Usage:
#   scripts/postgres-node.sh start DIR   start a server whose state (data, socket, log, env) lives in DIR
#   scripts/postgres-node.sh stop  DIR   stop it (fast shutdown, then SIGKILL); safe to call twice
#
# start DIR
#   initdb refuses to run as root: when run as root, DIR is given to the `postgres` user (created by Debian's
#   package) and the server runs as that user (runuser). A password-protected role `crm` owns a database `crm`;
#   connections need the password (MD5 for crm, SCRAM-SHA-256 for postgres), also over loopback. `crm` may create
#   databases (one per test) and roles.
#   Writes DIR/env, KEY=VALUE lines: PG_PORT, PG_PID, PG_USER, PG_PASSWORD, PG_DATABASE,
#   PG_URL (postgres://crm:PASSWORD@127.0.0.1:PORT/crm). PG_URL is the last line on stdout.
#   Waits at most POSTGRES_START_TIMEOUT seconds (default 30). POSTGRES_SERVER_OPTIONS adds server settings after
#   the defaults, which it may override (`-c max_locks_per_transaction=10`: a test of a small lock table).
#
# stop DIR
#   `pg_ctl stop -m fast` as the server's user, then SIGKILL to the recorded pid after 10 s. Leaves DIR in place.
set -euo pipefail

START_TIMEOUT=${POSTGRES_START_TIMEOUT:-30}

die() { echo "postgres-node: $*" >&2; exit 1; }

bindir() {
    local initdb
    initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)
    [ -n "$initdb" ] || die "no PostgreSQL server found under /usr/lib/postgresql (scripts/install-deps.sh test installs it)"
    dirname "$initdb"
}

# Runs a command as the user who owns the server (postgres when we are root, else ourselves).
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    local dir=$1 bin port password
    bin=$(bindir)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -f "$dir/env" ] && die "$dir already holds a server (stop it first)"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "no postgres user (Debian's postgresql package creates it)"
        chown postgres: "$dir"
    fi
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    printf '%s\n' "$password" >"$dir/pwfile"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/pwfile"
    chmod 600 "$dir/pwfile"
    # `md5` in pg_hba.conf asks each role for its password the way it is stored: SCRAM-SHA-256 for postgres (the
    # server's default), MD5 for crm (see below).
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=md5 --pwfile="$dir/pwfile" \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$dir/initdb.log")"
    for attempt in 1 2 3; do
        port=$(free_port)
        if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$START_TIMEOUT" \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c shared_buffers=64MB ${POSTGRES_SERVER_OPTIONS:-}" start >/dev/null 2>&1; then
            break
        fi
        # Another process may have taken the port between choosing and binding it: try another.
        grep -q "could not bind" "$dir/postgres.log" 2>/dev/null || die "postgres did not start: $(tail -5 "$dir/postgres.log")"
        port=""
    done
    [ -n "$port" ] || die "no free port after 3 attempts"
    local pid
    pid=$(head -1 "$dir/data/postmaster.pid")
    # The role and database the tests use, with a password; the superuser's password is the pwfile's. crm's password
    # is stored as MD5: a SCRAM handshake costs 4,096 PBKDF2 rounds on each side, and the debug-built tests open
    # hundreds of connections at once on two cores (SCRAM is tested with a role of its own, which crm may create).
    # crm may turn track_activities off for its own sessions (PostgreSQL 15 and later), as a test of a server
    # configured so needs.
    PGPASSWORD=$password "$bin/../bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
        -c "SET password_encryption = 'md5'" -c "CREATE ROLE crm LOGIN CREATEDB CREATEROLE PASSWORD '$password'" \
        -c "CREATE DATABASE crm OWNER crm" \
        -c "DO \$\$ BEGIN IF current_setting('server_version_num')::int >= 150000 THEN EXECUTE 'GRANT SET ON PARAMETER track_activities TO crm'; END IF; END \$\$" >/dev/null \
        || { stop "$dir"; die "could not create the crm role and database"; }
    cat >"$dir/env" <<ENV
PG_PORT=$port
PG_PID=$pid
PG_USER=crm
PG_PASSWORD=$password
PG_DATABASE=crm
PG_URL=postgres://crm:$password@127.0.0.1:$port/crm
ENV
    echo "postgres://crm:$password@127.0.0.1:$port/crm"
}

stop() {
    local dir=$1 bin pid=""
    [ -d "$dir/data" ] || return 0
    bin=$(bindir)
    [ -f "$dir/data/postmaster.pid" ] && pid=$(head -1 "$dir/data/postmaster.pid")
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 10 stop >/dev/null 2>&1 || true
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$dir/env"
}

case "${1:-}" in
    start) [ -n "${2:-}" ] || die "usage: $0 start DIR"; start "$2" ;;
    stop) [ -n "${2:-}" ] || die "usage: $0 stop DIR"; stop "$2" ;;
    *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
