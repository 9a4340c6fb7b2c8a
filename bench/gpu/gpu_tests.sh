#!/bin/bash
# bench/gpu/gpu_tests.sh — the GPU correctness pass that fits one device call
# (device_all.sh tests runs every Python file under one pytest and overruns
# the 600 s limit): builds the library, the CUDA module and the C tests, runs
# the C tests (each with the module), gpu_info_check for this device, then
# each GPU Python file under its own timeout, so a slow file cannot take the
# others' time. One line per step goes to $OUT/summary.txt.
#   OUT=$OUT bash bench/gpu/gpu_tests.sh [C_TESTS] [PY_FILES]
cd "$(dirname "$0")/../.."
B=${B:-build-gpu}
. bench/gpu/device_env.sh
CT=${1:-"test_core test_kmeans test_pca test_linalg test_linalg_eig test_knn test_ivf"}
PY=${2:-"kmeans neighbors pca ivf"}
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/summary.txt"; }
fl_build flashlib flashlib_cuda gpu_info_check $CT
stamp "built $GIT_COMMIT"
for t in $CT; do
    timeout 240 "$B/bin/$t" >"$OUT/$t.log" 2>&1
    stamp "$t rc=$? $(grep -E "checks|passed|failed|FAIL" "$OUT/$t.log" | tail -1)"
done
TAG=H100; nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && TAG=H200
"$B/bin/gpu_info_check" $TAG >"$OUT/gpu_info_check.log" 2>&1
stamp "gpu_info_check $TAG rc=$? $(tail -1 "$OUT/gpu_info_check.log")"
for f in $PY; do
    FLASHLIB_LIBRARY=$PWD/$B/lib/libflashlib.so PYTHONPATH=python timeout ${PY_TIMEOUT:-200} \
        python3 -m pytest "tests/python/test_${f}_gpu.py" -q -p no:cacheprovider -rs >"$OUT/pytest_$f.log" 2>&1
    stamp "test_${f}_gpu.py rc=$? $(tail -1 "$OUT/pytest_$f.log")"
done
