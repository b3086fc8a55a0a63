#!/bin/bash
# One drain of the RabbitMQ scenario, watched from outside: publishes EVENTS persistent default-format events
# (20,000 contacts, all 12 types) into an empty `crm.events`, starts the daemon on a fresh data folder, and every half
# second prints the events settled and the rate over that half second, the machine's busy share (of 100% a core),
# the broker's CPU, the daemon's four busiest threads, and the daemon's transactions (count, events on average,
# share of the wall time spent in one). At the end, for the whole drain (from the first settled event to the last,
# read every 50 ms as `make bench` does): the rate, the CPU of the machine, the broker and the daemon, /proc/stat's
# split, and the bytes the daemon and the broker wrote per event. The drain figures of Docs/BENCHMARKS.md
# (2026-12-07, morning) were measured with this script's first version, which read only every half second.
#
#   scripts/bench/drain-observe.sh NODE_DIR [CONFIG]
#
# NODE_DIR is a running broker's folder (`scripts/rabbitmq-node.sh start NODE_DIR`; its `env` file gives the URL
# and the broker's pid). CONFIG defaults to Config/crm-ingest.yaml, the one `make bench` drains with; another must
# keep the source `app-events` on the queue `crm.events`. BENCH_DAEMON picks another daemon binary: a wrapper script
# works if it `exec`s the daemon (so that the pid is the daemon's) and, to run it under `chrt`, passes
# `--cpu-scheduling inherit` (the daemon sets SCHED_BATCH otherwise). BENCH_TOOL picks another crm-ingest-bench,
# BENCH_EVENTS the count (200,000). The daemon's folder is a temporary directory under TMPDIR, removed at the end
# (its log is printed first if the run fails); the daemon is stopped by its pid.
set -euo pipefail
node=${1:?usage: drain-observe.sh NODE_DIR [CONFIG]}
root=$(cd "$(dirname "$0")/../.." && pwd)
config=${2:-$root/Config/crm-ingest.yaml}
url=$(sed -n 's/^AMQP_URL=//p' "$node/env")
broker_pid=$(sed -n 's/^SERVER_PID=//p' "$node/env")
if ! [[ $broker_pid =~ ^[0-9]+$ ]] || ! kill -0 "$broker_pid" 2>/dev/null; then
    echo "no running broker in $node (SERVER_PID '$broker_pid')" >&2
    exit 1
fi
daemon=${BENCH_DAEMON:-$root/.build/release/crm-ingest}
tool=${BENCH_TOOL:-$root/.build/release/crm-ingest-bench}
events=${BENCH_EVENTS:-200000}
left=$("$root/scripts/rabbitmq-node.sh" ctl "$node" list_queues name messages 2>/dev/null | awk '$1 == "crm.events" {print $2}')
if [ -n "$left" ] && [ "$left" != 0 ]; then
    echo "crm.events holds $left messages already; purge it first: scripts/rabbitmq-node.sh ctl $node purge_queue crm.events" >&2
    exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/crm-drain-observe.XXXXXX")
daemon_pid=
cleanup() {
    local status=$?
    if [ -n "$daemon_pid" ]; then kill -TERM "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
    if [ "$status" != 0 ] && [ -f "$work/daemon.log" ]; then echo "the daemon's log ends:" >&2; tail -5 "$work/daemon.log" >&2; fi
    rm -rf "$work"
}
trap cleanup EXIT
"$tool" publish --url "$url" --queue crm.events --events "$events" --contacts 20000 > /dev/null
. "$root/scripts/bench/daemon-lib.sh"
start_daemon "$daemon" "$url" "$work" "$config"
python3 - "$daemon_pid" "$broker_pid" "$port" "$events" "$root/scripts/bench" <<'PY'
import os, re, sys, time, urllib.request

daemon, broker, port, count = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
sys.path.insert(0, sys.argv[5])
from metrics_text import settled  # the count bench.py's Daemon.settled takes
tick = os.sysconf("SC_CLK_TCK")
cores = os.cpu_count()


def metrics():
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def transactions(text):
    """Transactions, their events and their seconds so far."""
    def total(name):
        return sum(float(v) for v in re.findall(r'^' + name + r'(?:\{[^}]*\})? (\S+)$', text, re.M))
    return (total("crm_ingest_store_transaction_seconds_count"), total("crm_ingest_store_transaction_events_total"),
            total("crm_ingest_store_transaction_seconds_sum"))


def machine():
    """/proc/stat's first eight fields: user nice system idle iowait irq softirq steal."""
    return list(map(int, open("/proc/stat").readline().split()[1:9]))


def ticks(stat_path):
    """utime + stime of a /proc/.../stat (the process's covers its threads, ended ones included)."""
    fields = open(stat_path).read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def threads(pid):
    """CPU ticks by thread id, with the thread's name."""
    by_tid = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            by_tid[tid] = (open(f"/proc/{pid}/task/{tid}/comm").read().strip(), ticks(f"/proc/{pid}/task/{tid}/stat"))
        except OSError:
            pass  # the thread ended
    return by_tid


def written(pid):
    return int(re.search(r"write_bytes: (\d+)", open(f"/proc/{pid}/io").read()).group(1))


def busy(before, after):
    """Busy share of the machine, in % of one core (200% = two cores busy)."""
    delta = [b - a for a, b in zip(before, after)]
    return (1 - (delta[3] + delta[4]) / max(1, sum(delta))) * 100 * cores


def sample(text):
    return dict(time=time.monotonic(), settled=settled(text), tx=transactions(text), machine=machine(),
                broker=ticks(f"/proc/{broker}/stat"), daemon=ticks(f"/proc/{daemon}/stat"), threads=threads(daemon))


def alive():
    try:
        os.kill(daemon, 0)
        return True
    except ProcessLookupError:
        return False


print(f"(busy and CPU shares in % of one core; this machine has {cores} cores)")
previous = start = None
progress = (time.monotonic(), 0)
polls = 0
while True:
    if not alive():
        sys.exit("the daemon exited during the drain")
    text = metrics()
    done = settled(text)
    now = time.monotonic()
    if done != progress[1]:
        progress = (now, done)
    elif now - progress[0] > 30:
        sys.exit(f"nothing settled for 30 s at {done:,} of {count:,} (another source or queue in CONFIG, or filtered events?)")
    if start is None and done > 0:
        start = sample(text)
        start.update(daemon_written=written(daemon), broker_written=written(broker))
        previous = start
    polls += 1
    if previous is not None and (polls % 10 == 0 or done >= count):
        current = sample(text)
        seconds = current["time"] - previous["time"]
        if seconds > 0:
            tx = [b - a for a, b in zip(previous["tx"], current["tx"])]
            top = sorted(((cpu - previous["threads"].get(tid, (name, cpu))[1], name) for tid, (name, cpu) in current["threads"].items()),
                         reverse=True)[:4]
            print(f"{current['settled']:9,} {(current['settled'] - previous['settled']) / seconds:8,.0f}/s"
                  f" busy {busy(previous['machine'], current['machine']):4.0f}%"
                  f" broker {(current['broker'] - previous['broker']) / tick / seconds * 100:4.0f}%"
                  f" | {' '.join(f'{name}={cpu / tick / seconds * 100:.0f}%' for cpu, name in top)}"
                  f" | tx {tx[0]:.0f}, {tx[1] / max(1, tx[0]):.0f} events each, in one {tx[2] / seconds * 100:.0f}% of the time", flush=True)
        previous = current
    if done >= count:
        break
    time.sleep(0.05)
end = previous
seconds = end["time"] - start["time"]
drained = end["settled"] - start["settled"]
if seconds <= 0 or drained <= 0:
    sys.exit("the drain was shorter than one reading; raise BENCH_EVENTS")
print(f"drain: {drained / seconds:,.0f} events/s; machine busy {busy(start['machine'], end['machine']):.0f}% of {cores * 100}%;"
      f" broker {(end['broker'] - start['broker']) / tick / seconds * 100:.0f}%; daemon {(end['daemon'] - start['daemon']) / tick / seconds * 100:.0f}%")
delta = [b - a for a, b in zip(start["machine"], end["machine"])]
print("machine: " + ", ".join(f"{name} {value / sum(delta) * 100 * cores:.0f}%" for name, value in
                              zip("user nice system idle iowait irq softirq steal".split(), delta)))
print(f"written per event: daemon {(written(daemon) - start['daemon_written']) / drained:,.0f} bytes,"
      f" broker {(written(broker) - start['broker_written']) / drained:,.0f} bytes")
PY
