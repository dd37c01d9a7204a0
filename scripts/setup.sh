#!/usr/bin/env bash
# Installs the Debian packages rbuild's tests and examples use, registers qemu for arm64
# RUN steps (binfmt_misc) and fetches an arm64 busybox for the multi-platform tests.
# Idempotent; the emulation parts are best effort (tests that need them skip with a reason).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(docker-registry skopeo umoci oci-image-tool busybox-static jq apache2-utils pigz git openssh-client
      qemu-user-static runc tmux)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# qemu-aarch64 with the F flag, so arm64 binaries run inside the sandbox.
binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || true
if [ -e "$binfmt/register" ] && [ ! -e "$binfmt/qemu-aarch64" ] && [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
  cat /usr/lib/binfmt.d/qemu-aarch64.conf > "$binfmt/register" 2>/dev/null || echo "setup: cannot register qemu-aarch64 (arm64 tests will skip)"
fi

# An arm64 busybox-static for the multi-platform tests (RBUILD_TEST_BUSYBOX_ARM64).
cache=/var/cache/rbuild-tests
if [ ! -x "$cache/busybox-arm64" ]; then
  mkdir -p "$cache"
  (
    set -e
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -q
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root busybox-static:arm64
    dpkg-deb -x busybox-static_*_arm64.deb x && install -m 0755 x/bin/busybox "$cache/busybox-arm64"
  ) || echo "setup: no arm64 busybox (multi-platform tests will skip)"
fi
