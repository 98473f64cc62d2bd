#!/usr/bin/env bash
# bench/notifications.sh: push throughput of small images (1 layer of 1 KiB,
# a config, a manifest) with notifications on and a slow receiver, against
# notifications off. Target: on ÷ off ≥ 0.9 (the request path waits only for
# its event's queued write, never for delivery).
#
# Each run starts wharf-registry on a fresh directory twice, off and on (the
# order alternates between runs); bench/push_small.py pushes IMAGES images
# with CLIENTS clients; with notifications on, one endpoint points at
# bench/slow_receiver.py, which answers each request after DELAY_MS.
#
#   bash bench/notifications.sh            2,000 images, 8 clients, 3 runs
#   bash bench/notifications.sh --quick    300 images, 1 run
#
# Options: --quick, --runs N, --out FILE (a markdown section; default
# $WHARF_CACHE/bench/notifications.md), --no-build. Environment: WHARF_CACHE,
# WHARF_REGISTRY_BIN, CLIENTS, DELAY_MS.
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
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench/notifications.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then IMAGES=300 RUNS=${RUNS:-1}; else IMAGES=2000 RUNS=${RUNS:-3}; fi
CLIENTS=${CLIENTS:-8}
DELAY_MS=${DELAY_MS:-200}
OUT=${OUT:-$WHARF_CACHE/bench/notifications.md}

log() { printf '[bench/notifications %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench/notifications.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for t in curl awk python3; do
    command -v "$t" >/dev/null || die "missing tool $t (run scripts/tools.sh)"
done
if ((BUILD)); then
    log "building (cargo build --release --locked -p wharf-registry)"
    (cd "$ROOT" && cargo build --release --locked -p wharf-registry >&2) || die "cargo build failed"
fi
WHARF_BIN=${WHARF_REGISTRY_BIN:-$ROOT/target/release/wharf-registry}
[[ -x $WHARF_BIN ]] || die "no wharf-registry binary at $WHARF_BIN"

bench_workdir notifications
RECV_PORT=$(free_port)
python3 "$ROOT/bench/slow_receiver.py" "$RECV_PORT" "$DELAY_MS" &
PIDS+=("$!")

# config MODE: config.yml on the fresh directory DATA, notifications `on` or `off`.
config() {
    printf 'version: 0.1\nlog:\n  level: warn\n  formatter: json\n'
    printf 'storage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' "$DATA" "$ADDR"
    if [[ $1 == on ]]; then
        printf 'notifications:\n  endpoints:\n    - name: slow\n      url: http://127.0.0.1:%s/events\n      timeout: 5s\n' \
            "$RECV_PORT"
    fi
}

# run_mode MODE RUN: one registry, one timed batch of pushes. Each gets its
# own directory, removed only on exit: on ext4 without a journal, creating a
# file skips every inode freed in the last ~30 s, so deleting the previous
# mode's tens of thousands of files first would slow whichever mode ran second.
run_mode() {
    DATA=$WORK/data-$1-$2
    ADDR=127.0.0.1:$(free_port)
    config "$1" >"$WORK/config.yml"
    "$WHARF_BIN" serve "$WORK/config.yml" >"$WORK/wharf-registry.log" 2>&1 &
    REG=$!
    PIDS+=("$REG")
    wait_http "http://$ADDR/v2/" "$REG" wharf-registry 200
    local ips t0 cpu_ms
    t0=$(cpu_ticks "$REG")
    ips=$(python3 "$ROOT/bench/push_small.py" "$ADDR" "$IMAGES" "$CLIENTS" "bench$2") || die "pushes failed ($1)"
    # The registry's CPU per image (delivery included): steadier than the rate on a busy machine.
    cpu_ms=$(awk -v d="$(($(cpu_ticks "$REG") - t0))" -v k="$TICKS" -v n="$IMAGES" 'BEGIN {printf "%.2f", d / k * 1000 / n}')
    record "$1" images_s "$ips"
    record "$1" cpu_ms "$cpu_ms"
    log "run $2, notifications $1: $ips images/s, $cpu_ms ms CPU per image"
    stop_pid "$REG"
}

log "$IMAGES images, $CLIENTS clients, receiver delay $DELAY_MS ms, $RUNS run(s); $(other_builds) compiler/cluster processes on the machine"
for ((r = 1; r <= RUNS; r++)); do
    if ((r % 2)); then run_mode off "$r"; run_mode on "$r"; else run_mode on "$r"; run_mode off "$r"; fi
    on=$(values on images_s | tail -n 1) off=$(values off images_s | tail -n 1)
    record ratio on_off "$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", a / b}')"
done

OFF=$(med off images_s) ON=$(med on images_s) RATIO=$(med ratio on_off)
CPU_OFF=$(med off cpu_ms) CPU_ON=$(med on cpu_ms)
mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<DOC
## Notifications (\`bench/notifications.sh\`)

Push throughput of $IMAGES one-layer images (1 KiB layer, config, manifest:
three events each) by $CLIENTS clients on the filesystem, with one
notification endpoint whose receiver answers after $DELAY_MS ms, against no
\`notifications\`. $RUNS run(s), medians; $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC').

| measurement | result | target | |
|---|---|---|---|
| pushes, notifications off, images/s | $OFF | | |
| pushes, notifications on (slow receiver), images/s | $ON | | |
| on ÷ off | $RATIO | ≥ 0.9 | $(verdict "$RATIO" 0.9) |
| registry CPU per image, off / on, ms | $CPU_OFF / $CPU_ON | | |
DOC
log "wrote $OUT"
cat "$OUT"
exit_on_missed_targets "$OUT" "bench/notifications.sh"
