# shellcheck shell=bash
# Scenario 11 of e2e/scenarios.sh (sourced by it, with its helpers k, job,
# ready, namespace, htpasswd_secret, pull_secret, until_true, ctr_):
# a Registry on S3 with three replicas.
#   - versitygw (the image e2e/images.sh builds) serves S3 in namespace
#     wharf-s3, behind a Service; the bucket does not exist yet
#   - a Registry with storage.s3 and replicas: 3 is Degraded with the pods'
#     own reason (the bucket is missing), and Ready once the bucket exists
#   - a Job pushes a 50 MiB image of random layers made in the Job, through
#     the Service: the requests land on more than one replica
#   - a Job pulls the whole image again and again for 20s; the registry pod
#     that served its first layer is deleted, and a Deployment's image is
#     pulled by the node meanwhile; every pull succeeds, some finish after
#     the deletion, and the registry logs show every layer's bytes went
#     through the registry to the node (redirect is off)
# Every address is the cluster's (198.18.0.0/15): the registry reaches S3 by
# its Service name, and no client is ever sent to the S3 endpoint.

S3_NS=wharf-s3 S3_TEAM=wharf-s3-team
VGW_IMAGE=wharf.local/versitygw:$(sed -n 's/^VERSITYGW_VERSION=\([^ ]*\).*/\1/p' "$ROOT/scripts/tools.sh")
S3_ENDPOINT=http://versitygw.$S3_NS.svc.$DOMAIN:7070
S3HOST=images.$S3_TEAM.svc.$DOMAIN:5000
S3_IMAGE=$S3HOST/s3/app:1
S3_SELECTOR=app.kubernetes.io/name=wharf-registry,app.kubernetes.io/instance=images

# registry_pods: names of the S3 registry's pods, one per line.
registry_pods() {
  k -n "$S3_TEAM" get pods -l "$S3_SELECTOR" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
}

# s3_requests FILTER < LOG: how many request lines of s3/app match the jq FILTER.
s3_requests() {
  jq -R "fromjson? | select(.msg == \"request\" and .repository == \"s3/app\") | select($1)" | jq -s length
}
LAYER_GET='.route == "blob" and .method == "GET" and .status == 200 and .bytes >= 1048576'

phase "11. a Registry on S3 (versitygw in the cluster) with 3 replicas"
namespace "$S3_NS"
namespace "$S3_TEAM"
s3_access=wharf-e2e-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
s3_secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
for ns in "$S3_NS" "$S3_TEAM"; do
  k -n "$ns" create secret generic s3-keys --from-literal=accessKeyId="$s3_access" \
    --from-literal=secretAccessKey="$s3_secret" --dry-run=client -o yaml | k apply -f - >/dev/null
done
k -n "$S3_NS" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: versitygw}
spec:
  selector: {matchLabels: {app: versitygw}}
  template:
    metadata: {labels: {app: versitygw}}
    spec:
      terminationGracePeriodSeconds: 1
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
      containers:
      - name: versitygw
        image: $VGW_IMAGE
        imagePullPolicy: Never
        args: ["--access", "\$(ACCESS)", "--secret", "\$(SECRET)", "--port", ":7070", "posix", "/data"]
        env:
        - {name: ACCESS, valueFrom: {secretKeyRef: {name: s3-keys, key: accessKeyId}}}
        - {name: SECRET, valueFrom: {secretKeyRef: {name: s3-keys, key: secretAccessKey}}}
        ports: [{name: s3, containerPort: 7070}]
        readinessProbe: {tcpSocket: {port: s3}, periodSeconds: 1}
        securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
        volumeMounts: [{name: data, mountPath: /data}, {name: tmp, mountPath: /tmp}]
      # The gateway's image has only the gateway: busybox beside it makes the
      # bucket's directory when the scenario says so.
      - name: admin
        image: $CLIENT
        imagePullPolicy: Never
        command: ["sleep", "86400"]
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, emptyDir: {}}, {name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: versitygw}
spec:
  selector: {app: versitygw}
  ports: [{name: s3, port: 7070, targetPort: s3}]
EOF
k -n "$S3_NS" rollout status deployment/versitygw --timeout="${T}s" >/dev/null
log "versitygw serves S3 at $S3_ENDPOINT (no bucket yet)"

htpasswd_secret "$S3_TEAM" images-users pusher:pusher-e2e-pw
k -n "$S3_TEAM" apply -f - >/dev/null <<EOF
apiVersion: wharf.dev/v1alpha1
kind: Registry
metadata: {name: images}
spec:
  replicas: 3
  storage:
    s3:
      bucket: wharf-images
      region: us-east-1
      endpoint: $S3_ENDPOINT
      forcePathStyle: true
      rootDirectory: /e2e
      credentials: {secretName: s3-keys}
  auth:
    htpasswd:
      secret: {secretName: images-users}
  nodeAccess: {enabled: true}
EOF
k -n "$S3_TEAM" wait --for=jsonpath='{.status.conditions[?(@.type=="Degraded")].reason}'=RegistryNotReady \
  registry/images --timeout="${T}s" >/dev/null
msg=$(k -n "$S3_TEAM" get registry images -o jsonpath='{.status.conditions[?(@.type=="Degraded")].message}')
# The pod's own words: the bucket, and that S3 does not have it (the
# registry's wording for a missing bucket, or S3's 404 / NoSuchBucket).
grep -qE "wharf-images.*(does not exist|NoSuchBucket|404)" <<<"$msg" ||
  die "Degraded does not say the bucket is missing: $msg"
[ "$(k -n "$S3_TEAM" get registry images -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = False ] ||
  die "Ready while the bucket is missing"
log "without its bucket: Degraded RegistryNotReady: $msg"

k -n "$S3_NS" exec deployment/versitygw -c admin -- mkdir /data/wharf-images
ready registry images "$S3_TEAM"
k -n "$S3_TEAM" wait --for=jsonpath='{.status.readyReplicas}'=3 registry/images --timeout="${T}s" >/dev/null
[ "$(k -n "$S3_TEAM" get registry images -o jsonpath='{.status.conditions[?(@.type=="Degraded")].status}')" = False ] ||
  die "still Degraded once Ready"
[ -z "$(k -n "$S3_TEAM" get pvc -o name)" ] || die "an S3 registry created a claim"
log "bucket created: Registry $S3_TEAM/images Ready with 3 replicas, no claim"

phase "11b. a Job pushes a 50 MiB image through the Service"
pull_secret "$S3_TEAM" pusher "$S3HOST" pusher pusher-e2e-pw
# Five 10 MiB layers of random bytes made in the Job, each appended by its
# own crane process (new connections, so kube-proxy spreads them), then a
# full read-back (crane validate --remote downloads and checks every layer).
job "$S3_TEAM" s3-push "
set -e
ref=$S3HOST/s3/app:base
crane push /images/app-a.tar \$ref
for i in 1 2 3 4 5; do
  mkdir -p /tmp/l\$i
  head -c 10485760 /dev/urandom >/tmp/l\$i/random-\$i.bin
  tar -C /tmp/l\$i -cf /tmp/l\$i.tar .
  crane append -b \$ref -f /tmp/l\$i.tar -t $S3HOST/s3/app:step\$i
  ref=$S3HOST/s3/app:step\$i
done
crane tag \$ref 1
crane validate --remote $S3_IMAGE
for i in \$(seq 1 9); do crane digest $S3_IMAGE >/dev/null; done
echo digest=\$(crane digest $S3_IMAGE)
" pusher
digest=$(k -n "$S3_TEAM" logs job/s3-push | sed -n 's/^digest=//p')
[ -n "$digest" ] || die "the push Job printed no digest"
served=0 per_pod=
for p in $(registry_pods); do
  all=$(k -n "$S3_TEAM" logs "$p" --tail=-1 | s3_requests true)
  uploads=$(k -n "$S3_TEAM" logs "$p" --tail=-1 | s3_requests '.route == "upload"')
  per_pod+=" $p:$all($uploads uploads)"
  [ "$all" = 0 ] || served=$((served + 1))
done
[ "$served" -ge 2 ] || die "the Job's requests all went to one replica:$per_pod"
log "pushed and read back $S3_IMAGE ($digest); requests per replica:$per_pod"

phase "11c. pulls go on while a registry pod is deleted"
CLUSTER_IP=$(k -n "$S3_TEAM" get service images -o jsonpath='{.spec.clusterIP}')
until_true "$HOSTS_FILE maps $S3HOST to $CLUSTER_IP" \
  grep -qE "^$CLUSTER_IP[[:space:]]+${S3HOST%:*}([[:space:]]|$)" "$HOSTS_FILE"
until_true "$CERTS_DIR/$S3HOST/hosts.toml" test -f "$CERTS_DIR/$S3HOST/hosts.toml"
ctr_ images rm "$S3_IMAGE" >/dev/null 2>&1 || true
# Each pod's log from now on, to its end: a deleted pod's log goes with it.
logdir=$(mktemp -d)
followers=()
for p in $(registry_pods); do
  "$KUBECTL" --kubeconfig "$KC" -n "$S3_TEAM" logs -f --tail=0 "$p" >"$logdir/$p.log" 2>/dev/null &
  followers+=($!)
done
stop_followers() { kill "${followers[@]}" 2>/dev/null || true; wait "${followers[@]}" 2>/dev/null || true; }
# A client pulls the whole image (every layer downloaded and its digest
# checked) again and again for 20s, each time on new connections.
job_start "$S3_TEAM" s3-pulls "
set -e
end=\$((\$(date +%s) + 20)); n=0
while [ \$(date +%s) -lt \$end ]; do
  crane validate --remote $S3_IMAGE >/dev/null
  n=\$((n + 1)); echo pulled=\$n at=\$(date +%s)
done
" pusher
pull_log() { "$KUBECTL" --kubeconfig "$KC" -n "$S3_TEAM" logs job/s3-pulls 2>/dev/null; }
until_true "the pulling Job's first pull" eval 'pull_log | grep -q "^pulled=1 "'
job_ip=$(k -n "$S3_TEAM" get pods -l job-name=s3-pulls -o jsonpath='{.items[0].status.podIP}')
# The registry logs a blob GET when the body starts to flow.
first_layer_pod() {
  local f
  for f in "$logdir"/*.log; do
    if [ "$(s3_requests "$LAYER_GET" <"$f")" != 0 ]; then basename "$f" .log; return 0; fi
  done
  return 1
}
victim=$(first_layer_pod) || die "no registry pod logged a layer GET of the first pull"
t_deleted=$(date +%s)
k -n "$S3_TEAM" delete pod "$victim" --wait=false >/dev/null
# The node pulls too, while the replica goes (5s preStop, then its drain) and its replacement starts.
k -n "$S3_TEAM" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: s3-app}
spec:
  selector: {matchLabels: {app: s3-app}}
  template:
    metadata: {labels: {app: s3-app}}
    spec:
      terminationGracePeriodSeconds: 1
      imagePullSecrets: [{name: pusher}]
      containers:
      - {name: app, image: "$S3_IMAGE", imagePullPolicy: Always}
EOF
k -n "$S3_TEAM" wait --for=condition=Available deployment/s3-app --timeout="${T}s" >/dev/null
node_images=$(ctr_ images ls -q)
grep -qx "$S3_IMAGE" <<<"$node_images" || die "the node's containerd has no $S3_IMAGE"
wait_job "$S3_TEAM" s3-pulls
pulls=$(pull_log | grep -c '^pulled=')
after=$(pull_log | sed -n 's/^pulled=[0-9]* at=//p' | awk -v t="$t_deleted" '$1 > t' | wc -l)
[ "$after" -ge 2 ] || die "only $after of $pulls pulls finished after $victim was deleted: the deletion was not during the pulls"
log "deleted $victim during the pulls: $pulls whole-image pulls, $after of them finished after the deletion, none failed"
# The replacement serves once the deleted pod is gone.
k -n "$S3_TEAM" wait --for=delete "pod/$victim" --timeout="${T}s" >/dev/null 2>&1 || true
k -n "$S3_TEAM" wait --for=condition=Ready pod -l "$S3_SELECTOR" --timeout="${T}s" >/dev/null
[ "$(registry_pods | wc -l)" = 3 ] || die "not 3 registry pods after the replacement: $(registry_pods | tr '\n' ' ')"
k -n "$S3_TEAM" wait --for=jsonpath='{.status.readyReplicas}'=3 registry/images --timeout="${T}s" >/dev/null
ready registry images "$S3_TEAM"
stop_followers
# Logs of the replacement pod, from its start.
for p in $(registry_pods); do
  [ -e "$logdir/$p.log" ] || k -n "$S3_TEAM" logs "$p" --tail=-1 >"$logdir/$p.log"
done
# The node's layer GETs: every one not from the pulling Job's pod.
node_filter="$LAYER_GET and .client != \"$job_ip\""
layers=$(cat "$logdir"/*.log | s3_requests "$node_filter")
bytes=$(cat "$logdir"/*.log | jq -R "fromjson? | select(.msg == \"request\" and .repository == \"s3/app\") | select($node_filter) | .bytes" | jq -s 'add // 0')
rm -rf "$logdir"
# The five random layers (the base's layer is on the node since scenario 4:
# containerd fetches no digest it has).
[ "$layers" -ge 5 ] || die "the registry sent the node $layers layers of s3/app, want at least 5: the bytes did not cross it"
log "the node pulled $S3_IMAGE: $layers layer GETs, $((bytes / 1048576)) MiB through the registry; Ready with 3 replicas again"
