#!/usr/bin/env bash
# Brings up a real single-node Kubernetes cluster on this machine, by hand:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
# (its own root, state and socket), kubelet, kube-proxy (iptables mode),
# CoreDNS (a host process, no forwarding), a hostPath PVC provisioner, and a
# capture of the outside interface that check-leaks.sh reads.
#
#   e2e/cluster/up.sh          (build first: e2e/cluster/build.sh all)
#
# Environment:
#   WHARF_E2E_DIR      state root (default /tmp/wharf-e2e); the cluster lives in $WHARF_E2E_DIR/cluster
#   WHARF_CACHE        where build.sh put the binaries (default ~/.cache/wharf)
#   WHARF_E2E_TIMEOUT  overall deadline in seconds (default 300)
#   WHARF_OUTSIDE_IF   interface to capture (default: the one of the IPv4 default route)
#
# Writes $WHARF_E2E_DIR/cluster/kubeconfig (admin, group system:masters) and
# $WHARF_E2E_DIR/cluster/env (KUBECONFIG, PATH with kubectl/crictl/ctr helpers).
# Addresses (all inside 198.18.0.0/15): node 198.18.0.10 on wharf0 (dummy, or a
# veth pair where the kernel has no dummy), pods
# 198.18.1.0/24 on bridge wharfbr0, services 198.19.0.0/16 (DNS 198.19.0.10).
# Undo everything with e2e/cluster/down.sh (also after a failed up).
set -Eeuo pipefail
E2E_SCRIPT=up
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

STATE=$WHARF_E2E_DIR/cluster
PKI=$STATE/pki
KC=$STATE/kubeconfig
TIMEOUT=${WHARF_E2E_TIMEOUT:-300}
DEADLINE=$((SECONDS + TIMEOUT))
ETCD_PORT=12379
API_PORT=6443
SERVER=https://$NODE_IP:$API_PORT
CTRD_SOCK=$STATE/containerd/containerd.sock
PAUSE_IMAGE=wharf.local/pause:1

# Seconds left before the overall deadline (at least 1: the wait that gets
# it makes one last check, then fails naming what it waited for).
remaining() {
  local r=$((DEADLINE - SECONDS))
  if [ $r -le 0 ]; then
    log "overall timeout of ${TIMEOUT}s (WHARF_E2E_TIMEOUT) reached"
    r=1
  fi
  echo $r
}

on_error() {
  local rc=$?
  phase_end
  log "up FAILED (exit $rc). Logs: $STATE/logs/. Run e2e/cluster/down.sh to undo what was done."
  [ ${#PHASES[@]} -eq 0 ] || phases_report
  exit $rc
}
trap on_error ERR

need_root
need_bins "$ETCD_BIN" "$KUBECTL" "$COREDNS_BIN" "$CRICTL_BIN" "$PAUSE_BIN"
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do need_bins "$K8S_BIN/$b"; done
for c in containerd containerd-shim-runc-v2 runc ctr iptables ip6tables ip tcpdump openssl curl conntrack busybox python3; do
  command -v "$c" >/dev/null || die "$c not found: run e2e/cluster/build.sh all (it installs the Debian packages)"
done
[ -x /usr/lib/cni/bridge ] || die "/usr/lib/cni/bridge missing: apt-get install containernetworking-plugins"

if [ -d "$STATE/run" ] && ls "$STATE"/run/*.pid >/dev/null 2>&1; then
  if proc_alive "$STATE" kube-apiserver && proc_alive "$STATE" kubelet \
    && kubectl_as "$KC" wait --for=condition=Ready "node/$NODE_NAME" --timeout=10s >/dev/null 2>&1; then
    log "cluster already up; KUBECONFIG=$KC"
    exit 0
  fi
  die "a previous cluster left state in $STATE: run e2e/cluster/down.sh first"
fi
# Traces of a run that was not taken down (its saved kernel settings would be
# overwritten by the changed ones, and the names below are fixed).
if [ -f "$STATE/host/sysctl.saved" ] || ip link show "$BRIDGE_IF" >/dev/null 2>&1 \
  || ip link show "$DUMMY_IF" >/dev/null 2>&1 || iptables -w -n -L WHARF-GUARD >/dev/null 2>&1; then
  die "leftovers of an earlier run (interfaces $DUMMY_IF/$BRIDGE_IF, chain WHARF-GUARD or $STATE/host/sysctl.saved): run e2e/cluster/down.sh first"
fi

START=$SECONDS
rm -rf "$STATE"
mkdir -p "$STATE"/{run,logs,host,capture,pki,cni/net.d,cni/ipam,containerd,kubelet,volumes,pod-logs}

# ------------------------------------------------------------------ host state
phase "record host state"
# Kernel settings the kubelet, kube-proxy and the CNI plugins change; down.sh
# writes these values back.
SYSCTLS="kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom
kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
net.ipv4.conf.all.forwarding net.ipv4.conf.all.route_localnet net.ipv6.conf.all.forwarding
net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
net.netfilter.nf_conntrack_tcp_timeout_close_wait"
for k in $SYSCTLS; do
  v=$(sysctl -n "$k" 2>/dev/null) && printf '%s=%s\n' "$k" "$v"
done > "$STATE/host/sysctl.saved"
# (The kubelet's device-plugin socket dir is fixed, whatever --root-dir says.)
for d in /run/containerd /var/lib/cni /var/log/containers /run/netns /var/lib/kubelet; do
  [ -e "$d" ] && echo "$d"
done > "$STATE/host/existing-dirs"
ls /run/netns 2>/dev/null > "$STATE/host/netns.before" || true
OUT_IF=${WHARF_OUTSIDE_IF:-$(ip -4 route show default | awk '{for (i=1;i<NF;i++) if ($i=="dev") {print $(i+1); exit}}')}
[ -n "$OUT_IF" ] || die "no IPv4 default route; set WHARF_OUTSIDE_IF"
echo "$OUT_IF" > "$STATE/host/outside-if"

# ------------------------------------------------------------------ capture
phase "capture on $OUT_IF"
# Everything that leaves through the outside interface from here on, whatever
# its address: a node pull that fell back to a public registry leaves with the
# host's own address, not the cluster's. Package downloads happen before this
# (build.sh, images). check-leaks.sh reads this file.
start_proc "$STATE" tcpdump tcpdump -i "$OUT_IF" -Q out -nn -U -Z root -w "$STATE/capture/outside.pcap"
wait_for "$STATE" "tcpdump listening on $OUT_IF" "$(remaining)" tcpdump grep -q "listening on" "$STATE/logs/tcpdump.log"

# ------------------------------------------------------------------ network
phase "network: $DUMMY_IF, $BRIDGE_IF, routes, guard rules"
# The node IP lives on an interface of its own. This kernel has no `dummy`
# link type (no modules, and it is not built in), so a veth pair with both
# ends on the host stands in for it where dummy is missing.
if ! ip link add "$DUMMY_IF" type dummy 2>/dev/null; then
  ip link add "$DUMMY_IF" type veth peer name "${DUMMY_IF}p"
  ip link set "${DUMMY_IF}p" up
fi
ip addr add "$NODE_IP/32" dev "$DUMMY_IF"
ip link set "$DUMMY_IF" up
ip link add "$BRIDGE_IF" type bridge
ip addr add "$POD_GW/24" dev "$BRIDGE_IF"
ip link set "$BRIDGE_IF" up
# Service IPs are routed onto the bridge: before kube-proxy has written its
# rules (or for an IP with no Service) a packet dies here, never on $OUT_IF.
ip route add "$SERVICE_CIDR" dev "$BRIDGE_IF" src "$POD_GW"
# Any other address of the range is unreachable here (the more specific
# routes above win), so nothing in 198.18.0.0/15 ever follows the default route.
ip route add unreachable "$WHARF_NET"
sysctl -qw net.ipv4.ip_forward=1
# Guard rules, first in OUTPUT and FORWARD: nothing to or from our range may
# leave through the outside interface, pods reach only cluster addresses, and
# nothing from outside is forwarded into the range (ip_forward is on now).
iptables -w -N WHARF-GUARD
iptables -w -A WHARF-GUARD -o "$OUT_IF" -d "$WHARF_NET" -j DROP
iptables -w -A WHARF-GUARD -o "$OUT_IF" -s "$WHARF_NET" -j DROP
iptables -w -N WHARF-FORWARD
iptables -w -A WHARF-FORWARD -s "$POD_CIDR" ! -d "$WHARF_NET" -j REJECT --reject-with icmp-net-unreachable
iptables -w -A WHARF-FORWARD -i "$OUT_IF" -d "$WHARF_NET" -j DROP
iptables -w -I OUTPUT 1 -j WHARF-GUARD
iptables -w -I FORWARD 1 -j WHARF-GUARD
iptables -w -I FORWARD 2 -j WHARF-FORWARD

# ------------------------------------------------------------------ certificates
phase "certificates"
apiserver_pki "$PKI" "IP:$NODE_IP,IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,DNS:$NODE_NAME,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
make_cert "$PKI" kube-scheduler "/CN=system:kube-scheduler" client
make_cert "$PKI" kube-proxy "/O=system:node-proxier/CN=system:kube-proxy" client
make_cert "$PKI" kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" client
make_cert "$PKI" kubelet-serving "/CN=$NODE_NAME" server "IP:$NODE_IP,DNS:$NODE_NAME"
make_cert "$PKI" coredns "/CN=wharf:coredns" client
for u in admin:wharf-admin kube-controller-manager:system:kube-controller-manager \
  kube-scheduler:system:kube-scheduler kube-proxy:system:kube-proxy \
  kubelet:system:node:$NODE_NAME coredns:wharf:coredns; do
  n=${u%%:*}
  f=$STATE/$n.kubeconfig
  [ "$n" = admin ] && f=$KC
  make_kubeconfig "$f" "$SERVER" "$PKI/ca.crt" "$PKI/$n.crt" "$PKI/$n.key" "${u#*:}"
done

# ------------------------------------------------------------------ control plane
phase "etcd"
start_etcd "$STATE" "$ETCD_PORT" "$((ETCD_PORT + 1))"

phase "kube-apiserver"
start_apiserver "$STATE" "$PKI" "$ETCD_PORT" "$NODE_IP" "$API_PORT" "$NODE_IP"
wait_apiserver "$STATE" "$KC" "$(remaining)"

phase "kube-controller-manager, kube-scheduler"
start_controller_manager "$STATE" "$PKI" "$STATE/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10257
cat > "$STATE/kube-scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $STATE/kube-scheduler.kubeconfig
leaderElection:
  leaderElect: false
EOF
start_proc "$STATE" kube-scheduler "$K8S_BIN/kube-scheduler" \
  --config "$STATE/kube-scheduler.yaml" \
  --authentication-kubeconfig "$STATE/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE/kube-scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10259 --v=1

phase "cluster objects (DNS service, RBAC, storage class)"
kubectl_as "$KC" apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: wharf:coredns
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: wharf:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: wharf:coredns
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: wharf:coredns
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
    kubernetes.io/name: CoreDNS
spec:
  clusterIP: $DNS_SVC_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
# CoreDNS runs on the node itself (a host process bound to the node IP), so
# the Service has no selector and this slice points at the node IP.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-wharf
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: wharf-e2e
addressType: IPv4
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
endpoints:
- addresses: [$NODE_IP]
  conditions: {ready: true}
  nodeName: $NODE_NAME
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: wharf-hostpath
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: wharf.dev/hostpath
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
EOF
# WaitForFirstConsumer, as kind's and k3s's default classes: the scheduler then
# waits for the claim to bind instead of parking the pod as unschedulable. With
# Immediate, a pod created with its claim sometimes stayed Pending for the
# scheduler's 5 minutes of unschedulable back-off after the claim had bound.

# ------------------------------------------------------------------ containerd
phase "containerd"
mkdir -p "$STATE/containerd/certs.d" "$STATE/containerd/opt"
cat > "$STATE/cni/net.d/10-wharf.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NET_NAME",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE_IF",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GW"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
cat > "$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
oom_score = 0

[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # This machine's root lacks CAP_SYS_RESOURCE (not in the bounding set), so
  # nobody may lower an oom_score_adj: runc failed to set the pause
  # container's -998 ("can't get final child's PID from pipe: EOF"). With
  # this, containerd clamps every container's oom_score_adj to its own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$STATE/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/containerd/certs.d"
EOF
start_proc "$STATE" containerd containerd --config "$STATE/containerd/config.toml" --log-level warn
ctr_() { ctr --address "$CTRD_SOCK" "$@"; }
wait_for "$STATE" "containerd answering on $CTRD_SOCK" "$(remaining)" containerd ctr_ version
cat > "$STATE/crictl.yaml" <<EOF
runtime-endpoint: unix://$CTRD_SOCK
image-endpoint: unix://$CTRD_SOCK
timeout: 30
EOF
crictl_() { "$CRICTL_BIN" --config "$STATE/crictl.yaml" "$@"; }

phase "pause image"
python3 "$HERE/mkimage.py" "$STATE/pause.tar" "$PAUSE_IMAGE" --entrypoint '["/pause"]' \
  --file "$PAUSE_BIN:/pause:0755" >/dev/null
ctr_ -n k8s.io images import --platform linux/amd64 "$STATE/pause.tar" >/dev/null
wait_for "$STATE" "CRI sees $PAUSE_IMAGE" "$(remaining)" containerd crictl_ inspecti "$PAUSE_IMAGE"

# ------------------------------------------------------------------ kubelet
phase "kubelet"
for h in /sys/fs/cgroup/*/; do
  mkdir -p "$h/wharf"
  if [ -f "$h/cpuset.cpus" ]; then
    cat "$h/cpuset.cpus" > "$h/wharf/cpuset.cpus"
    cat "$h/cpuset.mems" > "$h/wharf/cpuset.mems"
  fi
done
echo "nameserver $NODE_IP" > "$STATE/kubelet/resolv.conf"
mkdir -p "$STATE/kubelet/manifests" "$STATE/kubelet/volume-plugins"
cat > "$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
cgroupDriver: cgroupfs
cgroupRoot: /wharf
failSwapOn: false
containerRuntimeEndpoint: unix://$CTRD_SOCK
staticPodPath: $STATE/kubelet/manifests
volumePluginDir: $STATE/kubelet/volume-plugins
podLogsDir: $STATE/pod-logs
resolvConf: $STATE/kubelet/resolv.conf
clusterDNS: [$DNS_SVC_IP]
clusterDomain: cluster.local
hairpinMode: hairpin-veth
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
evictionPressureTransitionPeriod: 10s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
maxPods: 110
EOF
start_proc "$STATE" kubelet "$K8S_BIN/kubelet" \
  --config "$STATE/kubelet/config.yaml" \
  --kubeconfig "$STATE/kubelet.kubeconfig" \
  --root-dir "$STATE/kubelet/root" \
  --cert-dir "$STATE/kubelet/pki" \
  --hostname-override "$NODE_NAME" \
  --node-ip "$NODE_IP" \
  --v=1
wait_for "$STATE" "kubelet healthz" "$(remaining)" kubelet,containerd curl -sf http://127.0.0.1:10248/healthz
kubectl_as "$KC" wait --for=create "node/$NODE_NAME" --timeout="$(remaining)s" >/dev/null
kubectl_as "$KC" wait --for=condition=Ready "node/$NODE_NAME" --timeout="$(remaining)s" >/dev/null

# ------------------------------------------------------------------ kube-proxy
phase "kube-proxy"
cat > "$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $STATE/kube-proxy.kubeconfig
mode: iptables
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [$NODE_IP/32]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  minSyncPeriod: 1s
  syncPeriod: 30s
EOF
start_proc "$STATE" kube-proxy "$K8S_BIN/kube-proxy" --config "$STATE/kube-proxy.yaml" --v=1
wait_for "$STATE" "kube-proxy healthz" "$(remaining)" kube-proxy curl -sf http://127.0.0.1:10256/healthz
wait_for "$STATE" "kube-proxy rules for the kubernetes and kube-dns Services" "$(remaining)" kube-proxy \
  sh -c "iptables-save -t nat | grep -q 'default/kubernetes:https cluster IP' && iptables-save -t nat | grep -q 'kube-system/kube-dns:dns cluster IP'"

# ------------------------------------------------------------------ CoreDNS
phase "CoreDNS"
cat > "$STATE/Corefile" <<EOF
# Cluster names only: no forward plugin, nothing is ever sent to an outside
# resolver. Other names get SERVFAIL/NXDOMAIN.
.:53 {
    bind $NODE_IP
    errors
    ready 127.0.0.1:18181
    health 127.0.0.1:18080
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $STATE/coredns.kubeconfig
        pods insecure
        ttl 5
    }
    cache 5
}
EOF
start_proc "$STATE" coredns "$COREDNS_BIN" -conf "$STATE/Corefile"
wait_for "$STATE" "CoreDNS ready (kubernetes plugin synced)" "$(remaining)" coredns curl -sf http://127.0.0.1:18181/ready
wait_for "$STATE" "kubernetes.default.svc.cluster.local resolves via $DNS_SVC_IP" "$(remaining)" coredns,kube-proxy \
  sh -c "busybox nslookup kubernetes.default.svc.cluster.local $DNS_SVC_IP | grep -q '$KUBERNETES_SVC_IP'"

# ------------------------------------------------------------------ storage
phase "hostPath provisioner"
start_proc "$STATE" provisioner bash "$HERE/provisioner.sh" "$KC" "$STATE/volumes"

# ------------------------------------------------------------------ ready
phase "default service account"
wait_for "$STATE" "serviceaccount default/default" "$(remaining)" kube-controller-manager \
  kubectl_as "$KC" -n default get serviceaccount default

cat > "$STATE/env" <<EOF
export KUBECONFIG=$KC
export KUBECACHEDIR=$KUBECACHEDIR
export CONTAINERD_ADDRESS=$CTRD_SOCK
export CONTAINERD_NAMESPACE=k8s.io
export CRI_CONFIG_FILE=$STATE/crictl.yaml
export PATH=$K8S_BIN:$(dirname "$CRICTL_BIN"):\$PATH
EOF
trap - ERR
phases_report
log "cluster up in $((SECONDS - START))s: $("$KUBECTL" version --kubeconfig "$KC" 2>/dev/null | tail -1)"
log "  . $STATE/env   # KUBECONFIG=$KC, kubectl, crictl, ctr"
