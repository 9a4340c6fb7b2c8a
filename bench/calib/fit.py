"""fit.py — fits the cost model's coefficients to measured timings and
writes what the library compiles in.

For every (op, variant, dtype, device) with enough points in the
measurement files (bench/calib/measure.py output):
  1. the points are split, by a hash of their shape, into ~75% fitted and
     ~25% held out (the split is stable from run to run);
  2. the coefficients of the model (fixed overheads, per-launch and per-row
     costs, sustained rates and bandwidths of the kernels' padded work) are
     fitted on the fitted points only: a robust (soft-L1) least squares on
     log(estimate / measured), by a Levenberg-Marquardt in log-coefficient
     space from several fixed starts, each coefficient kept within physical
     bounds (BOUNDS: a rate at most ~the datasheet peak, a bandwidth at
     most ~HBM's), with a weak pull towards the roofline values so that a
     coefficient the sweep cannot see keeps its roofline value instead of
     drifting. Every point has the same weight; no shape is treated apart.
     Coefficients of what does not depend on the precision (SHARED: the
     host link, k-means++, the M-step, fixed and launch costs, the memory
     bandwidth) are then fitted jointly over all entries of the device,
     one value for all, starting from the entries' own fits;
  3. the model is evaluated, with exactly those coefficients, on the held-out
     points: their median and 90th-percentile absolute relative errors are
     the entry's published accuracy (the library calls the entry
     "calibrated" only when the median is <= 20%; the target is <= 10% /
     <= 25%).
The model itself is not re-implemented here: every prediction calls
fl_info_model_eval in libflashlib_info, the code estimates run.

Outputs: src/info/calib_data.inc (entries, every measured point for the
"measured" tier, the compare anchors), a report (markdown table) and a
log-log plot of estimate vs measured (matplotlib, when installed).

  python3 bench/calib/fit.py --info-lib build/lib/libflashlib_info.so \\
      --inc src/info/calib_data.inc --report bench/results/calib/report.md \\
      --plot bench/results/calib/estimate_vs_measured.png bench/results/calib/*.json
"""
import argparse
import hashlib
import json
import math
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import infolib  # noqa: E402

INIT_CODE = {"k-means++": 0, "random": 1, "array": 2}
INPUT_CODE = {"host": 0, "device": 1}
# fli_knn_metric (src/algo/knn_job.h): what a search computes
KNN_METRIC_CODE = {"sqeuclidean": 0, "euclidean": 1, "l2": 1, "cosine": 2, "inner_product": 3, "dot": 3,
                   "manhattan": 4, "cityblock": 4, "l1": 4, "minkowski": 5}
KNN_ANYK = 256  # knn_cuda.cu's KNN_MAX_POOL: a pool max(2k, k + 16) above it takes the any-k path
MIN_FIT, MIN_HOLDOUT = 6, 3
DECOMP_OPS = ("pca", "truncated_svd")
ANN_OPS = ("ivf_flat", "ivf_pq", "cagra")  # the approximate indexes' GPU searches (measure.py --ops ann)
# the base variant whose products a split GEMM variant runs (op_linalg.c's split_base)
SPLIT_BASE = {"gemm_3xtf32": "gemm_tf32", "gemm_tf32x6": "gemm_tf32", "gemm_3xbf16": "gemm_bf16",
              "gemm_3xfp16": "gemm_fp16", "gemm_fp16x9": "gemm_fp16", "gemm_fp16x3_kahan": "gemm_fp16"}
PRIOR = 0.05  # pull of log(coef) towards its roofline value, per coefficient


def knn_dims(p):
    """(n_queries, n_samples, n_features) of a knn point."""
    s = p["shape"]
    return (s[0], s[0], s[1]) if p["self"] else tuple(s)


def point_key(p):
    if p["op"] == "kmeans":
        return (p["shape"][0], p["shape"][1], p["k"], p["iters"], INIT_CODE[p["init"]], INPUT_CODE[p["input"]])
    if p["op"] == "knn":  # op_knn.c looks a measured point up by the same key
        return knn_dims(p) + (p["k"], KNN_METRIC_CODE[p["metric"]], INPUT_CODE[p["input"]] + 2 * bool(p["self"]))
    if p["op"] in ("eigh", "polar"):
        return tuple(p["shape"]) + (p.get("k", 0), p.get("iters", 0), 0, 0)
    if p["op"] in DECOMP_OPS:
        return tuple(p["shape"]) + (p["k"], p["n_iter"], 0, 0)
    if p["op"] in ANN_OPS:  # unique per search (the library does not look these up: no measured tier)
        b, q = p["build"], p["search"]
        if p["op"] == "cagra":
            knobs = (b["graph_degree"] * 4096 + b["intermediate_graph_degree"], q["itopk"] * 1024 + q["width"])
        else:
            knobs = (b["n_lists"] * 4096 + q["n_probes"], b.get("pq_dim", 0) * 64 + q.get("refine", 0))
        return (p["nq"],) + tuple(p["shape"]) + (p["k"],) + knobs
    return tuple(p["shape"]) + (0,) * (6 - len(p["shape"]))


def ann_params(p):
    """The estimate's parameters of an ann point (measure.py's ann_params)."""
    return ann_params_of(p["op"], p["build"], dict(p["search"], nq=p["nq"], k=p["k"]))


def ann_params_of(kind, build, q):
    """measure.py's ann_params, without importing measure (no torch needed)."""
    kv = dict(build)
    if kind == "cagra":
        kv.update(itopk_size=q["itopk"], search_width=q["width"])
    else:
        kv["n_probes"] = q["n_probes"]
        if kind == "ivf_pq":
            kv["refine"] = q["refine"]
    kv.update(n_neighbors=q["k"], n_queries=q["nq"])
    return " ".join(f"{k}={v}" for k, v in kv.items()) + " phase=search force_gpu=true"


def point_hash(p):
    return hashlib.sha256(json.dumps([p["op"], p["variant"], point_key(p)]).encode()).hexdigest()


def regime(p):
    """Which coefficients a point mostly exercises, from its shape alone."""
    if p["op"] == "kmeans":
        n, d = p["shape"]
        return (p["init"], p["input"], n * d < 2_000_000, p["k"] < 64)
    if p["op"] == "knn":
        nq, n, d = knn_dims(p)
        return (p["input"], p["metric"], p["k"] > KNN_ANYK // 2, nq * n * d < 1e10)
    if p["op"] in ("eigh", "polar"):
        return (p["shape"][1] >= 1024,)
    if p["op"] == "pca" and p["variant"] == "covariance_eigh":
        # which eigensolver ran (measure.py records it from the fit's log), so that the fit sees both the
        # top-k solver's and syevd's coefficients
        n, d = p["shape"]
        return (p.get("eigh", "syevd") != "syevd", n * d >= 2e7)
    if p["op"] in DECOMP_OPS:
        n, d = p["shape"]
        return (n * d >= 2e7, d >= 256)
    if p["op"] in ANN_OPS:  # small batches (latency) or large (throughput), and the kind's own knob
        q = p["search"]
        knob = q["width"] > 1 if p["op"] == "cagra" else q.get("refine", 1) > 1 if p["op"] == "ivf_pq" \
            else p["k"] >= 100
        return (p["nq"] >= 1000, knob)
    m, k, n = p["shape"]
    return (2 * m * k * n < 2e9, min(m, k, n) <= 128)


def split(ps):
    """Holds out ~25% of the points, stratified: within each regime (init,
    where X lives, small or large, few or many clusters) every 4th
    point in hash order, and only from regimes with at least 3 points, so
    every coefficient is still seen by the fit. Stable: the same
    measurements give the same split."""
    by = {}
    for p in ps:
        by.setdefault(regime(p), []).append(p)
    hold = set()
    for group in by.values():
        if len(group) < 3:
            continue
        order = sorted(group, key=point_hash)
        hold |= {point_hash(p) for i, p in enumerate(order) if i % 4 == 1}
    # too few held out (small regimes): one more from each regime of >= 2, largest first
    for group in sorted(by.values(), key=len, reverse=True):
        if len(hold) >= MIN_HOLDOUT or len(ps) - len(hold) <= MIN_FIT:
            break
        order = [p for p in sorted(group, key=point_hash) if point_hash(p) not in hold]
        if len(group) >= 2 and len(order) >= 2:
            hold.add(point_hash(order[0]))
    return [p for p in ps if point_hash(p) not in hold], [p for p in ps if point_hash(p) in hold]


def model_args(p):
    """(op, variant, shape, params, dtype) for fl_info_model_eval."""
    if p["op"] == "kmeans":
        prec = p["variant"].split("-")[0]
        it = max(p["iters"], 1)  # the iterations that ran (tol=0: until no label changed)
        mx = max(p.get("iters_requested", it), it)  # max_iter: the host enqueues up to this many
        params = (f"n_clusters={p['k']} precision={prec} init={p['init']} input={p['input']} "
                  f"max_iter={mx} expected_iter={it} tol=0 n_init=1")
        return "kmeans", p["variant"], tuple(p["shape"]), params, "f32"
    if p["op"] == "knn":
        params = (f"n_neighbors={p['k']} precision={p['variant']} metric={p['metric']} input={p['input']} "
                  f"force_gpu=true")
        return "knn", p["variant"], tuple(p["shape"]), params, "f32"
    if p["op"] == "eigh":  # the polar steps fl_eigh reported drive the divide and conquer's launches
        params = f"variant={p['variant']}" + (f" n_components={p['k']}" if p.get("k") else "")
        if p["variant"] in ("eigh_qdwh", "eigh_qdwh_ns"):
            params += f" iterations={p['iters']}"
        return "eigh", p["variant"], tuple(p["shape"]), params, p["dtype"]
    if p["op"] == "polar":
        return "polar", p["variant"], tuple(p["shape"]), f"variant={p['variant']} iterations={p['iters']}", p["dtype"]
    if p["op"] == "pca":
        params = f"n_components={p['k']} svd_solver={p['variant']} iterated_power={p['n_iter']}"
        if p.get("eigh_steps") is not None:  # the top-k solver's steps and degrees that ran (the fit's log)
            params += f" eigh_steps={p['eigh_steps']} eigh_degree={p['eigh_degree']}"
        return "pca", p["variant"], tuple(p["shape"]), params, p["dtype"]
    if p["op"] == "truncated_svd":
        return ("truncated_svd", p["variant"], tuple(p["shape"]), f"n_components={p['k']} n_iter={p['n_iter']}",
                p["dtype"])
    if p["op"] in ANN_OPS:
        return p["op"], p["variant"], tuple(p["shape"]), ann_params(p), "f32"
    return "gemm", p["variant"], tuple(p["shape"]), f"variant={p['variant']}", p["dtype"]


# ---- robust least squares, no dependencies ------------------------------------------------
# Every coefficient is a positive physical quantity (a rate, a bandwidth, a
# per-launch or per-row cost); the fit works on their logarithms, within
# bounds (multiples of the roofline value) that keep them physical: a rate
# never far above the device's peak, a bandwidth never above HBM's.
BOUNDS = {"rate_tflops": (0.05, 2.0), "bw_gbs": (0.1, 1.3), "l2_gbs": (0.05, 10.0),
          # kNN's Hopper scan: wgmma within ~0.5-1.3x the GEMM class's rate (free, it traded off
          # against the fold's per-score cost: 196 to 1516 TFLOPS between entries); the finalize's
          # merge within 4x of its roofline (free, the H100's fell to 11 G entries/s, 15x below)
          "rate9_tflops": (0.5, 1.3), "merge_gcps": (0.25, 4.0),
          # a split GEMM's passes: HBM at most ~its peak, L2-resident traffic no slower than the
          # roofline's HBM (half its L2 start value)
          "pass_bw_gbs": (0.1, 1.3), "pass_l2_gbs": (0.5, 10.0),
          # IVF-Flat: a probed list's rows over the mean (size-biased: E[s^2] / E[s]^2 of k-means lists)
          "skew": (1 / 1.5, 2.0)}
DEFAULT_BOUNDS = (0.01, 100.0)
F_SCALE = 0.1  # soft-L1 in log space: residuals beyond ~10% count linearly, not squared


def solve(A, b):
    """A x = b by Gaussian elimination with partial pivoting (A small, SPD)."""
    n = len(b)
    M = [row[:] + [b[i]] for i, row in enumerate(A)]
    for c in range(n):
        piv = max(range(c, n), key=lambda r: abs(M[r][c]))
        M[c], M[piv] = M[piv], M[c]
        if abs(M[c][c]) < 1e-300:
            M[c][c] = 1e-300
        for r in range(c + 1, n):
            f = M[r][c] / M[c][c]
            if f:
                for j in range(c, n + 1):
                    M[r][j] -= f * M[c][j]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (M[r][n] - sum(M[r][j] * x[j] for j in range(r + 1, n))) / M[r][r]
    return x


H = 1e-6  # forward-difference step in log-coefficient space


def dense_jacobian(res):
    """Forward differences of res, as sparse rows [(column, value), ...]."""
    def jac(x, r):
        cols = []
        for j in range(len(x)):
            xx = list(x)
            xx[j] += H
            cols.append([(a - b) / H for a, b in zip(res(xx), r)])
        return [[(j, cols[j][i]) for j in range(len(x)) if cols[j][i]] for i in range(len(r))]
    return jac


def levenberg_marquardt(res, x0, lo, hi, iters=150, jac=None):
    """Minimises sum(soft_l1(res(x))) within [lo, hi] (projected LM, IRLS
    weights for the soft-L1 loss, forward-difference Jacobian given as
    sparse rows)."""
    jac = jac or dense_jacobian(res)
    n = len(x0)
    x = [min(max(v, l), h) for v, l, h in zip(x0, lo, hi)]

    def cost(r):
        return sum(2 * F_SCALE ** 2 * (math.sqrt(1 + (v / F_SCALE) ** 2) - 1) for v in r)

    r = res(x)
    c = cost(r)
    lam = 1e-2
    for _ in range(iters):
        A = [[0.0] * n for _ in range(n)]
        g = [0.0] * n
        for row, ri in zip(jac(x, r), r):
            w2 = (1 + (ri / F_SCALE) ** 2) ** -0.5  # (IRLS weight)^2
            for i, a in row:
                Ai = A[i]
                wa = w2 * a
                g[i] += wa * ri
                for j, b in row:
                    Ai[j] += wa * b
        done = True
        for _ in range(12):
            Ad = [[A[i][j] + (lam * (A[i][i] + 1e-9) if i == j else 0) for j in range(n)] for i in range(n)]
            step = solve(Ad, [-v for v in g])
            xn = [min(max(v + s, l), h) for v, s, l, h in zip(x, step, lo, hi)]
            rn = res(xn)
            cn = cost(rn)
            if cn < c:
                done = max(abs(a - b) for a, b in zip(xn, x)) < 1e-6 or c - cn < 1e-10 * (1 + c)
                x, r, c = xn, rn, cn
                lam = max(lam / 3, 1e-9)
                break
            lam *= 4
        if done:
            break
    return x, c


def log_bounds(x0, names):
    lo = [v + math.log(BOUNDS.get(nm, DEFAULT_BOUNDS)[0]) for v, nm in zip(x0, names)]
    hi = [v + math.log(BOUNDS.get(nm, DEFAULT_BOUNDS)[1]) for v, nm in zip(x0, names)]
    return lo, hi


def point_residuals(info, device, args, logm, coef):
    r = []
    for (op, var, shape, params, dt), lm in zip(args, logm):
        try:
            pred = info.model(op, var, shape, params, dt, device, coef)
        except infolib.InfoError:
            pred = 1e9
        r.append(math.log(max(pred, 1e-9)) - lm)
    return r


def fit_entry(info, device, pts, coef0, names, frozen=None):
    """Coefficients minimising the soft-L1 loss of log(predicted / measured)
    over the fitted points, with a weak pull of log(coef) towards its
    roofline value (PRIOR) so that a coefficient the points cannot see
    keeps it. Deterministic: from several starts (the model's max() terms
    make the loss piecewise smooth, with local minima), the best fit of the fitted points wins; held-out points are never
    looked at. frozen: {index: value} of coefficients that are not fitted
    (a split GEMM variant's base_*, copied from its base variant's entry)."""
    frozen = frozen or {}
    free = [i for i in range(len(coef0)) if i not in frozen]
    full0 = [frozen.get(i, c) for i, c in enumerate(coef0)]
    x0 = [math.log(coef0[i]) for i in free]
    lo, hi = log_bounds(x0, [names[i] for i in free])
    args = [model_args(p) for p in pts]
    logm = [math.log(p["ms"]) for p in pts]

    def full(x):
        c = list(full0)
        for i, v in zip(free, x):
            c[i] = math.exp(v)
        return c

    def residuals(x):
        r = point_residuals(info, device, args, logm, full(x))
        return r + [PRIOR * (x[j] - x0[j]) for j in range(len(x))]

    rate_like = [names[i].endswith(("_tflops", "_gbs", "_gps", "_gsps")) for i in free]
    # starts: the roofline values, every rate halved, and each rate alone
    # at a quarter (which term of a max() binds decides the local minimum)
    starts = [x0, [v + (math.log(0.5) if r else math.log(2)) for v, r in zip(x0, rate_like)]]
    starts += [[v + (math.log(0.25) if j == i else 0) for j, v in enumerate(x0)]
               for i, r in enumerate(rate_like) if r]
    best = min((levenberg_marquardt(residuals, s, lo, hi) for s in starts), key=lambda t: t[1])
    # and once more from the best, each rate in turn at a quarter of its value
    again = [[v + (math.log(0.25) if j == i else 0) for j, v in enumerate(best[0])]
             for i, r in enumerate(rate_like) if r]
    best = min([best] + [levenberg_marquardt(residuals, s, lo, hi) for s in again], key=lambda t: t[1])
    return full(best[0])


# Coefficients that do not depend on the E-step's precision: the host
# link, k-means++ (fp32 kernels), the M-step and the objective (fp32 X),
# the per-fit fixed cost, the gap of a launch and the device's effective
# memory bandwidth are the same code and the same hardware whatever the
# precision. One value per (op, device), fitted on the fitted points of all
# its entries together (far more points per coefficient); each entry keeps
# only what its precision and kernels change: the E-step's tensor rate and
# per-score fold, its operand loads from L2, the near-tie re-scoring.
SHARED = {"kmeans": ("fixed_ms", "launch_us", "graph_us", "bw_gbs", "h2d_gbs", "pp_launch_us", "pp_row_ps", "update_gps",
                     "owner_gps", "owner_ns", "row_ns"),
          # kNN: the copies, the list insertions, the merge and fp32 re-rank (k_knn_finalize), the
          # any-k path (an fp32 SIMT score matrix and CUB sorts whatever the precision) and
          # manhattan's SIMT cost are the same code for every scan precision; each entry keeps its
          # scan's rate, threshold tests and L2 loads; the Hopper scan's fold (fast test, slow path,
          # appends and warp merges) is one code for tf32, bf16 and fp16 (fp32 accumulators): only its
          # wgmma rate is the entry's own
          "knn": ("fixed_ms", "launch_us", "insert_ns", "insert9_ns", "select9_gsps", "slow9_gsps", "bw_gbs",
                  "h2d_gbs", "merge_gcps", "rerank_gbs", "sort_gsps", "l1_cost", "matrix_tflops"),
          # eigh: every variant starts with the same host copy and mirror of A (load_symmetric)
          "eigh": ("host_ns", "alias")}


def fit_shared(info, device, entries, shared_names):
    """Joint fit of the entries [(pts, coef0, names, coef_alone), ...] of
    one (op, device): the shared coefficients once, the others per entry,
    the same loss and bounds as fit_entry. Starts from the entries' own
    fits (shared: their geometric mean) and from that start with each
    shared rate at a quarter; the better fit of the fitted points wins.
    Returns the coefficient vector of each entry."""
    names = entries[0][2]
    S = [names.index(nm) for nm in shared_names]
    P = [i for i in range(len(names)) if i not in S]
    ns, npv = len(S), len(P)
    roof = []
    for _, coef0, nm, _ in entries:
        assert nm == names and all(abs(coef0[i] / entries[0][1][i] - 1) < 1e-9 for i in S)
    x0 = [math.log(entries[0][1][i]) for i in S]
    for _, coef0, _, _ in entries:
        x0 += [math.log(coef0[i]) for i in P]
    lo, hi = log_bounds(x0, [names[i] for i in S] + [names[i] for _ in entries for i in P])
    data = [([model_args(p) for p in pts], [math.log(p["ms"]) for p in pts]) for pts, _, _, _ in entries]
    offs = []
    at = 0
    for args, _ in data:
        offs.append(at)
        at += len(args)
    n_pts = at

    def coef_of(x, e):
        c = [0.0] * len(names)
        for k, i in enumerate(S):
            c[i] = math.exp(x[k])
        for k, i in enumerate(P):
            c[i] = math.exp(x[ns + e * npv + k])
        return c

    def entry_res(x, e):
        return point_residuals(info, device, data[e][0], data[e][1], coef_of(x, e))

    def residuals(x):
        r = []
        for e in range(len(entries)):
            r += entry_res(x, e)
        return r + [PRIOR * (x[j] - x0[j]) for j in range(len(x))]

    def jac(x, r):
        rows = [[] for _ in r]
        for k in range(ns):  # a shared coefficient moves every entry's points
            xx = list(x)
            xx[k] += H
            for e in range(len(entries)):
                for q, v in enumerate(entry_res(xx, e)):
                    d = (v - r[offs[e] + q]) / H
                    if d:
                        rows[offs[e] + q].append((k, d))
        for e in range(len(entries)):  # an entry's own ones only its points
            for k in range(npv):
                j = ns + e * npv + k
                xx = list(x)
                xx[j] += H
                for q, v in enumerate(entry_res(xx, e)):
                    d = (v - r[offs[e] + q]) / H
                    if d:
                        rows[offs[e] + q].append((j, d))
        for j in range(len(x)):
            rows[n_pts + j].append((j, PRIOR))
        return rows

    start = [sum(math.log(c[i]) for _, _, _, c in entries) / len(entries) for i in S]
    for _, _, _, c in entries:
        start += [math.log(c[i]) for i in P]
    rate_like = [names[i].endswith(("_tflops", "_gbs", "_gps", "_gsps")) for i in S]
    starts = [start] + [[v + (math.log(0.25) if j == k else 0) for j, v in enumerate(start)]
                        for k in range(ns) if rate_like[k]]
    best = min((levenberg_marquardt(residuals, s0, lo, hi, jac=jac) for s0 in starts), key=lambda t: t[1])
    return [coef_of(best[0], e) for e in range(len(entries))]


_WORKER_INFO = None


def _worker_init(lib):
    global _WORKER_INFO
    _WORKER_INFO = infolib.Info(lib)


def _worker_fit(dev, pts, coef0, names, frozen=None):
    return fit_entry(_WORKER_INFO, dev, pts, coef0, names, frozen)


def _worker_fit_shared(dev, entries, shared_names):
    return fit_shared(_WORKER_INFO, dev, entries, shared_names)


def predict(info, device, p, coef):
    op, var, shape, params, dt = model_args(p)
    return info.model(op, var, shape, params, dt, device, coef)


def pct(xs, q):
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def c_str(s):
    return json.dumps(s if s is not None else "")


def write_inc(path, entries, points, anchors, sources):
    L = ["/*",
         " * calib_data.inc — GENERATED by bench/calib/fit.py from the measurements in",
         " * bench/results/calib/ (one JSON file per device). Do not edit by hand: rerun",
         " * the harness (bench/calib/run.sh on the GPU machine) and the fit.",
         " *",
         " * sources:" + ("" if sources else " none"),
         *[f" *   {src}" for src in sources],
         " */",
         "/* clang-format off */",
         "static const fli_calib_entry calib_entries[] = {"]
    for e in entries:
        coef = ", ".join(f"{c:.9g}" for c in e["coef"])
        L.append(f"    {{{c_str(e['op'])}, {c_str(e['variant'])}, {c_str(e['dtype'])}, {c_str(e['device'])}, "
                 f"{len(e['coef'])}, {{{coef}}}, {e['median_err']:.6f}, {e['p90_err']:.6f}, {e['n_fit']}, "
                 f"{e['n_holdout']},")
        L.append(f"     {c_str(e['describe'])}}},")
    L.append("    {NULL, NULL, NULL, NULL, 0, {0}, 0, 0, 0, 0, NULL},")
    L.append("};")
    L.append("")
    L.append("static const fli_calib_point calib_points[] = {")
    for p in points:
        key = ", ".join(str(int(v)) for v in point_key(p))
        L.append(f"    {{{c_str(p['op'])}, {c_str(p['variant'])}, {c_str(p['dtype'])}, {c_str(p['device'])}, "
                 f"{{{key}}}, {p['ms']:.6g}, {c_str(p['source'])}}},")
    L.append("    {NULL, NULL, NULL, NULL, {0}, 0, NULL},")
    L.append("};")
    L.append("")
    L.append("static const fli_calib_anchor calib_anchors[] = {")
    for a in anchors:
        shape = ", ".join(str(int(v)) for v in a["shape"])
        L.append(f"    {{{c_str(a['op'])}, {c_str(a['ref'])}, {c_str(a['where'])}, {c_str(a['device'])}, "
                 f"{len(a['shape'])}, {{{shape}}}, {c_str(a['params'])}, {a['ms']:.6g}, {c_str(a['source'])}}},")
    L.append("    {NULL, NULL, NULL, NULL, 0, {0}, NULL, 0, NULL},")
    L.append("};")
    L.append("/* clang-format on */")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def op_run(run, op, variant=None):
    """The metadata of the run that measured `op`'s points of a measurement
    file: op_runs["op/variant"] (measure.py --gemm-variants: only those
    variants' points were replaced), else op_runs[op] (written when
    measure.py --merge-from replaced one op's points), over the file's own."""
    runs = run.get("op_runs", {})
    return {**run, **runs.get(op, {}), **(runs.get(f"{op}/{variant}", {}) if variant else {})}


def shape_text(p):
    s = "x".join(str(v) for v in p["shape"])
    if p["op"] == "kmeans":
        s += f" k={p['k']} it={p['iters']} {p['init']} {p['input']}"
    elif p["op"] == "knn":
        s = ("self " if p["self"] else "") + s + f" k={p['k']} {p['metric']} {p['input']}"
    elif p["op"] in ("eigh", "polar"):
        s += (f" k={p['k']}" if p.get("k") else "") + f" it={p.get('iters', 0)}"
    elif p["op"] in DECOMP_OPS:
        s += f" k={p['k']} n_iter={p['n_iter']}"
    elif p["op"] in ANN_OPS:
        s = f"{p['nq']} x {s} k={p['k']} " + " ".join(f"{k}={v}" for k, v in {**p["build"], **p["search"]}.items())
    return s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--info-lib", required=True)
    ap.add_argument("--inc", required=True, help="calib_data.inc to write")
    ap.add_argument("--report", required=True, help="markdown report to write")
    ap.add_argument("--plot", help="PNG to write (needs matplotlib)")
    ap.add_argument("--summary", help="JSON summary to write (entries, held-out errors, predictions)")
    ap.add_argument("--ops", help="fit only these ops (comma-separated, e.g. ivf_flat,ivf_pq,cagra): every other "
                    "entry keeps the coefficients of --reuse (a quick refit after a change to those ops' models; "
                    "publish from a full run)")
    ap.add_argument("--reuse", help="summary.json whose coefficients the entries outside --ops keep (default: "
                    "--summary, read before it is rewritten)")
    ap.add_argument("measurements", nargs="+")
    a = ap.parse_args(argv)
    only = set(a.ops.split(",")) if a.ops else None
    reused = {}
    if only:
        path = a.reuse or a.summary
        if not path or not os.path.exists(path):
            ap.error("--ops needs the coefficients of the other entries: --reuse SUMMARY (or an existing --summary)")
        with open(path) as f:
            for e in json.load(f):
                reused[(e["op"], e["variant"], e["dtype"], e["device"])] = (e["coef_names"], e["coef"])
    info = infolib.Info(a.info_lib)

    runs, pts, anchors = [], [], []
    for path in a.measurements:
        with open(path) as f:
            run = json.load(f)
        if not isinstance(run, dict) or "points" not in run or "device" not in run:
            print(f"{path}: not a measurement file, skipped")
            continue
        runs.append(run)

        def src(op, variant=None, run=run, path=path):
            r = op_run(run, op, variant)
            return f"{os.path.basename(path)} ({r.get('device_name', run['device'])}, commit {r.get('commit')}, " \
                   f"{r.get('date', '')[:10]})"
        for p in run["points"]:
            p = dict(p, device=run["device"], source=src(p["op"], p["variant"]))
            pts.append(p)
        for an in run.get("anchors", []):
            where = ("this GPU" if an["ref"] in ("pytorch",) else f"the CPU ({run.get('cpus')} CPUs) of the "
                     f"{run['device']} machine")
            anchors.append(dict(an, device=run["device"], where=where, source=src("anchors")))

    groups = {}
    for p in pts:
        if p["op"] == "pca" and p.get("eigh") == "topk+syevd":
            print(f"pca {p['shape']} k={p['k']} on {p['device']}: the top-k solve fell back to syevd "
                  f"(the spectrum, not the shape): not modelled, left out of the fit")
            continue
        groups.setdefault((p["op"], p["variant"], p["dtype"], p["device"]), []).append(p)
    entries, summary = [], []
    # the entries are independent: fitted in parallel, one process each (deterministic all the same)
    tasks = {}
    for (op, var, dt, dev), ps in sorted(groups.items()):
        fit_pts, hold = split(ps)
        if len(fit_pts) < MIN_FIT or len(hold) < MIN_HOLDOUT:
            continue
        names, coef0 = info.coefs(op, var, dev)
        tasks[(op, var, dt, dev)] = (dev, fit_pts, coef0, names)
    fitted = {}
    # then the coefficients SHARED by an (op, device)'s entries, jointly
    joint = {}
    for key in tasks:
        if key[0] in SHARED:
            joint.setdefault((key[0], key[3]), []).append(key)
    joint = {g: keys for g, keys in joint.items() if len(keys) > 1}
    # the split GEMM variants' products start from their base variant's coefficients (base_*), fitted
    # first in the same run: the fit starts there and its prior pulls towards them, so the products move
    # from the base entry only as far as their own points ask (fl_gemm's products are cuBLAS kernels of
    # the base precision, but TN with float32 sums added into, not the base sweep's NN with 16-bit C).
    # Ozaki's int8 products have no base entry: prod_eff stays 1
    later = {key for key in tasks if key[0] == "gemm" and key[1] in SPLIT_BASE}
    first = {key: t for key, t in tasks.items() if key not in later}

    def frozen_of(key, fitted):
        if key[1] == "gemm_ozaki_int8":
            return {tasks[key][3].index("prod_eff"): 1.0}
        return None

    def from_base(key, fitted):
        """tasks[key] with its base_* start values from the base variant's fit on the same device."""
        dev, pts, coef0, names = tasks[key]
        base = next((k for k in fitted if k[0] == "gemm" and k[1] == SPLIT_BASE[key[1]] and k[3] == key[3]), None)
        if base:
            bnames, bcoef = tasks[base][3], fitted[base]
            coef0 = [bcoef[bnames.index(nm[5:])] if nm.startswith("base_") else c for nm, c in zip(names, coef0)]
            tasks[key] = (dev, pts, coef0, names)
        return tasks[key]

    # --ops: the entries outside those ops keep their published coefficients (the same names; else refitted)
    keep = {key: list(reused[key][1]) for key in tasks
            if only and key[0] not in only and key in reused and reused[key][0] == tasks[key][3]}
    first = {key: t for key, t in first.items() if key not in keep}
    later = {key for key in later if key not in keep}
    joint = {g: keys for g, keys in joint.items() if not any(k in keep for k in keys)}
    workers = min(len(first) + len(later) + len(joint), os.cpu_count() or 1)
    if workers > 1:
        import concurrent.futures
        import multiprocessing

        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                                    initializer=_worker_init, initargs=(a.info_lib,)) as ex:
            futs = {key: ex.submit(_worker_fit, *t, frozen_of(key, {})) for key, t in first.items()}
            fitted = {key: f.result() for key, f in futs.items()}
            futs = {key: ex.submit(_worker_fit, *from_base(key, fitted)) for key in later}
            futs.update({g: ex.submit(_worker_fit_shared, g[1], [tasks[k][1:] + (fitted[k],) for k in keys],
                                      SHARED[g[0]]) for g, keys in joint.items()})
            for g, f in futs.items():
                if g in later:
                    fitted[g] = f.result()
                else:
                    fitted.update(zip(joint[g], f.result()))
    else:
        fitted = {key: fit_entry(info, *t, frozen_of(key, {})) for key, t in first.items()}
        for key in later:
            fitted[key] = fit_entry(info, *from_base(key, fitted))
        for g, keys in joint.items():
            fitted.update(zip(keys, fit_shared(info, g[1], [tasks[k][1:] + (fitted[k],) for k in keys],
                                               SHARED[g[0]])))
    fitted.update(keep)
    for (op, var, dt, dev), ps in sorted(groups.items()):
        fit_pts, hold = split(ps)
        held = {point_hash(p) for p in hold}
        if len(fit_pts) < MIN_FIT or len(hold) < MIN_HOLDOUT:
            print(f"{op}/{var}/{dt}/{dev}: {len(fit_pts)} fit + {len(hold)} held-out points: too few, no entry")
            continue
        names, coef0 = tasks[(op, var, dt, dev)][3], tasks[(op, var, dt, dev)][2]  # start values (roofline, base_*)
        coef = fitted[(op, var, dt, dev)]
        rows = []
        for p in ps:
            est = predict(info, dev, p, coef)
            roof = predict(info, dev, p, coef0)
            rows.append(dict(p, estimate_ms=est, roofline_ms=roof, held_out=point_hash(p) in held,
                             rel_err=abs(est - p["ms"]) / p["ms"]))
        errs = [r["rel_err"] for r in rows if r["held_out"]]
        fit_errs = [r["rel_err"] for r in rows if not r["held_out"]]
        med, p90 = statistics.median(errs), pct(errs, 0.9)
        run = op_run(next(r for r in runs if r["device"] == dev), op, var)
        via_fl = op == "gemm" and any(r.get("backend") == "flashlib fl_gemm" for r in ps)
        what = {"gemm": "flashlib's fl_gemm on device arrays" if via_fl else "cuBLAS via torch.matmul",
                "knn": "flashlib's CUDA search (fl_knn_search)", "eigh": "flashlib's fl_eigh on device arrays",
                "polar": "flashlib's fl_polar on device arrays", "pca": "flashlib's GPU fl_pca_fit (X on the device)",
                "truncated_svd": "flashlib's GPU fl_truncated_svd_fit (X on the device)",
                "ivf_flat": "flashlib's CUDA IVF-Flat search (fl_model_kneighbors, host queries)",
                "ivf_pq": "flashlib's CUDA IVF-PQ search (fl_model_kneighbors, host queries)",
                "cagra": "flashlib's CUDA CAGRA search (fl_model_kneighbors, host queries)"}.get(
                    op, "flashlib's CUDA fit (fl_kmeans_fit)")
        describe = (f"{dev} ({run.get('device_name')}), commit {run.get('commit')}, {run.get('date', '')[:10]}: "
                    f"{what}; {len(fit_pts)} shapes fitted, {len(hold)} held out: median {med:.1%}, p90 {p90:.1%}")
        shared = [nm for nm in names if nm in SHARED.get(op, ()) and (op, dev) in joint]
        e = dict(op=op, variant=var, dtype=dt, device=dev, coef=coef, coef_names=names, roofline=coef0,
                 shared=shared, median_err=med, p90_err=p90, fit_median_err=statistics.median(fit_errs),
                 n_fit=len(fit_pts), n_holdout=len(hold), describe=describe, rows=rows)
        entries.append(e)
        print(f"{op}/{var}/{dt}/{dev}: {len(fit_pts)} fit, {len(hold)} held out: median {med:.1%}, p90 {p90:.1%}")
        summary.append({k: v for k, v in e.items()})

    # sorted by key: the library finds a point by binary search
    points = sorted(pts, key=lambda p: (point_key(p), p["op"], p["variant"], p["device"]))
    write_inc(a.inc, entries, points, anchors, sorted({p["source"] for p in pts}))
    write_report(a.report, entries, anchors, runs)
    if a.summary:
        with open(a.summary, "w") as f:
            json.dump(summary, f, indent=1)
    if a.plot:
        plot(a.plot, entries)
    return entries


def op_method(method, op):
    """The part of a run's method text (measure.py's METHOD entries joined
    by '; ', each opening with its op's name) that describes `op`."""
    names = ("kmeans", "knn", "gemm", "eigh", "polar", "truncated_svd", "pca", "ann")
    op = "ann" if op in ANN_OPS else op  # one method text for the three indexes' searches
    keep, mine = [], False
    for part in (method or "").split("; "):
        head = part.split(":", 1)[0]
        if head in names:
            mine = head == op
        if mine:
            keep.append(part)
    return "; ".join(keep) or (method or "")


def write_report(path, entries, anchors, runs):
    L = ["# Cost-model calibration: estimate vs measured", ""]
    L.append("Generated by `bench/calib/fit.py` from the measurements of `bench/calib/measure.py` "
             "(run by `bench/calib/run.sh` on the GPU machine). Each entry's coefficients are fitted on ~75% of "
             "its shapes; the errors below are on the other ~25%, held out of the fit, with exactly the "
             "coefficients compiled into `src/info/calib_data.inc`. Target: median <= 10%, p90 <= 25%; "
             "the library calls an entry `calibrated` only when its held-out median is <= 20%.")
    L.append("")
    for run in runs:
        for op in sorted({p["op"] for p in run["points"]}):
            r = op_run(run, op)
            own = {k.split("/", 1)[1] for k in run.get("op_runs", {}) if k.startswith(op + "/")}
            n = sum(p["op"] == op and p["variant"] not in own for p in run["points"])
            L.append(f"- {run['device']} {op}: {r.get('device_name')}, driver {r.get('driver')}, torch "
                     f"{r.get('torch')}, commit {r.get('commit')}, {r.get('date')}; {n} points; "
                     f"{op_method(r.get('method'), op)}")
            for v in sorted(own):  # variants measured in a run of their own (measure.py --gemm-variants)
                r = op_run(run, op, v)
                pts = [p for p in run["points"] if p["op"] == op and p["variant"] == v]
                how = next((p.get("backend") for p in pts if p.get("backend")), "")
                L.append(f"- {run['device']} {op} {v}: commit {r.get('commit')}"
                         f"{' (earlier points: ' + ', '.join(c for c in r['commits'] if c != r.get('commit')) + ')' if len(r.get('commits', [])) > 1 else ''}"
                         f", {r.get('date')}, seeds {r.get('seeds')}; {len(pts)} points; {how}")
            for key, r in sorted(run.get("op_runs", {}).items()):
                # points re-measured on their own (measure.py --only field=value): those replaced the
                # earlier ones with the same field, the op's other points are from the run above
                if not key.startswith(op + "[") or "/" in key:
                    continue
                sel = dict(kv.split("=", 1) for kv in key[len(op) + 1:-1].split(","))
                pts = [p for p in run["points"] if p["op"] == op and all(str(p.get(f)) == v for f, v in sel.items())]
                L.append(f"- {run['device']} {op} with {', '.join(f'{f} {v}' for f, v in sel.items())}, "
                         f"re-measured: commit {r.get('commit')}, {r.get('date')}, seeds {r.get('seeds')}; "
                         f"{len(pts)} of the {op} points above")
    L.append("")
    L.append("| op | variant | dtype | device | fitted | held out | held-out median | held-out p90 | target | tier |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for e in entries:
        ok = e["median_err"] <= 0.10 and e["p90_err"] <= 0.25
        L.append(f"| {e['op']} | {e['variant']} | {e['dtype']} | {e['device']} | {e['n_fit']} | {e['n_holdout']} | "
                 f"{e['median_err']:.1%} | {e['p90_err']:.1%} | {'met' if ok else 'MISSED'} | "
                 f"{'calibrated' if e['median_err'] <= 0.20 else 'heuristic'} |")
    if not entries:
        L.append("| (no entry: no measurements yet) | | | | | | | | | |")
    L.append("")
    missed = [e for e in entries if not (e["median_err"] <= 0.10 and e["p90_err"] <= 0.25)]
    if missed:
        L.append("Targets missed (exact held-out errors; a p90 of few points is close to the worst point): " +
                 "; ".join(f"{e['op']}/{e['variant']}/{e['device']}: median {e['median_err']:.3%}, p90 "
                           f"{e['p90_err']:.3%} of {e['n_holdout']} points" for e in missed) + ".")
    else:
        L.append("Every entry meets the target.")
    L.append("")
    L.append("The plain GEMM variants (fp64, fp32, tf32, bf16, fp16) are timed as cuBLAS through `torch.matmul` "
             "(per-call device time): `fl_gemm` runs each of them as one cuBLAS call too, so their entries describe "
             "the same kernels (without fl_gemm's own per-call host cost). The split variants (3xtf32, 3xbf16, "
             "3xfp16, fp16x9, fp16x3_kahan, tf32x6, ozaki_int8) are timed through `fl_gemm` itself; their "
             "products' coefficients `base_*` start from the base variant's entry on the same device (the value in "
             "parentheses) and the fit's prior pulls towards it; Ozaki's int8 products have no base entry (they "
             "start from the roofline, and `prod_eff` stays 1).")
    for e in entries:
        L.append("")
        L.append(f"## {e['op']} / {e['variant']} / {e['device']}")
        L.append("")
        L.append("coefficients (fitted; roofline value in parentheses; * fitted jointly with the device's other "
                 f"{e['op']} entries, one value for all): " + ", ".join(
                     f"{n}{'*' if n in e.get('shared', ()) else ''} {c:.4g} ({c0:.4g})"
                     for n, c, c0 in zip(e["coef_names"], e["coef"], e["roofline"])))
        L.append("")
        L.append("| shape | measured ms | estimate ms | error | roofline ms | set |")
        L.append("|---|---|---|---|---|---|")
        for r in sorted(e["rows"], key=lambda r: (not r["held_out"], r["ms"])):
            L.append(f"| {shape_text(r)} | {r['ms']:.4g} | {r['estimate_ms']:.4g} | {r['rel_err']:.1%} | "
                     f"{r['roofline_ms']:.4g} | {'held out' if r['held_out'] else 'fit'} |")
    if anchors:
        L.append("")
        L.append("## Anchors for `compare`")
        L.append("")
        L.append("| op | reference | device | shape | ms | parameters |")
        L.append("|---|---|---|---|---|---|")
        for an in anchors:
            L.append(f"| {an['op']} | {an['ref']} | {an['device']} | {'x'.join(map(str, an['shape']))} | "
                     f"{an['ms']:.4g} | {an['params']} |")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def plot(path, entries):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(8, 8))
    lo, hi = 1e9, 1e-9
    for i, e in enumerate(entries):
        color = plt.cm.tab20(i % 20)
        for held, marker in ((False, "o"), (True, "s")):
            rows = [r for r in e["rows"] if r["held_out"] == held]
            if not rows:
                continue
            xs, ys = [r["ms"] for r in rows], [r["estimate_ms"] for r in rows]
            lo, hi = min(lo, *xs, *ys), max(hi, *xs, *ys)
            ax.scatter(xs, ys, s=28 if held else 14, marker=marker, facecolors=color if held else "none",
                       edgecolors=color, label=f"{e['op']}/{e['variant']}/{e['device']}" if held else None)
    if entries:
        ax.plot([lo, hi], [lo, hi], "k-", lw=1)
        ax.plot([lo, hi], [lo * 1.25, hi * 1.25], "k:", lw=0.8)
        ax.plot([lo, hi], [lo / 1.25, hi / 1.25], "k:", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured (ms)")
    ax.set_ylabel("estimated (ms)")
    ax.set_title("flashlib cost model: estimate vs measured\n(filled squares: held out of the fit; "
                 "dotted: +-25%)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
