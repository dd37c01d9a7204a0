#!/usr/bin/env bash
# Makes examples/busybox/rootfs from Debian's busybox-static (/bin/busybox), so that the
# examples have a base image without Docker Hub: `rbuild build -t rbuild-examples/busybox .`
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/rootfs"
[ -x /bin/busybox ] || { echo "install busybox-static first (apt-get install busybox-static)" >&2; exit 1; }
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home,var}
chmod 1777 "$root/tmp"; chmod 0700 "$root/root"
install -m 0755 /bin/busybox "$root/bin/busybox"
chroot "$root" /bin/busybox --install -s
cat > "$root/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
PW
cat > "$root/etc/group" <<'GR'
root:x:0:
daemon:x:1:
wheel:x:10:root
nobody:x:65534:
GR
echo "rootfs ready: $root ($(find "$root" -type l | wc -l) applets)"
