#!/usr/bin/env bash
# scripts/fuzz.sh: builds the cargo-fuzz targets in registry/fuzz, then runs
# each one for a fixed time over the committed corpus (docs/fuzzing.md).
#
#   bash scripts/fuzz.sh SECONDS [TARGET...]   every target (or those named)
#
# The committed corpus (registry/fuzz/corpus/<target>) is only read: new
# inputs go to a scratch corpus under $FUZZ_TARGET_DIR, crashes to
# $FUZZ_TARGET_DIR/artifacts/<target>/. A crash, a timeout (an input taking
# more than FUZZ_TIMEOUT seconds) or running out of memory fails the run.
# Prints one line per target: executions and seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
toolchain=${FUZZ_TOOLCHAIN:-nightly}
# Outside the checkout by default, so a fresh clone reuses the sanitizer build of the dependencies.
target_dir=${FUZZ_TARGET_DIR:-${WHARF_CACHE:-$HOME/.cache/wharf}/fuzz-target}
timeout=${FUZZ_TIMEOUT:-10}
export PATH=${WHARF_CACHE:-$HOME/.cache/wharf}/bin:$PATH

command -v cargo-fuzz >/dev/null || { echo "scripts/fuzz.sh: cargo-fuzz not found; run scripts/tools.sh" >&2; exit 1; }

t0=$SECONDS
(cd registry && nice -n 10 cargo "+$toolchain" fuzz build --target-dir "$target_dir") >&2
echo "fuzz: built in $((SECONDS - t0))s" >&2

triple=$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')
bin_dir=$target_dir/$triple/release
if (($# == 0)); then
    mapfile -t targets < <(cd registry && cargo "+$toolchain" fuzz list)
else
    targets=("$@")
fi

failed=()
printf '%-12s %12s %8s\n' target executions seconds
for t in "${targets[@]}"; do
    corpus=registry/fuzz/corpus/$t
    scratch=$target_dir/scratch-corpus/$t
    artifacts=$target_dir/artifacts/$t
    log=$target_dir/logs/$t.log
    mkdir -p "$corpus" "$scratch" "$artifacts" "$(dirname "$log")"
    start=$SECONDS
    # The scratch corpus comes first: libFuzzer writes new inputs to the first directory.
    if "$bin_dir/$t" -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" "$scratch" "$corpus" >"$log" 2>&1; then
        runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -n 1 | awk '{print $2}')
        printf '%-12s %12s %8s\n' "$t" "${runs:-?}" "$((SECONDS - start))"
    else
        printf '%-12s %12s %8s\n' "$t" FAILED "$((SECONDS - start))"
        echo "--- $t: the last lines of $log (the input is in $artifacts/)" >&2
        tail -n 40 "$log" >&2
        failed+=("$t")
    fi
done
if ((${#failed[@]})); then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
