#!/bin/bash
# bench/gpu/linalg_device.sh — the dense linear-algebra evidence on the GPU
# machine in one call: configure and build (ninja, 16 jobs), the C linalg
# tests (their GPU sections run the CUDA module against the CPU oracle),
# bench_linalg (the GEMM ladder through fl_gemm: JSON) and the plot (PNG and
# a markdown table). Results land in $OUT.
#   GIT_COMMIT   the commit recorded in the JSON: pass it from the
#                development machine (the device copy's git can be stale,
#                e.g. GIT_COMMIT=$(git rev-parse --short HEAD) expanded there)
#   B            build directory (default build-linalg)
#   REPS         timed calls per case (default 10)
#   NO_TESTS=1   skip the tests; BENCH_ARGS: extra bench_linalg arguments
#                (shape filter, variant filter)
set -o pipefail
cd "$(dirname "$0")/../.."
B=${B:-build-linalg}
. bench/gpu/device_env.sh
targets="flashlib flashlib_cuda bench_linalg"
for t in test_linalg test_linalg_eig; do
    [ -f "tests/c/$t.c" ] && targets="$targets $t"
done
t0=$(date +%s)
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$OUT/build.log" 2>&1 &&
    cmake --build "$B" -j16 --target $targets >>"$OUT/build.log" 2>&1 || {
    echo "build failed"; grep -E "error|FAILED" "$OUT/build.log" | head -30; exit 1; }
echo "build: $(($(date +%s) - t0)) s"
export FL_CUDA_MODULE=$PWD/$B/lib/libflashlib_cuda.so
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >"$OUT/device.txt"
if [ -z "$NO_TESTS" ]; then
    for t in test_linalg test_linalg_eig; do
        [ -x "$B/bin/$t" ] || continue
        timeout ${TEST_TIMEOUT:-150} "$B/bin/$t" >"$OUT/$t.log" 2>&1
        echo "$t rc=$?"; grep -iE "fail|GPU section|passed|checks" "$OUT/$t.log" | head -20; tail -3 "$OUT/$t.log"
    done
fi
timeout ${BENCH_TIMEOUT:-300} "$B/bin/bench_linalg" "$OUT/gemm_ladder.json" ${REPS:-10} $BENCH_ARGS 2>&1 | tee "$OUT/bench_linalg.log"
echo "bench_linalg rc=$?"
python3 bench/gpu/plot_gemm_ladder.py "$OUT/gemm_ladder.json" "$OUT/gemm_ladder" 2>&1 | tail -5
