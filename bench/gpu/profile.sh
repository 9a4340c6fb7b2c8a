#!/bin/bash
# bench/gpu/profile.sh — per-kernel device times of the first fit of one
# bench shape/precision through Nsight Compute (kernel durations only).
#   bash bench/gpu/profile.sh BUILD_DIR SHAPE PREC [KERNELS]
B=$1; SHAPE=$2; PREC=$3; N=${4:-40}
ncu --csv --metrics gpu__time_duration.sum -c "$N" "$B/bin/bench_kmeans" "$B/lib/libflashlib_cuda.so" 10 "$SHAPE" "$PREC" \
    2>/dev/null | python3 -c '
import csv, sys, collections
rows = [r for r in csv.reader(sys.stdin) if len(r) > 10]
hdr = rows[0]; ki = hdr.index("Kernel Name"); vi = hdr.index("Metric Value")
tot = collections.OrderedDict()
for r in rows[1:]:
    name = r[ki].split("(")[0][:40]
    v = float(r[vi].replace(",", ""))
    c, s = tot.get(name, (0, 0.0)); tot[name] = (c + 1, s + v)
print("%-40s %5s %10s %10s" % ("kernel", "calls", "total_us", "mean_us"))
for n, (c, s) in tot.items():
    print("%-40s %5d %10.1f %10.2f" % (n, c, s / 1e3, s / 1e3 / c))
'
