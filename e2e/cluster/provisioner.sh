#!/usr/bin/env bash
# A minimal hostPath provisioner for the e2e cluster (started by up.sh as a
# host process; stopped by down.sh by its PID).
#
#   provisioner.sh KUBECONFIG VOLUME_DIR
#
# StorageClass `wharf-hostpath` (the default class, provisioner
# wharf.dev/hostpath, volumeBindingMode Immediate) is created by up.sh. This
# loop:
#   - for every Pending PVC of that class without a volume, creates a PV
#     `pvc-<uid>` pre-bound to it (claimRef), hostPath VOLUME_DIR/pvc-<uid>,
#     with the requested size and access modes; the PV controller binds them;
#   - for every Released PV it made (reclaim policy Delete), deletes the
#     directory and the PV.
# It reconciles on every PVC change it sees through a watch, and at least
# every 5 s (the watch ends or is idle), so a missed event only delays it.
set -uo pipefail
KC=$1
VOLDIR=$2
CLASS=wharf-hostpath
PROVISIONER=wharf.dev/hostpath
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
E2E_SCRIPT=provisioner
k() { "$KUBECTL" --kubeconfig "$KC" --request-timeout=20s "$@"; }

provision() {
  local ns=$1 name=$2 uid=$3 size=$4 modes=$5 vmode=$6
  local pv=pvc-$uid
  [ "$vmode" = Block ] && { log "$ns/$name: volumeMode Block is not supported"; return 0; }
  local modes_yaml
  modes_yaml=$(echo "$modes" | tr ',' '\n' | sed '/^$/d' | sed 's/^/  - /')
  [ -n "$modes_yaml" ] || modes_yaml="  - ReadWriteOnce"
  mkdir -p "$VOLDIR/$pv"
  chmod 0777 "$VOLDIR/$pv"
  if k create -f - >/dev/null 2>"$VOLDIR/.err" <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $pv
  labels:
    wharf.dev/hostpath: "true"
  annotations:
    pv.kubernetes.io/provisioned-by: $PROVISIONER
spec:
  capacity:
    storage: $size
  accessModes:
$modes_yaml
  persistentVolumeReclaimPolicy: Delete
  storageClassName: $CLASS
  volumeMode: Filesystem
  claimRef:
    apiVersion: v1
    kind: PersistentVolumeClaim
    namespace: $ns
    name: $name
    uid: $uid
  hostPath:
    path: $VOLDIR/$pv
    type: Directory
EOF
  then
    log "provisioned $pv ($size) for $ns/$name"
  elif ! grep -q AlreadyExists "$VOLDIR/.err"; then
    log "creating $pv for $ns/$name failed: $(cat "$VOLDIR/.err")"
  fi
}

reconcile() {
  # namespace name uid size accessModes volumeMode, for Pending claims of our class.
  k get pvc -A -o go-template='{{range .items}}{{if and (eq .status.phase "Pending") (eq (printf "%v" .spec.storageClassName) "'"$CLASS"'") (not .spec.volumeName)}}{{.metadata.namespace}} {{.metadata.name}} {{.metadata.uid}} {{index .spec.resources.requests "storage"}} {{range .spec.accessModes}}{{.}},{{end}} {{printf "%v" .spec.volumeMode}}{{"\n"}}{{end}}{{end}}' \
    2>/dev/null | while read -r ns name uid size modes vmode; do
      [ -n "$uid" ] && provision "$ns" "$name" "$uid" "$size" "$modes" "$vmode"
    done
  k get pv -l wharf.dev/hostpath=true -o go-template='{{range .items}}{{if eq .status.phase "Released" "Failed"}}{{.metadata.name}} {{.spec.hostPath.path}}{{"\n"}}{{end}}{{end}}' \
    2>/dev/null | while read -r pv path; do
      case $path in
      "$VOLDIR"/pvc-*) rm -rf -- "$path" ;;
      *) log "$pv: unexpected path $path, not removed" ;;
      esac
      k delete pv "$pv" --wait=false >/dev/null 2>&1 && log "deleted released $pv"
    done
}

log "watching PVCs of class $CLASS (volumes under $VOLDIR)"
mkdir -p "$VOLDIR"
while :; do
  t0=$SECONDS
  reconcile
  # Wake up on the next PVC event, or after 5 s at the latest.
  coproc WATCH { exec "$KUBECTL" --kubeconfig "$KC" get pvc -A --watch-only -o name 2>/dev/null; }
  read -r -t 5 _ <&"${WATCH[0]}" || true
  kill "$WATCH_PID" 2>/dev/null
  wait "$WATCH_PID" 2>/dev/null
  # The watch ended at once (API server gone?): do not spin.
  [ $((SECONDS - t0)) -ge 1 ] || sleep 1
done
