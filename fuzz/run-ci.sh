#!/usr/bin/env bash
# Builds every fuzz target, then runs each for FUZZ_SECONDS (default 20) over its committed seed
# corpus (corpus/<target>/) plus every kept finding (regressions/<target>/), one target at a
# time. Exits non-zero if any target crashes, fails a check, hangs or runs out of memory, and
# prints the failing input's path (under fuzz/artifacts/<target>/). See docs/FUZZING.md.
#
#   fuzz/run-ci.sh                      # every target, 20 s each
#   FUZZ_SECONDS=300 fuzz/run-ci.sh     # longer runs
#   fuzz/run-ci.sh wal_replay promql    # some targets only
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install --locked cargo-fuzz`). New inputs
# the fuzzer finds go to a scratch directory, never into the committed corpus.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-20}"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

nice -n 19 cargo +nightly fuzz build

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=()
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    inputs=("corpus/$target")
    if [ -d "regressions/$target" ]; then
        inputs+=("regressions/$target")
    fi
    echo "=== $target: ${seconds}s over ${inputs[*]}"
    # The first directory receives new inputs: the scratch one.
    if ! nice -n 19 cargo +nightly fuzz run "$target" "$scratch/$target" "${inputs[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1; then
        failed+=("$target")
        echo "=== $target FAILED (the input is in fuzz/artifacts/$target/)"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing failed: ${failed[*]}"
    exit 1
fi
echo "fuzzing passed: ${targets[*]}"
