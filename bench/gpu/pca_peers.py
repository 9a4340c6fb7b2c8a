"""PCA peers on the GPU machine for bench_pca's headline shape: the same
computation written with torch.linalg on the same GPU (centre, Xc^T Xc /
(n - 1), torch.linalg.eigh, top k; TF32 off: fp32 products), its accuracy
against the same steps in float64, the bare product X^T X, and
scikit-learn's PCA on the host cores.

    python3 bench/gpu/pca_peers.py --out OUT.json [--n N --d D --k K --reps R]

Timings: CUDA events, median of R runs after 3 warm-ups; scikit-learn:
wall clock, best and median of a few fits. GIT_COMMIT names the commit.
"""
import argparse
import datetime
import json
import os
import time

import numpy as np


def data(n, d, seed=7):
    """Same law as bench_pca.c's (values differ): offsets of 10, decaying scales."""
    rng = np.random.default_rng(seed)
    scale = (1.0 / (1.0 + 0.05 * np.arange(d))).astype(np.float32)
    X = rng.uniform(-1, 1, size=(n, d)).astype(np.float32)
    X *= scale
    X += 10.0
    return X


def time_cuda(torch, fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return {"median": float(np.median(ts)), "min": ts[0], "max": ts[-1], "reps": reps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=1000000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--sklearn-fits", type=int, default=3)
    a = ap.parse_args()
    res = {"bench": "pca_peers", "commit": os.environ.get("GIT_COMMIT", "unknown"),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": "python3 bench/gpu/pca_peers.py --out OUT.json --n %d --d %d --k %d --reps %d"
                      % (a.n, a.d, a.k, a.reps),
           "shape": {"n": a.n, "d": a.d, "k": a.k, "dtype": "f32"}}
    X = data(a.n, a.d)
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    res["device"] = torch.cuda.get_device_name(0)
    res["torch"] = torch.__version__
    Xd = torch.from_numpy(X).cuda()
    n = a.n

    def torch_pca():
        mean = Xd.mean(0)
        Xc = Xd - mean
        C = (Xc.T @ Xc) / (n - 1)
        w, V = torch.linalg.eigh(C)
        return w[-a.k:].flip(0), V[:, -a.k:].flip(1).T, mean

    res["torch_linalg_ms"] = time_cuda(torch, torch_pca, a.reps)
    res["torch_bare_product_ms"] = time_cuda(torch, lambda: Xd.T @ Xd, a.reps)
    C = (lambda Xc: (Xc.T @ Xc) / (n - 1))(Xd - Xd.mean(0))
    res["torch_eigh_only_ms"] = time_cuda(torch, lambda: torch.linalg.eigh(C), a.reps)
    print("torch.linalg PCA: %.3f ms; bare X^T X: %.3f ms; eigh %dx%d: %.3f ms" % (
        res["torch_linalg_ms"]["median"], res["torch_bare_product_ms"]["median"], a.d, a.d,
        res["torch_eigh_only_ms"]["median"]), flush=True)
    w, V, _ = torch_pca()
    # torch's float32 path against the same computation in float64 on the
    # GPU: the accuracy flashlib's figures are compared with
    Xc64 = Xd.double()
    Xc64 -= Xc64.mean(0)
    w64, V64 = torch.linalg.eigh((Xc64.T @ Xc64) / (n - 1))
    w64, V64 = w64[-a.k:].flip(0), V64[:, -a.k:].flip(1).T
    del Xc64
    Vd = V.double()
    Vd /= Vd.norm(dim=1, keepdim=True)  # float32 eigenvectors are unit only to ~3e-6
    cos = (Vd * V64).sum(1).abs()
    res["torch_fp32_vs_fp64"] = {
        "max_1_minus_abs_cos": float((1 - cos).max()),
        "explained_variance_rel": float(((w.double() - w64).abs() / w64.abs()).max())}
    print("torch fp32 vs fp64: 1-|cos| max %.2e, explained variance rel %.2e" % (
        res["torch_fp32_vs_fp64"]["max_1_minus_abs_cos"], res["torch_fp32_vs_fp64"]["explained_variance_rel"]),
        flush=True)
    del Xd, C
    torch.cuda.empty_cache()
    if a.sklearn_fits > 0:
        from sklearn import __version__ as skv
        from sklearn.decomposition import PCA
        ts = []
        for _ in range(a.sklearn_fits):
            t0 = time.perf_counter()
            p = PCA(a.k, svd_solver="covariance_eigh").fit(X)
            ts.append((time.perf_counter() - t0) * 1e3)
        ev = torch.from_numpy(p.explained_variance_.astype(np.float64))
        res["sklearn_ms"] = {"median": float(np.median(ts)), "min": min(ts), "fits": len(ts),
                             "cores": os.cpu_count(), "sklearn": skv, "svd_solver": "covariance_eigh"}
        res["torch_vs_sklearn_ev_rel"] = float((w.double().cpu() - ev).abs().max() / ev.abs().max())
        print("scikit-learn PCA (%d cores): median %.1f ms" % (os.cpu_count(), res["sklearn_ms"]["median"]),
              flush=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
