#!/usr/bin/env bash
# Checks charts/wharf:
#   1. helm lint --strict, with the defaults and with every optional part on;
#   2. values.schema.json refuses typos (helm template must fail on them);
#   3. charts/wharf/crds/ is byte-identical to crds/ (Helm installs its own copy);
#   4. when KUBECONFIG points at a reachable kube-apiserver: the CRDs are applied
#      for real (server-side) and the rendered chart passes a server-side dry
#      run for a few value combinations;
#   5. with WHARF_OPERATOR_BIN too: the chart is installed for real, and that
#      operator binary runs as the chart's ServiceAccount (kubeconfig
#      impersonation), once cluster-wide and once with watchNamespaces. A
#      Registry using every child kind is created, then trimmed (prunes) and its
#      signing key rotated; the operator must log no "forbidden". Only for a
#      throwaway API server (e2e/cluster/apiserver.sh): it writes real objects,
#      and the cluster-wide run reconciles every Registry on the server.
#
#   KUBECONFIG=... WHARF_OPERATOR_BIN=target/debug/wharf-operator scripts/chart-check.sh   # 1-5
#   scripts/chart-check.sh --offline       # 1-3 only, and says so
#   ... --allow-skip servicemonitor        # accept that one skip (no Prometheus Operator CRD)
#
# A step that cannot run fails the run, unless it was named with
# --allow-skip NAME (server: step 4, rbac: step 5, servicemonitor: the
# ServiceMonitor's dry run in step 4; --offline allows all three). The last
# line names every step skipped that way.
#
# Needs helm and kubectl (scripts/tools.sh puts them in ~/.cache/wharf/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=${WHARF_CACHE:-$HOME/.cache/wharf}/bin:$PATH

allowed_skips=" "
while (($#)); do
  case $1 in
    --offline) allowed_skips+="server rbac servicemonitor " ;;
    --allow-skip)
      case ${2:-} in server | rbac | servicemonitor) allowed_skips+="$2 " ;;
        *) echo "chart-check: --allow-skip takes server, rbac or servicemonitor, not '${2:-}'" >&2; exit 2 ;; esac
      shift ;;
    *) echo "chart-check: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
  shift
done

chart=charts/wharf
release=wharf
ns=wharf-chart-check       # the dry runs' release namespace
watched=wharf-chart-check-team

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "chart-check: FAIL: $*" >&2; exit 1; }
ok() { echo "chart-check: ok: $*"; }
skipped=()
# skip NAME WHY: a step that cannot run here; fails the run unless NAME was allowed.
skip() {
  [[ $allowed_skips == *" $1 "* ]] || fail "$1 check cannot run: $2 (a skipped check fails the run; pass --allow-skip $1 to accept it)"
  echo "chart-check: SKIPPED (allowed by --allow-skip $1): $2"
  skipped+=("$1")
}
# The last line: every skipped step named, so a partial run never reads as a full one.
finish() {
  if ((${#skipped[@]})); then
    echo "chart-check: checks passed, but NOT all were run; skipped: ${skipped[*]}"
  else
    echo "chart-check: all checks passed"
  fi
  exit 0
}

# Value combinations, one per line, passed to helm as --set.
combos=(
  ""
  "watchNamespaces={$watched,$ns}"
  "exampleRegistry.enabled=true"
  "replicas=2,logFormat=text,clusterDomain=example.org,nodeAccess.image=example.org/agent:1,registryImage=example.org/registry:1"
)
set_args() { [ -z "$1" ] || printf -- '--set\n%s\n' "$1"; }

# --- 1. lint ------------------------------------------------------------------
for values in "${combos[@]}" "metrics.serviceMonitor.enabled=true,exampleRegistry.enabled=true"; do
  mapfile -t args < <(set_args "$values")
  helm lint --strict "$chart" "${args[@]}" >/dev/null || fail "helm lint --strict ${values:-(defaults)}"
  ok "helm lint --strict ${values:-(defaults)}"
done

# --- 2. the schema refuses typos, at the top and nested -------------------------
for typo in replicass=2 nodeAccess.hostFile=/etc/hosts securityContext.runAsUsr=0 image.tga=1; do
  key=${typo%%=*}
  if out=$(helm template "$release" "$chart" --set "$typo" 2>&1); then
    fail "helm template --set $typo succeeded: values.schema.json lets the typo '$key' through"
  fi
  grep -q "additional properties '${key##*.}' not allowed" <<<"$out" ||
    fail "helm template --set $typo failed, but not on the schema: $out"
  ok "typo '$key' refused by values.schema.json"
done

# --- 3. the chart's CRDs are crds/ ----------------------------------------------
# Helm reads only charts/wharf/crds/; a copy that lags crds/ installs an old schema.
diff -r crds "$chart/crds" >/dev/null ||
  fail "$chart/crds differs from crds/ (run: cp crds/*.yaml $chart/crds/)"
ok "$chart/crds is byte-identical to crds/ ($(cd crds && echo *.yaml))"

# --- 4. against a real API server -----------------------------------------------
if [ -z "${KUBECONFIG:-}" ]; then
  skip server "KUBECONFIG is not set: no server-side checks (step 4)"
  skip rbac "KUBECONFIG is not set: the operator was not run under the chart's RBAC (step 5)"
  finish
fi
kubectl get --raw /readyz >/dev/null || fail "KUBECONFIG=$KUBECONFIG: the API server is not ready"

kubectl apply --server-side --field-manager=wharf-chart-check -f "$chart/crds/" >/dev/null
kubectl wait --for=condition=Established --timeout=60s \
  crd/registries.wharf.dev crd/registrymirrors.wharf.dev >/dev/null
ok "CRDs applied (server-side) and Established"

# Namespaced objects can only be dry-run into namespaces that exist.
for n in "$ns" "$watched"; do
  kubectl create namespace "$n" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
done

for values in "${combos[@]}"; do
  mapfile -t args < <(set_args "$values")
  helm template "$release" "$chart" --namespace "$ns" "${args[@]}" >"$tmp/chart.yaml"
  out=$(kubectl apply --dry-run=server --validate=strict -f "$tmp/chart.yaml" 2>&1) ||
    fail "server dry run of ${values:-(defaults)}: $out"
  ok "server dry run of ${values:-(defaults)}: $(grep -c '(server dry run)$' <<<"$out") objects accepted"
done

# The ServiceMonitor needs the Prometheus Operator's CRD, absent from a bare API server.
if kubectl api-resources --api-group=monitoring.coreos.com -o name | grep -qx servicemonitors.monitoring.coreos.com; then
  helm template "$release" "$chart" --namespace "$ns" --set metrics.serviceMonitor.enabled=true \
    --show-only templates/servicemonitor.yaml | kubectl apply --dry-run=server -f - >/dev/null ||
    fail "server dry run of the ServiceMonitor"
  ok "server dry run of the ServiceMonitor"
else
  skip servicemonitor "no monitoring.coreos.com API on this server: the ServiceMonitor was not dry-run"
fi

# --- 5. the operator under the chart's RBAC ---------------------------------------
if [ -z "${WHARF_OPERATOR_BIN:-}" ]; then
  skip rbac "WHARF_OPERATOR_BIN is not set: the operator was not run under the chart's RBAC (step 5)"
  finish
fi
[ -x "$WHARF_OPERATOR_BIN" ] || fail "WHARF_OPERATOR_BIN=$WHARF_OPERATOR_BIN is not executable"

operator_pid=
stop_operator() { [ -z "$operator_pid" ] || { kill "$operator_pid" 2>/dev/null; wait "$operator_pid" || true; operator_pid=; }; }
trap 'stop_operator; rm -rf "$tmp"' EXIT

# A Registry that makes the operator create, and then prune, every child kind.
full_registry() { # NAMESPACE NAME
  cat <<EOF
apiVersion: wharf.dev/v1alpha1
kind: Registry
metadata: {name: $2, namespace: $1}
spec:
  replicas: 2
  storage: {filesystem: {size: 1Gi, accessModes: [ReadWriteMany]}}
  auth:
    token:
      users: {secretName: $2-users}
      rules: [{repository: "**", users: ["*"], actions: [pull, push]}]
  ingress: {host: $2.example.org}
  networkPolicy: {enabled: true}
  garbageCollection: {schedule: "0 3 * * *"}
  nodeAccess: {enabled: true}
EOF
}

run_under_rbac() { # RELEASE-NAMESPACE REGISTRY-NAMESPACE [helm --set]
  local rel_ns=$1 reg_ns=$2 values=${3:-} log=$tmp/operator-$1.log obj
  # A fresh name each run: a bare API server has no garbage collector to remove the last run's children.
  local reg=rbac-check-$RANDOM
  local k=(kubectl -n "$reg_ns") what="operator as $1:$release-operator${3:+ ($3)}"
  # What the operator says when a step times out: its conditions (failures are logged at debug only).
  why() { echo "; conditions of $reg_ns/$reg: $("${k[@]}" get registry "$reg" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}; {end}')"; }
  mapfile -t args < <(set_args "$values")
  kubectl create namespace "$rel_ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  helm upgrade --install "$release" "$chart" --namespace "$rel_ns" "${args[@]}" >/dev/null
  # shellcheck disable=SC2016 # a bcrypt hash, not an expansion
  "${k[@]}" create secret generic "$reg-users" --dry-run=client -o yaml \
    --from-literal=htpasswd='alice:$2y$05$abcdefghijklmnopqrstuu5Xyk6j0sC2bR1qvWkXxgV0mO9y8yGvK' | kubectl apply -f - >/dev/null
  full_registry "$reg_ns" "$reg" | kubectl apply -f - >/dev/null

  # The operator's kubeconfig: the admin's, acting as the chart's ServiceAccount.
  local sa=system:serviceaccount:$rel_ns:$release-operator
  kubectl config view --raw --minify --flatten -o json | jq --arg sa "$sa" '.users[0].user.as = $sa' >"$tmp/sa.kubeconfig"
  [ "$(KUBECONFIG=$tmp/sa.kubeconfig kubectl auth whoami -o jsonpath='{.status.userInfo.username}')" = "$sa" ] ||
    fail "$what: the impersonating kubeconfig does not act as $sa"
  local env=(KUBECONFIG="$tmp/sa.kubeconfig" POD_NAMESPACE="$rel_ns" POD_NAME=chart-check
    WHARF_LEASE_NAME="$release-operator" WHARF_LISTEN=127.0.0.1:0 WHARF_CLUSTER_DOMAIN=cluster.local)
  [ -z "$values" ] || env+=(WHARF_NAMESPACES="$reg_ns")
  env "${env[@]}" "$WHARF_OPERATOR_BIN" run >"$log" 2>&1 &
  operator_pid=$!
  local start=$SECONDS

  # Each of these needs a permission the chart grants: status, every child kind, the Lease, Events.
  "${k[@]}" wait --for=jsonpath='{.status.observedGeneration}'=1 "registry/$reg" --timeout=60s >/dev/null ||
    fail "$what: no status on $reg_ns/$reg; log: $(tail -n 5 "$log")"
  for obj in secret/$reg-http-secret secret/$reg-token-key configmap/$reg-config \
    configmap/$reg-access pvc/$reg-data service/$reg deployment/$reg pdb/$reg \
    ingress/$reg networkpolicy/$reg cronjob/$reg-gc; do
    "${k[@]}" wait --for=create "$obj" --timeout=60s >/dev/null || fail "$what: $reg_ns/$obj never created$(why)"
  done
  # The node plan, in the release namespace, maps the registry's own name.
  kubectl -n "$rel_ns" wait --for=create configmap/wharf-node-access --timeout=60s >/dev/null ||
    fail "$what: no node plan in $rel_ns$(why)"
  kubectl -n "$rel_ns" wait --for=jsonpath='{.data.plan\.json}' configmap/wharf-node-access --timeout=60s >/dev/null
  until kubectl -n "$rel_ns" get configmap wharf-node-access -o jsonpath='{.data.plan\.json}' | grep -q "$reg.$reg_ns.svc"; do
    kill -0 "$operator_pid" 2>/dev/null || fail "$what: the operator exited; log: $(tail -n 5 "$log")"
    [ $SECONDS -lt $((start + 60)) ] || fail "$what: the node plan never mapped $reg$(why)"
    sleep 0.2
  done
  kubectl -n "$rel_ns" wait --for=jsonpath='{.spec.holderIdentity}'=chart-check "lease/$release-operator" \
    --timeout=60s >/dev/null || fail "$what: did not take lease $rel_ns/$release-operator"
  [ -n "$("${k[@]}" get events.events.k8s.io --field-selector "regarding.name=$reg" -o name)" ] ||
    fail "$what: recorded no Event"

  # Prunes (delete) and a signing-key rotation (update of a Secret).
  "${k[@]}" annotate --overwrite registry "$reg" wharf.dev/rotate-signing-key=1 >/dev/null
  "${k[@]}" patch registry "$reg" --type=json -p '[{"op":"remove","path":"/spec/ingress"},
    {"op":"remove","path":"/spec/networkPolicy"},{"op":"remove","path":"/spec/garbageCollection"},
    {"op":"remove","path":"/spec/nodeAccess"},{"op":"replace","path":"/spec/replicas","value":1}]' >/dev/null
  "${k[@]}" wait --for=delete ingress/$reg networkpolicy/$reg cronjob/$reg-gc \
    pdb/$reg --timeout=60s >/dev/null || fail "$what: did not prune$(why)"
  "${k[@]}" wait --for=jsonpath='{.metadata.annotations.wharf\.dev/signing-key-rotation}'=1 \
    secret/$reg-token-key --timeout=60s >/dev/null || fail "$what: did not rotate the signing key$(why)"

  stop_operator
  if grep -i forbidden "$log" >&2; then fail "$what: the API server refused the operator something (above)"; fi
  "${k[@]}" delete registry "$reg" --wait=false >/dev/null
  helm uninstall "$release" --namespace "$rel_ns" >/dev/null
  ok "$what: made every child kind, took the Lease, recorded Events, pruned, rotated the key; no forbidden"
}

# Release namespaces of their own: the dry runs above must not meet these real objects.
run_under_rbac "$ns-rbac" "$ns"
run_under_rbac "$ns-rbac-scoped" "$watched" "watchNamespaces={$watched}"
finish
