"""CPU benchmark: flashlib KMeans vs scikit-learn on this machine.

Same data, same initial centres, same iteration count (20 Lloyd
iterations, tol=0), float32. Timings alternate between the two libraries
(so background load hits both alike) and the median of `--repeats` runs is
reported. Writes bench/results/cpu_kmeans_<N>cores.json.

    PYTHONPATH=python .venv/bin/python bench/cpu/bench_kmeans_cpu.py
"""
import argparse
import datetime
import json
import os
import statistics
import time

import numpy as np

from benchinfo import commit, cpu_name

SHAPES = [(200_000, 32, 64), (1_000_000, 16, 16)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "results"))
    args = ap.parse_args()

    import sklearn
    from sklearn.cluster import KMeans as SkKMeans

    import flashlib
    from flashlib import KMeans

    rows = []
    for n, d, k in SHAPES:
        rng = np.random.default_rng(n + d + k)
        X = rng.standard_normal((n, d)).astype(np.float32)
        init = X[rng.choice(n, k, replace=False)].copy()
        p = dict(n_clusters=k, init=init, n_init=1, max_iter=args.iters, tol=0.0)
        t_fl, t_sk = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fl = KMeans(device="cpu", **p).fit(X)
            t_fl.append(time.perf_counter() - t)
            t = time.perf_counter()
            sk = SkKMeans(algorithm="lloyd", **p).fit(X)
            t_sk.append(time.perf_counter() - t)
        assert fl.n_iter_ == sk.n_iter_ == args.iters, (fl.n_iter_, sk.n_iter_)
        rel = abs(fl.inertia_ - sk.inertia_) / sk.inertia_
        row = dict(n=n, d=d, k=k, iters=args.iters, dtype="float32",
                   flashlib_ms=statistics.median(t_fl) * 1e3, sklearn_ms=statistics.median(t_sk) * 1e3,
                   flashlib_ms_all=[t * 1e3 for t in t_fl], sklearn_ms_all=[t * 1e3 for t in t_sk],
                   inertia_rel_diff=rel)
        row["speedup_vs_sklearn"] = row["sklearn_ms"] / row["flashlib_ms"]
        rows.append(row)
        print(f"{n:>9} x {d:<3} k={k:<4} flashlib {row['flashlib_ms']:8.1f} ms  scikit-learn "
              f"{row['sklearn_ms']:8.1f} ms  ratio {row['speedup_vs_sklearn']:.2f}x  inertia diff {rel:.1e}")
    result = dict(benchmark="kmeans_cpu", date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  commit=commit(), cpu=cpu_name(), cores=os.cpu_count(), flashlib=flashlib.__version__,
                  sklearn=sklearn.__version__, numpy=np.__version__, repeats=args.repeats, results=rows)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"cpu_kmeans_{os.cpu_count()}cores.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
