#!/bin/bash
# bench/gpu/ritz_ab.sh — A/B of the top-k eigen solver's p x p
# eigenproblems: on the device (the ritz op's one-block Jacobi, the
# default) against the host (FL_TOPK_HOST_RITZ=1: LAPACK dsyevd on one
# core, the copies both ways), in one call: test_pca first, then
# bench_pca's headline (1M x 512 -> 32, X on the device) alternated three
# times. The fit logs the solver's phases (start, filters, Rayleigh-Ritz).
#   OUT=/tmp/out GIT_COMMIT=abc1234 bash bench/gpu/ritz_ab.sh
set -o pipefail
cd "$(dirname "$0")/../.."
B=${B:-build-ritz}
. bench/gpu/device_env.sh
# configured once; built every call (a build kept on the machine from an earlier call may be stale)
([ -f "$B/build.ninja" ] || cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFL_CUDA_ARCHS="${FL_CUDA_ARCHS:-90}" >"$OUT/build.log" 2>&1) &&
    cmake --build "$B" -j16 --target flashlib flashlib_cuda test_pca bench_pca >>"$OUT/build.log" 2>&1 || {
    echo "build failed"; grep -E "error|FAILED" "$OUT/build.log" | head -30; exit 1; }
export FL_CUDA_MODULE=$PWD/$B/lib/libflashlib_cuda.so
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >"$OUT/device.txt"
timeout ${T_TEST:-150} "$B/bin/test_pca" >"$OUT/test_pca.log" 2>&1
echo "test_pca rc=$?"; tail -n 2 "$OUT/test_pca.log"
for r in 1 2 3; do
    for mode in device host; do
        env $([ $mode = host ] && echo FL_TOPK_HOST_RITZ=1) PCA_QUICK=1 timeout 100 "$B/bin/bench_pca" \
            "$FL_CUDA_MODULE" "$OUT/pca_${mode}_$r.json" ${REPS:-10} >"$OUT/bench_${mode}_$r.log" 2>&1
        echo "== $mode run $r rc=$?"
        grep -E "median|eigh converged|ms:" "$OUT/bench_${mode}_$r.log" | cut -c1-400 | head -8
    done
done
sed -i "s#$PWD/##g" "$OUT"/*.log 2>/dev/null
(cd "$OUT" && tar czf logs.tgz *.log *.txt *.json && rm -f *.log *.txt *.json)
