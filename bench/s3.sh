#!/usr/bin/env bash
# bench/s3.sh: wharf-registry and distribution v3 on the same S3 server
# (versitygw, posix backend, on loopback), measured in one run, interleaved:
#   push     one image of one big layer, pushed by crane from an OCI layout
#   pull     GET of the big layer through the registry (redirect disabled)
#   50 pulls 50 concurrent GETs of a smaller layer: peak RSS, CPU, MB/s
#   limit    versitygw serving a plain GET of the same object (curl, SigV4)
#
#   bash bench/s3.sh            1 GiB layer, 64 MiB for the concurrent pulls, 3 runs
#   bash bench/s3.sh --quick    128 MiB and 16 MiB, 1 run
#
# Options: --quick, --runs N, --out FILE (a markdown section; default
# $WHARF_CACHE/bench/s3.md), --no-build, --copy-threshold BYTES (sets
# storage.s3.multipartcopythresholdsize for both registries, default: unset,
# so each uses its default, 32 MiB; the section says when it was set).
# Environment: WHARF_CACHE (default ~/.cache/wharf), WHARF_REGISTRY_BIN.
# Exit status: 0 when every target passed, 3 when the section shows a
# **FAIL** row, 1 when the benchmark broke.
#
# Every process this script starts is stopped by PID on exit and its work
# directory is removed. All traffic goes to 127.0.0.1; every loop is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WHARF_CACHE=${WHARF_CACHE:-$HOME/.cache/wharf}
export PATH="$WHARF_CACHE/bin:$HOME/.cargo/bin:/usr/local/go/bin:$PATH:/usr/sbin:/sbin"

QUICK=0 RUNS="" OUT="" BUILD=1 COPY_THRESHOLD=""
while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --runs=*) RUNS=${1#*=} ;;
    --out) OUT=$2; shift ;;
    --out=*) OUT=${1#*=} ;;
    --no-build) BUILD=0 ;;
    --copy-threshold) COPY_THRESHOLD=$2; shift ;;
    --copy-threshold=*) COPY_THRESHOLD=${1#*=} ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "bench/s3.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then
    BIG=$((128 << 20)) SMALL=$((16 << 20)) RUNS=${RUNS:-1}
else
    BIG=$((1 << 30)) SMALL=$((64 << 20)) RUNS=${RUNS:-3}
fi
OUT=${OUT:-$WHARF_CACHE/bench/s3.md}
[[ -z $COPY_THRESHOLD || $COPY_THRESHOLD =~ ^[0-9]+$ ]] || { echo "bench/s3.sh: --copy-threshold takes a number of bytes" >&2; exit 2; }
CONC=50
BUCKET=bench
ACCESS=wharf-bench-access
SECRET=wharf-bench-secret-key
REPO_BIG=bench/s3-big
REPO_SMALL=bench/s3-small
TAG=v1
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json
# Targets (issue 11): push ≥ 1.5× distribution, pull ≥ 1× distribution,
# peak RSS in the concurrent pulls ≤ ¼ of distribution's.
PUSH_MIN=1.5 PULL_MIN=1.0 RSS_MAX=0.25

log() { printf '[s3 %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench/s3.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for t in versitygw crane distribution-registry curl jq sha256sum awk sort; do
    command -v "$t" >/dev/null || die "missing tool: $t (run scripts/tools.sh)"
done
if [[ -n ${WHARF_REGISTRY_BIN:-} ]]; then
    WHARF_BIN=$WHARF_REGISTRY_BIN
else
    if ((BUILD)); then
        log "building wharf-registry (cargo build --release --locked -p wharf-registry)"
        (cd "$ROOT" && cargo build --release --locked -p wharf-registry >&2) || die "cargo build failed"
    fi
    WHARF_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/wharf-registry
fi
[[ -x $WHARF_BIN ]] || die "no wharf-registry binary at $WHARF_BIN"

bench_workdir s3

# ---------------------------------------------------------------- data
# Random bytes, the same cache files as bench/run.sh (blob-SIZE.bin).
data_file() { cached_random "$WHARF_CACHE/bench/blob-$1.bin" "$1"; echo "$WHARF_CACHE/bench/blob-$1.bin"; }
BIG_FILE=$(data_file "$BIG")
SMALL_FILE=$(data_file "$SMALL")
BIG_DIGEST=$(cat "$BIG_FILE.sha256")
SMALL_DIGEST=$(cat "$SMALL_FILE.sha256")

# An OCI image layout with one layer (FILE, hard-linked, not copied) for crane.
make_layout() { # DIR FILE DIGEST SIZE
    local dir=$1 file=$2 digest=$3 size=$4 cfg man cd md
    mkdir -p "$dir/blobs/sha256"
    ln "$file" "$dir/blobs/sha256/${digest#sha256:}"
    cfg=$(printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]},"config":{}}' "$digest")
    cd=sha256:$(printf '%s' "$cfg" | sha256sum | awk '{print $1}')
    printf '%s' "$cfg" >"$dir/blobs/sha256/${cd#sha256:}"
    man=$(printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
        "$MT_MANIFEST" "$cd" "${#cfg}" "$digest" "$size")
    md=sha256:$(printf '%s' "$man" | sha256sum | awk '{print $1}')
    printf '%s' "$man" >"$dir/blobs/sha256/${md#sha256:}"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"%s","digest":"%s","size":%d}]}' \
        "$MT_MANIFEST" "$md" "${#man}" >"$dir/index.json"
}
make_layout "$WORK/layout-big" "$BIG_FILE" "$BIG_DIGEST" "$BIG"
make_layout "$WORK/layout-small" "$SMALL_FILE" "$SMALL_DIGEST" "$SMALL"
# crane reads no stray credentials.
export DOCKER_CONFIG=$WORK/docker
mkdir -p "$DOCKER_CONFIG"
echo '{}' >"$DOCKER_CONFIG/config.json"

# ---------------------------------------------------------------- servers
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
BUILDS_BEFORE=$(other_builds)
declare -A URL PID
S3DIR=$WORK/s3
mkdir -p "$S3DIR/$BUCKET"
S3PORT=$(free_port)
S3URL=http://127.0.0.1:$S3PORT
# --quiet: no stdout line per request (the registries log at warn too).
versitygw --quiet --access "$ACCESS" --secret "$SECRET" --port "127.0.0.1:$S3PORT" posix "$S3DIR" >"$WORK/versitygw.log" 2>&1 &
PID[versitygw]=$!
PIDS+=("$!")
wait_http "$S3URL/" "${PID[versitygw]}" versitygw

# Both registries get the same config.yml: storage.s3 on the same bucket, each
# under its own rootdirectory, redirects disabled (blobs stream through the
# registry), log level warn.
start_registry() { # NAME CMD
    local name=$1 cmd=$2 port
    port=$(free_port)
    cat >"$WORK/$name.yml" <<EOF
version: 0.1
log:
  level: warn
  formatter: text
storage:
  s3:
    accesskey: $ACCESS
    secretkey: $SECRET
    region: us-east-1
    regionendpoint: $S3URL
    forcepathstyle: true
    secure: false
    bucket: $BUCKET
    rootdirectory: /$name
${COPY_THRESHOLD:+    multipartcopythresholdsize: $COPY_THRESHOLD
}  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: 127.0.0.1:$port
EOF
    OTEL_SDK_DISABLED=true OTEL_TRACES_EXPORTER=none "$cmd" serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=("$!")
    URL[$name]=http://127.0.0.1:$port
    wait_http "${URL[$name]}/v2/" "${PID[$name]}" "$name"
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${URL[$name]}/v2/") == 200 ]] || die "$name: GET /v2/ is not 200"
    log "$name ready on ${URL[$name]} (pid ${PID[$name]}), storage s3://$BUCKET/$name on $S3URL"
}
start_registry wharf "$WHARF_BIN"
start_registry distribution distribution-registry
REGISTRIES=(wharf distribution)

# The object the registry:2 layout keeps a blob's bytes in.
blob_key() { local hex=${2#sha256:}; echo "$1/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data"; } # NAME DIGEST
blob_url() { echo "${URL[$1]}/v2/$2/blobs/$3"; } # NAME REPO DIGEST
# The blob's objects removed from the bucket (versitygw's posix backend keeps
# an object as a file of the same path), so that every timed push stores a new
# blob, as bench/run.sh does on the filesystem.
forget_blob() { # NAME REPO DIGEST
    local hex=${3#sha256:} v2=$S3DIR/$BUCKET/$1/docker/registry/v2
    rm -rf "$v2/blobs/sha256/${hex:0:2}/$hex" "$v2/repositories/$2"
}

# crane push of an OCI layout; prints the wall seconds. The blob must be in
# the bucket afterwards with every byte (else the push skipped it).
push() { # NAME LAYOUT REPO DIGEST SIZE
    local name=$1 start end got
    start=$(now)
    crane push --insecure "$2" "${URL[$name]#http://}/$3:$TAG" >"$WORK/crane.out" 2>&1 ||
        { cat "$WORK/crane.out" >&2; tail -n 20 "$WORK/$name.log" "$WORK/versitygw.log" >&2; die "$name: crane push failed"; }
    end=$(now)
    got=$(stat -c %s "$S3DIR/$BUCKET/$(blob_key "$name" "$4")" 2>/dev/null || echo 0)
    [[ $got == "$5" ]] || die "$name: after the push the bucket holds $got bytes of $4, want $5"
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}'
}
pull_once() { # URL SIZE [CURL ARGS...]: seconds
    local url=$1 size=$2 out code got secs
    shift 2
    out=$(curl -sS --max-time 900 "$@" -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$url")
    read -r code got secs <<<"$out"
    [[ $code == 200 && $got == "$size" ]] || die "GET $url answered $code with $got bytes (want 200, $size)"
    echo "$secs"
}
SIGV4=(--aws-sigv4 aws:amz:us-east-1:s3 --user "$ACCESS:$SECRET" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD')

# ---------------------------------------------------------------- set-up
log "warming the page cache with the test data"
cat "$BIG_FILE" "$SMALL_FILE" >/dev/null
for s in "${REGISTRIES[@]}"; do
    push "$s" "$WORK/layout-small" "$REPO_SMALL" "$SMALL_DIGEST" "$SMALL" >/dev/null
    # One untimed push of the big image first (see bench/run.sh: first writes
    # into fresh page-cache memory are slower on this VM).
    forget_blob "$s" "$REPO_BIG" "$BIG_DIGEST"
    push "$s" "$WORK/layout-big" "$REPO_BIG" "$BIG_DIGEST" "$BIG" >/dev/null
done
# The pulled bytes are the pushed bytes, through each registry and from S3 (untimed).
for s in "${REGISTRIES[@]}"; do
    for d in "$REPO_SMALL|$SMALL_DIGEST" "$REPO_BIG|$BIG_DIGEST"; do
        got=sha256:$(curl -sS --max-time 300 "$(blob_url "$s" "${d%|*}" "${d#*|}")" | sha256sum | awk '{print $1}')
        [[ $got == "${d#*|}" ]] || die "$s: pulled blob has digest $got, want ${d#*|}"
    done
done
got=sha256:$(curl -sS --max-time 300 "${SIGV4[@]}" "$S3URL/$BUCKET/$(blob_key wharf "$BIG_DIGEST")" | sha256sum | awk '{print $1}')
[[ $got == "$BIG_DIGEST" ]] || die "versitygw: plain GET of wharf's blob object has digest $got, want $BIG_DIGEST"

# ---------------------------------------------------------------- runs
rss_sampler() { # PID STOPFILE OUTFILE: max VmRSS every 20 ms, bounded
    local i max=0 v
    for ((i = 0; i < 15000; i++)); do
        [[ -e $2 ]] && break
        v=$(status_kib "$1" VmRSS 2>/dev/null || echo 0)
        ((v > max)) && max=$v
        sleep 0.02
    done
    echo "$max" >"$3"
}
S3PID=${PID[versitygw]}
for ((r = 1; r <= RUNS; r++)); do
    # 1. push
    for s in "${REGISTRIES[@]}"; do
        forget_blob "$s" "$REPO_BIG" "$BIG_DIGEST"
        sync # earlier writes go to disk first, untimed
        t0=$(cpu_ticks "${PID[$s]}") v0=$(cpu_ticks "$S3PID")
        secs=$(push "$s" "$WORK/layout-big" "$REPO_BIG" "$BIG_DIGEST" "$BIG")
        t1=$(cpu_ticks "${PID[$s]}") v1=$(cpu_ticks "$S3PID")
        record "$s" push_mbs "$(awk -v b="$BIG" -v t="$secs" 'BEGIN {printf "%.1f", b / t / 1e6}')"
        record "$s" push_cpu "$(per_gib $((t1 - t0)) "$BIG")"
        record "$s" push_s3_cpu "$(per_gib $((v1 - v0)) "$BIG")"
        log "push run $r: $s $BIG bytes in $secs s"
    done
    sync
    # 2. single pull, and the machine limit: versitygw's own GET of the object
    for s in "${REGISTRIES[@]}" limit; do
        t0=0 t1=0
        [[ $s == limit ]] || t0=$(cpu_ticks "${PID[$s]}")
        v0=$(cpu_ticks "$S3PID")
        if [[ $s == limit ]]; then
            secs=$(pull_once "$S3URL/$BUCKET/$(blob_key wharf "$BIG_DIGEST")" "$BIG" "${SIGV4[@]}")
        else
            secs=$(pull_once "$(blob_url "$s" "$REPO_BIG" "$BIG_DIGEST")" "$BIG")
            t1=$(cpu_ticks "${PID[$s]}")
        fi
        v1=$(cpu_ticks "$S3PID")
        record "$s" pull_mbs "$(awk -v b="$BIG" -v t="$secs" 'BEGIN {printf "%.1f", b / t / 1e6}')"
        [[ $s == limit ]] || record "$s" pull_cpu "$(per_gib $((t1 - t0)) "$BIG")"
        record "$s" pull_s3_cpu "$(per_gib $((v1 - v0)) "$BIG")"
        log "pull run $r: $s $BIG bytes in $secs s"
    done
    # 3. CONC concurrent pulls of the small layer, one curl process
    for s in "${REGISTRIES[@]}" limit; do
        cfg=$WORK/parallel.cfg
        if [[ $s == limit ]]; then
            url=$S3URL/$BUCKET/$(blob_key wharf "$SMALL_DIGEST")
            extra=("${SIGV4[@]}")
        else
            url=$(blob_url "$s" "$REPO_SMALL" "$SMALL_DIGEST")
            extra=()
            echo 5 >"/proc/${PID[$s]}/clear_refs" 2>/dev/null || true
            rm -f "$WORK/stop" "$WORK/rss.max"
            rss_sampler "${PID[$s]}" "$WORK/stop" "$WORK/rss.max" &
            SAMPLER=$!
        fi
        for ((i = 0; i < CONC; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; done >"$cfg"
        t0=0 t1=0
        [[ $s == limit ]] || t0=$(cpu_ticks "${PID[$s]}")
        v0=$(cpu_ticks "$S3PID")
        start=$(now)
        curl -sS --max-time 900 "${extra[@]}" -Z --parallel-max "$CONC" --parallel-immediate -K "$cfg" \
            -w '%{http_code} %{size_download}\n' >"$WORK/parallel.out" 2>"$WORK/parallel.err" ||
            { cat "$WORK/parallel.err" >&2; die "$s: concurrent pulls failed"; }
        end=$(now)
        [[ $s == limit ]] || t1=$(cpu_ticks "${PID[$s]}")
        v1=$(cpu_ticks "$S3PID")
        [[ -z $SAMPLER ]] || stop_sampler "$s" "${PID[$s]}"
        all_complete "$s" "$CONC" "$SMALL"
        wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
        record "$s" conc_mbs "$(awk -v n="$CONC" -v b="$SMALL" -v t="$wall" 'BEGIN {printf "%.1f", n * b / t / 1e6}')"
        [[ $s == limit ]] || record "$s" conc_cpu "$(per_gib $((t1 - t0)) $((CONC * SMALL)))"
        record "$s" conc_s3_cpu "$(per_gib $((v1 - v0)) $((CONC * SMALL)))"
        log "concurrent run $r: $s $CONC x $SMALL bytes in $wall s"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
BUILDS_AFTER=$(other_builds)
cp "$RESULTS" "$WHARF_CACHE/bench/s3-last-results.tsv"

# ---------------------------------------------------------------- report
cpu_cell() { # SERVER METRIC: CPU s/GiB with two decimals
    local v
    v=$(values "$1" "$2")
    [[ -n $v ]] || { echo "–"; return; }
    if ((RUNS > 1)); then printf '%s (%s)' "$(median <<<"$v")" "$(paste -sd, <<<"$v" | sed 's/,/, /g')"; else median <<<"$v"; fi
}
W_PUSH=$(med wharf push_mbs) D_PUSH=$(med distribution push_mbs)
W_PULL=$(med wharf pull_mbs) D_PULL=$(med distribution pull_mbs)
W_PEAK=$(med wharf conc_peak_rss_kib) D_PEAK=$(med distribution conc_peak_rss_kib)
mode=$( ((QUICK)) && echo "quick (\`--quick\`)" || echo "full")
other_note="none seen"
if ((BUILDS_BEFORE + BUILDS_AFTER > 0)); then
    other_note="**yes**: $BUILDS_BEFORE such processes before, $BUILDS_AFTER after; the numbers are noisier for it"
fi
if [[ -n $COPY_THRESHOLD ]]; then
    copy_note="\`chunksize\` at its default, **\`multipartcopythresholdsize: $COPY_THRESHOLD\`** (\`--copy-threshold\`) for both"
else
    copy_note="\`chunksize\` and the multipart copy settings at their defaults"
fi
# versitygw built by go install reports "git"; scripts/tools.sh pins the version.
vgw_version=$(sed -n 's/^VERSITYGW_VERSION=\([^[:space:]]*\).*/\1/p' "$ROOT/scripts/tools.sh" 2>/dev/null || true)
crane_version=$(crane version 2>/dev/null || echo "?")

{
    cat <<EOF
## S3 storage: wharf-registry vs distribution v3 on the same versitygw

Written by \`bench/s3.sh\`, mode: $mode, on $(date -u '+%Y-%m-%d %H:%M UTC').
Machine: $(nproc) cores, shared by the client, the registry and the S3 server;
load average before $LOAD_BEFORE, after $LOAD_AFTER. Other work on the machine
(compilers, linkers, an e2e cluster's kubelet or containerd): $other_note.

S3 server: versitygw ${vgw_version:-?} (\`posix\` backend, \`--quiet\`), one bucket on the
same disk as the other benchmarks. Both registries use it at once, each under its
own \`rootdirectory\`, with the same \`storage.s3\` settings ($copy_note) and \`storage.redirect.disable: true\`.
$RUNS run(s); each cell is the median, then every run in order. MB/s are 10^6 bytes/s.

| measurement | wharf-registry | distribution | versitygw plain GET (machine limit) |
|---|---|---|---|
| push of one $(fmt_size "$BIG") layer (crane push), MB/s | $(cell wharf push_mbs) | $(cell distribution push_mbs) | – |
| push, registry CPU s/GiB | $(cpu_cell wharf push_cpu) | $(cpu_cell distribution push_cpu) | – |
| push, versitygw CPU s/GiB | $(cpu_cell wharf push_s3_cpu) | $(cpu_cell distribution push_s3_cpu) | – |
| pull of the $(fmt_size "$BIG") layer, MB/s | $(cell wharf pull_mbs) | $(cell distribution pull_mbs) | $(cell limit pull_mbs) |
| pull, registry CPU s/GiB | $(cpu_cell wharf pull_cpu) | $(cpu_cell distribution pull_cpu) | – |
| pull, versitygw CPU s/GiB | $(cpu_cell wharf pull_s3_cpu) | $(cpu_cell distribution pull_s3_cpu) | $(cpu_cell limit pull_s3_cpu) |
| $CONC concurrent pulls of $(fmt_size "$SMALL"), aggregate MB/s | $(cell wharf conc_mbs) | $(cell distribution conc_mbs) | $(cell limit conc_mbs) |
| $CONC concurrent pulls, registry CPU s/GiB | $(cpu_cell wharf conc_cpu) | $(cpu_cell distribution conc_cpu) | – |
| $CONC concurrent pulls, versitygw CPU s/GiB | $(cpu_cell wharf conc_s3_cpu) | $(cpu_cell distribution conc_s3_cpu) | $(cpu_cell limit conc_s3_cpu) |
| peak RSS of the registry during the $CONC pulls, MiB | $(cell wharf conc_peak_rss_kib 1024) | $(cell distribution conc_peak_rss_kib 1024) | – |

| target | required | measured | result |
|---|---|---|---|
| push ≥ $PUSH_MIN× distribution | ≥ $(awk -v d="$D_PUSH" -v k="$PUSH_MIN" 'BEGIN {printf "%.1f", k * d}') MB/s | $W_PUSH MB/s ($(ratio "$W_PUSH" "$D_PUSH")×) | $(verdict "$(ratio "$W_PUSH" "$D_PUSH")" "$PUSH_MIN") |
| pull ≥ distribution | ≥ $D_PULL MB/s | $W_PULL MB/s ($(ratio "$W_PULL" "$D_PULL")×) | $(verdict "$(ratio "$W_PULL" "$D_PULL")" "$PULL_MIN") |
| peak RSS in the $CONC pulls ≤ ¼ of distribution | ≤ $(awk -v d="$D_PEAK" 'BEGIN {printf "%.1f", d / 4 / 1024}') MiB | $(awk -v d="$W_PEAK" 'BEGIN {printf "%.1f", d / 1024}') MiB ($(ratio "$W_PEAK" "$D_PEAK")×) | $(verdict "$(ratio "$W_PEAK" "$D_PEAK")" "$RSS_MAX" "<=") |

$(awk -v wr="$(med wharf push_cpu)" -v wv="$(med wharf push_s3_cpu)" -v dr="$(med distribution push_cpu)" -v dv="$(med distribution push_s3_cpu)" -v n="$(nproc)" 'BEGIN {
    w = wr + wv; d = dr + dv
    if (w > 0) printf "Reading the push: registry, versitygw and crane share the %d cores, so the push is bound by their CPU per byte. wharf and versitygw spent %.2f + %.2f = %.2f CPU s/GiB on a wharf push, distribution and versitygw %.2f + %.2f = %.2f on a distribution push: with the cores saturated, the push ratio cannot exceed about %.2f×, however little the registry itself spends, because versitygw'"'"'s share (receiving and checking each part, joining the parts, the copy to the digest'"'"'s key) is most of it. Against an S3 service on other machines that share is not on the registry'"'"'s cores.\n", n, wr, wv, w, dr, dv, d, d / w
}')

Method:

- versitygw (\`versitygw --quiet --access … --secret … --port 127.0.0.1:P posix DIR\`)
  serves DIR/$BUCKET as the bucket; wharf-registry (\`cargo build --release\`) and
  distribution v3 (\`distribution-registry serve\`) run at once against it, on
  127.0.0.1, with \`log.level: warn\`; distribution with
  \`OTEL_SDK_DISABLED=true OTEL_TRACES_EXPORTER=none\`.
- Push: crane $crane_version (\`crane push --insecure LAYOUT HOST/$REPO_BIG:$TAG\`)
  of an OCI image layout holding a config and one layer of $(fmt_size "$BIG") of random
  bytes (the layout hard-links the cached data file). crane uploads the layer as
  POST, one streamed PATCH, PUT with the digest, then the config and the manifest.
  The time is crane's whole run. Before each timed push the layer's objects and
  the repository are removed from the bucket directory and \`sync\` runs
  (untimed), so every push stores a new blob; after it the layer's object must be
  in the bucket with every byte. One untimed push per registry comes first.
- Pull: \`curl -o /dev/null\` of \`GET /v2/$REPO_BIG/blobs/<digest>\`; the registry
  reads the object from versitygw and streams it (no redirect); \`time_total\`,
  status and size checked. The machine limit is curl fetching the same object
  (wharf's copy) from versitygw directly, signed with \`--aws-sigv4\`: a
  registry adds a hop to it, so it is the most a pull through a registry can
  reach here.
- Concurrent pulls: one curl process, \`--parallel --parallel-max $CONC\`, $CONC GETs of
  a $(fmt_size "$SMALL") layer pushed the same way; every status and size checked.
  Peak RSS: \`echo 5 > /proc/PID/clear_refs\` resets VmHWM before, VmHWM read after,
  VmRSS also sampled every 20 ms; the larger is reported.
- CPU s/GiB: user+system time of the registry process (all threads), and of
  versitygw apart, from /proc/PID/stat, per GiB moved; the client is not counted.
- The pulled bytes are checked once per registry and from versitygw, untimed.
- The client (crane or curl), the registry and versitygw share the $(nproc) cores;
  that is the same for both registries, which are measured one after the other,
  interleaved run by run.
EOF
} >"$OUT"
log "wrote $OUT"
cat "$OUT"
exit_on_missed_targets "$OUT" "bench/s3.sh"
