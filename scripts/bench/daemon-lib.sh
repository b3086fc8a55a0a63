# Sourced by the bench scripts that run a daemon of their own (fixed-rate.sh, two-writers.sh).
#
#   start_daemon BINARY AMQP_URL WORK [CONFIG]
#
# Starts `BINARY run` in the background on a free loopback HTTP port, with its data in WORK/data and its log in
# WORK/daemon.log, and returns once /readyz answers 200. Sets daemon_pid (the caller stops it by that pid) and
# port; exits the script if the daemon exits first.
start_daemon() {
    local binary=$1 url=$2 work=$3 config=${4:-}
    port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    AMQP_URL=$url CRM_INGEST_DATA=$work/data CRM_INGEST_HTTP=127.0.0.1:$port "$binary" run ${config:+--config "$config"} > "$work/daemon.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 1 600); do
        curl -sf "127.0.0.1:$port/readyz" > /dev/null && return 0
        kill -0 "$daemon_pid" 2>/dev/null || { echo "the daemon exited:" >&2; tail -5 "$work/daemon.log" >&2; exit 1; }
        sleep 0.05
    done
    echo "the daemon was not ready within 30 s; see $work/daemon.log" >&2
    exit 1
}
