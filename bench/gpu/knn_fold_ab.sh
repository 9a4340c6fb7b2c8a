#!/bin/bash
# bench/gpu/knn_fold_ab.sh — A/B of the Hopper kNN scan's fold: the default
# build (a passing score appended in the pass that computes it) against one
# built with -DS9_FOLD_FUSED=0 (the earlier two passes), both on this GPU in
# one call: knn_check on the default build first, then bench_knn's 10K x 1M
# x 128 cases (k = 10 every precision, k = 100) alternated twice.
#   OUT=/tmp/out GIT_COMMIT=abc1234 bash bench/gpu/knn_fold_ab.sh
set -o pipefail
cd "$(dirname "$0")/../.."
B=${B:-build-kf}
A=${A:-build-kf0}
. bench/gpu/device_env.sh
for X in $B $A; do
    flags=""
    [ $X = $A ] && flags="-DCMAKE_CUDA_FLAGS=-DS9_FOLD_FUSED=0"
    ([ -f "$X/build.ninja" ] || cmake -S . -B "$X" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFL_CUDA_ARCHS="${FL_CUDA_ARCHS:-90}" $flags \
        >"$OUT/build_$X.log" 2>&1) &&
        cmake --build "$X" -j16 --target flashlib flashlib_cuda knn_check bench_knn >>"$OUT/build_$X.log" 2>&1 || {
        echo "build $X failed"; grep -E "error|FAILED" "$OUT/build_$X.log" | head -20; exit 1; }
done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >"$OUT/device.txt"
timeout 250 "$B/bin/knn_check" "$PWD/$B/lib/libflashlib_cuda.so" >"$OUT/knn_check.log" 2>&1
echo "knn_check rc=$?"; tail -1 "$OUT/knn_check.log"
for r in 1 2; do
    for X in $A $B; do
        timeout 120 "$X/bin/bench_knn" "$PWD/$X/lib/libflashlib_cuda.so" "$OUT/knn_${X}_$r.json" ${REPS:-10} "10K x 1M" \
            >"$OUT/bench_${X}_$r.log" 2>&1
        echo "== $X run $r rc=$?"; grep -E "median|ms" "$OUT/bench_${X}_$r.log" | head -8 | cut -c1-160
    done
done
sed -i "s#$PWD/##g" "$OUT"/*.log 2>/dev/null
(cd "$OUT" && tar czf logs.tgz *.log *.txt *.json && rm -f *.log *.txt *.json)
