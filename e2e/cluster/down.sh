#!/usr/bin/env bash
# Undoes everything up.sh did. Idempotent, safe when nothing is up, and works
# after a half-finished up.
#
#   e2e/cluster/down.sh           stop the cluster, remove what it made on the node
#   e2e/cluster/down.sh --all     also stop apiserver.sh's etcd + kube-apiserver
#   e2e/cluster/down.sh --purge   also delete $WHARF_E2E_DIR/cluster (logs and capture
#                                 are kept otherwise, for check-leaks.sh and CI artifacts)
#
# In order: the provisioner, CoreDNS, kube-proxy, kubelet and the control
# plane's other processes (by recorded PID); every pod sandbox through the
# CRI (so the CNI plugins release their addresses, veths, netns and portmap
# rules); containerd and any shim of *this* containerd; mounts under the state
# directory; netns that appeared during the run; the interfaces wharf0 and
# wharfbr0 (routes go with them); iptables/ip6tables chains KUBE-*, CNI-*,
# WHARF-* and the rules jumping to them; the kubelet's cgroups (/wharf); the
# /var/log/containers links into the state dir; the kernel settings recorded
# by up.sh; finally tcpdump, and check-leaks.sh is run on the capture.
set -euo pipefail
E2E_SCRIPT=down
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

ALL=0
PURGE=0
for a in "$@"; do
  case $a in
  --all) ALL=1 ;;
  --purge) PURGE=1 ;;
  -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
  *) die "unknown option $a (--all, --purge)" ;;
  esac
done
need_root

STATE=$WHARF_E2E_DIR/cluster
CTRD_SOCK=$STATE/containerd/containerd.sock
START=$SECONDS
warn() { log "warning: $*"; }

if [ "$ALL" = 1 ]; then
  bash "$HERE/apiserver.sh" stop || warn "apiserver.sh stop failed"
fi

if [ ! -d "$STATE" ]; then
  log "nothing to do: $STATE does not exist"
fi

# ------------------------------------------------------------------ node processes
stop_procs "$STATE" 20 provisioner coredns kube-proxy kubelet kube-scheduler kube-controller-manager

# ------------------------------------------------------------------ pods
if proc_alive "$STATE" containerd && [ -x "$CRICTL_BIN" ] && [ -S "$CTRD_SOCK" ]; then
  log "removing pod sandboxes through the CRI"
  crictl_() { timeout 120 "$CRICTL_BIN" --runtime-endpoint "unix://$CTRD_SOCK" --timeout 60s "$@"; }
  crictl_ rmp --all --force >/dev/null 2>&1 || warn "crictl rmp failed"
  left=$(crictl_ pods -q 2>/dev/null | wc -l || true)
  [ "${left:-0}" = 0 ] || warn "$left pod sandboxes left after crictl rmp"
fi
stop_proc "$STATE" containerd 20
# Shims of this containerd outlive it; find them by the socket in their
# command line (the path is unique to this state directory) and stop them by PID.
if [ -d "$STATE/containerd" ]; then
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    cmd=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null || true)
    case $cmd in
    *containerd-shim*"$CTRD_SOCK"*)
      log "killing leftover shim $pid"
      kill -KILL "$pid" 2>/dev/null || true ;;
    esac
  done
fi

# Container processes outlive a killed shim. Whatever still runs in the
# kubelet's cgroups (all under /wharf, ours only) is a pod process: kill it.
pod_pids() { find /sys/fs/cgroup/*/wharf -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u; }
left=$(pod_pids || true)
if [ -n "$left" ]; then
  log "killing pod processes left in /sys/fs/cgroup/*/wharf: $(echo $left)"
  kill -KILL $left 2>/dev/null || true
  deadline=$((SECONDS + 10))
  while [ -n "$(pod_pids || true)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
fi

# Files containerd and the CNI plugins keep at fixed paths, named after our
# containers: shim sockets /run/containerd/s/<sha256(address/ns/id)> and CNI
# result caches /var/lib/cni/results/<net>-<id>-<if>.
ids=$( { ls -d "$STATE"/containerd/state/io.containerd.runtime.v2.task/*/* \
         "$STATE"/containerd/root/io.containerd.grpc.v1.cri/sandboxes/* 2>/dev/null || true; } )
for d in $ids; do
  id=${d##*/}
  ns=${d%/*}; ns=${ns##*/}
  if [ "$ns" != sandboxes ]; then
    h=$(printf '%s' "$CTRD_SOCK/$ns/$id" | sha256sum | cut -d' ' -f1)
    rm -f "/run/containerd/s/$h"
  fi
  rm -f /var/lib/cni/results/*-"$id"-* 2>/dev/null || true
done

# ------------------------------------------------------------------ mounts and netns
unmount_under "$STATE"
if [ -f "$STATE/host/netns.before" ] && [ -d /run/netns ]; then
  for ns in /run/netns/cni-*; do
    [ -e "$ns" ] || continue
    n=${ns##*/}
    if ! grep -qx "$n" "$STATE/host/netns.before"; then
      log "removing netns $n"
      umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
      rm -f "$ns" || warn "cannot remove $ns"
    fi
  done
fi

# ------------------------------------------------------------------ control plane
# kube-apiserver 1.34 sometimes hangs in graceful termination after its
# clients are gone; its state is thrown away, so it gets 10 s, then SIGKILL.
stop_proc "$STATE" kube-apiserver 10
stop_proc "$STATE" etcd 20

# ------------------------------------------------------------------ network
if [ -d "/sys/class/net/$BRIDGE_IF" ]; then
  for port in /sys/class/net/"$BRIDGE_IF"/brif/*; do
    [ -e "$port" ] || continue
    ip link del "${port##*/}" 2>/dev/null || true
  done
fi
for l in "$BRIDGE_IF" "$DUMMY_IF" "${DUMMY_IF}p"; do
  if ip link show "$l" >/dev/null 2>&1; then
    log "deleting interface $l"
    ip link del "$l"
  fi
done
ip route del "$SERVICE_CIDR" 2>/dev/null || true
ip route del unreachable "$WHARF_NET" 2>/dev/null || true

# iptables: drop every rule that jumps to, or lives in, a chain of ours,
# kube-proxy's or the CNI plugins', then the chains; both families, all tables.
clean_iptables() {
  local ipt=$1 pfx=$2 save=$1-save t chains rules
  command -v "$save" >/dev/null || return 0
  for t in filter nat mangle raw; do
    $save -t "$t" >/dev/null 2>&1 || continue
    rules=$($save -t "$t" | grep -E "^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-[jg] ($pfx)" || true)
    if [ -n "$rules" ]; then
      while IFS= read -r r; do
        eval "$ipt -w -t $t -D ${r#-A }" 2>/dev/null || warn "$ipt -t $t: cannot delete: $r"
      done <<< "$rules"
    fi
    chains=$($save -t "$t" | grep -E "^:($pfx)" | cut -d' ' -f1 | cut -c2- || true)
    if [ -n "$chains" ]; then
      log "$ipt -t $t: removing chains $(echo $chains | tr '\n' ' ')"
      for c in $chains; do $ipt -w -t "$t" -F "$c" 2>/dev/null || true; done
      for c in $chains; do $ipt -w -t "$t" -X "$c" 2>/dev/null || warn "$ipt -t $t -X $c failed"; done
    fi
  done
}
# WHARF-* chains are always ours. KUBE-* (kube-proxy, kubelet) and CNI-*
# (portmap) only when up.sh ran here (it records $STATE/host): with no trace
# of a run, chains of those names would be somebody else's.
pfx='WHARF-'
[ -d "$STATE/host" ] && pfx='KUBE-|CNI-|WHARF-'
clean_iptables iptables "$pfx"
clean_iptables ip6tables "$pfx"
# kube-proxy (1.31+) may also leave an nftables table behind.
if command -v nft >/dev/null; then
  for fam in ip ip6 inet; do nft delete table "$fam" kube-proxy 2>/dev/null || true; done
fi
# Conntrack entries of our ranges (no effect on anything else).
if command -v conntrack >/dev/null; then
  conntrack -D -s "$WHARF_NET" >/dev/null 2>&1 || true
  conntrack -D -d "$WHARF_NET" >/dev/null 2>&1 || true
fi

# ------------------------------------------------------------------ cgroups, logs, dirs
for h in /sys/fs/cgroup/*/wharf; do
  [ -d "$h" ] || continue
  find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  [ ! -d "$h" ] || warn "cannot remove every cgroup under $h (processes left?)"
done
if [ -d /var/log/containers ]; then
  for l in /var/log/containers/*; do
    [ -L "$l" ] || continue
    case $(readlink "$l") in "$STATE"/*) rm -f "$l" ;; esac
  done
fi
if [ -f "$STATE/host/existing-dirs" ]; then
  # Directories the node's components create at fixed paths: remove them if
  # they did not exist before up and hold nothing of anybody else's.
  [ -S /var/lib/kubelet/device-plugins/kubelet.sock ] && rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  for d in /var/log/containers /var/lib/cni /run/containerd /run/netns /var/lib/kubelet; do
    grep -qx "$d" "$STATE/host/existing-dirs" && continue
    [ -d "$d" ] || continue
    if [ -z "$(find "$d" -not -type d | head -1)" ]; then
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    else
      warn "$d was created during the run and is not empty; left in place"
    fi
  done
fi

# ------------------------------------------------------------------ kernel settings
if [ -f "$STATE/host/sysctl.saved" ]; then
  while IFS='=' read -r k v; do
    [ -n "$k" ] || continue
    cur=$(sysctl -n "$k" 2>/dev/null || true)
    if [ "$cur" != "$v" ]; then
      log "restoring $k: $cur -> $v"
      sysctl -qw "$k=$v" || warn "cannot restore $k=$v"
    fi
  done < "$STATE/host/sysctl.saved"
  mv "$STATE/host/sysctl.saved" "$STATE/host/sysctl.restored"
fi

# ------------------------------------------------------------------ nodeAccess
# The node agents undo their /etc/hosts lines on SIGTERM; a cluster torn down
# under them cannot deliver it, so remove what is left of their marked lines.
# In place (the file may be a bind mount that a rename cannot replace).
if grep -q '# wharf-node-access ' /etc/hosts 2>/dev/null; then
  kept=$(grep -v '# wharf-node-access ' /etc/hosts || true)
  printf '%s\n' "$kept" > /etc/hosts
  log "removed leftover nodeAccess lines from /etc/hosts"
fi

# ------------------------------------------------------------------ capture
stop_proc "$STATE" tcpdump 10
if [ -f "$STATE/capture/outside.pcap" ]; then
  bash "$HERE/check-leaks.sh" || warn "check-leaks.sh found packets that left the node (see above)"
fi

# ------------------------------------------------------------------ state
if [ -d "$STATE" ]; then
  unmount_under "$STATE"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$STATE"
  else
    find "$STATE" -mindepth 1 -maxdepth 1 ! -name logs ! -name capture ! -name host -exec rm -rf {} +
    log "kept $STATE/logs and $STATE/capture (down.sh --purge removes them)"
  fi
fi
log "down in $((SECONDS - START))s"
