"""peers.py — what a user would otherwise run, on the same GPU machine:

  * plain PyTorch Lloyd (x @ c.T + argmin + index_add_), fp32 exact, tf32 and
    bf16 matmul, on the GPU, CUDA events, 2 warm-ups, median of 10;
  * scikit-learn KMeans(algorithm='lloyd', init=<same array>, n_init=1,
    max_iter=20, tol=0) on the machine's CPU cores, median of a few fits.

Same shapes and data recipe as bench_kmeans.c (uniform [-1, 1), init = k
rows of X). Writes JSON (--out) with device, date, medians and spread.
"""
import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

SHAPES = [("1M", 1_000_000, 128, 1024), ("100K", 100_000, 64, 256), ("2M", 2_000_000, 32, 64)]
ITERS = 20


def data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, d)).astype(np.float32)
    init = x[(np.arange(k) * 977) % n].copy()
    return x, init


def torch_lloyd(x, c, iters, mm_dtype):
    import torch
    k = c.shape[0]
    xm = x.to(mm_dtype)
    for _ in range(iters):
        score = (c * c).sum(1)[None, :] - 2 * (xm @ c.to(mm_dtype).T).float()
        lab = score.argmin(1)
        sums = torch.zeros_like(c).index_add_(0, lab, x)
        cnt = torch.bincount(lab, minlength=k).to(c.dtype)
        c = torch.where(cnt[:, None] > 0, sums / cnt.clamp(min=1)[:, None], c)
    return c


def bench_torch(results, reps):
    import torch
    dev = torch.device("cuda")
    for tag, n, d, k in SHAPES:
        x, init = data(n, d, k)
        xt = torch.from_numpy(x).to(dev)
        ct = torch.from_numpy(init).to(dev)
        for name, dt, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                               ("bf16", torch.bfloat16, False)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            ms = []
            for r in range(reps + 2):
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                torch_lloyd(xt, ct, ITERS, dt)
                e1.record()
                torch.cuda.synchronize()
                if r >= 2:
                    ms.append(e0.elapsed_time(e1))
            med = statistics.median(ms)
            results.append({"peer": "torch", "shape": f"{n}x{d}", "k": k, "precision": name,
                            "median_ms": med, "min_ms": min(ms), "max_ms": max(ms), "reps": reps,
                            "tflops": 2 * n * k * d * ITERS / (med * 1e-3) / 1e12})
            print(f"torch   {tag:5s} {name:5s} {med:9.3f} ms  (min {min(ms):.3f} max {max(ms):.3f})", flush=True)
        del xt, ct
        torch.cuda.empty_cache()


def bench_sklearn(results, threads):
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits
    for tag, n, d, k in SHAPES:
        x, init = data(n, d, k)
        reps = 1 if n * k * d > 1e10 else 3
        ms = []
        with threadpool_limits(limits=threads):
            for _ in range(reps):
                t0 = time.perf_counter()
                km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=ITERS, tol=0, algorithm="lloyd").fit(x)
                ms.append((time.perf_counter() - t0) * 1e3)
        med = statistics.median(ms)
        results.append({"peer": "sklearn", "shape": f"{n}x{d}", "k": k, "precision": "fp32",
                        "threads": threads, "median_ms": med, "min_ms": min(ms), "max_ms": max(ms),
                        "reps": reps, "n_iter": int(km.n_iter_), "inertia": float(km.inertia_)})
        print(f"sklearn {tag:5s} fp32  {med:9.1f} ms  ({reps} fits, {threads} threads, {km.n_iter_} iters)",
              flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="peers.json")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--skip-torch", action="store_true")
    a = ap.parse_args()
    results = []
    info = {"bench": "kmeans_peers", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "commit": os.environ.get("GIT_COMMIT", "unknown"), "host": platform.node(),
            "iters": ITERS, "data": "uniform [-1,1), init = rows (c*977) % n"}
    try:
        import torch
        info["device"] = torch.cuda.get_device_name(0)
        info["torch"] = torch.__version__
        if not a.skip_torch:
            bench_torch(results, a.reps)
    except Exception as e:  # report, keep going with sklearn
        print("torch peer failed:", e)
        info["torch_error"] = str(e)
    if not a.skip_sklearn:
        try:
            import sklearn
            info["sklearn"] = sklearn.__version__
            bench_sklearn(results, os.cpu_count() or 16)
        except Exception as e:
            print("sklearn peer failed:", e)
            info["sklearn_error"] = str(e)
    info["results"] = results
    with open(a.out, "w") as f:
        json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
