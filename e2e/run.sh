#!/usr/bin/env bash
# The whole e2e as `make test` runs it: build the pinned cluster binaries
# (cached), bring the cluster up, import the images, run the scenarios, check
# that no packet left the machine, and tear everything down whatever happened.
# Prints where the time went.
set -Eeuo pipefail
E2E_SCRIPT=e2e
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=cluster/lib.sh
. "$HERE/cluster/lib.sh"

need_root
START=$SECONDS
down() {
  local rc=$?
  phase "down"
  bash "$HERE/cluster/down.sh" --all >&2 || rc=1
  phases_report
  log "e2e $([ $rc = 0 ] && echo passed || echo FAILED) in $((SECONDS - START))s"
  exit $rc
}

phase "build cluster binaries (cached)"
bash "$HERE/cluster/build.sh" all
# Everything that may download (crates, Go modules) happens before the
# capture starts: the leak check fails on any packet leaving the machine.
phase "build images (make images)"
(cd "$HERE/.." && bash scripts/images.sh) >&2
# A cluster left over from an interrupted run would make up.sh fail.
bash "$HERE/cluster/down.sh" --all >/dev/null 2>&1 || true
trap down EXIT
phase "up"
bash "$HERE/cluster/up.sh"
phase "images"
bash "$HERE/images.sh"
phase "scenarios"
bash "$HERE/scenarios.sh"
phase "no packet left the machine"
bash "$HERE/cluster/check-leaks.sh"
