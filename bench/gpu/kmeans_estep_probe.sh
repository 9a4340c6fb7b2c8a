#!/bin/bash
# bench/gpu/kmeans_estep_probe.sh — where the sm90 tf32 E-step's time goes:
# its kernel time (ncu, 1M x 128 k=1024) for each variant in TUNES (km_tune
# values) in the default build and in one built with KM_TIMING_NO_FOLD (the
# products and the pipeline without the fold: labels are not computed), then
# ncu's full sections and per-SASS stall samples of the variants in DETAIL.
#   OUT=$OUT TUNES="0 65536 32768" DETAIL="65536 32768" bash bench/gpu/kmeans_estep_probe.sh
cd "$(dirname "$0")/../.."
B=${B:-build-gpu}
. bench/gpu/device_env.sh
fl_build flashlib flashlib_cuda bench_kmeans
B0=${B}-nofold
(cmake -S . -B $B0 -G Ninja -DCMAKE_BUILD_TYPE=Release -DFL_CUDA_ARCHS=90 -DCMAKE_CUDA_FLAGS=-DKM_TIMING_NO_FOLD=1 \
    >"$OUT/build0.log" 2>&1 && cmake --build $B0 -j16 --target flashlib_cuda bench_kmeans >>"$OUT/build0.log" 2>&1) ||
    { grep -E "error|FAILED" "$OUT/build0.log" | head; exit 1; }
export FL_KM_GRAPH_AB=0
for t in ${TUNES:-0 65536 32768}; do
    for X in $B $B0; do
        printf "%-22s km_tune %-6s " "$X" "$t"
        FL_KM_TUNE=$t ncu --csv --metrics gpu__time_duration.sum -k regex:estep_sm90 --launch-skip 4 -c 6 \
            "$X/bin/bench_kmeans" "$PWD/$X/lib/libflashlib_cuda.so" 1 1M tf32 2>/dev/null |
            python3 -c '
import csv, sys
rows = [r for r in csv.reader(sys.stdin) if len(r) > 10]
h = rows[0]; v = sorted(float(r[h.index("Metric Value")].replace(",", "")) / 1e3 for r in rows[1:])
print("E-step us: median %.1f  min %.1f  max %.1f  (%d launches)" % (v[len(v) // 2], v[0], v[-1], len(v)) if v else "no data")'
    done
done
for t in $DETAIL; do
    FL_KM_TUNE=$t bash bench/gpu/ncu_detail.sh $B 1M tf32 estep_sm90 "$OUT/ncu_$t" 1 4 >/dev/null 2>&1
    python3 bench/gpu/sass_stats.py "$OUT/ncu_$t.sass.csv" 0 25 >"$OUT/sass_$t.txt" 2>&1
    grep -E "Duration|Issue Slots Busy|Executed Ipc A|Achieved Occupancy|No Eligible|Registers Per|Tensor" "$OUT/ncu_$t.details.txt" | head -20 >"$OUT/ncu_$t.summary.txt"
    rm -f "$OUT/ncu_$t.ncu-rep" "$OUT/ncu_$t.sass.csv"
done
