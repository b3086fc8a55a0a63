#!/usr/bin/env python3
"""make bench: runs each scenario against real servers started here, with its same-run baseline, and rewrites
Docs/BENCHMARKS.md.

Everything it starts (a RabbitMQ node, moto_server, the daemon) runs on 127.0.0.1 in a temporary folder and is
stopped by its pid. Figures are medians of BENCH_RUNS runs (default 3), with min and max; ratios are computed run
by run (daemon / baseline of the same run), then their median is reported.

Environment:
  BENCH_RUNS=3                 runs per scenario
  BENCH_EVENTS=200000          events of the RabbitMQ drain scenario
  BENCH_BIG_EVENTS=2000000     events of the memory scenario
  BENCH_INGEST_LINES=1000000   lines of the ingest scenario
  BENCH_PG_EVENTS=100000       events of the scale-out scenario (RabbitMQ → PostgreSQL, 1 and 2 daemons)
  BENCH_SCENARIOS="rabbitmq memory latency ingest http sqs startup scaleout"
  BENCH_OUTPUT=Docs/BENCHMARKS.md
"""
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone

import metrics_text  # beside this file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build", "release")
DAEMON = os.environ.get("BENCH_DAEMON") or os.path.join(BIN, "crm-ingest")
TOOL = os.path.join(BIN, "crm-ingest-bench")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "200000"))
BIG_EVENTS = int(os.environ.get("BENCH_BIG_EVENTS", "2000000"))
INGEST_LINES = int(os.environ.get("BENCH_INGEST_LINES", "1000000"))
PG_EVENTS = int(os.environ.get("BENCH_PG_EVENTS", "100000"))
SCENARIOS = os.environ.get("BENCH_SCENARIOS", "rabbitmq memory latency ingest http sqs startup scaleout").split()
OUTPUT = os.path.join(ROOT, os.environ.get("BENCH_OUTPUT", "Docs/BENCHMARKS.md"))
CONTACTS = 20_000
# The no-op consumer uses the daemon's own prefetch: the one of the shipped configuration it runs on.
with open(os.path.join(ROOT, "Config/crm-ingest.yaml")) as _config:
    PREFETCH = int(os.environ.get("BENCH_PREFETCH") or re.search(r"^\s+prefetch:\s*(\d+)", _config.read(), re.M).group(1))

WORK = tempfile.mkdtemp(prefix="crm-ingest-bench.")
started_pids = []


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The daemon puts its threads under Linux's SCHED_BATCH (`crm-ingest run --cpu-scheduling batch`, its default), and a
# do-nothing consumer drains faster under it too (it stops preempting the broker as well): the no-op baseline runs
# under the same policy (`chrt` is util-linux's), so the ratio compares like with like.
SAME_POLICY_AS_THE_DAEMON = ["chrt", "--batch", "0"]


def run_tool(*args, timeout=3600, prefix=()):
    """Runs crm-ingest-bench (after `prefix`, a command such as chrt); returns its JSON line."""
    out = subprocess.run([*prefix, TOOL, *map(str, args)], check=True, capture_output=True, text=True, timeout=timeout).stdout
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


# MARK: servers

class RabbitMQ:
    def __init__(self):
        self.dir = os.path.join(WORK, "rabbitmq")
        out = subprocess.run([os.path.join(ROOT, "scripts/rabbitmq-node.sh"), "start", self.dir], check=True, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL).stdout
        self.url = out.strip().splitlines()[-1]

    def ctl(self, *args):
        return subprocess.run([os.path.join(ROOT, "scripts/rabbitmq-node.sh"), "ctl", self.dir, *args], check=True, capture_output=True,
                              text=True).stdout

    def queue_count(self, queue, column):
        """A count `rabbitmqctl list_queues` gives for the queue (`messages`, `consumers`, …); 0 when it does not exist."""
        for line in self.ctl("list_queues", "name", column).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return int(parts[1])
        return 0

    def depth(self, queue):
        return self.queue_count(queue, "messages")

    def delete(self, queue):
        try:
            self.ctl("delete_queue", queue)
        except subprocess.CalledProcessError:
            pass

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts/rabbitmq-node.sh"), "stop", self.dir], capture_output=True)

    def cpu_seconds(self):
        """CPU seconds the broker's Erlang VM (beam.smp, every scheduler thread) used so far."""
        with open(os.path.join(self.dir, "env")) as f:
            pid = re.search(r"^SERVER_PID=(\d+)$", f.read(), re.M).group(1)
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Postgres:
    """A throw-away PostgreSQL (scripts/postgres-node.sh) on a free loopback port."""

    def __init__(self):
        os.chmod(WORK, 0o711)  # the server runs as the postgres user when we are root: it must reach its folder
        self.dir = os.path.join(WORK, "postgres")
        subprocess.run([os.path.join(ROOT, "scripts/postgres-node.sh"), "start", self.dir], check=True, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
        with open(os.path.join(self.dir, "env")) as f:
            self.env = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)

    def url(self, database):
        e = self.env
        return f"postgres://{e['PG_USER']}:{e['PG_PASSWORD']}@127.0.0.1:{e['PG_PORT']}/{database}"

    def psql(self, sql, database=None):
        e = self.env
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", e["PG_PORT"], "-U", e["PG_USER"], "-d", database or e["PG_DATABASE"],
                               "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True, text=True,
                              env=dict(os.environ, PGPASSWORD=e["PG_PASSWORD"])).stdout.strip()

    def fresh_database(self, name):
        self.psql(f"DROP DATABASE IF EXISTS {name}")
        self.psql(f"CREATE DATABASE {name}")
        return name

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts/postgres-node.sh"), "stop", self.dir], capture_output=True)


class Daemon:
    """crm-ingest run on the embedded default configuration, pointed at this run's broker and a fresh data folder."""

    def __init__(self, amqp_url, data, config=None, extra_env=None):
        self.http_port = free_port()
        self.data = data
        os.makedirs(data, exist_ok=True)
        env = dict(os.environ, AMQP_URL=amqp_url, CRM_INGEST_DATA=data, CRM_INGEST_HTTP=f"127.0.0.1:{self.http_port}", **(extra_env or {}))
        args = [DAEMON, "run"] + (["--config", config] if config else [])
        self.log_path = os.path.join(data, "daemon.log")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(args, env=env, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        started_pids.append(self.process.pid)

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except OSError:
            return 0, ""

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self.process.returncode}); see {self.log_path}")
            if self.get("/readyz")[0] == 200:
                return time.monotonic() - self.started_at
            time.sleep(0.002)
        raise RuntimeError(f"the daemon was not ready within {timeout} s; see {self.log_path}")

    def settled(self, source="app-events"):
        """Events of a source with a final outcome (applied, incomplete, duplicate, unchanged, skipped, rejected)."""
        status, text = self.get("/metrics")
        return metrics_text.settled(text, source)

    def proc(self):
        """CPU seconds and memory (current and peak RSS, MiB) from /proc."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        status = open(f"/proc/{self.process.pid}/status").read()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
        return cpu, rss, peak

    def rss_file(self):
        """The file-backed part of the current RSS (code and constants of the binary and its libraries), MiB."""
        status = open(f"/proc/{self.process.pid}/status").read()
        return int(re.search(r"RssFile:\s+(\d+)", status).group(1)) / 1024

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.pid in started_pids:
            started_pids.remove(self.process.pid)
        return self.process.returncode


def fresh_data(name):
    path = os.path.join(WORK, name)
    shutil.rmtree(path, ignore_errors=True)
    return path


def drain_with_daemon(broker, count, samples_at=()):
    """Starts the daemon on a queue holding `count` events; returns (events/s, CPU s per 10,000, peak RSS MiB,
    RSS samples at the given fractions, each (RSS, its file-backed part) in MiB)."""
    daemon = Daemon(broker.url, fresh_data("drain"))
    try:
        daemon.wait_ready()
        first = None
        samples = {}
        cpu_start = None
        while True:
            done = daemon.settled()
            now = time.monotonic()
            if done > 0 and first is None:
                first, cpu_start = (now, done), daemon.proc()[0]
            for fraction in samples_at:
                if fraction not in samples and done >= count * fraction:
                    samples[fraction] = (daemon.proc()[1], daemon.rss_file())
            if done >= count:
                break
            if daemon.process.poll() is not None:
                raise RuntimeError(f"the daemon exited; see {daemon.log_path}")
            time.sleep(0.05)
        cpu, _, peak = daemon.proc()
        seconds = now - first[0]
        rate = (count - first[1]) / seconds
        return rate, (cpu - cpu_start) / count * 10_000, peak, samples
    finally:
        daemon.stop()


def drain_with_daemons(broker, count, config, daemons):
    """Starts `daemons` daemons on `config` (one queue holding `count` events); returns the events/s they drain
    together, from the first settled event to the last."""
    running = [Daemon(broker.url, fresh_data(f"scaleout-{i}"), config=config) for i in range(daemons)]
    try:
        for daemon in running:
            daemon.wait_ready()
        first = None
        while True:
            done = sum(daemon.settled() for daemon in running)
            now = time.monotonic()
            if done > 0 and first is None:
                first = (now, done)
            if done >= count:
                break
            for daemon in running:
                if daemon.process.poll() is not None:
                    raise RuntimeError(f"a daemon exited; see {daemon.log_path}")
            time.sleep(0.05)
        return (count - first[1]) / (now - first[0])
    finally:
        for daemon in running:
            daemon.stop()


# MARK: scenarios

results = []  # rows of the table


def summary(values):
    values = [v for v in values if v is not None]
    return statistics.median(values), min(values), max(values)


def fmt(value, digits=0):
    return f"{value:,.{digits}f}"


def row(scenario, figure, values, baseline=None, ratios=None, target="", digits=0, unit=""):
    med, lo, hi = summary(values)
    text = f"{fmt(med, digits)}{unit} (min {fmt(lo, digits)}, max {fmt(hi, digits)})"
    base = ""
    if baseline:
        bmed, blo, bhi = summary(baseline)
        base = f"{fmt(bmed, digits)}{unit} (min {fmt(blo, digits)}, max {fmt(bhi, digits)})"
    ratio = ""
    if ratios:
        rmed, rlo, rhi = summary(ratios)
        ratio = f"{rmed:.2f} (min {rlo:.2f}, max {rhi:.2f})"
    results.append((scenario, figure, text, base, ratio, target))
    log(f"{scenario} / {figure}: {text} | baseline {base} | ratio {ratio} | target {target}")


def scenario_rabbitmq(broker):
    if shutil.which(SAME_POLICY_AS_THE_DAEMON[0]) is None:
        raise RuntimeError(f"{SAME_POLICY_AS_THE_DAEMON[0]} is not installed (Debian's util-linux has it)")
    queue = "crm.events"
    rates, baselines, ratios, cpus, baseline_cpus, peaks = [], [], [], [], [], []
    broker_cpus, broker_baseline_cpus = [], []
    for run in range(RUNS):
        log(f"rabbitmq run {run + 1}/{RUNS}: publishing {EVENTS:,} events")
        run_tool("publish", "--url", broker.url, "--queue", queue, "--events", EVENTS, "--contacts", CONTACTS)
        before = broker.cpu_seconds()
        noop = run_tool("noop", "--url", broker.url, "--queue", queue, "--count", EVENTS, "--prefetch", PREFETCH,
                        prefix=SAME_POLICY_AS_THE_DAEMON)
        broker_baseline_cpus.append((broker.cpu_seconds() - before) / EVENTS * 10_000)
        log(f"rabbitmq run {run + 1}: no-op consumer {noop['events_per_s']:,.0f}/s; publishing again for the daemon")
        run_tool("publish", "--url", broker.url, "--queue", queue, "--events", EVENTS, "--contacts", CONTACTS)
        before = broker.cpu_seconds()
        rate, cpu, peak, _ = drain_with_daemon(broker, EVENTS)
        broker_cpus.append((broker.cpu_seconds() - before) / EVENTS * 10_000)
        log(f"rabbitmq run {run + 1}: daemon {rate:,.0f}/s, {cpu:.2f} CPU s per 10,000, peak RSS {peak:.0f} MiB; "
            f"broker {broker_cpus[-1]:.2f} CPU s per 10,000 (no-op run: {broker_baseline_cpus[-1]:.2f})")
        rates.append(rate)
        baselines.append(noop["events_per_s"])
        ratios.append(rate / noop["events_per_s"])
        cpus.append(cpu)
        baseline_cpus.append(noop["cpu_seconds"] / EVENTS * 10_000)
        peaks.append(peak)
    name = f"RabbitMQ → SQLite, {EVENTS:,} persistent events, {CONTACTS:,} contacts, 12 types"
    row(name, "events/s to drain", rates, baselines, ratios, "≥ 0.9 × no-op")
    row(name, "CPU seconds per 10,000 events", cpus, baseline_cpus, [a / b for a, b in zip(cpus, baseline_cpus)], "", digits=2)
    row(name, "broker CPU seconds per 10,000 events", broker_cpus, broker_baseline_cpus, None, "", digits=2)
    row(name, "peak RSS", peaks, None, None, "", unit=" MiB")
    return statistics.median(rates)


def scenario_memory(broker):
    queue = "crm.events"
    fractions = (0.1, 0.5, 0.9)
    series = {f: [] for f in fractions}
    file_series = {f: [] for f in fractions}
    for run in range(RUNS):
        log(f"memory run {run + 1}/{RUNS}: publishing {BIG_EVENTS:,} events")
        run_tool("publish", "--url", broker.url, "--queue", queue, "--events", BIG_EVENTS, "--contacts", CONTACTS, timeout=7200)
        _, _, _, samples = drain_with_daemon(broker, BIG_EVENTS, samples_at=fractions)
        log(f"memory run {run + 1}: RSS {samples}")
        for fraction in fractions:
            series[fraction].append(samples[fraction][0] if fraction in samples else None)
            file_series[fraction].append(samples[fraction][1] if fraction in samples else None)
    name = f"RabbitMQ → SQLite, {BIG_EVENTS:,} events"
    for fraction in fractions:
        row(name, f"RSS at {int(fraction * 100)}% of the run", series[fraction], None, None, "≤ 64 MiB, flat", digits=1, unit=" MiB")
    # What of it is pages of files (code, constants): the rest is the daemon's own memory (heap, SQLite's cache).
    row(name, "of which file-backed, at 90%", file_series[0.9], digits=1, unit=" MiB")


def scenario_latency(broker, max_rate):
    """Publish at half the drain rate; latency to the commit, as a second reader of the database sees it."""
    rate = max(100, int(max_rate / 2))
    seconds = 60
    p50s, p99s, maxes, store_p99s, noop_p50s, noop_p99s = [], [], [], [], [], []
    for run in range(RUNS):
        daemon = Daemon(broker.url, fresh_data("latency"))
        watcher = None
        try:
            daemon.wait_ready()
            times = os.path.join(WORK, "latency-times.txt")
            visible = os.path.join(WORK, "latency-visible.txt")
            # Polls the database every millisecond for the contacts published, from before the first one.
            watcher = subprocess.Popen([TOOL, "latency-watch", "--database", os.path.join(daemon.data, "crm.sqlite"),
                                        "--count", str(rate * seconds), "--output", visible, "--interval-ms", "1"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            started_pids.append(watcher.pid)
            log(f"latency run {run + 1}/{RUNS}: {rate:,}/s for {seconds} s")
            run_tool("latency-publish", "--url", broker.url, "--queue", "crm.events", "--rate", rate, "--seconds", seconds, "--times", times)
            deadline = time.monotonic() + 120
            while daemon.settled() < rate * seconds and time.monotonic() < deadline:
                time.sleep(0.2)
            out, err = watcher.communicate(timeout=60)
            if watcher.returncode != 0:
                raise RuntimeError(f"latency-watch failed: {err.strip()}")
        finally:
            if watcher:
                if watcher.poll() is None:
                    watcher.kill()
                    watcher.wait()
                started_pids.remove(watcher.pid)
            daemon.stop()
        report = run_tool("latency-report", "--times", times, "--visible", visible)
        if report["missing"]:
            raise RuntimeError(f"latency-watch saw {report['events']} of {rate * seconds} contacts committed")
        store = run_tool("latency-report", "--times", times, "--database", os.path.join(daemon.data, "crm.sqlite"))
        noop = latency_to_a_noop_consumer(broker, rate, seconds)
        p50s.append(report["p50_ms"])
        p99s.append(report["p99_ms"])
        maxes.append(report["max_ms"])
        store_p99s.append(store["p99_ms"])
        noop_p50s.append(noop["p50_ms"])
        noop_p99s.append(noop["p99_ms"])
    name = f"Latency at half the maximum rate ({rate:,} events/s for {seconds} s)"
    row(name, "p50 publish → committed", p50s, digits=1, unit=" ms")
    row(name, "p99 publish → committed", p99s, target="p99 ≤ 20 ms", digits=1, unit=" ms")
    row(name, "max publish → committed", maxes, digits=1, unit=" ms")
    row(name, "p99 publish → handed to the store (before the commit)", store_p99s, digits=1, unit=" ms")
    row(name, "p50 publish → delivered to a no-op consumer (same rate, same run)", noop_p50s, digits=1, unit=" ms")
    row(name, "p99 publish → delivered to a no-op consumer (same rate, same run)", noop_p99s, digits=1, unit=" ms")


def latency_to_a_noop_consumer(broker, rate, seconds):
    """The broker's and the publisher's share of the latency: the same publisher at the same rate, on the same queue,
    consumed by the do-nothing consumer (the daemon's prefetch, acks every 250, the daemon's CPU policy); latency from
    publish to delivery."""
    arrivals = os.path.join(WORK, "latency-arrivals.txt")
    times = os.path.join(WORK, "latency-noop-times.txt")
    deadline = time.monotonic() + 10
    while (left := broker.depth("crm.events")) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        raise RuntimeError(f"crm.events still holds {left} messages after the daemon's run")
    consumer = subprocess.Popen([*SAME_POLICY_AS_THE_DAEMON, TOOL, "noop", "--url", broker.url, "--queue", "crm.events",
                                 "--count", str(rate * seconds), "--prefetch", str(PREFETCH), "--record", arrivals],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started_pids.append(consumer.pid)
    try:
        # Publishing starts once the consumer is subscribed, as it does once the daemon is ready.
        deadline = time.monotonic() + 30
        while not broker.queue_count("crm.events", "consumers"):
            if consumer.poll() is not None or time.monotonic() > deadline:
                if consumer.poll() is None:
                    consumer.kill()
                _, err = consumer.communicate()
                raise RuntimeError(f"the no-op consumer did not subscribe: {err.strip()}")
            time.sleep(0.1)
        log(f"latency baseline: a no-op consumer at {rate:,}/s for {seconds} s")
        run_tool("latency-publish", "--url", broker.url, "--queue", "crm.events", "--rate", rate, "--seconds", seconds, "--times", times)
        _, err = consumer.communicate(timeout=120)
        if consumer.returncode != 0:
            raise RuntimeError(f"the no-op consumer failed: {err.strip()}")
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
        started_pids.remove(consumer.pid)
        # What a failed run left (unsent or unacked) must not reach the next scenario's daemon as its own events.
        if broker.depth("crm.events"):
            broker.ctl("purge_queue", "crm.events")
    report = run_tool("latency-report", "--times", times, "--arrivals", arrivals)
    if report["missing"]:
        raise RuntimeError(f"the no-op consumer received {report['events']} of {rate * seconds} messages")
    return report


def scenario_ingest():
    lines = os.path.join(WORK, "events.jsonl")
    run_tool("lines", "--events", INGEST_LINES, "--contacts", CONTACTS, "--output", lines)
    rates, baselines, ratios = [], [], []
    for run in range(RUNS):
        data = fresh_data("ingest")
        os.makedirs(data)
        env = dict(os.environ, CRM_INGEST_DATA=data, CRM_INGEST_HTTP="127.0.0.1:0")
        started = time.monotonic()
        subprocess.run([DAEMON, "ingest", lines], env=env, check=True, capture_output=True)
        rate = INGEST_LINES / (time.monotonic() - started)
        bulk = run_tool("sqlite-bulk", "--input", lines, "--database", os.path.join(WORK, "bulk.sqlite"))
        log(f"ingest run {run + 1}/{RUNS}: crm-ingest ingest {rate:,.0f}/s, plain bulk insert {bulk['rows_per_s']:,.0f}/s")
        rates.append(rate)
        baselines.append(bulk["rows_per_s"])
        ratios.append(rate / bulk["rows_per_s"])
    row(f"`crm-ingest ingest` of {INGEST_LINES:,} JSON lines into SQLite", "events/s", rates, baselines, ratios, "≥ 0.5 × bulk insert")


def scenario_startup(broker):
    times = []
    for run in range(max(RUNS, 5)):
        daemon = Daemon(broker.url, fresh_data("startup"))
        try:
            times.append(daemon.wait_ready() * 1000)
        finally:
            daemon.stop()
    row("Start-up with a local broker", "exec → /readyz 200", times, target="≤ 300 ms", unit=" ms")


def scenario_http(broker):
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (scripts/install-deps.sh bench installs it)")
    secret = "bench-secret-0123456789abcdef0123456789"
    config = os.path.join(WORK, "http.yaml")
    with open(os.path.join(ROOT, "Config/crm-ingest.yaml")) as f:
        text = f.read()
    text = text.replace("auth: none                             # anyone who can reach the URL may send; use { jwt: { … } } otherwise",
                        "endpoint: benchshop\n      auth: { jwt: { algorithm: HS256, secret: \"" + secret + "\" } }")
    with open(config, "w") as f:
        f.write(text)
    token = make_hs256(secret)
    script = os.path.join(WORK, "post.lua")
    with open(script, "w") as f:
        # Every order is new: wrk's threads share neither the counter nor a random seed, so each gets its own id.
        f.write(f"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
counter = 0
request = function()
  counter = counter + 1
  local body = '{{"order_number":"' .. tid .. '-' .. counter .. '","customer_email":"c' .. (counter % 20000) .. '@example.com","total":12.5}}'
  return wrk.format("POST", "/incoming/benchshop", {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {token}"}}, body)
end
""")
    rates, baselines, ratios, p99s, base_p99s = [], [], [], [], []
    for run in range(RUNS):
        daemon = Daemon(broker.url, fresh_data("http"), config=config)
        try:
            daemon.wait_ready()
            base = wrk(f"http://127.0.0.1:{daemon.http_port}/healthz")
            post = wrk(f"http://127.0.0.1:{daemon.http_port}/incoming/benchshop", script)
            status = daemon.get("/metrics")[1]
        finally:
            daemon.stop()
        log(f"http run {run + 1}/{RUNS}: POST {post['rate']:,.0f}/s (p99 {post['p99_ms']} ms, non-2xx {post['errors']}), healthz {base['rate']:,.0f}/s")
        if post["errors"]:
            raise RuntimeError(f"{post['errors']} POSTs were not answered 2xx")
        rates.append(post["rate"])
        baselines.append(base["rate"])
        ratios.append(post["rate"] / base["rate"])
        p99s.append(post["p99_ms"])
        base_p99s.append(base["p99_ms"])
    name = "HTTP incoming, JWT HS256 + deduplication + SQLite, wrk 2 threads 64 connections, 10 s"
    row(name, "requests/s", rates, baselines, ratios, "≥ 0.5 × /healthz")
    row(name, "p99", p99s, base_p99s, None, "", digits=2, unit=" ms")


def make_hs256(secret):
    import base64, hashlib, hmac
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": "bench", "exp": int(time.time()) + 7200}).encode())
    signature = b64(hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def wrk(url, script=None):
    args = ["wrk", "-t2", "-c64", "-d10s", "--latency"] + (["-s", script] if script else []) + [url]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rate": rate, "p99_ms": p99_ms, "errors": int(errors.group(1)) if errors else 0}


def scenario_sqs():
    moto_dir = os.path.join(WORK, "moto")
    subprocess.run([os.path.join(ROOT, "scripts/moto-server.sh"), "start", moto_dir], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    try:
        env = dict(os.environ, CRM_TEST_MOTO_DIR=moto_dir, CRM_BENCH_SQS_MESSAGES=os.environ.get("BENCH_SQS_MESSAGES", "20000"))
        per_message, rates = [], []
        for run in range(RUNS):
            result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/bench/sqs_drain.py"), moto_dir, DAEMON, WORK],
                                    env=env, check=True, capture_output=True, text=True)
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            log(f"sqs run {run + 1}/{RUNS}: {figures}")
            per_message.append(figures["requests_per_message"])
            rates.append(figures["events_per_s"])
        n = env["CRM_BENCH_SQS_MESSAGES"]
        row(f"SQS via moto, {int(n):,} messages", "SQS requests per message", per_message, [0.2] * len(per_message),
            [p / 0.2 for p in per_message], "≤ 0.21", digits=4)
        row(f"SQS via moto, {int(n):,} messages", "events/s", rates)
    finally:
        subprocess.run([os.path.join(ROOT, "scripts/moto-server.sh"), "stop", moto_dir], capture_output=True)


# MARK: report

def scenario_scaleout(broker):
    """RabbitMQ → PostgreSQL with one daemon, then two on the same queue and database (competing consumers)."""
    postgres = Postgres()
    try:
        queue = "crm.events"
        with open(os.path.join(ROOT, "Config/crm-ingest.yaml")) as f:
            shipped = f.read()
        sqlite_line = re.search(r"^  sqlite: .*$", shipped, re.M).group(0)
        ones, twos, ratios = [], [], []
        for run in range(RUNS):
            rates = {}
            for daemons in (1, 2):
                database = postgres.fresh_database(f"bench_{daemons}")
                config = os.path.join(WORK, f"postgres-{daemons}.yaml")
                with open(config, "w") as f:
                    f.write(shipped.replace(sqlite_line, f'  postgres: {{ url: "{postgres.url(database)}", pool: 8, tls: disable }}'))
                log(f"scale-out run {run + 1}/{RUNS}: publishing {PG_EVENTS:,} events for {daemons} daemon(s)")
                run_tool("publish", "--url", broker.url, "--queue", queue, "--events", PG_EVENTS, "--contacts", CONTACTS)
                rates[daemons] = drain_with_daemons(broker, PG_EVENTS, config, daemons)
                ledger = int(postgres.psql("SELECT count(*) FROM ledger", database))
                if ledger != PG_EVENTS:
                    raise RuntimeError(f"{daemons} daemon(s): the ledger holds {ledger:,} keys for {PG_EVENTS:,} events")
                log(f"scale-out run {run + 1}: {daemons} daemon(s) {rates[daemons]:,.0f}/s")
            ones.append(rates[1])
            twos.append(rates[2])
            ratios.append(rates[2] / rates[1])
        row(f"RabbitMQ → PostgreSQL, {PG_EVENTS:,} persistent events, {CONTACTS:,} contacts, 1 daemon", "events/s to drain", ones)
        row(f"RabbitMQ → PostgreSQL, {PG_EVENTS:,} events, 2 daemons on one queue and one database", "events/s to drain (both)",
            twos, ones, ratios, "baseline: 1 daemon, same run")
    finally:
        postgres.stop()


def machine():
    cores = os.cpu_count()
    memory = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1)) / 1024 / 1024
    model = re.search(r"model name\s+:\s+(.*)", open("/proc/cpuinfo").read())
    return f"{cores} cores ({model.group(1).strip() if model else platform.machine()}), {memory:.0f} GiB, {platform.platform()}"


def write_report(command, notes):
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {date}.",
        f"Machine: {machine()}. Runs per scenario: {RUNS} (the figure is the median; min and max in brackets).",
        "Ratios are daemon ÷ baseline of the same run, run by run; their median is reported.",
        "",
        "| Scenario | Figure | crm-ingest | Same-run baseline | Ratio | Target |",
        "|---|---|---|---|---|---|",
    ]
    for scenario, figure, value, base, ratio, target in results:
        lines.append(f"| {scenario} | {figure} | {value} | {base} | {ratio} | {target} |")
    lines += ["", notes.strip(), ""]
    existing = open(OUTPUT).read() if os.path.exists(OUTPUT) else ""
    marker = "<!-- analysis: kept across runs -->"
    if marker in existing:
        lines += [existing[existing.index(marker):].rstrip(), ""]
    with open(OUTPUT, "w") as f:
        f.write("\n".join(lines))
    log(f"wrote {OUTPUT}")


def main():
    command = "make bench" + "".join(f" {k}={os.environ[k]}" for k in ("BENCH_RUNS", "BENCH_EVENTS", "BENCH_BIG_EVENTS", "BENCH_INGEST_LINES", "BENCH_PG_EVENTS", "BENCH_SCENARIOS") if k in os.environ)
    failures = []
    broker = None
    try:
        broker = RabbitMQ()
        log(f"RabbitMQ at {broker.url}")
        max_rate = None
        for scenario in SCENARIOS:
            try:
                if scenario == "rabbitmq":
                    max_rate = scenario_rabbitmq(broker)
                elif scenario == "memory":
                    scenario_memory(broker)
                elif scenario == "latency":
                    if max_rate is None:
                        max_rate = scenario_rabbitmq(broker)
                    scenario_latency(broker, max_rate)
                elif scenario == "ingest":
                    scenario_ingest()
                elif scenario == "http":
                    scenario_http(broker)
                elif scenario == "sqs":
                    scenario_sqs()
                elif scenario == "startup":
                    scenario_startup(broker)
                elif scenario == "scaleout":
                    scenario_scaleout(broker)
                else:
                    raise RuntimeError(f"unknown scenario {scenario}")
            except Exception as error:  # a scenario that cannot run says so, loudly, and reports no figure
                log(f"SCENARIO {scenario} FAILED: {error}")
                failures.append(f"- **{scenario}**: did not run to the end: {error}")
    finally:
        for pid in list(started_pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if broker:
            broker.stop()
        shutil.rmtree(WORK, ignore_errors=True)
    notes = "\n".join(failures) if failures else "Every scenario ran."
    write_report(command, notes)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
