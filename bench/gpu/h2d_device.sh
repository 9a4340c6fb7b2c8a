#!/usr/bin/env bash
# h2d_device.sh — the pinned staging of host -> device copies on the GPU
# machine, in one call: build (bench/gpu/run.sh check: module_check with its
# staged-vs-pageable case, gpu_kmeans_check, knn_check), the Python A/B
# (bench/gpu/h2d_ab.py), then the calibration points with the data on the
# host re-measured (KMeans and kNN, bench/calib/run.sh ONLY=input=host FIT=0;
# the fit runs afterwards on any machine). Results under $OUT in the
# repository's layout.
#   GIT_COMMIT=<sha> OUT=$OUT bash bench/gpu/h2d_device.sh
set -o pipefail
cd "$(dirname "$0")/../.."
# at most a few files come back from the machine: everything goes into
# $OUT/results.tgz (in the repository's layout), the log beside it
FINAL_OUT=${OUT:-out}
mkdir -p "$FINAL_OUT"
OUT=/tmp/h2d_out
rm -rf "$OUT"
mkdir -p "$OUT"
trap 'tar czf "$FINAL_OUT/results.tgz" -C "$OUT" .' EXIT
export GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*"; }
B=build-gpu
if [ -n "$SKIP_CHECKS" ] && [ -f "$B/lib/libflashlib_cuda.so" ]; then
    stamp "prebuilt $B, checks skipped (SKIP_CHECKS)"
else
    stamp "build + GPU checks"
    BUILD=$B OUT=$OUT bash bench/gpu/run.sh check >"$OUT/run_check.log" 2>&1
    echo "run.sh check rc=$?"
fi
grep -E "staged vs pageable|checks|FAIL" "$OUT/module_check.log" | tail -8
tail -2 "$OUT/gpu_kmeans_check.log" 2>/dev/null
tail -1 "$OUT/knn_check.log" 2>/dev/null
[ -f "$B/lib/libflashlib_cuda.so" ] || { tail -30 "$OUT/cmake.log"; exit 1; }
export LD_LIBRARY_PATH=$PWD/$B/lib:$LD_LIBRARY_PATH
[ -d /tmp/debroot ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp:/tmp/debroot/usr/lib/x86_64-linux-gnu
TAG=h100; nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && TAG=h200
mkdir -p "$OUT/bench/results"
stamp "Python A/B: staging on / off"
# the CPUs the copies run on: count, cgroup quota, steal time around the A/B
echo "nproc $(nproc); cpu.max $(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo none)" | tee "$OUT/cpus.txt"
grep '^cpu ' /proc/stat | tee -a "$OUT/cpus.txt"
FLASHLIB_LIBRARY=$PWD/$B/lib/libflashlib.so PYTHONPATH=python timeout 150 python3 bench/gpu/h2d_ab.py \
    --out "$OUT/bench/results/h2d_ab_${TAG}_$GIT_COMMIT.json" 2>&1 | tee "$OUT/h2d_ab.log"
grep '^cpu ' /proc/stat | tee -a "$OUT/cpus.txt"

if [ -n "$FULL_KMEANS" ]; then
    # every KMeans point again (two seeds, as the other GPU's), then kNN's host points into that file
    for seed in 3 4; do
        stamp "calibration: every KMeans point, seed $seed"
        OPS=kmeans SEED=$seed ADD=$([ $seed = 4 ] && echo 1 || echo 0) PREBUILT=$B FIT=0 BUDGET_S=120 OUT=$OUT \
            timeout 250 bash bench/calib/run.sh >"$OUT/calib_run_kmeans_$seed.log" 2>&1
        echo "calib rc=$?"
        grep -E "points measured|merge:|wrote" "$OUT/calib_run_kmeans_$seed.log"
        cp "$OUT/calib/measure.log" "$OUT/calib/measure_kmeans_$seed.log"
    done
    CALIB_OPS=knn
    export MERGE_FROM=$OUT/calib
fi
if [ -z "$NO_CALIB" ]; then
    stamp "calibration: host-input points"
    OPS=${CALIB_OPS:-kmeans,knn} ONLY=input=host PREBUILT=$B FIT=0 BUDGET_S=${BUDGET_S:-150} OUT=$OUT \
        timeout 300 bash bench/calib/run.sh >"$OUT/calib_run.log" 2>&1
    echo "calib rc=$?"
    grep -E "points measured|merge:|wrote" "$OUT/calib_run.log"
fi
stamp done
