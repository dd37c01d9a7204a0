#!/usr/bin/env bash
# Per-RUN overhead: what one trivial `RUN true` step costs each builder (sandbox start and
# stop, the step's snapshot and layer commit), measured as
#   (time of 101 × RUN true − time of 1 × RUN true) / 100
# on the lab busybox base, every build with --no-cache (the base stays local), builders
# taking turns run by run. Writes bench/results/overhead.md (a markdown table) and .tsv.
#
# Usage: bash bench/run-overhead.sh            (RUNS=5; needs the lab of bench/run.sh)
#        RBUILD_BIN=path BUILDERS="rbuild docker" RUNS=3 bash bench/run-overhead.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB="${LAB:-/var/tmp/rbuild-lab}"
REG="${REG:-127.0.0.1:5000}"
RUNS="${RUNS:-5}"
BUILDERS="${BUILDERS:-rbuild docker buildah}"
DOCKER=/usr/bin/docker
RBUILD_BIN="${RBUILD_BIN:-$(ls -td "$LAB"/bin/rbuild-*/rbuild 2>/dev/null | head -1)}"
[ -x "$RBUILD_BIN" ] || { echo "no rbuild binary: set RBUILD_BIN or run bench/run.sh first" >&2; exit 2; }
BASE="$REG/lab/busybox:latest"

CTX="$LAB/ctx-overhead"
mkdir -p "$CTX/run1" "$CTX/run101" "$HERE/results"
echo "FROM $BASE" >"$CTX/run1/Dockerfile"
echo "RUN true" >>"$CTX/run1/Dockerfile"
{ echo "FROM $BASE"; for _ in $(seq 101); do echo "RUN true"; done; } >"$CTX/run101/Dockerfile"

STATE="$LAB/peers/overhead"
BA=(buildah --root "$STATE/buildah/root" --runroot "$STATE/buildah/run" --storage-driver overlay)
build() {  # build BUILDER CTX-NAME
  local ctx="$CTX/$2"
  case "$1" in
    rbuild) "$RBUILD_BIN" --root "$STATE/rbuild" build --no-cache -q -t "overhead/$2" "$ctx" ;;
    docker) DOCKER_BUILDKIT=1 "$DOCKER" build --no-cache --network host -q -t "overhead/$2" "$ctx" ;;
    buildah) "${BA[@]}" build --no-cache --isolation chroot --layers -q -t "localhost/overhead/$2" "$ctx" ;;
  esac >/dev/null
}
seconds() {  # seconds CMD... -> wall time of CMD in seconds, or FAIL
  local t0 t1
  t0=$(date +%s.%N)
  if ! "$@"; then echo FAIL; return; fi
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

TSV="$HERE/results/overhead.tsv"
echo -e "builder\trun\tone_run_s\t101_runs_s\tper_run_ms" >"$TSV"
for b in $BUILDERS; do build "$b" run1; build "$b" run101; done   # warm-up: base pulled once
for i in $(seq "$RUNS"); do
  for b in $BUILDERS; do
    one=$(seconds build "$b" run1)
    many=$(seconds build "$b" run101)
    if [ "$one" = FAIL ] || [ "$many" = FAIL ]; then
      echo "$b run $i failed; not counted" >&2
      continue
    fi
    per=$(echo "($many - $one) * 1000 / 100" | bc -l)
    printf '%s\t%d\t%.3f\t%.3f\t%.1f\n' "$b" "$i" "$one" "$many" "$per" | tee -a "$TSV"
  done
done

python3 - "$TSV" "$HERE/results/overhead.md" "$RBUILD_BIN" <<'EOF'
import csv, statistics, sys, datetime
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(r["builder"], []).append(r)
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
names = {"rbuild": "rbuild", "docker": "docker BuildKit", "buildah": "buildah"}
# .../rbuild-<rev>/rbuild (rbuild next to its sandbox init) or .../rbuild-<rev>
parts = sys.argv[3].rstrip("/").split("/")
label = parts[-2] if parts[-1] == "rbuild" and len(parts) > 1 else parts[-1]
ranges = {b: (min(float(r["per_run_ms"]) for r in rs), max(float(r["per_run_ms"]) for r in rs)) for b, rs in by.items()}
out = [f"Per-RUN overhead ({datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, `bash bench/run-overhead.sh`, "
       f"{len(next(iter(by.values())))} runs per builder, medians; rbuild `{label}`):",
       "", "| builder | 1 × RUN true, s | 101 × RUN true, s | per RUN, ms (min–max) |", "|---|---|---|---|"]
for b, rs in by.items():
    lo, hi = ranges[b]
    out.append(f"| {names.get(b, b)} | {med(rs, 'one_run_s'):.2f} | {med(rs, '101_runs_s'):.2f} | "
               f"{med(rs, 'per_run_ms'):.1f} ({lo:.1f}–{hi:.1f}) |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
