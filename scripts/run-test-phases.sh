#!/usr/bin/env bash
# Runs the test suite in its two phases (moto_server is single-threaded and slow under load, so the SQS source tests
# run after the rest instead of beside the RabbitMQ tests on the same two cores), keeps the whole output in a log,
# and on failure ends with the failing tests and their recorded issues: CI shows the end of the output, and the
# failure is then on screen rather than thousands of lines above it.
#   scripts/test-with-servers.sh scripts/run-test-phases.sh
set -uo pipefail
cd "$(dirname "$0")/.."
swift=${SWIFT:-swift}
log=$(mktemp /tmp/crm-ingest-tests.XXXXXX.log)

status=0
$swift test --skip-build --skip CRMSourceSQSTests 2>&1 | tee "$log" || status=$?
if [ "$status" -eq 0 ]; then
    $swift test --skip-build --filter CRMSourceSQSTests 2>&1 | tee -a "$log" || status=$?
fi
if [ "$status" -ne 0 ]; then
    echo
    echo "==== failures (the whole output is in $log) ===="
    grep -E "✘|recorded an issue|error:|Fatal error|Crash" "$log" | cut -c1-600 | tail -60
fi
exit "$status"
