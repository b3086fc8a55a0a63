#!/bin/bash
# One run at a fixed publish rate: the daemon's CPU per 10,000 events and the latency from publish to commit; then
# the latency to "handed to the store" (the contacts' created_at, before their transaction ran), the transactions
# the run made, their events on average, and how much of the run's wall time the writer spent in one; and the CPU
# the publisher and the watcher took, since they share the machine with the daemon and the broker.
# This is how the commit-interval figures in Docs/STORE.md and Docs/BENCHMARKS.md were measured (runs of different
# settings alternated by hand, since the machine is noisy).
#
#   AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F scripts/bench/fixed-rate.sh RATE SECONDS [CONFIG]
#
# Needs a running broker (`scripts/rabbitmq-node.sh start DIR` prints its URL last) and release builds of
# crm-ingest and crm-ingest-bench (`swift build -c release --product ...`). CONFIG is a daemon configuration
# (default: the embedded one); BENCH_DAEMON picks another daemon binary, BENCH_TOOL another crm-ingest-bench. The
# daemon runs on a fresh data folder, in a temporary directory that is removed at the end; everything started here
# is stopped by its pid.
set -euo pipefail
rate=${1:?usage: fixed-rate.sh RATE SECONDS [CONFIG]}
seconds=${2:?usage: fixed-rate.sh RATE SECONDS [CONFIG]}
config=${3:-}
url=${AMQP_URL:?set AMQP_URL to the broker}
root=$(cd "$(dirname "$0")/../.." && pwd)
daemon=${BENCH_DAEMON:-$root/.build/release/crm-ingest}
tool=${BENCH_TOOL:-$root/.build/release/crm-ingest-bench}
work=$(mktemp -d /tmp/crm-fixed-rate.XXXXXX)
daemon_pid= watcher_pid=
cleanup() {
    [ -n "$watcher_pid" ] && kill "$watcher_pid" 2>/dev/null || true
    if [ -n "$daemon_pid" ]; then kill -TERM "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
. "$root/scripts/bench/daemon-lib.sh"
start_daemon "$daemon" "$url" "$work" "$config"
count=$((rate * seconds))
"$tool" latency-watch --database "$work/data/crm.sqlite" --count "$count" --output "$work/visible" --interval-ms 1 > "$work/watcher.json" &
watcher_pid=$!
# The writer's transactions so far: count, events and seconds (crm_ingest_store_transaction_*).
transactions() {
    curl -s "127.0.0.1:$port/metrics" | awk '
        /^crm_ingest_store_transaction_seconds_count/ {n = $2} /^crm_ingest_store_transaction_seconds_sum/ {s = $2}
        /^crm_ingest_store_transaction_events_total/ {e = $2} END {print n + 0, e + 0, s + 0}'
}
cpu_before=$(awk '{print $14 + $15}' "/proc/$daemon_pid/stat")
tx_before=$(transactions); started=$(date +%s.%N)
"$tool" latency-publish --url "$url" --queue crm.events --rate "$rate" --seconds "$seconds" --times "$work/times" > "$work/publisher.json"
wait "$watcher_pid"; watcher_pid=
cpu_after=$(awk '{print $14 + $15}' "/proc/$daemon_pid/stat")
tx_after=$(transactions); ended=$(date +%s.%N)
ticks=$(getconf CLK_TCK)
report=$("$tool" latency-report --times "$work/times" --visible "$work/visible")
handed=$("$tool" latency-report --times "$work/times" --database "$work/data/crm.sqlite")
python3 - "$report" "$rate" "$seconds" "$cpu_before" "$cpu_after" "$ticks" "${config:-embedded}" "$handed" \
    "$tx_before" "$tx_after" "$started" "$ended" "$(tail -1 "$work/publisher.json")" "$(tail -1 "$work/watcher.json")" <<'PY'
import json, sys
report, rate, seconds, before, after, ticks, config, handed, tx_before, tx_after, started, ended, publisher, watcher = sys.argv[1:]
r = json.loads(report)
h = json.loads(handed)
n, e, s = (b - a for a, b in zip(map(float, tx_before.split()), map(float, tx_after.split())))
cpu = (float(after) - float(before)) / float(ticks) / (int(rate) * int(seconds)) * 10_000
print(f"rate {int(rate):,}/s for {seconds} s, config {config}: daemon CPU {cpu:.3f} s per 10,000 events; "
      f"publish -> commit p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms, missing {r['missing']}")
print(f"  publish -> handed to the store p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms; {n:,.0f} transactions of "
      f"{e / max(n, 1):.1f} events, the writer in a transaction {s / (float(ended) - float(started)):.0%} of the time")
# A crm-ingest-bench from before 2026-12-06 does not report its CPU.
tools = [json.loads(line).get("cpu_seconds") for line in (publisher, watcher)]
print("  CPU of the measuring tools: " + ", ".join(f"{name} {'n/a' if cpu is None else f'{cpu:.2f} s'}"
                                                  for name, cpu in zip(("publisher", "watcher"), tools)))
PY
