#!/bin/bash
# bench/gpu/device_all.sh — the whole GPU evidence for a change, in two calls
# on the GPU machine (each fits in its 10-minute limit; the build of the first
# is reused by the second while the machine stays warm).
#
#   bash bench/gpu/device_all.sh tests   build; C tests incl. GPU checks; Python
#                                        GPU tests; CLI tests; benchmarks
#   bash bench/gpu/device_all.sh peers   scikit-learn and PyTorch on the same shapes,
#                                        then the cost model's calibration
#   bash bench/gpu/device_all.sh calib   build if needed, calibration (BENCH=1: and
#                                        the benchmarks, for a second GPU model)
#   bash bench/gpu/device_all.sh all     tests + peers (for a machine with more time)
#
# Everything lands in a scratch folder that is packed into $OUT/results.tgz
# (the device tool returns few files and only two folders deep).
set -o pipefail
cd "$(dirname "$0")/../.."
WHAT=${1:-all}
FINAL_OUT=${OUT:-out}
mkdir -p "$FINAL_OUT"
export OUT=/tmp/fl_out
mkdir -p "$OUT"
export GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1
B=build-gpu
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*"; }
pack() { tar czf "$FINAL_OUT/results.tgz" -C "$OUT" . && stamp "packed $(du -h "$FINAL_OUT/results.tgz" | cut -f1)"; }
trap pack EXIT

if [ "$WHAT" = tests ] || [ "$WHAT" = all ]; then
    # A build carried from the development machine (same commit) is used as
    # it is; otherwise build here.
    if [ -x "$B/bin/flashlib" ] && [ -f "$B/lib/libflashlib_cuda.so" ]; then
        stamp "prebuilt $B: GPU checks"
        PREBUILT=$B bash bench/gpu/run.sh check >"$OUT/run_check.log" 2>&1
    else
        stamp "build + GPU checks (bench/gpu/run.sh)"
        BUILD=$B bash bench/gpu/run.sh check >"$OUT/run_check.log" 2>&1
    fi
    echo "run.sh check rc=$?" | tee -a "$OUT/summary.txt"
    [ -x "$B/bin/test_core" ] || { stamp "build failed"; tail -40 "$OUT/cmake.log"; exit 1; }
    export LD_LIBRARY_PATH=$PWD/$B/lib:$LD_LIBRARY_PATH
    [ -d /tmp/debroot ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp:/tmp/debroot/usr/lib/x86_64-linux-gnu
    stamp "C tests"
    crc=0
    for t in $B/bin/test_*; do echo "== $t"; "$t" || crc=1; done >"$OUT/ctest.log" 2>&1
    echo "C tests rc=$crc" | tee -a "$OUT/summary.txt"
    TAG=H100; nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && TAG=H200
    stamp "cost model peak memory vs a real fit ($TAG)"
    $B/bin/gpu_info_check $TAG >"$OUT/gpu_info_check.log" 2>&1
    echo "gpu_info_check rc=$?" | tee -a "$OUT/summary.txt"
    stamp "Python tests, GPU included"
    FLASHLIB_LIBRARY=$PWD/$B/lib/libflashlib.so PYTHONPATH=python timeout 480 python3 -m pytest tests/python -q \
        -p no:cacheprovider -rs >"$OUT/pytest.log" 2>&1
    echo "pytest rc=$?" | tee -a "$OUT/summary.txt"
    stamp "CLI tests"
    bash tests/cli/test_cli.sh $B/bin/flashlib >"$OUT/test_cli.log" 2>&1
    echo "test_cli rc=$?" | tee -a "$OUT/summary.txt"
    $B/bin/flashlib diagnose >"$OUT/diagnose.txt" 2>&1
    stamp "benchmarks"
    PREBUILT=$B bash bench/gpu/run.sh bench >"$OUT/run_bench.log" 2>&1
    echo "bench rc=$?" | tee -a "$OUT/summary.txt"
    tail -16 "$OUT/bench_kmeans.log"
fi
if [ "$WHAT" = peers ] || [ "$WHAT" = calib ] || [ "$WHAT" = all ]; then
    [ -d /tmp/debroot ] && export LD_LIBRARY_PATH=$B/lib:/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp:/tmp/debroot/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
    if [ ! -x "$B/bin/flashlib" ] || [ ! -f "$B/lib/libflashlib_cuda.so" ]; then
        stamp "no build from a previous call: building"
        BUILD=$B bash bench/gpu/run.sh check >"$OUT/run_check.log" 2>&1
    fi
    stamp "calibration (bench/calib/run.sh)"
    PREBUILT=$B BUDGET_S=${BUDGET_S:-150} bash bench/calib/run.sh >"$OUT/calib_run.log" 2>&1
    echo "calib rc=$?" | tee -a "$OUT/summary.txt"
    tail -20 "$OUT/calib/fit.log" 2>/dev/null
    if [ "$WHAT" = calib ] && [ -n "$BENCH" ]; then
        stamp "benchmarks"
        PREBUILT=$B bash bench/gpu/run.sh bench >"$OUT/run_bench.log" 2>&1
        echo "bench rc=$?" | tee -a "$OUT/summary.txt"
    elif [ "$WHAT" != calib ]; then
        stamp "peers (scikit-learn on this machine's cores, plain PyTorch)"
        PREBUILT=$B timeout 240 bash bench/gpu/run.sh peers >"$OUT/run_peers.log" 2>&1
        echo "peers rc=$?" | tee -a "$OUT/summary.txt"
    fi
fi
stamp done
cat "$OUT/summary.txt"
