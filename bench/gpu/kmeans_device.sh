#!/bin/bash
# bench/gpu/kmeans_device.sh — one device call for a KMeans kernel change:
# build, module_check (every precision and kernel path against a float64
# reference and each other), gpu_kmeans_check, test_kmeans, bench_kmeans
# on SHAPES x PRECS (with its in-process A/B of kernel variants) and the
# per-kernel times (profile.sh) of PROF ("SHAPE PREC", empty: none).
#   OUT=$OUT SHAPES=2M PRECS=tf32 PROF="2M tf32" bash bench/gpu/kmeans_device.sh
cd "$(dirname "$0")/../.."
B=${B:-build-gpu}
. bench/gpu/device_env.sh
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/summary.txt"; }
fl_build flashlib flashlib_cuda module_check gpu_kmeans_check bench_kmeans test_kmeans
stamp "built $GIT_COMMIT"
timeout ${CHECK_S:-240} "$B/bin/module_check" "$M" >"$OUT/module_check.log" 2>&1
stamp "module_check rc=$? $(tail -1 "$OUT/module_check.log")"
grep -E "FAIL" "$OUT/module_check.log" | head -20
timeout 120 "$B/bin/gpu_kmeans_check" >"$OUT/gpu_kmeans_check.log" 2>&1
stamp "gpu_kmeans_check rc=$? $(tail -1 "$OUT/gpu_kmeans_check.log")"
timeout 120 "$B/bin/test_kmeans" >"$OUT/test_kmeans.log" 2>&1
stamp "test_kmeans rc=$? $(tail -1 "$OUT/test_kmeans.log")"
timeout ${BENCH_S:-150} "$B/bin/bench_kmeans" "$M" ${REPS:-10} "${SHAPES:-2M}" "${PRECS:-tf32}" >"$OUT/bench_kmeans.log" 2>&1
stamp "bench_kmeans rc=$?"
grep -v "stats:" "$OUT/bench_kmeans.log"
if [ -n "$PROF" ]; then
    timeout 120 bash bench/gpu/profile.sh "$B" $PROF >"$OUT/profile.txt" 2>&1
    stamp "profile rc=$?"
    cat "$OUT/profile.txt"
fi
