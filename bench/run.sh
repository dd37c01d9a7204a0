#!/usr/bin/env bash
# run.sh — rbuild against docker BuildKit and buildah on the lab workloads, in one run on
# one machine, and write bench/RESULTS.md.  See bench/README.md.
#
#   bash bench/run.sh             full run (about 60–90 min on 2 cores)
#   bash bench/run.sh --quick     one run per measurement, no limits.sh (harness check)
#
# Env knobs (defaults in brackets):
#   WORKLOADS   [all of ../shared/bench/workloads]     BUILDERS [rbuild docker buildah]
#   RUNS_COLD [3] RUNS_WARM [5] RUNS_CHANGE [3] RUNS_PUSH [3]
#   PHASES [cold noop change push]   which measurements to take
#   MERGE [0]   1: merge this run's rows into bench/results/latest.tsv (replacing the
#               builder/workload/phase groups it measured) instead of replacing the file,
#               e.g. `PHASES=push MERGE=1 LIMITS=0 bash bench/run.sh`
#   SETUP [1]   bring the lab up first (setup-lab.sh, make-base-images.sh, gen.sh; idempotent)
#   LIMITS [1]  run limits.sh + limits-extra.sh (0: reuse the last results under $LAB/results)
#   RBUILD_BIN  use this rbuild binary instead of building git HEAD (`cargo build --release`
#               of a `git archive HEAD` copy, target dir $LAB/target-bench, cached per commit)
#   KEEP [0]    keep the builders' state and pushed images afterwards (default: wipe them)
#   OUT [bench/RESULTS.md]
#   README [0]  1: also refresh the summary table between the README's bench markers
#
# Every measurement is one command through ../shared/bench/peer.sh (rbuild via
# bench/rbuild-peer.sh), timed by this script: wall time from `date +%s%N`, peak RSS from
# `/usr/bin/time -f %M` (plus dockerd's VmHWM for docker, whose daemon does the work).
# Builders take turns run by run, in rotated order (rbuild docker buildah, docker buildah
# rbuild, ...), so that load changes on a shared machine hit all of them alike; before each
# cold and changed build the context is read once (untimed) so it is in the page cache.  Raw rows: $LAB/results/bench-<stamp>/raw.tsv
# (copied to bench/results/latest.tsv).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$(cd "$REPO/../shared/bench" && pwd)}"
export LAB="${LAB:-/var/tmp/rbuild-lab}"
export SHARED_BENCH="$SHARED"
REG=127.0.0.1:5000

if [ "${1:-}" = --quick ]; then
  : "${RUNS_COLD:=1}" "${RUNS_WARM:=1}" "${RUNS_CHANGE:=1}" "${RUNS_PUSH:=1}" "${LIMITS:=0}"
elif [ -n "${1:-}" ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2
fi
WORKLOADS="${WORKLOADS:-$(cd "$SHARED/workloads" && ls -d */ | tr -d / | tr '\n' ' ')}"
BUILDERS="${BUILDERS:-rbuild docker buildah}"
RUNS_COLD="${RUNS_COLD:-3}"; RUNS_WARM="${RUNS_WARM:-5}"
RUNS_CHANGE="${RUNS_CHANGE:-3}"; RUNS_PUSH="${RUNS_PUSH:-3}"
SETUP="${SETUP:-1}"; LIMITS="${LIMITS:-1}"; KEEP="${KEEP:-0}"; MERGE="${MERGE:-0}"
PHASES=" ${PHASES:-cold noop change push} "
has() { [[ "$PHASES" == *" $1 "* ]]; }
OUT="${OUT:-$HERE/RESULTS.md}"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES="$LAB/results/bench-$STAMP"; mkdir -p "$RES"
RAW="$RES/raw.tsv"; ERRLOG="$RES/commands.log"
P="$SHARED/peer.sh"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$RES/run.log" >&2; }

# ------------------------------------------------------------------ the lab
if [ "$SETUP" = 1 ]; then
  log "bringing the lab up"
  "$SHARED/setup-lab.sh" >>"$RES/setup.log" 2>&1
  "$SHARED/make-base-images.sh" >>"$RES/setup.log" 2>&1
  for w in $WORKLOADS; do "$SHARED/workloads/$w/gen.sh" >>"$RES/setup.log" 2>&1; done
fi
curl -sf -o /dev/null "http://$REG/v2/" || { log "registry $REG is down: run $SHARED/setup-lab.sh"; exit 1; }

# ------------------------------------------------------------------ rbuild under test
if [ -z "${RBUILD_BIN:-}" ]; then
  # The committed HEAD is what gets measured: other work in progress in the checkout must
  # neither break the build nor end up in the numbers.  It is built from a `git archive`
  # copy with its own target directory (the first build compiles all dependencies once).
  rev=$(git -C "$REPO" rev-parse --short HEAD)
  # rbuild and its standalone sandbox init, side by side as installed.
  RBUILD_BIN="$LAB/bin/rbuild-$rev/rbuild"
  if [ ! -x "$RBUILD_BIN" ]; then
    log "building rbuild $rev (release) from git HEAD"
    src="$LAB/src/rbuild-$rev"; rm -rf "$src"; mkdir -p "$src" "$LAB/bin/rbuild-$rev"
    git -C "$REPO" archive HEAD | tar -x -C "$src"
    (cd "$src" && CARGO_TARGET_DIR="$LAB/target-bench" cargo build --release -p rbuild) >>"$RES/setup.log" 2>&1 \
      || { log "cargo build failed (see $RES/setup.log)"; exit 1; }
    cp "$LAB/target-bench/release/rbuild" "$LAB/target-bench/release/rbuild-sandbox-init" "$LAB/bin/rbuild-$rev/"
    rm -rf "$src"
  fi
  echo "$rev" > "$RES/rbuild-rev"
else
  echo "$RBUILD_BIN" > "$RES/rbuild-rev"
fi
export RBUILD_BIN
export RBUILD="$HERE/rbuild-peer.sh"

DOCKERD_PID=""
if [[ " $BUILDERS " == *" docker "* ]]; then
  if /usr/bin/docker info >/dev/null 2>&1 && [ -s "$LAB/run/dockerd.pid" ]; then
    DOCKERD_PID=$(cat "$LAB/run/dockerd.pid")
  else
    log "dockerd is not running: docker is left out (start it with $SHARED/start-dockerd.sh)"
    BUILDERS=$(echo " $BUILDERS " | sed 's/ docker / /')
  fi
fi

# ------------------------------------------------------------------ limits
if [ "$LIMITS" = 1 ]; then
  log "physical-limit references (limits.sh, limits-extra.sh)"
  "$SHARED/limits.sh" >>"$RES/limits.log" 2>&1 || log "limits.sh failed (see $RES/limits.log)"
  "$HERE/limits-extra.sh" >>"$RES/limits.log" 2>&1 || log "limits-extra.sh failed (see $RES/limits.log)"
fi

{
  echo "start=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rbuild=$(cat "$RES/rbuild-rev")"
  echo "docker=$(/usr/bin/docker version --format '{{.Server.Version}}' 2>/dev/null || echo n/a)"
  echo "buildah=$(buildah version 2>/dev/null | awk '/^Version/{print $2}')"
  echo "runc=$(runc --version | awk 'NR==1{print $3}')"
  echo "registry=$(docker-registry --version | awk '{print $3}')"
  echo "builders=$BUILDERS"
  echo "phases=$PHASES"
  echo "runs=$RUNS_COLD/$RUNS_WARM/$RUNS_CHANGE/$RUNS_PUSH"
} >"$RES/meta"

# ------------------------------------------------------------------ measuring
printf 'builder\tworkload\tphase\trun\tseconds\trss_kb\tstatus\n' > "$RAW"
# measure BUILDER WORKLOAD PHASE RUN CMD... : one timed command, one row in raw.tsv
measure() {
  local b=$1 w=$2 ph=$3 i=$4; shift 4
  local tf="$RES/time.out" t0 t1 st=ok rss extra=0
  # dockerd does docker's work; its peak RSS since the reset counts, the client's too.
  [ "$b" = docker ] && echo 5 > "/proc/$DOCKERD_PID/clear_refs"
  echo "### $b $w $ph $i: $*" >>"$ERRLOG"
  t0=$(date +%s%N)
  /usr/bin/time -f %M -o "$tf" "$@" >>"$ERRLOG" 2>&1 || st=fail
  t1=$(date +%s%N)
  rss=$(tail -1 "$tf")
  [ "$b" = docker ] && extra=$(awk '/^VmHWM/{print $2}' "/proc/$DOCKERD_PID/status")
  local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$b" "$w" "$ph" "$i" "$secs" "$((rss + extra))" "$st" >>"$RAW"
  log "  $b $w $ph #$i: ${secs}s, $(( (rss + extra) / 1024 )) MiB${st/ok/}"
}

# rotated N: $BUILDERS rotated left by N-1, so that no builder always goes first (the
# first one after a reset of the others pays for their disk write-back)
rotated() {
  local -a b=($BUILDERS); local n=${#b[@]} k=$(( ($1 - 1) % ${#b[@]} )) j
  for ((j = 0; j < n; j++)); do printf '%s ' "${b[$(( (j + k) % n ))]}"; done
}
# Reads the whole context (data and inodes) into the page and dentry caches, untimed, so
# whichever builder runs first does not pay for a context the others' disk traffic evicted.
warm() { tar -C "$LAB/ctx/$1" -cf - . >/dev/null; }

for w in $WORKLOADS; do
  log "== $w"
  if ! has cold; then for b in $BUILDERS; do "$P" reset "$b" >>"$ERRLOG" 2>&1; done; fi
  has cold || RUNS_COLD=0; has noop || RUNS_WARM=0; has change || RUNS_CHANGE=0; has push || RUNS_PUSH=0
  for i in $(seq "$RUNS_COLD"); do
    for b in $(rotated "$i"); do
      "$P" reset "$b" >>"$ERRLOG" 2>&1; sync; warm "$w"
      measure "$b" "$w" cold "$i" "$P" build "$b" "$w"
    done
  done
  for b in $BUILDERS; do "$P" build "$b" "$w" >>"$ERRLOG" 2>&1 || true; done   # warm-up
  for i in $(seq "$RUNS_WARM"); do
    for b in $(rotated "$i"); do sync; measure "$b" "$w" noop "$i" "$P" build "$b" "$w"; done
  done
  for i in $(seq "$RUNS_CHANGE"); do
    "$SHARED/change-ctx.sh" "$w"
    for b in $(rotated "$i"); do sync; warm "$w"; measure "$b" "$w" change "$i" "$P" build "$b" "$w"; done
  done
  # Push before restoring the context: every builder pushes the image of its last build.
  for i in $(seq "$RUNS_PUSH"); do
    for b in $(rotated "$i"); do
      "$SHARED/registry-rm.sh" "bench/$w-$b"; sync
      measure "$b" "$w" push "$i" "$P" push "$b" "$w"
    done
  done
  "$SHARED/change-ctx.sh" "$w" restore
  if [ "$KEEP" != 1 ]; then   # the big-file states are several GiB per builder
    for b in $BUILDERS; do "$P" reset "$b" >>"$ERRLOG" 2>&1 || true; done
  fi
  # a report after each workload, so an interrupted run still leaves its numbers
  [ "$MERGE" = 1 ] || python3 "$HERE/report.py" --raw "$RAW" --meta "$RES/meta" --lab "$LAB" --out "$OUT"
done
[ "$KEEP" = 1 ] || "$SHARED/registry-rm.sh" bench/

echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/meta"
mkdir -p "$HERE/results"
if [ "$MERGE" = 1 ] && [ -f "$HERE/results/latest.tsv" ]; then
  python3 "$HERE/report.py" --merge "$HERE/results/latest.tsv" "$RAW" > "$RES/merged.tsv"
  mv "$RES/merged.tsv" "$HERE/results/latest.tsv"
  echo "rerun=$(sed -n 's/^start=//p' "$RES/meta"): phases$PHASES- workloads $WORKLOADS- builders $BUILDERS- rbuild $(cat "$RES/rbuild-rev"), load $(sed -n 's/^load_start=//p' "$RES/meta")" \
    >>"$HERE/results/latest.meta"
else
  cp "$RAW" "$HERE/results/latest.tsv"; cp "$RES/meta" "$HERE/results/latest.meta"
fi
readme=(); [ "${README:-0}" = 1 ] && readme=(--readme "$REPO/README.md")
python3 "$HERE/report.py" --raw "$HERE/results/latest.tsv" --meta "$HERE/results/latest.meta" \
  --lab "$LAB" --out "$OUT" "${readme[@]}"
log "wrote $OUT (raw: $RAW)"
