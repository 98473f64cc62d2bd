# shellcheck shell=bash
# Pinned versions of everything the e2e cluster builds (sourced by build.sh and
# lib.sh). Changing a pin makes build.sh build that component again; the old
# build stays in the cache until removed by hand.
K8S_VERSION=${K8S_VERSION:-v1.34.4}        # k8s.io/kubernetes; staging modules at v0.34.4
ETCD_VERSION=${ETCD_VERSION:-v3.5.35}      # go.etcd.io/etcd/server/v3
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.4} # github.com/coredns/coredns
HELM_VERSION=${HELM_VERSION:-v3.19.0}      # helm.sh/helm/v3/cmd/helm
CRANE_VERSION=${CRANE_VERSION:-v0.20.8}    # github.com/google/go-containerregistry/cmd/crane (same pin as scripts/tools.sh)
CRICTL_VERSION=${CRICTL_VERSION:-v1.34.0}  # sigs.k8s.io/cri-tools/cmd/crictl
TRAEFIK_VERSION=${TRAEFIK_VERSION:-v3.6.12}  # github.com/traefik/traefik/v3/cmd/traefik (the e2e ingress controller)
