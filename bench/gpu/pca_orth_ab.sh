#!/bin/bash
# bench/gpu/pca_orth_ab.sh — A/B of one setting of the top-k eigen solver,
# one build, in one call: the tests first (TESTS, default test_pca), then
# bench_pca's headline (1M x 512 -> 32, X on the device) alternated three
# times between the default and the setting AB (an environment assignment),
# each with five logged fits (the solver's steps and phases); then the peers
# (torch.linalg on this GPU) unless NO_PEERS is set. AB defaults to
# FL_TOPK_ORTH=wait: each Cholesky of the orthonormalisation and its pivots
# waited on (three host round trips a step) against the default, which
# fetches their outcome with the Rayleigh-Ritz step's copy.
# FL_TOPK_HOST=lapack: the p x p eigenproblems by LAPACK's dsyevd against
# fli_small_syev.
#   OUT=/tmp/out GIT_COMMIT=abc1234 [AB=FL_TOPK_HOST=lapack] bash bench/gpu/pca_orth_ab.sh
set -o pipefail
cd "$(dirname "$0")/../.."
B=${B:-build-orth}
. bench/gpu/device_env.sh
fl_build flashlib flashlib_cuda ${TESTS:-test_pca} bench_pca
AB=${AB:-FL_TOPK_ORTH=wait}
AB_NAME=$(echo "${AB#*=}" | tr -c 'a-zA-Z0-9_\n' _)
for t in ${TESTS:-test_pca}; do
    timeout ${T_TEST:-150} "$B/bin/$t" >"$OUT/$t.log" 2>&1
    echo "$t rc=$?"; grep -E "CHECK failed" "$OUT/$t.log" | head -5; tail -n 1 "$OUT/$t.log"
done
for r in 1 2 3; do
    for mode in default "$AB_NAME"; do
        env $([ $mode != default ] && echo "$AB") PCA_QUICK=1 timeout 100 "$B/bin/bench_pca" \
            "$FL_CUDA_MODULE" "$OUT/pca_${mode}_$r.json" ${REPS:-10} >"$OUT/bench_${mode}_$r.log" 2>&1
        echo "== $mode run $r rc=$?"
        grep -E "median|eigh converged|ms:" "$OUT/bench_${mode}_$r.log" | cut -c1-330 | head -4
    done
done
if [ -z "$NO_PEERS" ]; then
    timeout ${T_PEERS:-200} python3 bench/gpu/pca_peers.py --out "$OUT/pca_peers.json" --sklearn-fits ${SK_FITS:-0} \
        >"$OUT/pca_peers.log" 2>&1
    echo "peers rc=$?"; grep -iE "torch|median" "$OUT/pca_peers.log" | head -8
fi
sed -i "s#$PWD/##g" "$OUT"/*.log 2>/dev/null
(cd "$OUT" && tar czf logs.tgz *.log *.txt *.json && rm -f *.log *.txt *.json)
