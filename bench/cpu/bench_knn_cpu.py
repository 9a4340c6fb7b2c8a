"""CPU benchmark: flashlib NearestNeighbors vs scikit-learn on this machine.

Exact k-nearest-neighbour search of n_q queries against n database rows
(random normal data, float32 and float64), the same k, scikit-learn's
'brute' and 'auto' (the algorithm it would pick) alongside. Timings
alternate between the libraries (background load hits them alike); the
median of `--repeats` runs of kneighbors (the fit is timed apart: it is a
copy for both) is reported, and the results are checked against each other
(distances equal to 1e-4, indices equal except among ties). Writes
bench/results/cpu_knn_<N>cores.json.

    PYTHONPATH=python .venv/bin/python bench/cpu/bench_knn_cpu.py
"""
import argparse
import datetime
import json
import os
import statistics
import time

import numpy as np

from benchinfo import commit, cpu_name

SHAPES = [(2_000, 200_000, 64, 10, "float32"), (2_000, 200_000, 64, 10, "float64"),
          (500, 100_000, 128, 100, "float32")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "results"))
    args = ap.parse_args()

    import sklearn
    from sklearn.neighbors import NearestNeighbors as SkNN

    import flashlib
    from flashlib import NearestNeighbors

    rows = []
    for nq, n, d, k, dt in SHAPES:
        rng = np.random.default_rng(n + d + k)
        X = rng.standard_normal((n, d)).astype(dt)
        Q = rng.standard_normal((nq, d)).astype(dt)
        fl = NearestNeighbors(n_neighbors=k, device="cpu").fit(X)
        sks = {a: SkNN(n_neighbors=k, algorithm=a).fit(X) for a in ("brute", "auto")}
        t = {"flashlib": [], "sklearn_brute": [], "sklearn_auto": []}
        for _ in range(args.repeats):
            s = time.perf_counter()
            fd, fi = fl.kneighbors(Q)
            t["flashlib"].append(time.perf_counter() - s)
            for a, sk in sks.items():
                s = time.perf_counter()
                sd, si = sk.kneighbors(Q)
                t[f"sklearn_{a}"].append(time.perf_counter() - s)
        err = float(np.max(np.abs(fd.astype(np.float64) - sd)))
        same = float((fi == si).mean())
        ms = {key: statistics.median(v) * 1e3 for key, v in t.items()}
        best_sk = min(ms["sklearn_brute"], ms["sklearn_auto"])
        row = dict(n_queries=nq, n=n, d=d, k=k, dtype=dt, flashlib_ms=ms["flashlib"],
                   sklearn_brute_ms=ms["sklearn_brute"], sklearn_auto_ms=ms["sklearn_auto"],
                   all_ms={key: [x * 1e3 for x in v] for key, v in t.items()},
                   speedup_vs_best_sklearn=best_sk / ms["flashlib"], max_abs_distance_diff=err,
                   same_indices_share=same)
        rows.append(row)
        print(f"{nq:>6} x {n:>8} x {d:<3} k={k:<4} {dt}  flashlib {ms['flashlib']:8.1f} ms  scikit-learn brute "
              f"{ms['sklearn_brute']:8.1f} ms, auto {ms['sklearn_auto']:8.1f} ms  ratio {best_sk / ms['flashlib']:.2f}x"
              f"  |dd| {err:.1e}  same idx {same:.4f}")
    result = dict(benchmark="knn_cpu", date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  commit=commit(), cpu=cpu_name(), cores=os.cpu_count(), flashlib=flashlib.__version__,
                  sklearn=sklearn.__version__, numpy=np.__version__, repeats=args.repeats, results=rows)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"cpu_knn_{os.cpu_count()}cores.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
