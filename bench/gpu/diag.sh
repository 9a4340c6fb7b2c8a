#!/bin/bash
# bench/gpu/diag.sh — where the small-k*d paths spend their time: A/B of the
# fused E+M kernel against the separate E and M kernels (FL_KM_FUSED=0),
# per-kernel device times (ncu, kernel durations) and the fused kernel's
# warp stall reasons. Everything goes to one file.
#   bash bench/gpu/diag.sh BUILD_DIR OUT_FILE
B=$1; F=$2
L=$B/lib/libflashlib_cuda.so
{
for f in 1 0; do
    echo "== bench FL_KM_FUSED=$f"
    FL_KM_FUSED=$f OUT=/tmp/diag_$f "$B/bin/bench_kmeans" "$L" 10 "100K,2M" "tf32,bf16"
done
if command -v ncu >/dev/null; then
    for spec in "1 2M tf32" "0 2M tf32" "1 100K bf16" "0 100K bf16"; do
        set -- $spec
        echo "== ncu kernel durations FL_KM_FUSED=$1 $2 $3 (first fit)"
        FL_KM_FUSED=$1 bash bench/gpu/profile.sh "$B" "$2" "$3" 24
    done
    echo "== ncu k_fused 2M tf32 (one launch)"
    ncu -k regex:k_fused -s 3 -c 1 --section SpeedOfLight --section WarpStateStats --section Occupancy \
        --section SchedulerStats --section MemoryWorkloadAnalysis "$B/bin/bench_kmeans" "$L" 10 2M tf32 2>&1 |
        grep -v "^==PROF==" | tail -120
    echo "== ncu k_fused 100K bf16 (one launch)"
    ncu -k regex:k_fused -s 3 -c 1 --section SpeedOfLight --section WarpStateStats "$B/bin/bench_kmeans" "$L" 10 100K bf16 2>&1 |
        grep -v "^==PROF==" | tail -60
else
    echo "ncu not found"
fi
} >"$F" 2>&1
