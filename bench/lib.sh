# shellcheck shell=bash
# Helpers the benchmark scripts share (sourced; the caller defines `die`).

# A free TCP port on 127.0.0.1 (nothing answers on it), below the kernel's
# ephemeral range: a port from that range can be taken by any client's
# outgoing connection between this check and the server's bind.
free_port() {
    local p i low
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    ((low > 11000)) || die "the ephemeral port range starts at $low: no room below it for benchmark servers"
    for ((i = 0; i < 200; i++)); do
        p=$((10000 + RANDOM % (low - 10000)))
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

# ---------------------------------------------------------------- processes
# Every process a benchmark starts goes into PIDS; SAMPLER is an optional
# memory sampler. bench_workdir sets the trap that stops them all.
PIDS=()
SAMPLER=""
WORK=""

# stop_pid PID: TERM, wait up to 10 s, then KILL.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
    local pid
    if [[ -n $SAMPLER ]]; then kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; fi
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ -n $WORK && -d $WORK ]]; then rm -rf "$WORK"; fi
}

# bench_workdir NAME: WORK (on the same disk as the test data, not tmpfs:
# storage roots, configs, logs) and RESULTS, removed on exit with every process.
bench_workdir() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$WHARF_CACHE/bench"
    WORK=$(mktemp -d "$WHARF_CACHE/bench/$1.XXXXXX")
    RESULTS=$WORK/results.tsv # who <tab> metric <tab> value
    : >"$RESULTS"
}

# record WHO METRIC VALUE: one measurement into RESULTS.
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }

now() { date +%s.%N; }

# wait_http URL PID NAME [CODE]: until URL answers CODE (default: any status
# below 500), with a 30 s deadline; fails if PID dies meanwhile.
wait_http() {
    local url=$1 pid=$2 name=$3 want=${4:-} deadline code
    deadline=$(($(date +%s) + 30))
    while (($(date +%s) < deadline)); do
        kill -0 "$pid" 2>/dev/null || { tail -20 "$WORK/$name.log" >&2 || true; die "$name exited during start-up"; }
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        if [[ -n $want ]]; then [[ $code == "$want" ]] && return; else [[ $code =~ ^[1-4][0-9][0-9]$ ]] && return; fi
        sleep 0.05
    done
    tail -20 "$WORK/$name.log" >&2 || true
    die "$name not answering${want:+ $want} at $url within 30s"
}

# ---------------------------------------------------------------- measures
TICKS=$(getconf CLK_TCK)

# per_gib TICKS BYTES: CPU seconds per GiB.
per_gib() { awk -v d="$1" -v k="$TICKS" -v b="$2" 'BEGIN {printf "%.2f", d / k / (b / 2^30)}'; }

# status_kib PID FIELD: a /proc/PID/status field in KiB (VmRSS, VmHWM).
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------- data
# cached_random FILE SIZE: FILE holds SIZE random (incompressible) bytes,
# with its digest in FILE.sha256; both are kept across runs.
cached_random() {
    local f=$1 size=$2
    if [[ ! -f $f || $(stat -c %s "$f") != "$size" ]]; then
        log "generating $f ($size bytes from /dev/urandom)"
        head -c "$size" /dev/urandom >"$f.tmp"
        mv "$f.tmp" "$f"
        rm -f "$f.sha256"
    fi
    if [[ ! -f $f.sha256 || $f.sha256 -ot $f ]]; then
        sha256sum "$f" | awk '{print "sha256:" $1}' >"$f.sha256"
    fi
}

# ---------------------------------------------------------------- report
# values WHO METRIC: every recorded value; med: their median.
values() { awk -F'\t' -v s="$1" -v m="$2" '$1 == s && $2 == m {print $3}' "$RESULTS"; }
med() { values "$1" "$2" | median; }

# cell WHO METRIC [DIVISOR]: the median with one decimal, and every run when there were several.
cell() {
    local d=${3:-1} v
    v=$(values "$1" "$2")
    [[ -n $v ]] || { echo "–"; return; }
    if ((RUNS > 1)); then
        printf '%s (%s)' "$(median <<<"$v" | awk -v d="$d" '{printf "%.1f", $1 / d}')" \
            "$(awk -v d="$d" '{printf "%s%.1f", (NR > 1 ? ", " : ""), $1 / d}' <<<"$v")"
    else
        median <<<"$v" | awk -v d="$d" '{printf "%.1f", $1 / d}'
    fi
}

# ratio A B: A/B with two decimals ("–" when B is not positive: a FAIL for verdict).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "–"}'; }

# fmt_size BYTES: "1 GiB", "64 MiB".
fmt_size() { awk -v b="$1" 'BEGIN {if (b >= 2^30) printf "%g GiB", b / 2^30; else printf "%g MiB", b / 2^20}'; }

# stop_sampler WHO PID: stops the RSS sampler (it writes $WORK/rss.max when
# $WORK/stop appears) and records WHO's peak RSS: the larger of the sampled
# maximum and the kernel's high-water mark.
stop_sampler() {
    local hwm sampled
    touch "$WORK/stop"
    wait "$SAMPLER"
    SAMPLER=""
    hwm=$(status_kib "$2" VmHWM)
    sampled=$(cat "$WORK/rss.max")
    record "$1" conc_peak_rss_kib "$((hwm > sampled ? hwm : sampled))"
}

# all_complete WHO N SIZE: fails unless $WORK/parallel.out shows N answers
# of 200 with SIZE bytes each (curl -w '%{http_code} %{size_download}').
all_complete() {
    local ok
    ok=$(awk -v n="$3" '$1 == 200 && $2 == n' "$WORK/parallel.out" | wc -l)
    ((ok == $2)) || { cat "$WORK/parallel.err" >&2; sort "$WORK/parallel.out" | uniq -c >&2; die "$1: only $ok of $2 concurrent pulls were complete"; }
}

# A CA, and a leaf it signs for 127.0.0.1 (IP SAN) and localhost; both
# ECDSA P-256 with SHA-256 signatures, valid for a day.
make_certs() { # into $WORK: ca.crt (also $CA), leaf.crt, leaf.key
    CA=$WORK/ca.crt
    local d=$WORK/pki
    mkdir -p "$d"
    cat >"$d/ca.cnf" <<'EOF'
[req]
prompt = no
distinguished_name = dn
x509_extensions = ext
[dn]
CN = wharf bench CA
[ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    cat >"$d/leaf.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    if ! {
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/ca.key" 2>"$d/err" &&
            openssl req -x509 -new -config "$d/ca.cnf" -key "$d/ca.key" -sha256 -days 1 -out "$CA" 2>>"$d/err" &&
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/leaf.key" 2>>"$d/err" &&
            openssl req -new -key "$WORK/leaf.key" -subj /CN=127.0.0.1 -out "$d/leaf.csr" 2>>"$d/err" &&
            openssl x509 -req -in "$d/leaf.csr" -CA "$CA" -CAkey "$d/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
                -sha256 -days 1 -extfile "$d/leaf.ext" -out "$WORK/leaf.crt" 2>>"$d/err" &&
            openssl verify -CAfile "$CA" "$WORK/leaf.crt" >>"$d/err" 2>&1
    }; then
        cat "$d/err" >&2
        die "openssl could not make the certificates"
    fi
}
