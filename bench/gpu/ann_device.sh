#!/bin/bash
# bench/gpu/ann_device.sh — the IVF-Flat GPU evidence on the GPU machine in
# one call: test_ivf (GPU against CPU), tests/python/test_ivf_gpu.py, and
# bench_ann.py (recall@10 vs QPS at batch 10,000 and 1; JSON, PNG, table).
# B names a directory holding lib/libflashlib.so*, lib/libflashlib_cuda.so
# and bin/test_ivf (carried from the development machine); without them it
# configures and builds there. Results land in $OUT.
set -o pipefail
cd "$(dirname "$0")/../.."
B=${B:-build-ivf}
. bench/gpu/device_env.sh
if [ ! -x "$B/bin/test_ivf" ] || [ ! -f "$B/lib/libflashlib_cuda.so" ]; then
    cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$OUT/build.log" 2>&1 &&
        cmake --build "$B" -j16 --target flashlib flashlib_cuda test_ivf >>"$OUT/build.log" 2>&1 || exit 1
fi
export FLASHLIB_LIBRARY=$PWD/$B/lib/libflashlib.so
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >"$OUT/device.txt"
[ -n "$NO_TESTS" ] || {
    timeout 120 "$B/bin/test_ivf" >"$OUT/test_ivf.log" 2>&1
    echo "test_ivf rc=$?"; tail -5 "$OUT/test_ivf.log"
    timeout 200 python3 -m pytest -q -x -p no:cacheprovider tests/python/test_ivf_gpu.py 2>&1 | tail -15 | tee "$OUT/pytest_ivf_gpu.log"
}
[ -n "$NO_BENCH" ] || PYTHONPATH=python timeout ${BENCH_TIMEOUT:-400} python3 bench/gpu/bench_ann.py "$OUT/ann.json" $BENCH_ARGS 2>&1 | tee "$OUT/bench_ann.log"
