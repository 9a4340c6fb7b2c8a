"""measure.py — timings for the cost model's calibration, on the GPU machine.

What it measures (and nothing else):
  kmeans   flashlib's own fl_kmeans_fit (libflashlib + the CUDA module),
           called through ctypes, for every GPU precision (fp32, tf32, bf16,
           fp16) over a sweep of n, d, k, iterations, init (given centres or
           k-means++) and where X lives (device or host numpy), wall clock
           from the call to its return (the fit synchronises before
           returning), warm-up fits first (>= 20 ms of them), median of
           repeats. tol=0 and the
           iterations the fit reports are recorded: the model is fed the
           iterations that actually ran.
  knn      flashlib's own fl_knn_search (libflashlib + the CUDA module),
           through ctypes, for every GPU scan precision (fp32, tf32, bf16,
           fp16) over n_queries, n_samples, n_features and k (the kNN graph
           of the data and separate queries; k up to the any-k path), data
           and results in device memory (torch tensors) or on the host
           (numpy), and manhattan for the SIMT scan; wall clock around the
           call and a device synchronisation, warm-up calls first (>= 20
           ms of them), median of repeats.
  gemm     cuBLAS through torch.matmul for the plain precisions (fp64, fp32
           with TF32 off, tf32, bf16, fp16), per-call device time from
           CUDA-graph replays (time_gemm): fl_gemm runs each of these as
           one cuBLAS call too; the split variants (3xtf32 ... ozaki_int8)
           through fl_gemm itself (time_fl_gemm), calls back to back.
  eigh, polar  fl_eigh / fl_polar, every variant, on device float32
           matrices of n = 256..4096 (time_la).
  tsvd, pca    fl_truncated_svd_fit / fl_pca_fit on device X through a
           cuda context (time_decomp).
  anchors  the references `compare` scales: scikit-learn KMeans on this
           machine's CPU cores, a plain PyTorch Lloyd on the GPU, numpy and
           torch matmul.

The sweep is planned with the cost model itself (roofline) so that it fits a
time budget; points whose estimate exceeds the per-point cap are skipped.
Writes one JSON file per run: device, driver, commit, date, every point with
its repeats, median and spread.

  python3 bench/calib/measure.py --lib build/lib/libflashlib.so \\
      --info-lib build/lib/libflashlib_info.so --out $OUT/calib --budget-s 240
"""
import argparse
import ctypes
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from ctypes import POINTER, Structure, byref, c_char, c_char_p, c_double, c_int, c_int32, c_int64, c_size_t, c_void_p

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import infolib  # noqa: E402  (ctypes binding of libflashlib_info, shared with fit.py)

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


# ---- libflashlib through ctypes (only what the sweep calls) ------------------------
class FlArray(Structure):
    _fields_ = [("data", c_void_p), ("dtype", c_int), ("mem", c_int), ("device_id", c_int32),
                ("rows", c_int64), ("cols", c_int64), ("ld", c_int64)]


F32, F64, I32, I64 = 1, 2, 5, 6
HOST, CUDA = 0, 1


LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)
LOG_INFO = 2


class Flashlib:
    def __init__(self, path, device="cuda"):
        self.lib = lib = ctypes.CDLL(path)
        lib.fl_ctx_create.argtypes = [c_char_p, POINTER(c_void_p), c_char_p, c_size_t]
        lib.fl_ctx_last_error.restype = c_char_p
        lib.fl_ctx_last_error.argtypes = [c_void_p]
        lib.fl_ctx_free.argtypes = [c_void_p]
        lib.fl_params_create.argtypes = [c_void_p, c_char_p, POINTER(c_void_p)]
        lib.fl_params_set.argtypes = [c_void_p, c_void_p, c_char_p, c_char_p]
        lib.fl_params_set_array.argtypes = [c_void_p, c_void_p, c_char_p, POINTER(FlArray)]
        lib.fl_params_free.argtypes = [c_void_p]
        lib.fl_kmeans_fit.argtypes = [c_void_p, POINTER(FlArray), POINTER(FlArray), c_void_p, POINTER(FlArray),
                                      POINTER(FlArray), POINTER(c_double), POINTER(c_int64)]
        lib.fl_knn_search.argtypes = [c_void_p, POINTER(FlArray), POINTER(FlArray), c_int64, c_void_p,
                                      POINTER(FlArray), POINTER(FlArray)]
        lib.fl_gemm.argtypes = [c_void_p, c_char_p, c_double, c_int, c_int, c_int, c_double, POINTER(FlArray),
                                POINTER(FlArray), c_double, POINTER(FlArray), c_void_p]
        lib.fl_eigh.argtypes = [c_void_p, c_char_p, POINTER(FlArray), c_int64, POINTER(FlArray), POINTER(FlArray),
                                c_void_p]
        lib.fl_polar.argtypes = [c_void_p, c_char_p, POINTER(FlArray), c_void_p, POINTER(FlArray), c_void_p,
                                 c_void_p]
        for fn in (lib.fl_pca_fit, lib.fl_truncated_svd_fit):
            fn.argtypes = [c_void_p, POINTER(FlArray), c_void_p, POINTER(c_void_p)]
        lib.fl_model_free.argtypes = [c_void_p]
        lib.fl_model_create.argtypes = [c_void_p, c_char_p, c_void_p, POINTER(c_void_p)]
        lib.fl_model_fit.argtypes = [c_void_p, POINTER(FlArray), c_void_p, c_void_p]
        lib.fl_model_kneighbors.argtypes = [c_void_p, POINTER(FlArray), c_int64, POINTER(FlArray), POINTER(FlArray)]
        lib.fl_model_set_param.argtypes = [c_void_p, c_char_p, c_char_p]
        lib.fl_version_string.restype = c_char_p
        lib.fl_ctx_set_log.argtypes = [c_void_p, LOG_FN, c_void_p]
        lib.fl_ctx_set_verbosity.argtypes = [c_void_p, c_int]
        err = ctypes.create_string_buffer(512)
        self.ctx = c_void_p()
        if lib.fl_ctx_create(device.encode(), byref(self.ctx), err, 512):
            raise RuntimeError(f"fl_ctx_create({device}): {err.value.decode()}")

    def check(self, st, what):
        if st:
            raise RuntimeError(f"{what}: {self.lib.fl_ctx_last_error(self.ctx).decode()} (status {st})")

    def params(self, values, init_rows=None, algo="kmeans"):
        p = c_void_p()
        self.check(self.lib.fl_params_create(self.ctx, algo.encode(), byref(p)), "fl_params_create")
        for k, v in values.items():
            self.check(self.lib.fl_params_set(self.ctx, p, k.encode(), str(v).encode()), f"set {k}={v}")
        if init_rows is not None:  # a float64 numpy array, k x d
            a = FlArray(init_rows.ctypes.data, F64, HOST, 0, init_rows.shape[0], init_rows.shape[1],
                        init_rows.shape[1])
            self.check(self.lib.fl_params_set_array(self.ctx, p, b"init", byref(a)), "set init array")
        return p


# ---- the KMeans sweep ----------------------------------------------------------------
def kmeans_candidates(seed):
    """Shapes per precision: Lloyd from given centres (device X) across n, d,
    k and iterations; k-means++ inits; host X. Hopper-path shapes (k >= 1024,
    d >= 64, d % 16 == 0) are included so their routing key gets points."""
    rng = random.Random(seed)
    out = []
    ns = (10_000, 50_000, 200_000, 1_000_000, 3_000_000)
    ds = (8, 16, 32, 64, 100, 128, 256)
    ks = (4, 16, 64, 256, 1000, 1024, 2048, 4096)
    for prec in PRECISIONS:
        seen = set()
        pts = []
        while len(pts) < 40:
            n, d, k = rng.choice(ns), rng.choice(ds), rng.choice(ks)
            if k > n // 4 or (n, d, k) in seen:
                continue
            seen.add((n, d, k))
            pts.append(dict(n=n, d=d, k=k, iters=rng.choice((5, 10, 20)), init="array", input="device"))
        if prec != "fp32":  # the Hopper path's routing key: k >= 1024, d >= 64, d % 16 == 0
            for n, d, k in ((200_000, 64, 1024), (1_000_000, 128, 2048), (500_000, 256, 4096),
                            (100_000, 128, 1024), (2_000_000, 64, 1024), (300_000, 96, 2048), (50_000, 64, 4096),
                            (150_000, 192, 1024), (800_000, 80, 1024), (60_000, 256, 2048), (400_000, 64, 2048),
                            (1_500_000, 128, 1024), (30_000, 112, 1024), (250_000, 160, 4096)):
                pts.append(dict(n=n, d=d, k=k, iters=rng.choice((5, 10, 20)), init="array", input="device"))
            for n, d, k in ((100_000, 64, 1024), (40_000, 128, 2048)):
                pts.append(dict(n=n, d=d, k=k, iters=5, init="k-means++", input="device"))
            # the fused E+M kernel's key: n_features <= 64, n_clusters <= 256
            for n, d, k in ((100_000, 16, 32), (1_000_000, 64, 256), (3_000_000, 32, 128), (20_000, 48, 200),
                            (500_000, 8, 16), (2_000_000, 64, 64), (50_000, 40, 256), (800_000, 24, 100),
                            (300_000, 64, 160), (10_000, 32, 64), (1_500_000, 16, 256), (200_000, 56, 48)):
                pts.append(dict(n=n, d=d, k=k, iters=rng.choice((5, 10, 20)), init="array", input="device"))
            pts.append(dict(n=400_000, d=32, k=128, iters=5, init="k-means++", input="device"))
            pts.append(dict(n=1_000_000, d=48, k=64, iters=10, init="array", input="host"))
            pts.append(dict(n=300_000, d=128, k=1024, iters=10, init="array", input="host"))
        for n, d, k in ((50_000, 32, 64), (200_000, 64, 256), (100_000, 16, 1024), (1_000_000, 32, 128),
                        (20_000, 128, 512), (500_000, 8, 32)):
            pts.append(dict(n=n, d=d, k=k, iters=5, init="k-means++", input="device"))
        for n, d, k in ((100_000, 64, 256), (1_000_000, 32, 64), (300_000, 128, 1024), (2_000_000, 16, 16)):
            pts.append(dict(n=n, d=d, k=k, iters=10, init="array", input="host"))
        # more host X (the copy's share of the fit from ~5% to ~90%), drawn apart from the shapes above
        hr = random.Random(seed * 1009 + len(out))
        for _ in range(6):
            n, d = hr.choice((50_000, 200_000, 500_000, 1_000_000, 3_000_000)), hr.choice((8, 32, 64, 100, 256))
            k = hr.choice((8, 64, 256, 1024))
            pts.append(dict(n=n, d=d, k=min(k, n // 4), iters=hr.choice((5, 10, 20)), init="array", input="host"))
        for p in pts:
            p["precision"] = prec
        out += pts
    rng.shuffle(out)
    return out


def kmeans_params(p):
    return (f"n_clusters={p['k']} precision={p['precision']} init={p['init']} input={p['input']} "
            f"max_iter={p['iters']} expected_iter={p['iters']} tol=0 n_init=1")


def time_kmeans(fl, torch, np, p, reps):
    n, d, k = p["n"], p["d"], p["k"]
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(n * 31 + d * 7 + k)
    X = torch.rand((n, d), generator=g, device=dev, dtype=torch.float32) * 2 - 1
    # k distinct rows: duplicate centres would empty clusters and time the relocation path
    rows = torch.randperm(n, generator=g, device=dev)[:k]
    init = X[rows].double().cpu().numpy() if p["init"] == "array" else None
    params = fl.params({"n_clusters": k, "precision": p["precision"], "init": p["init"], "max_iter": p["iters"],
                        "tol": 0, "n_init": 1, "random_state": 0}, init)
    if p["input"] == "host":
        Xh = X.cpu().numpy()  # first touched by this (pinned) thread
        xa = FlArray(Xh.ctypes.data, F32, HOST, 0, n, d, d)
        C = np.empty((k, d), np.float32)
        L = np.empty((n, 1), np.int32)
        ca = FlArray(C.ctypes.data, F32, HOST, 0, k, d, d)
        la = FlArray(L.ctypes.data, I32, HOST, 0, n, 1, 1)
    else:
        xa = FlArray(X.data_ptr(), F32, CUDA, 0, n, d, d)
        C = torch.empty((k, d), device=dev, dtype=torch.float32)
        L = torch.empty((n, 1), device=dev, dtype=torch.int32)
        ca = FlArray(C.data_ptr(), F32, CUDA, 0, k, d, d)
        la = FlArray(L.data_ptr(), I32, CUDA, 0, n, 1, 1)
    inertia, n_iter = c_double(), c_int64()

    def fit_ms():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fl.check(fl.lib.fl_kmeans_fit(fl.ctx, byref(xa), None, params, byref(ca), byref(la), byref(inertia),
                                      byref(n_iter)), "fl_kmeans_fit")
        return (time.perf_counter() - t0) * 1e3

    # warm-up: one fit, and more while they add up to < 20 ms (short fits
    # after an idle gap run at lower clocks), at most 8
    warm = fit_ms()
    for _ in range(7):
        if warm >= 20:
            break
        warm += fit_ms()
    ms = [fit_ms() for _ in range(reps)]
    fl.lib.fl_params_free(params)
    del X
    return ms, n_iter.value


# ---- the exact kNN sweep -------------------------------------------------------------------
KNN_PER_PRECISION = 36  # random searches per precision: ~27 fitted and ~9 held out


def knn_candidates(seed):
    """Searches per precision: random n_samples x n_features databases with
    separate queries or the kNN graph of the data itself ("self"), k from
    1 to past the largest k a block's lists hold (the any-k path), most in
    device memory and a few on the host; for fp32 also manhattan (the SIMT
    scan without a product form). Drawn, never filtered by the model;
    the plan's cap drops only what would not fit the time."""
    rng = random.Random(seed + 2)
    ns = (10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000)
    nqs = (100, 1_000, 10_000, 50_000, "self")
    ds = (8, 16, 32, 64, 96, 128, 200, 256, 512)
    ks = (1, 5, 10, 16, 32, 50, 64, 100, 128, 200, 500, 1000)  # > 128: the any-k path
    out = []
    for prec in PRECISIONS:
        seen = set()
        pts = []
        while len(pts) < KNN_PER_PRECISION:
            n, nq, d, k = rng.choice(ns), rng.choice(nqs), rng.choice(ds), rng.choice(ks)
            self_ = nq == "self"
            if self_:
                n = min(n, 100_000)  # the graph of n points is n x n work
                nq = n
            if k >= n or (n, nq, d, k, self_) in seen:
                continue
            seen.add((n, nq, d, k, self_))
            pts.append(dict(n=n, nq=nq, d=d, k=k, self=self_, metric="euclidean",
                            input="host" if rng.random() < 0.2 else "device"))
        if prec == "fp32":
            for n, nq, d, k in ((100_000, 1_000, 64, 10), (1_000_000, 1_000, 32, 16), (300_000, 10_000, 16, 5),
                                (30_000, 10_000, 128, 100), (100_000, 100, 256, 32), (1_000_000, 100, 96, 1),
                                (10_000, 10_000, 64, 50), (300_000, 1_000, 200, 10)):
                pts.append(dict(n=n, nq=nq, d=d, k=k, self=False, metric="manhattan", input="device"))
        for p in pts:
            p["precision"] = prec
        out += pts
    rng.shuffle(out)
    return out


def knn_shape(p):
    return (p["n"], p["d"]) if p["self"] else (p["nq"], p["n"], p["d"])


def knn_params(p):
    """The estimate's parameters of a sweep point: the context is on cuda
    (force_gpu), as measure.py's is."""
    return (f"n_neighbors={p['k']} precision={p['precision']} metric={p['metric']} input={p['input']} "
            f"force_gpu=true")


def time_knn(fl, torch, np, p, reps):
    n, nq, d, k = p["n"], p["nq"], p["d"], p["k"]
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(n * 31 + d * 7 + k * 3 + nq)
    X = torch.rand((n, d), generator=g, device=dev, dtype=torch.float32) * 2 - 1
    Q = None if p["self"] else torch.rand((nq, d), generator=g, device=dev, dtype=torch.float32) * 2 - 1
    params = fl.params({"metric": p["metric"], "precision": p["precision"]}, algo="knn")
    keep = []  # the buffers the arrays point at

    def arr(t, dtype_code):
        if p["input"] == "host":
            h = t.cpu().numpy()
            keep.append(h)
            return FlArray(h.ctypes.data, dtype_code, HOST, 0, h.shape[0], h.shape[1], h.shape[1])
        keep.append(t)
        return FlArray(t.data_ptr(), dtype_code, CUDA, 0, t.shape[0], t.shape[1], t.shape[1])

    xa = arr(X, F32)
    qa = None if Q is None else arr(Q, F32)
    da = arr(torch.empty((nq, k), device=dev, dtype=torch.float32), F32)
    ia = arr(torch.empty((nq, k), device=dev, dtype=torch.int64), I64)

    def search_ms():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fl.check(fl.lib.fl_knn_search(fl.ctx, byref(xa), byref(qa) if qa is not None else None, k, params,
                                      byref(da), byref(ia)), "fl_knn_search")
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1e3

    warm = search_ms()
    for _ in range(7):
        if warm >= 20:
            break
        warm += search_ms()
    ms = [search_ms() for _ in range(reps)]
    fl.lib.fl_params_free(params)
    del X, Q, keep
    return ms


# ---- the approximate indexes: IVF-Flat, IVF-PQ, CAGRA searches ---------------------------------
# Index kinds, in the order the sweep interleaves them (a budget cut then
# trims every kind alike). Each index is built once (cheap parameters:
# few k-means iterations, moderate sizes) and searched with several
# configurations; only the searches are timed.
ANN_KINDS = ("ivf_flat", "ivf_pq", "cagra")
# per kind: (n_samples, n_features, build parameters); n_lists / pq_dim / degrees vary with the shape
ANN_INDEXES = {
    "ivf_flat": ((20_000, 16, dict(n_lists=128)), (200_000, 64, dict(n_lists=512)),
                 (1_000_000, 128, dict(n_lists=1024)), (300_000, 256, dict(n_lists=2048)),
                 (100_000, 32, dict(n_lists=1000))),
    # refine=1 at build: codes only (no raw rows: the pool is k, its distances the codes'); the others keep
    # the raw rows and search with refine 2-8 (a search with refine 1 would still re-rank them exactly)
    "ivf_pq": ((50_000, 32, dict(n_lists=256, pq_dim=16, refine=1)), (200_000, 128, dict(n_lists=512, pq_dim=32)),
               (400_000, 64, dict(n_lists=1024, pq_dim=16)), (100_000, 256, dict(n_lists=300, pq_dim=64))),
    "cagra": ((20_000, 32, dict(graph_degree=32, intermediate_graph_degree=64)),
              (100_000, 64, dict(graph_degree=64, intermediate_graph_degree=96)),
              (200_000, 128, dict(graph_degree=32, intermediate_graph_degree=48)),
              (50_000, 256, dict(graph_degree=16, intermediate_graph_degree=32))),
}
ANN_SEARCHES = 12  # search configurations per index: ~48-60 points per kind
ANN_NQ = (1, 10, 100, 1_000, 3_000, 10_000)
ANN_SMOKE = {  # --smoke-cpu: tiny indexes through the CPU backend (the code path, not timings)
    "ivf_flat": ((2_000, 16, dict(n_lists=32)),),
    "ivf_pq": ((3_000, 16, dict(n_lists=16, pq_dim=8)),),
    "cagra": ((1_500, 16, dict(graph_degree=16, intermediate_graph_degree=24)),),
}


def ann_candidates(seed, table=None, per_index=ANN_SEARCHES, nqs=ANN_NQ):
    """Indexes and their search configurations, drawn (never filtered by
    the model): n_queries from 1 to 10,000, k, and each index's own knobs
    (IVF: n_probes from 1 to a quarter of the lists; IVF-PQ: refine 2 to
    8, or 1 for the index built without raw rows; CAGRA: itopk_size,
    search_width). Returns [{kind, n, d, build,
    searches: [...]}, ...], the kinds interleaved."""
    rng = random.Random(seed + 11)
    table = table or ANN_INDEXES
    per_kind = []
    for kind in ANN_KINDS:
        idxs = []
        for n, d, build in table[kind]:
            searches, seen = [], set()
            while len(searches) < per_index:
                nq = rng.choice(nqs)
                if kind == "cagra":
                    k = rng.choice((1, 10, 32, 64, 100))
                    itopk = max(k, rng.choice((16, 32, 64, 128, 256, 512)))
                    width = rng.choice((1, 1, 2, 4, 8))
                    while width * build["graph_degree"] > 1024 or width * 2 > itopk + 1:
                        width //= 2
                    q = dict(nq=nq, k=k, itopk=itopk, width=max(1, width))
                else:
                    L = build["n_lists"]
                    P = min(L, rng.choice((1, 4, 8, 16, 32, 64, 128, max(1, L // 4))))
                    k = rng.choice((1, 10, 32, 100, 200) if kind == "ivf_flat" else (1, 10, 32, 100))
                    q = dict(nq=nq, k=k, n_probes=P)
                    if kind == "ivf_pq":
                        q["refine"] = build.get("refine") or rng.choice((2, 4, 8))
                        while q["refine"] * k > 1024:
                            q["refine"] //= 2
                key = tuple(sorted(q.items()))
                if key in seen:
                    continue
                seen.add(key)
                searches.append(q)
            idxs.append(dict(kind=kind, n=n, d=d, build=dict(build), searches=searches))
        per_kind.append(idxs)
    out = []
    for i in range(max(len(x) for x in per_kind)):
        out += [x[i] for x in per_kind if i < len(x)]
    return out


def ann_build_params(idx):
    """The index's parameter table values of its build (fl_params)."""
    b = dict(idx["build"], random_state=1)
    if idx["kind"] != "cagra":
        b["kmeans_n_iters"] = 10
    if idx["kind"] == "ivf_pq":
        b["pq_bits"] = 8
    return b


def ann_search_params(idx, q):
    """The search-time parameters of a configuration (fl_model_set_param)."""
    if idx["kind"] == "cagra":
        return {"itopk_size": q["itopk"], "search_width": q["width"], "n_neighbors": q["k"]}
    p = {"n_probes": q["n_probes"], "n_neighbors": q["k"]}
    if idx["kind"] == "ivf_pq":
        p["refine"] = q["refine"]
    return p


def ann_params(kind, build, q):
    """The estimate's parameters of a search: the index's build and search
    parameters, n_queries, phase=search and force_gpu (measure.py's context
    is on cuda, so every search runs on the GPU). fit.py writes the same
    from a point."""
    p = dict(build)
    p.pop("random_state", None)
    p.pop("kmeans_n_iters", None)
    if kind == "cagra":
        p.update(itopk_size=q["itopk"], search_width=q["width"])
    else:
        p["n_probes"] = q["n_probes"]
        if kind == "ivf_pq":
            p["refine"] = q["refine"]
    p.update(n_neighbors=q["k"], n_queries=q["nq"])
    return " ".join(f"{k}={v}" for k, v in p.items()) + " phase=search force_gpu=true"


def ann_data(np, n, d, seed):
    """Random clustered float32 rows (host): ~n / 500 Gaussian blobs of
    unit spread around centres drawn with a spread of 4, and queries from
    the same blobs."""
    rng = np.random.default_rng(seed)
    blobs = max(4, n // 500)
    centres = (rng.standard_normal((blobs, d), dtype=np.float32) * 4).astype(np.float32)
    X = rng.standard_normal((n, d), dtype=np.float32)
    X += centres[rng.integers(0, blobs, n)]
    nq = max(ANN_NQ)
    Q = rng.standard_normal((nq, d), dtype=np.float32)
    Q += centres[rng.integers(0, blobs, nq)]
    return np.ascontiguousarray(X), np.ascontiguousarray(Q)


def ann_build(fl, idx, X):
    """Builds the index through fl_model_create + fl_model_fit on host X;
    returns (model handle, seconds)."""
    params = fl.params(ann_build_params(idx), algo=idx["kind"])
    m = c_void_p()
    try:
        fl.check(fl.lib.fl_model_create(fl.ctx, idx["kind"].encode(), params, byref(m)), "fl_model_create")
    finally:
        fl.lib.fl_params_free(params)
    n, d = X.shape
    xa = FlArray(X.ctypes.data, F32, HOST, 0, n, d, d)
    t0 = time.perf_counter()
    st = fl.lib.fl_model_fit(m, byref(xa), None, None)
    if st:
        err = fl.lib.fl_ctx_last_error(fl.ctx).decode()
        fl.lib.fl_model_free(m)
        raise RuntimeError(f"fl_model_fit {idx['kind']}: {err} (status {st})")
    return m, time.perf_counter() - t0


def time_ann(fl, sync, np, m, idx, q, Q, reps):
    """Wall clock of one fl_model_kneighbors of q["nq"] host queries (the
    index resident on the device after the first search), a device
    synchronisation after it, one search then warm-up searches until 20
    ms, median of reps."""
    for name, v in ann_search_params(idx, q).items():
        fl.check(fl.lib.fl_model_set_param(m, name.encode(), str(v).encode()), f"set {name}={v}")
    nq, k, d = q["nq"], q["k"], Q.shape[1]
    Qs = np.ascontiguousarray(Q[:nq])
    D = np.empty((nq, k), np.float32)
    I = np.empty((nq, k), np.int64)
    qa = FlArray(Qs.ctypes.data, F32, HOST, 0, nq, d, d)
    da = FlArray(D.ctypes.data, F32, HOST, 0, nq, k, k)
    ia = FlArray(I.ctypes.data, I64, HOST, 0, nq, k, k)

    def search_ms():
        sync()
        t0 = time.perf_counter()
        fl.check(fl.lib.fl_model_kneighbors(m, byref(qa), k, byref(da), byref(ia)), "fl_model_kneighbors")
        sync()
        return (time.perf_counter() - t0) * 1e3

    # the first search of an index uploads it (its lists / graph stay on the device): not counted
    # in the warm-up, which then runs searches until 20 ms (at least one, at most 8)
    search_ms()
    warm = 0.0
    for _ in range(8):
        if warm >= 20:
            break
        warm += search_ms()
    ms = [search_ms() for _ in range(reps)]
    if (I[:, 0] < 0).any():
        raise RuntimeError(f"{idx['kind']} search returned no neighbour for some queries")
    return ms


def ann_point(idx, q, est, ms, build_s):
    """A measurement point of a search: everything the model's parameters
    need (fit.py rebuilds them with ann_params)."""
    build = {k: v for k, v in ann_build_params(idx).items() if k not in ("random_state", "kmeans_n_iters")}
    return dict(op=idx["kind"], variant=est["model_key"], dtype="f32", shape=[idx["n"], idx["d"]], k=q["k"],
                nq=q["nq"], build=build, search={k: v for k, v in q.items() if k not in ("nq", "k")},
                input="host", backend=est["backend"], ms=statistics.median(ms), reps=ms, min_ms=min(ms),
                max_ms=max(ms), build_s=round(build_s, 3))


def ann_sweep(fl, sync, np, info, device, cands, deadline, ratio, cap_ms, log, add_point, gpu=True):
    """Builds each index (when the time left allows its build), times its
    searches, adds the points; returns (done, skipped). gpu: only searches
    the model routes to the GPU (a cuda context runs every search there)."""
    done = skipped = 0
    for idx in cands:
        kind, n, d = idx["kind"], idx["n"], idx["d"]
        bparams = " ".join(f"{k}={v}" for k, v in ann_build_params(idx).items() if k != "random_state")
        try:
            b_est = info.estimate(kind, (n, d), bparams + " phase=build", "f32", device)["runtime_ms"]
        except infolib.InfoError:
            b_est = 5000.0
        # the build's host parts (layout, PQ encoding, CAGRA pruning) are heuristic: 3 x and 2 s of margin
        if time.perf_counter() + 3 * b_est / 1e3 + 2 > deadline:
            log(f"{kind} {n}x{d}: build skipped (predicted {b_est / 1e3:.1f} s, too little time left)")
            skipped += len(idx["searches"])
            continue
        X, Q = ann_data(np, n, d, n * 7 + d)
        try:
            m, build_s = ann_build(fl, idx, X)
        except RuntimeError as e:
            log(f"{kind} {n}x{d} {idx['build']}: {e}")
            skipped += len(idx["searches"])
            continue
        log(f"{kind} {n}x{d} {idx['build']}: built in {build_s:.2f} s (estimate {b_est / 1e3:.2f} s)")
        del X
        try:
            for q in idx["searches"]:
                est = info.estimate(kind, (n, d), ann_params(kind, idx["build"], q), "f32", device)
                if gpu and est["backend"] != "cuda":
                    log(f"{kind} {q}: beyond the GPU search's limits ({est['backend']}): skipped")
                    skipped += 1
                    continue
                pred = est["runtime_ms"] * ratio[0]
                reps = 5 if pred < 30 else 3
                if pred > cap_ms or time.perf_counter() + (pred * (reps + 2) + 20) / 1e3 > deadline:
                    skipped += 1
                    continue
                try:
                    ms = time_ann(fl, sync, np, m, idx, q, Q, reps)
                except RuntimeError as e:
                    log(f"{kind} {q}: {e}")
                    skipped += 1
                    continue
                p = ann_point(idx, q, est, ms, build_s)
                ratio[0] = 0.8 * ratio[0] + 0.2 * (p["ms"] / max(est["runtime_ms"], 1e-3))
                add_point(p)
                done += 1
                log(f"{kind:8} {n:>8}x{d:<4} {q}: {p['ms']:9.3f} ms (roofline {est['runtime_ms']:.3f})")
        finally:
            fl.lib.fl_model_free(m)
    return done, skipped


def ann_smoke(a):
    """--smoke-cpu: the ann sweep's code path on tiny indexes through a cpu
    context (the CPU backend: no GPU, no torch), writing smoke.json under
    --out: catches API and syntax errors before a GPU run."""
    import numpy as np

    info = infolib.Info(a.info_lib)
    fl = Flashlib(a.lib, "cpu")
    pts = []
    cands = ann_candidates(a.seed, ANN_SMOKE, per_index=2, nqs=(1, 10))
    done, skipped = ann_sweep(fl, lambda: None, np, info, info.device_name("H100"), cands,
                              time.perf_counter() + 60, [1.0], 1e9, print, pts.append, gpu=False)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "smoke.json")
    with open(path, "w") as f:
        json.dump({"bench": "calib-smoke", "device": "cpu", "points": pts}, f, indent=1)
    print(f"smoke: {done} searches timed, {skipped} skipped; wrote {path}")
    fl.lib.fl_ctx_free(fl.ctx)
    return 0 if done else 1


# ---- GEMM through torch (cuBLAS) ---------------------------------------------------------
GEMM_VARIANTS = {  # variant: (torch dtype name, allow_tf32, native dtype in the cost model)
    "gemm_fp64": ("float64", False, "f64"),
    "gemm_fp32": ("float32", False, "f32"),
    "gemm_tf32": ("float32", True, "f32"),
    "gemm_bf16": ("bfloat16", False, "bf16"),
    "gemm_fp16": ("float16", False, "f16"),
}
# The split variants have no cuBLAS equivalent: they are timed through
# flashlib's own fl_gemm on device arrays of their native dtype (the
# cost model's calibration key): variant -> (torch dtype of the data, key)
FL_GEMM_VARIANTS = {
    "gemm_3xtf32": ("float32", "f32"),
    "gemm_3xbf16": ("float32", "f32"),
    "gemm_3xfp16": ("float32", "f32"),
    "gemm_fp16x9": ("float32", "f32"),
    "gemm_fp16x3_kahan": ("float32", "f32"),
    "gemm_tf32x6": ("float64", "f64"),
    "gemm_ozaki_int8": ("float64", "f64"),
}


GEMM_PER_VARIANT = 48  # random shapes per variant (+ 8192^3): ~36 fitted and ~12 held out


def gemm_key(v):
    """The cost model's dtype key of a variant's calibration."""
    return GEMM_VARIANTS[v][2] if v in GEMM_VARIANTS else FL_GEMM_VARIANTS[v][1]


def gemm_candidates(seed, variants=None):
    """Random M x K x N per variant from the same size ladder, a quarter of
    them with a narrow N and a tenth with a narrow M (narrow outputs are
    where the tiles leave SMs idle and the K split matters; M and N are
    not symmetric for cuBLAS, which sees the row-major product transposed).
    The first calibrations had 24 per variant: 6 held out made the p90 the
    single worst point; twice as many make both percentiles meaningful.
    Points whose measured time is far above the roofline still count: the
    sweep draws shapes, never filters them by the model."""
    rng = random.Random(seed + 1)
    sizes = (256, 512, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288)
    out = []
    for v in variants or GEMM_VARIANTS:
        seen = set()
        while len([p for p in out if p["variant"] == v]) < GEMM_PER_VARIANT:
            m, kk, nn = rng.choice(sizes), rng.choice(sizes), rng.choice(sizes)
            u = rng.random()
            if u < 0.25:  # some tall-skinny products
                nn = rng.choice((32, 64, 128))
            elif u < 0.35:
                m = rng.choice((32, 64, 128))
            if (m, kk, nn) in seen:
                continue
            seen.add((m, kk, nn))
            out.append(dict(variant=v, M=m, K=kk, N=nn))
        for s in (8192,):
            out.append(dict(variant=v, M=s, K=s, N=s))
    rng.shuffle(out)
    return out


def time_gemm(torch, p, reps):
    """Per-call device time of torch.matmul (cuBLAS) for one shape.

    A single call timed with CUDA events from an idle GPU measures PyTorch's
    host dispatch (~20 us, jittery) plus the kernel, and the GPU's clocks
    ramp up over the first calls after an idle gap: tiny products were noise
    in the first calibration (repeats falling 0.050 -> 0.023 ms). Here
    `inner` calls (about 2 ms of work, sized by a trial replay of 8 calls)
    are captured once in a CUDA graph, the graph is replayed for >= 20 ms
    to settle the clocks, then each repeat times one replay with events:
    per call = elapsed / inner, the
    kernel plus the gap between kernels of a stream. Where graph capture
    fails, the same calls are issued back to back (per call then includes
    the host dispatch whenever it is longer than the kernel). The median of
    the single-call times is kept too (single_ms), for reference."""
    tname, tf32, _ = GEMM_VARIANTS[p["variant"]]
    dt = getattr(torch, tname)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    dev = torch.device("cuda")
    a = torch.randn((p["M"], p["K"]), device=dev, dtype=torch.float32).to(dt)
    b = torch.randn((p["K"], p["N"]), device=dev, dtype=torch.float32).to(dt)
    c = torch.empty((p["M"], p["N"]), device=dev, dtype=dt)

    def event_ms(fn):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        torch.cuda.synchronize()
        return e0.elapsed_time(e1)

    def capture(inner):
        """(replay function, description) of `inner` calls: a CUDA graph, or
        the calls themselves where capture fails."""
        def calls():
            for _ in range(inner):
                torch.matmul(a, b, out=c)

        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up before capture, as torch.cuda.graph asks
                for _ in range(3):
                    torch.matmul(a, b, out=c)
            torch.cuda.current_stream().wait_stream(side)
            torch.cuda.synchronize()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                calls()
            return g, g.replay, f"cuda graph of {inner} calls"
        except Exception as e:  # no capture: back-to-back calls
            return None, calls, f"{inner} back-to-back calls (graph capture failed: {type(e).__name__})"

    def settle(run):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.02:  # >= 20 ms of work: the clocks settle
            run()
            torch.cuda.synchronize()

    try:
        for _ in range(2):
            torch.matmul(a, b, out=c)
        torch.cuda.synchronize()
        single = [event_ms(lambda: torch.matmul(a, b, out=c)) for _ in range(3)]
        # calls per replay: ~2 ms of work, from a trial replay of 8 calls (a single call's
        # time includes the host dispatch and an occasional stall: the first graph timing
        # sized replays from it and a stalled call left 3-4 calls per replay, whose launch
        # then weighed on each call)
        trial = 8 if min(single) < 1.0 else 1  # a call of >= 1 ms is a big kernel already
        g, run, how = capture(trial)
        settle(run)
        per_call = min(event_ms(run) for _ in range(3)) / trial
        inner = max(1, min(200, int(2.0 / max(per_call, 1e-4))))
        if inner != trial:
            del g
            g, run, how = capture(inner)
            settle(run)
        per = [event_ms(run) / inner for _ in range(reps)]
        del g
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    return per, statistics.median(single), how


def time_fl_gemm(fl, torch, p, reps):
    """Per-call time of fl_gemm (a split variant) on device arrays: calls
    issued back to back for >= 20 ms to settle the clocks, then each repeat
    times `inner` calls (about 5 ms of work) between device synchronisations
    with the host clock, per call = elapsed / inner. flashlib computes on its
    own stream, so a device-wide synchronisation (torch.cuda.synchronize)
    brackets the calls; the host launch of the variant's several kernels
    counts where it is longer than the kernels."""
    tname, _ = FL_GEMM_VARIANTS[p["variant"]]
    dt = getattr(torch, tname)
    dev = torch.device("cuda")
    a = torch.randn((p["M"], p["K"]), device=dev, dtype=dt)
    b = torch.randn((p["K"], p["N"]), device=dev, dtype=dt)
    c = torch.empty((p["M"], p["N"]), device=dev, dtype=dt)
    code = 2 if dt == torch.float64 else 1
    A = FlArray(a.data_ptr(), code, CUDA, 0, p["M"], p["K"], p["K"])
    B = FlArray(b.data_ptr(), code, CUDA, 0, p["K"], p["N"], p["N"])
    C = FlArray(c.data_ptr(), code, CUDA, 0, p["M"], p["N"], p["N"])
    name = p["variant"][5:].encode()

    def call():
        fl.check(fl.lib.fl_gemm(fl.ctx, name, 0.0, 0, 0, 0, 1.0, byref(A), byref(B), 0.0, byref(C), None),
                 f"fl_gemm {p['variant']}")

    def run(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1e3

    run(2)
    single = [run(1) for _ in range(3)]
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.02:
        run(1)
    inner = max(1, min(200, int(5.0 / max(min(single), 1e-3))))
    per = [run(inner) / inner for _ in range(reps)]
    return per, statistics.median(single), f"{inner} fl_gemm calls between synchronisations"


def gemm_kernels(torch, points, deadline, log):
    """Names of the CUDA kernels one torch.matmul launches for each GEMM
    point (cuBLAS's choice: its tile shape, split-K and reduction kernels
    are in the names), recorded as p["kernels"] for the model's structure.
    Run after the timings are written (a profiler failure loses nothing),
    one call per shape under torch.profiler, while time is left."""
    try:
        from torch.profiler import ProfilerActivity, profile
    except ImportError as e:
        log(f"no kernel names: {e}")
        return 0
    dev = torch.device("cuda")
    done = 0
    for p in points:
        if p["op"] != "gemm" or p["variant"] not in GEMM_VARIANTS or time.perf_counter() > deadline:
            continue
        tname, tf32, _ = GEMM_VARIANTS[p["variant"]]
        dt = getattr(torch, tname)
        M, K, N = p["shape"]
        try:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn((M, K), device=dev, dtype=torch.float32).to(dt)
            b = torch.randn((K, N), device=dev, dtype=torch.float32).to(dt)
            c = torch.empty((M, N), device=dev, dtype=dt)
            torch.matmul(a, b, out=c)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                torch.matmul(a, b, out=c)
                torch.cuda.synchronize()
            names = [e.name for e in prof.events() if "cuda" in str(getattr(e, "device_type", "")).lower()]
            p["kernels"] = names
            done += 1
        except Exception as e:  # names are a help, not the calibration
            log(f"kernel names of {p['variant']} {M}x{K}x{N}: {type(e).__name__}: {e}")
        finally:
            torch.backends.cuda.matmul.allow_tf32 = False
    log(f"kernel names recorded for {done} GEMM points")
    return done


# ---- eigh, polar, PCA and TruncatedSVD through fl_eigh / fl_polar / fl_pca_fit ----------
class LinalgReport(Structure):
    _fields_ = [("variant", c_char * 32), ("backend", c_int), ("iterations", c_int32),
                ("expected_residual", c_double)]


EIGH_VARIANTS = ("cusolver", "jacobi", "qdwh", "qdwh_ns", "halko")
POLAR_VARIANTS = ("qdwh_hybrid", "express", "express_warm", "zolo")
LA_SIZES = (256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096)
# an even --seed takes the sizes between (a second sweep adds new shapes, not repeats)
LA_SIZES_ALT = (288, 352, 416, 480, 576, 704, 832, 960, 1152, 1408, 1664, 1920, 2304, 2816, 3328, 3840)
LA_CAP_MS = 1500  # a variant stops growing once its next size is predicted above this per call


def la_candidates(op, seed):
    """Sizes per variant, ascending (the sweep grows each variant until its
    calls pass LA_CAP_MS): eigh of n x n Wigner matrices (halko with a random
    n_components), polar of m x n Gaussians, m / n random in 1..4 (a square
    Gaussian's condition number ~ n; taller ones are well conditioned)."""
    rng = random.Random(seed + 5 + (op == "polar"))
    out = []
    for i, n in enumerate(LA_SIZES if seed % 2 else LA_SIZES_ALT):
        for v in (EIGH_VARIANTS if op == "eigh" else POLAR_VARIANTS):
            p = dict(op=op, variant=v, n=n, m=n, k=0)
            if v == "halko":
                p["k"] = min(rng.choice((8, 16, 32, 64, 128)), n // 4)
            if op == "polar":
                p["m"] = int(round(n * rng.choice((1, 1, 1.5, 2, 3, 4)) / 16)) * 16
            out.append(p)
    return out


def la_shape(p):
    return (p["n"], p["n"]) if p["op"] == "eigh" else (p["m"], p["n"])


def la_params(p):
    s = f"variant={p['op']}_{p['variant']}"
    return s + (f" n_components={p['k']}" if p["k"] else "")


def time_la(fl, torch, p, reps):
    """Wall clock of one fl_eigh / fl_polar on device float32 arrays (the
    call synchronises: it returns iteration counts), median of reps after
    one warm-up. Returns (ms list, iterations of the last call)."""
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(p["n"] * 131 + p["m"] + p["k"])
    n, m = p["n"], p["m"]
    keep = []

    def arr(t):
        t = t.contiguous()
        keep.append(t)
        return FlArray(t.data_ptr(), F32, CUDA, 0, t.shape[0], t.shape[1], t.shape[1])

    rep = LinalgReport()
    name = p["variant"].encode()
    if p["op"] == "eigh":
        G = torch.randn((n, n), generator=g, device=dev, dtype=torch.float32)
        A = arr((G + G.T) / 2)  # a Wigner matrix, as bench_eig
        k = p["k"] or n
        w, V = arr(torch.empty((1, k), device=dev)), arr(torch.empty((n, k), device=dev))

        def call():
            fl.check(fl.lib.fl_eigh(fl.ctx, name, byref(A), p["k"], byref(w), byref(V), byref(rep)),
                     f"fl_eigh {p['variant']} n={n}")
    else:
        At = torch.randn((m, n), generator=g, device=dev, dtype=torch.float32)
        A = arr(At)
        U, H = arr(torch.empty((m, n), device=dev)), arr(torch.empty((n, n), device=dev))
        U0 = None
        if p["variant"] == "express_warm":  # the factor of a nearby matrix, as bench_eig
            U0 = arr(torch.empty((m, n), device=dev))
            fl.check(fl.lib.fl_polar(fl.ctx, b"qdwh_hybrid", byref(A), None, byref(U0), None, byref(rep)),
                     "fl_polar qdwh_hybrid (U0)")
            keep[-1].add_(torch.randn((m, n), generator=g, device=dev) * (1e-3 / n ** 0.5))

        def call():
            fl.check(fl.lib.fl_polar(fl.ctx, name, byref(A), byref(U0) if U0 is not None else None, byref(U),
                                     byref(H), byref(rep)), f"fl_polar {p['variant']} {m}x{n}")

    def once():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        call()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1e3

    first = once()
    ms = [once() for _ in range(reps if first < 300 else max(2, reps - 1))]
    del keep
    return ms, rep.iterations


DECOMP_N = (20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)
DECOMP_D = (16, 32, 64, 100, 128, 256, 384, 512, 1024)
DECOMP_PER = 30  # fits per (op, solver): ~22 fitted, ~8 held out


def decomp_candidates(op, seed):
    """PCA (covariance_eigh, randomized) and TruncatedSVD (randomized) fits
    on random n x d in device memory, n_components random below the
    solver's limits; n x d at most 5 x 10^8 elements (2 GB)."""
    rng = random.Random(seed + 7 + (op == "tsvd"))
    out = []
    for solver in (("covariance_eigh", "randomized") if op == "pca" else ("randomized",)):
        seen = set()
        while len([p for p in out if p["solver"] == solver]) < DECOMP_PER:
            n, d = rng.choice(DECOMP_N), rng.choice(DECOMP_D)
            if n * d > 5e8:
                continue
            k = rng.choice((2, 4, 8, 16, 32, 64, 128))
            if solver == "covariance_eigh":
                k = min(k, d)
            elif k >= 0.8 * d:
                continue
            it = 5
            if op == "pca":  # scikit-learn's iterated_power='auto'
                it = 7 if k < 0.1 * min(n, d) else 4
            if (n, d, k) in seen:
                continue
            seen.add((n, d, k))
            out.append(dict(op=op, solver=solver, n=n, d=d, k=k, n_iter=it))
    return out


def decomp_params(p):
    if p["op"] == "pca":
        return f"n_components={p['k']} svd_solver={p['solver']} force_gpu=true"
    return f"n_components={p['k']} n_iter={p['n_iter']} algorithm=randomized force_gpu=true"


TOPK_RE = re.compile(r"pca: top-\d+ eigh converged in (\d+) steps \(degree (\d+)")


def eigh_run(msgs):
    """What PCA covariance_eigh's eigensolver did, from the fit's log
    (decomp.c's topk_scatter): ("topk", steps, degree); ("topk+syevd",
    None, None) when the top-k solve gave up and syevd ran; ("syevd",
    None, None) when it was not eligible."""
    for m in msgs:
        if "full eigh instead" in m:
            return "topk+syevd", None, None
        r = TOPK_RE.search(m)
        if r:
            return "topk", int(r.group(1)), int(r.group(2))
    return "syevd", None, None


def time_decomp(fl, torch, p, reps):
    """Wall clock of fl_pca_fit / fl_truncated_svd_fit (X in device memory,
    a "cuda" context; the fit returns host attributes, so it has
    synchronised), warm-up fits until 20 ms, median of reps. Returns (ms
    list, the eigensolver's run as eigh_run gives it, from the last fit:
    the data and the seed are the same in every fit)."""
    n, d = p["n"], p["d"]
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(n * 7 + d * 3 + p["k"])
    # decaying column scales: a spectrum that falls off, as real data's
    scale = (1.0 + torch.arange(d, device=dev, dtype=torch.float32)) ** -0.5
    X = torch.randn((n, d), generator=g, device=dev, dtype=torch.float32) * scale + 0.5
    xa = FlArray(X.data_ptr(), F32, CUDA, 0, n, d, d)
    algo = "pca" if p["op"] == "pca" else "truncated_svd"
    vals = {"n_components": p["k"]}
    if p["op"] == "pca":
        vals["svd_solver"] = p["solver"]
    else:
        vals.update(algorithm="randomized", n_iter=p["n_iter"])
    params = fl.params(vals, algo=algo)
    fit = fl.lib.fl_pca_fit if p["op"] == "pca" else fl.lib.fl_truncated_svd_fit

    def once():
        m = c_void_p()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fl.check(fit(fl.ctx, byref(xa), params, byref(m)), f"fl_{algo}_fit")
        torch.cuda.synchronize()
        t = (time.perf_counter() - t0) * 1e3
        fl.lib.fl_model_free(m)
        return t

    warm = once()
    for _ in range(5):
        if warm >= 20:
            break
        warm += once()
    ms = [once() for _ in range(reps)]
    # one more fit, untimed, with the log on: the top-k solver's steps and degrees
    msgs = []
    hook = LOG_FN(lambda user, level, msg: msgs.append(msg.decode(errors="replace")))
    fl.lib.fl_ctx_set_log(fl.ctx, hook, None)
    fl.lib.fl_ctx_set_verbosity(fl.ctx, LOG_INFO)
    try:
        once()
    finally:
        fl.lib.fl_ctx_set_verbosity(fl.ctx, 1)  # FL_LOG_WARN, the context's default
        fl.lib.fl_ctx_set_log(fl.ctx, LOG_FN(), None)
    fl.lib.fl_params_free(params)
    del X
    return ms, eigh_run(msgs)


# ---- anchors: what users would run otherwise ------------------------------------------------
def torch_lloyd(torch, x, c, iters):
    k = c.shape[0]
    for _ in range(iters):
        score = (c * c).sum(1)[None, :] - 2 * (x @ c.T)
        lab = score.argmin(1)
        sums = torch.zeros_like(c).index_add_(0, lab, x)
        cnt = torch.bincount(lab, minlength=k).to(c.dtype)
        c = torch.where(cnt[:, None] > 0, sums / cnt.clamp(min=1)[:, None], c)
    return c


def anchors(torch, np, log):
    out = []
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default for matmul
    for n, d, k, iters in ((200_000, 64, 64, 20), (1_000_000, 128, 1024, 20)):
        g = torch.Generator(device=dev).manual_seed(1)
        x = torch.rand((n, d), generator=g, device=dev) * 2 - 1
        ms = []
        for r in range(4):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            c0 = x[torch.randperm(n, device=dev)[:k]]
            torch_lloyd(torch, x, c0, iters)
            torch.cuda.synchronize()
            if r:
                ms.append((time.perf_counter() - t0) * 1e3)
        out.append(dict(op="kmeans", ref="pytorch", shape=[n, d, k, iters], ms=statistics.median(ms), reps=ms,
                        params=f"n_clusters={k}, {iters} Lloyd iterations, fp32 (TF32 off), init: random rows"))
        log(f"anchor pytorch kmeans {n}x{d} k={k}: {statistics.median(ms):.2f} ms")
    try:
        from sklearn.cluster import KMeans
        import sklearn

        for n, d, k, iters in ((200_000, 64, 64, 20),):
            X = np.random.default_rng(1).uniform(-1, 1, size=(n, d)).astype(np.float32)
            ms = []
            for r in range(3):
                t0 = time.perf_counter()
                KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=iters, tol=0, algorithm="lloyd",
                       random_state=r).fit(X)
                ms.append((time.perf_counter() - t0) * 1e3)
            out.append(dict(op="kmeans", ref="scikit-learn", shape=[n, d, k, iters], ms=statistics.median(ms),
                            reps=ms, params=f"n_clusters={k}, k-means++, n_init=1, max_iter={iters}, tol=0, "
                                            f"lloyd, scikit-learn {sklearn.__version__}, {os.cpu_count()} CPUs"))
            log(f"anchor scikit-learn kmeans {n}x{d} k={k}: {statistics.median(ms):.1f} ms")
    except ImportError as e:
        log(f"no scikit-learn anchor: {e}")
    a = torch.randn((4096, 4096), device=dev)
    b = torch.randn((4096, 4096), device=dev)
    ms = []
    for r in range(6):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        torch.matmul(a, b)
        e1.record()
        torch.cuda.synchronize()
        if r > 1:
            ms.append(e0.elapsed_time(e1))
    out.append(dict(op="gemm", ref="pytorch", shape=[4096, 4096, 4096], ms=statistics.median(ms), reps=ms,
                    params="torch.matmul fp32 (TF32 off)"))
    A = np.random.default_rng(2).standard_normal((2048, 2048), dtype=np.float32)
    np.matmul(A, A)
    ms = []
    for _ in range(3):
        t0 = time.perf_counter()
        np.matmul(A, A)
        ms.append((time.perf_counter() - t0) * 1e3)
    out.append(dict(op="gemm", ref="numpy", shape=[2048, 2048, 2048], ms=statistics.median(ms), reps=ms,
                    params=f"numpy.matmul fp32, numpy {np.__version__}, {os.cpu_count()} CPUs"))
    return out


def dry_run(a):
    """What the sweep would run and how long the roofline thinks it takes."""
    info = infolib.Info(a.info_lib)
    dev = info.device_name(a.dry_run)
    total = 0
    for kind, cands in (("kmeans", kmeans_candidates(a.seed)), ("knn", knn_candidates(a.seed)),
                        ("gemm", gemm_candidates(a.seed, a.gemm_variants or None))):
        if kind not in a.ops:
            continue
        n = t = skipped = 0
        for p in cands:
            if kind == "kmeans":
                est = info.estimate("kmeans", (p["n"], p["d"]), kmeans_params(p), "f32", dev)["runtime_ms"]
            elif kind == "knn":
                est = info.estimate("knn", knn_shape(p), knn_params(p), "f32", dev)["runtime_ms"]
            else:
                est = info.estimate("gemm", (p["M"], p["K"], p["N"]), f"variant={p['variant']}",
                                    gemm_key(p["variant"]), dev)["runtime_ms"]
            if est > a.cap_ms:
                skipped += 1
                continue
            reps = 5 if est < 30 or p.get("input") == "host" else 3
            n += 1
            # + data generation and warm-up: kmeans fits until 20 ms; gemm: >= 20 ms of graph
            # replays to settle the clocks, 5 x ~2 ms timed
            t += est * reps / 1e3 + (0.05 + max(est, 20) / 1e3 if kind != "gemm" else 0.035)
        total += t
        print(f"{kind}: {n} points, {skipped} over the cap, ~{t:.0f} s at roofline speed")
    if "ann" in a.ops:
        n = t = skipped = builds = 0
        for idx in ann_candidates(a.seed):
            bparams = " ".join(f"{k}={v}" for k, v in ann_build_params(idx).items() if k != "random_state")
            b = info.estimate(idx["kind"], (idx["n"], idx["d"]), bparams + " phase=build", "f32", dev)["runtime_ms"]
            builds += b / 1e3
            for q in idx["searches"]:
                est = info.estimate(idx["kind"], (idx["n"], idx["d"]), ann_params(idx["kind"], idx["build"], q),
                                    "f32", dev)["runtime_ms"]
                if est > a.cap_ms:
                    skipped += 1
                    continue
                n += 1
                t += est * (5 if est < 30 else 3) / 1e3 + max(est, 20) / 1e3
        total += t + builds
        print(f"ann: {n} searches, {skipped} over the cap, ~{t:.0f} s at roofline speed + ~{builds:.0f} s of "
              f"builds (their host parts heuristic)")
    print(f"total ~{total:.0f} s before the budget ({a.budget_s:.0f} s) trims it")


def pin_to_gpu_node(torch):
    """Runs every thread of this process on the CPUs of the GPU's NUMA node,
    so that host buffers (first touch) and the staging of pageable copies
    stay on the GPU's side of the machine. Host-X timings of the second
    calibration varied 2x from one point to the next (0.9-2.1 GB/s) while
    steady within a point: placement, not the copy size. Best effort:
    returns a description, or None where the node is unknown."""
    try:
        pr = torch.cuda.get_device_properties(0)
        dom, bus, dev_ = (getattr(pr, "pci_domain_id", None), getattr(pr, "pci_bus_id", None),
                          getattr(pr, "pci_device_id", None))
        if bus is None:
            q = subprocess.run(["nvidia-smi", "--query-gpu=pci.bus_id", "--format=csv,noheader", "-i", "0"],
                               capture_output=True, text=True).stdout.strip()  # 00000000:1A:00.0
            d0, rest = q.split(":", 1)
            sysid = f"{d0[-4:]}:{rest}".lower()
        else:
            sysid = f"{dom or 0:04x}:{bus:02x}:{dev_:02x}.0"
        with open(f"/sys/bus/pci/devices/{sysid}/numa_node") as f:
            node = int(f.read())
        if node < 0:
            return None
        with open(f"/sys/devices/system/node/node{node}/cpulist") as f:
            cpulist = f.read().strip()
        cpus = set()
        for part in cpulist.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        for tid in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(tid), cpus)
        return f"NUMA node {node} of {sysid}: CPUs {cpulist}"
    except Exception:
        return None


OP_NAME = {"tsvd": "truncated_svd"}


def only_match(p, only):
    """Whether a point (or a candidate) has every field=value of --only."""
    return all(str(p.get(k)) == v for k, v in (only or {}).items())


def merge(path, new, ops, log, add=False, variants=None, only=None):
    """The measurement file at `path` with the points of `ops` replaced by
    those of `new` (add: the new points join the file's points of `ops`, a
    second sweep with another --seed on the same code). The other ops'
    points, the file's own metadata (commit, date, method: those of the run
    that measured them) and its anchors are kept; what describes the new
    points goes under op_runs[op], which fit.py prefers to the top level for
    that op's points (with add, the seeds of every sweep are listed).
    only ({field: value}, measure.py --only): only the op's points with
    those fields are replaced, and the run is recorded as
    op_runs["op[field=value]"]."""
    if not os.path.exists(path):
        log(f"merge: no {path}: writing the new points alone")
        return new
    with open(path) as f:
        old = json.load(f)
    if old.get("device") != new["device"]:
        raise SystemExit(f"merge: {path} is for {old.get('device')}, this GPU is {new['device']}")
    # ops named in the file by another name than --ops: tsvd's points are truncated_svd's, ann's are
    # ivf_flat's, ivf_pq's and cagra's
    ops = [o for op in ops for o in OP_GROUP.get(op, (OP_NAME.get(op, op),))]
    # one op's points are replaced, or with --gemm-variants only those variants' points
    variants = variants or {}

    def replaced(p):
        return (p["op"] in ops and not add and (p["op"] not in variants or p["variant"] in variants[p["op"]])
                and only_match(p, only))
    kept = [p for p in old["points"] if not replaced(p)]
    run = {k: new[k] for k in ("commit", "date", "torch", "cuda", "driver", "host", "cpus", "device_name",
                               "sm_count", "total_memory", "cpu_affinity", "seeds") if k in new}
    run["method"] = new["method"]
    # with only some variants measured, the run describes those variants (op_runs["gemm/<variant>"]),
    # and the op's own record stays that of its other points
    keys = [k for op in ops for k in ([f"{op}/{v}" for v in variants[op]] if op in variants else [op])]
    if only:
        keys = [k + "[" + ",".join(f"{f}={v}" for f, v in sorted(only.items())) + "]" for k in keys]
    runs = dict(old.get("op_runs", {}))
    for k in keys:
        runs[k] = dict(run)
        op = k.split("/")[0]
        prev = old.get("op_runs", {}).get(k) or old.get("op_runs", {}).get(op)
        if add and prev and any(p["op"] == op for p in old["points"]):
            # one more sweep of the same code: the seeds of all of them, and the commits that measured them
            runs[k]["seeds"] = sorted(set(prev.get("seeds", [3])) | set(new.get("seeds", [])))
            runs[k]["commits"] = sorted(set(prev.get("commits", [prev.get("commit")])) | {new["commit"]})
    old["op_runs"] = runs
    old["points"] = kept + new["points"]
    which = "all" if add else "ops other than " + ", ".join(ops)
    if only and not add:
        which += " and their points without " + ", ".join(f"{k}={v}" for k, v in only.items())
    log(f"merge: kept {len(kept)} points of {path} ({which}), added {len(new['points'])}")
    return old


ALL_OPS = ("kmeans", "knn", "gemm", "eigh", "polar", "tsvd", "pca", "ann")
# ops whose points are named by what they measure: --ops ann measures the three indexes' searches
OP_GROUP = {"ann": ANN_KINDS}
METHOD = {
    "kmeans": "kmeans: wall clock around fl_kmeans_fit (synchronises before returning), warm-up fits (>= 1, "
              "until 20 ms), median of repeats (5 when X is on the host)",
    "knn": "knn: wall clock around fl_knn_search and a device synchronisation, warm-up calls (>= 1, until 20 "
           "ms), median of repeats (5 when the data is on the host)",
    "gemm": "gemm: per-call device time of torch.matmul (cuBLAS): CUDA events around a replay of a CUDA graph of "
            "~2 ms of calls, after >= 20 ms of replays, median of 5 (single_ms: one call alone from an idle GPU, "
            "as the first calibration timed); the split variants: fl_gemm calls back to back between device "
            "synchronisations (~5 ms of them), per call = elapsed / calls, median of 5",
    "eigh": "eigh: wall clock around fl_eigh on device float32 Wigner matrices (it synchronises), median of 3 "
            "after one warm-up (2 when a call takes > 300 ms)",
    "polar": "polar: wall clock around fl_polar on device float32 Gaussian m x n (it synchronises), median of 3 "
             "after one warm-up (2 when a call takes > 300 ms)",
    "tsvd": "truncated_svd: wall clock around fl_truncated_svd_fit (randomized, X in device memory, a cuda "
            "context), warm-up fits until 20 ms, median of 3",
    "pca": "pca: wall clock around fl_pca_fit (covariance_eigh or randomized, X in device memory, a cuda "
           "context), warm-up fits until 20 ms, median of 3",
    "ann": "ann: IVF-Flat, IVF-PQ and CAGRA indexes built once each (fl_model_create + fl_model_fit on host "
           "clustered float32 rows), then searches of several configurations per index: wall clock around "
           "fl_model_kneighbors of host queries (a cuda context: every search on the GPU, the index resident "
           "after the first search, which is not timed) and a device synchronisation, warm-up searches until "
           "20 ms, median of 3-5",
}


# ---- main -------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", help="libflashlib.so (with libflashlib_cuda.so beside it); KMeans needs it")
    ap.add_argument("--info-lib", required=True, help="libflashlib_info.so")
    ap.add_argument("--out", required=True, help="directory for <device>.json")
    ap.add_argument("--budget-s", type=float, default=240, help="time for the whole sweep")
    ap.add_argument("--cap-ms", type=float, default=400, help="skip points the roofline puts above this")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--commit", default=os.environ.get("GIT_COMMIT", "unknown"))
    ap.add_argument("--dry-run", metavar="DEVICE", help="plan the sweep for DEVICE with the roofline, run nothing")
    ap.add_argument("--smoke-cpu", action="store_true",
                    help="with --ops ann: run the ann sweep's code on tiny indexes through a cpu context (no GPU, "
                         "no torch), writing --out/smoke.json: an API check, not a calibration")
    ap.add_argument("--ops", default="kmeans,gemm",
                    help="ops to measure, comma-separated (" + ", ".join(ALL_OPS) + "); the budget goes to those "
                         "only")
    ap.add_argument("--gemm-variants", default="",
                    help="comma-separated GEMM variants to measure (default: the cuBLAS ones; the split ones "
                         + ", ".join(FL_GEMM_VARIANTS) + " are timed through fl_gemm and need --lib)")
    ap.add_argument("--merge-from", metavar="DIR",
                    help="with --ops: start from DIR/<device>.json and replace only the measured ops' points "
                         "(the others, their metadata and the anchors are kept; the new points' commit, date "
                         "and method are recorded under op_runs)")
    ap.add_argument("--add", action="store_true",
                    help="with --merge-from: add the new points to the file's points of the measured ops instead "
                         "of replacing them (a second sweep of the same code with another --seed)")
    ap.add_argument("--only", metavar="FIELD=VALUE", action="append", default=[],
                    help="with --merge-from: measure only the candidates with FIELD=VALUE (input=host: KMeans and "
                         "kNN with the data on the host) and replace only the file's points that have it")
    a = ap.parse_args()
    if any("=" not in o for o in a.only):
        ap.error(f"--only {a.only}: expected FIELD=VALUE")
    a.only = dict(o.split("=", 1) for o in a.only)
    if a.only and not a.merge_from:
        ap.error("--only needs --merge-from (the other points come from there)")
    a.ops = [o.strip() for o in a.ops.split(",") if o.strip()]
    if not set(a.ops) <= set(ALL_OPS) or not a.ops:
        ap.error(f"--ops {a.ops}: expected some of {', '.join(ALL_OPS)}")
    a.gemm_variants = [v.strip() for v in a.gemm_variants.split(",") if v.strip()]
    bad = [v for v in a.gemm_variants if v not in GEMM_VARIANTS and v not in FL_GEMM_VARIANTS]
    if bad:
        ap.error(f"--gemm-variants: unknown {bad}")
    fl_gemm_wanted = any(v in FL_GEMM_VARIANTS for v in a.gemm_variants)
    uses_lib = set(a.ops) - {"gemm"} or fl_gemm_wanted
    if uses_lib and not a.lib and not a.dry_run:
        ap.error("--lib is needed to measure every op but the cuBLAS GEMM variants")
    if a.dry_run:
        return dry_run(a)
    if a.smoke_cpu:
        if a.ops != ["ann"]:
            ap.error("--smoke-cpu runs the ann sweep only: --ops ann")
        return ann_smoke(a)

    import numpy as np
    import torch

    def log(msg):
        print(msg, flush=True)

    start = time.perf_counter()
    info = infolib.Info(a.info_lib)
    name = torch.cuda.get_device_name(0)
    device = info.device_name(name)
    if not device:
        sys.exit(f"measure.py: {name!r} is not in the cost model's device table")
    props = torch.cuda.get_device_properties(0)
    meta = {
        "bench": "calib", "device": device, "device_name": name, "sm_count": props.multi_processor_count,
        "total_memory": props.total_memory, "commit": a.commit,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
        "cuda": torch.version.cuda, "host": platform.node(), "cpus": os.cpu_count(),
        "driver": subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True).stdout.strip(),
        "method": "; ".join(METHOD[op] for op in a.ops), "seeds": [a.seed],
        "points": [], "anchors": [],
    }
    meta["cpu_affinity"] = pin_to_gpu_node(torch)
    log(f"calibrating on {name} ({device}), commit {a.commit}; host threads on "
        f"{meta['cpu_affinity'] or 'every CPU (the GPU NUMA node is unknown)'}")
    fl = None
    if uses_lib:
        fl = Flashlib(a.lib)
        log(f"libflashlib {fl.lib.fl_version_string().decode()} from {a.lib}")

    # Budget: KMeans, kNN and GEMM by the weights below (of the ops
    # measured: KMeans and GEMM alone end at 70% / 88% as before), ~12%
    # left for the anchors. The roofline plans the sweep; the running ratio
    # measured / roofline corrects it as we go. spend() takes the end of its
    # op's share of the budget, as a fraction of the whole.
    ratio = [1.0]

    def spend(kind, cands, share, run):
        deadline = start + a.budget_s * share
        done = skipped = 0
        for p in cands:
            est = run(p, None)
            if est * ratio[0] > a.cap_ms:
                skipped += 1
                continue
            # X on the host: the pageable copy's speed varies from call to call (3 repeats of the
            # first calibration spread by up to 60%): 5 repeats
            reps = 5 if est * ratio[0] < 30 or p.get("input") == "host" else 3
            if time.perf_counter() + est * ratio[0] * (reps + 1) / 1e3 > deadline:
                skipped += 1
                continue
            run(p, reps)
            done += 1
        log(f"{kind}: {done} points measured, {skipped} skipped by the budget or the cap")

    def run_kmeans(p, reps):
        shape = (p["n"], p["d"])
        est = info.estimate("kmeans", shape, kmeans_params(p), "f32", device)
        if reps is None:
            return est["runtime_ms"]
        try:
            ms, n_iter = time_kmeans(fl, torch, np, p, reps)
        except RuntimeError as e:
            log(f"kmeans {p}: {e}")
            return 0
        key = est["model_key"]  # precision + the kernels that run ("tf32-fused")
        med = statistics.median(ms)
        ratio[0] = 0.8 * ratio[0] + 0.2 * (med / max(est["runtime_ms"], 1e-3))
        meta["points"].append(dict(op="kmeans", variant=key, dtype="f32", shape=list(shape), k=p["k"],
                                   iters=n_iter, iters_requested=p["iters"], init=p["init"], input=p["input"],
                                   backend=est["backend"], ms=med, reps=ms, min_ms=min(ms), max_ms=max(ms),
                                   commit=a.commit))
        log(f"kmeans {p['precision']:4} {p['n']:>8}x{p['d']:<4} k={p['k']:<5} it={n_iter:<3} {p['init']:9} "
            f"{p['input']:6}: {med:9.3f} ms (roofline {est['runtime_ms']:.3f})")
        return med

    def run_gemm(p, reps):
        v = p["variant"]
        shape = (p["M"], p["K"], p["N"])
        est = info.estimate("gemm", shape, f"variant={v}", gemm_key(v), device)
        if reps is None:
            return est["runtime_ms"]
        try:
            if v in FL_GEMM_VARIANTS:
                ms, single, how = time_fl_gemm(fl, torch, p, max(reps, 5))
            else:
                ms, single, how = time_gemm(torch, p, max(reps, 5))
        except Exception as e:  # one shape failing must not end the sweep
            log(f"gemm {p}: {type(e).__name__}: {e}")
            return 0
        med = statistics.median(ms)
        meta["points"].append(dict(op="gemm", variant=v, dtype=gemm_key(v), shape=list(shape), ms=med,
                                   reps=ms, min_ms=min(ms), max_ms=max(ms), single_ms=single, timing=how,
                                   backend="flashlib fl_gemm" if v in FL_GEMM_VARIANTS
                                   else "cuBLAS via torch.matmul"))
        log(f"{v:10} {p['M']}x{p['K']}x{p['N']}: {med:.4f} ms per call ({how}; one call alone {single:.4f}; "
            f"roofline {est['runtime_ms']:.4f})")
        return med

    def run_knn(p, reps):
        shape = knn_shape(p)
        est = info.estimate("knn", shape, knn_params(p), "f32", device)
        if reps is None:
            return est["runtime_ms"]
        if p["input"] == "host":
            reps = max(reps, 5)
        try:
            ms = time_knn(fl, torch, np, p, reps)
        except RuntimeError as e:
            log(f"knn {p}: {e}")
            return 0
        med = statistics.median(ms)
        ratio[0] = 0.8 * ratio[0] + 0.2 * (med / max(est["runtime_ms"], 1e-3))
        meta["points"].append(dict(op="knn", variant=est["model_key"], dtype="f32", shape=list(shape), k=p["k"],
                                   self=p["self"], metric=p["metric"], input=p["input"], backend=est["backend"],
                                   ms=med, reps=ms, min_ms=min(ms), max_ms=max(ms)))
        log(f"knn {p['precision']:4} {'self' if p['self'] else p['nq']:>6} x {p['n']:>8} x {p['d']:<4} "
            f"k={p['k']:<5} {p['metric']:9} {p['input']:6}: {med:9.3f} ms (roofline {est['runtime_ms']:.3f})")
        return med

    def run_la(op, share):
        """eigh / polar: sizes ascending, all variants at each size, so that
        the budget trims the largest sizes of every variant alike; a variant
        stops growing once its next call is predicted (cubic in n from its
        last one) above LA_CAP_MS or past the op's share of the budget."""
        deadline = start + a.budget_s * share
        last, errors, done, skipped = {}, {}, 0, 0
        for p in la_candidates(op, a.seed):
            v = p["variant"]
            if v in last:
                n0, m0, ms0 = last[v]
                pred = ms0 * (p["n"] / n0) ** 2 * (p["m"] / m0 if op == "polar" else p["n"] / n0)
            else:
                pred = 5.0
            if v in last and last[v] is None or pred > LA_CAP_MS or \
                    time.perf_counter() + pred * 5 / 1e3 > deadline:
                skipped += 1
                continue
            if errors.get(v, 0) >= 2:  # a variant that failed twice (no convergence...) is not tried again
                skipped += 1
                continue
            try:
                ms, iters = time_la(fl, torch, p, 3)
            except RuntimeError as e:
                log(f"{op} {v} {p['m']}x{p['n']}: {e}")
                errors[v] = errors.get(v, 0) + 1
                skipped += 1
                continue
            med = statistics.median(ms)
            last[v] = (p["n"], p["m"], med)
            done += 1
            meta["points"].append(dict(op=op, variant=f"{op}_{v}", dtype="f32", shape=list(la_shape(p)), k=p["k"],
                                       iters=iters, backend="flashlib fl_" + op, ms=med, reps=ms, min_ms=min(ms),
                                       max_ms=max(ms)))
            log(f"{op} {v:12} {p['m']:>5}x{p['n']:<5} k={p['k']:<4}: {med:9.3f} ms ({iters} iterations)")
        log(f"{op}: {done} points measured, {skipped} skipped by the budget, the cap or an error")

    def run_decomp(op, share):
        deadline = start + a.budget_s * share
        done = skipped = 0
        cands = decomp_candidates(op, a.seed)
        random.Random(a.seed).shuffle(cands)
        for p in cands:
            if time.perf_counter() + 0.5 > deadline:
                skipped += 1
                continue
            try:
                ms, (eigh, steps, degree) = time_decomp(fl, torch, p, 3)
            except RuntimeError as e:
                log(f"{op} {p}: {e}")
                skipped += 1
                continue
            med = statistics.median(ms)
            done += 1
            meta["points"].append(dict(op="truncated_svd" if op == "tsvd" else "pca", variant=p["solver"],
                                       dtype="f32", shape=[p["n"], p["d"]], k=p["k"], n_iter=p["n_iter"],
                                       backend="flashlib fl_" + ("pca" if op == "pca" else "truncated_svd")
                                       + "_fit", ms=med, reps=ms, min_ms=min(ms), max_ms=max(ms)))
            if p["solver"] == "covariance_eigh":  # fit.py feeds the model the steps that ran
                meta["points"][-1].update(eigh=eigh, eigh_steps=steps, eigh_degree=degree)
            log(f"{op} {p['solver']:15} {p['n']:>8}x{p['d']:<5} k={p['k']:<4} it={p['n_iter']}: {med:9.3f} ms"
                + (f" ({eigh}, {steps} steps, degree {degree})" if p["solver"] == "covariance_eigh" else ""))
        log(f"{op}: {done} points measured, {skipped} skipped by the budget or an error")

    both = "kmeans" in a.ops and "gemm" in a.ops
    weights = {op: w for op, w in (("kmeans", 0.70), ("knn", 0.45), ("gemm", 0.18), ("eigh", 0.30),
                                   ("polar", 0.20), ("tsvd", 0.08), ("pca", 0.12), ("ann", 0.45)) if op in a.ops}
    tail = 0.95 if a.ops == ["gemm"] else 0.88
    end = 0.0
    def gemm_cands(seed):
        return gemm_candidates(seed, a.gemm_variants or None)

    for op, cands, run in (("kmeans", kmeans_candidates, run_kmeans), ("knn", knn_candidates, run_knn),
                           ("gemm", gemm_cands, run_gemm)):
        if op not in a.ops:
            continue
        end += tail * weights[op] / sum(weights.values())
        ratio[0] = 1.0
        spend(op, [p for p in cands(a.seed) if only_match(p, a.only)], end, run)
    if "ann" in a.ops:  # the approximate indexes: builds (untimed) and their searches
        end += tail * weights["ann"] / sum(weights.values())
        ratio[0] = 1.0
        done, skipped = ann_sweep(fl, torch.cuda.synchronize, np, info, device, ann_candidates(a.seed),
                                  start + a.budget_s * end, ratio, a.cap_ms, log, meta["points"].append)
        log(f"ann: {done} searches measured, {skipped} skipped by the budget, the cap or an error")
    # the linear-algebra solvers and decompositions, PCA last (its GPU code changes most often)
    for op in ("eigh", "polar", "tsvd", "pca"):
        if op not in a.ops:
            continue
        end += tail * weights[op] / sum(weights.values())
        (run_la if op in ("eigh", "polar") else run_decomp)(op, end)
    if both or not a.merge_from:
        try:
            meta["anchors"] = anchors(torch, np, log)
        except Exception as e:  # anchors are optional; the calibration is not
            log(f"anchors failed: {e}")
    if a.merge_from:
        # a second sweep (--add) joins the first one's output when this run
        # writes where the first did: merging into the repository's copy
        # instead would drop the first sweep and keep the points it replaced
        base = os.path.join(a.merge_from, f"{device}.json")
        prior = os.path.join(a.out, f"{device}.json")
        if a.add and os.path.exists(prior):
            base = prior
        meta = merge(base, meta, a.ops, log, a.add,
                     {"gemm": set(a.gemm_variants)} if a.gemm_variants and "gemm" in a.ops else None, a.only)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"{device}.json")
    with open(path, "w") as f:
        json.dump(meta, f, indent=1)
    log(f"wrote {path}: {len(meta['points'])} points, {len(meta['anchors'])} anchors in "
        f"{time.perf_counter() - start:.0f} s")
    if "gemm" in a.ops and gemm_kernels(torch, [p for p in meta["points"] if "timing" in p and "kernels" not in p],
                                        time.perf_counter() + 0.3 * a.budget_s, log):
        with open(path, "w") as f:
            json.dump(meta, f, indent=1)
        log(f"rewrote {path} with the kernel names")


if __name__ == "__main__":
    main()
