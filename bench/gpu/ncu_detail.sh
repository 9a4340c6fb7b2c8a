#!/bin/bash
# bench/gpu/ncu_detail.sh — Nsight Compute's full sections and per-SASS
# stall samples for chosen kernels of one bench_kmeans shape/precision, or
# (BENCH=knn) of the bench_knn cases whose "name precision" contains SHAPE
# (PREC unused; e.g. "k=10 bf16"): where an issue-bound or latency-bound
# kernel spends its cycles.
#   [BENCH=knn] bash bench/gpu/ncu_detail.sh BUILD SHAPE PREC KERNEL_REGEX OUT_PREFIX [COUNT [SKIP]]
B=$1; SHAPE=$2; PREC=$3; KRE=$4; P=$5; C=${6:-2}; SKIP=${7:-4}
if [ "$BENCH" = knn ]; then
    CMD=("$B/bin/bench_knn" "$B/lib/libflashlib_cuda.so" "$P.bench.json" 1 "$SHAPE")
else
    CMD=("$B/bin/bench_kmeans" "$B/lib/libflashlib_cuda.so" 1 "$SHAPE" "$PREC")
fi
ncu --set full --import-source yes -k "regex:$KRE" --launch-skip "$SKIP" -c "$C" -f -o "$P" "${CMD[@]}" \
    >"$P.run.log" 2>&1
ncu -i "$P.ncu-rep" --page details >"$P.details.txt" 2>&1
ncu -i "$P.ncu-rep" --page source --csv --print-source sass >"$P.sass.csv" 2>&1
ls -la "$P".*
