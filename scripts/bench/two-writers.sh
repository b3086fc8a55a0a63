#!/bin/bash
# The daemon's latency while `crm-ingest ingest` writes the same SQLite file (Docs/STORE.md, "Another writer on
# the same file"). The daemon takes registrations at a fixed rate; after DELAY seconds `ingest` applies LINES
# default-format lines to its database. Prints how long `ingest` took, the latency from publish to commit of the
# events published while it ran and of the others, and the daemon's transactions meanwhile.
#
#   AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F scripts/bench/two-writers.sh RATE SECONDS DELAY LINES [INGEST-OPTIONS...]
#
# e.g. `... two-writers.sh 5000 40 15 200000 --batch-size 2000`. Needs a running broker (`scripts/rabbitmq-node.sh
# start DIR` prints its URL last) and release builds of crm-ingest and crm-ingest-bench. BENCH_DAEMON picks another
# daemon binary, INGEST_BIN another one for `ingest`, BENCH_TOOL another crm-ingest-bench. Everything runs in a
# temporary directory, removed at the end; everything started here is stopped by its pid.
set -euo pipefail
usage="usage: two-writers.sh RATE SECONDS DELAY LINES [INGEST-OPTIONS...]"
rate=${1:?$usage} seconds=${2:?$usage} delay=${3:?$usage} lines=${4:?$usage}
shift 4
url=${AMQP_URL:?set AMQP_URL to the broker}
root=$(cd "$(dirname "$0")/../.." && pwd)
daemon=${BENCH_DAEMON:-$root/.build/release/crm-ingest}
ingest=${INGEST_BIN:-$daemon}
tool=${BENCH_TOOL:-$root/.build/release/crm-ingest-bench}
work=$(mktemp -d /tmp/crm-two-writers.XXXXXX)
daemon_pid= watcher_pid= publisher_pid=
cleanup() {
    for pid in $publisher_pid $watcher_pid; do kill "$pid" 2>/dev/null || true; done
    if [ -n "$daemon_pid" ]; then kill -TERM "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
. "$root/scripts/bench/daemon-lib.sh"
"$tool" lines --events "$lines" --output "$work/lines.jsonl" > /dev/null
start_daemon "$daemon" "$url" "$work"
"$tool" latency-watch --database "$work/data/crm.sqlite" --count $((rate * seconds)) --output "$work/visible" --interval-ms 1 > /dev/null &
watcher_pid=$!
"$tool" latency-publish --url "$url" --queue crm.events --rate "$rate" --seconds "$seconds" --times "$work/times" > /dev/null &
publisher_pid=$!
sleep "$delay"
curl -sf "127.0.0.1:$port/metrics" > "$work/metrics-before"
started=$(date +%s%6N)
CRM_INGEST_DATA=$work/data AMQP_URL=$url "$ingest" ingest "$@" "$work/lines.jsonl" > "$work/ingest.out" 2> "$work/ingest.err" || true
ended=$(date +%s%6N)
curl -sf "127.0.0.1:$port/metrics" > "$work/metrics-after"
wait "$publisher_pid"; publisher_pid=
wait "$watcher_pid"; watcher_pid=
python3 - "$work" "$started" "$ended" "$(tail -1 "$work/ingest.out")" <<'PY'
import re, sys
work, started, ended, summary = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
times = dict(line.split() for line in open(f"{work}/times"))
visible = dict(line.split() for line in open(f"{work}/visible"))
during, outside, missing = [], [], 0
for key, sent in times.items():
    if key not in visible:
        missing += 1
        continue
    latency = (int(visible[key]) - int(sent)) / 1000
    (during if started <= int(sent) <= ended else outside).append(latency)
def describe(values):
    values.sort()
    if not values:
        return "none"
    at = lambda p: values[min(len(values) - 1, int(len(values) * p))]
    return f"{len(values)} events, p50 {at(0.5):.1f} ms, p99 {at(0.99):.1f} ms, max {values[-1]:.1f} ms"
def metric(name, path):
    match = re.search(r"^" + name + r"\{[^}]*\} (\S+)$", open(path).read(), re.M)
    return float(match.group(1)) if match else 0.0
transactions = metric("crm_ingest_store_transaction_seconds_count", f"{work}/metrics-after") - metric("crm_ingest_store_transaction_seconds_count", f"{work}/metrics-before")
print(f"ingest: {(ended - started) / 1e6:.2f} s, {summary}")
print(f"published while ingest ran: {describe(during)}; daemon transactions meanwhile: {transactions:.0f}")
print(f"published before or after: {describe(outside)}; never seen: {missing}")
PY
