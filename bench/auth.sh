#!/usr/bin/env bash
# bench/auth.sh: pulls through htpasswd auth (issue 12), on loopback.
#
# Two wharf-registry processes hold the same small image: one open, one with
# `auth.htpasswd` (an entry from `htpasswd -B`, cost 5). Clients such as
# containerd send Basic credentials on every request of a pull, so without
# the registry's short-lived cache of verified logins every request would pay
# one bcrypt verification. Run by run (interleaved), the same client:
#   manifest GETs   wrk on GET /v2/<repo>/manifests/<tag>, Basic on every request
#   image pulls     N sequential pulls (manifest, config, layer) on one connection
#   logins          uncached logins (a new unknown user each: bcrypt at the file's cost)
#
#   bash bench/auth.sh            64 MiB layer, 20 pulls, 3 runs
#   bash bench/auth.sh --quick    16 MiB layer, 10 pulls, 1 run
#
# Options: --quick, --runs N, --out FILE (a markdown section; default
# $WHARF_CACHE/bench/auth.md), --no-build. Environment: WHARF_CACHE,
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
    *) echo "bench/auth.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then
    LAYER=$((16 << 20)) PULLS=10 WRK_SECS=3 RUNS=${RUNS:-1}
else
    LAYER=$((64 << 20)) PULLS=20 WRK_SECS=10 RUNS=${RUNS:-3}
fi
OUT=${OUT:-$WHARF_CACHE/bench/auth.md}
LOGINS=10
USER_NAME=bench PASSWORD=bench-password
REPO=bench/auth TAG=latest
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json

log() { printf '[bench/auth %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench/auth.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for t in htpasswd wrk curl awk sha256sum timeout; do
    command -v "$t" >/dev/null || die "missing tool $t (run scripts/tools.sh)"
done
if ((BUILD)); then
    log "building (cargo build --release --locked -p wharf-registry)"
    (cd "$ROOT" && cargo build --release --locked -p wharf-registry >&2) || die "cargo build failed"
fi
WHARF_BIN=${WHARF_REGISTRY_BIN:-$ROOT/target/release/wharf-registry}
[[ -x $WHARF_BIN ]] || die "no wharf-registry binary at $WHARF_BIN"

bench_workdir auth

# ---------------------------------------------------------------- registries
htpasswd -nbB "$USER_NAME" "$PASSWORD" | grep . >"$WORK/users.htpasswd"
declare -A URL CREDS
start() { # NAME AUTH-YAML
    local name=$1 port i
    port=$(free_port)
    mkdir -p "$WORK/$name"
    cat >"$WORK/$name.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/$name
http:
  addr: 127.0.0.1:$port
$2
EOF
    "$WHARF_BIN" serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    URL[$name]=http://127.0.0.1:$port
    for ((i = 0; i < 600; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${URL[$name]}/v2/" || true)
        [[ $code == 200 || $code == 401 ]] && return
        kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "$name exited during start-up"; }
        sleep 0.05
    done
    die "$name not ready within 30s"
}
start open ""
start htpasswd "auth:
  htpasswd:
    realm: bench
    path: $WORK/users.htpasswd"
CREDS[open]="" CREDS[htpasswd]="$USER_NAME:$PASSWORD"
AUTH_HEADER="Authorization: Basic $(printf '%s' "$USER_NAME:$PASSWORD" | base64 -w0)"
curl_as() { # NAME ARGS...
    local name=$1
    shift
    if [[ -n ${CREDS[$name]} ]]; then curl -u "${CREDS[$name]}" "$@"; else curl "$@"; fi
}

# ---------------------------------------------------------------- the image
head -c "$LAYER" /dev/urandom >"$WORK/layer.bin"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}' >"$WORK/config.json"
digest() { echo "sha256:$(sha256sum "$1" | awk '{print $1}')"; }
LAYER_DIGEST=$(digest "$WORK/layer.bin") CONFIG_DIGEST=$(digest "$WORK/config.json")
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
    "$MT_MANIFEST" "$CONFIG_DIGEST" "$(stat -c %s "$WORK/config.json")" "$LAYER_DIGEST" "$LAYER" >"$WORK/manifest.json"
push_blob() { # NAME FILE DIGEST
    local base=${URL[$1]} loc sep code
    loc=$(curl_as "$1" -sS --max-time 30 -o /dev/null -D - -X POST "$base/v2/$REPO/blobs/uploads/" |
        awk 'tolower($1) == "location:" {sub(/\r$/, ""); print $2}')
    [[ -n $loc ]] || die "$1: no upload Location"
    [[ $loc == /* ]] && loc=$base$loc
    [[ $loc == *\?* ]] && sep='&' || sep='?'
    code=$(curl_as "$1" -sS --max-time 300 -o /dev/null -w '%{http_code}' -H 'Expect:' -T "$2" "$loc${sep}digest=$3")
    [[ $code == 201 ]] || die "$1: blob PUT answered $code"
}
for s in open htpasswd; do
    push_blob "$s" "$WORK/layer.bin" "$LAYER_DIGEST"
    push_blob "$s" "$WORK/config.json" "$CONFIG_DIGEST"
    code=$(curl_as "$s" -sS --max-time 30 -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: $MT_MANIFEST" \
        --data-binary "@$WORK/manifest.json" "${URL[$s]}/v2/$REPO/manifests/$TAG")
    [[ $code == 201 ]] || die "$s: manifest PUT answered $code"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "${URL[htpasswd]}/v2/$REPO/manifests/$TAG")
[[ $code == 401 ]] || die "the htpasswd registry answered $code without credentials"

# ---------------------------------------------------------------- measurements
# One pull = manifest, config, layer; PULLS of them on one curl (one connection).
pull_urls() { # NAME
    local i
    for ((i = 0; i < PULLS; i++)); do
        printf 'url = "%s"\noutput = "/dev/null"\nheader = "Accept: %s"\n' "${URL[$1]}/v2/$REPO/manifests/$TAG" "$MT_MANIFEST"
        printf 'url = "%s"\noutput = "/dev/null"\n' "${URL[$1]}/v2/$REPO/blobs/$CONFIG_DIGEST" "${URL[$1]}/v2/$REPO/blobs/$LAYER_DIGEST"
    done
}
for ((r = 1; r <= RUNS; r++)); do
    for s in open htpasswd; do
        pull_urls "$s" >"$WORK/pulls.cfg"
        start=$(date +%s.%N)
        curl_as "$s" -sS --max-time 600 -K "$WORK/pulls.cfg" -w '%{http_code}\n' >"$WORK/pulls.out"
        end=$(date +%s.%N)
        ok=$(grep -c '^200$' "$WORK/pulls.out" || true)
        ((ok == 3 * PULLS)) || { sort "$WORK/pulls.out" | uniq -c >&2; die "$s: $ok of $((3 * PULLS)) pull requests answered 200"; }
        secs=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
        record "$s" pulls_per_s "$(awk -v n="$PULLS" -v t="$secs" 'BEGIN {printf "%.2f", n / t}')"
        log "pulls run $r: $s $PULLS pulls in $secs s"

        hdr=()
        [[ $s == htpasswd ]] && hdr=(-H "$AUTH_HEADER")
        timeout $((WRK_SECS + 60)) wrk -t2 -c16 -d"${WRK_SECS}s" --timeout 5s -H "Accept: $MT_MANIFEST" "${hdr[@]}" \
            "${URL[$s]}/v2/$REPO/manifests/$TAG" >"$WORK/wrk.out" 2>&1 || { cat "$WORK/wrk.out" >&2; die "wrk against $s failed"; }
        if grep -q -E 'Non-2xx|Socket errors' "$WORK/wrk.out"; then cat "$WORK/wrk.out" >&2; die "wrk against $s saw errors"; fi
        rps=$(awk '$1 == "Requests/sec:" {print $2}' "$WORK/wrk.out")
        record "$s" manifest_rps "$rps"
        log "manifest run $r: $s $rps req/s"
    done
    # Uncached logins: a new unknown user each costs one bcrypt at the file's cost.
    for ((i = 0; i < LOGINS; i++)); do
        t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -u "nobody-$r-$i:x" "${URL[htpasswd]}/v2/")
        [[ ${t%% *} == 401 ]] || die "an unknown user got ${t%% *}"
        record htpasswd login_ms "$(awk -v t="${t#* }" 'BEGIN {printf "%.2f", t * 1000}')"
        t=$(curl -s -o /dev/null -w '%{time_total}' "${URL[open]}/v2/")
        record open login_ms "$(awk -v t="$t" 'BEGIN {printf "%.2f", t * 1000}')"
    done
done

# ---------------------------------------------------------------- report
O_PULL=$(med open pulls_per_s) H_PULL=$(med htpasswd pulls_per_s)
O_RPS=$(med open manifest_rps) H_RPS=$(med htpasswd manifest_rps)
O_LOGIN=$(med open login_ms) H_LOGIN=$(med htpasswd login_ms)
mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<EOF
## Pulls through htpasswd auth (\`bench/auth.sh\`)

Two wharf-registry processes with the same image ($((LAYER >> 20)) MiB layer): one
open, one with \`auth.htpasswd\` (\`htpasswd -B\`, bcrypt cost 5). Basic
credentials on every request, as containerd sends them. $RUNS run(s), medians;
$(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC').

| measurement | open | htpasswd | htpasswd / open |
|---|---|---|---|
| sequential image pulls on one connection, pulls/s ($PULLS per run) | $O_PULL | $H_PULL | $(ratio "$H_PULL" "$O_PULL") |
| manifest GETs by tag, req/s (wrk, 16 connections, ${WRK_SECS}s) | $O_RPS | $H_RPS | $(ratio "$H_RPS" "$O_RPS") |
| \`GET /v2/\`: open vs an uncached login (unknown user: one bcrypt at the file's cost), ms | $O_LOGIN | $H_LOGIN | |

Verified logins are remembered for 60 s (keyed by an HMAC of user and
password), so only the first request of a client pays bcrypt; bcrypt itself
runs on the blocking pool, one verification per core at a time.
EOF
log "wrote $OUT"
cat "$OUT"
