#!/usr/bin/env bash
# make image-repro: the images are reproducible from the sources, not only
# from the same binaries (scripts/image-check.sh checks that part in make test).
# The committed HEAD is cloned to a second directory and built there from an
# empty target directory (a full release build: minutes); its image digests
# must equal those `make images` gives in this checkout. A different path and
# a cold build are what usually leak into binaries (absolute paths, build
# script output, timestamps).
#
#   scripts/image-repro.sh            # needs a clean work tree (HEAD is what is compared)
#   WHARF_REPRO_DIR=/some/dir scripts/image-repro.sh   # where the clone goes (default: a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
names=(wharf-registry wharf-operator)

fail() { echo "image-repro: FAIL: $*" >&2; exit 1; }
# The checkout's build must be of exactly HEAD, or the comparison proves nothing.
[ -z "$(git status --porcelain --untracked-files=normal)" ] ||
  fail "the work tree has changes (git status): commit or stash them; HEAD is what the clone builds"
digests() { # DIR: NAME DIGEST per image, from the layouts images.sh wrote
  local n
  for n in "${names[@]}"; do
    printf '%s %s\n' "$n" "$(jq -er '.manifests[0].digest' "$1/target/images/$n/index.json")"
  done
}

# images.sh builds into ./target; a CARGO_TARGET_DIR from outside would make
# both builds share one target directory.
unset CARGO_TARGET_DIR
bash scripts/images.sh >/dev/null
here=$(digests "$root")

parent=${WHARF_REPRO_DIR:-$(mktemp -d)}
clone=$parent/wharf-repro-clone
trap 'rm -rf "$clone"; [ -n "${WHARF_REPRO_DIR:-}" ] || rmdir "$parent" 2>/dev/null || true' EXIT
rm -rf "$clone"
git clone --quiet --no-local "$root" "$clone"
[ "$(git -C "$clone" rev-parse HEAD)" = "$(git rev-parse HEAD)" ] || fail "the clone is not at HEAD"
echo "image-repro: building $(git rev-parse --short HEAD) from an empty target directory in $clone (a full release build)"
(cd "$clone" && bash scripts/images.sh >/dev/null)
there=$(digests "$clone")

echo "image-repro: this checkout: $(paste -sd' ' <<<"$here")"
echo "image-repro: fresh clone:   $(paste -sd' ' <<<"$there")"
if [ "$here" != "$there" ]; then
  for n in "${names[@]}"; do
    cmp -s "$root/target/x86_64-unknown-linux-gnu/release/$n" "$clone/target/x86_64-unknown-linux-gnu/release/$n" ||
      echo "image-repro: the $n binaries differ" >&2
  done
  fail "the same commit built in another directory from scratch gives other image digests"
fi
echo "image-repro: ok: both images are byte-identical when rebuilt from a clean clone"
