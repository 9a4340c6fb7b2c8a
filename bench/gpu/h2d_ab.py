"""Host X through pinned staging vs straight pageable copies, as a Python
user sees it: flashlib.KMeans(device="cuda").fit(X) on a numpy float32 X.

Each setting runs in a process of its own (FL_H2D_STAGING and
FL_NUM_THREADS are read when the context is made): `python3
bench/gpu/h2d_ab.py --out ab.json` runs staging on with the context's
default threads (at most 4 fill a buffer), on with 2 and 1 thread, and off,
and writes, per shape, the median, min and max wall time of 7 fits after 2
warm-up fits (the calibration's device-X points give the fit without the
copy). Labels and centres of every setting are compared with staging off.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

SHAPES = [  # n, d, k, precision
    (2_000_000, 16, 16, "fp32"),
    (1_000_000, 32, 64, "fp32"),
    (300_000, 128, 1024, "bf16"),
    (100_000, 64, 256, "tf32"),
    (3_000_000, 64, 64, "tf32"),
]


SETTINGS = {  # label: environment of the child
    "staged": {"FL_H2D_STAGING": "1"},
    "staged-2t": {"FL_H2D_STAGING": "1", "FL_NUM_THREADS": "2"},
    "staged-1t": {"FL_H2D_STAGING": "1", "FL_NUM_THREADS": "1"},
    "pageable": {"FL_H2D_STAGING": "0"},
}


def child(staging):
    import numpy as np

    from flashlib import KMeans

    out = []
    for n, d, k, prec in SHAPES:
        rng = np.random.default_rng(n + d + k)
        X = rng.random((n, d), dtype=np.float32) * 2 - 1
        C0 = X[rng.choice(n, k, replace=False)].astype(np.float64)
        km = KMeans(k, init=C0, n_init=1, max_iter=10, tol=0, precision=prec, device="cuda")
        ms = []
        for i in range(9):
            t0 = time.perf_counter()
            km.fit(X)
            if i >= 2:
                ms.append((time.perf_counter() - t0) * 1e3)
        row = dict(n=n, d=d, k=k, precision=prec, staging=staging, ms=sorted(ms)[len(ms) // 2], min_ms=min(ms),
                   max_ms=max(ms), reps=ms, labels_sum=int(km.labels_.astype(np.int64).sum()),
                   centers_hash=hashlib.sha1(km.cluster_centers_.tobytes()).hexdigest())
        out.append(row)
        print(json.dumps({key: v for key, v in row.items() if key != "reps"}), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--child", choices=tuple(SETTINGS))
    a = ap.parse_args()
    if a.child is not None:
        json.dump(child(a.child), open(a.out, "w"), indent=1)
        return
    rows = []
    env = {k: v for k, v in os.environ.items() if k not in ("FL_H2D_STAGING", "FL_NUM_THREADS")}
    for s in SETTINGS:
        part = a.out + f".{s}"
        subprocess.run([sys.executable, __file__, "--out", part, "--child", s], check=True,
                       env={**env, **SETTINGS[s]})
        rows += json.load(open(part))
        os.remove(part)
    base = {(r["n"], r["d"], r["k"]): r for r in rows if r["staging"] == "pageable"}
    for r in rows:
        b = base[(r["n"], r["d"], r["k"])]
        same = b["labels_sum"] == r["labels_sum"] and b["centers_hash"] == r["centers_hash"]
        print(f"{r['n']:>8}x{r['d']:<4} k={r['k']:<5} {r['precision']:5} {r['staging']:10} {r['ms']:8.2f} ms "
              f"[{r['min_ms']:.2f}, {r['max_ms']:.2f}]  same result as pageable {same}")
    json.dump(dict(rows=rows, note=__doc__), open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
