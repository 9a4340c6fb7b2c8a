#!/bin/bash
# bench/gpu/kmeans_build_ab.sh — A/B of a compile-time variant of the CUDA
# KMeans kernels: the default build against one built with CUDA_FLAGS_A
# (e.g. -DKM_FOLD_ONE_CHAIN=1, -DKM_PRODUCER_SLEEP_NS=0; FLAGS_A goes to
# both the C and the CUDA compiler, for the plan's constants), both on
# this GPU in one call, alternated REPEAT times (default 2); module_check
# on the default build first.
#   OUT=$OUT CUDA_FLAGS_A=-DKM_FOLD_ONE_CHAIN=1 SHAPES=1M PRECS=tf32,bf16 bash bench/gpu/kmeans_build_ab.sh
cd "$(dirname "$0")/../.."
B=${B:-build-gpu}
. bench/gpu/device_env.sh
fl_build flashlib flashlib_cuda module_check bench_kmeans
A=${B}-a
(cmake -S . -B "$A" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFL_CUDA_ARCHS=90 "-DCMAKE_CUDA_FLAGS=$CUDA_FLAGS_A $FLAGS_A" "-DCMAKE_C_FLAGS=$FLAGS_A" \
    >"$OUT/build_a.log" 2>&1 && cmake --build "$A" -j16 --target flashlib_cuda bench_kmeans >>"$OUT/build_a.log" 2>&1) ||
    { grep -E "error|FAILED" "$OUT/build_a.log" | head; exit 1; }
echo "built; A: $CUDA_FLAGS_A $FLAGS_A"
timeout ${CHECK_S:-200} "$B/bin/module_check" "$M" >"$OUT/module_check.log" 2>&1
echo "module_check rc=$? $(tail -1 "$OUT/module_check.log")"
export FL_KM_GRAPH_AB=0
for r in $(seq ${REPEAT:-2}); do
    for X in "$A" "$B"; do
        FL_CUDA_MODULE=$PWD/$X/lib/libflashlib_cuda.so timeout 100 "$X/bin/bench_kmeans" "$PWD/$X/lib/libflashlib_cuda.so" \
            ${REPS:-10} "${SHAPES:-1M}" "${PRECS:-tf32}" >"$OUT/bk_$(basename "$X")_$r.log" 2>&1
        echo "== $X run $r"; grep -E "^[0-9]" "$OUT/bk_$(basename "$X")_$r.log"
    done
done
