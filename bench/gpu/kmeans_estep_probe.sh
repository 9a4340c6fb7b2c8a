#!/bin/bash
# bench/gpu/kmeans_estep_probe.sh — where the sm90 E-step's time goes, per
# kernel variant: its kernel time (ncu, 1M x 128 k=1024, PREC) for each
# km_tune value in TUNES, then ncu's full sections and per-SASS stall
# samples (sass_stats.py) of those in DETAIL, tarred into $OUT/probe.tgz
# (a device call brings back only a few files).
#   OUT=$OUT PREC=tf32 TUNES="0 32768" DETAIL="0" bash bench/gpu/kmeans_estep_probe.sh
cd "$(dirname "$0")/../.."
B=${B:-build-gpu}
. bench/gpu/device_env.sh
fl_build flashlib flashlib_cuda bench_kmeans
export FL_KM_GRAPH_AB=0
for t in ${TUNES:-0 32768}; do
    printf "km_tune %-7s " "$t"
    FL_KM_TUNE=$t ncu --csv --metrics gpu__time_duration.sum -k regex:estep_sm90 --launch-skip 4 -c 6 \
        "$B/bin/bench_kmeans" "$M" 1 1M "${PREC:-tf32}" 2>/dev/null |
        python3 -c '
import csv, sys
rows = [r for r in csv.reader(sys.stdin) if len(r) > 10]
h = rows[0]; v = sorted(float(r[h.index("Metric Value")].replace(",", "")) / 1e3 for r in rows[1:])
print("E-step us: median %.1f  min %.1f  max %.1f  (%d launches)" % (v[len(v) // 2], v[0], v[-1], len(v)) if v else "no data")'
done
for t in $DETAIL; do
    FL_KM_TUNE=$t bash bench/gpu/ncu_detail.sh $B 1M "${PREC:-tf32}" estep_sm90 "$OUT/ncu_$t" 1 4 >/dev/null 2>&1
    python3 bench/gpu/sass_stats.py "$OUT/ncu_$t.sass.csv" 0 40 >"$OUT/sass_$t.txt" 2>&1
    rm -f "$OUT/ncu_$t.ncu-rep"
    gzip -f "$OUT/ncu_$t.sass.csv"
done
(cd "$OUT" && tar czf probe.tgz sass_* ncu_* 2>/dev/null && rm -f sass_* ncu_*)
