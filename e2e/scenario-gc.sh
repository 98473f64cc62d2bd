# shellcheck shell=bash
# Scenario 12 of e2e/scenarios.sh (sourced by it, with its helpers k, job,
# ready, namespace, htpasswd_secret, pull_secret, until_true, ctr_):
# online garbage collection and a retention policy on the real cluster.
#   - a Registry with garbageCollection.online (every 2s) and a retention
#     policy for ci/**: keep `release`, and the 2 most recently pushed build-*
#   - a Job pushes `release` and then five CI builds on top of it, each with
#     a random 1 MiB layer of its own; a Deployment runs `release`
#   - the CI tags age out while the registry keeps collecting: only release,
#     build-4 and build-5 are left, and the status shows the last collection
#   - once the builds' layers are past minAge, the collector reclaims them
#     (its metrics, read from the pod), and the node pulls `release` again,
#     whole
GC_TEAM=wharf-gc-team
GCHOST=ci.$GC_TEAM.svc.$DOMAIN:5000
GC_IMAGE=$GCHOST/ci/app:release

# gc_tags: the tags of ci/app, sorted, space-separated, as the node sees them.
gc_tags() {
  https_ "$GC_TEAM" ci /v2/ci/app/tags/list -f -u ci:ci-e2e-pw | jq -r '.tags | sort | join(" ")'
}

# gc_reclaimed: blobs the online collector deleted so far, summed over the registry's pods.
gc_reclaimed() {
  local ip sum=0 n
  for ip in $(k -n "$GC_TEAM" get pods -l app.kubernetes.io/instance=ci -o jsonpath='{.items[*].status.podIP}'); do
    n=$(curl -sf -m 5 "http://$ip:5001/metrics" | sed -n 's/^wharf_registry_gc_reclaimed_blobs_total \([0-9.]*\).*/\1/p')
    n=${n:-0}
    sum=$((sum + ${n%.*}))
  done
  echo "$sum"
}
node_has() {
  local images
  images=$(ctr_ images ls -q) && grep -qx "$1" <<<"$images"
}
tags_are() { [ "$(gc_tags)" = "$1" ]; }
reclaimed_at_least() { [ "$(gc_reclaimed)" -ge "$1" ]; }

phase "12. online garbage collection and retention"
namespace "$GC_TEAM"
htpasswd_secret "$GC_TEAM" ci-users ci:ci-e2e-pw
k -n "$GC_TEAM" apply -f - >/dev/null <<EOF
apiVersion: wharf.dev/v1alpha1
kind: Registry
metadata: {name: ci}
spec:
  storage:
    filesystem: {size: 1Gi}
  auth:
    htpasswd:
      secret: {secretName: ci-users}
  nodeAccess: {enabled: true}
  garbageCollection: {online: true, interval: 2s, minAge: 1m}
  retention:
    delay: 1s
    policies:
      - repositories: ["ci/**"]
        deleteUntagged: true
        keepTags:
          - patterns: ["^release\$"]
          - patterns: ["^build-"]
            mostRecentlyPushedCount: 2
EOF
ready registry ci "$GC_TEAM"
[ -z "$(k -n "$GC_TEAM" get cronjobs -o name)" ] || die "an online-GC Registry has a CronJob"
pull_secret "$GC_TEAM" ci "$GCHOST" ci ci-e2e-pw
job "$GC_TEAM" ci-push "
set -e
crane push /images/app-a.tar $GC_IMAGE
for i in 1 2 3 4 5; do
  mkdir -p /tmp/l\$i
  head -c 1048576 /dev/urandom >/tmp/l\$i/build-\$i.bin
  tar -C /tmp/l\$i -cf /tmp/l\$i.tar .
  crane append -b $GC_IMAGE -f /tmp/l\$i.tar -t $GCHOST/ci/app:build-\$i
done
" ci
k -n "$GC_TEAM" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: ci-app}
spec:
  selector: {matchLabels: {app: ci-app}}
  template:
    metadata: {labels: {app: ci-app}}
    spec:
      terminationGracePeriodSeconds: 1
      imagePullSecrets: [{name: ci}]
      containers:
      - {name: app, image: "$GC_IMAGE", imagePullPolicy: Always}
EOF
k -n "$GC_TEAM" wait --for=condition=Available deployment/ci-app --timeout="${T}s" >/dev/null
until_true "ci/app keeps only release, build-4 and build-5" tags_are "build-4 build-5 release"
k -n "$GC_TEAM" wait --for=jsonpath='{.status.garbageCollection.finishedAt}' registry/ci --timeout="${T}s" >/dev/null
gc_error=$(k -n "$GC_TEAM" get registry ci -o jsonpath='{.status.garbageCollection.error}')
[ -z "$gc_error" ] || die "the last collection failed: $gc_error"
log "retention left $(gc_tags); the status shows a collection at $(k -n "$GC_TEAM" get registry ci -o jsonpath='{.status.garbageCollection.finishedAt}')"

# The three deleted builds' own layers, configs and manifests go once
# their reference markers are older than minAge.
until_true "the collector reclaimed the deleted builds' blobs" reclaimed_at_least 9
# Removed through the CRI, which keeps its own view of the node's images.
"$CRICTL_BIN" --runtime-endpoint "unix://$CTRD_SOCK" rmi "$GC_IMAGE" >/dev/null 2>&1 || true
k -n "$GC_TEAM" rollout restart deployment/ci-app >/dev/null
k -n "$GC_TEAM" rollout status deployment/ci-app --timeout="${T}s" >/dev/null
# The new pod pulled (imagePullPolicy: Always). Its tag can reach containerd's
# store a moment after the rollout reports done (seen twice on a loaded machine).
until_true "the node's containerd holds $GC_IMAGE again" node_has "$GC_IMAGE"
job "$GC_TEAM" ci-validate "crane validate --remote $GC_IMAGE" ci
log "the collector reclaimed $(gc_reclaimed) blobs; the node pulled $GC_IMAGE again and it validates whole"
