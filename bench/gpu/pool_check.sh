#!/bin/bash
# bench/gpu/pool_check.sh — the CUDA module's device-buffer pool on the GPU
# machine in one call: the GPU Python tests (per-test durations, each file
# under a time limit), then bench_knn's latency-bound cases with the pool
# (default) and without it (KNN_POOL=0 / FL_CUDA_POOL=0), alternated twice.
#   OUT=/tmp/out GIT_COMMIT=abc1234 bash bench/gpu/pool_check.sh
set -o pipefail
cd "$(dirname "$0")/../.."
B=${B:-build-pool}
. bench/gpu/device_env.sh
fl_build flashlib flashlib_cuda bench_knn
for f in ${PYFILES:-$(ls tests/python/test_*gpu*.py)}; do
    FLASHLIB_LIBRARY=$PWD/$B/lib/libflashlib.so PYTHONPATH=python timeout ${T_PY:-150} python3 -m pytest "$f" -q \
        -p no:cacheprovider --durations=5 >"$OUT/pytest_$(basename "$f" .py).log" 2>&1
    echo "$f rc=$?"; tail -n 1 "$OUT/pytest_$(basename "$f" .py).log"
done
for r in 1 2; do
    for p in 1 0; do
        for flt in "(latency)" "k=1024"; do
            KNN_POOL=$p timeout 100 "$B/bin/bench_knn" "$M" "$OUT/knn_pool${p}_$r.json" 10 "$flt" 2>&1 | grep median |
                cut -c1-100 | sed "s/^/pool=$p run $r: /" | tee -a "$OUT/bench_pool.log"
        done
    done
done
sed -i "s#$PWD/##g" "$OUT"/*.log 2>/dev/null
