# shellcheck shell=bash
# Helpers the benchmark scripts share (sourced; the caller defines `die`).

# A free TCP port on 127.0.0.1 (nothing answers on it).
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# User+system clock ticks of PID so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Compilers, linkers and e2e cluster processes also on the machine (a read-only look at ps).
other_builds() { ps -eo comm= | grep -c -E '^(rustc|cargo|cc1|cc1plus|ld|ld.lld|mold|go|compile|link|kubelet|containerd)$' || true; }

# verdict A B [OP]: "**pass**" when A OP B (OP is >= or <=, default >=),
# else "**FAIL**"; a missing or non-numeric measurement is a FAIL, never a pass.
verdict() {
    awk -v a="$1" -v b="$2" -v op="${3:->=}" 'function num(x) {return x ~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/}
        BEGIN {ok = num(a) && num(b) && ((op == "<=") ? (a + 0 <= b + 0) : (a + 0 >= b + 0)); print ok ? "**pass**" : "**FAIL**"}'
}

# Exit status of a benchmark whose document shows a missed target (the run
# itself worked): distinct from 1, a run that broke.
MISSED_TARGETS_EXIT=3

# missed_targets FILE: the target rows of FILE whose result is **FAIL**.
missed_targets() { grep -E '^\|.*\| \*\*FAIL\*\* \|[[:space:]]*$' "$1" || true; }

# exit_on_missed_targets FILE NAME: after the document is written, a missed
# target fails the run (exit $MISSED_TARGETS_EXIT), naming the rows.
exit_on_missed_targets() {
    local missed
    missed=$(missed_targets "$1")
    [[ -z $missed ]] && return 0
    printf '%s: missed target(s), see %s:\n%s\n' "$2" "$1" "$missed" >&2
    exit "$MISSED_TARGETS_EXIT"
}
