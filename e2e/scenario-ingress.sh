# shellcheck shell=bash
# Scenario 14 of e2e/scenarios.sh (sourced by it, with its helpers k, job,
# ready, namespace, until_true, browse): the UI and the API through an
# Ingress, served by a real ingress controller, traefik (built from its Go
# module by e2e/cluster/build.sh, in an image made by image-builder).
#   - a Registry with `ui` and `ingress` (host ui.wharf.test, class traefik,
#     TLS from the operator's own serving Secret: the chart's
#     tls.ingressDomains lists wharf.test, so its certificate names the host)
#   - traefik terminates TLS for ui.wharf.test and speaks verified TLS to the
#     registry (a serversTransport with the operator's CA and the Service's
#     in-cluster name, as a cluster admin configures it)
#   - a Job pushes with crane to https://ui.wharf.test (the name mapped to
#     traefik's ClusterIP by hostAliases), trusting the operator's CA
#   - headless chromium, trusting only that CA, opens https://ui.wharf.test/ui/
#     and the repository's tags page, whose pull command names the Ingress host
ING_NS=wharf-ingress
WEB_HOST=ui.wharf.test

phase "14. the UI through an Ingress (traefik), in a browser"
namespace "$ING_NS"
k label namespace "$ING_NS" wharf.dev/ca-bundle=true --overwrite >/dev/null
k -n "$ING_NS" wait --for=create configmap/wharf-ca-bundle --timeout="${T}s" >/dev/null
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: traefik, namespace: $ING_NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: wharf-e2e-traefik}
rules:
- {apiGroups: [""], resources: [services, secrets, nodes], verbs: [get, list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [get, list, watch]}
- {apiGroups: [networking.k8s.io], resources: [ingresses, ingressclasses], verbs: [get, list, watch]}
- {apiGroups: [networking.k8s.io], resources: [ingresses/status], verbs: [update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: wharf-e2e-traefik}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: wharf-e2e-traefik}
subjects: [{kind: ServiceAccount, name: traefik, namespace: $ING_NS}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: traefik}
spec: {controller: traefik.io/ingress-controller}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: traefik-dynamic, namespace: $ING_NS}
data:
  dynamic.yml: |
    http:
      serversTransports:
        wharf-web:
          serverName: web.$TEAM.svc.$DOMAIN
          rootCAs: [/ca/ca.crt]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: traefik, namespace: $ING_NS}
spec:
  selector: {matchLabels: {app: traefik}}
  template:
    metadata: {labels: {app: traefik}}
    spec:
      serviceAccountName: traefik
      terminationGracePeriodSeconds: 1
      containers:
      - name: traefik
        image: wharf.local/traefik:$TRAEFIK_VERSION
        imagePullPolicy: Never
        args:
        - --global.checknewversion=false
        - --global.sendanonymoususage=false
        - --entrypoints.websecure.address=:8443
        - --entrypoints.websecure.http.tls=true
        - --entrypoints.traefik.address=:8080
        - --ping=true
        - --providers.kubernetesingress=true
        - --providers.kubernetesingress.ingressclass=traefik
        - --providers.file.filename=/config/dynamic.yml
        - --accesslog=true
        readinessProbe: {httpGet: {path: /ping, port: 8080}, periodSeconds: 1}
        volumeMounts:
        - {name: ca, mountPath: /ca, readOnly: true}
        - {name: config, mountPath: /config, readOnly: true}
      volumes:
      - {name: ca, configMap: {name: wharf-ca-bundle}}
      - {name: config, configMap: {name: traefik-dynamic}}
---
apiVersion: v1
kind: Service
metadata: {name: traefik, namespace: $ING_NS}
spec:
  selector: {app: traefik}
  ports: [{name: websecure, port: 443, targetPort: 8443}]
EOF
k -n "$TEAM" apply -f - >/dev/null <<EOF
apiVersion: wharf.dev/v1alpha1
kind: Registry
metadata: {name: web}
spec:
  storage:
    filesystem: {size: 1Gi}
  ui: {enabled: true}
  ingress:
    host: $WEB_HOST
    className: traefik
    tlsSecretName: web-tls
EOF
ready registry web "$TEAM"
url=$(k -n "$TEAM" get registry web -o jsonpath='{.status.url}')
[ "$url" = "https://$WEB_HOST" ] || die "status.url of the Registry behind the Ingress is '$url', want https://$WEB_HOST"
# The operator's certificate names the Ingress host (tls.ingressDomains).
k -n "$TEAM" get secret web-tls -o jsonpath='{.data.tls\.crt}' | base64 -d | openssl x509 -noout -ext subjectAltName |
  grep -q "DNS:$WEB_HOST" || die "the serving certificate of web does not name $WEB_HOST"
# Traefik reads a backend's scheme and transport from its Service.
k -n "$TEAM" annotate service web --overwrite >/dev/null \
  traefik.ingress.kubernetes.io/service.serversscheme=https \
  traefik.ingress.kubernetes.io/service.serverstransport=wharf-web@file
k -n "$ING_NS" rollout status deployment/traefik --timeout="${T}s" >/dev/null
TRAEFIK_IP=$(k -n "$ING_NS" get service traefik -o jsonpath='{.spec.clusterIP}')
via_ingress() { # PATH [curl args]: a verified request to the Ingress host, through traefik
  local path=$1
  shift
  curl -s -m 5 --cacert "$CA_PEM" --resolve "$WEB_HOST:443:$TRAEFIK_IP" "$@" "https://$WEB_HOST$path"
}
ingress_serves() { [ "$(via_ingress /v2/ -o /dev/null -w '%{http_code}')" = 200 ]; }
until_true "traefik routes https://$WEB_HOST/v2/ to the registry" ingress_serves

JOB_HOST_ALIASES="$TRAEFIK_IP=$WEB_HOST" job "$APPS" push-ingress "
set -e
crane push /images/app-c.tar $WEB_HOST/demo/app:1
crane digest $WEB_HOST/demo/app:1
"

dom=$(browse "https://$WEB_HOST/ui/" "$TRAEFIK_IP")
grep -q '<h1>Repositories</h1>' <<<"$dom" || die "the browser got no UI page through the Ingress: $dom"
grep -q '>demo/app</a>' <<<"$dom" || die "the UI through the Ingress does not list demo/app: $dom"
dom=$(browse "https://$WEB_HOST/ui/tags?repo=demo/app" "$TRAEFIK_IP")
grep -q "docker pull $WEB_HOST/demo/app:1" <<<"$dom" ||
  die "the tags page through the Ingress has no pull command for $WEB_HOST: $dom"
# traefik's access log: the browser's requests went through it, to the registry.
access_log=$(k -n "$ING_NS" logs deployment/traefik)
grep -q '"GET /ui/tags?repo=demo/app HTTP/' <<<"$access_log" || die "traefik's access log has no request for the tags page"
log "the UI answers through the Ingress at https://$WEB_HOST/ui/ (traefik, TLS verified both ways); crane pushed through it"
k delete clusterrolebinding,clusterrole wharf-e2e-traefik --ignore-not-found >/dev/null
