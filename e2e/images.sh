#!/usr/bin/env bash
# Puts the images the scenarios run into the node's containerd (k8s.io
# namespace), with no registry and no container engine:
#   ghcr.io/wharf-dev/wharf-registry:<version>   make images (OCI layout)
#   ghcr.io/wharf-dev/wharf-operator:<version>   make images (OCI layout)
#   wharf.local/client:1   busybox + a static crane + /images/app-{a,b,c}.tar,
#                          the images the scenarios push: the pause binary and
#                          1 MiB of random bytes made for this run, so the node
#                          has none of their layers and every node pull must
#                          fetch one from a registry
#   wharf.local/versitygw:<pin>  the S3 server of scenario 11: the static
#                          versitygw scripts/tools.sh builds, in an image made by
#                          image-builder (as the wharf images are)
#   wharf.local/traefik:<pin>  the ingress controller of scenario 14, the same way
#                          (the static traefik e2e/cluster/build.sh builds)
#
#   e2e/images.sh          (the cluster must be up: e2e/cluster/up.sh)
set -Eeuo pipefail
E2E_SCRIPT=images
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=cluster/lib.sh
. "$HERE/cluster/lib.sh"

STATE=$WHARF_E2E_DIR/cluster
CTRD_SOCK=$STATE/containerd/containerd.sock
CRANE_VERSION=v0.20.8
VERSITYGW_VERSION=$(sed -n 's/^VERSITYGW_VERSION=\([^ ]*\).*/\1/p' "$ROOT/scripts/tools.sh")
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)
OUT=$WHARF_E2E_DIR/images
mkdir -p "$OUT"
ctr_() { ctr --address "$CTRD_SOCK" -n k8s.io "$@"; }
ctr_ version >/dev/null 2>&1 || die "no containerd at $CTRD_SOCK: is the cluster up?"

phase "make images"
(cd "$ROOT" && bash scripts/images.sh) >&2

phase "import wharf images"
for name in wharf-registry wharf-operator; do
  # skopeo refuses to overwrite an archive.
  rm -f "$OUT/$name.tar"
  skopeo copy -q "oci:$ROOT/target/images/$name" "docker-archive:$OUT/$name.tar:ghcr.io/wharf-dev/$name:$VERSION"
  ctr_ images import --platform linux/amd64 "$OUT/$name.tar" >/dev/null
  log "imported ghcr.io/wharf-dev/$name:$VERSION"
done

phase "versitygw image"
# The static (CGO_ENABLED=0) build: the image has no libc.
vgw=$WHARF_CACHE/bin/versitygw-static
[ -x "$vgw" ] || die "no $vgw: run scripts/tools.sh"
rm -f "$OUT/versitygw.tar"
"$ROOT/target/release/wharf-image-builder" --binary "$(readlink -f "$vgw")" --name versitygw \
  --tag "$VERSITYGW_VERSION" --expose 7070/tcp \
  --label org.opencontainers.image.title=versitygw \
  --label "org.opencontainers.image.version=$VERSITYGW_VERSION" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --label org.opencontainers.image.source=https://github.com/versity/versitygw \
  --out "$OUT/versitygw" >/dev/null
skopeo copy -q "oci:$OUT/versitygw" "docker-archive:$OUT/versitygw.tar:wharf.local/versitygw:$VERSITYGW_VERSION"
ctr_ images import --platform linux/amd64 "$OUT/versitygw.tar" >/dev/null
log "imported wharf.local/versitygw:$VERSITYGW_VERSION"

phase "traefik image"
# Scenario 14's ingress controller: the static build e2e/cluster/build.sh makes.
traefik=$WHARF_CACHE/tools/traefik-$TRAEFIK_VERSION/traefik
[ -x "$traefik" ] || die "no $traefik: run e2e/cluster/build.sh all"
rm -f "$OUT/traefik.tar"
"$ROOT/target/release/wharf-image-builder" --binary "$traefik" --name traefik \
  --tag "$TRAEFIK_VERSION" --expose 8443/tcp \
  --label org.opencontainers.image.title=traefik \
  --label "org.opencontainers.image.version=$TRAEFIK_VERSION" \
  --label org.opencontainers.image.licenses=MIT \
  --label org.opencontainers.image.source=https://github.com/traefik/traefik \
  --out "$OUT/traefik" >/dev/null
skopeo copy -q "oci:$OUT/traefik" "docker-archive:$OUT/traefik.tar:wharf.local/traefik:$TRAEFIK_VERSION"
ctr_ images import --platform linux/amd64 "$OUT/traefik.tar" >/dev/null
log "imported wharf.local/traefik:$TRAEFIK_VERSION"

phase "client image"
# The crane in $WHARF_CACHE/bin uses cgo; the client image has no libc.
# scripts/tools.sh builds the static one (nothing is downloaded during the e2e).
crane_dir=$WHARF_CACHE/tools/crane-static-$CRANE_VERSION
[ -x "$crane_dir/crane" ] || die "no static crane in $crane_dir: run scripts/tools.sh"
BB=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
[ -f "$STATE/pause.tar" ] || die "no $STATE/pause.tar (up.sh writes it)"
args=(--file "$BB:/bin/busybox:0755" --file "$crane_dir/crane:/bin/crane:0755" --dir /tmp --cmd '["sh"]')
for app in a b c; do
  head -c 1048576 /dev/urandom >"$OUT/random-$app.bin"
  python3 "$HERE/cluster/mkimage.py" "$OUT/app-$app.tar" "wharf.local/app-$app:1" --entrypoint '["/pause"]' \
    --file "$PAUSE_BIN:/pause:0755" --file "$OUT/random-$app.bin:/random.bin:0644" >/dev/null
  args+=(--file "$OUT/app-$app.tar:/images/app-$app.tar:0644")
done
for a in sh cat echo grep printf nc sed test wc tr head tar mkdir seq sleep date; do
  args+=(--symlink "/bin/$a:busybox")
done
python3 "$HERE/cluster/mkimage.py" "$OUT/client.tar" wharf.local/client:1 "${args[@]}" >/dev/null
ctr_ images import --platform linux/amd64 "$OUT/client.tar" >/dev/null
log "imported wharf.local/client:1"
phases_report
