"""CPU benchmark: flashlib PCA / TruncatedSVD vs scikit-learn on this machine.

200,000 x 128 float32 to 16 components (the shape of issue 5), data with a
decaying spectrum and an offset. Each row runs the same solver semantics in
both libraries: covariance_eigh, 'auto' (which both resolve to
covariance_eigh for this shape; the resolved solvers are recorded), full,
randomized, and TruncatedSVD's randomized algorithm. Timings alternate
between the two libraries (background load hits both alike); the median
and the minimum of `--repeats` fits are reported with the agreement of the
results. Writes bench/results/cpu_pca_<N>cores.json.

    PYTHONPATH=python .venv/bin/python bench/cpu/bench_pca_cpu.py
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import time

import numpy as np

from benchinfo import commit, cpu_name

N, D, K = 200_000, 128, 16
CASES = [  # (name, estimator, params, repeats factor)
    ("pca covariance_eigh", "PCA", dict(svd_solver="covariance_eigh"), 1.0),
    ("pca auto", "PCA", dict(svd_solver="auto"), 1.0),
    ("pca full", "PCA", dict(svd_solver="full"), 0.5),
    ("pca randomized", "PCA", dict(svd_solver="randomized", random_state=0), 0.5),
    ("truncated_svd randomized", "TruncatedSVD", dict(algorithm="randomized", random_state=0), 0.5),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "results"))
    args = ap.parse_args()

    import sklearn
    from sklearn import decomposition as skd

    import flashlib

    rng = np.random.default_rng(0)
    X = (rng.standard_normal((N, D)) * 0.9 ** np.arange(D)) @ rng.standard_normal((D, D)) + 5.0
    X = np.ascontiguousarray(X, dtype=np.float32)
    # float64 reference: eigenpairs of the float64 covariance (PCA) and of
    # the float64 Gram matrix (TruncatedSVD), signs by scikit-learn's rule
    X64 = X.astype(np.float64)
    ref = {}
    for cls, A in (("PCA", X64 - X64.mean(axis=0)), ("TruncatedSVD", X64)):
        w, V = np.linalg.eigh(A.T @ A)
        V = V[:, ::-1][:, :K].T
        V *= np.sign(V[np.arange(K), np.abs(V).argmax(axis=1)])[:, None]
        ref[cls] = V
    del X64

    def err(est, cls):
        return float(np.abs(est.components_.astype(np.float64) - ref[cls]).max())

    rows = []
    for name, cls, params, factor in CASES:
        kw = dict(n_components=K, **params)
        t_fl, t_sk = [], []
        for _ in range(max(3, int(args.repeats * factor))):
            t = time.perf_counter()
            fl = getattr(flashlib, cls)(device="cpu", **kw).fit(X)
            t_fl.append(time.perf_counter() - t)
            t = time.perf_counter()
            sk = getattr(skd, cls)(**kw).fit(X)
            t_sk.append(time.perf_counter() - t)
        row = dict(case=name, n=N, d=D, n_components=K, dtype="float32", params=params,
                   flashlib_ms=statistics.median(t_fl) * 1e3, sklearn_ms=statistics.median(t_sk) * 1e3,
                   flashlib_ms_min=min(t_fl) * 1e3, sklearn_ms_min=min(t_sk) * 1e3,
                   flashlib_ms_all=[t * 1e3 for t in t_fl], sklearn_ms_all=[t * 1e3 for t in t_sk],
                   components_max_abs_diff=float(np.abs(fl.components_ - sk.components_).max()),
                   explained_variance_max_rel_diff=float(
                       np.abs(fl.explained_variance_ - sk.explained_variance_).max() / sk.explained_variance_[0]))
        row["flashlib_components_err_vs_f64"] = err(fl, cls)
        row["sklearn_components_err_vs_f64"] = err(sk, cls)
        if cls == "PCA":
            row["sklearn_solver"] = sk._fit_svd_solver
            row["flashlib_solver"] = flashlib.route("pca", X.shape, kw, device="cpu", dtype="float32")["variant"]
        row["speedup_vs_sklearn"] = row["sklearn_ms"] / row["flashlib_ms"]
        rows.append(row)
        print(f"{name:<26} flashlib {row['flashlib_ms']:8.1f} ms (min {row['flashlib_ms_min']:7.1f})  "
              f"scikit-learn {row['sklearn_ms']:8.1f} ms (min {row['sklearn_ms_min']:7.1f})  "
              f"ratio {row['speedup_vs_sklearn']:.2f}x  components err vs f64: flashlib "
              f"{row['flashlib_components_err_vs_f64']:.1e}, scikit-learn {row['sklearn_components_err_vs_f64']:.1e}",
              flush=True)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    result = dict(benchmark="pca_cpu", date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  commit=commit(), device=f"CPU: {cpu_name()}, {os.cpu_count()} cores (shared machine)",
                  cpu=cpu_name(), cores=os.cpu_count(), loadavg_at_end=load,
                  command="PYTHONPATH=python .venv/bin/python " + " ".join(sys.argv),
                  flashlib=flashlib.__version__, sklearn=sklearn.__version__, numpy=np.__version__,
                  repeats=args.repeats, results=rows)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"cpu_pca_{os.cpu_count()}cores.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
