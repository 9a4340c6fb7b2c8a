#!/bin/bash
# bench/gpu/pca_block_ab.sh — A/B of the top-k eigen solver's block size
# (algo/linalg_topk.h's fli_topk_block): the default build against one
# built with -DFLI_TOPK_BLOCK_2K (the earlier k + max(k, 16)), both on this
# GPU in one call: test_pca on the default build first, then bench_pca's
# headline (1M x 512 -> 32, X on the device) alternated three times, each
# with five logged fits (the solver's steps and phases). ALT=FLI_TOPK_BLOCK_8
# builds the other side with k + 8 instead.
#   OUT=/tmp/out GIT_COMMIT=abc1234 [ALT=FLI_TOPK_BLOCK_8] bash bench/gpu/pca_block_ab.sh
set -o pipefail
cd "$(dirname "$0")/../.."
B=${B:-build-blk}
A=${A:-build-blk2k}
. bench/gpu/device_env.sh
# configured once; built every call (a build kept on the machine from an earlier call may be stale)
([ -f "$B/build.ninja" ] || cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFL_CUDA_ARCHS="${FL_CUDA_ARCHS:-90}" >"$OUT/build.log" 2>&1) &&
    cmake --build "$B" -j16 --target flashlib flashlib_cuda test_pca bench_pca >>"$OUT/build.log" 2>&1 || {
    echo "build failed"; grep -E "error|FAILED" "$OUT/build.log" | head -30; exit 1; }
([ -f "$A/build.ninja" ] || cmake -S . -B "$A" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFL_CUDA_ARCHS="${FL_CUDA_ARCHS:-90}" \
    -DCMAKE_C_FLAGS=-D${ALT:-FLI_TOPK_BLOCK_2K} >"$OUT/build2k.log" 2>&1) &&
    cmake --build "$A" -j16 --target flashlib bench_pca >>"$OUT/build2k.log" 2>&1 || {
    echo "2k build failed"; grep -E "error|FAILED" "$OUT/build2k.log" | head -30; exit 1; }
export FL_CUDA_MODULE=$PWD/$B/lib/libflashlib_cuda.so
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >"$OUT/device.txt"
timeout ${T_TEST:-150} "$B/bin/test_pca" >"$OUT/test_pca.log" 2>&1
echo "test_pca rc=$?"; tail -n 2 "$OUT/test_pca.log"
for r in 1 2 3; do
    for X in $B $A; do
        LD_LIBRARY_PATH=$PWD/$X/lib:$LD_LIBRARY_PATH PCA_QUICK=1 timeout 100 "$X/bin/bench_pca" \
            "$FL_CUDA_MODULE" "$OUT/pca_${X}_$r.json" ${REPS:-10} >"$OUT/bench_${X}_$r.log" 2>&1
        echo "== $X run $r rc=$?"
        grep -E "median|eigh converged|ms:" "$OUT/bench_${X}_$r.log" | cut -c1-300 | head -4
    done
done
sed -i "s#$PWD/##g" "$OUT"/*.log 2>/dev/null
(cd "$OUT" && tar czf logs.tgz *.log *.txt *.json && rm -f *.log *.txt *.json)
