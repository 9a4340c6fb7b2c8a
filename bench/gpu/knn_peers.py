"""knn_peers.py — what a user would write instead of flashlib's exact kNN,
on the shapes of bench_knn.c: plain PyTorch (torch.cdist + torch.topk,
chunked over the queries so the distance block fits; fp32 and with TF32
matmuls allowed) and scikit-learn NearestNeighbors (brute force, 16 cores)
on a subset of the queries, scaled to the full count.

Usage: python3 knn_peers.py out.json [reps]
Timings: CUDA events, 2 warm-ups, median of `reps` runs (fewer for the
slow shapes, as recorded); data uniform [0,1) float32 on the device.
"""
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch


def timed(fn, reps, warm=2):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts), min(ts), max(ts)


def torch_knn(q, db, k, chunk, self_exclude=False):
    out_d, out_i = [], []
    for s in range(0, q.shape[0], chunk):
        d = torch.cdist(q[s:s + chunk], db)  # euclidean; squared below
        if self_exclude:
            r = torch.arange(d.shape[0], device=d.device)
            d[r, s + r] = float("inf")
        v, i = torch.topk(d, k, dim=1, largest=False, sorted=True)
        out_d.append(v * v)
        out_i.append(i)
    return torch.cat(out_d), torch.cat(out_i)


def main():
    out = sys.argv[1]
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(1)
    N, D = 1_000_000, 128
    db = torch.rand(N, D, device=dev, generator=g)
    q = torch.rand(10_000, D, device=dev, generator=g)
    res = {
        "benchmark": "knn peers: torch.cdist + torch.topk; scikit-learn NearestNeighbors brute",
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "commit": os.environ.get("GIT_COMMIT", "unknown"),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "cases": [],
    }
    cases = [
        ("10K x 1M x 128 k=10", 10_000, 10, False, reps),
        ("100 x 1M x 128 k=10 (latency)", 100, 10, False, reps),
        ("10K x 1M x 128 k=100", 10_000, 100, False, reps),
        ("1K x 1M x 128 k=1024", 1_000, 1024, False, reps),
        # self-kNN: 40K of the 1M queries measured, scaled by 25
        ("self-kNN graph 1M x 128 k=16", 40_000, 16, True, 3),
    ]
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        for name, nq, k, selfx, r in cases:
            qq = db[:nq] if selfx else q[:nq]
            chunk = 2000
            try:
                med, lo, hi = timed(lambda: torch_knn(qq, db, k, chunk, selfx), r, warm=1 if selfx else 2)
            except RuntimeError as e:  # out of memory etc.
                res["cases"].append({"name": name, "peer": "torch", "error": str(e)[:200]})
                continue
            row = {"name": name, "peer": "torch cdist+topk", "matmul": "tf32" if tf32 else "fp32",
                   "n_q": nq, "n_db": N, "d": D, "k": k, "reps": r, "chunk": chunk,
                   "median_ms": med, "min_ms": lo, "max_ms": hi}
            if selfx:
                row.update({"measured_queries": nq, "n_q": N, "median_ms": med * N / nq,
                            "min_ms": lo * N / nq, "max_ms": hi * N / nq, "scaled_from_ms": med})
            print(json.dumps(row), flush=True)
            res["cases"].append(row)
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        from sklearn.neighbors import NearestNeighbors

        dbh = db.cpu().numpy()
        qh = q[:1000].cpu().numpy()
        nn = NearestNeighbors(n_neighbors=10, algorithm="brute", n_jobs=16).fit(dbh)
        t0 = time.perf_counter()
        nn.kneighbors(qh)
        t = (time.perf_counter() - t0) * 1e3
        row = {"name": "10K x 1M x 128 k=10", "peer": "scikit-learn NearestNeighbors brute n_jobs=16",
               "measured_queries": 1000, "measured_ms": t, "scaled_to_10K_ms": t * 10, "reps": 1}
        print(json.dumps(row), flush=True)
        res["cases"].append(row)
    except Exception as e:  # noqa: BLE001
        res["cases"].append({"peer": "scikit-learn", "error": str(e)[:200]})
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
