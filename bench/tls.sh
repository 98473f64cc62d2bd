#!/usr/bin/env bash
# bench/tls.sh: what HTTPS costs (issue 15), on loopback.
#
# Four servers hold the same image (one random layer, a config, a manifest):
# wharf-registry over plain HTTP and over HTTPS (`http.tls.certificate` and
# `.key`), distribution v3 the same two ways. The certificate is made here
# with openssl: a CA and a leaf for 127.0.0.1 / localhost, ECDSA P-256 (what
# wharf's operator issues); every curl verifies it against that CA. Run by
# run (interleaved), the same client against each:
#   image pulls     N sequential pulls (manifest, config, layer) on one
#                   connection; curl's own protocol choice (h2 over TLS when
#                   the server offers it by ALPN), then forced HTTP/1.1
#   Go client       N `crane blob` of the layer: Go's net/http with HTTP/2
#                   on (offers h2 and HTTP/1.1 by ALPN over TLS; the blob's
#                   digest checked as it is read)
#   manifest GETs   wrk on GET /v2/<repo>/manifests/<tag> (HTTP/1.1)
#
#   bash bench/tls.sh            64 MiB layer, 20 pulls, 3 runs
#   bash bench/tls.sh --quick    16 MiB layer, 20 pulls, 1 run
#
# Options: --quick, --runs N, --out FILE (a markdown section; default
# $WHARF_CACHE/bench/tls.md), --no-build. Environment: WHARF_CACHE,
# WHARF_REGISTRY_BIN. Exit status 3 when the section shows a missed target.
#
# Every process this script starts is stopped by PID on exit and its work
# directory is removed. All traffic goes to 127.0.0.1; every loop is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WHARF_CACHE=${WHARF_CACHE:-$HOME/.cache/wharf}
export PATH="$WHARF_CACHE/bin:$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"

QUICK=0 RUNS="" OUT="" BUILD=1
while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --runs=*) RUNS=${1#*=} ;;
    --out) OUT=$2; shift ;;
    --out=*) OUT=${1#*=} ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "bench/tls.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then
    LAYER=$((16 << 20)) PULLS=20 WRK_SECS=3 RUNS=${RUNS:-1}
else
    LAYER=$((64 << 20)) PULLS=20 WRK_SECS=10 RUNS=${RUNS:-3}
fi
[[ $RUNS =~ ^[1-9][0-9]?$ ]] || { echo "bench/tls.sh: --runs wants 1 to 99, not '$RUNS'" >&2; exit 2; }
OUT=${OUT:-$WHARF_CACHE/bench/tls.md}
WRK_CONNS=16
REPO=bench/tls TAG=latest
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json
# Plain first: wharf, wharf over TLS, distribution, distribution over TLS.
SERVERS=(wharf wharf_tls dist dist_tls)
declare -A LABEL=([wharf]="wharf-registry, http" [wharf_tls]="wharf-registry, https"
    [dist]="distribution, http" [dist_tls]="distribution, https")

log() { printf '[bench/tls %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench/tls.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for t in openssl distribution-registry wrk curl crane awk sha256sum timeout; do
    command -v "$t" >/dev/null || die "missing tool $t (run scripts/tools.sh)"
done
if ((BUILD)); then
    log "building (cargo build --release --locked -p wharf-registry)"
    (cd "$ROOT" && cargo build --release --locked -p wharf-registry >&2) || die "cargo build failed"
fi
WHARF_BIN=${WHARF_REGISTRY_BIN:-$ROOT/target/release/wharf-registry}
[[ -x $WHARF_BIN ]] || die "no wharf-registry binary at $WHARF_BIN"

bench_workdir tls

# ---------------------------------------------------------------- certificates
make_certs

# ---------------------------------------------------------------- servers
declare -A URL PID
start() { # NAME CMD...
    local name=$1 port scheme=http tls=""
    shift
    port=$(free_port)
    mkdir -p "$WORK/$name"
    if [[ $name == *_tls ]]; then
        scheme=https
        tls="  tls:
    certificate: $WORK/leaf.crt
    key: $WORK/leaf.key"
    fi
    cat >"$WORK/$name.yml" <<EOF
version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: $WORK/$name
http:
  addr: 127.0.0.1:$port
$tls
EOF
    # OTEL_*: distribution v3 would otherwise set up an OTLP trace exporter.
    OTEL_SDK_DISABLED=true OTEL_TRACES_EXPORTER=none "$@" serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=("$!")
    URL[$name]=$scheme://127.0.0.1:$port
    CURL_CA_BUNDLE=$CA wait_http "${URL[$name]}/v2/" "${PID[$name]}" "$name" 200
    log "$name ready on ${URL[$name]} (pid ${PID[$name]})"
}
start wharf "$WHARF_BIN"
start wharf_tls "$WHARF_BIN"
start dist distribution-registry
start dist_tls distribution-registry
# Every curl verifies the servers' certificate against the CA made above.
c() { curl --cacert "$CA" "$@"; }

# ---------------------------------------------------------------- the image
cached_random "$WHARF_CACHE/bench/blob-$LAYER.bin" "$LAYER"
LAYER_FILE=$WHARF_CACHE/bench/blob-$LAYER.bin
LAYER_DIGEST=$(cat "$LAYER_FILE.sha256")
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]},"config":{}}' "$LAYER_DIGEST" >"$WORK/config.json"
CONFIG_DIGEST=sha256:$(sha256sum "$WORK/config.json" | awk '{print $1}')
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
    "$MT_MANIFEST" "$CONFIG_DIGEST" "$(stat -c %s "$WORK/config.json")" "$LAYER_DIGEST" "$LAYER" >"$WORK/manifest.json"
PULL_BYTES=$((LAYER + $(stat -c %s "$WORK/config.json") + $(stat -c %s "$WORK/manifest.json")))
push_blob() { # NAME FILE DIGEST
    local base=${URL[$1]} loc sep code
    loc=$(c -sS --max-time 30 -o /dev/null -D - -X POST "$base/v2/$REPO/blobs/uploads/" |
        awk 'tolower($1) == "location:" {sub(/\r$/, ""); print $2}')
    [[ -n $loc ]] || die "$1: no upload Location"
    [[ $loc == /* ]] && loc=$base$loc
    [[ $loc == *\?* ]] && sep='&' || sep='?'
    code=$(c -sS --max-time 300 -o /dev/null -w '%{http_code}' -H 'Expect:' -T "$2" "$loc${sep}digest=$3")
    [[ $code == 201 ]] || die "$1: blob PUT answered $code"
}
declare -A PROTO CIPHER
for s in "${SERVERS[@]}"; do
    push_blob "$s" "$LAYER_FILE" "$LAYER_DIGEST"
    push_blob "$s" "$WORK/config.json" "$CONFIG_DIGEST"
    code=$(c -sS --max-time 30 -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: $MT_MANIFEST" \
        --data-binary "@$WORK/manifest.json" "${URL[$s]}/v2/$REPO/manifests/$TAG")
    [[ $code == 201 ]] || die "$s: manifest PUT answered $code"
    # The pulled bytes are the pushed bytes (once, untimed; it also warms up).
    got=sha256:$(c -sS --max-time 120 "${URL[$s]}/v2/$REPO/blobs/$LAYER_DIGEST" | sha256sum | awk '{print $1}')
    [[ $got == "$LAYER_DIGEST" ]] || die "$s: the pulled layer has digest $got, want $LAYER_DIGEST"
    # What curl negotiates by itself, and the TLS version and cipher.
    PROTO[$s]=$(c -sS --max-time 10 -o /dev/null -w '%{http_version}' "${URL[$s]}/v2/")
    CIPHER[$s]=""
    if [[ $s == *_tls ]]; then
        CIPHER[$s]=$(c -sS -v --max-time 10 -o /dev/null "${URL[$s]}/v2/" 2>&1 |
            sed -n 's/^\* SSL connection using \(.*\)$/\1/p' | head -n 1)
        [[ -n ${CIPHER[$s]} ]] || CIPHER[$s]="(curl did not say)"
    fi
    log "$s: image pushed; curl speaks HTTP/${PROTO[$s]} to it${CIPHER[$s]:+, ${CIPHER[$s]}}"
done
[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${URL[wharf_tls]}/v2/" || true) == 000 ]] ||
    die "wharf over TLS was trusted without the bench CA"

# ---------------------------------------------------------------- measurements
# One pull = manifest, config, layer; PULLS of them on one curl (one connection).
pull_urls() { # NAME
    local i
    for ((i = 0; i < PULLS; i++)); do
        printf 'url = "%s"\noutput = "/dev/null"\nheader = "Accept: %s"\n' "${URL[$1]}/v2/$REPO/manifests/$TAG" "$MT_MANIFEST"
        printf 'url = "%s"\noutput = "/dev/null"\n' "${URL[$1]}/v2/$REPO/blobs/$CONFIG_DIGEST" "${URL[$1]}/v2/$REPO/blobs/$LAYER_DIGEST"
    done
}
# recorded NAME METRIC T0 T1 START END BYTES: BYTES over END - START in
# MiB/s, and the server's CPU ticks T1 - T0 per GiB, as METRIC and METRIC_cpu.
recorded() {
    local secs mibs
    secs=$(awk -v a="$5" -v b="$6" 'BEGIN {printf "%.3f", b - a}')
    mibs=$(awk -v n="$7" -v t="$secs" 'BEGIN {printf "%.1f", n / t / 2^20}')
    record "$1" "$2" "$mibs"
    record "$1" "${2}_cpu" "$(per_gib $(($4 - $3)) "$7")"
    log "run $r: $1 $2 $mibs MiB/s ($PULLS pulls in $secs s)"
}
pulls() { # NAME METRIC CURL-ARGS...
    local s=$1 metric=$2 t0 t1 start end ok conns bytes
    shift 2
    pull_urls "$s" >"$WORK/pulls.cfg"
    t0=$(cpu_ticks "${PID[$s]}")
    start=$(now)
    c -sS --max-time 600 "$@" -K "$WORK/pulls.cfg" -w '%{http_code} %{num_connects} %{size_download}\n' >"$WORK/pulls.out" ||
        die "$s: curl failed during the pulls"
    end=$(now)
    t1=$(cpu_ticks "${PID[$s]}")
    ok=$(awk '$1 == 200' "$WORK/pulls.out" | wc -l)
    ((ok == 3 * PULLS)) || { sort "$WORK/pulls.out" | uniq -c >&2; die "$s: $ok of $((3 * PULLS)) pull requests answered 200"; }
    conns=$(awk '{n += $2} END {print n + 0}' "$WORK/pulls.out")
    ((conns == 1)) || die "$s: the pulls opened $conns connections, want 1"
    bytes=$(awk '{n += $3} END {print n + 0}' "$WORK/pulls.out")
    ((bytes == PULLS * PULL_BYTES)) || die "$s: the pulls moved $bytes bytes, want $((PULLS * PULL_BYTES))"
    recorded "$s" "$metric" "$t0" "$t1" "$start" "$end" "$bytes"
}
# One Go pull = `crane blob` of the layer, on a new connection each time;
# crane trusts the bench CA through SSL_CERT_FILE.
declare -A PROTO_GO
go_pulls() { # NAME
    local s=$1 host=${URL[$1]#*://} t0 t1 start end i
    t0=$(cpu_ticks "${PID[$s]}")
    start=$(now)
    for ((i = 0; i < PULLS; i++)); do
        # crane (go-containerregistry) fails unless the bytes match the digest and the size.
        SSL_CERT_FILE=$CA timeout 300 crane blob "$host/$REPO@$LAYER_DIGEST" >/dev/null || die "$s: crane blob failed"
    done
    end=$(now)
    t1=$(cpu_ticks "${PID[$s]}")
    recorded "$s" pull_go "$t0" "$t1" "$start" "$end" $((PULLS * LAYER))
}
for s in "${SERVERS[@]}"; do
    # Which protocol Go's client takes (its HTTP/2 transport logs each connection).
    out=$(SSL_CERT_FILE=$CA GODEBUG=http2debug=1 timeout 60 crane manifest "${URL[$s]#*://}/$REPO:$TAG" 2>&1 >/dev/null) ||
        die "$s: crane manifest failed: $out"
    [[ $out == *"http2: Transport creating client conn"* ]] && PROTO_GO[$s]=2 || PROTO_GO[$s]=1.1
done
for ((r = 1; r <= RUNS; r++)); do
    # The two kinds of pull take turns at going first, run by run.
    if ((r % 2)); then
        for s in "${SERVERS[@]}"; do pulls "$s" pull; done
        for s in "${SERVERS[@]}"; do pulls "$s" pull_h1 --http1.1; done
    else
        for s in "${SERVERS[@]}"; do pulls "$s" pull_h1 --http1.1; done
        for s in "${SERVERS[@]}"; do pulls "$s" pull; done
    fi
    for s in "${SERVERS[@]}"; do go_pulls "$s"; done
    for s in "${SERVERS[@]}"; do
        # wrk speaks HTTP/1.1 only, and does not check the certificate.
        timeout $((WRK_SECS + 60)) wrk -t2 -c"$WRK_CONNS" -d"${WRK_SECS}s" --timeout 5s -H "Accept: $MT_MANIFEST" \
            "${URL[$s]}/v2/$REPO/manifests/$TAG" >"$WORK/wrk.out" 2>&1 || { cat "$WORK/wrk.out" >&2; die "wrk against $s failed"; }
        if grep -q -E 'Non-2xx|Socket errors' "$WORK/wrk.out"; then cat "$WORK/wrk.out" >&2; die "wrk against $s saw errors"; fi
        rps=$(awk '$1 == "Requests/sec:" {print $2}' "$WORK/wrk.out")
        [[ -n $rps ]] || { cat "$WORK/wrk.out" >&2; die "no Requests/sec from wrk against $s"; }
        record "$s" manifest_rps "$rps"
        log "run $r: $s manifest GETs $rps req/s"
    done
done

# ---------------------------------------------------------------- report
row() { # NAME
    printf '| %s | HTTP/%s | %s | %s | %s | %s | HTTP/%s | %s | %s | %s |\n' "${LABEL[$1]}" "${PROTO[$1]}" \
        "$(cell "$1" pull)" "$(cell "$1" pull_cpu)" "$(cell "$1" pull_h1)" "$(cell "$1" pull_h1_cpu)" \
        "${PROTO_GO[$1]}" "$(cell "$1" pull_go)" "$(cell "$1" pull_go_cpu)" "$(cell "$1" manifest_rps)"
}
ratio_row() { # IMPLEMENTATION TLS PLAIN
    local m cells=()
    for m in pull pull_cpu pull_h1 pull_h1_cpu manifest_rps; do cells+=("$(ratio "$(med "$2" "$m")" "$(med "$3" "$m")")"); done
    cells=("${cells[@]:0:4}" "" "$(ratio "$(med "$2" pull_go)" "$(med "$3" pull_go)")" "$(ratio "$(med "$2" pull_go_cpu)" "$(med "$3" pull_go_cpu)")" "${cells[4]}")
    printf '| %s: https / http | | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "${cells[@]}"
}
W_PULL=$(med wharf pull) WT_PULL=$(med wharf_tls pull)
WANT=$(awk -v p="$W_PULL" 'BEGIN {printf "%.1f", 0.85 * p}')
W_GO=$(med wharf pull_go) WT_GO=$(med wharf_tls pull_go)
WANT_GO=$(awk -v p="$W_GO" 'BEGIN {printf "%.1f", 0.85 * p}')
dist_version=$(distribution-registry --version 2>/dev/null | awk '{print $NF}')
mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<EOF
## TLS: HTTPS against plain HTTP (\`bench/tls.sh\`)

wharf-registry and distribution $dist_version, each over plain HTTP and over HTTPS
(\`http.tls.certificate\`, \`.key\`: an ECDSA P-256 leaf for 127.0.0.1 from a
CA made by the script, which curl verifies), with the same image ($(fmt_size "$LAYER")
layer, config, manifest). Pulls: $PULLS whole-image pulls (manifest, config,
layer) in sequence on one curl connection, MiB/s = bytes / wall time; first
with curl's own choice of protocol (over TLS it offers h2 by ALPN, and takes
it where the server agrees: the protocol column), then with \`--http1.1\`
forced, like for like. Go pulls: $PULLS \`crane blob\` of the layer, each on a
new connection, with Go's net/http as go-containerregistry uses it (over TLS
it offers h2 and HTTP/1.1 by ALPN, and asks for 16 KiB frames where h2 is
picked; it checks the blob's digest as it reads, on the same cores). "CPU s/GiB" is the server's user+system CPU time per
GiB pulled, from /proc/PID/stat. Manifest GETs: wrk (HTTP/1.1, $WRK_CONNS
connections, ${WRK_SECS}s) on \`GET /v2/$REPO/manifests/$TAG\`. The four servers
run at once and are measured one at a time, interleaved run by run; $RUNS run(s),
each cell the median$( ((RUNS > 1)) && echo ", then every run in order"); $(nproc) cores,
$(date -u '+%Y-%m-%d %H:%M UTC'). TLS: wharf ${CIPHER[wharf_tls]}; distribution ${CIPHER[dist_tls]}.

| server | protocol (curl's choice) | pull MiB/s | server CPU s/GiB | pull MiB/s, HTTP/1.1 | server CPU s/GiB, HTTP/1.1 | protocol (Go's choice) | Go pull MiB/s | server CPU s/GiB, Go | manifest GETs/s |
|---|---|---|---|---|---|---|---|---|---|
$(row wharf)
$(row wharf_tls)
$(row dist)
$(row dist_tls)
$(ratio_row wharf-registry wharf_tls wharf)
$(ratio_row distribution dist_tls dist)

The protocol columns show each server's ALPN order: wharf offers HTTP/1.1
first (h2 only to clients that offer nothing else), distribution h2 first.
Where both columns are HTTP/1.1, their difference is this run's noise. On loopback the client (curl, OpenSSL) decrypts on the same
$(nproc) cores the server encrypts on, so the throughput ratios carry the
client's cost of TLS as well as the server's; the CPU columns are the
server's part alone.

| target | required | measured | result |
|---|---|---|---|
| TLS costs wharf under 15% of its pull throughput (curl) | ≥ $WANT MiB/s (0.85 × $W_PULL over http) | $WT_PULL MiB/s over https ($(ratio "$WT_PULL" "$W_PULL")×) | $(verdict "$WT_PULL" "$WANT" ">=") |
| TLS costs wharf under 15% of its pull throughput (Go client) | ≥ $WANT_GO MiB/s (0.85 × $W_GO over http) | $WT_GO MiB/s over https ($(ratio "$WT_GO" "$W_GO")×) | $(verdict "$WT_GO" "$WANT_GO" ">=") |
EOF
log "wrote $OUT"
cat "$OUT"
exit_on_missed_targets "$OUT" "bench/tls.sh"
