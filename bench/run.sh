#!/usr/bin/env bash
# bench/run.sh: wharf-registry and distribution v3 side by side on loopback,
# with nginx serving the same bytes as files for comparison, all measured in
# one run with the same client (curl for transfers, wrk for manifest GETs).
#
# Then bench/s3.sh (wharf and distribution on the same S3 server, versitygw:
# push, pull, 50 concurrent pulls, against versitygw's own GET),
# bench/mirror.sh (the pull-through cache: cold and warm pulls through a
# wharf mirror against direct and local pulls, behind 1 Gbit/s, 10 Gbit/s and
# no link, with filesystem and S3 storage), bench/gc.sh (an online garbage
# collection pass over 10,000 manifests and 50,000 blobs, and the pulls
# beside it), bench/auth.sh (pulls through
# htpasswd auth against an open registry), bench/tls.sh (pulls and manifest
# GETs over HTTPS against plain HTTP, wharf and distribution),
# bench/notifications.sh (small pushes with notifications on and a slow
# receiver, against off), bench/ui.sh (the search API and the UI's pages at
# 10,000 repositories and 100,000 tags) and bench/operator.sh (the operator with 100 Registries on a real
# kube-apiserver) run, and their sections are appended to the same document.
#
#   bash bench/run.sh            full run (~12-16 min), writes docs/benchmarks.md
#   bash bench/run.sh --quick    small sizes, 1 run each, writes $WHARF_CACHE/bench/quick.md
#
# Options: --quick, --runs N, --out FILE, --no-build (use target/release as is),
# --no-s3, --no-mirror, --no-gc, --no-auth, --no-tls, --no-notifications, --no-ui, --no-operator (leave those sections out), --check FILE
# (run nothing: exit as a run that wrote FILE would, by its **FAIL** rows).
# Environment: WHARF_CACHE (default ~/.cache/wharf), WHARF_REGISTRY_BIN (a
# prebuilt wharf-registry to use instead of building one), WHARF_OPERATOR_BIN.
# Exit status: 0 only when every target in the document passed; 3 when the
# document was written but shows a **FAIL** row (here or in a section below);
# 1 when a benchmark broke. bench/selftest.sh checks that logic in a second.
#
# Every process this script starts is stopped by PID on exit, and its work
# directory (on the same disk as the cached test data) is removed. All
# traffic goes to 127.0.0.1; every loop is bounded in count and time.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WHARF_CACHE=${WHARF_CACHE:-$HOME/.cache/wharf}
export PATH="$WHARF_CACHE/bin:$HOME/.cargo/bin:/usr/local/go/bin:$PATH:/usr/sbin:/sbin"

QUICK=0
RUNS=""
OUT=""
BUILD=1
S3=1
MIRROR=1
GC=1
AUTH=1
TLS=1
NOTIFICATIONS=1
UI=1
OPERATOR=1
CHECK=""
while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --runs=*) RUNS=${1#*=} ;;
    --out) OUT=$2; shift ;;
    --out=*) OUT=${1#*=} ;;
    --no-build) BUILD=0 ;;
    --no-s3) S3=0 ;;
    --no-mirror) MIRROR=0 ;;
    --no-gc) GC=0 ;;
    --no-auth) AUTH=0 ;;
    --no-tls) TLS=0 ;;
    --no-notifications) NOTIFICATIONS=0 ;;
    --no-ui) UI=0 ;;
    --no-operator) OPERATOR=0 ;;
    --check) CHECK=$2; shift ;;
    -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

if ((QUICK)); then
    BIG=$((128 << 20)) SMALL=$((16 << 20)) CONC=50 WRK_SECS=3 RUNS=${RUNS:-1}
    OUT=${OUT:-$WHARF_CACHE/bench/quick.md}
else
    BIG=$((1 << 30)) SMALL=$((64 << 20)) CONC=50 WRK_SECS=10 RUNS=${RUNS:-3}
    OUT=${OUT:-$ROOT/docs/benchmarks.md}
fi
WRK_CONNS=32
REPO_BIG=bench/big
REPO_SMALL=bench/small
TAG=latest
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --check FILE: no benchmark, only the verdict on a written document.
if [[ -n $CHECK ]]; then
    [[ -s $CHECK ]] || die "--check $CHECK: no such document"
    exit_on_missed_targets "$CHECK" "bench/run.sh"
    echo "bench/run.sh: every target in $CHECK passed"
    exit 0
fi

# ---------------------------------------------------------------- tools
if [[ -f $ROOT/scripts/tools.sh ]]; then
    log "installing tools with scripts/tools.sh"
    bash "$ROOT/scripts/tools.sh" >&2 || die "scripts/tools.sh failed"
else
    log "scripts/tools.sh not found: using the tools already on PATH"
fi
missing=()
for t in distribution-registry nginx wrk curl jq sha256sum awk sort timeout; do
    command -v "$t" >/dev/null || missing+=("$t")
done
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (run scripts/tools.sh, or install them into $WHARF_CACHE/bin)"

if ((BUILD)); then
    # One build of both binaries; the mirror and operator benchmarks reuse it.
    log "building (cargo build --release --locked -p wharf-registry -p wharf-operator)"
    (cd "$ROOT" && cargo build --release --locked -p wharf-registry -p wharf-operator >&2) || die "cargo build failed"
fi
WHARF_BIN=${WHARF_REGISTRY_BIN:-$ROOT/target/release/wharf-registry}
OPERATOR_BIN=${WHARF_OPERATOR_BIN:-$ROOT/target/release/wharf-operator}
[[ -x $WHARF_BIN ]] || die "no wharf-registry binary at $WHARF_BIN"
((OPERATOR == 0)) || [[ -x $OPERATOR_BIN ]] || die "no wharf-operator binary at $OPERATOR_BIN"

bench_workdir run

# ---------------------------------------------------------------- helpers


# utime+stime of a process (all threads) in clock ticks.
# For nginx: the master and its workers.
cpu_ticks_tree() {
    local total=0 p
    for p in $1 $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        total=$((total + $(cpu_ticks "$p")))
    done
    echo "$total"
}


# ---------------------------------------------------------------- data
# Random (incompressible) data, cached across runs under $WHARF_CACHE/bench.
data_file() { cached_random "$WHARF_CACHE/bench/blob-$1.bin" "$1"; echo "$WHARF_CACHE/bench/blob-$1.bin"; }
BIG_FILE=$(data_file "$BIG")
SMALL_FILE=$(data_file "$SMALL")
BIG_DIGEST=$(cat "$BIG_FILE.sha256")
SMALL_DIGEST=$(cat "$SMALL_FILE.sha256")

# A small OCI image: a config blob and one layer (the SMALL blob).
CONFIG_FILE=$WORK/config.json
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]},"config":{}}' "$SMALL_DIGEST" >"$CONFIG_FILE"
CONFIG_DIGEST=sha256:$(sha256sum "$CONFIG_FILE" | awk '{print $1}')
MANIFEST_FILE=$WORK/manifest.json
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
    "$MT_MANIFEST" "$CONFIG_DIGEST" "$(stat -c %s "$CONFIG_FILE")" "$SMALL_DIGEST" "$SMALL" >"$MANIFEST_FILE"
MANIFEST_DIGEST=sha256:$(sha256sum "$MANIFEST_FILE" | awk '{print $1}')

# ---------------------------------------------------------------- servers
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $LOAD_BEFORE"
# Other work sharing the machine (a read-only look at ps): compilers, linkers,
# an e2e cluster's kubelet or containerd.
other_work() { ps -eo comm= | grep -c -E '^(rustc|cargo|cc1|cc1plus|ld|ld.lld|mold|go|compile|link|kubelet|containerd)$' || true; }
OTHER_BEFORE=$(other_work)

registry_config() { # FILE ROOTDIR PORT
    cat >"$1" <<EOF
version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: $2
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$3
EOF
}

declare -A URL PID ROOTDIR
start_registry() { # NAME CMD...
    local name=$1 port
    shift
    port=$(free_port)
    ROOTDIR[$name]=$WORK/$name-storage
    mkdir -p "${ROOTDIR[$name]}"
    registry_config "$WORK/$name.yml" "${ROOTDIR[$name]}" "$port"
    # Both log at warn, so neither prints its "listening on" line (that is an
    # info line in both): readiness is a poll of GET /v2/ with a deadline.
    # OTEL_*: distribution v3 would otherwise set up an OTLP trace exporter.
    OTEL_SDK_DISABLED=true OTEL_TRACES_EXPORTER=none \
        "$@" serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=("$!")
    URL[$name]=http://127.0.0.1:$port
    wait_http "${URL[$name]}/v2/" "${PID[$name]}" "$name" 200
    local rss
    rss=$(status_kib "${PID[$name]}" VmRSS)
    record "$name" idle_rss_kib "$rss"
    log "$name ready on ${URL[$name]} (pid ${PID[$name]}, idle VmRSS ${rss} KiB)"
}

start_nginx() {
    local dir=$WORK/nginx port
    port=$(free_port)
    mkdir -p "$dir/www" "$dir/tmp"
    # Hard links: the same bytes as the registries get, no copy.
    ln "$BIG_FILE" "$dir/www/big.bin"
    ln "$SMALL_FILE" "$dir/www/small.bin"
    cp "$MANIFEST_FILE" "$dir/www/manifest.json"
    local user=""
    (($(id -u) == 0)) && user="user root;"
    cat >"$dir/nginx.conf" <<EOF
$user
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    types { application/octet-stream bin; $MT_MANIFEST json; }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$port;
        root $dir/www;
    }
}
EOF
    nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' >"$WORK/nginx.log" 2>&1 &
    PID[nginx]=$!
    PIDS+=("$!")
    URL[nginx]=http://127.0.0.1:$port
    wait_http "${URL[nginx]}/manifest.json" "${PID[nginx]}" nginx 200
    log "nginx ready on ${URL[nginx]} (pid ${PID[nginx]})"
}

start_registry wharf "$WHARF_BIN"
start_registry distribution distribution-registry
start_nginx
SERVERS=(wharf distribution nginx)
REGISTRIES=(wharf distribution)

blob_url() { # SERVER big|small
    if [[ $1 == nginx ]]; then
        echo "${URL[nginx]}/$2.bin"
    elif [[ $2 == big ]]; then
        echo "${URL[$1]}/v2/$REPO_BIG/blobs/$BIG_DIGEST"
    else
        echo "${URL[$1]}/v2/$REPO_SMALL/blobs/$SMALL_DIGEST"
    fi
}
manifest_url() {
    if [[ $1 == nginx ]]; then echo "${URL[nginx]}/manifest.json"; else echo "${URL[$1]}/v2/$REPO_SMALL/manifests/$TAG"; fi
}
server_ticks() { if [[ $1 == nginx ]]; then cpu_ticks_tree "${PID[$1]}"; else cpu_ticks "${PID[$1]}"; fi; }

# Monolithic push: POST an upload, PUT the whole body with the digest.
# Prints "seconds" of the PUT (the transfer; the POST is a few ms).
push_blob() { # SERVER REPO FILE DIGEST
    local base=${URL[$1]} repo=$2 file=$3 digest=$4 loc sep out code secs
    loc=$(curl -sS --max-time 30 -o /dev/null -D - -X POST "$base/v2/$repo/blobs/uploads/" |
        awk 'tolower($1) == "location:" {sub(/\r$/, ""); print $2}')
    [[ -n $loc ]] || die "$1: POST /v2/$repo/blobs/uploads/ gave no Location"
    [[ $loc == /* ]] && loc=$base$loc
    [[ $loc == *\?* ]] && sep='&' || sep='?'
    out=$(curl -sS --max-time 600 -o "$WORK/put.body" -w '%{http_code} %{time_total}' \
        -H 'Expect:' -H 'Content-Type: application/octet-stream' \
        -T "$file" "$loc${sep}digest=$digest")
    read -r code secs <<<"$out"
    [[ $code == 201 ]] || { cat "$WORK/put.body" >&2; die "$1: blob PUT answered $code"; }
    echo "$secs"
}

# The blob's files in the registry:2 layout, removed between timed pushes so
# that every push stores a new blob (the same layout for both registries).
forget_blob() { # SERVER REPO DIGEST
    local hex=${3#sha256:} v2=${ROOTDIR[$1]}/docker/registry/v2
    rm -rf "$v2/blobs/sha256/${hex:0:2}/$hex" "$v2/repositories/$2/_layers/sha256/$hex"
}

# ---------------------------------------------------------------- setup: small image
for s in "${REGISTRIES[@]}"; do
    push_blob "$s" "$REPO_SMALL" "$SMALL_FILE" "$SMALL_DIGEST" >/dev/null
    push_blob "$s" "$REPO_SMALL" "$CONFIG_FILE" "$CONFIG_DIGEST" >/dev/null
    code=$(curl -sS --max-time 30 -o "$WORK/put.body" -w '%{http_code}' -X PUT -H "Content-Type: $MT_MANIFEST" \
        --data-binary "@$MANIFEST_FILE" "${URL[$s]}/v2/$REPO_SMALL/manifests/$TAG")
    [[ $code == 201 ]] || { cat "$WORK/put.body" >&2; die "$s: manifest PUT answered $code"; }
    got=$(curl -sS --max-time 30 -H "Accept: $MT_MANIFEST" -o /dev/null -D - "$(manifest_url "$s")" |
        awk 'tolower($1) == "docker-content-digest:" {sub(/\r$/, ""); print $2}')
    [[ $got == "$MANIFEST_DIGEST" ]] || die "$s: manifest GET by tag gave digest '$got', want $MANIFEST_DIGEST"
done
# The pulled bytes are the pushed bytes (checked once, untimed).
for s in "${SERVERS[@]}"; do
    got=sha256:$(curl -sS --max-time 60 "$(blob_url "$s" small)" | sha256sum | awk '{print $1}')
    [[ $got == "$SMALL_DIGEST" ]] || die "$s: pulled small blob has digest $got, want $SMALL_DIGEST"
done

# ---------------------------------------------------------------- 1. push of the big blob
log "warming the page cache with the test data"
cat "$BIG_FILE" "$SMALL_FILE" >/dev/null
# One untimed push each first: on this kind of VM the first write into fresh
# page-cache memory costs several times more than later ones (seen: dd of
# 1 GiB at 385 MB/s, then 3.3 GB/s), which made every run 1 an outlier.
for s in "${REGISTRIES[@]}"; do
    forget_blob "$s" "$REPO_BIG" "$BIG_DIGEST"
    push_blob "$s" "$REPO_BIG" "$BIG_FILE" "$BIG_DIGEST" >/dev/null
done
for ((r = 1; r <= RUNS; r++)); do
    for s in "${REGISTRIES[@]}"; do
        forget_blob "$s" "$REPO_BIG" "$BIG_DIGEST"
        sync # write back earlier runs' data, untimed, so each push starts alike
        t0=$(server_ticks "$s")
        secs=$(push_blob "$s" "$REPO_BIG" "$BIG_FILE" "$BIG_DIGEST")
        t1=$(server_ticks "$s")
        mbs=$(awk -v b="$BIG" -v t="$secs" 'BEGIN {printf "%.1f", b / t / 1e6}')
        record "$s" push_mbs "$mbs"
        record "$s" push_cpu_s_per_gib "$(per_gib $((t1 - t0)) "$BIG")"
        log "push run $r: $s $mbs MB/s ($secs s)"
    done
done
sync

# ---------------------------------------------------------------- 2. single pull of the big blob
pull_once() { # URL SIZE -> seconds
    local out code size secs
    out=$(curl -sS --max-time 600 -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$1")
    read -r code size secs <<<"$out"
    [[ $code == 200 && $size == "$2" ]] || die "GET $1 answered $code with $size bytes (want 200, $2)"
    echo "$secs"
}
for ((r = 1; r <= RUNS; r++)); do
    for s in "${SERVERS[@]}"; do
        t0=$(server_ticks "$s")
        secs=$(pull_once "$(blob_url "$s" big)" "$BIG")
        t1=$(server_ticks "$s")
        mbs=$(awk -v b="$BIG" -v t="$secs" 'BEGIN {printf "%.1f", b / t / 1e6}')
        record "$s" pull_mbs "$mbs"
        record "$s" pull_cpu_s_per_gib "$(per_gib $((t1 - t0)) "$BIG")"
        log "pull run $r: $s $mbs MB/s ($secs s)"
    done
done

# ---------------------------------------------------------------- 3. concurrent pulls of the small blob
# One curl process runs all CONC transfers at once (--parallel), so the
# client costs the same for every server. VmHWM is reset before (clear_refs
# 5) and read after; VmRSS is also sampled every 20 ms, bounded in count.
rss_sampler() { # PID STOPFILE OUTFILE
    local i max=0 v
    for ((i = 0; i < 15000; i++)); do
        [[ -e $2 ]] && break
        v=$(status_kib "$1" VmRSS 2>/dev/null || echo 0)
        ((v > max)) && max=$v
        sleep 0.02
    done
    echo "$max" >"$3"
}
for ((r = 1; r <= RUNS; r++)); do
    for s in "${SERVERS[@]}"; do
        cfg=$WORK/parallel.cfg
        url=$(blob_url "$s" small)
        for ((i = 0; i < CONC; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; done >"$cfg"
        if [[ $s != nginx ]]; then
            echo 5 >"/proc/${PID[$s]}/clear_refs" 2>/dev/null || true
            rm -f "$WORK/stop" "$WORK/rss.max"
            rss_sampler "${PID[$s]}" "$WORK/stop" "$WORK/rss.max" &
            SAMPLER=$!
        fi
        t0=$(server_ticks "$s")
        start=$(now)
        curl -sS --max-time 600 -Z --parallel-max "$CONC" --parallel-immediate -K "$cfg" \
            -w '%{http_code} %{size_download}\n' >"$WORK/parallel.out" 2>"$WORK/parallel.err" ||
            { cat "$WORK/parallel.err" >&2; die "$s: concurrent pulls failed"; }
        end=$(now)
        t1=$(server_ticks "$s")
        [[ -z $SAMPLER ]] || stop_sampler "$s" "${PID[$s]}"
        all_complete "$s" "$CONC" "$SMALL"
        wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
        mbs=$(awk -v n="$CONC" -v b="$SMALL" -v t="$wall" 'BEGIN {printf "%.1f", n * b / t / 1e6}')
        record "$s" conc_wall_s "$wall"
        record "$s" conc_mbs "$mbs"
        record "$s" conc_cpu_s_per_gib "$(per_gib $((t1 - t0)) $((CONC * SMALL)))"
        log "concurrent run $r: $s $CONC x $((SMALL >> 20)) MiB in $wall s = $mbs MB/s"
    done
done

# ---------------------------------------------------------------- 4. manifest GETs by tag
for ((r = 1; r <= RUNS; r++)); do
    for s in "${SERVERS[@]}"; do
        timeout $((WRK_SECS + 60)) wrk -t2 -c"$WRK_CONNS" -d"${WRK_SECS}s" --timeout 5s --latency \
            -H "Accept: $MT_MANIFEST" "$(manifest_url "$s")" >"$WORK/wrk.out" 2>&1 ||
            { cat "$WORK/wrk.out" >&2; die "wrk against $s failed"; }
        rps=$(awk '$1 == "Requests/sec:" {print $2}' "$WORK/wrk.out")
        bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$WORK/wrk.out")
        errs=$(awk '/Socket errors:/' "$WORK/wrk.out")
        [[ -n $rps ]] || { cat "$WORK/wrk.out" >&2; die "no Requests/sec from wrk against $s"; }
        [[ -z $bad && -z $errs ]] || { cat "$WORK/wrk.out" >&2; die "wrk against $s saw errors: ${bad:+$bad non-2xx} $errs"; }
        p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
        record "$s" manifest_rps "$rps"
        record "$s" manifest_p99 "$p99"
        log "manifest run $r: $s $rps req/s (p99 $p99)"
    done
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average after: $LOAD_AFTER"
OTHER_AFTER=$(other_work)
if ((OTHER_BEFORE + OTHER_AFTER > 0)); then
    OTHER_NOTE="**yes**: $OTHER_BEFORE such processes before, $OTHER_AFTER after; the numbers are noisier for it"
else
    OTHER_NOTE="none seen"
fi
cp "$RESULTS" "$WHARF_CACHE/bench/last-results.tsv"

# ---------------------------------------------------------------- report

BIGS=$(fmt_size "$BIG")
SMALLS=$(fmt_size "$SMALL")

W_PUSH=$(med wharf push_mbs) D_PUSH=$(med distribution push_mbs)
W_PULL=$(med wharf pull_mbs) N_PULL=$(med nginx pull_mbs)
W_CONC=$(med wharf conc_mbs) N_CONC=$(med nginx conc_mbs)
W_PEAK=$(med wharf conc_peak_rss_kib) D_PEAK=$(med distribution conc_peak_rss_kib)
W_IDLE=$(values wharf idle_rss_kib) D_IDLE=$(values distribution idle_rss_kib)
W_RPS=$(med wharf manifest_rps) D_RPS=$(med distribution manifest_rps)

wharf_version=$("$WHARF_BIN" --version 2>/dev/null || echo wharf-registry)
git_rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(cd "$ROOT" && { git diff --quiet HEAD -- registry Cargo.lock Cargo.toml 2>/dev/null || echo " + uncommitted changes"; })
dist_version=$(distribution-registry --version 2>/dev/null | awk '{print $NF}')
nginx_version=$(nginx -v 2>&1 | sed 's/^nginx version: //')
curl_version=$(curl --version | awk 'NR == 1 {print $2}')
wrk_version=$({ wrk -v 2>&1 || true; } | awk 'NR == 1 {print $2}')
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem_total=$(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 2^20}' /proc/meminfo)
fs_type=$(df -T "$WHARF_CACHE/bench" | awk 'NR == 2 {print $2}')
mode=$( ((QUICK)) && echo "quick (\`bench/run.sh --quick\`)" || echo "full (\`make bench\` = \`bash bench/run.sh\`)")

mkdir -p "$(dirname "$OUT")"
{
    cat <<EOF
# Benchmarks: wharf-registry vs distribution v3 (registry:2) vs nginx

Written by \`bench/run.sh\`, mode: $mode, on $(date -u '+%Y-%m-%d %H:%M UTC').
Re-run with \`make bench\`; \`bash bench/run.sh --quick\` is a small version for iterating.
After the registry results come S3 storage (\`bench/s3.sh\`), the pull-through
cache (\`bench/mirror.sh\`), online garbage collection (\`bench/gc.sh\`), auth
(\`bench/auth.sh\`), TLS (\`bench/tls.sh\`), notifications
(\`bench/notifications.sh\`), search and the UI (\`bench/ui.sh\`) and the operator at scale
(\`bench/operator.sh\`), each with its own method and targets.

| | |
|---|---|
| machine | $(nproc) cores, $cpu_model, $mem_total, kernel $(uname -r) |
| load average (1/5/15 min) | before: $LOAD_BEFORE; after: $LOAD_AFTER |
| other work on the machine (compilers, linkers, an e2e cluster's kubelet or containerd) | $OTHER_NOTE |
| disk | storage roots and test data on $fs_type (not tmpfs), under \`\$WHARF_CACHE/bench\` |
| wharf-registry | $wharf_version, git $git_rev$git_dirty, \`cargo build --release\` |
| distribution | $dist_version (\`registry serve\`, built with go install) |
| nginx | $nginx_version, sendfile on, tcp_nopush on, access_log off, worker_processes auto |
| client | curl $curl_version for transfers, wrk $wrk_version for manifest GETs |
| runs | $RUNS per measurement; each cell is the median, then every run in order |

## Results

MB/s are 10^6 bytes per second. "CPU s/GiB" is the server's user+system CPU time
(all threads; nginx: master and workers) per GiB moved, from /proc/PID/stat.

| measurement | wharf-registry | distribution | nginx (static files, for comparison) |
|---|---|---|---|
| push $BIGS, MB/s | $(cell wharf push_mbs) | $(cell distribution push_mbs) | – |
| push, server CPU s/GiB | $(cell wharf push_cpu_s_per_gib) | $(cell distribution push_cpu_s_per_gib) | – |
| pull $BIGS, MB/s | $(cell wharf pull_mbs) | $(cell distribution pull_mbs) | $(cell nginx pull_mbs) |
| pull, server CPU s/GiB | $(cell wharf pull_cpu_s_per_gib) | $(cell distribution pull_cpu_s_per_gib) | $(cell nginx pull_cpu_s_per_gib) |
| $CONC concurrent pulls of $SMALLS, aggregate MB/s | $(cell wharf conc_mbs) | $(cell distribution conc_mbs) | $(cell nginx conc_mbs) |
| $CONC concurrent pulls, wall time s | $(cell wharf conc_wall_s) | $(cell distribution conc_wall_s) | $(cell nginx conc_wall_s) |
| $CONC concurrent pulls, server CPU s/GiB | $(cell wharf conc_cpu_s_per_gib) | $(cell distribution conc_cpu_s_per_gib) | $(cell nginx conc_cpu_s_per_gib) |
| peak RSS during the $CONC pulls, MiB | $(cell wharf conc_peak_rss_kib 1024) | $(cell distribution conc_peak_rss_kib 1024) | – |
| idle RSS after start-up, MiB | $(cell wharf idle_rss_kib 1024) | $(cell distribution idle_rss_kib 1024) | – |
| manifest GET by tag, req/s (wrk, $WRK_CONNS connections, ${WRK_SECS}s) | $(cell wharf manifest_rps) | $(cell distribution manifest_rps) | $(cell nginx manifest_rps) |
| manifest GET p99 latency | $(values wharf manifest_p99 | paste -sd, -) | $(values distribution manifest_p99 | paste -sd, -) | $(values nginx manifest_p99 | paste -sd, -) |

nginx serves the same bytes as static files (the manifest row: a file of the
same bytes, with the same Accept header). It is a well-tuned file server to
compare with, not the machine's limit: a registry may beat it, and on this
shared VM its runs vary widely.

## Targets

| target | required | measured | result |
|---|---|---|---|
| push ≥ 4× distribution | ≥ $(awk -v d="$D_PUSH" 'BEGIN {printf "%.1f", 4 * d}') MB/s | $W_PUSH MB/s ($(ratio "$W_PUSH" "$D_PUSH")×) | $(verdict "$W_PUSH" "$(awk -v d="$D_PUSH" 'BEGIN {print 4 * d}')" ">=") |
| single pull ≥ 90% of nginx | ≥ $(awk -v d="$N_PULL" 'BEGIN {printf "%.1f", 0.9 * d}') MB/s | $W_PULL MB/s ($(awk -v a="$W_PULL" -v b="$N_PULL" 'BEGIN {printf "%.0f", 100 * a / b}')%) | $(verdict "$W_PULL" "$(awk -v d="$N_PULL" 'BEGIN {print 0.9 * d}')" ">=") |
| $CONC concurrent pulls ≥ 90% of nginx | ≥ $(awk -v d="$N_CONC" 'BEGIN {printf "%.1f", 0.9 * d}') MB/s | $W_CONC MB/s ($(awk -v a="$W_CONC" -v b="$N_CONC" 'BEGIN {printf "%.0f", 100 * a / b}')%) | $(verdict "$W_CONC" "$(awk -v d="$N_CONC" 'BEGIN {print 0.9 * d}')" ">=") |
| peak RSS in the $CONC pulls ≤ ¼ of distribution | ≤ $(awk -v d="$D_PEAK" 'BEGIN {printf "%.1f", d / 4 / 1024}') MiB | $(awk -v d="$W_PEAK" 'BEGIN {printf "%.1f", d / 1024}') MiB ($(ratio "$W_PEAK" "$D_PEAK")×) | $(verdict "$W_PEAK" "$(awk -v d="$D_PEAK" 'BEGIN {print d / 4}')" "<=") |
| idle RSS ≤ 10 MB | ≤ 10 MB (9.5 MiB) | $(awk -v d="$W_IDLE" 'BEGIN {printf "%.1f MB", d * 1024 / 1e6}') | $(verdict "$((W_IDLE * 1024))" 10000000 "<=") |
| manifest GETs by tag ≥ 5× distribution | ≥ $(awk -v d="$D_RPS" 'BEGIN {printf "%.0f", 5 * d}') req/s | $W_RPS req/s ($(ratio "$W_RPS" "$D_RPS")×) | $(verdict "$W_RPS" "$(awk -v d="$D_RPS" 'BEGIN {print 5 * d}')" ">=") |

Idle RSS of distribution for comparison: $(awk -v d="$D_IDLE" 'BEGIN {printf "%.1f MB", d * 1024 / 1e6}').

## Method

- All three servers run at once on 127.0.0.1 and are measured one after the
  other, interleaved run by run (wharf, distribution, nginx, then again), so
  slow drift in the machine's load hits each alike. Only one is under load at
  a time.
- Both registries get the same \`config.yml\`: filesystem storage in a fresh
  directory on the same disk, \`storage.delete.enabled: true\`,
  \`log.level: warn\` (no per-request log lines for either, which would
  otherwise cost both a write per request). distribution runs with
  \`OTEL_SDK_DISABLED=true OTEL_TRACES_EXPORTER=none\` so that it sets up no
  trace exporter. Readiness is a poll of \`GET /v2/\` with a 30 s deadline.
- Test data: random bytes from /dev/urandom, cached in
  \`\$WHARF_CACHE/bench/blob-SIZE.bin\` and reused; read once before timing,
  so the page cache is warm for the source file. Pulled blobs are the files
  the registries wrote during the pushes, also in the page cache (warm);
  nginx serves hard links to the cached data files (warm).
- Push: \`POST /v2/bench/big/blobs/uploads/\`, then \`curl -T FILE\` to
  \`PUT <Location>&digest=sha256:…\` (monolithic, \`Expect:\` disabled); the
  time is curl's \`time_total\` of the PUT, which ends when the registry
  answers 201 (digest verified, blob committed). Before every push the blob's
  files are removed from the storage directory and \`sync\` is run (untimed),
  so every push stores a new blob and starts with no dirty pages. One
  untimed push per registry comes first (first writes into fresh page-cache
  memory are much slower on this VM).
- Pull: \`curl -o /dev/null\` of \`GET /v2/bench/big/blobs/<digest>\`,
  \`time_total\`; status and byte count are checked.
- Concurrent pulls: one curl process, \`--parallel --parallel-max $CONC\`, $CONC
  transfers of \`GET /v2/bench/small/blobs/<digest>\` at once; wall time
  around the curl, aggregate = $CONC × size / wall; every transfer's status and
  size are checked.
- Peak RSS: \`echo 5 > /proc/PID/clear_refs\` resets VmHWM just before the
  pulls, VmHWM is read after; VmRSS is also sampled every 20 ms, and the
  larger is reported. Idle RSS: VmRSS right after the registry is ready.
- Manifest GETs: after pushing a small OCI image (config + one layer) as
  \`bench/small:$TAG\`, \`wrk -t2 -c$WRK_CONNS -d${WRK_SECS}s --latency -H 'Accept: $MT_MANIFEST'\`
  on \`GET /v2/bench/small/manifests/$TAG\`; any non-2xx answer or socket
  error fails the run. The manifest's digest is checked once first, and the
  small blob's content is checked once per server.
- The client shares the machine's $(nproc) cores with the server; that is the
  same for all three servers.
EOF
} >"$OUT"
log "wrote $OUT (registry section)"

# ---------------------------------------------------------------- mirror and operator
# The registries above are stopped first, so they take no memory or CPU from
# the next benchmarks; each of those starts and stops its own processes.
for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
PIDS=()
SUB_ARGS=(--no-build)
((QUICK)) && SUB_ARGS+=(--quick)
FAILED=()
# sub_bench NAME SCRIPT ARGS...: its section, or a note that it failed.
sub_bench() {
    local name=$1 script=$2 rc=0
    shift 2
    log "running bench/$script"
    WHARF_REGISTRY_BIN=$WHARF_BIN WHARF_OPERATOR_BIN=$OPERATOR_BIN \
        bash "$ROOT/bench/$script" "${SUB_ARGS[@]}" "$@" --out "$WORK/$name.md" >&2 || rc=$?
    if ((rc == 0 || rc == MISSED_TARGETS_EXIT)) && [[ -s $WORK/$name.md ]]; then
        # A section with missed targets is kept (its FAIL rows are the news),
        # and still fails the run below.
        { echo; cat "$WORK/$name.md"; } >>"$OUT"
        ((rc == 0)) || FAILED+=("$script (missed targets)")
    else
        FAILED+=("$script (exit $rc)")
        printf '\n## %s\n\n**bench/%s failed** (exit %d) in this run; see the output of `make bench`.\n' \
            "$name" "$script" "$rc" >>"$OUT"
    fi
}
if ((S3)); then
    if [[ -n $RUNS ]]; then sub_bench s3 s3.sh --runs "$RUNS"; else sub_bench s3 s3.sh; fi
fi
if ((MIRROR)); then
    if [[ -n $RUNS ]]; then sub_bench mirror mirror.sh --runs "$RUNS"; else sub_bench mirror mirror.sh; fi
fi
if ((GC)); then
    if [[ -n $RUNS ]]; then sub_bench gc gc.sh --runs "$RUNS"; else sub_bench gc gc.sh; fi
fi
if ((AUTH)); then
    if [[ -n $RUNS ]]; then sub_bench auth auth.sh --runs "$RUNS"; else sub_bench auth auth.sh; fi
fi
if ((TLS)); then
    if [[ -n $RUNS ]]; then sub_bench tls tls.sh --runs "$RUNS"; else sub_bench tls tls.sh; fi
fi
if ((NOTIFICATIONS)); then
    if [[ -n $RUNS ]]; then
        sub_bench notifications notifications.sh --runs "$RUNS"
    else
        sub_bench notifications notifications.sh
    fi
fi
((UI)) && sub_bench ui ui.sh
((OPERATOR)) && sub_bench operator operator.sh
log "wrote $OUT"
cat "$OUT"
# Every missed target in the document fails `make bench`, as a broken run does.
MISSED=$(missed_targets "$OUT")
[[ -z $MISSED ]] || printf 'bench/run.sh: missed target(s) in %s:\n%s\n' "$OUT" "$MISSED" >&2
((${#FAILED[@]} == 0)) || die "failed: ${FAILED[*]}"
[[ -z $MISSED ]] || exit "$MISSED_TARGETS_EXIT"
