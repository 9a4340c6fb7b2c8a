#!/bin/bash
# bench/gpu/issue5_device.sh — all of the decomposition and dense
# linear-algebra evidence on the GPU machine in one call (the machine does
# not stay ours between calls): build, the C suites with GPU sections
# (test_linalg, test_linalg_eig, test_pca), the Python GPU tests of PCA /
# TruncatedSVD / linalg, then the benchmarks: the GEMM ladder (bench_linalg
# + plot), randomized TruncatedSVD / PCA at 1M x 512 (bench_tsvd, with
# torch and scikit-learn via tsvd_peers.py), eigh / polar variants
# (bench_eig). Every step has its own time limit; results land in $OUT.
set -o pipefail
cd "$(dirname "$0")/../.."
B=${B:-build-i5}
. bench/gpu/device_env.sh
t0=$(date +%s)
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$OUT/build.log" 2>&1 &&
    cmake --build "$B" -j16 --target flashlib flashlib_cuda test_linalg test_linalg_eig test_pca bench_linalg \
        bench_eig bench_tsvd >>"$OUT/build.log" 2>&1 || {
    echo "build failed"; grep -E "error|FAILED" "$OUT/build.log" | head -30; exit 1; }
echo "build: $(($(date +%s) - t0)) s"
export FL_CUDA_MODULE=$PWD/$B/lib/libflashlib_cuda.so FLASHLIB_LIBRARY=$PWD/$B/lib/libflashlib.so
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >"$OUT/device.txt"
step() { # name limit command...
    local name=$1 lim=$2; shift 2
    local s=$(date +%s)
    timeout "$lim" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name rc=$rc $(($(date +%s) - s)) s"; tail -${TAILN:-4} "$OUT/$name.log"
}
if [ -z "$NO_TESTS" ]; then
    for t in test_linalg test_linalg_eig test_pca; do step $t 150 "$B/bin/$t"; done
    TAILN=3 step pytest_gpu 200 python3 -m pytest -q -p no:cacheprovider tests/python/test_pca_gpu.py \
        tests/python/test_linalg.py tests/python/test_linalg_eig.py tests/python/test_decomp_la.py
fi
step bench_linalg ${LADDER_TIMEOUT:-150} "$B/bin/bench_linalg" "$OUT/gemm_ladder.json" ${REPS:-10}
python3 bench/gpu/plot_gemm_ladder.py "$OUT/gemm_ladder.json" "$OUT/gemm_ladder" 2>&1 | tail -3
step bench_tsvd 120 "$B/bin/bench_tsvd" "$OUT/tsvd.json" 5
step tsvd_peers 150 python3 bench/gpu/tsvd_peers.py "$OUT/tsvd_peers.json"
TAILN=30 step bench_eig ${EIG_TIMEOUT:-200} "$B/bin/bench_eig" "$OUT/eig.json" ${EIG_SIZES:-1024,4096,8192} 3
echo "total: $(($(date +%s) - t0)) s"
# the device tool brings back a handful of files: everything in one
# archive, plus the main JSON beside it
(cd "$OUT" && tar czf all.tgz --exclude=all.tgz * && find . -maxdepth 1 -type f ! -name all.tgz ! -name 'gemm_ladder.json' \
    ! -name 'eig.json' ! -name 'tsvd.json' -delete)
