#!/usr/bin/env bash
# The operator's integration tests against a real etcd, kube-apiserver and
# kube-controller-manager (its garbage collector), built from Go modules by
# e2e/cluster/build.sh and stopped again whatever happens; then the Helm
# chart's checks, with server-side dry runs against the same API server.
set -euo pipefail
cd "$(dirname "$0")/.."

# `all`, not `apiserver`: the chart checks need helm, and the e2e after this
# needs the rest anyway (each binary is built once and cached).
bash e2e/cluster/build.sh all
export WHARF_E2E_DIR=${WHARF_E2E_DIR:-/tmp/wharf-operator-it}
trap 'bash e2e/cluster/apiserver.sh stop || true' EXIT
eval "$(bash e2e/cluster/apiserver.sh start --with-controller-manager)"
WHARF_KUBECONFIG=$KUBECONFIG cargo test --locked -p wharf-operator --features apiserver-tests --test apiserver
bash scripts/chart-check.sh
