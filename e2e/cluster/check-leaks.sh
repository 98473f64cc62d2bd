#!/usr/bin/env bash
# Fails if any packet left the machine through the outside interface during
# the run (up.sh captures every outgoing packet on it with tcpdump into
# $WHARF_E2E_DIR/cluster/capture/outside.pcap, from before the cluster starts).
# Link-layer neighbour discovery (ARP, IPv6 ND and MLD) carries no payload and
# is not counted; every IP packet is, and one to or from the cluster's range
# 198.18.0.0/15 is called out as such. An unreadable capture fails the check.
# Works while the cluster is up (the capture is packet-buffered) and after
# down.sh (which keeps the capture).
#
#   e2e/cluster/check-leaks.sh [PCAP]
#
# Also reports the WHARF-GUARD counters: packets that tried to leave and were
# dropped by up.sh's guard rules. Those did not leave, but they mean something
# is mis-routed, so they fail the check too unless WHARF_LEAKS_ALLOW_BLOCKED=1.
set -euo pipefail
E2E_SCRIPT=check-leaks
# shellcheck source=lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

STATE=$WHARF_E2E_DIR/cluster
PCAP=${1:-$STATE/capture/outside.pcap}
[ -f "$PCAP" ] || die "no capture at $PCAP (is the cluster up? up.sh starts the capture)"
command -v tcpdump >/dev/null || die "tcpdump not found"
rc=0
if [ ! -s "$PCAP" ]; then
  # tcpdump writes the file header at once, so an empty file means it never
  # started capturing.
  die "capture file $PCAP is empty: the capture did not run"
fi
err=$(mktemp)
trap 'rm -f "$err"' EXIT
if ! out=$(tcpdump -nn -r "$PCAP" 2>"$err"); then
  die "cannot read the capture $PCAP: $(cat "$err")"
fi
total=$(printf '%s' "$out" | grep -c . || true)
left=$(printf '%s\n' "$out" | grep -v -e ' ARP, ' -e 'neighbor solicitation' -e 'neighbor advertisement' \
  -e 'router solicitation' -e 'multicast listener' | grep . || true)
n=$(printf '%s' "$left" | grep -c . || true)
cluster=$(printf '%s\n' "$left" | grep -c -E '(^| )198\.1[89]\.' || true)
iface=$(cat "$STATE/host/outside-if" 2>/dev/null || echo '?')
if [ "$n" -gt 0 ]; then
  log "LEAK: $n packet(s) left through $iface during the run ($cluster of them to or from $WHARF_NET):"
  printf '%s\n' "$left" | head -n 50 >&2
  rc=1
else
  log "ok: no IP packet left through $iface ($total link-layer packet(s); $(stat -c %s "$PCAP") bytes of capture)"
fi
if iptables -w -L WHARF-GUARD -n -v -x >/dev/null 2>&1; then
  blocked=$(iptables -w -L WHARF-GUARD -n -v -x | awk 'NR > 2 { s += $1 } END { print s + 0 }')
  if [ "$blocked" -gt 0 ]; then
    log "WHARF-GUARD dropped $blocked packet(s) headed out through $iface:"
    iptables -w -L WHARF-GUARD -n -v -x >&2
    [ "${WHARF_LEAKS_ALLOW_BLOCKED:-0}" = 1 ] || rc=1
  else
    log "ok: WHARF-GUARD dropped nothing"
  fi
fi
exit $rc
