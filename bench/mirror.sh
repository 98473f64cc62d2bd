#!/usr/bin/env bash
# bench/mirror.sh: wharf-registry as a pull-through cache (issue 4), on loopback.
#
# One multi-layer image is pushed to an upstream wharf-registry, to an
# upstream distribution v3 and to a plain local wharf-registry. Then, run by
# run (interleaved), the same client pulls it:
#   direct    from the upstream itself
#   cold      through a wharf mirror of that upstream with empty storage
#             (a new mirror process and storage directory every run)
#   warm      through the same mirror again, right after the cold pull
#   local     from the plain wharf-registry holding the image
# and the upstream's own /metrics counts what each pull asked of it.
#
#   bash bench/mirror.sh            4 x 128 MiB + 1 MiB layers, 3 runs
#   bash bench/mirror.sh --quick    4 x 16 MiB + 1 MiB layers, 1 run
#
# Options: --quick, --runs N, --out FILE (a markdown section; default
# $WHARF_CACHE/bench/mirror.md), --no-build, --no-distribution,
# --upstream-link RATE (default 1gbit; `none` for bare loopback).
#
# A mirror stands in front of a remote registry, so by default the upstreams'
# responses go through a 1 Gbit/s link: everything runs in a private network
# namespace whose loopback shapes packets from the upstreams' ports (tc htb).
# Direct pulls from the upstream cross the same link. With `none`, the
# upstream is as fast as a memory copy, and the mirror's own CPU per byte
# (SHA-256, writing the cache, reading it back) is the limit.
# Environment: WHARF_CACHE (default ~/.cache/wharf), WHARF_REGISTRY_BIN.
#
# Every process this script starts is stopped by PID on exit and its work
# directory is removed. All traffic goes to 127.0.0.1; every loop is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WHARF_CACHE=${WHARF_CACHE:-$HOME/.cache/wharf}
export PATH="$WHARF_CACHE/bin:$HOME/.cargo/bin:/usr/local/go/bin:$PATH:/usr/sbin:/sbin"

QUICK=0 RUNS="" OUT="" BUILD=1 WITH_DIST=1 LINK=1gbit
ARGS=("$@")
while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --runs=*) RUNS=${1#*=} ;;
    --out) OUT=$2; shift ;;
    --out=*) OUT=${1#*=} ;;
    --no-build) BUILD=0 ;;
    --no-distribution) WITH_DIST=0 ;;
    --upstream-link) LINK=$2; shift ;;
    --upstream-link=*) LINK=${1#*=} ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "bench/mirror.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then
    LAYER=$((16 << 20)) RUNS=${RUNS:-1}
else
    LAYER=$((128 << 20)) RUNS=${RUNS:-3}
fi
OUT=${OUT:-$WHARF_CACHE/bench/mirror.md}
if [[ $LINK != none && -z ${WHARF_BENCH_NETNS:-} ]]; then
    # A private network namespace: the shaping never touches the host's loopback.
    ns=wharf-bench-mirror-$$
    ip netns add "$ns" || { echo "bench/mirror.sh: ip netns add failed (root needed for --upstream-link)" >&2; exit 1; }
    ip -n "$ns" link set lo up
    rc=0
    ip netns exec "$ns" env WHARF_BENCH_NETNS="$ns" bash "$0" "${ARGS[@]}" || rc=$?
    ip netns del "$ns"
    exit $rc
fi
NLAYERS=4
SMALL=$((1 << 20))
# containerd's CRI default max_concurrent_downloads.
PARALLEL=3
REPO=bench/mirror
TAG=v1
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json
ACCEPT="$MT_MANIFEST, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
# Cold pull within 15% of direct; warm pull within 10% of local.
COLD_MIN=0.85 WARM_MIN=0.90

log() { printf '[mirror %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench/mirror.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for t in curl jq sha256sum awk sort; do command -v "$t" >/dev/null || die "missing tool: $t"; done
if ((WITH_DIST)) && ! command -v distribution-registry >/dev/null; then
    log "distribution-registry not on PATH: skipping the distribution upstream"
    WITH_DIST=0
fi
if [[ -n ${WHARF_REGISTRY_BIN:-} ]]; then
    WHARF_BIN=$WHARF_REGISTRY_BIN
else
    if ((BUILD)); then
        log "building wharf-registry (cargo build --release --locked -p wharf-registry)"
        (cd "$ROOT" && cargo build --release --locked -p wharf-registry >&2) || die "cargo build failed"
    fi
    WHARF_BIN=$ROOT/target/release/wharf-registry
fi
[[ -x $WHARF_BIN ]] || die "no wharf-registry binary at $WHARF_BIN"

# ---------------------------------------------------------------- cleanup
WORK=""
PIDS=()
stop_pid() { # PID: TERM, wait up to 10 s, then KILL
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ -n $WORK && -d $WORK ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WHARF_CACHE/bench"
WORK=$(mktemp -d "$WHARF_CACHE/bench/mirror.XXXXXX")
RESULTS=$WORK/results.tsv # case <tab> metric <tab> value
: >"$RESULTS"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }

now() { date +%s.%N; }
wait_ready() { # URL PID NAME
    local url=$1 pid=$2 name=$3 deadline
    deadline=$(($(date +%s) + 30))
    while (($(date +%s) < deadline)); do
        kill -0 "$pid" 2>/dev/null || { tail -20 "$WORK/$name.log" >&2 || true; die "$name exited during start-up"; }
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true) == 200 ]] && return
        sleep 0.05
    done
    tail -20 "$WORK/$name.log" >&2 || true
    die "$name not ready at $url within 30s"
}
TICKS=$(getconf CLK_TCK)

# ---------------------------------------------------------------- data
data_file() { # NAME SIZE: random bytes cached under $WHARF_CACHE/bench
    local f=$WHARF_CACHE/bench/mirror-$1-$2.bin
    if [[ ! -f $f || $(stat -c %s "$f") != "$2" ]]; then
        log "generating $f ($2 bytes from /dev/urandom)"
        head -c "$2" /dev/urandom >"$f.tmp"
        mv "$f.tmp" "$f"
        rm -f "$f.sha256"
    fi
    if [[ ! -f $f.sha256 || $f.sha256 -ot $f ]]; then
        sha256sum "$f" | awk '{print "sha256:" $1}' >"$f.sha256"
    fi
    echo "$f"
}
FILES=() DIGESTS=() SIZES=()
for ((i = 1; i <= NLAYERS; i++)); do
    f=$(data_file "layer$i" "$LAYER")
    FILES+=("$f") DIGESTS+=("$(cat "$f.sha256")") SIZES+=("$LAYER")
done
f=$(data_file small "$SMALL")
FILES+=("$f") DIGESTS+=("$(cat "$f.sha256")") SIZES+=("$SMALL")
CONFIG_FILE=$WORK/config.json
jq -cn --args '{architecture: "amd64", os: "linux", config: {}, rootfs: {type: "layers", diff_ids: $ARGS.positional}}' \
    "${DIGESTS[@]}" >"$CONFIG_FILE"
CONFIG_DIGEST=sha256:$(sha256sum "$CONFIG_FILE" | awk '{print $1}')
CONFIG_SIZE=$(stat -c %s "$CONFIG_FILE")
MANIFEST_FILE=$WORK/manifest.json
{
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[' \
        "$MT_MANIFEST" "$CONFIG_DIGEST" "$CONFIG_SIZE"
    for ((i = 0; i < ${#FILES[@]}; i++)); do
        ((i > 0)) && printf ','
        printf '{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}' "${DIGESTS[$i]}" "${SIZES[$i]}"
    done
    printf ']}'
} >"$MANIFEST_FILE"
MANIFEST_DIGEST=sha256:$(sha256sum "$MANIFEST_FILE" | awk '{print $1}')
# Bytes of one pull: config and layers (the manifest is a few hundred bytes more).
TOTAL=$CONFIG_SIZE
for s in "${SIZES[@]}"; do TOTAL=$((TOTAL + s)); done
log "image $REPO:$TAG: $NLAYERS x $((LAYER >> 20)) MiB + $((SMALL >> 20)) MiB layers, $TOTAL bytes, manifest $MANIFEST_DIGEST"

# ---------------------------------------------------------------- servers
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
BUILDS_BEFORE=$(other_builds)

declare -A URL PID METRICS
# NAME KIND(wharf|distribution) [REMOTEURL]: a registry on a free port with a
# fresh storage directory, log level warn, Prometheus on a debug listener.
start_server() {
    local name=$1 kind=$2 remote=${3:-} port dport root=$WORK/$1-storage cmd
    port=$(free_port)
    dport=$(free_port)
    rm -rf "$root"
    mkdir -p "$root"
    {
        cat <<EOF
version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: $root
http:
  addr: 127.0.0.1:$port
  debug:
    addr: 127.0.0.1:$dport
    prometheus:
      enabled: true
      path: /metrics
EOF
        if [[ -n $remote ]]; then
            printf 'proxy:\n  remoteurl: %s\n' "$remote"
        fi
    } >"$WORK/$name.yml"
    if [[ $kind == wharf ]]; then cmd=$WHARF_BIN; else cmd=distribution-registry; fi
    OTEL_SDK_DISABLED=true OTEL_TRACES_EXPORTER=none "$cmd" serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=("$!")
    URL[$name]=http://127.0.0.1:$port
    METRICS[$name]=http://127.0.0.1:$dport/metrics
    wait_ready "${URL[$name]}/v2/" "${PID[$name]}" "$name"
}
stop_server() { # NAME: stop it and forget its PID
    local name=$1 keep=() p
    stop_pid "${PID[$name]}"
    for p in "${PIDS[@]}"; do [[ $p == "${PID[$name]}" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    rm -rf "$WORK/$name-storage"
}

push_blob() { # BASE FILE DIGEST
    local base=$1 file=$2 digest=$3 loc sep code
    loc=$(curl -sS --max-time 30 -o /dev/null -D - -X POST "$base/v2/$REPO/blobs/uploads/" |
        awk 'tolower($1) == "location:" {sub(/\r$/, ""); print $2}')
    [[ -n $loc ]] || die "$base: POST /v2/$REPO/blobs/uploads/ gave no Location"
    [[ $loc == /* ]] && loc=$base$loc
    [[ $loc == *\?* ]] && sep='&' || sep='?'
    code=$(curl -sS --max-time 600 -o "$WORK/put.body" -w '%{http_code}' -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' -T "$file" "$loc${sep}digest=$digest")
    [[ $code == 201 ]] || { cat "$WORK/put.body" >&2; die "$base: blob PUT answered $code"; }
}
push_image() { # BASE
    local i code
    for ((i = 0; i < ${#FILES[@]}; i++)); do push_blob "$1" "${FILES[$i]}" "${DIGESTS[$i]}"; done
    push_blob "$1" "$CONFIG_FILE" "$CONFIG_DIGEST"
    code=$(curl -sS --max-time 30 -o "$WORK/put.body" -w '%{http_code}' -X PUT -H "Content-Type: $MT_MANIFEST" \
        --data-binary "@$MANIFEST_FILE" "$1/v2/$REPO/manifests/$TAG")
    [[ $code == 201 ]] || { cat "$WORK/put.body" >&2; die "$1: manifest PUT answered $code"; }
}

# The upstream's request counters from its /metrics, as "blob_gets manifest_reqs all_reqs".
# wharf: wharf_registry_http_requests_total{route,method,status};
# distribution: registry_http_requests_total{handler,method,code}.
upstream_counts() { # NAME
    curl -sS --max-time 10 "${METRICS[$1]}" | awk '
        /^(wharf_registry|registry)_http_requests_total\{/ {
            v = $NF; all += v
            lbl = tolower($0)
            isget = (lbl ~ /method="get"/)
            if (isget && lbl ~ /(route|handler)="blob"/) blob += v
            if (lbl ~ /(route|handler)="manifest"/) man += v
        }
        END {printf "%d %d %d\n", blob, man, all}'
}

# ---------------------------------------------------------------- the client
# One pull, as a client does it: GET the manifest by tag (digest checked),
# then GET the config and every layer, $PARALLEL at a time, into /dev/null.
# The time is the wall time of both steps. Prints "seconds".
BLOBS_CFG=$WORK/blobs.cfg
pull_image() { # BASE
    local base=$1 start end got d ok
    : >"$BLOBS_CFG"
    for d in "$CONFIG_DIGEST" "${DIGESTS[@]}"; do
        printf 'url = "%s/v2/%s/blobs/%s"\noutput = "/dev/null"\n' "$base" "$REPO" "$d" >>"$BLOBS_CFG"
    done
    start=$(now)
    got=$(curl -sS --max-time 60 -H "Accept: $ACCEPT" -o "$WORK/pulled-manifest.json" -D - "$base/v2/$REPO/manifests/$TAG" |
        awk 'tolower($1) == "docker-content-digest:" {sub(/\r$/, ""); print $2}')
    curl -sS --max-time 900 -L -Z --parallel-max "$PARALLEL" -K "$BLOBS_CFG" \
        -w '%{http_code} %{size_download}\n' >"$WORK/pull.out" 2>"$WORK/pull.err" ||
        { cat "$WORK/pull.err" >&2; die "GET of the blobs from $base failed"; }
    end=$(now)
    [[ $got == "$MANIFEST_DIGEST" ]] || die "$base: manifest by tag has digest '$got', want $MANIFEST_DIGEST"
    cmp -s "$WORK/pulled-manifest.json" "$MANIFEST_FILE" || die "$base: pulled manifest differs from the pushed one"
    ok=0
    for d in "$CONFIG_SIZE" "${SIZES[@]}"; do
        grep -q "^200 $d\$" "$WORK/pull.out" && ok=$((ok + 1))
    done
    ((ok == ${#SIZES[@]} + 1)) || { sort "$WORK/pull.out" | uniq -c >&2; die "$base: incomplete blob GETs"; }
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}'
}

# Untimed: every pulled byte is checked once per server.
verify_content() { # BASE
    local i got
    for ((i = 0; i < ${#FILES[@]}; i++)); do
        got=sha256:$(curl -sS --max-time 300 "$1/v2/$REPO/blobs/${DIGESTS[$i]}" | sha256sum | awk '{print $1}')
        [[ $got == "${DIGESTS[$i]}" ]] || die "$1: layer $i has digest $got, want ${DIGESTS[$i]}"
    done
}

# measure CASE BASE SERVER_PID COUNT_NAME: one timed pull, recorded.
measure() {
    local case=$1 base=$2 spid=$3 up=$4 before after secs t0 t1 mbs
    sync # earlier runs' writes go to disk first, untimed
    before=$(upstream_counts "$up")
    t0=$(cpu_ticks "$spid") u0=$(cpu_ticks "${PID[$up]}")
    secs=$(pull_image "$base")
    t1=$(cpu_ticks "$spid") u1=$(cpu_ticks "${PID[$up]}")
    after=$(upstream_counts "$up")
    mbs=$(awk -v b="$TOTAL" -v t="$secs" 'BEGIN {printf "%.1f", b / t / 1e6}')
    record "$case" mbs "$mbs"
    record "$case" secs "$secs"
    record "$case" cpu_s_per_gib "$(awk -v d=$((t1 - t0)) -v k="$TICKS" -v b="$TOTAL" 'BEGIN {printf "%.2f", d / k / (b / 2^30)}')"
    record "$case" up_cpu_s_per_gib "$(awk -v d=$((u1 - u0)) -v k="$TICKS" -v b="$TOTAL" 'BEGIN {printf "%.2f", d / k / (b / 2^30)}')"
    read -r b0 m0 a0 <<<"$before"
    read -r b1 m1 a1 <<<"$after"
    record "$case" up_blob_gets $((b1 - b0))
    record "$case" up_manifest_reqs $((m1 - m0))
    record "$case" up_requests $((a1 - a0))
    log "run $r: $case $mbs MB/s ($secs s); upstream saw $((b1 - b0)) blob GETs, $((m1 - m0)) manifest requests, $((a1 - a0)) requests in all"
}

# ---------------------------------------------------------------- set-up
start_server up-wharf wharf
start_server local wharf
UPSTREAMS=(up-wharf)
if ((WITH_DIST)); then
    start_server up-dist distribution
    UPSTREAMS+=(up-dist)
fi
if [[ $LINK != none ]]; then
    # htb: packets from an upstream's port go to class 1:10 at $LINK; unclassified
    # packets (default 0) bypass the shaping at full speed.
    tc qdisc add dev lo root handle 1: htb default 0
    tc class add dev lo parent 1: classid 1:10 htb rate "$LINK" ceil "$LINK"
    for s in "${UPSTREAMS[@]}"; do
        tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip sport "${URL[$s]##*:}" 0xffff flowid 1:10
    done
    log "upstream responses shaped to $LINK (tc htb in network namespace $WHARF_BENCH_NETNS)"
fi
log "warming the page cache with the test data"
cat "${FILES[@]}" >/dev/null
for s in "${UPSTREAMS[@]}" local; do
    push_image "${URL[$s]}"
    log "pushed $REPO:$TAG to $s (${URL[$s]})"
done
# The counters must be readable before anything is measured.
for s in "${UPSTREAMS[@]}"; do
    [[ $(upstream_counts "$s" | awk '{print $3}') -gt 0 ]] || die "$s: no request counters at ${METRICS[$s]}"
done
for s in "${UPSTREAMS[@]}" local; do verify_content "${URL[$s]}"; done
# One untimed mirror pull first (the first writes into fresh page-cache memory
# are slower on this VM, see bench/run.sh), with the content checked.
start_server mirror wharf "${URL[up-wharf]}"
verify_content "${URL[mirror]}"
stop_server mirror

# ---------------------------------------------------------------- runs
for ((r = 1; r <= RUNS; r++)); do
    measure direct-wharf "${URL[up-wharf]}" "${PID[up-wharf]}" up-wharf
    start_server mirror wharf "${URL[up-wharf]}"
    measure cold-wharf "${URL[mirror]}" "${PID[mirror]}" up-wharf
    measure warm-wharf "${URL[mirror]}" "${PID[mirror]}" up-wharf
    stop_server mirror
    measure local "${URL[local]}" "${PID[local]}" up-wharf
    if ((WITH_DIST)); then
        measure direct-dist "${URL[up-dist]}" "${PID[up-dist]}" up-dist
        start_server mirror wharf "${URL[up-dist]}"
        measure cold-dist "${URL[mirror]}" "${PID[mirror]}" up-dist
        measure warm-dist "${URL[mirror]}" "${PID[mirror]}" up-dist
        stop_server mirror
    fi
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
BUILDS_AFTER=$(other_builds)
cp "$RESULTS" "$WHARF_CACHE/bench/mirror-last-results.tsv"

# ---------------------------------------------------------------- report
values() { awk -F'\t' -v c="$1" -v m="$2" '$1 == c && $2 == m {print $3}' "$RESULTS"; }
med() { values "$1" "$2" | median; }
cell() { # CASE METRIC
    local v
    v=$(values "$1" "$2")
    [[ -n $v ]] || { echo "–"; return; }
    if ((RUNS > 1)); then
        printf '%s (%s)' "$(median <<<"$v" | awk '{printf "%.1f", $1}')" "$(awk '{printf "%s%.1f", (NR > 1 ? ", " : ""), $1}' <<<"$v")"
    else
        median <<<"$v" | awk '{printf "%.1f", $1}'
    fi
}
counts() { # CASE: upstream blob GETs / manifest requests / all requests, every run
    paste -d/ <(values "$1" up_blob_gets) <(values "$1" up_manifest_reqs) <(values "$1" up_requests) | paste -sd' ' | sed 's/ /, /g'
}
# Ratios run by run (the cases of one run are measured back to back).
run_ratios() { # A B
    paste <(values "$1" mbs) <(values "$2" mbs) | awk '{printf "%s%.2f", (NR > 1 ? ", " : ""), $1 / $2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "nan"}'; }
max_of() { values "$1" "$2" | sort -g | tail -1; }

D_W=$(med direct-wharf mbs) C_W=$(med cold-wharf mbs) W_W=$(med warm-wharf mbs) L=$(med local mbs)
WARM_BLOBS=$(max_of warm-wharf up_blob_gets)
mib() { awk -v b="$1" 'BEGIN {printf "%g MiB", b / 2^20}'; }
mode=$( ((QUICK)) && echo "quick (\`--quick\`)" || echo "full")
other_note="none seen"
if ((BUILDS_BEFORE + BUILDS_AFTER > 0)); then
    other_note="**yes**: $BUILDS_BEFORE such processes before, $BUILDS_AFTER after; the numbers are noisier for it"
fi

{
    cat <<EOF
## Pull-through cache (mirror)

Written by \`bench/mirror.sh\`, mode: $mode, on $(date -u '+%Y-%m-%d %H:%M UTC').
Machine: $(nproc) cores (shared by client, mirror and upstream); load average before
$LOAD_BEFORE, after $LOAD_AFTER. Other work on the machine (compilers, linkers, an e2e cluster's kubelet or containerd): $other_note.

Upstream link: $( [[ $LINK == none ]] && echo "none: bare loopback, the upstream is as fast as a memory copy" || echo "$LINK: the upstreams' responses are shaped (tc htb) in a private network namespace, for direct and mirror pulls alike; the mirror's answers are not")

Image: $NLAYERS layers of $(mib "$LAYER") and one of $(mib "$SMALL") (random bytes), an OCI
config and manifest: $TOTAL bytes per pull. $RUNS run(s); each cell is the
median, then every run in order. MB/s are 10^6 bytes per second of the whole
pull (manifest, then config and layers).

| pull | MB/s | CPU s/GiB of the server the client talks to | upstream CPU s/GiB (cold) | upstream requests during the pull: blob GETs / manifest / all |
|---|---|---|---|---|
| direct from the wharf-registry upstream | $(cell direct-wharf mbs) | $(cell direct-wharf cpu_s_per_gib) | – | $(counts direct-wharf) |
| cold, through a wharf mirror of it (empty storage) | $(cell cold-wharf mbs) | $(cell cold-wharf cpu_s_per_gib) | $(cell cold-wharf up_cpu_s_per_gib) | $(counts cold-wharf) |
| warm, through the same mirror again | $(cell warm-wharf mbs) | $(cell warm-wharf cpu_s_per_gib) | – | $(counts warm-wharf) |
| local wharf-registry holding the image | $(cell local mbs) | $(cell local cpu_s_per_gib) | – | – |
EOF
    if ((WITH_DIST)); then
        cat <<EOF
| direct from the distribution v3 upstream | $(cell direct-dist mbs) | $(cell direct-dist cpu_s_per_gib) | – | $(counts direct-dist) |
| cold, through a wharf mirror of distribution | $(cell cold-dist mbs) | $(cell cold-dist cpu_s_per_gib) | $(cell cold-dist up_cpu_s_per_gib) | $(counts cold-dist) |
| warm, through that mirror again | $(cell warm-dist mbs) | $(cell warm-dist cpu_s_per_gib) | – | $(counts warm-dist) |
EOF
    fi
    cat <<EOF

| target | required | measured (ratio of medians; per run) | result |
|---|---|---|---|
| cold pull via mirror ≥ $COLD_MIN × direct (wharf upstream) | ≥ $(awk -v d="$D_W" -v k="$COLD_MIN" 'BEGIN {printf "%.1f", k * d}') MB/s | $C_W MB/s ($(ratio "$C_W" "$D_W")×; $(run_ratios cold-wharf direct-wharf)) | $(verdict "$(ratio "$C_W" "$D_W")" "$COLD_MIN") |
EOF
    if ((WITH_DIST)); then
        D_D=$(med direct-dist mbs) C_D=$(med cold-dist mbs)
        cat <<EOF
| cold pull via mirror ≥ $COLD_MIN × direct (distribution upstream) | ≥ $(awk -v d="$D_D" -v k="$COLD_MIN" 'BEGIN {printf "%.1f", k * d}') MB/s | $C_D MB/s ($(ratio "$C_D" "$D_D")×; $(run_ratios cold-dist direct-dist)) | $(verdict "$(ratio "$C_D" "$D_D")" "$COLD_MIN") |
EOF
    fi
    cat <<EOF
| warm pull via mirror ≥ $WARM_MIN × local | ≥ $(awk -v d="$L" -v k="$WARM_MIN" 'BEGIN {printf "%.1f", k * d}') MB/s | $W_W MB/s ($(ratio "$W_W" "$L")×; $(run_ratios warm-wharf local)) | $(verdict "$(ratio "$W_W" "$L")" "$WARM_MIN") |
| warm pull: no blob GET upstream | 0 in every run | at most $WARM_BLOBS | $( ((WARM_BLOBS == 0)) && echo "**pass**" || echo "**FAIL**") |

Reading the numbers: on loopback a direct pull is a memory-to-memory copy,
so the cold pull is compared with the fastest upstream there can be. A cold
pull costs the mirror $(med cold-wharf cpu_s_per_gib) CPU s/GiB (receive from the upstream, SHA-256,
write to the upload file, read it back, send), against $(med warm-wharf cpu_s_per_gib) for a warm pull; the
upstream, the mirror and the client then compete for the $(nproc) cores. Against a
real upstream the network link, not this CPU cost, is usually the limit.

Method:

- Four registries on 127.0.0.1, all with the same \`config.yml\` apart from the
  proxy section: filesystem storage in a fresh directory on the same disk as
  the other benchmarks (\`\$WHARF_CACHE/bench\`, not tmpfs), \`log.level: warn\`,
  Prometheus on a debug listener. The upstreams are a wharf-registry and
  distribution v3 (\`distribution-registry serve\`); the mirror is
  wharf-registry with \`proxy.remoteurl: http://127.0.0.1:PORT\` and defaults
  otherwise (\`tagttl\` 5m, no \`maxsize\`); the local registry is a plain
  wharf-registry. The image is pushed to both upstreams and to the local
  registry with monolithic blob uploads.
- The client is curl, the same for every pull: \`GET /v2/$REPO/manifests/$TAG\`
  (its digest and bytes checked), then one curl process fetching the config
  and all layers, $PARALLEL at a time (\`--parallel-max $PARALLEL\`, containerd's default
  \`max_concurrent_downloads\`), into /dev/null; every status and size is
  checked. The time is the wall time of both steps. Every layer's digest is
  checked once per server, untimed (the mirror's after an untimed first fill).
- Each run measures, back to back: direct from the wharf upstream; cold through
  a new mirror process with an empty storage directory; warm through that same
  mirror right after (within \`tagttl\`, so no revalidation is due); the local
  registry; then the same direct/cold/warm for the distribution upstream.
  \`sync\` runs before every pull (untimed), so no pull pays for the previous
  one's writeback. A cold pull includes the mirror writing every blob to its
  storage and verifying its digest while it streams it to the client.
- Upstream requests: the upstream's \`*_http_requests_total\` counters
  (wharf: \`wharf_registry_http_requests_total\`, by route; distribution:
  \`registry_http_requests_total\`, by handler) scraped from its debug listener
  just before and just after each pull. "All" includes HEADs and \`/v2/\`.
- CPU: user+system time of the process serving the client (the mirror for
  cold/warm, the upstream for direct, the local registry for local) per GiB,
  from /proc/PID/stat; for cold pulls the upstream's is shown apart (the
  client's curl is not counted anywhere).
- The client, the mirror and the upstream share the $(nproc) cores.
EOF
} >"$OUT"
log "wrote $OUT"
cat "$OUT"
exit_on_missed_targets "$OUT" "bench/mirror.sh"
