#!/usr/bin/env bash
# Checks the images `make images` builds (OCI layouts in target/images/<name>):
#   - building twice from the same binaries gives the same digests;
#   - config: numeric non-root User (65532), Entrypoint, Cmd, OCI labels, and
#     org.opencontainers.image.version equal to the Cargo workspace version;
#   - skopeo reads the same config from the layout;
#   - the Dockerfile's stages say the same (non-root USER, labels, entrypoint).
# Prints the compressed size of each image. Every check runs; any failure makes
# the exit status non-zero.
#
#   scripts/image-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/images
bin_dir=target/x86_64-unknown-linux-gnu/release
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
names=(wharf-registry wharf-operator)
declare -A cmd=([wharf-registry]='["serve","/etc/wharf/config.yml"]' [wharf-operator]='["run"]')
labels=(title version revision source licenses)

failures=0
fail() { echo "image-check: FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "image-check: ok: $*"; }

blob() { echo "$out/$1/blobs/${2/://}"; } # NAME DIGEST -> path of the blob
manifest_digest() { jq -er '.manifests | if length == 1 then .[0].digest else error("want 1 manifest, have \(length)") end' "$out/$1/index.json"; }
config_of() { jq -c . "$(blob "$1" "$(jq -er .config.digest "$(blob "$1" "$(manifest_digest "$1")")")")"; }
binaries_sum() { sha256sum "$bin_dir/wharf-registry" "$bin_dir/wharf-operator" target/release/wharf-image-builder; }

# --- reproducibility -------------------------------------------------------
bash scripts/images.sh >/dev/null
declare -A first
for n in "${names[@]}"; do first[$n]=$(manifest_digest "$n"); done
sums=$(binaries_sum)
# The second run finds the binaries built, so it repeats only the image step.
bash scripts/images.sh >/dev/null
# Others may edit sources meanwhile: then cargo rebuilt and the digests prove nothing.
[ "$sums" = "$(binaries_sum)" ] || fail "the binaries changed between the two builds (sources edited meanwhile?); run again"
for n in "${names[@]}"; do
  second=$(manifest_digest "$n")
  if [ "${first[$n]}" = "$second" ]; then ok "$n reproducible: $second"
  else fail "$n is not reproducible: ${first[$n]} then $second from the same binaries"; fi
done

# --- config, from the layout --------------------------------------------------
check_config() { # NAME CONFIG-JSON
  local n=$1 config=$2 user entry c l v
  user=$(jq -r '.config.User // ""' <<<"$config")
  # A numeric USER: kubelet's runAsNonRoot cannot verify a user name.
  if [[ $user =~ ^([0-9]+)(:([0-9]+))?$ ]]; then
    [ "${BASH_REMATCH[1]}" = 65532 ] || fail "$n: config.User '$user' runs as uid ${BASH_REMATCH[1]}, want 65532"
    [ "${BASH_REMATCH[3]:-65532}" != 0 ] || fail "$n: config.User '$user' has gid 0"
  else
    fail "$n: config.User '$user' is not a numeric uid[:gid]"
  fi
  entry=$(jq -c '.config.Entrypoint' <<<"$config")
  [ "$entry" = "[\"/usr/local/bin/$n\"]" ] || fail "$n: Entrypoint is $entry, want [\"/usr/local/bin/$n\"]"
  c=$(jq -c '.config.Cmd' <<<"$config")
  [ "$c" = "${cmd[$n]}" ] || fail "$n: Cmd is $c, want ${cmd[$n]}"
  for l in "${labels[@]}"; do
    v=$(jq -r --arg k "org.opencontainers.image.$l" '.config.Labels[$k] // ""' <<<"$config")
    [ -n "$v" ] || fail "$n: label org.opencontainers.image.$l is missing or empty"
  done
  v=$(jq -r '.config.Labels["org.opencontainers.image.version"] // ""' <<<"$config")
  [ "$v" = "$version" ] || fail "$n: label version is '$v', Cargo.toml says '$version'"
  v=$(jq -r '.config.Labels["org.opencontainers.image.title"] // ""' <<<"$config")
  [ "$v" = "$n" ] || fail "$n: label title is '$v', want $n"
}

for n in "${names[@]}"; do
  before=$failures
  config=$(config_of "$n")
  check_config "$n" "$config"
  # The same config as skopeo reads it from the layout.
  theirs=$(skopeo inspect --config "oci:$out/$n" | jq -S '.config | {User, Entrypoint, Cmd, Labels}')
  ours=$(jq -S '.config | {User, Entrypoint, Cmd, Labels}' <<<"$config")
  [ "$theirs" = "$ours" ] || fail "$n: skopeo inspect --config reads a different config: $theirs vs $ours"
  [ "$before" != "$failures" ] ||
    ok "$n config: $(jq -c '.config | {User, Entrypoint, Cmd}' <<<"$config"), labels ${labels[*]}, version $version; skopeo agrees"
done

# --- the Dockerfile builds the same images for Docker users -----------------
# One Dockerfile, a stage per image on a shared base (user, common labels).
stage() { awk -v s="$1" '/^FROM /{on = ($NF == s || $NF == "base")} on' Dockerfile; }
for n in "${names[@]}"; do
  before=$failures
  f="Dockerfile (stage $n)"
  text=$(stage "$n")
  grep -q "AS $n\$" Dockerfile || fail "Dockerfile: no stage $n"
  grep -qx 'USER 65532:65532' <<<"$text" || fail "$f: no 'USER 65532:65532'"
  grep -qF "ENTRYPOINT [\"/usr/local/bin/$n\"]" <<<"$text" || fail "$f: ENTRYPOINT is not [\"/usr/local/bin/$n\"]"
  want_cmd=$(jq -r 'map("\"" + . + "\"") | join(", ")' <<<"${cmd[$n]}")
  grep -qF "CMD [$want_cmd]" <<<"$text" || fail "$f: CMD is not [$want_cmd]"
  for l in title version source licenses; do
    grep -q "org.opencontainers.image.$l=" <<<"$text" || fail "$f: no label org.opencontainers.image.$l"
  done
  [ "$before" != "$failures" ] || ok "$f agrees (USER, ENTRYPOINT, CMD, labels)"
done

# --- sizes: what a node downloads --------------------------------------------
for n in "${names[@]}"; do
  bytes=$(jq '[.layers[].size] | add' "$(blob "$n" "$(manifest_digest "$n")")")
  printf 'image-check: %s:%s %s compressed layers: %s bytes (%s MiB)\n' "$n" "$version" \
    "$(manifest_digest "$n")" "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')"
done
[ "$failures" = 0 ] || { echo "image-check: $failures check(s) FAILED" >&2; exit 1; }
echo "image-check: all checks passed"
