#!/bin/bash
# bench/calib/run.sh — the cost model's calibration, in one call on the GPU
# machine: build (unless PREBUILT=dir holds bin/ and lib/), measure KMeans
# (flashlib's CUDA fit, every precision) and GEMM (cuBLAS via torch), the
# compare anchors (scikit-learn on the CPU, plain PyTorch on the GPU), then
# fit the model on ~75% of the shapes and report its error on the rest.
#
#   OUT=/tmp/out bash bench/calib/run.sh        (BUDGET_S=200: measuring time)
#
# Writes under $OUT, in the repository's layout, ready to copy in:
#   bench/results/calib/<device>.json     the measurements (device, driver, commit, date)
#   bench/results/calib/report.md         held-out errors per entry, every point
#   bench/results/calib/estimate_vs_measured.png   log-log, held-out points filled
#   bench/results/calib/summary.json      coefficients, errors, predictions
#   src/info/calib_data.inc               what libflashlib_info compiles in
# Measurements of other devices already in bench/results/calib/ are fitted
# too, so running it on the H100 and then on the H200 accumulates both.
# OPS=gemm measures GEMM only (cuBLAS through torch: only libflashlib_info
# is built, for the sweep's plan) and merges the points into this device's
# file in bench/results/calib/, keeping its KMeans points and their metadata;
# MERGE_FROM=dir merges into dir/<device>.json instead of the repository's
# copy (a run after another one in the same call: MERGE_FROM=$OUT/calib).
# ONLY=input=host re-measures only the points with the data on the host
# (measure.py --only), after a change of the host copies, keeping the rest.
# OPS=kmeans likewise measures KMeans only (after a change of its kernels), and
# OPS=knn exact kNN only (fl_knn_search, every scan precision), keeping the
# KMeans and GEMM points. OPS=kmeans,knn,gemm measures all three.
# OPS=eigh,polar,tsvd,pca: the solvers (fl_eigh, fl_polar: every variant,
# n = 256..4096) and the decompositions' GPU fits (fl_pca_fit,
# fl_truncated_svd_fit), merged likewise; they combine with OPS=gemm.
# OPS=ann: the approximate indexes' GPU searches (IVF-Flat, IVF-PQ, CAGRA
# through fl_model_kneighbors; each index built once, searched with several
# configurations), merged likewise (points of ops ivf_flat, ivf_pq, cagra).
set -o pipefail
T_START=$(date +%s)
cd "$(dirname "$0")/../.."
OUT=${OUT:-out}
mkdir -p "$OUT/bench/results/calib" "$OUT/src/info" "$OUT/calib"
export GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$OUT/calib/device.txt"

# libflashlib needs CBLAS; the GPU image may lack it: unpack the carried
# Debian packages under /tmp (never over /) and point the build at them.
BLAS_ARGS=()
if ! ls /usr/include/*/cblas.h /usr/include/cblas.h >/dev/null 2>&1 && ls .debs/*.deb >/dev/null 2>&1; then
    mkdir -p /tmp/debroot
    for f in .debs/*.deb; do dpkg -x "$f" /tmp/debroot; done
    BLAS_ARGS=(-DFL_BLAS_LIB=/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so
               -DFL_CBLAS_INCLUDE=/tmp/debroot/usr/include/x86_64-linux-gnu/openblas-openmp)
    export LD_LIBRARY_PATH=/tmp/debroot/usr/lib/x86_64-linux-gnu/openblas-openmp:/tmp/debroot/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
fi
OPS=${OPS:-kmeans,gemm}
TARGETS="flashlib flashlib_cuda flashlib_info"
CUDA_ARGS=()
# GEMM_VARIANTS=gemm_3xbf16,...: the split variants are timed through
# flashlib's fl_gemm, which needs the full build
[ "$OPS" = gemm ] && [ -z "$GEMM_VARIANTS" ] && { TARGETS=flashlib_info; CUDA_ARGS=(-DFL_WITH_CUDA=OFF); }
if [ -n "$PREBUILT" ]; then
    B=$PREBUILT
else
    B=${BUILD:-build-calib}
    T0=$(date +%s)
    { cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release "${BLAS_ARGS[@]}" "${CUDA_ARGS[@]}" &&
      cmake --build "$B" -j16 --target $TARGETS; } >"$OUT/calib/build.log" 2>&1 ||
        { tail -40 "$OUT/calib/build.log"; exit 1; }
    echo "built in $(( $(date +%s) - T0 )) s"
fi
export LD_LIBRARY_PATH=$B/lib:$LD_LIBRARY_PATH
# DEADLINE_S=N: the whole call must end N s after it began (a device call's
# limit): the sweep's budget shrinks by what the build took, 40 s kept for
# the kernel names and the copies
if [ -n "$DEADLINE_S" ]; then
    LEFT=$(( DEADLINE_S - ($(date +%s) - T_START) - 40 ))
    [ "$LEFT" -lt "${BUDGET_S:-200}" ] && { BUDGET_S=$(( LEFT > 30 ? LEFT : 30 )); echo "budget cut to $BUDGET_S s"; }
fi

MEASURE_ARGS=(--lib "$B/lib/libflashlib.so")
[ "$OPS" = gemm ] && [ -z "$GEMM_VARIANTS" ] && MEASURE_ARGS=()
[ -n "$GEMM_VARIANTS" ] && MEASURE_ARGS+=(--gemm-variants "$GEMM_VARIANTS")
# anything but the full sweep (kmeans and gemm together): the measured ops'
# points replace theirs in this device's file (with GEMM_VARIANTS, only
# those variants' points), the other ops' points stay
case ",$OPS," in *,kmeans,*,gemm,* | *,gemm,*,kmeans,*) ;; *) MEASURE_ARGS+=(--merge-from "${MERGE_FROM:-bench/results/calib}") ;; esac
# SEED=N draws other shapes; ADD=1 (one op) adds them to the file's points of that op: to the
# first sweep's $OUT/calib/<device>.json when an earlier call with the same OUT wrote one
[ -n "$SEED" ] && MEASURE_ARGS+=(--seed "$SEED")
[ "${ADD:-0}" = 1 ] && MEASURE_ARGS+=(--add)
# ONLY may name several fields, comma-separated: ONLY=variant=tf32,input=host
if [ -n "$ONLY" ]; then
    IFS=, read -ra ONLY_KV <<<"$ONLY"
    for kv in "${ONLY_KV[@]}"; do MEASURE_ARGS+=(--only "$kv"); done
fi
PYTHONUNBUFFERED=1 python3 bench/calib/measure.py "${MEASURE_ARGS[@]}" --ops "$OPS" \
    --info-lib "$B/lib/libflashlib_info.so" --out "$OUT/calib" --budget-s "${BUDGET_S:-200}" \
    2>&1 | tee "$OUT/calib/measure.log" || exit 1

cp "$OUT"/calib/*.json "$OUT/bench/results/calib/"
for f in bench/results/calib/*.json; do  # earlier devices' measurements
    [ -e "$f" ] || continue
    case "$(basename "$f")" in summary.json) continue ;; esac
    [ -e "$OUT/bench/results/calib/$(basename "$f")" ] || cp "$f" "$OUT/bench/results/calib/"
done
# FIT=0: measure only (the fit is deterministic and CPU-only: run it on any
# machine later, with the same command)
[ "${FIT:-1}" = 0 ] && { echo "FIT=0: no fit here"; exit 0; }
python3 bench/calib/fit.py --info-lib "$B/lib/libflashlib_info.so" --inc "$OUT/src/info/calib_data.inc" \
    --report "$OUT/bench/results/calib/report.md" --plot "$OUT/bench/results/calib/estimate_vs_measured.png" \
    --summary "$OUT/bench/results/calib/summary.json" \
    $(ls "$OUT"/bench/results/calib/*.json | grep -v summary.json) 2>&1 | tee "$OUT/calib/fit.log"
