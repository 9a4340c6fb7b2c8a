#!/usr/bin/env bash
# gpu_check.sh — builds flashlib with the CUDA module and runs the CLI tests
# on a machine with a GPU (the benchmark machine). Logs go to $OUT (or
# ./gpu-check-out). The CLI tests then also compare the CUDA backend with
# the CPU (tests/cli/test_cli.sh, "gpu-fit"), and diagnose/route show the
# device's real properties.
#   bash tests/cli/gpu_check.sh
set -u
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
B=build-gpu-cli
JOBS=$(nproc)
if ! { cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release && cmake --build $B -j"$JOBS"; } >"$OUT/build.log" 2>&1; then
    echo "gpu_check: the CUDA build failed (see build.log); trying CPU-only" | tee -a "$OUT/summary.txt"
    B=build-cpu-cli
    { cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release -DFL_WITH_CUDA=OFF && cmake --build $B -j"$JOBS"; } \
        >"$OUT/build_cpu.log" 2>&1 || { echo "gpu_check: CPU build failed too"; tail -30 "$OUT/build_cpu.log"; exit 1; }
fi
F=$B/bin/flashlib
ls $B/lib >>"$OUT/summary.txt"
{
    echo "== diagnose"; $F diagnose; echo "rc=$?"
    echo "== diagnose, FL_DISABLE_SM90=1"; FL_DISABLE_SM90=1 $F diagnose --no-check; echo "rc=$?"
    echo "== route (default device)"; $F route kmeans --shape 1000000x128 -p n_clusters=8192; echo "rc=$?"
    echo "== route --device this, k=16"; $F route kmeans --shape 1000000x128 -p n_clusters=16 --device this; echo "rc=$?"
    echo "== route --device cuda:7"; $F route kmeans --shape 1000x8 --device cuda:7; echo "rc=$?"
    echo "== fit --device cuda:7"; $F fit kmeans -i tests/cli/gpu_check.sh --device cuda:7; echo "rc=$?"
} >>"$OUT/summary.txt" 2>&1
$F diagnose --json >"$OUT/diagnose.json" 2>&1
bash tests/cli/test_cli.sh $F >"$OUT/test_cli.txt" 2>&1
echo "test_cli rc=$?" >>"$OUT/summary.txt"
cat "$OUT/summary.txt"
tail -40 "$OUT/test_cli.txt"
