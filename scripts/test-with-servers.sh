#!/usr/bin/env bash
# Runs a command (the test suite) with the real servers the integration tests need, started here on free
# loopback ports in temporary folders, and stops them by their pids afterwards, whatever the command did.
#   scripts/test-with-servers.sh swift test --skip-build
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/crm-ingest-test-servers.XXXXXX)
# PostgreSQL runs as the postgres user when we are root: it must be able to reach its folder inside this one.
chmod 711 "$work"
cleanup() {
    scripts/postgres-node.sh stop "$work/postgres" >/dev/null 2>&1 || true
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

echo "starting PostgreSQL for the tests..."
scripts/postgres-node.sh start "$work/postgres" </dev/null >"$work/postgres-start.log" 2>&1 || { cat "$work/postgres-start.log"; exit 1; }
export CRM_TEST_POSTGRES_DIR="$work/postgres"
echo "PostgreSQL: 127.0.0.1:$(grep PG_PORT "$work/postgres/env" | cut -d= -f2)"

"$@"
