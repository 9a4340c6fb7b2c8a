#!/bin/bash
# bench/gpu/ncu_detail.sh — Nsight Compute's full sections and per-SASS
# stall samples for chosen kernels of one bench_kmeans shape/precision:
# where an issue-bound or latency-bound kernel spends its cycles.
#   bash bench/gpu/ncu_detail.sh BUILD SHAPE PREC KERNEL_REGEX OUT_PREFIX [COUNT]
B=$1; SHAPE=$2; PREC=$3; KRE=$4; P=$5; C=${6:-2}
ncu --set full --import-source yes -k "regex:$KRE" --launch-skip 4 -c "$C" -f -o "$P" \
    "$B/bin/bench_kmeans" "$B/lib/libflashlib_cuda.so" 1 "$SHAPE" "$PREC" >"$P.run.log" 2>&1
ncu -i "$P.ncu-rep" --page details >"$P.details.txt" 2>&1
ncu -i "$P.ncu-rep" --page source --csv --print-source sass >"$P.sass.csv" 2>&1
ls -la "$P".*
