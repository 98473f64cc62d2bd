#!/usr/bin/env bash
# bench/gc.sh: an online garbage collection pass (storage.gc) over 10,000
# manifests and 50,000 blobs, and what it costs the pulls it runs beside.
#
# bench/gc_tree.py writes the tree: 10,000 tagged manifests in 100
# repositories (each with a config and two layers: 40,000 referenced blobs)
# and 10,000 old unreferenced blobs. One image with a big layer is pushed
# over HTTP. Each run starts wharf-registry with `storage.gc.interval`, so its
# first pass begins one interval after start; meanwhile the same client pulls
# the big layer over and over (the baseline), then again while the pass
# runs, until the registry logs that it finished.
#
#   bash bench/gc.sh            10,000 manifests, 64 MiB layer, 3 runs
#   bash bench/gc.sh --quick    1,000 manifests, 16 MiB layer, 1 run
#
# Options: --quick, --runs N, --out FILE (a markdown section; default
# $WHARF_CACHE/bench/gc.md), --no-build. Environment: WHARF_CACHE,
# WHARF_REGISTRY_BIN.
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
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "bench/gc.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then
    MANIFESTS=1000 ORPHANS=1000 LAYER=$((16 << 20)) RUNS=${RUNS:-1}
else
    MANIFESTS=10000 ORPHANS=10000 LAYER=$((64 << 20)) RUNS=${RUNS:-3}
fi
OUT=${OUT:-$WHARF_CACHE/bench/gc.md}
BASELINE_PULLS=20
REPO=bench/big
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json

log() { printf '[bench/gc %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench/gc.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for t in curl awk sha256sum python3 jq; do
    command -v "$t" >/dev/null || die "missing tool $t (run scripts/tools.sh)"
done
if ((BUILD)); then
    log "building (cargo build --release --locked -p wharf-registry)"
    (cd "$ROOT" && cargo build --release --locked -p wharf-registry >&2) || die "cargo build failed"
fi
WHARF_BIN=${WHARF_REGISTRY_BIN:-$ROOT/target/release/wharf-registry}
[[ -x $WHARF_BIN ]] || die "no wharf-registry binary at $WHARF_BIN"

bench_workdir gc
DATA=$WORK/data
log "writing $MANIFESTS manifests and $ORPHANS unreferenced blobs"
python3 "$ROOT/bench/gc_tree.py" "$DATA" "$MANIFESTS" "$ORPHANS"

# start INTERVAL: a registry on DATA whose first collection starts INTERVAL after start.
start() {
    local port i code
    port=$(free_port)
    cat >"$WORK/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: json
storage:
  filesystem:
    rootdirectory: $DATA
  gc:
    enabled: true
    interval: $1
    delay: 1h
http:
  addr: 127.0.0.1:$port
EOF
    : >"$WORK/registry.log"
    "$WHARF_BIN" serve "$WORK/config.yml" >"$WORK/registry.log" 2>&1 &
    REG=$!
    PIDS+=("$REG")
    URL=http://127.0.0.1:$port
    for ((i = 0; i < 600; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/v2/" || true)
        [[ $code == 200 ]] && return
        kill -0 "$REG" 2>/dev/null || { cat "$WORK/registry.log" >&2; die "the registry exited during start-up"; }
        sleep 0.05
    done
    die "the registry was not ready within 30s"
}
logged() { grep -q "\"msg\":\"$1\"" "$WORK/registry.log"; }

# The big image, pushed over HTTP once.
start 1h
head -c "$LAYER" /dev/urandom >"$WORK/layer.bin"
LAYER_DIGEST="sha256:$(sha256sum "$WORK/layer.bin" | awk '{print $1}')"
loc=$(curl -sS --max-time 30 -o /dev/null -D - -X POST "$URL/v2/$REPO/blobs/uploads/" |
    awk 'tolower($1) == "location:" {sub(/\r$/, ""); print $2}')
[[ $loc == /* ]] && loc=$URL$loc
[[ $loc == *\?* ]] && sep='&' || sep='?'
code=$(curl -sS --max-time 300 -o /dev/null -w '%{http_code}' -H 'Expect:' -T "$WORK/layer.bin" "$loc${sep}digest=$LAYER_DIGEST")
[[ $code == 201 ]] || die "the layer PUT answered $code"
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
    "$MT_MANIFEST" "$LAYER_DIGEST" "$LAYER" "$LAYER_DIGEST" "$LAYER" >"$WORK/manifest.json"
code=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: $MT_MANIFEST" \
    --data-binary "@$WORK/manifest.json" "$URL/v2/$REPO/manifests/latest")
[[ $code == 201 ]] || die "the manifest PUT answered $code"
stop_pid "$REG"
rm -f "$WORK/layer.bin"

# pull: one GET of the big layer; dies on anything but its full size.
pull() {
    local got
    got=$(curl -sS --max-time 120 -o /dev/null -w '%{http_code} %{size_download}' "$URL/v2/$REPO/blobs/$LAYER_DIGEST")
    [[ $got == "200 $LAYER" ]] || die "a pull answered $got"
}
for ((r = 1; r <= RUNS; r++)); do
    python3 "$ROOT/bench/gc_tree.py" "$DATA" "$MANIFESTS" "$ORPHANS"
    start 12s
    t0=$(date +%s.%N)
    for ((i = 0; i < BASELINE_PULLS; i++)); do pull; done
    t1=$(date +%s.%N)
    ! logged "garbage collection started" || die "the pass started during the baseline: lower BASELINE_PULLS"
    for ((i = 0; i < 6000; i++)); do logged "garbage collection started" && break; sleep 0.01; done
    logged "garbage collection started" || die "no collection started"
    n=0 t2=$(date +%s.%N)
    while ! logged "garbage collection finished"; do
        pull
        n=$((n + 1))
        ((n < 100000)) || die "the pass did not finish"
    done
    t3=$(date +%s.%N)
    line=$(grep '"msg":"garbage collection finished"' "$WORK/registry.log" | head -n 1)
    pass_ms=$(jq -r '.elapsed_ms' <<<"$line") blobs=$(jq -r '.blobs' <<<"$line")
    ((blobs == ORPHANS)) || die "the pass deleted $blobs blobs, want $ORPHANS"
    base=$(awk -v n="$BASELINE_PULLS" -v s="$LAYER" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", n * s / (b - a) / 1048576}')
    during=$(awk -v n="$n" -v s="$LAYER" -v a="$t2" -v b="$t3" 'BEGIN {printf "%.1f", n * s / (b - a) / 1048576}')
    record gc pass_s "$(awk -v ms="$pass_ms" 'BEGIN {printf "%.2f", ms / 1000}')"
    record gc base_mib_s "$base"
    record gc during_mib_s "$during"
    record gc ratio "$(awk -v a="$during" -v b="$base" 'BEGIN {printf "%.3f", a / b}')"
    log "run $r: pass ${pass_ms} ms deleting $blobs blobs; pulls $base MiB/s before, $during MiB/s during ($n pulls)"
    stop_pid "$REG"
done

PASS=$(med gc pass_s) BASE=$(med gc base_mib_s) DURING=$(med gc during_mib_s) RATIO=$(med gc ratio)
mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<EOF
## Online garbage collection (\`bench/gc.sh\`)

One \`storage.gc\` pass over $MANIFESTS tagged manifests in 100 repositories
($((MANIFESTS * 4)) referenced blobs) and $ORPHANS old unreferenced blobs, on
the filesystem, while one client pulls a $((LAYER >> 20)) MiB layer over and
over. $RUNS run(s), medians; $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC').

| measurement | result | target | |
|---|---|---|---|
| pass duration (marks $MANIFESTS manifests, deletes $ORPHANS blobs), s | $PASS | | |
| pulls before the pass, MiB/s | $BASE | | |
| pulls while the pass runs, MiB/s | $DURING | | |
| while ÷ before | $RATIO | ≥ 0.9 | $(verdict "$RATIO" 0.9) |
EOF
log "wrote $OUT"
cat "$OUT"
exit_on_missed_targets "$OUT" bench/gc.sh
