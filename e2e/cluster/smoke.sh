#!/usr/bin/env bash
# Smoke test of an up cluster (e2e/cluster/up.sh):
#   1. builds a tiny image (Debian's static busybox, packed by mkimage.py) and
#      imports it into containerd's k8s.io namespace (no registry, no pull);
#   2. a Pod from it runs to Succeeded and its logs come back;
#   3. DNS: kubernetes.default.svc.cluster.local resolves from a pod;
#   4. a PVC binds (hostPath provisioner) and a pod writes to it;
#   5. a ClusterIP Service routes to a pod (from a pod, by name; and from the
#      node, by ClusterIP), and `kubectl exec` works;
#   6. the namespace is deleted and its volume released.
# On failure it prints describe/events/logs of the test namespace.
#
#   e2e/cluster/smoke.sh [--keep]      --keep leaves the namespace in place
#
# Environment: WHARF_E2E_DIR, WHARF_CACHE as for up.sh; WHARF_SMOKE_TIMEOUT
# (seconds per step, default 120).
set -Eeuo pipefail
E2E_SCRIPT=smoke
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

KEEP=0
[ "${1:-}" = --keep ] && KEEP=1
STATE=$WHARF_E2E_DIR/cluster
KC=$STATE/kubeconfig
T=${WHARF_SMOKE_TIMEOUT:-120}
NS=wharf-smoke
IMAGE=wharf.local/busybox:smoke
CTRD_SOCK=$STATE/containerd/containerd.sock
[ -f "$KC" ] || die "no kubeconfig at $KC: is the cluster up (e2e/cluster/up.sh)?"
k() { "$KUBECTL" --kubeconfig "$KC" "$@"; }
kn() { k -n "$NS" "$@"; }

dump() {
  log "---- diagnostics for namespace $NS"
  kn get all,pvc,endpointslices -o wide >&2 || true
  k get pv,nodes -o wide >&2 || true
  kn describe pods >&2 || true
  kn describe pvc >&2 || true
  kn get events --sort-by=.lastTimestamp >&2 || true
  local p
  for p in $(kn get pods -o name 2>/dev/null); do
    log "logs of $p:"; kn logs "$p" --all-containers --tail=50 >&2 || true
  done
  log "last kubelet log lines:"; tail -n 30 "$STATE/logs/kubelet.log" >&2 || true
}
on_error() {
  local rc=$?
  phase_end
  dump
  log "smoke test FAILED (exit $rc)"
  exit $rc
}
trap on_error ERR
START=$SECONDS

# ------------------------------------------------------------------ image
phase "build and import $IMAGE"
BB=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
grep -q 'statically linked' <<<"$(file -L "$BB" 2>/dev/null)" || [ ! -x /usr/bin/file ] || die "$BB is not static"
args=(--file "$BB:/bin/busybox:0755" --dir /tmp --dir /www --dir /data --cmd '["sh"]')
for a in sh cat echo hostname httpd ls mkdir nc nslookup printf sleep test; do
  args+=(--symlink "/bin/$a:busybox")
done
python3 "$HERE/mkimage.py" "$STATE/busybox.tar" "$IMAGE" "${args[@]}" >/dev/null
ctr --address "$CTRD_SOCK" -n k8s.io images import --platform linux/amd64 "$STATE/busybox.tar" >/dev/null
"$CRICTL_BIN" --runtime-endpoint "unix://$CTRD_SOCK" inspecti "$IMAGE" >/dev/null

phase "namespace $NS"
if k get namespace "$NS" >/dev/null 2>&1; then
  k delete namespace "$NS" --wait=true --timeout="${T}s" >/dev/null
fi
k create namespace "$NS" >/dev/null
kn wait --for=create serviceaccount/default --timeout="${T}s" >/dev/null

pod() { # name command [extra spec yaml, indented 2]
  kn apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  labels: {app: $1}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: $IMAGE
    imagePullPolicy: Never
    command: ["sh", "-c", "$2"]
${3:-}
EOF
}
# succeeded POD: waits (bounded) for the pod to finish; fails at once if it
# ends in Failed rather than waiting out the timeout.
succeeded() {
  local deadline=$((SECONDS + T)) phase
  while :; do
    phase=$(kn get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null || true)
    case $phase in
    Succeeded) return 0 ;;
    Failed) die "pod $1 failed: $(kn logs "$1" 2>&1 | tail -n 5)" ;;
    esac
    [ $SECONDS -lt $deadline ] || die "pod $1 still $phase after ${T}s"
    # No watch for "Succeeded or Failed" in kubectl wait: poll the real state.
    sleep 0.5
  done
}

# ------------------------------------------------------------------ a pod runs
phase "pod runs to Succeeded"
pod hello 'echo hello from $(hostname); cat /etc/resolv.conf'
succeeded hello
grep -q "hello from hello" <<<"$(kn logs hello)" || die "pod hello: unexpected logs: $(kn logs hello)"
log "pod hello: $(kn logs hello | tr '\n' ' ')"

# ------------------------------------------------------------------ DNS
phase "DNS from a pod"
pod dns 'nslookup kubernetes.default.svc.cluster.local'
succeeded dns
grep -q "$KUBERNETES_SVC_IP" <<<"$(kn logs dns)" || die "kubernetes.default.svc.cluster.local did not resolve to $KUBERNETES_SVC_IP: $(kn logs dns)"
log "kubernetes.default.svc.cluster.local -> $KUBERNETES_SVC_IP"

# ------------------------------------------------------------------ PVC
phase "PVC binds"
kn apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 16Mi
EOF
kn wait --for=jsonpath='{.status.phase}'=Bound pvc/data --timeout="${T}s" >/dev/null
PV=$(kn get pvc data -o jsonpath='{.spec.volumeName}')
kn apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: writer
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: $IMAGE
    imagePullPolicy: Never
    command: ["sh", "-c", "echo wharf > /data/proof && cat /data/proof"]
    volumeMounts:
    - {name: data, mountPath: /data}
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
EOF
succeeded writer
[ "$(cat "$STATE/volumes/$PV/proof")" = wharf ] || die "the pod's write is not in $STATE/volumes/$PV"
log "pvc/data bound to $PV; the pod's write is on the node"

# ------------------------------------------------------------------ Service
phase "ClusterIP Service routes to a pod"
kn apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: $IMAGE
    imagePullPolicy: Never
    command: ["sh", "-c", "echo wharf-smoke-ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{containerPort: 8080}]
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
EOF
kn wait --for=condition=Ready pod/web --timeout="${T}s" >/dev/null
kn wait --for=create endpointslice -l kubernetes.io/service-name=web --timeout="${T}s" >/dev/null 2>&1 || true
kn wait --for=jsonpath='{.endpoints[0].conditions.ready}'=true endpointslice -l kubernetes.io/service-name=web --timeout="${T}s" >/dev/null
CIP=$(kn get service web -o jsonpath='{.spec.clusterIP}')
# busybox's wget (static glibc build) segfaults looking up the service
# name of the port; nc does not.
pod client "printf 'GET / HTTP/1.0\\\\r\\\\n\\\\r\\\\n' | nc -w 5 web.$NS.svc.cluster.local 80"
succeeded client
grep -q wharf-smoke-ok <<<"$(kn logs client)" || die "client pod did not get the page: $(kn logs client)"
log "pod -> web.$NS.svc.cluster.local ($CIP) -> pod web: ok"
# From the node by ClusterIP (kube-proxy's OUTPUT rules). Bounded retries: the
# rules follow the EndpointSlice within kube-proxy's minSyncPeriod.
wait_for "$STATE" "node -> $CIP:80" "$T" kube-proxy sh -c "curl -sf --max-time 3 http://$CIP/ | grep -q wharf-smoke-ok"
log "node -> $CIP:80 -> pod web: ok"
[ "$(kn exec web -- cat /www/index.html)" = wharf-smoke-ok ] || die "kubectl exec into web failed"
log "kubectl exec: ok"

# ------------------------------------------------------------------ cleanup
if [ "$KEEP" = 0 ]; then
  phase "delete namespace (volume released and removed)"
  k delete namespace "$NS" --wait=true --timeout="${T}s" >/dev/null
  k wait --for=delete "pv/$PV" --timeout="${T}s" >/dev/null
  [ ! -e "$STATE/volumes/$PV" ] || die "$STATE/volumes/$PV still exists after its PV was deleted"
fi
trap - ERR
phases_report
echo "smoke: 6 passed, 0 failed ($((SECONDS - START))s)"
