#!/bin/bash
# bench/gpu/knn_device.sh — the exact kNN evidence on the GPU machine in one
# call: knn_check (correctness), bench_knn (timings), knn_peers.py (PyTorch
# and scikit-learn on the same shapes). Uses build-gpu when it holds the
# binaries (carried from the development machine), else configures and
# builds there with all cores. Results land in $OUT.
set -o pipefail
cd "$(dirname "$0")/../.."
B=${B:-build-gpu}
. bench/gpu/device_env.sh
if [ ! -x "$B/bin/knn_check" ] || [ ! -f "$B/lib/libflashlib_cuda.so" ]; then
    cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$OUT/build.log" 2>&1 &&
        cmake --build "$B" -j16 --target flashlib_cuda knn_check bench_knn >>"$OUT/build.log" 2>&1 || exit 1
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >"$OUT/device.txt"
timeout 250 "$B/bin/knn_check" "$B/lib/libflashlib_cuda.so" 2>&1 | sed "s#$PWD#.#g" >"$OUT/knn_check.log"
echo "knn_check rc=$?"; tail -1 "$OUT/knn_check.log"
timeout 250 "$B/bin/bench_knn" "$B/lib/libflashlib_cuda.so" "$OUT/knn_cuda.json" ${REPS:-10} 2>&1 | tee "$OUT/bench_knn.log"
[ -n "$NO_PEERS" ] || timeout 300 python3 bench/gpu/knn_peers.py "$OUT/knn_peers.json" ${REPS:-10} 2>&1 | tee "$OUT/knn_peers.log"
