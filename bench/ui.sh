#!/usr/bin/env bash
# bench/ui.sh: the search API and the UI's pages at 10,000 repositories and
# 100,000 tags (issue 14), on the filesystem.
#
# bench/ui_tree.py writes the tree (10,000 repositories of 10 tags each). The
# registry starts with the UI on; its index is built from a walk of storage
# (timed). Then, one request at a time from one client on loopback: the search
# API with varied queries and pages, the repository list page (first pages,
# searches, and pages deep into the list by `last`). The time is curl's
# time_total on loopback, an upper bound on the server's time.
#
#   bash bench/ui.sh            10,000 repositories, 100,000 tags, 300 requests per kind
#   bash bench/ui.sh --quick    1,000 repositories, 10,000 tags, 60 requests per kind
#
# Options: --quick, --requests N, --out FILE (a markdown section; default
# $WHARF_CACHE/bench/ui.md), --no-build. Environment: WHARF_CACHE,
# WHARF_REGISTRY_BIN.
#
# Every process this script starts is stopped by PID on exit and its work
# directory is removed. All traffic goes to 127.0.0.1; every loop is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WHARF_CACHE=${WHARF_CACHE:-$HOME/.cache/wharf}
export PATH="$WHARF_CACHE/bin:$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"

QUICK=0 REQUESTS="" OUT="" BUILD=1
while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --requests) REQUESTS=$2; shift ;;
    --requests=*) REQUESTS=${1#*=} ;;
    --out) OUT=$2; shift ;;
    --out=*) OUT=${1#*=} ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench/ui.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then REPOS=1000 TAGS=10 REQUESTS=${REQUESTS:-60}; else REPOS=10000 TAGS=10 REQUESTS=${REQUESTS:-300}; fi
OUT=${OUT:-$WHARF_CACHE/bench/ui.md}

log() { printf '[bench/ui %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench/ui.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for t in curl awk python3 jq; do
    command -v "$t" >/dev/null || die "missing tool $t (run scripts/tools.sh)"
done
if ((BUILD)); then
    log "building (cargo build --release --locked -p wharf-registry)"
    (cd "$ROOT" && cargo build --release --locked -p wharf-registry >&2) || die "cargo build failed"
fi
WHARF_BIN=${WHARF_REGISTRY_BIN:-$ROOT/target/release/wharf-registry}
[[ -x $WHARF_BIN ]] || die "no wharf-registry binary at $WHARF_BIN"

bench_workdir ui
DATA=$WORK/data
log "writing $REPOS repositories with $TAGS tags each"
t0=$(now)
python3 "$ROOT/bench/ui_tree.py" "$DATA" "$REPOS" "$TAGS"
log "tree written in $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.0f", b - a}') s"

port=$(free_port)
cat >"$WORK/config.yml" <<EOF2
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DATA
http:
  addr: 127.0.0.1:$port
ui:
  enabled: true
EOF2
"$WHARF_BIN" serve "$WORK/config.yml" >"$WORK/registry.log" 2>&1 &
REG=$!
PIDS+=("$REG")
URL=http://127.0.0.1:$port
wait_http "$URL/v2/" "$REG" wharf-registry 200

# The first search waits for the index the registry started building at start.
t0=$(now)
n=$(curl -sS --max-time 600 "$URL/v2/_wharf/search?n=1000" | jq '.repositories | length')
BUILD_S=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}')
((n == 1000)) || die "the first search found $n repositories, want 1000"
log "index ready after $BUILD_S s"

# time_ms URL: one GET, its total time in ms; dies unless it answers 200.
time_ms() {
    local out
    out=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code} %{time_total}' "$1")
    [[ ${out% *} == 200 ]] || die "GET $1 answered ${out% *}"
    awk -v t="${out#* }" 'BEGIN {printf "%.3f\n", t * 1000}'
}
p95() { sort -g | awk '{a[NR] = $1} END {i = int(NR * 0.95 + 0.999); if (i < 1) i = 1; print a[i]}'; }
# A repository name deep in the list, for `last`.
some_repo() { printf 'team-%02d/service-%05d' $((RANDOM % 50)) $((RANDOM % REPOS)); }
queries=(service-0 team-07 "service-00$((RANDOM % 10))" v3 latest "team-1:v7" zzz-nothing "")

log "search API: $REQUESTS requests"
for ((i = 0; i < REQUESTS; i++)); do
    q=${queries[i % ${#queries[@]}]}
    if ((i % 3 == 0)); then extra="&last=$(some_repo)"; else extra=""; fi
    time_ms "$URL/v2/_wharf/search?q=$q&n=100$extra" >>"$WORK/api.ms"
done
log "list page: $REQUESTS requests"
for ((i = 0; i < REQUESTS; i++)); do
    case $((i % 3)) in
    0) time_ms "$URL/ui/" ;;
    1) time_ms "$URL/ui/?last=$(some_repo)" ;;
    2) time_ms "$URL/ui/?q=${queries[i % ${#queries[@]}]}" ;;
    esac >>"$WORK/list.ms"
done
log "search page: $REQUESTS requests"
for ((i = 0; i < REQUESTS; i++)); do
    time_ms "$URL/ui/?q=${queries[i % ${#queries[@]}]}&last=$(some_repo)" >>"$WORK/search.ms"
done
API=$(p95 <"$WORK/api.ms") LIST=$(p95 <"$WORK/list.ms") SEARCH=$(p95 <"$WORK/search.ms")
API50=$(median <"$WORK/api.ms") LIST50=$(median <"$WORK/list.ms") SEARCH50=$(median <"$WORK/search.ms")
RSS=$(status_kib "$REG" VmRSS)
stop_pid "$REG"

mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<EOF2
## Search and the UI (\`bench/ui.sh\`)

$REPOS repositories with $TAGS tags each ($((REPOS * TAGS)) tags) on the filesystem;
$REQUESTS requests of each kind, one at a time, from one client on loopback (curl's
total time, an upper bound on the server's). Pages are 50 repositories, each with its
size and last push read for the page; API pages are 100. $(nproc) cores,
$(date -u '+%Y-%m-%d %H:%M UTC'). The index was ready $BUILD_S s after start
(a walk of every repository's tags); the registry's RSS after the run was $((RSS / 1024)) MiB.

| measurement | median | p95 | target | |
|---|---|---|---|---|
| search API (\`/v2/_wharf/search\`), ms | $API50 | $API | p95 < 20 | $(verdict "$API" 20 "<=") |
| repository list page (\`/ui/\`, first pages, deep pages, searches), ms | $LIST50 | $LIST | p95 < 50 | $(verdict "$LIST" 50 "<=") |
| search results page (\`/ui/?q=&last=\`), ms | $SEARCH50 | $SEARCH | p95 < 50 | $(verdict "$SEARCH" 50 "<=") |
EOF2
log "wrote $OUT"
cat "$OUT"
exit_on_missed_targets "$OUT" "bench/ui.sh"
