#!/bin/bash
# bench/gpu/pca_device.sh — the GPU evidence for PCA in one call on the GPU
# machine, with a build carried from the development machine (build-gpu)
# or, when none is carried, built here first:
# the benchmark (bench_pca: flashlib with X on the device, module variants,
# host-data crossover), the C and Python GPU tests, then the peers
# (torch.linalg on the same GPU, scikit-learn on the host's cores).
#
#   OUT=/tmp/out GIT_COMMIT=abc1234 bash bench/gpu/pca_device.sh
#
# T_BENCH, T_TEST, T_PYTEST, T_PEERS: each step's time limit in seconds.
set -o pipefail
cd "$(dirname "$0")/../.."
B=${B:-build-gpu}
. bench/gpu/device_env.sh
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/summary.txt"; }
# no carried build: configure and build here (sm_90 only unless FL_CUDA_ARCHS says otherwise)
if [ ! -x "$B/bin/bench_pca" ]; then
    stamp "build"
    cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFL_CUDA_ARCHS="${FL_CUDA_ARCHS:-90}" \
        >"$OUT/build.log" 2>&1 &&
        cmake --build "$B" -j16 --target flashlib flashlib_cuda test_pca bench_pca >>"$OUT/build.log" 2>&1 || {
        echo "build failed"; grep -E "error|FAILED" "$OUT/build.log" | head -30; exit 1; }
    stamp "build done"
fi
export FL_CUDA_MODULE=$PWD/$B/lib/libflashlib_cuda.so
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >"$OUT/device.txt"
stamp "bench_pca"
timeout ${T_BENCH:-150} "$B/bin/bench_pca" "$B/lib/libflashlib_cuda.so" "$OUT/pca_cuda.json" ${REPS:-10} >"$OUT/bench_pca.log" 2>&1
stamp "bench_pca rc=$?"
stamp "test_pca"
timeout ${T_TEST:-120} "$B/bin/test_pca" >"$OUT/test_pca.log" 2>&1
stamp "test_pca rc=$?"
stamp "pytest"
FLASHLIB_LIBRARY=$PWD/$B/lib/libflashlib.so PYTHONPATH=python timeout ${T_PYTEST:-150} python3 -m pytest \
    tests/python/test_pca_gpu.py tests/python/test_decomposition.py -q -p no:cacheprovider -rs \
    >"$OUT/pytest_pca.log" 2>&1
stamp "pytest rc=$?"
if [ -z "$NO_PEERS" ]; then
    stamp "peers"
    timeout ${T_PEERS:-200} python3 bench/gpu/pca_peers.py --out "$OUT/pca_peers.json" --sklearn-fits ${SK_FITS:-2} \
        >"$OUT/pca_peers.log" 2>&1
    stamp "peers rc=$?"
fi
# repository-relative paths in the logs
sed -i "s#$PWD/##g" "$OUT"/*.log "$OUT"/*.txt 2>/dev/null
cat "$OUT/bench_pca.log" "$OUT/pca_peers.log" 2>/dev/null | tail -${LOG_LINES:-40}
tail -n 3 "$OUT/test_pca.log" "$OUT/pytest_pca.log"
# the device tool brings back at most 8 files: the logs in one archive
(cd "$OUT" && tar czf logs.tgz *.log *.txt && rm -f *.log *.txt)
