#!/usr/bin/env python3
"""pca_split_sim.py - the accuracy of PCA's split covariance products,
simulated on the CPU (numpy), before trusting one on the GPU.

The CUDA module's covariance_eigh (src/backends/cuda/pca_cuda.cu) forms
the scatter of z = fl32(X - s) (s = the column means of the first 4096
rows) from parts of z: 3xtf32 (variant 4, hi/lo with 10 mantissa bits
each, ~22 bits of z) or 3xbf16 (variant 5, 7 bits each, ~16 bits), as
S = H^T H + H^T L + L^T H, float32 sums per GEMM slice (here: numpy's
float32 matmul per 2048-row slice, products of the parts exact), then
float64 across slices, S scaled symmetrically to the exact diagonal
sum z^2, and a float64 eigh. torch.linalg's float32 path (what
pca_peers.py times) is: mean in float32 (modelled as exact, rounded), Xc = X - mean, Xc^T Xc in
float32 (sgemm), /(n - 1), float32 eigh.

Each is compared with float64 (the exact centred scatter of the float32
data, float64 eigh): max relative error of the top-k explained variances
and max 1 - |cos| of the components. Data sets: the benchmark's (offset
10, scales decaying with the column), far from the origin (offset 1e4),
a large dynamic range (column scales 1e-4 .. 1e4, offsets 1e3 times the
scale), and a low-rank + noise model with heavy-tailed (lognormal) rows.

    .venv/bin/python bench/gpu/pca_split_sim.py [n] [d] [k]
"""
import json
import sys

import numpy as np


def round_mant(x, bits):
    """fli_round_mant: nearest-even to `bits` explicit mantissa bits."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    drop = 23 - bits
    half = np.uint64(1 << (drop - 1))
    lsb = (u >> np.uint64(drop)) & np.uint64(1)
    r = ((u + half - np.uint64(1) + lsb) & ~np.uint64((1 << drop) - 1)) & np.uint64(0xFFFFFFFF)
    out = r.astype(np.uint32).view(np.float32)
    special = (x.view(np.uint32) & 0x7F800000) == 0x7F800000
    return np.where(special, x, out)


def split_scatter(X, bits, rescale="trace", ll=False, rows=2048, chunk=65536):
    n, d = X.shape
    s = X[: min(n, 4096)].astype(np.float64).mean(0).astype(np.float32)
    S = np.zeros((d, d))
    t = np.zeros(d)
    e = np.zeros(d)
    q = np.zeros(d)  # sum of l^2: the diagonal of the dropped L^T L
    for c0 in range(0, n, chunk):
        z = (X[c0:c0 + chunk] - s).astype(np.float32)
        H = round_mant(z, bits)
        L = round_mant((z - H).astype(np.float32), bits)
        t += z.sum(0, dtype=np.float64)
        e += (z.astype(np.float64) ** 2).sum(0)
        q += (L.astype(np.float64) ** 2).sum(0)
        for r0 in range(0, z.shape[0], rows):
            h, l = H[r0:r0 + rows], L[r0:r0 + rows]
            F = (h.T @ h) * np.float32(0.5) + l.T @ h  # float32 sums, as the tensor cores'
            if ll is True:
                F += (l.T @ l) * np.float32(0.5)
            S += F.astype(np.float64)
    S = S + S.T
    if ll == "diag":  # L^T L's diagonal (its off-diagonal part is noise of mean ~0)
        S[np.diag_indices(d)] += q
    if rescale == "column":  # each column to its exact sum of squares
        f = np.sqrt(e / np.diag(S))
        S = S * f[:, None] * f[None, :]
    elif rescale == "trace":  # one common factor: the exact trace
        S = S * (e.sum() / np.trace(S))
    S -= np.outer(t, t) / n
    return S / (n - 1)


def torch_like(X):
    # torch's float32 mean is a tree reduction on the GPU; numpy's float32
    # sum down axis 0 is sequential (off by whole units at offset 1e4), so
    # the mean is modelled as exact, rounded to float32
    m = X.astype(np.float64).mean(0).astype(np.float32)
    Xc = (X - m).astype(np.float32)
    C = (Xc.T @ Xc) / np.float32(X.shape[0] - 1)
    w, V = np.linalg.eigh(C.astype(np.float32))
    return w.astype(np.float64), V.astype(np.float64)


def truth(X):
    X64 = X.astype(np.float64)
    Xc = X64 - X64.mean(0)
    return np.linalg.eigh((Xc.T @ Xc) / (X.shape[0] - 1))


def errors(w, V, w64, V64, k):
    w, V = w[::-1][:k], V[:, ::-1][:, :k]
    w64, V64 = w64[::-1][:k], V64[:, ::-1][:, :k]
    V = V / np.linalg.norm(V, axis=0)
    cos = np.abs((V * V64).sum(0))
    return {"ev_rel": float(np.max(np.abs(w - w64) / np.abs(w64))), "one_minus_cos": float(np.max(1 - cos))}


def datasets(n, d, rng):
    j = np.arange(d)
    u = rng.uniform(-1, 1, (n, d))
    yield "bench (offset 10, scales 1/(1+0.05 j))", (10.0 + u / (1.0 + 0.05 * j)).astype(np.float32)
    yield "far from the origin (offset 1e4)", (1e4 + u / (1.0 + 0.05 * j)).astype(np.float32)
    sc = 10.0 ** np.linspace(-4, 4, d)
    rng.shuffle(sc)
    yield "dynamic range (scales 1e-4..1e4, offsets 1e3 x scale)", ((1e3 + u) * sc).astype(np.float32)
    r = 16
    B = rng.standard_normal((r, d)) * (0.7 ** np.arange(r))[:, None]
    Y = rng.standard_normal((n, r)) @ B + 0.01 * rng.standard_normal((n, d))
    Y *= rng.lognormal(0, 1, (n, 1))
    yield "low rank + noise, lognormal rows, offset 100", (100.0 + Y).astype(np.float32)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    d = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    k = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    rng = np.random.default_rng(7)
    out = {"n": n, "d": d, "k": k, "sets": []}
    for name, X in datasets(n, d, rng):
        w64, V64 = truth(X)
        row = {"data": name}
        row["torch_fp32"] = errors(*torch_like(X), w64, V64, k)
        for label, bits, resc, ll in (("3xtf32 column", 10, "column", False), ("3xtf32 trace", 10, "trace", False),
                                      ("3xbf16 column", 7, "column", False), ("3xbf16 trace", 7, "trace", False),
                                      ("3xbf16 none", 7, "none", False), ("4xbf16 trace", 7, "trace", True),
                                      ("3xbf16+ll diag trace", 7, "trace", "diag"),
                                      ("3xbf16+ll diag column", 7, "column", "diag"),
                                      ("3xtf32+ll diag column", 10, "column", "diag")):
            w, V = np.linalg.eigh(split_scatter(X, bits, resc, ll))
            row[label] = errors(w, V, w64, V64, k)
        print(json.dumps(row), flush=True)
        out["sets"].append(row)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
