# shellcheck shell=bash
# Shared helpers for the e2e cluster scripts (sourced, never run).
#
# Everything a run creates lives under $WHARF_E2E_DIR (default /tmp/wharf-e2e):
#   $WHARF_E2E_DIR/cluster/    the full single-node cluster (up.sh / down.sh)
#   $WHARF_E2E_DIR/apiserver/  etcd + kube-apiserver only (apiserver.sh)
# Processes are started with their PID (and start time, against PID reuse)
# recorded in <state>/run/<name>.pid and are stopped by that PID only.

# shellcheck disable=SC2034  # variables are used by the scripts that source this
E2E_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$E2E_LIB_DIR/versions.sh"

WHARF_CACHE=${WHARF_CACHE:-$HOME/.cache/wharf}
WHARF_E2E_DIR=${WHARF_E2E_DIR:-/tmp/wharf-e2e}
# kubectl's discovery/HTTP cache would otherwise go to ~/.kube/cache.
export KUBECACHEDIR=${KUBECACHEDIR:-$WHARF_E2E_DIR/kube-cache}
export PATH=/usr/local/go/bin:$PATH:/usr/sbin:/sbin

# Pinned binaries, straight from the cache (never whatever is first on PATH).
K8S_BIN=$WHARF_CACHE/k8s-$K8S_VERSION/bin
ETCD_BIN=$WHARF_CACHE/etcd-$ETCD_VERSION/bin/etcd
COREDNS_BIN=$WHARF_CACHE/tools/coredns-$COREDNS_VERSION/coredns
CRICTL_BIN=$WHARF_CACHE/tools/crictl-$CRICTL_VERSION/crictl
PAUSE_BIN=$WHARF_CACHE/pause/pause
KUBECTL=$K8S_BIN/kubectl

# Addresses: everything inside 198.18.0.0/15 (RFC 2544 benchmarking range),
# never 10/8, 172.16/12 or 192.168/16.
WHARF_NET=198.18.0.0/15
NODE_NAME=wharf-node
NODE_IP=198.18.0.10         # on wharf0 (dummy, or veth pair wharf0/wharf0p)
POD_CIDR=198.18.1.0/24      # the CNI bridge wharfbr0 is 198.18.1.1
POD_GW=198.18.1.1
SERVICE_CIDR=198.19.0.0/16  # routed onto wharfbr0, so it never leaves the node
KUBERNETES_SVC_IP=198.19.0.1
DNS_SVC_IP=198.19.0.10
DUMMY_IF=wharf0
BRIDGE_IF=wharfbr0
CNI_NET_NAME=wharf

_ts() { date +%H:%M:%S; }
log() { printf '[%s %s] %s\n' "${E2E_SCRIPT:-e2e}" "$(_ts)" "$*" >&2; }
die() { printf '[%s %s] ERROR: %s\n' "${E2E_SCRIPT:-e2e}" "$(_ts)" "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (it creates interfaces, mounts and iptables rules)"; }

need_bins() {
  local b
  for b in "$@"; do
    [ -x "$b" ] || die "missing $b: run e2e/cluster/build.sh first"
  done
}

# ------------------------------------------------------------------ phases
# phase NAME: starts timing a named phase; phases_report prints them all.
PHASES=()
_PHASE_NAME=
_PHASE_START=
phase() {
  phase_end
  _PHASE_NAME=$1
  _PHASE_START=$(date +%s.%N)
  log "-- $1"
}
phase_end() {
  if [ -n "$_PHASE_NAME" ]; then
    PHASES+=("$(awk -v a="$_PHASE_START" -v b="$(date +%s.%N)" -v n="$_PHASE_NAME" 'BEGIN { printf "%7.1fs  %s", b - a, n }')")
    _PHASE_NAME=
  fi
}
phases_report() {
  phase_end
  local p
  log "where the time went:"
  for p in "${PHASES[@]}"; do printf '    %s\n' "$p" >&2; done
}

# ------------------------------------------------------------------ processes
# start_proc STATE NAME CMD...: runs CMD in its own session, logs to
# STATE/logs/NAME.log, records "PID STARTTIME" in STATE/run/NAME.pid.
start_proc() {
  local state=$1 name=$2; shift 2
  mkdir -p "$state/run" "$state/logs"
  local pidfile=$state/run/$name.pid
  if proc_alive "$state" "$name"; then
    die "$name is already running (pid $(cut -d' ' -f1 "$pidfile")); stop it first"
  fi
  # The child writes its own PID before exec, so the recorded PID is exactly
  # the process that runs CMD (no wrapper in between).
  setsid bash -c 'echo "$$" > "$0.tmp"; exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$state/logs/$name.log" 2>&1 &
  local i pid=
  for i in $(seq 1 100); do
    [ -s "$pidfile.tmp" ] && { pid=$(cat "$pidfile.tmp"); break; }
    sleep 0.05
  done
  [ -n "$pid" ] || die "$name did not start"
  echo "$pid $(proc_starttime "$pid")" > "$pidfile"
  rm -f "$pidfile.tmp"
  log "started $name (pid $pid, log $state/logs/$name.log)"
}

# Fields of /proc/PID/stat after the command name (which may hold spaces):
# state is the 1st, start time the 20th.
_proc_stat() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null || true; }
proc_starttime() { _proc_stat "$1" | awk '{print $20}'; }

# proc_alive STATE NAME: true if the recorded process still runs (same PID
# and same start time, so a reused PID is not mistaken for ours; a zombie
# waiting to be reaped by init counts as gone).
proc_alive() {
  local pidfile=$1/run/$2.pid pid st stat
  [ -f "$pidfile" ] || return 1
  read -r pid st < "$pidfile" || return 1
  [ -n "$pid" ] || return 1
  stat=$(_proc_stat "$pid")
  [ -n "$stat" ] || return 1
  set -- $stat
  [ "$1" != Z ] && [ "$1" != X ] && [ "${20}" = "$st" ]
}

# stop_procs STATE GRACE NAME...: stop_proc for several processes at once
# (SIGTERM to all, then wait for all).
stop_procs() {
  local state=$1 grace=$2 n pid st; shift 2
  for n in "$@"; do
    if proc_alive "$state" "$n"; then
      read -r pid st < "$state/run/$n.pid"
      log "stopping $n (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for n in "$@"; do stop_proc "$state" "$n" "$grace"; done
}

# stop_proc STATE NAME [GRACE_SECONDS]: SIGTERM, then SIGKILL after the grace.
stop_proc() {
  local state=$1 name=$2 grace=${3:-15}
  local pidfile=$state/run/$name.pid pid st
  [ -f "$pidfile" ] || return 0
  read -r pid st < "$pidfile" || true
  if proc_alive "$state" "$name"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while proc_alive "$state" "$name" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if proc_alive "$state" "$name"; then
      log "$name did not stop in ${grace}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while proc_alive "$state" "$name" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    fi
  fi
  rm -f "$pidfile"
}

# wait_for STATE DESC TIMEOUT PROCS CMD...: polls CMD (bounded, with a
# deadline) until it succeeds. PROCS is a comma-separated list of process
# names that must stay alive meanwhile (fail fast with their log if one dies).
wait_for() {
  local state=$1 desc=$2 timeout=$3 procs=$4; shift 4
  local deadline=$((SECONDS + timeout)) p delay=0.1
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    for p in ${procs//,/ }; do
      if ! proc_alive "$state" "$p"; then
        tail -n 40 "$state/logs/$p.log" >&2 || true
        die "$p exited while waiting for: $desc (log: $state/logs/$p.log)"
      fi
    done
    if [ $SECONDS -ge $deadline ]; then
      for p in ${procs//,/ }; do
        log "last lines of $p:"; tail -n 20 "$state/logs/$p.log" >&2 || true
      done
      die "timed out after ${timeout}s waiting for: $desc"
    fi
    sleep "$delay"
    delay=$(awk -v d="$delay" 'BEGIN { d *= 2; if (d > 1) d = 1; print d }')
  done
}

# ------------------------------------------------------------------ certificates
# make_ca DIR
make_ca() {
  local d=$1
  [ -f "$d/ca.crt" ] && return 0
  mkdir -p "$d"
  # Keys are PKCS#8 ("BEGIN PRIVATE KEY"): every client library reads that
  # (some Rust TLS stacks do not read SEC1 "BEGIN EC PRIVATE KEY").
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$d/ca.key" -sha256 -days 30 -subj "/CN=wharf-e2e-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$d/ca.crt" 2>/dev/null
  # service-account token signing key pair
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/sa.key" 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

# make_cert DIR NAME SUBJECT USAGE [SAN]: USAGE is client, server or both.
make_cert() {
  local d=$1 name=$2 subj=$3 usage=$4 san=${5:-}
  [ -f "$d/$name.crt" ] && return 0
  local eku=clientAuth
  case $usage in server) eku=serverAuth ;; both) eku=serverAuth,clientAuth ;; esac
  local ext=$d/$name.ext
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } > "$ext"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$name.key" 2>/dev/null
  openssl req -new -key "$d/$name.key" -subj "$subj" -out "$d/$name.csr" 2>/dev/null
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$ext" -out "$d/$name.crt" 2>/dev/null
  rm -f "$d/$name.csr" "$ext"
}

# make_kubeconfig FILE SERVER CA CERT KEY USER: self-contained (data inlined).
make_kubeconfig() {
  local f=$1 server=$2 ca=$3 cert=$4 key=$5 user=$6
  cat > "$f" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: wharf-e2e
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$ca")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 < "$cert")
    client-key-data: $(base64 -w0 < "$key")
contexts:
- name: wharf-e2e
  context:
    cluster: wharf-e2e
    user: $user
current-context: wharf-e2e
EOF
  chmod 600 "$f"
}

# ------------------------------------------------------------------ etcd + apiserver
# start_etcd STATE CLIENT_PORT PEER_PORT
start_etcd() {
  local state=$1 cport=$2 pport=$3
  mkdir -p "$state/etcd"
  chmod 700 "$state/etcd"
  start_proc "$state" etcd "$ETCD_BIN" \
    --name wharf-e2e \
    --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$cport" \
    --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "wharf-e2e=http://127.0.0.1:$pport" \
    --initial-cluster-state new \
    --unsafe-no-fsync \
    --quota-backend-bytes 2147483648 \
    --log-level warn
  wait_for "$state" "etcd healthy on 127.0.0.1:$cport" 60 etcd \
    sh -c "curl -sf http://127.0.0.1:$cport/health | grep -q '\"health\":\"true\"'"
}

# start_apiserver STATE PKI ETCD_PORT BIND_ADDR PORT ADVERTISE_ADDR [EXTRA_FLAGS...]
start_apiserver() {
  local state=$1 pki=$2 eport=$3 bind=$4 port=$5 adv=$6; shift 6
  mkdir -p "$state/apiserver"
  start_proc "$state" kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$eport" \
    --bind-address "$bind" \
    --secure-port "$port" \
    --advertise-address "$adv" \
    --cert-dir "$state/apiserver" \
    --tls-cert-file "$pki/apiserver.crt" \
    --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --profiling=false \
    --v=1 \
    "$@"
}

# apiserver_pki DIR SAN: the CA and every certificate the control plane needs.
apiserver_pki() {
  local d=$1 san=$2
  make_ca "$d"
  make_cert "$d" apiserver "/CN=kube-apiserver" server "$san"
  make_cert "$d" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client
  make_cert "$d" admin "/O=system:masters/CN=wharf-admin" client
  make_cert "$d" kube-controller-manager "/CN=system:kube-controller-manager" client
}

kubectl_as() { local kc=$1; shift; "$KUBECTL" --kubeconfig "$kc" "$@"; }

# wait_apiserver STATE KUBECONFIG TIMEOUT
wait_apiserver() {
  local state=$1 kc=$2 timeout=$3
  wait_for "$state" "kube-apiserver /readyz" "$timeout" etcd,kube-apiserver \
    kubectl_as "$kc" get --raw /readyz
  # RBAC bootstrap roles are in place once the default ClusterRoles exist.
  wait_for "$state" "RBAC bootstrap (clusterrole cluster-admin)" "$timeout" kube-apiserver \
    kubectl_as "$kc" get clusterrole cluster-admin
}

# start_controller_manager STATE PKI KUBECONFIG [EXTRA_FLAGS...]
start_controller_manager() {
  local state=$1 pki=$2 kc=$3; shift 3
  start_proc "$state" kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$kc" \
    --authentication-kubeconfig "$kc" \
    --authorization-kubeconfig "$kc" \
    --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" \
    --cluster-signing-key-file "$pki/ca.key" \
    --use-service-account-credentials=true \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --allocate-node-cidrs=false \
    --leader-elect=false \
    --cluster-name wharf-e2e \
    --flex-volume-plugin-dir "$state/flexvolume" \
    --profiling=false \
    --v=1 \
    "$@"
}

# ------------------------------------------------------------------ mounts
# unmount_under DIR: every mount point at or below DIR, deepest first.
unmount_under() {
  local dir=$1 m i
  [ -n "$dir" ] && [ "$dir" != / ] || return 0
  for i in 1 2 3; do
    local mounts
    mounts=$(awk -v d="$dir" '{ m=$5; gsub(/\\040/, " ", m); if (m == d || index(m, d "/") == 1) print m }' /proc/self/mountinfo | sort -r)
    [ -n "$mounts" ] || return 0
    while IFS= read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
    done <<< "$mounts"
  done
}
