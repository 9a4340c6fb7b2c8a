#!/bin/bash
# bench/gpu/diag.sh — where the small-k*d paths spend their time: A/B of the
# default (separate E and M kernels) against the opt-in fused E+M kernel
# (FL_KM_FUSED=1), then per-kernel device times (ncu kernel durations) of
# the default path. Everything goes to one file.
#   bash bench/gpu/diag.sh BUILD_DIR OUT_FILE
B=$1; F=$2
L=$B/lib/libflashlib_cuda.so
{
for f in 0 1; do
    echo "== bench FL_KM_FUSED=$f"
    FL_KM_FUSED=$f OUT=/tmp/diag_$f "$B/bin/bench_kmeans" "$L" 10 "100K,2M" "tf32,bf16"
done
if command -v ncu >/dev/null; then
    for spec in "2M tf32" "2M bf16" "100K bf16" "1M bf16"; do
        echo "== ncu kernel durations $spec (first fit)"
        bash bench/gpu/profile.sh "$B" $spec 24
    done
else
    echo "ncu not found"
fi
} >"$F" 2>&1
