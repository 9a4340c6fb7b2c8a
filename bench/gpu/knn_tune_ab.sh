#!/bin/bash
# bench/gpu/knn_tune_ab.sh — A/B of the exact kNN Hopper scan's variants
# (fli_cuda_env.knn_tune, see fl_cuda_module.h) in one call on the GPU
# machine: knn_check with variants on (CHECK_TUNE, default 80), then
# bench_knn's 10K x 1M x 128 cases (k = 10 and 100; FILTER) alternated
# ROUNDS times over TUNES (default "80 0 1": the 32R-th-key threshold with
# bounds every 4th tile, the default, more slices).
#   OUT=/tmp/out GIT_COMMIT=abc1234 bash bench/gpu/knn_tune_ab.sh
set -o pipefail
cd "$(dirname "$0")/../.."
B=${B:-build-knn}
. bench/gpu/device_env.sh
fl_build flashlib_cuda knn_check bench_knn
if [ -z "$NO_CHECK" ]; then
    KNN_TUNE=${CHECK_TUNE:-80} timeout ${T_CHECK:-240} "$B/bin/knn_check" "$M" >"$OUT/knn_check.log" 2>&1
    echo "knn_check (KNN_TUNE=${CHECK_TUNE:-80}) rc=$?"; tail -n 1 "$OUT/knn_check.log"
fi
for r in $(seq 1 ${ROUNDS:-2}); do
    for t in ${TUNES:-80 0 1}; do
        KNN_TUNE=$t timeout 120 "$B/bin/bench_knn" "$M" "$OUT/knn_t${t}_$r.json" ${REPS:-10} "${FILTER:-10K x 1M x 128 k=10}" \
            >"$OUT/bench_t${t}_$r.log" 2>&1
        echo "== KNN_TUNE=$t run $r rc=$?"
        grep -E "median" "$OUT/bench_t${t}_$r.log" | cut -c1-120
    done
done
sed -i "s#$PWD/##g" "$OUT"/*.log 2>/dev/null
(cd "$OUT" && tar czf logs.tgz *.log *.txt *.json && rm -f *.log *.txt *.json)
