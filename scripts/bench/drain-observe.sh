#!/bin/bash
# One drain of the RabbitMQ scenario, watched from outside: publishes EVENTS persistent default-format events
# (20,000 contacts, all 12 types), starts the daemon on a fresh data folder, and every half second prints the
# events settled, the machine's busy share (of 200% on two cores), the broker's CPU, the daemon's four busiest
# threads, and the daemon's transactions (count, events on average, share of the wall time spent in one). At the
# end: the whole drain's rate and CPU shares, /proc/stat's split (user, system, idle, iowait, softirq, steal) and
# the bytes the daemon and the broker wrote per event. This is how the morning of 2026-12-07 in
# Docs/BENCHMARKS.md was measured.
#
#   scripts/bench/drain-observe.sh NODE_DIR [CONFIG]
#
# NODE_DIR is a running broker's folder (`scripts/rabbitmq-node.sh start NODE_DIR`; its `env` file gives the URL
# and the broker's pid). CONFIG defaults to Config/crm-ingest.yaml, the one `make bench` drains with. BENCH_DAEMON
# picks another daemon binary (a wrapper script that runs it under `nice` or `chrt` works), BENCH_TOOL another
# crm-ingest-bench, BENCH_EVENTS the count (200,000). The daemon's folder is a temporary directory under TMPDIR,
# removed at the end; the daemon is stopped by its pid.
set -euo pipefail
node=${1:?usage: drain-observe.sh NODE_DIR [CONFIG]}
root=$(cd "$(dirname "$0")/../.." && pwd)
config=${2:-$root/Config/crm-ingest.yaml}
url=$(sed -n 's/^AMQP_URL=//p' "$node/env")
broker_pid=$(sed -n 's/^SERVER_PID=//p' "$node/env")
daemon=${BENCH_DAEMON:-$root/.build/release/crm-ingest}
tool=${BENCH_TOOL:-$root/.build/release/crm-ingest-bench}
events=${BENCH_EVENTS:-200000}
work=$(mktemp -d "${TMPDIR:-/tmp}/crm-drain-observe.XXXXXX")
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ]; then kill -TERM "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
"$tool" publish --url "$url" --queue crm.events --events "$events" --contacts 20000 > /dev/null
. "$root/scripts/bench/daemon-lib.sh"
start_daemon "$daemon" "$url" "$work" "$config"
python3 - "$daemon_pid" "$broker_pid" "$port" "$events" <<'PY'
import os, re, sys, time, urllib.request

daemon, broker, port, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tick = os.sysconf("SC_CLK_TCK")


def metrics():
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()


def settled(text):
    """Events of app-events with a final outcome, as bench.py counts them."""
    return sum(float(value) for labels, value in re.findall(r'^crm_ingest_events_total\{([^}]*)\} (\S+)$', text, re.M)
               if 'source="app-events"' in labels and re.search(r'outcome="(applied|duplicate|unchanged|skipped|rejected)"', labels))


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
    fields = open(stat_path).read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def threads(pid):
    """CPU ticks by thread name (threads of one name summed)."""
    by_name = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            by_name[name] = by_name.get(name, 0) + ticks(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            pass  # the thread ended
    return by_name


def written(pid):
    return int(re.search(r"write_bytes: (\d+)", open(f"/proc/{pid}/io").read()).group(1))


def busy(before, after):
    delta = [b - a for a, b in zip(before, after)]
    return (1 - (delta[3] + delta[4]) / max(1, sum(delta))) * 200


previous = start = None
while True:
    text = metrics()
    sample = dict(time=time.monotonic(), settled=settled(text), tx=transactions(text), machine=machine(),
                  broker=ticks(f"/proc/{broker}/stat"), threads=threads(daemon))
    if previous:
        seconds = sample["time"] - previous["time"]
        tx = [b - a for a, b in zip(previous["tx"], sample["tx"])]
        top = sorted(((cpu - previous["threads"].get(name, 0), name) for name, cpu in sample["threads"].items()), reverse=True)[:4]
        print(f"{sample['settled']:9,.0f} {(sample['settled'] - previous['settled']) / seconds:8,.0f}/s"
              f" busy {busy(previous['machine'], sample['machine']):4.0f}%"
              f" broker {(sample['broker'] - previous['broker']) / tick / seconds * 100:4.0f}%"
              f" | {' '.join(f'{name}={cpu / tick / seconds * 100:.0f}%' for cpu, name in top)}"
              f" | tx {tx[0]:.0f}, {tx[1] / max(1, tx[0]):.0f} events each, in one {tx[2] / seconds * 100:.0f}% of the time", flush=True)
    if sample["settled"] > 0 and start is None:
        start = dict(sample, daemon_written=written(daemon), broker_written=written(broker))
    previous = sample
    if sample["settled"] >= count:
        break
    time.sleep(0.5)
seconds = sample["time"] - start["time"]
drained = sample["settled"] - start["settled"]
daemon_cpu = sum(sample["threads"].values()) - sum(start["threads"].values())
print(f"drain: {drained / seconds:,.0f} events/s; machine busy {busy(start['machine'], sample['machine']):.0f}% of 200%;"
      f" broker {(sample['broker'] - start['broker']) / tick / seconds * 100:.0f}%; daemon {daemon_cpu / tick / seconds * 100:.0f}%"
      f" (threads alive at the end)")
delta = [b - a for a, b in zip(start["machine"], sample["machine"])]
print("machine: " + ", ".join(f"{name} {value / sum(delta) * 200:.0f}%" for name, value in
                              zip("user nice system idle iowait irq softirq steal".split(), delta)))
print(f"written per event: daemon {(written(daemon) - start['daemon_written']) / drained:,.0f} bytes,"
      f" broker {(written(broker) - start['broker_written']) / drained:,.0f} bytes")
PY
