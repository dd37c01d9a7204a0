#!/usr/bin/env bash
# Installs the Debian packages rbuild's tests and examples use. Idempotent.
set -euo pipefail
PKGS=(docker-registry skopeo umoci oci-image-tool busybox-static jq apache2-utils pigz git openssh-client)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
