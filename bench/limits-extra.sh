#!/usr/bin/env bash
# limits-extra.sh — workload-specific "physical limit" references that
# ../shared/bench/limits.sh does not measure, so every workload has a floor:
#
#   ms_stage1   one multistage-parallel stage command run directly on the host
#               (busybox dd | busybox sha256sum over 384 MiB, as inside the build)
#   ms_par4     all four stage commands at once (the CPU floor of that workload on
#               this machine: a builder cannot finish the four stages faster)
#   debian_buildsh
#               debian-app's `build.sh` (500 × sha256sum | cut, tar czf, find | sha256sum:
#               ~1,500 processes) in a plain chroot of the Debian base rootfs: the floor of
#               that workload's RUN step, which every builder must run
#   pull_busybox / pull_debian
#               fetch the base image's layer blob from the lab registry, gunzip it and
#               untar it into an empty directory (the floor of "pull the base image")
#
# Writes $OUT (default $LAB/results/limits-extra.tsv): id, median s, min s, max s.
# Env: RUNS=3, LAB=/var/tmp/rbuild-lab, REG=127.0.0.1:5000
set -euo pipefail
LAB="${LAB:-/var/tmp/rbuild-lab}"
REG="${REG:-127.0.0.1:5000}"
RUNS="${RUNS:-3}"
OUT="${OUT:-$LAB/results/limits-extra.tsv}"
TMP="$LAB/tmp-limits-extra"
mkdir -p "$(dirname "$OUT")" "$TMP"
log() { printf '[limits-extra %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

rows=()
hf() {  # hf ID PREPARE CMD
  local id=$1 prep=$2 cmd=$3 json="$TMP/$1.json"
  log "$id: $cmd"
  if hyperfine --style none --runs "$RUNS" --warmup 1 --prepare "$prep" --export-json "$json" "$cmd" \
      >"$TMP/$id.log" 2>&1; then
    rows+=("$(jq -r --arg id "$id" '.results[0] | [$id, .median, .min, .max] | @tsv' "$json")")
    log "  median $(jq -r '.results[0].median' "$json") s"
  else
    log "  FAILED: $(tail -2 "$TMP/$id.log" | tr '\n' ' ')"
  fi
}

stage='(echo stage-N; /bin/busybox dd if=/dev/zero bs=1048576 count=384 2>/dev/null) | /bin/busybox sha256sum >/dev/null'
hf ms_stage1 true "bash -c '${stage//N/1}'"
hf ms_par4 true "bash -c '${stage//N/1} & ${stage//N/2} & ${stage//N/3} & ${stage//N/4} & wait'"

deb="$LAB/rootfs/debian-bookworm"
if [ -x "$deb/bin/bash" ] && [ -d "$LAB/ctx/debian-app/app" ]; then
  root="$TMP/debroot"; rm -rf "$root"
  cp -a "$deb" "$root"; mkdir -p "$root/opt"; cp -a "$LAB/ctx/debian-app/app" "$root/opt/app"
  chmod +x "$root"/opt/app/bin/*.sh
  hf debian_buildsh "rm -rf $root/var/lib/app && mkdir -p $root/var/lib/app" \
    "chroot $root /opt/app/bin/build.sh"
  rm -rf "$root"
else
  log "debian_buildsh skipped: no $deb (make-base-images.sh) or debian-app context (gen.sh)"
fi

layer_url() {  # layer_url REPO:TAG -> URL of its (single) layer blob
  local repo=${1%%:*} tag=${1#*:} digest
  digest=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REG/v2/$repo/manifests/$tag" | jq -r '.layers[0].digest')
  echo "http://$REG/v2/$repo/blobs/$digest"
}
for img in busybox:latest debian:bookworm; do
  url=$(layer_url "lab/$img")
  hf "pull_${img%%:*}" "rm -rf $TMP/rootfs && mkdir $TMP/rootfs" \
    "bash -c 'curl -sf $url | gzip -dc | tar -x -C $TMP/rootfs'"
done
rm -rf "$TMP/rootfs"

printf '%s\n' "${rows[@]}" > "$OUT"
log "wrote $OUT"
