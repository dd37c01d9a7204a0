#!/usr/bin/env bash
# rbuild-peer.sh — the `$RBUILD` program that ../shared/bench/peer.sh calls for the
# `rbuild` peer.  peer.sh invokes it as
#
#   $RBUILD prune --all                     (peer.sh reset rbuild)
#   $RBUILD build -t bench/W -f DF CTX      (peer.sh build rbuild W)
#   $RBUILD push bench/W REG/bench/W-rbuild (peer.sh push rbuild W)
#
# and this wrapper maps those onto the binary under test ($RBUILD_BIN) with its own
# store ($RBUILD_BENCH_ROOT, default $LAB/peers/rbuild), so that rbuild is treated
# exactly like the other peers, each of which keeps its state under $LAB/peers:
#
# - reset wipes the whole store (like `peer.sh reset buildah`, which deletes buildah's
#   storage, and `reset docker`, which removes every image and the build cache).
#   `rbuild prune --all` keeps tagged images, so it would not give a cold start.
# - push: `rbuild tag bench/W DEST && rbuild push DEST` (the tag is a metadata write; docker
#   and buildah name the image at build time).  A binary without `push`/`tag` commands
#   does the same upload by re-running the (fully cached) build with `-t DEST --push`,
#   which includes one no-op rebuild.
set -euo pipefail
LAB="${LAB:-/var/tmp/rbuild-lab}"
SHARED_BENCH="${SHARED_BENCH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../shared/bench" && pwd)}"
BIN="${RBUILD_BIN:?RBUILD_BIN must name the rbuild binary under test}"
ROOT="${RBUILD_BENCH_ROOT:-$LAB/peers/rbuild}"

unmount_under() {  # lazily unmount everything left mounted below $1 (deepest first)
  awk -v p="$1/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
}

op=${1:?op}; shift
case "$op" in
  prune)
    if [ -d "$ROOT" ]; then
      unmount_under "$ROOT"
      rm -rf "$ROOT"
    fi ;;
  build)
    exec "$BIN" --root "$ROOT" build "$@" ;;
  push)
    src=${1:?source image}; dest=${2:?destination}
    if "$BIN" push --help >/dev/null 2>&1 && "$BIN" tag --help >/dev/null 2>&1; then
      "$BIN" --root "$ROOT" tag "$src" "$dest"
      exec "$BIN" --root "$ROOT" push -q "$dest" >/dev/null
    fi
    w=${src#bench/}
    df="$SHARED_BENCH/workloads/$w/Dockerfile"
    [ -f "$df" ] || { echo "rbuild-peer.sh: no workload for image '$src'" >&2; exit 2; }
    exec "$BIN" --root "$ROOT" build -q -t "$dest" --push -f "$df" "$LAB/ctx/$w" >/dev/null ;;
  *)
    exec "$BIN" --root "$ROOT" "$op" "$@" ;;
esac
