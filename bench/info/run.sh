#!/bin/bash
# bench/info/run.sh — time fl_info_estimate in C and info.estimate in Python on
# this machine; writes bench/results/info_estimate_speed_<N>cores.txt.
#   bash bench/info/run.sh [build-dir]
set -e
cd "$(dirname "$0")/../.."
B=${1:-build}
out=bench/results/info_estimate_speed_$(nproc)cores.txt
{
    echo "# fl_info_estimate per call; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
    echo "# date $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), load $(cut -d' ' -f1-3 /proc/loadavg)"
    "$B/bin/bench_estimate"
    echo
    echo "# Python: flashlib.info.estimate (ctypes), median of 2000 calls"
    FLASHLIB_INFO_LIBRARY=$PWD/$B/lib/libflashlib_info.so PYTHONPATH=python .venv/bin/python -c '
import statistics, time
import flashlib.info as info
ts = []
for _ in range(2000):
    t = time.perf_counter_ns()
    info.estimate("kmeans", shape=(100_000, 64), params={"K": 256, "max_iters": 20}, device="H200")
    ts.append(time.perf_counter_ns() - t)
print(f"info.estimate kmeans 100000x64 K=256 H200: median {statistics.median(ts) / 1000:.1f} us, "
      f"p90 {sorted(ts)[int(0.9 * len(ts))] / 1000:.1f} us")'
} | tee "$out"
