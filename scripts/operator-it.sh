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
# cert-manager's own Certificate CRD (its Go module, through the module proxy,
# cached): apiserver_tls checks the operator's Certificate against its schema.
CERT_MANAGER_VERSION=v1.21.2
cm_dir=$(cd "${TMPDIR:-/tmp}" && go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" | jq -r .Dir)
export WHARF_CERT_MANAGER_CRD=$cm_dir/deploy/crds/cert-manager.io_certificates.yaml
[ -f "$WHARF_CERT_MANAGER_CRD" ] || { echo "no $WHARF_CERT_MANAGER_CRD" >&2; exit 1; }
WHARF_KUBECONFIG=$KUBECONFIG cargo test --locked -p wharf-operator --features apiserver-tests --test apiserver --test apiserver_s3 --test apiserver_upkeep --test apiserver_tls \
    --test apiserver_notifications
# Step 5 of the chart checks runs this binary under the chart's RBAC; without
# it that step would not run. A bare API server has no Prometheus Operator, so
# the ServiceMonitor's dry run is the one skip accepted (and named at the end).
cargo build --locked -p wharf-operator --bin wharf-operator
target_dir=$(cargo metadata --locked --format-version 1 --no-deps | jq -r .target_directory)
WHARF_OPERATOR_BIN=$target_dir/debug/wharf-operator bash scripts/chart-check.sh --allow-skip servicemonitor
