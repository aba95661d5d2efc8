#!/usr/bin/env bash
# Builds every fuzz target in fuzz/fuzz_targets/ with libFuzzer's coverage instrumentation on the
# stable toolchain (no nightly, no cargo-fuzz needed) and runs each for SECONDS (default 10), starting
# from the committed seeds in fuzz/corpus/<target>/. New inputs go to fuzz/target/corpus/<target>/,
# crashes to fuzz/artifacts/<target>/. Exits non-zero if any target fails to build or finds a crash.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-10}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

# What `cargo fuzz build --sanitizer none` passes (libfuzzer-sys README), plus the debug checks that
# turn silent arithmetic and slice bugs into crashes. An explicit --target keeps these flags off build
# scripts and proc macros.
host="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
echo "fuzz.sh: building ${#targets[@]} targets"
cargo build --release --target "$host" "${targets[@]/#/--bin=}"

failed=()
for t in "${targets[@]}"; do
    seeds="corpus/$t"
    work="target/corpus/$t"
    mkdir -p "$work" "artifacts/$t" target/logs
    if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
        echo "fuzz.sh: warning: no seeds in fuzz/$seeds" >&2
        mkdir -p "$seeds"
    fi
    log="target/logs/$t.log"
    if "target/$host/release/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" "$work" "$seeds" >"$log" 2>&1; then
        echo "fuzz.sh: $t: ok ($(grep -o 'Done [0-9]* runs' "$log" | tail -1 | cut -d' ' -f2) runs in ${seconds}s)"
    else
        echo "fuzz.sh: $t: FAILED; last lines of fuzz/$log:" >&2
        tail -n 30 "$log" >&2
        ls "artifacts/$t" >&2
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets ran ${seconds}s each without a crash"
