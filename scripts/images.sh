#!/usr/bin/env bash
# make images: both images as OCI image layouts under target/images/, built
# without a container engine by image-builder/ from static release binaries.
# PUSH=<registry>/<prefix> also pushes them with crane, e.g.
#   PUSH=127.0.0.1:5000/wharf make images
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
out=target/images

# Static glibc binaries: the images need no libc of their own.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$target" \
  -p wharf-registry -p wharf-operator
cargo build --release --locked -p wharf-image-builder

build() {
  local name=$1 description=$2
  shift 2
  target/release/wharf-image-builder \
    --binary "target/$target/release/$name" --name "$name" --tag "$version" \
    --file /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt \
    --label "org.opencontainers.image.title=$name" \
    --label "org.opencontainers.image.description=$description" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.licenses=Apache-2.0" \
    --label "org.opencontainers.image.source=https://github.com/wharf-dev/wharf" \
    --out "$out/$name" "$@"
}

registry_digest=$(build wharf-registry "OCI Distribution registry, a drop-in for registry:2" \
  --cmd serve --cmd /etc/wharf/config.yml --expose 5000/tcp --expose 5001/tcp)
operator_digest=$(build wharf-operator "Kubernetes operator for Wharf registries and mirrors" \
  --cmd run --expose 8080/tcp)

for name in wharf-registry wharf-operator; do
  size=$(du -sk "$out/$name/blobs" | cut -f1)
  echo "$name:$version  $( [ $name = wharf-registry ] && echo "$registry_digest" || echo "$operator_digest")  ${size} KiB  $out/$name"
done

if [ -n "${PUSH:-}" ]; then
  for name in wharf-registry wharf-operator; do
    crane push --insecure "$out/$name" "$PUSH/$name:$version"
  done
fi
