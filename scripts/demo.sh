#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build rbuild, build the example
# images, and show the result.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release -p rbuild
RBUILD="$PWD/target/release/rbuild"
export RBUILD_ROOT="${RBUILD_ROOT:-/var/lib/rbuild}"
bash examples/busybox/make-rootfs.sh
"$RBUILD" build --progress plain -t rbuild-examples/busybox:latest examples/busybox
"$RBUILD" build --progress plain -t rbuild-examples/hello:latest examples/hello
echo "--- rebuild with nothing changed:"
time "$RBUILD" build --progress plain -t rbuild-examples/hello:latest examples/hello
"$RBUILD" images
out="$(mktemp -d)"
"$RBUILD" build --progress quiet -o "type=local,dest=$out/rootfs" examples/hello
echo "--- /app/message in the built image:"
cat "$out/rootfs/app/message"
"$RBUILD" build --progress quiet -o "type=oci,dest=$out/hello.tar" examples/hello
skopeo inspect "oci-archive:$out/hello.tar" | jq '{Architecture, Os, Layers, Env, Labels}'
rm -rf "$out"
