#!/bin/bash
# bench/gpu/rescore_device.sh — the GPU evidence for the near-tie re-scoring
# and reproducibility change, in one device call (< 10 minutes):
#   build + module_check + gpu_kmeans_check (bench/gpu/run.sh check),
#   the Python GPU tests (tests/python/test_kmeans_gpu.py),
#   bench_kmeans with re-scoring (default) and without (FL_KM_RESCORE=0),
#   each bench fit followed by one untimed fit printing the share of
#   re-scored rows (FL_KM_STATS=1), and the previous commit's module (a copy
#   of its tree in .base, ignored and carried) timed by the same bench.
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
BUILD=$B timeout 420 bash bench/gpu/run.sh check >"$OUT/run_check.log" 2>&1
stamp "run.sh check rc=$?"
[ -f "$B/lib/libflashlib_cuda.so" ] || { tail -40 "$OUT/cmake.log"; exit 1; }
[ -d /tmp/debroot ] && export LD_LIBRARY_PATH=$PWD/$B/lib:/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp:/tmp/debroot/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
# baseline: the module of the previous commit (a copy in .base, carried),
# built while the Python tests run, timed by the same bench binary
BASE_PID=
if [ -f .base/CMakeLists.txt ]; then
    BA=()
    [ -d /tmp/debroot ] && BA=(-DFL_BLAS_LIB=/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so
                              -DFL_CBLAS_INCLUDE=/tmp/debroot/usr/include/x86_64-linux-gnu/openblas-openmp)
    (cmake -S .base -B build-base -G Ninja -DCMAKE_BUILD_TYPE=Release "${BA[@]}" &&
        cmake --build build-base -j10 --target flashlib_cuda) >"$OUT/base_build.log" 2>&1 &
    BASE_PID=$!
fi
FLASHLIB_LIBRARY=$PWD/$B/lib/libflashlib.so PYTHONPATH=python timeout 200 python3 -m pytest \
    tests/python/test_kmeans_gpu.py -q -rs -p no:cacheprovider >"$OUT/pytest_gpu.log" 2>&1
stamp "pytest test_kmeans_gpu.py rc=$?"
OUT=$OUT/b1 PREBUILT=$B timeout 120 bash bench/gpu/run.sh bench >"$OUT/bench_rescore.log" 2>&1
stamp "bench (re-scoring on) rc=$?"
if [ -n "$BASE_PID" ]; then
    wait $BASE_PID
    stamp "baseline build rc=$?"
    mkdir -p "$OUT/bb"
    [ -f build-base/lib/libflashlib_cuda.so ] &&
        OUT=$OUT/bb timeout 90 "$B/bin/bench_kmeans" build-base/lib/libflashlib_cuda.so 10 >"$OUT/bb/bench_kmeans.log" 2>&1
    stamp "bench (baseline module) rc=$?"
fi
FL_KM_RESCORE=0 OUT=$OUT/b0 PREBUILT=$B timeout 90 bash bench/gpu/run.sh bench >"$OUT/bench_norescore.log" 2>&1
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
echo "==== bench (baseline module 246e232) ===="
grep -E "^(1M|100K|2M) " "$OUT/bb/bench_kmeans.log" 2>/dev/null | cut -c1-120
cat "$OUT/summary.txt"
