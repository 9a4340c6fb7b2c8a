"""flashlib demo: KMeans on the handwritten digits shipped in data/, then a
larger synthetic problem, each beside scikit-learn on the same machine.

Run through `make demo` (which builds the library and the virtual
environment first). Prints quality (adjusted Rand index against the true
digit labels, inertia) and wall time for flashlib and scikit-learn.
"""
import gzip
import os
import sys
import time

import numpy as np

import flashlib
from flashlib import KMeans

HERE = os.path.dirname(os.path.abspath(__file__))


def load_digits():
    path = os.path.join(HERE, "..", "data", "digits.csv.gz")
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", skiprows=1)
    return data[:, :-1].astype(np.float32), data[:, -1].astype(np.int64)


def timed(fn, repeats=3):
    """Best wall time of `repeats` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def show_estimate(cost, shape, params, device, measured_s):
    """The cost model's prediction, made before running, beside the measurement."""
    try:
        est = cost.estimate("kmeans", shape=shape, params=params, device=device, dtype="f32")
    except Exception as exc:  # the demo goes on without the estimate
        print(f"   cost model: {exc}")
        return
    print(f"   cost model estimate on {device}: {est.runtime_ms:.1f} ms [{est.confidence}], "
          f"peak memory {est.peak_memory_bytes / 2**20:.1f} MiB; measured {measured_s * 1e3:.1f} ms")


def main():
    try:
        from sklearn.cluster import KMeans as SkKMeans
        from sklearn.metrics import adjusted_rand_score
    except ImportError:  # the demo's comparison needs scikit-learn
        print("scikit-learn is not installed; run `make demo` to set it up")
        return 1

    import flashlib.info as cost

    diag = flashlib.diagnose()
    device = "cuda" if diag.get("cuda_usable") else "cpu"
    # The cost model's name for where this runs: the GPU's tag, or "this"
    # (this machine's CPU, with its own core count).
    where = diag["devices"][0].get("tag", "this") if device == "cuda" and diag.get("devices") else "this"
    print(f"flashlib {flashlib.__version__}; GPU: {diag.get('summary', 'none')}")
    print(f"running on: {device}\n")

    X, y = load_digits()
    print(f"1) digits: {X.shape[0]} images x {X.shape[1]} pixels, 10 classes")
    params = dict(n_clusters=10, n_init=10, random_state=0)
    t_fl, fl = timed(lambda: KMeans(device=device, **params).fit(X))
    t_sk, sk = timed(lambda: SkKMeans(**params).fit(X))
    print(f"   {'':12s} {'ARI':>6s} {'inertia':>12s} {'time':>9s}")
    print(f"   {'flashlib':12s} {adjusted_rand_score(y, fl.labels_):6.3f} {fl.inertia_:12.1f} "
          f"{t_fl * 1e3:7.1f} ms")
    print(f"   {'scikit-learn':12s} {adjusted_rand_score(y, sk.labels_):6.3f} {sk.inertia_:12.1f} "
          f"{t_sk * 1e3:7.1f} ms")
    show_estimate(cost, X.shape, {"n_clusters": 10, "n_init": 10, "expected_iter": fl.n_iter_}, where, t_fl)

    n, d, k = 200_000, 32, 64
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(k, d))
    Xb = (centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)
    init = Xb[rng.choice(n, k, replace=False)]
    print(f"\n2) blobs: {n} x {d}, k={k}, 20 Lloyd iterations from the same init")
    p2 = dict(n_clusters=k, init=init, n_init=1, max_iter=20, tol=0.0)
    t_fl, fl = timed(lambda: KMeans(device=device, **p2).fit(Xb), repeats=2)
    t_sk, sk = timed(lambda: SkKMeans(**p2).fit(Xb), repeats=2)
    print(f"   flashlib     inertia {fl.inertia_:14.1f}  {t_fl * 1e3:8.1f} ms")
    print(f"   scikit-learn inertia {sk.inertia_:14.1f}  {t_sk * 1e3:8.1f} ms"
          f"   (flashlib is {t_sk / t_fl:.1f}x faster)")
    show_estimate(cost, Xb.shape, {"n_clusters": k, "n_init": 1, "max_iter": 20, "init": "array"}, where, t_fl)
    rel = abs(fl.inertia_ - sk.inertia_) / sk.inertia_
    print(f"   same answer: relative inertia difference {rel:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
