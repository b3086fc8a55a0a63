#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/, a package of its own) with AddressSanitizer and runs each for FUZZ_SECONDS,
# then prints per target: executions, executions per second, coverage (libFuzzer's final cov: and ft:) and crashes.
# Exits non-zero when a target crashed, leaked, hung or ran out of memory, naming the input that did it.
#
#   FUZZ_SECONDS=60             how long each target runs (libFuzzer -max_total_time)
#   FUZZ_TARGETS=a,b            only these targets (names as in Fuzz/Package.swift; default all)
#   FUZZ_MAX_LEN=16384          longest input libFuzzer makes (bigger seeds are read cut to this)
#   FUZZ_WORK=Fuzz/.build-fuzz/work   where the generated corpus, crash inputs and logs go (not in git)
#   FUZZ_BUILD=1                FUZZ_BUILD=0 skips the build (the binaries must be there)
#
# Seeds: Fuzz/corpus/<target>/ (valid samples from Fuzz/make-seeds.py and the inputs of crashes that were fixed)
# and, read only, the bad-input corpus folders of Tests/Fixtures/bad-input/ that match the target.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-16384}
FUZZ_WORK=${FUZZ_WORK:-Fuzz/.build-fuzz/work}
SCRATCH=Fuzz/.build-fuzz
# Swift's own crash backtracer reads the crashed process's memory and trips AddressSanitizer, whose report then
# names the backtracer instead of the trap; without it libFuzzer's "deadly signal" stack names the Swift line.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
ALL_TARGETS=(FuzzDefaultFormat FuzzCustomFormat FuzzProcaFormat FuzzJomablueFormat FuzzAltcraftImportFormat FuzzHTTPIntegration
    FuzzJSONFlattening FuzzSNSUnwrap FuzzSNSFilterPolicy FuzzConfigParser FuzzSigV4Canonicalizer)

# The bad-input corpus folders each target also reads (space-separated, under Tests/Fixtures/bad-input/).
bad_input_folders() {
    case "$1" in
        FuzzDefaultFormat | FuzzJSONFlattening) echo "default" ;;
        FuzzProcaFormat) echo "proca" ;;
        FuzzAltcraftImportFormat) echo "altcraft" ;;
        FuzzHTTPIntegration) echo "http" ;;
        FuzzSNSUnwrap) echo "sns jomablue" ;;
        *) echo "" ;;
    esac
}

if [ -n "${FUZZ_TARGETS:-}" ]; then
    IFS=, read -r -a targets <<<"$FUZZ_TARGETS"
    for target in "${targets[@]}"; do
        [[ " ${ALL_TARGETS[*]} " == *" $target "* ]] || { echo "unknown fuzz target $target (targets: ${ALL_TARGETS[*]})" >&2; exit 2; }
    done
else
    targets=("${ALL_TARGETS[@]}")
fi

# --sanitize=fuzzer tells SwiftPM these are libFuzzer executables (no renamed entry point; libFuzzer brings main)
# and instruments the C code; SwiftPM hands swiftc -sanitize=fuzzer and -sanitize=address as two flags, of which
# swiftc keeps only the last, so the Swift code would get no coverage counters: -Xswiftc -sanitize=fuzzer,address
# (one flag, after them) gives it both.
build_flags=(-c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -g
    --package-path Fuzz --scratch-path "$SCRATCH")
if [ "${FUZZ_BUILD:-1}" != 0 ]; then
    if [ -z "${FUZZ_TARGETS:-}" ]; then
        echo "== building every fuzz target"
        "$SWIFT" build "${build_flags[@]}"
    else
        for target in "${targets[@]}"; do
            echo "== building $target"
            "$SWIFT" build "${build_flags[@]}" --product "$target"
        done
    fi
fi
bin=$("$SWIFT" build "${build_flags[@]}" --show-bin-path)

summary=()
failed=()
for target in "${targets[@]}"; do
    work="$FUZZ_WORK/$target"
    mkdir -p "$work/corpus" "$work/artifacts"
    rm -f "$work/artifacts"/*
    seeds=("Fuzz/corpus/$target")
    for folder in $(bad_input_folders "$target"); do seeds+=("Tests/Fixtures/bad-input/$folder"); done
    log="$work/fuzz.log"
    echo "== $target: ${FUZZ_SECONDS}s, seeds ${seeds[*]}, log $log"
    status=0
    "$bin/$target" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len="$FUZZ_MAX_LEN" \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "${seeds[@]}" >"$log" 2>&1 || status=$?
    # The last status line (`#N DONE cov: … ft: …`, or the last `#N …` line when it stopped on a finding).
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
    rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -n 1)
    [ -n "$runs" ] || runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    [ -n "$rate" ] || rate=$(sed -nE 's/.* exec\/s: ([0-9]+).*/\1/p' <<<"$last")
    findings=$(find "$work/artifacts" -type f | sort)
    if [ "$status" -ne 0 ] || [ -n "$findings" ]; then
        crashes=$(grep -c . <<<"$findings" || true)
        [ "$crashes" -gt 0 ] || crashes=1
        failed+=("$target")
        echo "!! $target stopped with status $status; the finding:"
        grep -E '^==[0-9]+== ?ERROR|^SUMMARY|Fatal error|deadly signal|#[0-9]+ 0x[0-9a-f]+ in .*[.]swift:[0-9]|Test unit written to|ERROR: libFuzzer' "$log" | head -n 20 || true
        for finding in $findings; do echo "!! crash input: $finding   (reproduce: SWIFT_BACKTRACE=enable=no $bin/$target $finding)"; done
    else
        crashes=0
    fi
    summary+=("$(printf '%-26s %12s %8s %6s %7s %7s' "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$crashes")")
done

echo
printf '%-26s %12s %8s %6s %7s %7s\n' target executions exec/s cov ft crashes
printf '%s\n' "${summary[@]}"
echo "($FUZZ_SECONDS s each, max_len $FUZZ_MAX_LEN; logs and generated corpora under $FUZZ_WORK/)"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]}" >&2
    exit 1
fi
