#!/usr/bin/env bash
# Starts and stops a throw-away RabbitMQ node for the integration tests, without systemd and
# without touching the system's RabbitMQ (/var/lib/rabbitmq, port 5672) or its epmd (port 4369).
#
# Usage:
#   scripts/rabbitmq-node.sh start  DIR          start a node whose whole state lives in DIR
#   scripts/rabbitmq-node.sh ctl    DIR ARGS...  run rabbitmqctl ARGS against that node
#   scripts/rabbitmq-node.sh pause  DIR          stop the RabbitMQ application (rabbitmqctl stop_app)
#   scripts/rabbitmq-node.sh resume DIR          start it again (start_app) and wait for the AMQP port
#   scripts/rabbitmq-node.sh stop   DIR          stop the node and its own epmd; safe to call twice
#
# start DIR
#   Creates DIR if missing and picks free TCP ports on 127.0.0.1 for AMQP, Erlang distribution
#   and a private epmd (ERL_EPMD_PORT), so that several nodes can run at once. Every listener
#   binds 127.0.0.1 only. The node is named crmtest-<random>@localhost; its Mnesia data, logs,
#   config (DIR/rabbitmq.conf; DIR/enabled_plugins enables only rabbitmq_consistent_hash_exchange,
#   which sharded sources need, and no management UI), pid file and Erlang cookie (HOME=DIR) are
#   all under DIR. The server runs in the background (its own session, output in
#   DIR/server.log) and start returns once `rabbitmqctl await_startup` says it is up (at most
#   60 s; on failure it prints the tail of the logs, kills what it started and exits 1).
#   Writes DIR/env, shell assignments a test can source or parse (KEY=VALUE, one a line):
#     AMQP_PORT, AMQP_URL (amqp://guest:guest@127.0.0.1:PORT/%2F), RABBITMQ_NODENAME, DIST_PORT,
#     ERL_EPMD_PORT, ERL_EPMD_ADDRESS, SERVER_PID (the beam.smp process), WRAPPER_PID (the
#     rabbitmq-server shell wrapper, the parent of SERVER_PID), plus HOME,
#     RABBITMQ_CONF_ENV_FILE and RABBITMQ_CTL_ERL_ARGS, which rabbitmqctl needs.
#   The AMQP URL is the last line on stdout. The default guest/guest user works because the
#   client connects over loopback. The vhost is spelled %2F (= "/") on purpose: librabbitmq's
#   amqp_parse_url, and so amqp-tools, read a bare trailing "/" as the empty vhost "" and the
#   login fails with "NOT_ALLOWED - vhost  not found"; crm-ingest's parser takes both.
#   FIXED_AMQP_PORT=5672 in the environment makes it use that AMQP port instead of a free one.
#   Calling start again on a DIR whose node was stopped restarts the same node: same ports,
#   same URL, same data (durable queues and persistent messages survive). That is the "real
#   process stop" variant of pause/resume: `stop DIR` then `start DIR`.
#
# ctl DIR ARGS...
#   Runs /usr/lib/rabbitmq/bin/rabbitmqctl -n NODENAME ARGS... with the node's environment,
#   e.g. `ctl DIR list_queues name messages messages_unacknowledged`. Refuses (exit 1) when
#   the node's process is not running, because rabbitmqctl would start an epmd of its own.
#
# pause DIR
#   `rabbitmqctl stop_app`: the RabbitMQ application stops, every client connection is closed
#   and the AMQP port stops accepting connections; the Erlang VM (and its data) stays up.
# resume DIR
#   `rabbitmqctl start_app`, then waits (at most 60 s) until the AMQP port accepts connections.
#
# stop DIR
#   `rabbitmqctl stop` and waits for the VM to exit; if it has not after 15 s, SIGTERM and then
#   SIGKILL to the recorded pids. Then kills the epmd this node started (the one listening on
#   its ERL_EPMD_PORT, never the system's). Leaves DIR in place: the caller removes it.
#
# Only Debian's rabbitmq-server package is needed (scripts/install-deps.sh test installs it).
# The /usr/sbin/rabbitmqctl wrapper is not used: as root it su's to the rabbitmq user and
# changes to /var/lib/rabbitmq; the scripts under /usr/lib/rabbitmq/bin are called directly.
set -euo pipefail

RABBIT_BIN=${RABBITMQ_BIN_DIR:-/usr/lib/rabbitmq/bin}
START_TIMEOUT=${RABBITMQ_NODE_START_TIMEOUT:-60}   # seconds; the override is for testing this script
STOP_TIMEOUT=15

die() { echo "rabbitmq-node: $*" >&2; exit 1; }

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Three distinct free ports on 127.0.0.1, all held open until all three are chosen. Ports in
# 35672-35682 are skipped: rabbitmqctl's own distribution listener uses that range.
free_ports() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$1" <<'EOF'
import socket, sys
held, ports = [], []
while len(ports) < int(sys.argv[1]):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    held.append(s)
    port = s.getsockname()[1]
    if not 35672 <= port <= 35682:
        ports.append(port)
print(" ".join(map(str, ports)))
EOF
    else
        local ports=() port
        while [ "${#ports[@]}" -lt "$1" ]; do
            port=$((20000 + RANDOM % 12000))
            [[ " ${ports[*]} " == *" $port "* ]] && continue
            port_in_use "$port" || ports+=("$port")
        done
        echo "${ports[*]}"
    fi
}

port_in_use() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

port_accepts() {
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
}

# Reads DIR/env into this shell and exports it, so rabbitmqctl sees the node's environment.
load_env() {
    [ -f "$DIR/env" ] || die "$DIR/env not found: no node was started in $DIR"
    set -a
    # shellcheck source=/dev/null
    . "$DIR/env"
    set +a
}

ctl() { "$RABBIT_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"; }

node_running() { alive "${SERVER_PID:-}" || alive "${WRAPPER_PID:-}"; }

# The pids of the epmd listening on this node's epmd port, and only if it is an epmd.
epmd_pids() {
    local port=$1 pid
    {
        ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2
        # Fallback without ss: an epmd whose environment carries this port.
        for pid in $(pgrep -x epmd 2>/dev/null || true); do
            tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "ERL_EPMD_PORT=$port" && echo "$pid"
        done
    } | sort -u | while read -r pid; do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = epmd ] && echo "$pid"
    done
}

write_env() {
    {
        printf '%s=%q\n' \
            AMQP_PORT "$AMQP_PORT" \
            AMQP_URL "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2F" \
            RABBITMQ_NODENAME "$RABBITMQ_NODENAME" \
            DIST_PORT "$DIST_PORT" \
            ERL_EPMD_PORT "$ERL_EPMD_PORT" \
            ERL_EPMD_ADDRESS 127.0.0.1 \
            SERVER_PID "${SERVER_PID:-}" \
            WRAPPER_PID "${WRAPPER_PID:-}" \
            HOME "$DIR" \
            RABBITMQ_CONF_ENV_FILE "$DIR/rabbitmq-env.conf" \
            RABBITMQ_CTL_ERL_ARGS "-kernel inet_dist_use_interface {127,0,0,1}"
    } >"$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
}

print_logs() {
    local f
    for f in "$DIR/server.log" "$DIR"/log/*.log; do
        [ -f "$f" ] || continue
        echo "---- tail of $f" >&2
        tail -n 40 "$f" >&2
    done
}

cmd_start() {
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    [ -x "$RABBIT_BIN/rabbitmq-server" ] || die "$RABBIT_BIN/rabbitmq-server not found: apt-get install rabbitmq-server"

    if [ -f "$DIR/env" ]; then
        # A node was started here before: bring the same one back, on the same ports.
        load_env
        node_running && die "the node in $DIR is already running (pid ${SERVER_PID:-$WRAPPER_PID}); stop it first"
        local port
        for port in "$AMQP_PORT" "$DIST_PORT"; do
            port_in_use "$port" && die "port $port of the node in $DIR is taken by another process now"
        done
    else
        read -r AMQP_PORT DIST_PORT ERL_EPMD_PORT < <(free_ports 3)
        if [ -n "${FIXED_AMQP_PORT:-}" ]; then
            # `make run` wants the well-known port, so the default configuration finds the broker.
            port_in_use "$FIXED_AMQP_PORT" && die "port $FIXED_AMQP_PORT is taken"
            AMQP_PORT=$FIXED_AMQP_PORT
        fi
        RABBITMQ_NODENAME="crmtest-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')@localhost"
    fi
    SERVER_PID="" WRAPPER_PID=""

    if [ ! -f "$DIR/.erlang.cookie" ]; then
        (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F >"$DIR/.erlang.cookie")
    fi
    chmod 400 "$DIR/.erlang.cookie"
    mkdir -p "$DIR/mnesia" "$DIR/log"
    : >"$DIR/rabbitmq-env.conf"   # keeps /etc/rabbitmq/rabbitmq-env.conf out
    cat >"$DIR/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$AMQP_PORT
EOF
    # The x-consistent-hash exchange type of sharded sources (`shards: N`); Debian's package ships the plugin.
    echo '[rabbitmq_consistent_hash_exchange].' >"$DIR/enabled_plugins"
    rm -f "$DIR/rabbit.pid"
    write_env

    local began=$SECONDS
    (
        set -a
        # shellcheck source=/dev/null
        . "$DIR/env"
        set +a
        export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
            RABBITMQ_NODE_PORT="$AMQP_PORT" \
            RABBITMQ_DIST_PORT="$DIST_PORT" \
            RABBITMQ_MNESIA_BASE="$DIR/mnesia" \
            RABBITMQ_LOG_BASE="$DIR/log" \
            RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf" \
            RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config" \
            RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins" \
            RABBITMQ_PID_FILE="$DIR/rabbit.pid" \
            ERL_CRASH_DUMP="$DIR/erl_crash.dump"
        # Without this the distribution listener binds 0.0.0.0, whatever NODE_IP_ADDRESS says.
        export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
        cd "$DIR"
        # Its own session: a Ctrl-C or a signal to the test's process group does not reach it.
        exec setsid nohup "$RABBIT_BIN/rabbitmq-server" </dev/null >>"$DIR/server.log" 2>&1
    ) &
    WRAPPER_PID=$!
    write_env

    load_env
    local ok=""
    while [ $((SECONDS - began)) -lt "$START_TIMEOUT" ]; do
        alive "$WRAPPER_PID" || break
        if timeout 20 "$RABBIT_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" -q await_startup \
            --timeout $((START_TIMEOUT - (SECONDS - began) + 1)) >>"$DIR/ctl.log" 2>&1; then
            ok=1
            break
        fi
        sleep 0.5
    done
    if [ -z "$ok" ]; then
        echo "rabbitmq-node: the node in $DIR did not start within ${START_TIMEOUT}s" >&2
        print_logs
        [ -f "$DIR/rabbit.pid" ] && SERVER_PID=$(cat "$DIR/rabbit.pid")
        write_env
        cmd_stop >/dev/null 2>&1 || true
        exit 1
    fi
    SERVER_PID=$(cat "$DIR/rabbit.pid" 2>/dev/null || pgrep -P "$WRAPPER_PID" -x beam.smp || true)
    write_env
    echo "rabbitmq node $RABBITMQ_NODENAME started in $((SECONDS - began))s, data in $DIR" >&2
    echo "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2F"
}

cmd_stop() {
    [ -f "$DIR/env" ] || { echo "rabbitmq-node: no node in $DIR, nothing to stop" >&2; return 0; }
    load_env
    if node_running; then
        # `stop PIDFILE` also waits for the VM to exit.
        local pidfile=()
        [ -f "$DIR/rabbit.pid" ] && pidfile=("$DIR/rabbit.pid")
        timeout "$STOP_TIMEOUT" "$RABBIT_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" -q stop "${pidfile[@]}" \
            >>"$DIR/ctl.log" 2>&1 || true
        local pid
        for pid in "${SERVER_PID:-}" "${WRAPPER_PID:-}"; do
            alive "$pid" || continue
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
            if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
        done
        for _ in $(seq 50); do node_running || break; sleep 0.1; done
    fi
    local pid
    for pid in $(epmd_pids "$ERL_EPMD_PORT"); do
        kill -TERM "$pid" 2>/dev/null || true
    done
    echo "rabbitmq node $RABBITMQ_NODENAME stopped" >&2
}

cmd_ctl() {
    load_env
    node_running || die "the node in $DIR is not running"
    ctl "$@"
}

cmd_pause() {
    load_env
    node_running || die "the node in $DIR is not running"
    ctl -q stop_app
}

cmd_resume() {
    load_env
    node_running || die "the node in $DIR is not running"
    ctl -q start_app
    local began=$SECONDS
    until port_accepts "$AMQP_PORT"; do
        [ $((SECONDS - began)) -lt "$START_TIMEOUT" ] || { print_logs; die "AMQP port $AMQP_PORT did not open within ${START_TIMEOUT}s"; }
        sleep 0.2
    done
}

[ $# -ge 2 ] || usage
command=$1 DIR=$2
shift 2
case "$command" in
    start)  [ $# -eq 0 ] || usage; cmd_start ;;
    stop)   [ $# -eq 0 ] || usage; cmd_stop ;;
    ctl)    cmd_ctl "$@" ;;
    pause)  [ $# -eq 0 ] || usage; cmd_pause ;;
    resume) [ $# -eq 0 ] || usage; cmd_resume ;;
    *)      usage ;;
esac
