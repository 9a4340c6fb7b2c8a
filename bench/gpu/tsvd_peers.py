"""tsvd_peers.py — what a user would otherwise run for the randomized
decompositions of bench_tsvd.c, on the same shape and spectrum:
torch.svd_lowrank / torch.pca_lowrank on the GPU (data on the device,
q = k + 10 as flashlib's n_oversamples, niter as flashlib's n_iter; CUDA
events, median of 5 after a warm-up) and scikit-learn's TruncatedSVD and
PCA(svd_solver='randomized') on the machine's CPU cores (one timed run).

    python3 bench/gpu/tsvd_peers.py OUT.json [n] [d] [k]
"""
import json
import os
import statistics
import sys
import time

import numpy as np


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    d = int(sys.argv[3]) if len(sys.argv) > 3 else 512
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    rng = np.random.default_rng(12345)
    scale = 10.0 * 0.9 ** np.arange(d) + 0.05  # bench_tsvd.c's spectrum
    X = (0.5 + scale * rng.uniform(-1, 1, (n, d))).astype(np.float32)
    res = {"n": n, "d": d, "k": k, "commit": os.environ.get("GIT_COMMIT", "unknown"),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        import torch

        Xt = torch.from_numpy(X).cuda()
        res["device"] = torch.cuda.get_device_name(0)

        def timed(fn, reps=5):
            fn()
            torch.cuda.synchronize()
            ts = []
            for _ in range(reps):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                ts.append(a.elapsed_time(b))
            return {"ms": statistics.median(ts), "ms_min": min(ts), "ms_max": max(ts)}

        torch.backends.cuda.matmul.allow_tf32 = False
        res["torch_svd_lowrank"] = timed(lambda: torch.svd_lowrank(Xt, q=k + 10, niter=5))
        pca_iter = 7 if k < 0.1 * min(n, d) else 4
        res["torch_pca_lowrank"] = timed(lambda: torch.pca_lowrank(Xt, q=k + 10, center=True, niter=pca_iter))
        res["torch_note"] = "fp32 (TF32 off), q = k + 10, niter 5 (svd) / %d (pca)" % pca_iter
        del Xt
    except Exception as e:  # no torch or no GPU: say so
        res["torch_error"] = repr(e)
    try:
        from sklearn.decomposition import PCA, TruncatedSVD

        t = time.perf_counter()
        TruncatedSVD(n_components=k, random_state=0).fit(X)
        res["sklearn_truncated_svd_ms"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        PCA(n_components=k, svd_solver="randomized", random_state=0).fit(X)
        res["sklearn_pca_randomized_ms"] = (time.perf_counter() - t) * 1e3
        res["sklearn_cores"] = os.cpu_count()
    except Exception as e:
        res["sklearn_error"] = repr(e)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
