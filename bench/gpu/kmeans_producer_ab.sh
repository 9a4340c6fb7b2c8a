#!/bin/bash
# bench/gpu/kmeans_producer_ab.sh — A/B of the sm90 E-step producer's wait:
# the default build (a short __nanosleep after each failed try_wait) against
# one built with KM_PRODUCER_SLEEP_NS=0 (a tight spin), both on this GPU in
# one call, twice alternated; gpu_kmeans_check on the default build first.
#   OUT=/tmp/out bash bench/gpu/kmeans_producer_ab.sh
set -o pipefail
B=build-km; A=build-km0
(cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DFL_CUDA_ARCHS=90 > $OUT/cmake.log 2>&1 && cmake --build $B -j16 --target flashlib flashlib_cuda bench_kmeans gpu_kmeans_check >> $OUT/cmake.log 2>&1) || { tail -30 $OUT/cmake.log; exit 1; }
(cmake -S . -B $A -G Ninja -DCMAKE_BUILD_TYPE=Release -DFL_CUDA_ARCHS=90 -DCMAKE_CUDA_FLAGS=-DKM_PRODUCER_SLEEP_NS=0 > $OUT/cmake0.log 2>&1 && cmake --build $A -j16 --target flashlib_cuda bench_kmeans >> $OUT/cmake0.log 2>&1) || { tail -30 $OUT/cmake0.log; exit 1; }
echo built
export FL_CUDA_MODULE=$PWD/$B/lib/libflashlib_cuda.so
timeout 200 $B/bin/gpu_kmeans_check > $OUT/gpu_kmeans_check.log 2>&1; echo "check rc=$?"; tail -2 $OUT/gpu_kmeans_check.log
for r in 1 2; do
 for X in $A $B; do echo "== $X run $r"; FL_CUDA_MODULE=$PWD/$X/lib/libflashlib_cuda.so timeout 100 $X/bin/bench_kmeans $PWD/$X/lib/libflashlib_cuda.so 10 "" "tf32,bf16" > $OUT/bk_${X}_$r.log 2>&1; grep -E "median|ms" $OUT/bk_${X}_$r.log | head -12; done
done
