#!/bin/bash
# bench/gpu/ann_pq_cagra_device.sh — the IVF-PQ and CAGRA GPU evidence on
# the GPU machine in one call: builds (incrementally when B exists), runs
# test_ivf (its GPU section: IVF-Flat, IVF-PQ and CAGRA against the CPU),
# tests/python/test_ivf_gpu.py, and bench_ann_pq_cagra.py (recall@10 vs QPS
# at batch 10,000 and 1; JSON, PNG, table). Results land in $OUT.
#   NO_TESTS=1 / NO_BENCH=1 skip a part; BENCH_ARGS passes flags on
#   (--quick, --no-exact).
set -o pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out}
mkdir -p "$OUT"
B=${B:-build-ann}
export GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1
BLAS_ARGS=()
if ls .debs/*.deb >/dev/null 2>&1; then
    mkdir -p /tmp/debroot
    for f in .debs/*.deb; do dpkg -x "$f" /tmp/debroot; done
    BLAS_ARGS=(-DFL_BLAS_LIB=/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so
               -DFL_CBLAS_INCLUDE=/tmp/debroot/usr/include/x86_64-linux-gnu/openblas-openmp)
fi
export LD_LIBRARY_PATH=$PWD/$B/lib:/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp:/tmp/debroot/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
t0=$(date +%s)
# configure once; build (incrementally when the machine kept the tree)
{ [ -f "$B/build.ninja" ] || cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFL_CUDA_ARCHS=90 "${BLAS_ARGS[@]}"; } \
    >"$OUT/build.log" 2>&1 &&
    cmake --build "$B" -j16 --target flashlib flashlib_cuda test_ivf >>"$OUT/build.log" 2>&1 ||
    { tail -30 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
export FLASHLIB_LIBRARY=$PWD/$B/lib/libflashlib.so
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >"$OUT/device.txt"
[ -n "$NO_TESTS" ] || {
    timeout ${TEST_TIMEOUT:-120} "$B/bin/test_ivf" >"$OUT/test_ivf.log" 2>&1
    echo "test_ivf rc=$? ($(( $(date +%s) - t0 )) s)"; grep -E "FAIL|checks" "$OUT/test_ivf.log" | tail -12
    PYTHONPATH=python timeout ${PYTEST_TIMEOUT:-260} python3 -m pytest -q -p no:cacheprovider tests/python/test_ivf_gpu.py 2>&1 | tail -25 | tee "$OUT/pytest_ivf_gpu.log"
    echo "pytest done ($(( $(date +%s) - t0 )) s)"
}
[ -n "$NO_BENCH" ] || {
    # DEADLINE (s since start): the bench gets what is left of it
    [ -n "$DEADLINE" ] && BENCH_TIMEOUT=$(( DEADLINE - ($(date +%s) - t0) - 15 ))
    PYTHONPATH=python timeout ${BENCH_TIMEOUT:-300} python3 bench/gpu/bench_ann_pq_cagra.py "$OUT/ann_pq_cagra.json" --no-plot $BENCH_ARGS 2>&1 | tee "$OUT/bench.log"
    python3 bench/gpu/bench_ann_pq_cagra.py --plot "$OUT/ann_pq_cagra.json" 2>&1 | tail -2
    echo "bench done ($(( $(date +%s) - t0 )) s)"
}
