"""GPU PCA covariance_eigh: the top-k eigensolver against cuSOLVER's full
syevd, shape by shape, to set the rule that picks between them.

Each setting runs in a process of its own (FL_PCA_FULL_EIGH is read when
the context is made): `python3 bench/gpu/pca_route_ab.py --lib
build/lib/libflashlib.so --out ab.json` times fl_pca_fit (X in device
memory, the calibration's data: Gaussian columns scaled by (1 + j)^-1/2,
an eigenvalue spectrum falling as ~1/i) with the routing as it is and with
the full eigensolver forced, median of 5 after warm-up, and writes both
with what the eigensolver did (steps and filter degree of the top-k
solve).
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "calib"))

GRID_N = (100_000, 1_000_000)
GRID_D = (64, 128, 256, 384, 512, 768, 1024)
GRID_K = (2, 8, 16, 32, 64, 128)


def child(lib, out):
    import statistics

    import torch

    import measure

    fl = measure.Flashlib(lib)
    rows = []
    for n in GRID_N:
        for d in GRID_D:
            for k in GRID_K:
                p_blk = k + max(k, 16)
                if 2 * p_blk > d:
                    continue
                p = dict(op="pca", solver="covariance_eigh", n=n, d=d, k=k, n_iter=0)
                ms, (eigh, steps, degree) = measure.time_decomp(fl, torch, p, 5)
                r = dict(n=n, d=d, k=k, ms=statistics.median(ms), reps=ms, eigh=eigh, steps=steps, degree=degree,
                         full_eigh=os.environ.get("FL_PCA_FULL_EIGH", "0"))
                rows.append(r)
                print(json.dumps({key: v for key, v in r.items() if key != "reps"}), flush=True)
    json.dump(rows, open(out, "w"), indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--child", action="store_true")
    a = ap.parse_args()
    if a.child:
        return child(a.lib, a.out)
    rows = []
    for full in ("0", "1"):
        part = f"{a.out}.{full}"
        subprocess.run([sys.executable, __file__, "--lib", a.lib, "--out", part, "--child"], check=True,
                       env={**os.environ, "FL_PCA_FULL_EIGH": full})
        rows += json.load(open(part))
        os.remove(part)
    full = {(r["n"], r["d"], r["k"]): r for r in rows if r["full_eigh"] == "1"}
    print(f"{'n':>8} {'d':>5} {'k':>4}  {'routed':>9} {'(solver)':12} {'syevd':>9}  ratio")
    for r in rows:
        if r["full_eigh"] == "0":
            f = full[(r["n"], r["d"], r["k"])]
            print(f"{r['n']:>8} {r['d']:>5} {r['k']:>4}  {r['ms']:9.3f} {r['eigh'] + ' ' + str(r['steps']):12} "
                  f"{f['ms']:9.3f}  {r['ms'] / f['ms']:.2f}")
    json.dump(dict(rows=rows, note=__doc__), open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
