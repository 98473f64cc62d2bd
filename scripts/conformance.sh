#!/usr/bin/env bash
# scripts/conformance.sh URL [RESULTS_DIR]: runs the OCI distribution-spec
# conformance suite (built by scripts/tools.sh) against any registry, with the
# pull, push, content discovery and content management workflows all on.
#
#   bash scripts/conformance.sh http://127.0.0.1:5000
#   OCI_USERNAME=u OCI_PASSWORD=p bash scripts/conformance.sh https://reg.example:5000 /tmp/results
#
# Results (junit.xml, results.yaml, report.html) go to RESULTS_DIR (default: a
# new temporary directory, printed at the end). Any OCI_* variable already in
# the environment overrides the defaults below (e.g. OCI_NAMESPACE,
# OCI_DATA_SHA512=false, OCI_FILTER_TEST=...). Exit status: the suite's (0 = all passed).
set -euo pipefail

if (($# < 1)) || [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,13p' "$0"
    exit 2
fi
URL=${1%/}
RESULTS=${2:-$(mktemp -d "${TMPDIR:-/tmp}/oci-conformance.XXXXXX")}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)

WHARF_CACHE=${WHARF_CACHE:-$HOME/.cache/wharf}
SUITE=$WHARF_CACHE/bin/oci-conformance.test
if [[ ! -x $SUITE ]]; then
    SUITE=$(command -v oci-conformance.test || true)
fi
[[ -n $SUITE && -x $SUITE ]] || { echo "conformance.sh: oci-conformance.test not found: run scripts/tools.sh" >&2; exit 1; }

export OCI_ROOT_URL=${OCI_ROOT_URL:-$URL}
export OCI_NAMESPACE=${OCI_NAMESPACE:-conformance/repo1}
export OCI_CROSSMOUNT_NAMESPACE=${OCI_CROSSMOUNT_NAMESPACE:-conformance/repo2}
export OCI_TEST_PULL=${OCI_TEST_PULL:-1}
export OCI_TEST_PUSH=${OCI_TEST_PUSH:-1}
export OCI_TEST_CONTENT_DISCOVERY=${OCI_TEST_CONTENT_DISCOVERY:-1}
export OCI_TEST_CONTENT_MANAGEMENT=${OCI_TEST_CONTENT_MANAGEMENT:-1}
export OCI_HIDE_SKIPPED_WORKFLOWS=${OCI_HIDE_SKIPPED_WORKFLOWS:-0}
export OCI_DEBUG=${OCI_DEBUG:-0}
export OCI_VERSION=${OCI_VERSION:-1.1}
export OCI_REPORT_DIR=$RESULTS OCI_RESULTS_DIR=$RESULTS

rc=0
(cd "$RESULTS" && timeout 900 "$SUITE" -test.timeout 14m) || rc=$?
if [[ -f $RESULTS/junit.xml ]]; then
    head=$(grep -o '<testsuites[^>]*>' "$RESULTS/junit.xml" | head -1)
    echo "conformance: $URL: $head" >&2
fi
echo "conformance: exit $rc; reports in $RESULTS" >&2
exit "$rc"
