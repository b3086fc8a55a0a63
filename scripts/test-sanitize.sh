#!/usr/bin/env bash
# The unit tests under AddressSanitizer (with LeakSanitizer) and then ThreadSanitizer, each in a build folder of its
# own (.build-address, .build-thread: a sanitized build is a full rebuild of every dependency). Exits non-zero on any
# failing test and on any sanitizer report. No servers: the suites that need RabbitMQ, moto or PostgreSQL, or that
# spawn the crm-ingest binary, are left out (Docs/HARDENING.md, "Sanitizers", lists the set).
#   scripts/test-sanitize.sh              # address, then thread
#   SANITIZERS=thread scripts/test-sanitize.sh
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
swift=${SWIFT:-swift}
sanitizers=${SANITIZERS:-address thread}

# The unit tests: every suite of these targets...
unit_filter='^(CRMCoreTests|CRMConfigTests|AWSSigV4Tests|SNSSupportTests|ProcaCryptoTests|SystemLibraryTests|CRMSourceHTTPTests|CRMStoreTests|CRMIngestTests|SQSClientTests\.(CredentialsSourceTests|CredentialsRenewalTests|SQSClientRefusalTests)|CRMSourceRabbitMQTests\.DeliveryTrackerTests)[./]'
# ...but not the PostgreSQL store's own suites, nor the CRMIngestTests suites that run the crm-ingest binary (command
# line, PostgreSQL start-up) or make, readelf and ldd on it (packaging).
unit_skip='^(CRMStoreTests\.Postgres|CRMIngestTests\.(CommandLineTests|PostgresStartupTests|PackagingTests))'
selection=(--filter "$unit_filter" --skip "$unit_skip")
# The store contract suite runs against SQLite only (Tests/CRMStoreTests/Contract/StoreHarness.swift).
export CRM_TEST_STORES=sqlite

status=0
for sanitizer in $sanitizers; do
    scratch=".build-$sanitizer"
    log=$(mktemp "/tmp/crm-ingest-sanitize-$sanitizer.XXXXXX.log")
    case "$sanitizer" in
    address)
        # halt_on_error: the first report fails the run. Leaks are checked at exit (LeakSanitizer); the suppressed
        # ones are explained in the file.
        env=(ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:print_suppressions=0"
             LSAN_OPTIONS="suppressions=$root/scripts/sanitizers/lsan.supp:print_suppressions=0")
        ;;
    thread)
        env=(TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/scripts/sanitizers/tsan.supp:print_suppressions=0")
        ;;
    *)
        echo "unknown sanitizer: $sanitizer (address or thread)" >&2
        exit 2
        ;;
    esac

    echo "==== $sanitizer: building into $scratch"
    start=$(date +%s)
    if ! $swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch"; then
        echo "==== $sanitizer: the build failed" >&2
        status=1
        continue
    fi
    built=$(date +%s)
    echo "==== $sanitizer: built in $((built - start)) s; running the unit tests (the whole output is in $log)"
    env "${env[@]}" $swift test --skip-build --disable-xctest --sanitize="$sanitizer" --scratch-path "$scratch" \
        "${selection[@]}" 2>&1 | tee "$log"
    run_status=${PIPESTATUS[0]}
    echo "==== $sanitizer: ran in $(($(date +%s) - built)) s, exit status $run_status"
    # A report that did not end the process (or one that lost its exit status on the way) still fails the run.
    if grep -qE "^(==[0-9]+==)?(ERROR|WARNING): (Address|Leak|Thread)Sanitizer|^SUMMARY: (Address|Leak|Thread)Sanitizer" "$log"; then
        echo "==== $sanitizer: sanitizer reports:" >&2
        grep -E "(ERROR|WARNING): (Address|Leak|Thread)Sanitizer|^SUMMARY: " "$log" | sort | uniq -c >&2
        [ "$run_status" -ne 0 ] || run_status=1
    fi
    if [ "$run_status" -ne 0 ]; then
        grep -E "✘|recorded an issue|Fatal error" "$log" | cut -c1-600 | tail -40 >&2
        status=1
    fi
done
exit "$status"
