#!/usr/bin/env bash
# etcd + kube-apiserver only (optionally kube-controller-manager, for garbage
# collection and namespace deletion), for the operator's integration tests.
# No node, no network changes: everything listens on 127.0.0.1 only.
#
#   e2e/cluster/apiserver.sh start [--with-controller-manager]
#   e2e/cluster/apiserver.sh stop
#   e2e/cluster/apiserver.sh status        exit 0 if running and ready
#   e2e/cluster/apiserver.sh env           prints `export KUBECONFIG=...`
#
# Environment:
#   WHARF_E2E_DIR            state root (default /tmp/wharf-e2e); this mode uses $WHARF_E2E_DIR/apiserver
#   WHARF_CACHE              where build.sh put the binaries (default ~/.cache/wharf)
#   WHARF_APISERVER_PORT     kube-apiserver secure port on 127.0.0.1 (default 16443)
#   WHARF_APISERVER_ETCD_PORT  etcd client port on 127.0.0.1 (default 22379; peer port is +1)
#   WHARF_APISERVER_KCM=1    same as --with-controller-manager
#   WHARF_APISERVER_TIMEOUT  seconds to wait for readiness (default 120)
#
# The admin kubeconfig (user in group system:masters) is written to
# $WHARF_E2E_DIR/apiserver/kubeconfig. `start` is idempotent: if the
# processes are already up it only checks readiness.
set -euo pipefail
E2E_SCRIPT=apiserver
# shellcheck source=lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

STATE=$WHARF_E2E_DIR/apiserver
PKI=$STATE/pki
KUBECONFIG_OUT=$STATE/kubeconfig
PORT=${WHARF_APISERVER_PORT:-16443}
ETCD_PORT=${WHARF_APISERVER_ETCD_PORT:-22379}
TIMEOUT=${WHARF_APISERVER_TIMEOUT:-120}
KCM=${WHARF_APISERVER_KCM:-0}

usage() { sed -n '2,22p' "$0"; }

running() { proc_alive "$STATE" etcd && proc_alive "$STATE" kube-apiserver; }

do_stop() {
  stop_proc "$STATE" kube-controller-manager 10
  stop_proc "$STATE" kube-apiserver 10
  stop_proc "$STATE" etcd 20
}

do_start() {
  local start=$SECONDS
  need_bins "$ETCD_BIN" "$K8S_BIN/kube-apiserver" "$KUBECTL"
  [ "$KCM" = 1 ] && need_bins "$K8S_BIN/kube-controller-manager"
  if running; then
    log "already running; checking readiness"
    wait_apiserver "$STATE" "$KUBECONFIG_OUT" "$TIMEOUT"
    if [ "$KCM" = 1 ] && ! proc_alive "$STATE" kube-controller-manager; then
      start_controller_manager "$STATE" "$PKI" "$STATE/kube-controller-manager.kubeconfig" --secure-port 0
    fi
    echo "export KUBECONFIG=$KUBECONFIG_OUT"
    return 0
  fi
  # Leftovers of a run that died: stop what still runs, start from scratch.
  do_stop
  rm -rf "$STATE"
  mkdir -p "$STATE"
  phase "certificates"
  apiserver_pki "$PKI" "IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  local server=https://127.0.0.1:$PORT
  make_kubeconfig "$KUBECONFIG_OUT" "$server" "$PKI/ca.crt" "$PKI/admin.crt" "$PKI/admin.key" wharf-admin
  make_kubeconfig "$STATE/kube-controller-manager.kubeconfig" "$server" "$PKI/ca.crt" \
    "$PKI/kube-controller-manager.crt" "$PKI/kube-controller-manager.key" system:kube-controller-manager
  phase "etcd"
  start_etcd "$STATE" "$ETCD_PORT" "$((ETCD_PORT + 1))"
  phase "kube-apiserver"
  # No node and no pods: the `kubernetes` Service's endpoints are not
  # maintained (--endpoint-reconciler-type=none), so the advertise address
  # may be the loopback one and nothing else is ever named.
  start_apiserver "$STATE" "$PKI" "$ETCD_PORT" 127.0.0.1 "$PORT" 127.0.0.1 \
    --endpoint-reconciler-type none
  wait_apiserver "$STATE" "$KUBECONFIG_OUT" "$TIMEOUT"
  if [ "$KCM" = 1 ]; then
    phase "kube-controller-manager"
    start_controller_manager "$STATE" "$PKI" "$STATE/kube-controller-manager.kubeconfig" --secure-port 0
    # The service-account controller creating `default` shows the
    # controllers run.
    wait_for "$STATE" "serviceaccount default/default (controller-manager running)" "$TIMEOUT" \
      kube-apiserver,kube-controller-manager kubectl_as "$KUBECONFIG_OUT" -n default get serviceaccount default
  fi
  phases_report
  log "ready in $((SECONDS - start))s: kube-apiserver $("$K8S_BIN/kube-apiserver" --version | cut -d' ' -f2) at $server"
  echo "export KUBECONFIG=$KUBECONFIG_OUT"
}

cmd=${1:-}
shift || true
for a in "$@"; do
  case $a in
  --with-controller-manager) KCM=1 ;;
  *) usage >&2; die "unknown option $a" ;;
  esac
done
case $cmd in
start) do_start ;;
stop) do_stop; log "stopped (state kept in $STATE until the next start)" ;;
status)
  if running && kubectl_as "$KUBECONFIG_OUT" get --raw /readyz >/dev/null 2>&1; then
    echo "running: KUBECONFIG=$KUBECONFIG_OUT"
  else
    echo "not running"; exit 1
  fi
  ;;
env) echo "export KUBECONFIG=$KUBECONFIG_OUT" ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
