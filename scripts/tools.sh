#!/usr/bin/env bash
# scripts/tools.sh: installs the real clients and reference servers that the
# tests and benchmarks use. Pinned, idempotent, cached outside the checkout.
#
#   bash scripts/tools.sh          install what is missing, reuse the rest
#   bash scripts/tools.sh --check  only report what is missing (exit 1 if any)
#
# Layout (WHARF_CACHE defaults to ~/.cache/wharf):
#   $WHARF_CACHE/bin/<tool>                 symlinks the tests look up
#   $WHARF_CACHE/tools/<tool>-<version>/    one directory per pinned version,
#                                           so changing a pin rebuilds
#   $WHARF_CACHE/src/oci-conformance-<version>/  scratch Go module
#
# Debian packages come from apt (only when missing). Go tools are built with
# the machine's Go from the Go module proxy, under `nice` (other builds share
# the two cores). A second run is a no-op that takes well under a second.
set -euo pipefail

# ------------------------------------------------------------------ pins
CRANE_VERSION=v0.20.8            # github.com/google/go-containerregistry/cmd/crane
DISTRIBUTION_VERSION=v3.1.2      # github.com/distribution/distribution/v3/cmd/registry
VERSITYGW_VERSION=v1.8.0         # github.com/versity/versitygw/cmd/versitygw (the S3 server; Apache-2.0)
# github.com/opencontainers/distribution-spec/conformance. The spec v1.1.1
# commit (a139cc423184af6078077b9b7ee336eddbd03f8f, pseudo-version
# v0.0.0-20250123160558-a139cc423184) is refused by the Go module proxy that
# this workplace reaches ("This module version is not available"); the newest
# pseudo-version it serves is pinned instead. It is the rewritten suite: it
# still reads the legacy OCI_* variables, is run with OCI_VERSION=1.1, writes
# junit.xml/results.yaml to OCI_RESULTS_DIR and exits 1 on any failure.
OCI_CONFORMANCE_VERSION=${OCI_CONFORMANCE_VERSION:-v0.0.0-20260831232431-97274622c111}
# The spec v1.1-era (Ginkgo) suite, the other version the proxy serves: it
# holds the registry to checks the rewrite dropped (e.g. 404 for a GET of an
# invalid manifest reference). Installed as oci-conformance-legacy.test.
OCI_CONFORMANCE_LEGACY_VERSION=${OCI_CONFORMANCE_LEGACY_VERSION:-v0.0.0-20231101194043-f2182352d4cc}
APT_PACKAGES=(skopeo containerd runc nginx-light wrk jq curl apache2-utils openssl umoci podman chromium chromium-driver)

CHECK_ONLY=0
case ${1:-} in
--check) CHECK_ONLY=1 ;;
"") ;;
-h | --help) sed -n '2,17p' "$0"; exit 0 ;;
*) echo "scripts/tools.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

export WHARF_CACHE=${WHARF_CACHE:-$HOME/.cache/wharf}
BIN=$WHARF_CACHE/bin
TOOLS=$WHARF_CACHE/tools
mkdir -p "$BIN" "$TOOLS" "$WHARF_CACHE/src"
export PATH="$BIN:/usr/local/go/bin:$HOME/go/bin:$PATH:/usr/sbin:/sbin"

START=$(date +%s.%N)
INSTALLED=()
REUSED=()
MISSING=()

log() { printf '[tools %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'scripts/tools.sh: %s\n' "$*" >&2; exit 1; }

# One run at a time (make test, bench/run.sh and a developer may overlap).
exec 9>"$WHARF_CACHE/.tools.lock"
if ! flock -n 9; then
    log "another scripts/tools.sh holds $WHARF_CACHE/.tools.lock; waiting (up to 30 min)"
    flock -w 1800 9 || die "timed out waiting for the lock"
fi

# ------------------------------------------------------------------ apt
apt_missing=()
for p in "${APT_PACKAGES[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed'; then
        REUSED+=("$p")
    else
        apt_missing+=("$p")
    fi
done
if ((${#apt_missing[@]})); then
    if ((CHECK_ONLY)); then
        MISSING+=("${apt_missing[@]}")
    else
        command -v apt-get >/dev/null || die "apt-get not found; install ${apt_missing[*]} by hand"
        SUDO=()
        ((EUID == 0)) || SUDO=(sudo)
        log "apt: installing ${apt_missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        "${SUDO[@]}" apt-get update -qq >&2 || die "apt-get update failed"
        "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >&2 ||
            die "apt-get install ${apt_missing[*]} failed"
        INSTALLED+=("${apt_missing[@]}")
    fi
fi

# ------------------------------------------------------------------ go
command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
export GOTOOLCHAIN=local GOFLAGS='-mod=mod -buildvcs=false'
# Module downloads are cached in the usual Go module cache (outside the checkout).

# Runs a go command; if it failed because the checksum database could not be
# reached, runs it again with checksum-database verification off (the module
# proxy still serves the same pinned versions; go.sum in the scratch module
# records what was used).
go_retry() {
    local logf
    logf=$(mktemp)
    if nice -n 10 "$@" >"$logf" 2>&1; then
        cat "$logf" >&2; rm -f "$logf"; return 0
    fi
    if grep -qiE 'verifying .*(dial|lookup|timeout|connection|no such host|refused|unreachable)|checksum database|GOSUMDB' "$logf"; then
        cat "$logf" >&2
        log "checksum database unreachable; retrying with GOSUMDB=off"
        rm -f "$logf"
        GOSUMDB=off nice -n 10 "$@" >&2
        return
    fi
    cat "$logf" >&2; rm -f "$logf"; return 1
}

# link NAME TARGET: $BIN/NAME -> TARGET, replaced atomically.
link() {
    local name=$1 target=$2
    if [[ $(readlink "$BIN/$name" 2>/dev/null) != "$target" ]]; then
        ln -sfn "$target" "$BIN/.$name.tmp"
        mv -Tf "$BIN/.$name.tmp" "$BIN/$name"
    fi
}

# go_tool NAME VERSION PACKAGE BINARY: go install PACKAGE@VERSION into
# $TOOLS/NAME-VERSION and link it as $BIN/NAME.
go_tool() {
    local name=$1 version=$2 pkg=$3 binary=$4
    local dir=$TOOLS/$name-$version
    if [[ -x $dir/$binary ]]; then
        REUSED+=("$name@$version")
    elif ((CHECK_ONLY)); then
        MISSING+=("$name@$version"); return
    else
        log "go install $pkg@$version"
        local t0=$SECONDS
        rm -rf "$dir.partial"; mkdir -p "$dir.partial"
        GOBIN=$dir.partial go_retry go install "$pkg@$version" || die "go install $pkg@$version failed"
        [[ -x $dir.partial/$binary ]] || die "go install $pkg@$version produced no $binary"
        rm -rf "$dir"; mv "$dir.partial" "$dir"
        INSTALLED+=("$name@$version($((SECONDS - t0))s)")
    fi
    link "$name" "$dir/$binary"
}

go_tool crane "$CRANE_VERSION" github.com/google/go-containerregistry/cmd/crane crane
# A static crane for the e2e's client image, which has no libc. Built here, not
# during the e2e, whose capture fails on any packet leaving the machine.
CGO_ENABLED=0 go_tool crane-static "$CRANE_VERSION" github.com/google/go-containerregistry/cmd/crane crane
go_tool distribution-registry "$DISTRIBUTION_VERSION" github.com/distribution/distribution/v3/cmd/registry registry
go_tool versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw versitygw
# The e2e's in-cluster S3 server runs from a scratch image: a static build.
CGO_ENABLED=0 go_tool versitygw-static "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw versitygw

# The OCI conformance suite is a Go test binary: compile it from a scratch
# module that requires the spec repository at the pinned commit.
# conformance_suite NAME VERSION: builds it into $TOOLS/NAME-VERSION and
# links it as $BIN/NAME.test.
conformance_suite() {
    local name=$1 version=$2
    local conf_dir=$TOOLS/$name-$version
    local conf_pkg=github.com/opencontainers/distribution-spec/conformance
    if [[ -x $conf_dir/oci-conformance.test ]]; then
        REUSED+=("$name@$version")
    elif ((CHECK_ONLY)); then
        MISSING+=("$name@$version"); return
    else
        log "building the OCI conformance suite $conf_pkg@$version"
        local t0=$SECONDS
        local src=$WHARF_CACHE/src/$name-$version
        rm -rf "$src" "$conf_dir.partial"; mkdir -p "$src" "$conf_dir.partial"
        # (no `set -e` inside a `( ) ||` list: every step checks for itself)
        (
            cd "$src" || exit 1
            go mod init wharf.local/oci-conformance >&2 || exit 1
            go_retry go get "$conf_pkg@$version" || exit 1
            grep -q "$conf_pkg $version" go.mod || { echo "go.mod does not require $conf_pkg $version" >&2; exit 1; }
            go_retry go test -c -o "$conf_dir.partial/oci-conformance.test" "$conf_pkg" || exit 1
        ) || die "building the OCI conformance suite $version failed (scratch module in $src)"
        rm -rf "$conf_dir"; mv "$conf_dir.partial" "$conf_dir"
        INSTALLED+=("$name@$version($((SECONDS - t0))s)")
    fi
    link "$name.test" "$conf_dir/oci-conformance.test"
}
conformance_suite oci-conformance "$OCI_CONFORMANCE_VERSION"
conformance_suite oci-conformance-legacy "$OCI_CONFORMANCE_LEGACY_VERSION"

# ------------------------------------------------------------------ fuzzing
# `make fuzz` / `make fuzz-smoke` (registry/fuzz): cargo-fuzz drives libFuzzer,
# which needs a nightly toolchain (-Zsanitizer). Any nightly will do; rustup
# installs one only when none is present.
CARGO_FUZZ_VERSION=0.13.2
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    REUSED+=("rust-nightly")
elif ((CHECK_ONLY)); then
    MISSING+=("rust-nightly")
else
    command -v rustup >/dev/null || die "rustup not found; install a nightly toolchain by hand"
    log "rustup: installing the nightly toolchain (for cargo-fuzz)"
    nice -n 10 rustup toolchain install nightly --profile minimal >&2 || die "rustup toolchain install nightly failed"
    INSTALLED+=("rust-nightly")
fi
fuzz_dir=$TOOLS/cargo-fuzz-$CARGO_FUZZ_VERSION
if [[ -x $fuzz_dir/bin/cargo-fuzz ]]; then
    REUSED+=("cargo-fuzz@$CARGO_FUZZ_VERSION")
elif ((CHECK_ONLY)); then
    MISSING+=("cargo-fuzz@$CARGO_FUZZ_VERSION")
else
    log "cargo install cargo-fuzz@$CARGO_FUZZ_VERSION"
    t0=$SECONDS
    rm -rf "$fuzz_dir.partial"
    env -u CARGO_TARGET_DIR nice -n 10 cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$fuzz_dir.partial" >&2 ||
        die "cargo install cargo-fuzz@$CARGO_FUZZ_VERSION failed"
    rm -rf "$fuzz_dir"; mv "$fuzz_dir.partial" "$fuzz_dir"
    INSTALLED+=("cargo-fuzz@$CARGO_FUZZ_VERSION($((SECONDS - t0))s)")
fi
if [[ -x $fuzz_dir/bin/cargo-fuzz ]]; then link cargo-fuzz "$fuzz_dir/bin/cargo-fuzz"; fi

# ------------------------------------------------------------------ summary
elapsed=$(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
if ((CHECK_ONLY)); then
    if ((${#MISSING[@]})); then
        echo "tools: missing ${MISSING[*]} (run scripts/tools.sh)"
        exit 1
    fi
    echo "tools: all present in $BIN (${elapsed}s)"
    exit 0
fi
echo "tools: installed ${#INSTALLED[@]} [${INSTALLED[*]:-}], reused ${#REUSED[@]} [${REUSED[*]}] in ${elapsed}s; binaries in $BIN"
