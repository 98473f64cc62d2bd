#!/usr/bin/env bash
# bench/operator.sh: wharf-operator at scale (issue 5) against a real etcd,
# kube-apiserver and kube-controller-manager on loopback (no nodes, no
# kubelet: Deployments never become ready, so children's existence is
# measured, not readiness).
#
# 100 Registry resources (10 namespaces x 10; emptyDir storage, built-in
# token auth with a users Secret) are applied in one `kubectl apply`, and it
# measures: the time until every child object of all of them exists and
# until every status is written; the reconciles and CPU in the 60 idle
# seconds after that (a hot loop would show here; the operator's own
# periodic requeue is once an hour); the operator's RSS, now and peak.
#
#   bash bench/operator.sh            100 Registries, 60 s idle window
#   bash bench/operator.sh --quick    20 Registries, 20 s idle window
#
# Options: --quick, --count N, --idle SECONDS, --out FILE (a markdown
# section; default $WHARF_CACHE/bench/operator.md), --no-build.
# Environment: WHARF_CACHE (default ~/.cache/wharf), WHARF_OPERATOR_BIN.
# The cluster lives in WHARF_E2E_DIR=/tmp/wharf-bench-operator on ports
# 16643 (apiserver) and 22579/22580 (etcd), apart from the e2e and
# integration-test clusters; it is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WHARF_CACHE=${WHARF_CACHE:-$HOME/.cache/wharf}
export PATH="$WHARF_CACHE/bin:$HOME/.cargo/bin:/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
export WHARF_E2E_DIR=/tmp/wharf-bench-operator WHARF_APISERVER_PORT=16643 WHARF_APISERVER_ETCD_PORT=22579

QUICK=0 COUNT="" IDLE="" OUT="" BUILD=1
while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --count) COUNT=$2; shift ;;
    --count=*) COUNT=${1#*=} ;;
    --idle) IDLE=$2; shift ;;
    --idle=*) IDLE=${1#*=} ;;
    --out) OUT=$2; shift ;;
    --out=*) OUT=${1#*=} ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "bench/operator.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then COUNT=${COUNT:-20} IDLE=${IDLE:-20}; else COUNT=${COUNT:-100} IDLE=${IDLE:-60}; fi
OUT=${OUT:-$WHARF_CACHE/bench/operator.md}
NAMESPACES=10
DEADLINE=600 # seconds for all children to appear
SAMPLE=10    # seconds between samples in the idle window
PORT=$WHARF_APISERVER_PORT

log() { printf '[operator-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench/operator.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for t in curl jq htpasswd kubectl awk; do command -v "$t" >/dev/null || die "missing tool: $t"; done
if [[ -n ${WHARF_OPERATOR_BIN:-} ]]; then
    OP_BIN=$WHARF_OPERATOR_BIN
else
    if ((BUILD)); then
        log "building wharf-operator (cargo build --release --locked -p wharf-operator)"
        (cd "$ROOT" && cargo build --release --locked -p wharf-operator >&2) || die "cargo build failed"
    fi
    OP_BIN=$ROOT/target/release/wharf-operator
fi
[[ -x $OP_BIN ]] || die "no wharf-operator binary at $OP_BIN"

# ---------------------------------------------------------------- cleanup
WORK="" OP_PID="" CLUSTER=0
cleanup() {
    if [[ -n $OP_PID ]]; then
        stop_pid "$OP_PID"
    fi
    if ((CLUSTER)); then
        (cd "$ROOT" && bash e2e/cluster/apiserver.sh stop) >&2 || true
    fi
    if [[ -n $WORK && -d $WORK ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WHARF_CACHE/bench"
WORK=$(mktemp -d "$WHARF_CACHE/bench/operator.XXXXXX")
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
BUILDS_BEFORE=$(other_builds)

# ---------------------------------------------------------------- cluster
log "etcd + kube-apiserver + kube-controller-manager in $WHARF_E2E_DIR (port $PORT)"
(cd "$ROOT" && bash e2e/cluster/build.sh apiserver) >&2 || die "e2e/cluster/build.sh apiserver failed"
CLUSTER=1
cluster_start=$(now)
env_line=$(cd "$ROOT" && bash e2e/cluster/apiserver.sh start --with-controller-manager) || die "apiserver.sh start failed"
eval "$env_line"
[[ -n ${KUBECONFIG:-} && -f $KUBECONFIG ]] || die "apiserver.sh start printed no KUBECONFIG"
export KUBECONFIG
CLUSTER_SECS=$(since "$cluster_start")
log "cluster ready in ${CLUSTER_SECS}s"
K8S_VERSION=$(kubectl version -o json 2>/dev/null | jq -r '.serverVersion.gitVersion' || echo unknown)

# Reads go straight to the API with curl and the admin certificate (cheaper
# than a kubectl process per poll on a 2-core machine).
PKI=$WHARF_E2E_DIR/apiserver/pki
API=https://127.0.0.1:$PORT
api_get() { curl -sS --fail --max-time 30 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$API$1"; }
api_get /readyz >/dev/null || die "cannot read $API/readyz with the admin certificate"

kubectl apply --server-side -f "$ROOT/crds/" >&2
kubectl wait --for condition=established --timeout=60s crd/registries.wharf.dev crd/registrymirrors.wharf.dev >&2

# ---------------------------------------------------------------- resources
NS=()
for ((n = 0; n < NAMESPACES; n++)); do NS+=("bench-op-$n"); done
htpasswd -Bbn -C 10 alice alice-password >"$WORK/htpasswd" 2>/dev/null
{
    for ns in "${NS[@]}"; do
        cat <<EOF
---
apiVersion: v1
kind: Namespace
metadata: {name: $ns}
EOF
    done
} >"$WORK/namespaces.yaml"
kubectl apply --server-side -f "$WORK/namespaces.yaml" >&2
for ns in "${NS[@]}"; do
    kubectl -n "$ns" create secret generic registry-users --from-file=htpasswd="$WORK/htpasswd" \
        --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
done
# COUNT Registries, spread round-robin over the namespaces.
NAMES=()
{
    for ((i = 0; i < COUNT; i++)); do
        ns=${NS[$((i % NAMESPACES))]} name=$(printf 'reg-%03d' "$i")
        NAMES+=("$ns/$name")
        cat <<EOF
---
apiVersion: wharf.dev/v1alpha1
kind: Registry
metadata: {name: $name, namespace: $ns}
spec:
  storage:
    emptyDir: {sizeLimit: 5Gi}
  auth:
    token:
      users: {secretName: registry-users}
      groups: {team-a: [alice]}
      rules:
        - {repository: "team-a/**", groups: [team-a], actions: [pull, push]}
        - {repository: "public/**", anonymous: true, actions: [pull]}
EOF
    done
} >"$WORK/registries.yaml"

# What the operator creates for them, by kind/namespace/name, from its own
# `render` (the generated Secrets, signing key and http.secret, included).
"$OP_BIN" render --cluster-domain cluster.local -f "$WORK/registries.yaml" >"$WORK/rendered.yaml" 2>"$WORK/render.log" ||
    { cat "$WORK/render.log" >&2; die "wharf-operator render failed"; }
kubectl create --dry-run=client -o json -f "$WORK/rendered.yaml" 2>/dev/null |
    jq -r '(if .kind == "List" then .items[] else . end) | "\(.kind)/\(.metadata.namespace)/\(.metadata.name)"' |
    sort -u >"$WORK/expected.txt" || true
# Children kinds this measurement waits for (the brief: Deployment, Service,
# ConfigMap and Secrets), taken from the render.
KINDS=(Deployment Service ConfigMap Secret)
grep -E "^($(IFS='|'; echo "${KINDS[*]}"))/" "$WORK/expected.txt" >"$WORK/expected-children.txt" || true
PER_REGISTRY=$(awk -v n="$COUNT" 'END {printf "%g", NR / n}' "$WORK/expected-children.txt")
EXPECTED=$(wc -l <"$WORK/expected-children.txt")
((EXPECTED >= 4 * COUNT)) || { cat "$WORK/render.log" >&2; die "render gave only $EXPECTED children of kinds ${KINDS[*]} for $COUNT Registries"; }
CHILD_SUMMARY=$(awk -F/ '{c[$1]++} END {for (k in c) printf "%s%s %d", (n++ ? ", " : ""), k, c[k]}' "$WORK/expected-children.txt")
log "expecting $EXPECTED children ($CHILD_SUMMARY) for $COUNT Registries"

# Which of them exist now (one list call per kind, all namespaces).
existing_children() {
    {
        api_get /apis/apps/v1/deployments | jq -r '.items[] | "Deployment/\(.metadata.namespace)/\(.metadata.name)"'
        api_get /api/v1/services | jq -r '.items[] | "Service/\(.metadata.namespace)/\(.metadata.name)"'
        api_get /api/v1/configmaps | jq -r '.items[] | "ConfigMap/\(.metadata.namespace)/\(.metadata.name)"'
        api_get /api/v1/secrets | jq -r '.items[] | "Secret/\(.metadata.namespace)/\(.metadata.name)"'
    } | sort -u
}
children_present() { existing_children | comm -12 - "$WORK/expected-children.txt" | wc -l; }
# Registries whose status the operator wrote for their current generation.
statuses_written() {
    api_get /apis/wharf.dev/v1alpha1/registries |
        jq '[.items[] | select(.metadata.namespace | startswith("bench-op-")) | select((.status.observedGeneration // -1) >= .metadata.generation)] | length'
}

# Deployments kube-controller-manager has acted on (status.observedGeneration
# current): after this, the status writes that wake the operator have happened.
deployments_observed() {
    api_get /apis/apps/v1/deployments |
        jq '[.items[] | select(.metadata.namespace | startswith("bench-op-")) | select((.status.observedGeneration // -1) >= .metadata.generation)] | length'
}

# ---------------------------------------------------------------- operator
MPORT=$(free_port)
METRICS_URL=http://127.0.0.1:$MPORT/metrics
"$OP_BIN" run --cluster-domain cluster.local --listen "127.0.0.1:$MPORT" --leader-election false \
    >"$WORK/operator.log" 2>&1 &
OP_PID=$!
deadline=$(($(date +%s) + 60))
until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$MPORT/readyz" || true) == 200 ]]; do
    kill -0 "$OP_PID" 2>/dev/null || { tail -30 "$WORK/operator.log" >&2; die "wharf-operator exited during start-up"; }
    (($(date +%s) < deadline)) || { tail -30 "$WORK/operator.log" >&2; die "wharf-operator not ready within 60s"; }
    sleep 0.1
done
IDLE_RSS=$(status_kib "$OP_PID" VmRSS)
log "wharf-operator ready (pid $OP_PID, metrics $METRICS_URL, VmRSS $IDLE_RSS KiB)"

# "runs failures" of the Registry kind, from /metrics.
reconcile_counts() {
    curl -sS --max-time 10 "$METRICS_URL" | awk '
        /^wharf_operator_reconcile_runs_total\{/ && /kind="Registry"/ {r += $NF}
        /^wharf_operator_reconcile_failures_total\{/ && /kind="Registry"/ {f += $NF}
        END {printf "%d %d\n", r, f}'
}
failure_reasons() {
    curl -sS --max-time 10 "$METRICS_URL" | awk '/^wharf_operator_reconcile_failures_total\{/ {sub(/^wharf_operator_reconcile_failures_total/, ""); print}' | paste -sd' '
}

# ---------------------------------------------------------------- measurement
read -r RUNS0 FAILS0 <<<"$(reconcile_counts)"
CPU0=$(cpu_ticks "$OP_PID")
log "applying $COUNT Registries"
t0=$(now)
kubectl apply --server-side -f "$WORK/registries.yaml" >/dev/null
APPLY_SECS=$(since "$t0")
deadline=$(($(date +%s) + DEADLINE))
CHILDREN_SECS="" STATUS_SECS="" KCM_SECS="" polls=0
while [[ -z $CHILDREN_SECS || -z $STATUS_SECS || -z $KCM_SECS ]]; do
    kill -0 "$OP_PID" 2>/dev/null || { tail -30 "$WORK/operator.log" >&2; die "wharf-operator exited"; }
    if (($(date +%s) >= deadline)); then
        existing_children | comm -13 - "$WORK/expected-children.txt" | head -20 >&2
        die "not all $EXPECTED children existed and $COUNT statuses were written within ${DEADLINE}s"
    fi
    if [[ -z $CHILDREN_SECS ]]; then
        have=$(children_present)
        if ((have == EXPECTED)); then
            CHILDREN_SECS=$(since "$t0")
            read -r RUNS_CH FAILS_CH <<<"$(reconcile_counts)"
            log "all $EXPECTED children exist after ${CHILDREN_SECS}s ($((RUNS_CH - RUNS0)) reconciles so far)"
        fi
    fi
    if [[ -z $STATUS_SECS ]]; then
        st=$(statuses_written)
        if ((st == COUNT)); then
            STATUS_SECS=$(since "$t0")
            log "all $COUNT statuses written after ${STATUS_SECS}s"
        fi
    fi
    if [[ -n $CHILDREN_SECS && -z $KCM_SECS ]]; then
        dep=$(deployments_observed)
        if ((dep == COUNT)); then
            KCM_SECS=$(since "$t0")
            log "kube-controller-manager has observed all $COUNT Deployments after ${KCM_SECS}s"
        fi
    fi
    polls=$((polls + 1))
    ((polls % 20 == 0)) && log "after $(since "$t0")s: ${have:-?}/$EXPECTED children, ${st:-?}/$COUNT statuses, ${dep:-?}/$COUNT Deployments observed"
    sleep 0.2
done
read -r RUNS1 FAILS1 <<<"$(reconcile_counts)"
CPU1=$(cpu_ticks "$OP_PID")
CREATE_HWM=$(status_kib "$OP_PID" VmHWM)
CREATE_RSS=$(status_kib "$OP_PID" VmRSS)
log "creation: $((RUNS1 - RUNS0)) reconciles ($((FAILS1 - FAILS0)) failed), $(awk -v d=$((CPU1 - CPU0)) -v k="$TICKS" 'BEGIN {printf "%.2f", d / k}') s CPU"

# The idle window: nothing changes any more; count what the operator does.
log "idle window: ${IDLE}s"
TIMELINE=$WORK/timeline.tsv
w0=$(now)
printf '0\t%s\t%s\t%s\n' "$RUNS1" "$FAILS1" "$(status_kib "$OP_PID" VmRSS)" >"$TIMELINE"
for ((s = SAMPLE; s <= IDLE; s += SAMPLE)); do
    # Wait until the next sample point, bounded by the clock.
    while awk -v a="$w0" -v b="$(now)" -v s="$s" 'BEGIN {exit !(b - a < s)}'; do
        kill -0 "$OP_PID" 2>/dev/null || die "wharf-operator exited in the idle window"
        sleep 0.5
    done
    read -r r f <<<"$(reconcile_counts)"
    printf '%d\t%s\t%s\t%s\n' "$s" "$r" "$f" "$(status_kib "$OP_PID" VmRSS)" >>"$TIMELINE"
done
WINDOW_SECS=$(since "$w0")
read -r RUNS2 FAILS2 <<<"$(reconcile_counts)"
CPU2=$(cpu_ticks "$OP_PID")
END_RSS=$(status_kib "$OP_PID" VmRSS)
END_HWM=$(status_kib "$OP_PID" VmHWM)
IDLE_RECONCILES=$((RUNS2 - RUNS1))
IDLE_FAILS=$((FAILS2 - FAILS1))
IDLE_CPU=$(awk -v d=$((CPU2 - CPU1)) -v k="$TICKS" 'BEGIN {printf "%.2f", d / k}')
# After the first sample: the steady state, past the wakes from the last
# status writes of kube-controller-manager.
STEADY_FROM=$(awk -F'\t' 'NR == 2 {print $1}' "$TIMELINE")
STEADY_RECONCILES=$(awk -F'\t' 'NR == 2 {a = $2} END {print $2 - a}' "$TIMELINE")
log "idle: $IDLE_RECONCILES reconciles ($IDLE_FAILS failed), ${IDLE_CPU}s CPU in ${WINDOW_SECS}s; VmRSS $END_RSS KiB, VmHWM $END_HWM KiB"
FAIL_REASONS=$(failure_reasons)
# The checks of the children's state (pods cannot run: no nodes).
DEPLOY_READY=$(api_get /apis/apps/v1/deployments | jq '[.items[] | select(.metadata.namespace | startswith("bench-op-")) | select((.status.readyReplicas // 0) > 0)] | length')
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
BUILDS_AFTER=$(other_builds)
cp "$WORK/operator.log" "$WHARF_CACHE/bench/operator-last.log"
cp "$TIMELINE" "$WHARF_CACHE/bench/operator-last-timeline.tsv"

# ---------------------------------------------------------------- report
# The operator requeues a healthy Registry after RESYNC (reconcile::RESYNC).
RESYNC_SECS=$(grep -E 'pub const RESYNC: Duration = Duration::from_secs\([0-9]+\)' "$ROOT/operator/src/reconcile/mod.rs" |
    sed -E 's/.*from_secs\(([0-9]+)\).*/\1/' || true)
RESYNC_SECS=${RESYNC_SECS:-3600}
# Each Registry is requeued RESYNC after its last reconcile, which was before
# the window began: at most COUNT * ceil(window / RESYNC) and none when the
# window is shorter than RESYNC.
EXPECTED_IDLE=$(awk -v c="$COUNT" -v w="$WINDOW_SECS" -v r="$RESYNC_SECS" 'BEGIN {print (w < r) ? 0 : c * int((w + r - 1) / r)}')
EXPECTED_STEADY=$(awk -v c="$COUNT" -v w="$WINDOW_SECS" -v f="$STEADY_FROM" -v r="$RESYNC_SECS" 'BEGIN {print (w - f < r) ? 0 : c * int((w - f + r - 1) / r)}')
# No hot loop: at most one reconcile per Registry beyond the requeues in the
# whole window (late watch events from the controller-manager's Deployment
# status updates can wake a resource once), and in the steady part nothing
# beyond the requeues.
HOT_LIMIT=$((EXPECTED_IDLE + COUNT))
kib_mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
timeline_rows() {
    awk -F'\t' -v r0="$RUNS1" '{printf "| %s | %d | %d | %.1f |\n", $1, $2 - r0, $3, $4 / 1024}' "$TIMELINE"
}
other_note="none seen"
if ((BUILDS_BEFORE + BUILDS_AFTER > 0)); then
    other_note="**yes**: $BUILDS_BEFORE such processes before, $BUILDS_AFTER after; times are noisier for it"
fi
op_version=$("$OP_BIN" --version 2>/dev/null || echo wharf-operator)
mode=$( ((QUICK)) && echo "quick (\`--quick\`)" || echo "full")

{
    cat <<EOF
## Operator at scale: $COUNT Registries

Written by \`bench/operator.sh\`, mode: $mode, on $(date -u '+%Y-%m-%d %H:%M UTC').
Machine: $(nproc) cores shared by etcd, kube-apiserver, kube-controller-manager,
the operator and the polling client; load average before $LOAD_BEFORE, after
$LOAD_AFTER. Other work on the machine (compilers, linkers, an e2e cluster's kubelet or containerd): $other_note.
$op_version (release build), Kubernetes $K8S_VERSION (etcd, kube-apiserver and
kube-controller-manager from \`e2e/cluster/apiserver.sh\`, ready in ${CLUSTER_SECS}s; no nodes).

| measurement | value |
|---|---|
| Registries applied (one \`kubectl apply --server-side\`, $NAMESPACES namespaces) | $COUNT (apply took ${APPLY_SECS}s) |
| children waited for ($(IFS=,; echo "${KINDS[*]}" | sed 's/,/, /g')) | $EXPECTED ($CHILD_SUMMARY) |
| apply → all children exist | **${CHILDREN_SECS} s** |
| apply → every status written (\`observedGeneration\` current) | ${STATUS_SECS} s |
| apply → every Deployment's status written by kube-controller-manager | ${KCM_SECS} s |
| reconciles from apply to all three of those | $((RUNS1 - RUNS0)) ($((FAILS1 - FAILS0)) failed) |
| operator CPU from apply to all three of those | $(awk -v d=$((CPU1 - CPU0)) -v k="$TICKS" 'BEGIN {printf "%.2f", d / k}') s |
| reconciles in the ${IDLE} s idle window after | **$IDLE_RECONCILES** ($IDLE_FAILS failed) |
| of those, from ${STEADY_FROM} s to the end of the window | **$STEADY_RECONCILES** |
| expected from the periodic requeue (every ${RESYNC_SECS} s per Registry) | $EXPECTED_IDLE |
| operator CPU in the idle window | $IDLE_CPU s |
| operator RSS: idle before apply / after the window | $(kib_mib "$IDLE_RSS") MiB / $(kib_mib "$END_RSS") MiB |
| operator peak RSS (VmHWM, whole run) | $(kib_mib "$END_HWM") MiB (at the end of creation: $(kib_mib "$CREATE_HWM") MiB) |
| Deployments with a ready replica (none can be: no nodes) | $DEPLOY_READY |

Reconcile failures by kind and reason over the whole run: ${FAIL_REASONS:-none}.

Idle window, sampled every ${SAMPLE} s (reconciles counted from the start of the window):

| seconds | reconciles | failures (total) | VmRSS MiB |
|---|---|---|---|
$(timeline_rows)

| target | required | measured | result |
|---|---|---|---|
| no hot loop when idle | ≤ $HOT_LIMIT reconciles in ${IDLE} s (requeues $EXPECTED_IDLE + one late wake per Registry) | $IDLE_RECONCILES | $( ((IDLE_RECONCILES <= HOT_LIMIT)) && echo "**pass**" || echo "**FAIL**") |
| steady state (${STEADY_FROM}–${IDLE} s): periodic requeues only | ≤ $EXPECTED_STEADY | $STEADY_RECONCILES | $( ((STEADY_RECONCILES <= EXPECTED_STEADY)) && echo "**pass**" || echo "**FAIL**") |

Method:

- \`e2e/cluster/apiserver.sh start --with-controller-manager\` with
  \`WHARF_E2E_DIR=$WHARF_E2E_DIR\`, apiserver port $PORT, etcd port $WHARF_APISERVER_ETCD_PORT;
  the CRDs from \`crds/\` applied server-side and waited for (\`established\`).
- The release \`wharf-operator run --leader-election false --cluster-domain cluster.local\`
  runs on this machine with the admin kubeconfig, watching all namespaces;
  \`/metrics\` on a loopback port.
- Before the clock starts: $NAMESPACES namespaces, each with a \`registry-users\` Secret
  (bcrypt htpasswd); the operator is up (\`/readyz\` 200). Then all $COUNT Registries
  (emptyDir storage, built-in token auth with groups and rules; like
  \`examples/registry-emptydir.yaml\` plus the auth of
  \`examples/registry-pvc-token.yaml\`) go in one \`kubectl apply --server-side\`.
- The expected children are the ones \`wharf-operator render\` prints for the same
  file (kinds ${KINDS[*]}, including the generated signing-key and
  http.secret Secrets). Every 0.2 s one list per kind across all namespaces
  (curl to the API with the admin certificate) is compared with them.
- Reconciles: \`wharf_operator_reconcile_runs_total{kind="Registry"}\` and
  \`wharf_operator_reconcile_failures_total\` from the operator's \`/metrics\`.
  The idle window starts as soon as every child exists, every status is
  written and kube-controller-manager has written every Deployment's status
  (it creates ReplicaSets and pods that stay Pending, and updates the
  Deployments' status, which the operator watches and reports); nothing is
  changed during it. Reconciles in the first ${SAMPLE} s are the tail of those
  status writes (about one per Registry); after that only the periodic requeue
  (\`RESYNC\`, ${RESYNC_SECS} s) should run, so none in a ${IDLE} s window.
- RSS: VmRSS and VmHWM from /proc/PID/status of the operator.
EOF
} >"$OUT"
log "wrote $OUT"
cat "$OUT"
exit_on_missed_targets "$OUT" "bench/operator.sh"
