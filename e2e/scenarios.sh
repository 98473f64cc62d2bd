#!/usr/bin/env bash
# The scenarios users run, on the cluster e2e/cluster/up.sh started, with the
# images e2e/images.sh imported:
#   1. helm install charts/wharf: the operator runs and holds the Lease
#   2. a Registry with the built-in token service and a PVC becomes Ready,
#      status.url https:// in FQDN form (TLS by default, the operator's CA)
#   3. a Job in another namespace (labelled for the CA bundle) pushes with
#      crane over verified TLS: realm in-cluster, token flow, no --insecure,
#      no localhost anywhere
#  3b. the UI answers through the operator-made Service: headless chromium,
#      trusting only the operator's CA, renders its page; alice logs in and
#      sees her repository with the in-cluster pull command
#   4. a Deployment pulls that image through the node's containerd (nodeAccess,
#      the CA in hosts.toml, no skip_verify); then the serving certificate's
#      Secret is deleted while the Deployment scales up: the operator issues
#      a new one, the registry serves it without a restart, every pull succeeds
#   5. a RegistryMirror in front of an upstream Registry with auth, TLS both
#      ways (the mirror verifies the upstream against the operator's CA): public image
#      pulled by the node through the mirror, private image with mirror
#      credentials, anonymous client refused
#   6. a spec change rolls the Deployment and the status follows
#   7. a deleted Service is recreated (and nodeAccess follows its new ClusterIP)
#   8. invalid resources are rejected by the API server, readably
#   9. deleting the Registry removes its children and its node changes
#  10. tenant safety: a RegistryMirror in a tenant namespace that names
#      docker.io is refused (Degraded NodeAccessNotAllowed, the node's
#      certs.d/docker.io untouched); once the chart's policy allows that
#      namespace and host, the node pulls docker.io images through it; one
#      node agent, in the operator's namespace, and none per resource
#  11. S3 (e2e/scenario-s3.sh): versitygw in the cluster; a Registry with
#      storage.s3 and 3 replicas is Degraded while its bucket is missing, then
#      Ready; a Job pushes 50 MiB through the Service onto several replicas;
#      the node pulls it while the replica sending it a layer is deleted
#  12. GC (e2e/scenario-gc.sh): a Registry with online garbage collection and
#      a retention policy; CI tags pushed by a Job age out, their blobs are
#      reclaimed, and the image a Deployment runs stays and pulls whole
#  13. notifications (e2e/scenario-notify.sh): a receiver Deployment in the
#      cluster gets registry:2's push event of a Job's push, with an
#      Authorization header from a Secret that never reaches the ConfigMap
#  14. the UI through an Ingress (e2e/scenario-ingress.sh): traefik, a real
#      ingress controller, terminates TLS with the operator's certificate for
#      the Ingress host and verifies the registry's; crane pushes through it
#      and headless chromium renders the UI and the pull command it names
# and the operator, under the chart's RBAC, logged no forbidden error; and
# helm uninstall leaves the node's files as they were before.
# Each step has a deadline; on failure it prints describe, events and logs.
#
#   e2e/scenarios.sh
#
# Environment: WHARF_E2E_DIR, WHARF_CACHE as for up.sh; WHARF_STEP_TIMEOUT
# (seconds per wait, default 180).
set -Eeuo pipefail
E2E_SCRIPT=scenarios
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=cluster/lib.sh
. "$HERE/cluster/lib.sh"

STATE=$WHARF_E2E_DIR/cluster
KC=$STATE/kubeconfig
T=${WHARF_STEP_TIMEOUT:-180}
CERTS_DIR=$STATE/containerd/certs.d
HOSTS_FILE=/etc/hosts
CTRD_SOCK=$STATE/containerd/containerd.sock
CLIENT=wharf.local/client:1
DOMAIN=cluster.local
SYS=wharf-system TEAM=wharf-team APPS=wharf-apps MIRROR_NS=wharf-mirror TENANT=wharf-tenant
[ -f "$KC" ] || die "no kubeconfig at $KC: is the cluster up (e2e/cluster/up.sh)?"
k() { "$KUBECTL" --kubeconfig "$KC" "$@"; }
helm_() { "$WHARF_CACHE/bin/helm" --kubeconfig "$KC" "$@"; }
ctr_() { ctr --address "$CTRD_SOCK" -n k8s.io "$@"; }

dump() {
  local ns p
  for ns in $SYS $TEAM $APPS $MIRROR_NS ${S3_NS:-} ${S3_TEAM:-} ${GC_TEAM:-} ${NOTIFY_NS:-} ${ING_NS:-}; do
    k get namespace "$ns" >/dev/null 2>&1 || continue
    log "---- diagnostics for namespace $ns"
    k -n "$ns" get registries,registrymirrors,all,pvc,secrets,configmaps -o wide >&2 || true
    k -n "$ns" describe registries,registrymirrors,pods,jobs >&2 || true
    k -n "$ns" get events --sort-by=.lastTimestamp >&2 || true
    for p in $(k -n "$ns" get pods -o name 2>/dev/null); do
      log "logs of $ns/$p:"; k -n "$ns" logs "$p" --all-containers --tail=40 >&2 || true
    done
  done
  log "last kubelet log lines:"; tail -n 20 "$STATE/logs/kubelet.log" >&2 || true
}
on_error() {
  local rc=$?
  phase_end
  dump
  log "scenarios FAILED (exit $rc, line ${BASH_LINENO[0]})"
  exit $rc
}
trap on_error ERR

# wait_job NS NAME: the Job's outcome, without polling: whichever of the two
# watches answers first. Fails (with the logs) if the Job failed.
wait_job() {
  local ns=$1 name=$2 ok bad
  # kubectl itself in the background (not the k function, whose subshell would
  # leave kubectl running when killed).
  "$KUBECTL" --kubeconfig "$KC" -n "$ns" wait --for=condition=Complete "job/$name" --timeout="${T}s" >/dev/null 2>&1 &
  ok=$!
  "$KUBECTL" --kubeconfig "$KC" -n "$ns" wait --for=condition=Failed "job/$name" --timeout="${T}s" >/dev/null 2>&1 &
  bad=$!
  wait -n "$ok" "$bad" || true
  kill "$ok" "$bad" 2>/dev/null || true
  wait "$ok" "$bad" 2>/dev/null || true
  if [ "$(k -n "$ns" get job "$name" -o jsonpath='{.status.succeeded}')" != 1 ]; then
    die "job $ns/$name did not succeed: $(k -n "$ns" logs "job/$name" 2>&1 | tail -n 20)"
  fi
}

# job NS NAME SCRIPT [DOCKER_CONFIG_SECRET]: runs SCRIPT in the client image
# and waits for it; the secret (a dockerconfigjson) becomes crane's config.json.
job() {
  job_start "$@"
  wait_job "$1" "$2"
}

# job_start NS NAME SCRIPT [DOCKER_CONFIG_SECRET]: the same, without waiting.
job_start() {
  local ns=$1 name=$2 script=$3 secret=${4:-}
  # The CA bundle the operator publishes: crane (Go) trusts SSL_CERT_FILE.
  local mounts="volumeMounts: [{name: ca, mountPath: /etc/wharf-ca, readOnly: true}"
  local volumes="volumes: [{name: ca, configMap: {name: wharf-ca-bundle}}"
  if [ -n "$secret" ]; then
    mounts+=", {name: auth, mountPath: /auth, readOnly: true}"
    volumes+=", {name: auth, secret: {secretName: $secret, items: [{key: .dockerconfigjson, path: config.json}]}}"
  fi
  mounts+="]" volumes+="]"
  # JOB_HOST_ALIASES (IP=NAME): a name the Job's pod resolves through /etc/hosts.
  local aliases="hostAliases: []"
  [ -z "${JOB_HOST_ALIASES:-}" ] || aliases="hostAliases: [{ip: \"${JOB_HOST_ALIASES%%=*}\", hostnames: [\"${JOB_HOST_ALIASES#*=}\"]}]"
  k -n "$ns" delete job "$name" --ignore-not-found --wait=true >/dev/null
  k -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: $name}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      $aliases
      containers:
      - name: main
        image: $CLIENT
        imagePullPolicy: Never
        env: [{name: DOCKER_CONFIG, value: /auth}, {name: SSL_CERT_FILE, value: /etc/wharf-ca/ca.crt}]
        command: ["sh", "-c", $(printf '%s' "$script" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')]
        $mounts
      $volumes
EOF
}

# big_blob_gets NS DEPLOYMENT REPO: how many blob GETs the registry answered
# 200 with at least 1 MiB (a layer of the run's random images) for a
# repository whose name ends in REPO, from its JSON request log.
big_blob_gets() {
  k -n "$1" logs "deployment/$2" --tail=-1 |
    jq -R --arg r "$3" 'fromjson? | select(.msg == "request" and .route == "blob" and .method == "GET"
      and .status == 200 and .bytes >= 1048576 and (.repository | endswith($r)))' | jq -s length
}

# until_true DESCRIPTION CMD...: for node state that no API can watch (files
# the nodeAccess agent writes): check, and check again, until the deadline.
until_true() {
  local what=$1 deadline=$((SECONDS + T))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${T}s waiting for: $what"
    sleep 0.2
  done
}

# The operator's CA, as Pods get it, for the checks the test runs from the
# node: every https request below verifies the registry's certificate.
CA_PEM=$WHARF_E2E_DIR/wharf-ca.crt
save_ca() { # NS (holding a Wharf resource)
  k -n "$1" wait --for=create configmap/wharf-ca-bundle --timeout="${T}s" >/dev/null
  k -n "$1" get configmap wharf-ca-bundle -o jsonpath='{.data.ca\.crt}' >"$CA_PEM"
  grep -q 'BEGIN CERTIFICATE' "$CA_PEM" || die "the CA bundle in $1 holds no certificate"
}

# https_ NS SERVICE PATH [curl args]: a verified request to a registry
# Service by its ClusterIP, under its in-cluster name (no name lookup).
https_() {
  local ns=$1 svc=$2 path=$3 ip
  shift 3
  ip=$(k -n "$ns" get service "$svc" -o jsonpath='{.spec.clusterIP}' 2>/dev/null) || return 1
  [ -n "$ip" ] || return 1
  curl -s -m 5 --cacert "$CA_PEM" --resolve "$svc.$ns.svc.$DOMAIN:5000:$ip" "$@" "https://$svc.$ns.svc.$DOMAIN:5000$path"
}

# Whether the node reaches a registry Service (namespace, name) on port 5000,
# any HTTP answer over verified TLS, by its ClusterIP (no name lookup):
# kube-proxy programs a Service's rules a moment after its pod turns ready,
# and a pull refused in that moment sends containerd on to the upstream by
# its name, a DNS query that would leave the machine.
node_reaches() {
  local code
  code=$(https_ "$1" "$2" /v2/ -o /dev/null -w '%{http_code}' 2>/dev/null) || true
  [ -n "$code" ] && [ "$code" != 000 ]
}

# The serial of the certificate a registry Service serves.
served_serial() { # NS SERVICE
  local ip
  ip=$(k -n "$1" get service "$2" -o jsonpath='{.spec.clusterIP}')
  openssl s_client -connect "$ip:5000" -servername "$2.$1.svc.$DOMAIN" -CAfile "$CA_PEM" -verify_return_error \
    </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null
}

# browse URL IP: the DOM headless chromium renders for URL, over TLS
# verified against the operator's CA only (an NSS database of its own),
# resolving only URL's host, to IP (a ClusterIP).
browse() {
  local url=$1 ip=$2 home=$WHARF_E2E_DIR/browser host
  host=${url#https://}
  host=${host%%[:/]*}
  rm -rf "$home"
  mkdir -p "$home/.pki/nssdb"
  certutil -d "sql:$home/.pki/nssdb" -N --empty-password
  certutil -d "sql:$home/.pki/nssdb" -A -t C,, -n wharf-ca -i "$CA_PEM"
  HOME=$home timeout 60 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --user-data-dir="$home/profile" --no-first-run --no-default-browser-check --disable-background-networking \
    --disable-component-update --disable-sync --disable-default-apps --no-pings --no-proxy-server \
    --host-resolver-rules="MAP $host $ip, MAP * ~NOTFOUND" --dump-dom "$url" 2>"$home/stderr"
  rm -rf "$home"
}

namespace() {
  k create namespace "$1" --dry-run=client -o yaml | k apply -f - >/dev/null
  k -n "$1" wait --for=create serviceaccount/default --timeout="${T}s" >/dev/null
}

ready() { # KIND NAME NS
  k -n "$3" wait --for=condition=Ready "$1/$2" --timeout="${T}s" >/dev/null
}

htpasswd_secret() { # NS NAME USER:PASSWORD...
  local ns=$1 name=$2 pair file
  shift 2
  file=$(mktemp)
  for pair in "$@"; do htpasswd -Bbn "${pair%%:*}" "${pair#*:}" >>"$file"; done
  k -n "$ns" create secret generic "$name" --from-file=htpasswd="$file" --dry-run=client -o yaml | k apply -f - >/dev/null
  rm -f "$file"
}

pull_secret() { # NS NAME SERVER USER PASSWORD
  k -n "$1" create secret docker-registry "$2" --docker-server="$3" --docker-username="$4" \
    --docker-password="$5" --dry-run=client -o yaml | k apply -f - >/dev/null
}

START=$SECONDS
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)

# ------------------------------------------------------------------ 1
phase "1. helm install charts/wharf"
helm_ upgrade --install wharf "$ROOT/charts/wharf" --namespace "$SYS" --create-namespace \
  --set image.pullPolicy=Never --set nodeAccess.containerdCertsDir="$CERTS_DIR" \
  --set nodeAccess.hostsFile="$HOSTS_FILE" --set clusterDomain="$DOMAIN" --set 'tls.ingressDomains={wharf.test}' \
  --wait --timeout "${T}s" >/dev/null
k -n "$SYS" rollout status deployment/wharf-operator --timeout="${T}s" >/dev/null
OPERATOR_POD=$(k -n "$SYS" get pods -l app.kubernetes.io/name=wharf-operator \
  --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}')
[ -n "$OPERATOR_POD" ] || die "no running operator pod"
k -n "$SYS" wait --for=jsonpath='{.spec.holderIdentity}'="$OPERATOR_POD" lease/wharf-operator \
  --timeout="${T}s" >/dev/null
log "operator pod $OPERATOR_POD holds lease $SYS/wharf-operator"
k -n "$SYS" rollout status daemonset/wharf-operator-node-agent --timeout="${T}s" >/dev/null
# What the node held before Wharf: uninstalling must restore exactly this.
HOSTS_BEFORE=$(grep -v '# wharf-node-access ' "$HOSTS_FILE" || true)
[ ! -e "$CERTS_DIR/docker.io" ] || die "$CERTS_DIR/docker.io exists before any mirror: the refusal check would prove nothing"
log "node agent DaemonSet $SYS/wharf-operator-node-agent rolled out"

# ------------------------------------------------------------------ 2
phase "2. a Registry with token auth and a PVC becomes Ready"
namespace "$TEAM"
htpasswd_secret "$TEAM" team-registry-users alice:alice-e2e-pw bob:bob-e2e-pw
k -n "$TEAM" apply -f - >/dev/null <<EOF
apiVersion: wharf.dev/v1alpha1
kind: Registry
metadata: {name: team-registry}
spec:
  storage:
    filesystem: {size: 1Gi}
  auth:
    token:
      users: {secretName: team-registry-users}
      groups:
        team-a: [alice]
      rules:
        - {repository: "team-a/**", groups: [team-a], actions: [pull, push]}
  deleteEnabled: true
  nodeAccess: {enabled: true}
  ui: {enabled: true}
EOF
ready registry team-registry "$TEAM"
HOST=team-registry.$TEAM.svc.$DOMAIN:5000
url=$(k -n "$TEAM" get registry team-registry -o jsonpath='{.status.url}')
[ "$url" = "https://$HOST" ] || die "status.url is '$url', want https://$HOST"
save_ca "$TEAM"
[ "$(k -n "$SYS" get secret wharf-ca -o jsonpath='{.data.tls\.crt}' | base64 -d)" = "$(cat "$CA_PEM")" ] ||
  die "the CA bundle in $TEAM is not the operator's CA"
[ "$(k -n "$TEAM" get registry team-registry -o jsonpath='{.status.host}')" = "$HOST" ] ||
  die "status.host is not $HOST"
k -n "$TEAM" get pvc team-registry-data -o jsonpath='{.status.phase}' | grep -qx Bound ||
  die "pvc team-registry-data is not Bound"
log "registry $TEAM/team-registry Ready at $url"

# ------------------------------------------------------------------ 3
phase "3. a Job in another namespace pushes with crane"
namespace "$APPS"
# $APPS holds no Wharf resource: it asks for the CA bundle.
k label namespace "$APPS" wharf.dev/ca-bundle=true --overwrite >/dev/null
k -n "$APPS" wait --for=create configmap/wharf-ca-bundle --timeout="${T}s" >/dev/null
pull_secret "$APPS" alice-registry "$HOST" alice alice-e2e-pw
job "$APPS" push "
set -e
crane push /images/app-a.tar $HOST/team-a/app:1
# -v logs each request and response (credentials redacted): the challenge and the token request.
crane digest -v $HOST/team-a/app:1 2>/tmp/trace
grep -i -e 'www-authenticate' -e 'GET .*/auth/token' /tmp/trace
echo digest=\$(crane digest $HOST/team-a/app:1)
" alice-registry
logs=$(k -n "$APPS" logs job/push)
grep -qi "www-authenticate: Bearer realm=\"https://$HOST/auth/token\"" <<<"$logs" ||
  die "the registry's challenge does not name the in-cluster realm https://$HOST/auth/token: $logs"
grep -q "GET https://$HOST/auth/token?" <<<"$logs" || die "crane did not fetch a token from the in-cluster realm: $logs"
grep -q "^digest=sha256:" <<<"$logs" || die "crane digest printed no digest: $logs"
if grep -qi localhost <<<"$logs$(k -n "$TEAM" get configmaps,registry -o yaml)"; then
  die "localhost appears in the push logs or the registry's config"
fi
log "pushed $HOST/team-a/app:1 from $APPS ($(grep '^digest=' <<<"$logs"))"

# ------------------------------------------------------------------ 3b
phase "3b. the UI answers through the operator-made Service, in a browser"
# Anonymous, in headless chromium: its own NSS database trusts only the
# operator's CA, and it resolves only the registry's name, to the ClusterIP.
dom=$(browse "https://$HOST/ui/" "$(k -n "$TEAM" get service team-registry -o jsonpath='{.spec.clusterIP}')")
grep -q '<h1>Repositories</h1>' <<<"$dom" || die "the browser got no UI page from https://$HOST/ui/: $dom"
grep -q 'id="login-link"' <<<"$dom" || die "the anonymous UI page has no login link: $dom"
! grep -q 'team-a/app' <<<"$dom" || die "an anonymous visitor sees team-a/app: $dom"
# alice logs in (the form's CSRF token, then the session cookie) and sees her
# repository, with the pull command under the advertised in-cluster host.
jar=$WHARF_E2E_DIR/ui-cookies
rm -f "$jar"
csrf=$(https_ "$TEAM" team-registry /ui/login -c "$jar" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p')
[ -n "$csrf" ] || die "the login form carries no CSRF token"
https_ "$TEAM" team-registry /ui/login -b "$jar" -c "$jar" -o /dev/null \
  --data-urlencode "csrf=$csrf" --data-urlencode username=alice --data-urlencode password=alice-e2e-pw
page=$(https_ "$TEAM" team-registry /ui/ -b "$jar")
grep -q 'Signed in as <strong>alice</strong>' <<<"$page" || die "alice is not signed in: $page"
grep -q '>team-a/app</a>' <<<"$page" || die "alice's UI does not list team-a/app: $page"
tags=$(https_ "$TEAM" team-registry '/ui/tags?repo=team-a/app' -b "$jar")
grep -q "docker pull $HOST/team-a/app:1" <<<"$tags" || die "the tags page has no pull command for $HOST: $tags"
rm -f "$jar"
log "the UI answers at https://$HOST/ui/ (chromium, verified TLS); alice sees team-a/app"

# ------------------------------------------------------------------ 4
phase "4. a Deployment pulls the image through the node's containerd"
CLUSTER_IP=$(k -n "$TEAM" get service team-registry -o jsonpath='{.spec.clusterIP}')
until_true "$HOSTS_FILE maps $HOST to $CLUSTER_IP" \
  grep -qE "^$CLUSTER_IP[[:space:]]+${HOST%:*}([[:space:]]|$)" "$HOSTS_FILE"
until_true "$CERTS_DIR/$HOST/hosts.toml" test -f "$CERTS_DIR/$HOST/hosts.toml"
grep -q "^server = \"https://$HOST\"" "$CERTS_DIR/$HOST/hosts.toml" || die "hosts.toml does not send $HOST over https"
ca_file=$(sed -n 's/^ *ca = "\(.*\)"$/\1/p' "$CERTS_DIR/$HOST/hosts.toml")
[ -n "$ca_file" ] && cmp -s "$ca_file" "$CA_PEM" || die "hosts.toml of $HOST does not trust the operator's CA"
! grep -rq skip_verify "$CERTS_DIR" || die "skip_verify in $CERTS_DIR"
ctr_ images rm "$HOST/team-a/app:1" >/dev/null 2>&1 || true
k -n "$APPS" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      terminationGracePeriodSeconds: 1
      imagePullSecrets: [{name: alice-registry}]
      containers:
      - {name: app, image: "$HOST/team-a/app:1", imagePullPolicy: Always}
EOF
k -n "$APPS" wait --for=condition=Available deployment/app --timeout="${T}s" >/dev/null
images=$(ctr_ images ls -q)
grep -qx "$HOST/team-a/app:1" <<<"$images" || die "the node's containerd has no $HOST/team-a/app:1: $images"
n=$(big_blob_gets "$TEAM" team-registry team-a/app)
[ "$n" -ge 1 ] || die "the registry served no layer of team-a/app: the node pull moved no bytes"
log "deployment $APPS/app Available; the node pulled $HOST/team-a/app:1 over verified TLS ($n layer GET(s) of >= 1 MiB served)"

phase "4b. the certificate is rotated by hand while the Deployment scales up"
old_serial=$(served_serial "$TEAM" team-registry)
[ -n "$old_serial" ] || die "no verified TLS handshake with team-registry"
restarts() { k -n "$TEAM" get pods -l app.kubernetes.io/instance=team-registry -o jsonpath='{range .items[*]}{.metadata.uid}{.status.containerStatuses[0].restartCount}{"\n"}{end}'; }
pods_before=$(restarts)
k -n "$TEAM" delete secret team-registry-tls --wait=true >/dev/null
k -n "$APPS" scale deployment app --replicas=4 >/dev/null
k -n "$TEAM" wait --for=create secret/team-registry-tls --timeout="${T}s" >/dev/null
serves_new_cert() { local s; s=$(served_serial "$TEAM" team-registry); [ -n "$s" ] && [ "$s" != "$old_serial" ]; }
until_true "the registry serves the reissued certificate" serves_new_cert
k -n "$APPS" rollout status deployment/app --timeout="${T}s" >/dev/null
[ "$(k -n "$APPS" get deployment app -o jsonpath='{.status.readyReplicas}')" = 4 ] || die "not every replica of app is ready"
failed=$(k -n "$APPS" get events --field-selector reason=Failed -o jsonpath='{range .items[*]}{.message}{"\n"}{end}')
[ -z "$failed" ] || die "a pull failed during the rotation: $failed"
[ "$(restarts)" = "$pods_before" ] || die "the registry pods restarted for the new certificate"
log "certificate $old_serial -> $(served_serial "$TEAM" team-registry) with no restart; 4 replicas pulled, none failed"

# ------------------------------------------------------------------ 5
phase "5. a RegistryMirror in front of an upstream Registry with auth"
namespace "$MIRROR_NS"
UP=upstream.$MIRROR_NS.svc.$DOMAIN:5000
MIRROR=mirror.$MIRROR_NS.svc.$DOMAIN:5000
htpasswd_secret "$MIRROR_NS" upstream-users owner:owner-e2e-pw mirror-bot:mirror-bot-e2e-pw
htpasswd_secret "$MIRROR_NS" mirror-users reader:reader-e2e-pw
k -n "$MIRROR_NS" create secret generic mirror-bot --from-literal=username=mirror-bot \
  --from-literal=password=mirror-bot-e2e-pw --dry-run=client -o yaml | k apply -f - >/dev/null
k -n "$MIRROR_NS" apply -f - >/dev/null <<EOF
apiVersion: wharf.dev/v1alpha1
kind: Registry
metadata: {name: upstream}
spec:
  storage: {emptyDir: {}}
  auth:
    token:
      users: {secretName: upstream-users}
      rules:
        - {repository: "**", users: [owner], actions: [pull, push]}
        - {repository: "public/**", anonymous: true, actions: [pull]}
        - {repository: "private/**", users: [mirror-bot], actions: [pull]}
EOF
ready registry upstream "$MIRROR_NS"
pull_secret "$MIRROR_NS" owner "$UP" owner owner-e2e-pw
job "$MIRROR_NS" seed "
set -e
crane push /images/app-b.tar $UP/public/app:1
crane push /images/app-c.tar $UP/public/tenant:1
crane push /images/app-b.tar $UP/private/app:1
crane mutate --label wharf.e2e/private=yes $UP/private/app:1
" owner
# containerd selects the upstream with ?ns=$UP; clients that name it in the
# path write the port's colon as _ (a repository name cannot hold a colon).
UP_PREFIX=${UP/:/_}
k -n "$MIRROR_NS" apply -f - >/dev/null <<EOF
apiVersion: wharf.dev/v1alpha1
kind: RegistryMirror
metadata: {name: mirror}
spec:
  upstreams:
    - {name: "$UP", url: "https://$UP", credentials: {secretName: mirror-bot}}
  storage: {emptyDir: {}}
  auth:
    token:
      users: {secretName: mirror-users}
      rules:
        - {repository: "*/public/**", anonymous: true, actions: [pull]}
        - {repository: "*/private/**", users: [reader], actions: [pull]}
  nodeAccess: {enabled: true}
EOF
ready registrymirror mirror "$MIRROR_NS"
until_true "$CERTS_DIR/$UP/hosts.toml points at the mirror" grep -q "$MIRROR" "$CERTS_DIR/$UP/hosts.toml"
until_true "the node reaches $MIRROR through its Service" node_reaches "$MIRROR_NS" mirror
# The upstream has no nodeAccess: the node cannot resolve its name, so a
# pull that works went through the mirror.
! grep -q "${UP%:*}" "$HOSTS_FILE" || die "$HOSTS_FILE resolves the upstream; the mirror check would prove nothing"
k -n "$MIRROR_NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: public-through-mirror}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: "$UP/public/app:1", imagePullPolicy: Always}
EOF
k -n "$MIRROR_NS" wait --for=condition=Ready pod/public-through-mirror --timeout="${T}s" >/dev/null
n=$(big_blob_gets "$MIRROR_NS" mirror public/app)
[ "$n" -ge 1 ] || die "the mirror served no layer of public/app: the node pull moved no bytes through it"
up=$(big_blob_gets "$MIRROR_NS" upstream public/app)
[ "$up" = 1 ] || die "the upstream served the layer of public/app $up times, want exactly once"
log "node pulled $UP/public/app:1 through the mirror ($n layer GET(s) from the mirror, 1 from the upstream)"
pull_secret "$MIRROR_NS" reader "$MIRROR" reader reader-e2e-pw
job "$MIRROR_NS" private-with-credentials "
set -e
crane config $MIRROR/$UP_PREFIX/private/app:1
" reader
grep -q 'wharf.e2e/private' <<<"$(k -n "$MIRROR_NS" logs job/private-with-credentials)" ||
  die "the private image through the mirror is not the private one"
job "$MIRROR_NS" private-anonymous "
if crane manifest $MIRROR/$UP_PREFIX/private/app:1 2>/tmp/err; then
  echo LEAK: the private image was served anonymously; exit 1
fi
cat /tmp/err
grep -q UNAUTHORIZED /tmp/err
"
log "private image: served with mirror credentials, 401 UNAUTHORIZED without"

# ------------------------------------------------------------------ 6
phase "6. a spec change rolls the Deployment and the status follows"
hash() { k -n "$TEAM" get deployment team-registry -o jsonpath='{.spec.template.metadata.annotations.wharf\.dev/config-hash}'; }
before=$(hash)
[ -n "$before" ] || die "deployment team-registry has no config-hash annotation"
k -n "$TEAM" patch registry team-registry --type merge \
  -p '{"spec": {"logLevel": "debug", "auth": {"token": {"groups": {"team-a": ["alice", "bob"]}}}}}' >/dev/null
gen=$(k -n "$TEAM" get registry team-registry -o jsonpath='{.metadata.generation}')
k -n "$TEAM" wait --for=jsonpath='{.status.observedGeneration}'="$gen" registry/team-registry --timeout="${T}s" >/dev/null
[ "$(hash)" != "$before" ] || die "the config hash did not change"
k -n "$TEAM" rollout status deployment/team-registry --timeout="${T}s" >/dev/null
ready registry team-registry "$TEAM"
log "generation $gen observed, config hash $before -> $(hash), rollout complete, Ready"

# ------------------------------------------------------------------ 7
phase "7. a deleted Service is recreated"
uid=$(k -n "$TEAM" get service team-registry -o jsonpath='{.metadata.uid}')
k -n "$TEAM" delete service team-registry --wait=true >/dev/null
k -n "$TEAM" wait --for=create service/team-registry --timeout="${T}s" >/dev/null
[ "$(k -n "$TEAM" get service team-registry -o jsonpath='{.metadata.uid}')" != "$uid" ] ||
  die "service team-registry was not recreated"
NEW_IP=$(k -n "$TEAM" get service team-registry -o jsonpath='{.spec.clusterIP}')
until_true "$HOSTS_FILE maps $HOST to the new ClusterIP $NEW_IP" \
  grep -qE "^$NEW_IP[[:space:]]+${HOST%:*}([[:space:]]|$)" "$HOSTS_FILE"
log "service recreated ($CLUSTER_IP -> $NEW_IP); the node follows"

# ------------------------------------------------------------------ 8
phase "8. invalid resources are rejected with a readable message"
reject() { # WANT YAML
  local out
  if out=$(k -n "$TEAM" apply -f - 2>&1 <<<"$2"); then die "the API server accepted: $2"; fi
  grep -qF "$1" <<<"$out" || die "rejected, but not with '$1': $out"
  log "rejected: $(grep -oF "$1" <<<"$out" | head -n 1)..."
}
reject "upstream credentials need client auth" "
apiVersion: wharf.dev/v1alpha1
kind: RegistryMirror
metadata: {name: leaky-mirror}
spec:
  upstreams: [{name: docker.io, url: https://registry-1.docker.io, credentials: {secretName: hub}}]
  storage: {emptyDir: {}}"
reject "set exactly one of filesystem, emptyDir and s3" "
apiVersion: wharf.dev/v1alpha1
kind: Registry
metadata: {name: two-storages}
spec:
  storage: {emptyDir: {}, filesystem: {size: 1Gi}}"

# ------------------------------------------------------------------ 9
phase "9. deleting the Registry removes its children and its node changes"
children=(deployment/team-registry service/team-registry configmap/team-registry-config pvc/team-registry-data)
for c in "${children[@]}"; do k -n "$TEAM" get "$c" >/dev/null; done
k -n "$TEAM" delete registry team-registry --wait=true --timeout="${T}s" >/dev/null
for c in "${children[@]}"; do
  k -n "$TEAM" wait --for=delete "$c" --timeout="${T}s" >/dev/null 2>&1 || true
  ! k -n "$TEAM" get "$c" >/dev/null 2>&1 || die "$c survived the deletion of its Registry"
done
until_true "$HOSTS_FILE no longer maps $HOST" sh -c "! grep -q '${HOST%:*}' '$HOSTS_FILE'"
until_true "$CERTS_DIR/$HOST removed" sh -c "[ ! -e '$CERTS_DIR/$HOST' ]"
log "children gone (the PVC too: retainOnDelete is false), node entries removed"

# ------------------------------------------------------------------ 10
phase "10. a tenant cannot steer the nodes' docker.io pulls; the admin's policy can"
namespace "$TENANT"
HUB=hub.$TENANT.svc.$DOMAIN:5000
k -n "$TENANT" apply -f - >/dev/null <<EOF
apiVersion: wharf.dev/v1alpha1
kind: RegistryMirror
metadata: {name: hub}
spec:
  upstreams:
    - {name: docker.io, url: "https://$UP"}
  storage: {emptyDir: {}}
  nodeAccess: {enabled: true}
EOF
k -n "$TENANT" wait --for=jsonpath='{.status.conditions[?(@.type=="Degraded")].reason}'=NodeAccessNotAllowed \
  registrymirror/hub --timeout="${T}s" >/dev/null
msg=$(k -n "$TENANT" get registrymirror hub -o jsonpath='{.status.conditions[?(@.type=="Degraded")].message}')
grep -q "namespace $TENANT" <<<"$msg" && grep -q docker.io <<<"$msg" || die "the refusal does not say who and what: $msg"
k -n "$TENANT" get events.events.k8s.io -o jsonpath='{range .items[*]}{.reason}{"\n"}{end}' | grep -qx NodeAccessNotAllowed ||
  die "no NodeAccessNotAllowed event in $TENANT"
# The refusal is decided together with the plan the agent follows.
plan=$(k -n "$SYS" get configmap wharf-node-access -o jsonpath='{.data.plan\.json}')
! grep -q '"docker.io"' <<<"$plan" || die "the plan routes docker.io for a refused tenant: $plan"
! grep -q "${HUB%:*}" <<<"$plan" || die "the plan maps part of a refused resource: $plan"
[ ! -e "$CERTS_DIR/docker.io" ] || die "the node's $CERTS_DIR/docker.io was written for a refused tenant"
log "refused: $msg"

helm_ upgrade wharf "$ROOT/charts/wharf" --namespace "$SYS" --reuse-values \
  --set-json "nodeAccess.policy.upstreams=[{\"namespaces\":[\"$TENANT\"],\"hosts\":[\"docker.io\"]}]" \
  --wait --timeout "${T}s" >/dev/null
k -n "$SYS" rollout status deployment/wharf-operator --timeout="${T}s" >/dev/null
k -n "$TENANT" wait --for=jsonpath='{.status.conditions[?(@.type=="Degraded")].status}'=False \
  registrymirror/hub --timeout="${T}s" >/dev/null
ready registrymirror hub "$TENANT"
until_true "$CERTS_DIR/docker.io/hosts.toml points at $HUB" grep -q "https://$HUB" "$CERTS_DIR/docker.io/hosts.toml"
until_true "the node reaches $HUB through its Service" node_reaches "$TENANT" hub
head -n 1 "$CERTS_DIR/docker.io/hosts.toml" | grep -qx "# wharf-node-access $TENANT/hub" ||
  die "docker.io/hosts.toml is not marked as $TENANT/hub's"
ctr_ images rm docker.io/public/tenant:1 >/dev/null 2>&1 || true
k -n "$TENANT" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: docker-io-through-mirror}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: "docker.io/public/tenant:1", imagePullPolicy: Always}
EOF
k -n "$TENANT" wait --for=condition=Ready pod/docker-io-through-mirror --timeout="${T}s" >/dev/null
n=$(big_blob_gets "$TENANT" hub public/tenant)
[ "$n" -ge 1 ] || die "the mirror $HUB served no layer of public/tenant: the pull did not go through it"
up=$(big_blob_gets "$MIRROR_NS" upstream public/tenant)
[ "$up" = 1 ] || die "the upstream served the layer of public/tenant $up times, want exactly once"
log "allowed by the policy: the node pulled docker.io/public/tenant:1 through $HUB ($n layer GET(s); upstream once)"

agents=$(k get daemonsets -A -l app.kubernetes.io/name=wharf-node-access -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}')
[ "$agents" = "$SYS/wharf-operator-node-agent" ] || die "node agents other than the chart's one: $agents"
hostpath_pods=$(k get pods -A -o json | jq -r '.items[] | select(any(.spec.volumes[]?; .hostPath)) | .metadata.namespace' | sort -u)
[ -z "$(grep -vx "$SYS" <<<"$hostpath_pods")" ] || die "hostPath pods outside $SYS: $hostpath_pods"
k -n "$TENANT" delete pod docker-io-through-mirror --wait=true >/dev/null
k -n "$TENANT" delete registrymirror hub --wait=true --timeout="${T}s" >/dev/null
until_true "$CERTS_DIR/docker.io removed with its mirror" sh -c "[ ! -e '$CERTS_DIR/docker.io' ]"
log "one node agent ($agents); no hostPath pod outside $SYS; docker.io released with the mirror"

# ------------------------------------------------------------------ 11
# shellcheck source=scenario-s3.sh
. "$HERE/scenario-s3.sh"

# ------------------------------------------------------------------ 12
# shellcheck source=scenario-gc.sh
. "$HERE/scenario-gc.sh"

# ------------------------------------------------------------------ 13
# shellcheck source=scenario-notify.sh
. "$HERE/scenario-notify.sh"

# ------------------------------------------------------------------ 14
# shellcheck source=scenario-ingress.sh
. "$HERE/scenario-ingress.sh"

# ------------------------------------------------------------------ RBAC
phase "the operator logged no forbidden error"
oplogs=$(k -n "$SYS" logs deployment/wharf-operator --tail=-1)
[ -n "$oplogs" ] || die "the operator logged nothing"
if grep -i forbidden <<<"$oplogs"; then die "the operator hit RBAC errors (above)"; fi
# Events are written with the chart's RBAC too: the transitions above left some.
events=$(k get events.events.k8s.io -A -o jsonpath='{range .items[?(@.reportingController=="wharf-operator")]}{.reason}{"\n"}{end}')
grep -qx Available <<<"$events" || die "no Available event from wharf-operator: $events"
log "$(wc -l <<<"$oplogs") operator log lines, none forbidden; $(wc -l <<<"$events") events recorded"

# ------------------------------------------------------------------ uninstall
phase "helm uninstall restores the node's files"
helm_ uninstall wharf --namespace "$SYS" --wait --timeout "${T}s" >/dev/null
until_true "no wharf-node-access line in $HOSTS_FILE" sh -c "! grep -q '# wharf-node-access ' '$HOSTS_FILE'"
[ "$(grep -v '# wharf-node-access ' "$HOSTS_FILE" || true)" = "$HOSTS_BEFORE" ] || die "$HOSTS_FILE differs from before the install"
left=$(grep -rl '^# wharf-node-access ' "$CERTS_DIR" 2>/dev/null || true)
[ -z "$left" ] || die "files of the node agent left after uninstall: $left"
log "uninstalled; $HOSTS_FILE and $CERTS_DIR hold nothing of Wharf"

phases_report
log "all scenarios passed in $((SECONDS - START))s"
