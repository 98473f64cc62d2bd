#!/usr/bin/env bash
# bench/selftest.sh: the benchmarks' pass/fail logic on synthetic input, in
# about a second (no benchmark runs): a **FAIL** row or a missing measurement
# must fail the run, and only all-pass documents exit 0.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
die() { printf 'bench/selftest.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. ./lib.sh

expect() { # WANT GOT WHAT
    [[ $1 == "$2" ]] || die "$3: want '$1', got '$2'"
}
expect '**pass**' "$(verdict 5 4)" "5 >= 4"
expect '**pass**' "$(verdict 4 4 '>=')" "4 >= 4"
expect '**FAIL**' "$(verdict 3.9 4)" "3.9 >= 4"
expect '**pass**' "$(verdict 3 4 '<=')" "3 <= 4"
expect '**FAIL**' "$(verdict 5 4 '<=')" "5 <= 4"
expect '**pass**' "$(verdict 1e3 999.5)" "1e3 >= 999.5"
for missing in "" nan "–" "n/a"; do
    expect '**FAIL**' "$(verdict "$missing" 1)" "a missing measurement ('$missing') against 1"
    expect '**FAIL**' "$(verdict 1 "$missing")" "1 against a missing reference ('$missing')"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
table() { # RESULT...: a document with one target row per result
    printf '# Benchmarks\n\n| target | required | measured | result |\n|---|---|---|---|\n'
    local r
    for r in "$@"; do printf '| a target | ≥ 1 | 2 | %s |\n' "$r"; done
    printf '\nThe word **FAIL** in prose is not a row.\n'
}
table '**pass**' '**pass**' >"$tmp/pass.md"
table '**pass**' '**FAIL**' '**pass**' >"$tmp/fail.md"
expect 0 "$(missed_targets "$tmp/pass.md" | wc -l)" "rows missed in an all-pass document"
expect 1 "$(missed_targets "$tmp/fail.md" | wc -l)" "rows missed in a document with one FAIL"

# bench/run.sh --check: the same exit a full run that wrote the document would give.
rc=0
bash ./run.sh --check "$tmp/pass.md" >/dev/null 2>&1 || rc=$?
expect 0 "$rc" "bench/run.sh --check on an all-pass document"
rc=0
out=$(bash ./run.sh --check "$tmp/fail.md" 2>&1) || rc=$?
expect "$MISSED_TARGETS_EXIT" "$rc" "bench/run.sh --check on a document with a FAIL row"
[[ $out == *"| a target | ≥ 1 | 2 | **FAIL** |"* ]] || die "the missed row is not named: $out"
rc=0
(exit_on_missed_targets "$tmp/fail.md" test) 2>/dev/null || rc=$?
expect "$MISSED_TARGETS_EXIT" "$rc" "exit_on_missed_targets (bench/mirror.sh and bench/operator.sh end with it)"

# Each section bench/run.sh appends ends by failing on its own missed targets,
# and run.sh runs the S3 and mirror sections (whose targets issue 11 sets),
# the TLS one (issue 15's), the notifications one (issue 16's) and the UI one (issue 14's).
for f in s3.sh mirror.sh tls.sh notifications.sh ui.sh operator.sh; do
    [[ $(grep -v '^[[:space:]]*$' "$f" | tail -n 1) == 'exit_on_missed_targets "$OUT" "bench/'"$f"'"' ]] ||
        die "bench/$f does not end with exit_on_missed_targets"
done
for f in s3.sh mirror.sh tls.sh notifications.sh ui.sh; do
    grep -q "sub_bench [a-z0-9]* $f" run.sh || die "bench/run.sh does not run bench/$f"
done
# Their options parse without running anything; a bad link is refused.
for f in s3.sh mirror.sh tls.sh notifications.sh ui.sh; do
    bash "./$f" --help >/dev/null || die "bench/$f --help failed"
done
rc=0
bash ./mirror.sh --links "1gbit fast" >/dev/null 2>&1 || rc=$?
expect 2 "$rc" "bench/mirror.sh --links with a link that is not a tc rate"
echo "bench/selftest.sh: ok"
