# shellcheck shell=bash
# Scenario 13 of e2e/scenarios.sh (sourced by it, with its helpers k, job,
# ready, namespace, htpasswd_secret, pull_secret, until_true): notifications
# on the real cluster. A receiver Deployment (busybox httpd with a CGI
# script, in the client image) logs every request it gets; a Registry sends
# it registry:2's events with an Authorization header taken from a Secret
# (mounted into the registry pods, never in the ConfigMap); a Job pushes with
# crane, and the receiver logs the push event of that manifest.
NOTIFY_NS=wharf-notify
NOTIFY_HOST=events.$NOTIFY_NS.svc.$DOMAIN:5000

phase "13. a Registry's push events reach a receiver in the cluster"
namespace "$NOTIFY_NS"
k -n "$NOTIFY_NS" create secret generic hook-token --from-literal=authorization="Bearer e2e-hook-token" \
  --dry-run=client -o yaml | k apply -f - >/dev/null
# The CGI script writes each request to the container's log (PID 1's stdout).
receiver_script='mkdir -p /tmp/www/cgi-bin
printf "%s\n" "#!/bin/sh" "body=\$(head -c \"\$CONTENT_LENGTH\")" \
  "echo \"event auth=[\$HTTP_AUTHORIZATION] type=[\$CONTENT_TYPE] body=\$body\" >/proc/1/fd/1" \
  "printf \"Content-Type: text/plain\\r\\n\\r\\nok\"" >/tmp/www/cgi-bin/hook
busybox chmod 755 /tmp/www/cgi-bin/hook
exec busybox httpd -f -p 8080 -h /tmp/www'
k -n "$NOTIFY_NS" apply -f - >/dev/null <<EOF2
apiVersion: apps/v1
kind: Deployment
metadata: {name: receiver}
spec:
  selector: {matchLabels: {app: receiver}}
  template:
    metadata: {labels: {app: receiver}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: receiver
        image: $CLIENT
        imagePullPolicy: Never
        command: ["sh", "-c", $(printf '%s' "$receiver_script" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: receiver}
spec:
  selector: {app: receiver}
  ports: [{port: 8080, targetPort: 8080}]
EOF2
k -n "$NOTIFY_NS" wait --for=condition=Available deployment/receiver --timeout="${T}s" >/dev/null
htpasswd_secret "$NOTIFY_NS" events-users ci:ci-e2e-pw
k -n "$NOTIFY_NS" apply -f - >/dev/null <<EOF2
apiVersion: wharf.dev/v1alpha1
kind: Registry
metadata: {name: events}
spec:
  storage: {emptyDir: {}}
  auth:
    htpasswd:
      secret: {secretName: events-users}
  notifications:
    endpoints:
      - name: hook
        url: http://receiver.$NOTIFY_NS.svc.$DOMAIN:8080/cgi-bin/hook
        secretHeaders: [{header: Authorization, secretName: hook-token, key: authorization}]
        ignoredActions: [pull]
EOF2
ready registry events "$NOTIFY_NS"
config=$(k -n "$NOTIFY_NS" get configmap events-config -o jsonpath='{.data.config\.yml}')
! grep -q e2e-hook-token <<<"$config" || die "the hook's token is in the registry's ConfigMap"
pull_secret "$NOTIFY_NS" ci "$NOTIFY_HOST" ci ci-e2e-pw
job "$NOTIFY_NS" notify-push "
set -e
crane push /images/app-c.tar $NOTIFY_HOST/notify/app:1
echo digest=\$(crane digest $NOTIFY_HOST/notify/app:1)
" ci
digest=$(k -n "$NOTIFY_NS" logs job/notify-push | sed -n 's/^digest=//p')
[ -n "$digest" ] || die "the push Job printed no digest"
# The manifest's push event: its action, repository, tag and digest in one event.
# The log is read whole before it is searched: a grep that stops at its first
# match would leave kubectl writing into a closed pipe (SIGPIPE, exit 141).
receiver_log() { k -n "$NOTIFY_NS" logs deployment/receiver --tail=-1; }
push_event() {
  local events
  events=$(receiver_log | sed -n 's/^event auth=\[\(.*\)\] type=\[\(.*\)\] body=//p' |
    jq -c --arg d "$digest" '.events[]? | select(.action == "push" and .target.repository == "notify/app"
      and .target.digest == $d and .target.tag == "1")' 2>/dev/null) || return 1
  [ -n "$events" ]
}
until_true "the receiver got the push event of notify/app:1 ($digest)" push_event
received=$(receiver_log)
line=$(grep -m 1 '"notify/app"' <<<"$received")
grep -qF 'auth=[Bearer e2e-hook-token]' <<<"$line" || die "the event came without the Secret's Authorization header: $line"
grep -qF 'type=[application/vnd.docker.distribution.events.v2+json]' <<<"$line" || die "not registry:2's envelope: $line"
! grep -q '"action":"pull"' <<<"$received" || die "an ignored pull event was sent"
log "the receiver got the push event of notify/app:1 ($digest), with the Secret's bearer token, registry:2's media type"
