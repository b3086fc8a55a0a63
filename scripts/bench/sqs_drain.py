#!/usr/bin/env python3
"""The SQS scenario of make bench: the daemon drains N messages from a moto_server queue (SigV4 enforced) while a
publisher keeps a bounded backlog in the queue (moto scans a queue on every request, so a deep queue measures moto,
not us). Prints one JSON line: requests per message (from crm_ingest_sqs_requests_total) and events/s.

    sqs_drain.py MOTO_DIR DAEMON_BINARY WORK_DIR      (N from CRM_BENCH_SQS_MESSAGES, default 20000)
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import boto3
from botocore.config import Config

moto_dir, daemon_binary, work = sys.argv[1:4]
total = int(os.environ.get("CRM_BENCH_SQS_MESSAGES", "20000"))
backlog = 50  # moto scans the whole queue per request: a deep queue measures moto
env = dict(line.split("=", 1) for line in open(os.path.join(moto_dir, "env")).read().split() if "=" in line)

sqs = boto3.client("sqs", endpoint_url=env["MOTO_URL"], region_name=env["AWS_REGION"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                   aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], config=Config(retries={"max_attempts": 5}))
queue_url = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    http_port = s.getsockname()[1]
data = os.path.join(work, f"sqs-{uuid.uuid4().hex[:6]}")
os.makedirs(data)
default = open(os.path.join(os.path.dirname(__file__), "..", "..", "Config", "crm-ingest.yaml")).read()
sources = f"""sources:
  - name: bench-sqs
    format: default
    sqs:
      queue_url: "{queue_url}"
      region: {env["AWS_REGION"]}
      endpoint: "{env["MOTO_URL"]}"
      pollers: 1      # moto (unlike SQS) may hand one message to two concurrent long polls
      wait_time: 1s

"""
config = re.sub(r"(?ms)^sources:.*?(?=^# Recipient attributes)", sources, default)
# The shop integration's type goes with the shop source, which this configuration leaves out.
config = re.sub(r"(?m)^  CUSTOM_ORDER:.*\n(    - .*\n)+", "", config)
config_path = os.path.join(data, "sqs.yaml")
open(config_path, "w").write(config)

daemon_env = dict(os.environ, CRM_INGEST_DATA=data, CRM_INGEST_HTTP=f"127.0.0.1:{http_port}", AWS_ACCESS_KEY_ID=env["AWS_ACCESS_KEY_ID"],
                  AWS_SECRET_ACCESS_KEY=env["AWS_SECRET_ACCESS_KEY"])
daemon = subprocess.Popen([daemon_binary, "run", "--config", config_path], env=daemon_env, stdout=open(os.path.join(data, "daemon.log"), "w"),
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def metrics():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0, 0
    settled = requests = 0
    for match in re.finditer(r'^(crm_ingest_events_total|crm_ingest_sqs_requests_total)\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        if match.group(1) == "crm_ingest_sqs_requests_total":
            requests += float(match.group(3))
        elif labels.get("outcome") in ("applied", "incomplete", "duplicate", "unchanged", "skipped", "rejected"):
            settled += float(match.group(3))
    return int(settled), int(requests)


try:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or daemon.poll() is not None:
            raise SystemExit(f"the daemon did not become ready; see {data}/daemon.log")
        time.sleep(0.05)
    _, requests_before = metrics()  # the start-up's GetQueueAttributes
    sent = 0
    started = time.monotonic()
    while True:
        settled, requests = metrics()
        if settled >= total:
            break
        while sent < total and sent - settled < backlog:
            entries = []
            for index in range(sent, min(sent + 10, total)):
                contact = index % 2000
                body = (json.dumps({"type": "USER_REGISTRATION", "contactId": f"s-{contact}", "properties": {"firstName": "S"}})
                        if index < 2000 else json.dumps({"type": "USER_UPDATE", "contactId": f"s-{contact}", "properties": {"lastName": f"L{index}"}}))
                entries.append({"Id": str(index), "MessageBody": body})
            sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            sent += len(entries)
        if time.monotonic() - started > 1800:
            raise SystemExit(f"only {settled} of {total} settled after 30 minutes")
        time.sleep(0.05)
    seconds = time.monotonic() - started
    time.sleep(2)  # the settler's last delete batches
    _, requests = metrics()
    print(json.dumps({"messages": total, "requests": requests - requests_before,
                      "requests_per_message": (requests - requests_before) / total, "events_per_s": total / seconds}))
finally:
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.kill()
