#!/bin/bash
# bench/gpu/run.sh — everything the GPU machine does for the CUDA KMeans, in
# one call: configure + build (unless PREBUILT=dir holds bin/ and lib/),
# GPU correctness checks, benchmarks, peers; results and logs under $OUT.
#   OUT=/tmp/out GIT_COMMIT=abc123 bash bench/gpu/run.sh [check|bench|peers|all]
set -o pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out}
mkdir -p "$OUT"
WHAT=${1:-all}
export GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$OUT/device.txt"

# libflashlib needs CBLAS; the GPU image may lack it: unpack the carried
# Debian packages under /tmp (never over /) and point the build at them.
BLAS_ARGS=()
if ! ls /usr/include/*/cblas.h /usr/include/cblas.h >/dev/null 2>&1 && ls .debs/*.deb >/dev/null 2>&1; then
    mkdir -p /tmp/debroot
    for f in .debs/*.deb; do dpkg -x "$f" /tmp/debroot; done
    BLAS_ARGS=(-DFL_BLAS_LIB=/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so
               -DFL_CBLAS_INCLUDE=/tmp/debroot/usr/include/x86_64-linux-gnu/openblas-openmp)
    export LD_LIBRARY_PATH=/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp:/tmp/debroot/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
fi

if [ -n "$PREBUILT" ]; then
    B=$PREBUILT
else
    B=${BUILD:-build-gpu}
    cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release "${BLAS_ARGS[@]}" >"$OUT/cmake.log" 2>&1 &&
        cmake --build "$B" -j16 >>"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
fi
export LD_LIBRARY_PATH=$B/lib:$LD_LIBRARY_PATH
rc=0
if [ "$WHAT" = all ] || [ "$WHAT" = check ]; then
    "$B/bin/module_check" "$B/lib/libflashlib_cuda.so" 2>&1 | tee "$OUT/module_check.log" || rc=1
    if [ -x "$B/bin/gpu_kmeans_check" ]; then
        "$B/bin/gpu_kmeans_check" 2>&1 | tee "$OUT/gpu_kmeans_check.log" || rc=1
    fi
    if [ -x "$B/bin/knn_check" ]; then
        "$B/bin/knn_check" "$B/lib/libflashlib_cuda.so" 2>&1 | sed "s#$PWD#.#g" >"$OUT/knn_check.log" || rc=1
        tail -1 "$OUT/knn_check.log"
    fi
fi
if [ "$WHAT" = all ] || [ "$WHAT" = bench ]; then
    "$B/bin/bench_kmeans" "$B/lib/libflashlib_cuda.so" 10 ${SHAPES:-} 2>&1 | tee "$OUT/bench_kmeans.log" || rc=1
    if [ -x "$B/bin/bench_knn" ] && [ -z "${NO_KNN_BENCH:-}" ]; then
        "$B/bin/bench_knn" "$B/lib/libflashlib_cuda.so" "$OUT/knn_cuda.json" 10 2>&1 | tee "$OUT/bench_knn.log" || rc=1
    fi
fi
if [ "$WHAT" = all ] || [ "$WHAT" = peers ]; then
    PYTHONUNBUFFERED=1 python3 bench/gpu/peers.py --out "$OUT/peers.json" ${PEERS_ARGS:-} 2>&1 | tee "$OUT/peers.log"
fi
exit $rc
