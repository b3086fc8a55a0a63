#!/usr/bin/env bash
# Runs a command (the test suite) with the real servers the integration tests need, started here on free
# loopback ports in temporary folders, and stops them by their pids afterwards, whatever the command did.
#   scripts/test-with-servers.sh swift test --skip-build
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/crm-ingest-test-servers.XXXXXX)
cleanup() {
    scripts/rabbitmq-node.sh stop "$work/rabbitmq" >/dev/null 2>&1 || true
    scripts/moto-server.sh stop "$work/moto" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "starting RabbitMQ for the tests..."
scripts/rabbitmq-node.sh start "$work/rabbitmq" </dev/null >"$work/rabbitmq-start.log" 2>&1 || { cat "$work/rabbitmq-start.log"; exit 1; }
export CRM_TEST_RABBITMQ_DIR="$work/rabbitmq"
echo "RabbitMQ: $(tail -1 "$work/rabbitmq-start.log")"

echo "starting moto_server (SQS, authentication enforced) for the tests..."
scripts/moto-server.sh start "$work/moto" </dev/null >"$work/moto-start.log" 2>&1 || { cat "$work/moto-start.log"; exit 1; }
export CRM_TEST_MOTO_DIR="$work/moto"
echo "moto: $(tail -1 "$work/moto-start.log")"

"$@"
