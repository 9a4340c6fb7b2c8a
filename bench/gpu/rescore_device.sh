#!/bin/bash
# bench/gpu/rescore_device.sh — the GPU evidence for the near-tie re-scoring
# and reproducibility change, in one device call (< 10 minutes):
#   build + module_check + gpu_kmeans_check (bench/gpu/run.sh check),
#   the Python GPU tests (tests/python/test_kmeans_gpu.py),
#   bench_kmeans with re-scoring (default) and without (FL_KM_RESCORE=0),
#   each bench fit followed by one untimed fit printing the share of
#   re-scored rows (FL_KM_STATS=1).
# Logs and JSON are packed into $OUT/results.tgz; a summary is printed last.
#   OUT=/tmp/o bash bench/gpu/rescore_device.sh [SHAPES]
set -o pipefail
cd "$(dirname "$0")/../.."
FINAL_OUT=${OUT:-out}
mkdir -p "$FINAL_OUT"
export OUT=/tmp/rs_out
rm -rf "$OUT"
mkdir -p "$OUT/b1" "$OUT/b0"
export GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1
B=build-gpu
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/summary.txt"; }
trap 'tar czf "$FINAL_OUT/results.tgz" -C "$OUT" .' EXIT

stamp "build + module_check + gpu_kmeans_check"
BUILD=$B bash bench/gpu/run.sh check >"$OUT/run_check.log" 2>&1
stamp "run.sh check rc=$?"
[ -f "$B/lib/libflashlib_cuda.so" ] || { tail -40 "$OUT/cmake.log"; exit 1; }
[ -d /tmp/debroot ] && export LD_LIBRARY_PATH=$PWD/$B/lib:/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-pthread:/tmp/debroot/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
FLASHLIB_LIBRARY=$PWD/$B/lib/libflashlib.so PYTHONPATH=python timeout 240 python3 -m pytest \
    tests/python/test_kmeans_gpu.py -q -rs -p no:cacheprovider >"$OUT/pytest_gpu.log" 2>&1
stamp "pytest test_kmeans_gpu.py rc=$?"
OUT=$OUT/b1 PREBUILT=$B timeout 200 bash bench/gpu/run.sh bench >"$OUT/bench_rescore.log" 2>&1
stamp "bench (re-scoring on) rc=$?"
FL_KM_RESCORE=0 OUT=$OUT/b0 PREBUILT=$B timeout 150 bash bench/gpu/run.sh bench >"$OUT/bench_norescore.log" 2>&1
stamp "bench (FL_KM_RESCORE=0) rc=$?"
echo "==== module_check (failures, near-ties, repeat) ===="
grep -E "FAILED|near-ties|repeat|kmeans_fit stats|module_check:" "$OUT/module_check.log" | cut -c1-200 | tail -60
echo "==== gpu_kmeans_check ===="
tail -3 "$OUT/gpu_kmeans_check.log"
echo "==== pytest ===="
tail -15 "$OUT/pytest_gpu.log"
echo "==== bench (on) ===="
grep -vE "^\s*$" "$OUT/b1/bench_kmeans.log" | cut -c1-160 | tail -28
echo "==== bench (off) ===="
grep -E "^(1M|100K|2M) " "$OUT/b0/bench_kmeans.log" | cut -c1-120
cat "$OUT/summary.txt"
