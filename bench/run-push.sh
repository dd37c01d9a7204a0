#!/usr/bin/env bash
# Push throughput for an already-compressed image: `rbuild push` against `skopeo copy` of the
# same image (an OCI layout made of hard links to rbuild's own blobs, so both send the same
# bytes) and a plain `curl` monolithic upload (POST + one PUT) of its largest blob: the
# floor for one HTTP upload to this registry. For each it records wall time and the
# registry process's CPU time (utime + stime from /proc/<pid>/stat), to show whether the
# registry is the bottleneck. Every timed command holds $LAB/bench.lock; before each push
# the destination repository is emptied (../shared/bench/registry-rm.sh), so the layers
# are really uploaded. Writes bench/results/push.md (a markdown table) and push.tsv.
#
# Usage: bash bench/run-push.sh          (big-file, RUNS=3; needs the lab of bench/run.sh)
#        W=many-steps RUNS=5 RBUILD_BIN=path bash bench/run-push.sh
# Knobs: W [big-file]  RUNS [3]  RBUILD_BIN [newest $LAB/bin/rbuild-*]
#        ROOT [$LAB/peers/push-bench]: the store holding bench/$W (built if missing)
#        KEEP [0]: keep the store and the OCI layout afterwards
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SHARED="${SHARED_BENCH:-$(cd "$HERE/../../shared/bench" && pwd)}"
LAB="${LAB:-/var/tmp/rbuild-lab}"
REG="${REG:-127.0.0.1:5000}"
W="${W:-big-file}"
RUNS="${RUNS:-3}"
KEEP="${KEEP:-0}"
RBUILD_BIN="${RBUILD_BIN:-$(ls -t "$LAB"/bin/rbuild-* 2>/dev/null | head -1)}"
[ -x "$RBUILD_BIN" ] || { echo "no rbuild binary: set RBUILD_BIN or run bench/run.sh first" >&2; exit 2; }
ROOT="${ROOT:-$LAB/peers/push-bench}"
OCI="$ROOT-oci"
LOCK="$LAB/bench.lock"
REG_PID=$(cat "$LAB/run/registry-${REG##*:}.pid")
curl -sf -o /dev/null "http://$REG/v2/" || { echo "registry $REG is down: run $SHARED/setup-lab.sh" >&2; exit 1; }
mkdir -p "$HERE/results"
log() { printf '[push %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------ the image
if ! "$RBUILD_BIN" --root "$ROOT" inspect "bench/$W" >/dev/null 2>&1; then
  log "building bench/$W into $ROOT"
  "$RBUILD_BIN" --root "$ROOT" build -q -t "bench/$W" -f "$SHARED/workloads/$W/Dockerfile" "$LAB/ctx/$W" >/dev/null
fi
# The image's manifest: the stored manifest whose config is the image ID.
config=$("$RBUILD_BIN" --root "$ROOT" inspect "bench/$W" | jq -r '.[0].Id')
manifest=""
for f in $(find "$ROOT/blobs/sha256" -type f -size -64k); do
  if jq -e --arg c "$config" '.config.digest == $c' "$f" >/dev/null 2>&1; then manifest=$(basename "$f"); break; fi
done
[ -n "$manifest" ] || { echo "cannot find the manifest of bench/$W in $ROOT" >&2; exit 1; }
blobs=$(jq -r '.config.digest, .layers[].digest' "$ROOT/blobs/sha256/$manifest" | sed 's/^sha256://')
big=$(jq -r '.layers | max_by(.size) | .digest' "$ROOT/blobs/sha256/$manifest" | sed 's/^sha256://')
big_size=$(stat -c %s "$ROOT/blobs/sha256/$big")
total=$(jq '([.layers[].size] | add) + .config.size' "$ROOT/blobs/sha256/$manifest")

# An OCI layout of hard links into the store (no copy of the data).
rm -rf "$OCI"; mkdir -p "$OCI/blobs/sha256"
for d in $manifest $blobs; do ln "$ROOT/blobs/sha256/$d" "$OCI/blobs/sha256/$d"; done
echo '{"imageLayoutVersion":"1.0.0"}' >"$OCI/oci-layout"
jq -n --arg d "sha256:$manifest" --argjson s "$(stat -c %s "$ROOT/blobs/sha256/$manifest")" \
  --arg t "$(jq -r .mediaType "$ROOT/blobs/sha256/$manifest")" \
  '{schemaVersion: 2, manifests: [{mediaType: $t, digest: $d, size: $s}]}' >"$OCI/index.json"

# ------------------------------------------------------------------ measuring
reg_cpu_ms() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) * 1000 / t}' "/proc/$REG_PID/stat"; }
TSV="$HERE/results/push.tsv"
printf 'tool\tworkload\trun\tseconds\tregistry_cpu_s\tbytes\n' >"$TSV"
measure() {  # measure TOOL RUN BYTES CMD...
  local tool=$1 i=$2 bytes=$3; shift 3
  local t0 t1 c0 c1 secs cpu
  exec 9>"$LOCK"; flock 9
  c0=$(reg_cpu_ms); t0=$(date +%s%N)
  if ! "$@" >/dev/null 2>"$LAB/push-bench.err"; then
    flock -u 9; log "$tool run $i failed: $(tail -1 "$LAB/push-bench.err")"; return 0
  fi
  t1=$(date +%s%N); c1=$(reg_cpu_ms)
  flock -u 9
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", (b-a)/1000}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$W" "$i" "$secs" "$cpu" "$bytes" >>"$TSV"
  log "$tool #$i: ${secs}s, registry CPU ${cpu}s"
}
curl_upload() {  # the largest blob in one monolithic upload: POST, then PUT with the body
  local loc
  loc=$(curl -sf -X POST -D - -o /dev/null "http://$REG/v2/bench/push-curl/blobs/uploads/" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
  case "$loc" in http*) ;; *) loc="http://$REG$loc" ;; esac
  curl -sf -X PUT -T "$ROOT/blobs/sha256/$big" -H 'Content-Type: application/octet-stream' \
    "$loc&digest=sha256:$big" -o /dev/null
}
"$RBUILD_BIN" --root "$ROOT" tag "bench/$W" "$REG/bench/push-rbuild"
# Every tool reads the blobs from the page cache: a run must not pay for the disk reads
# that another's traffic evicted.
warm() { cat "$ROOT/blobs/sha256/$big" >/dev/null; }
for i in $(seq "$RUNS"); do
  "$SHARED/registry-rm.sh" bench/push-rbuild; sync; warm
  measure rbuild "$i" "$total" "$RBUILD_BIN" --root "$ROOT" push -q "$REG/bench/push-rbuild"
  "$SHARED/registry-rm.sh" bench/push-skopeo; sync; warm
  measure skopeo "$i" "$total" skopeo copy -q --dest-tls-verify=false "oci:$OCI" "docker://$REG/bench/push-skopeo"
  curl -s -o /dev/null -X DELETE "http://$REG/v2/bench/push-curl/blobs/sha256:$big"; sync; warm
  measure curl "$i" "$big_size" curl_upload
done
"$SHARED/registry-rm.sh" bench/push-
curl -s -o /dev/null -X DELETE "http://$REG/v2/bench/push-curl/blobs/sha256:$big"
[ "$KEEP" = 1 ] || { rm -rf "$OCI"; [ "$ROOT" = "$LAB/peers/push-bench" ] && rm -rf "$ROOT"; }

python3 - "$TSV" "$HERE/results/push.md" "$RBUILD_BIN" "$(skopeo --version | awk '{print $3}')" \
  "$(docker-registry --version | awk '{print $3}')" <<'EOF'
import csv, statistics, sys, datetime
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(r["tool"], []).append(r)
names = {"rbuild": "`rbuild push`", "skopeo": f"`skopeo copy` {sys.argv[4]} (OCI layout → registry)",
         "curl": "`curl` POST + PUT of the largest blob"}
w = rows[0]["workload"] if rows else "?"
out = [f"Push of the already-compressed `{w}` image to distribution {sys.argv[5]} on loopback "
       f"({datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, `bash bench/run-push.sh`, medians of "
       f"{max((len(v) for v in by.values()), default=0)} runs, min–max in brackets; rbuild "
       f"`{sys.argv[3].rsplit('/', 1)[-1]}`):", "",
       "| tool | seconds | MB/s | registry CPU, s |", "|---|---|---|---|"]
for t in ("rbuild", "skopeo", "curl"):
    rs = by.get(t)
    if not rs:
        continue
    s = [float(r["seconds"]) for r in rs]
    c = [float(r["registry_cpu_s"]) for r in rs]
    mb = float(rs[0]["bytes"]) / 1e6
    out.append(f"| {names[t]} | {statistics.median(s):.2f} [{min(s):.2f}–{max(s):.2f}] | "
               f"{mb / statistics.median(s):.0f} | {statistics.median(c):.2f} [{min(c):.2f}–{max(c):.2f}] |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
