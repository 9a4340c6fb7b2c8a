#!/usr/bin/env bash
# bench/calib/device_calib.sh — after a change of the KMeans kernels, in one
# call on the GPU machine: build, re-measure every KMeans point (two seeds,
# as the calibration in the repository was measured) and the approximate
# indexes' searches (OPS=ann), measure only (FIT=0: the fit runs afterwards
# on any machine). Everything comes back in $OUT/results.tgz, in the
# repository's layout under calib/ (<device>.json to copy into
# bench/results/calib/).
#   GIT_COMMIT=<sha> OUT=$OUT bash bench/calib/device_calib.sh
# KM_BUDGET_S (120) and ANN_BUDGET_S (150) are the sweeps' budgets; the
# ann sweep is cut to end before LIMIT_S (580 s) after the start.
set -o pipefail
cd "$(dirname "$0")/../.."
FINAL_OUT=${OUT:-out}
mkdir -p "$FINAL_OUT"
OUT=/tmp/calib_out
rm -rf "$OUT"
mkdir -p "$OUT"
trap 'tar czf "$FINAL_OUT/results.tgz" -C "$OUT" .' EXIT
export GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*"; }
B=build-calib
stamp "kmeans, seed 3 (builds $B)"
OPS=kmeans SEED=3 BUDGET_S=${KM_BUDGET_S:-120} FIT=0 BUILD=$B OUT=$OUT bash bench/calib/run.sh >"$OUT/kmeans_s3.log" 2>&1 ||
    { tail -30 "$OUT/kmeans_s3.log"; exit 1; }
grep -E "built in|points measured" "$OUT/kmeans_s3.log"
stamp "kmeans, seed 4 (added)"
OPS=kmeans SEED=4 ADD=1 BUDGET_S=${KM_BUDGET_S:-120} FIT=0 PREBUILT=$B MERGE_FROM=$OUT/calib OUT=$OUT \
    bash bench/calib/run.sh >"$OUT/kmeans_s4.log" 2>&1 || { tail -30 "$OUT/kmeans_s4.log"; exit 1; }
grep -E "points measured" "$OUT/kmeans_s4.log"
LEFT=$((${LIMIT_S:-580} - ($(date +%s) - T0)))
stamp "ann ($LEFT s left)"
OPS=ann BUDGET_S=${ANN_BUDGET_S:-150} DEADLINE_S=$LEFT FIT=0 PREBUILT=$B MERGE_FROM=$OUT/calib OUT=$OUT \
    bash bench/calib/run.sh >"$OUT/ann.log" 2>&1 || { tail -30 "$OUT/ann.log"; exit 1; }
grep -E "searches measured|budget cut" "$OUT/ann.log"
stamp "done"
python3 - "$OUT"/calib/*.json <<'PY'
import json, sys, collections
for f in sys.argv[1:]:
    d = json.load(open(f))
    if "points" not in d: continue
    print(f, collections.Counter(p.get("op") for p in d["points"]))
PY
