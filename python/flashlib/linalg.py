"""flashlib.linalg: dense linear-algebra kernels with explicit precision.

Every function takes numpy arrays (float32 or float64, any memory layout;
they are copied to C order when needed) and a `device` ("auto", "cpu",
"cuda", "cuda:N"). The results are new numpy arrays of the input's dtype.

GEMM variants (`gemm(..., variant=...)`), from fastest to most accurate on
a GPU: "bf16", "fp16", "tf32", "3xbf16", "3xfp16", "fp16x3_kahan",
"3xtf32", "fp32", "fp16x9", "tf32x6", "fp64", "ozaki_int8". Each is defined
by its arithmetic (how operands are split and rounded, how products are
accumulated), and the CPU runs the same arithmetic, so a variant's error
does not depend on where it ran. `gemm(A, B, tol=1e-4)` lets the cost model
pick the fastest variant whose expected residual meets the tolerance, by
the rule `flashlib.info.estimate("gemm", ..., params="tol=...")` uses.

Eigensolvers (`eigh(A, variant=...)`): "cusolver" (divide and conquer:
LAPACK / cuSOLVER syevd), "jacobi", "qdwh" (spectral divide and conquer
with QDWH polar decompositions), "qdwh_ns" (the same with GEMM-only polar
steps), "halko" (randomized, the top n_components of a positive
semi-definite A). Polar decomposition (`polar(A, variant=...)`):
"qdwh_hybrid", "express" (Polar Express; bf16 GEMMs for float32 data),
"express_warm" (Polar Express scheduled from a nearby factor U0), "zolo".
"""

import ctypes

import numpy as np

from . import _lib

EIGH_VARIANTS = ("cusolver", "jacobi", "qdwh", "qdwh_ns", "halko")
POLAR_VARIANTS = ("qdwh_hybrid", "express", "express_warm", "zolo")
GEMM_VARIANTS = ("fp64", "fp32", "tf32", "3xtf32", "bf16", "3xbf16", "fp16", "3xfp16", "fp16x9", "fp16x3_kahan",
                 "tf32x6", "ozaki_int8")
_BACKENDS = {0: "cpu", 1: "cuda", 2: "cuda_sm90"}


class Report(dict):
    """What a call did: variant, backend, iterations, expected_residual."""

    __getattr__ = dict.__getitem__


def _report(r):
    return Report(variant=r.variant.decode(), backend=_BACKENDS.get(r.backend, str(r.backend)),
                  iterations=int(r.iterations), expected_residual=float(r.expected_residual))


def _float_matrix(x, name, dtype=None):
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {a.ndim} dimension(s)")
    if dtype is None:
        dtype = np.float64 if a.dtype == np.float64 else np.float32
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def _desc(a):
    code = _lib.FL_DTYPE_F64 if a.dtype == np.float64 else _lib.FL_DTYPE_F32
    return _lib.host_array(a.ctypes.data, code, a.shape[0], a.shape[1])


def _ctx(device):
    return _lib.Context(device)


def gemm(A, B, variant=None, tol=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, C=None, moduli=0,
         device="auto", return_report=False):
    """alpha op(A) op(B) + beta C with a precision variant.

    variant: one of GEMM_VARIANTS, or None / "auto" (with `tol`: the fastest
    variant the cost model expects to reach it on this device; without: the
    data's own precision). moduli: Ozaki scheme II modulus count (0 = 16).
    A and B must share a dtype (float32 or float64; other inputs are
    converted to float32 when neither is float64). Returns C, or (C, report).
    """
    A = np.asarray(A)
    B = np.asarray(B)
    dt = np.float64 if (A.dtype == np.float64 or B.dtype == np.float64) else np.float32
    A = _float_matrix(A, "A", dt)
    B = _float_matrix(B, "B", dt)
    m = A.shape[1] if trans_a else A.shape[0]
    n = B.shape[0] if trans_b else B.shape[1]
    if C is None:
        if beta != 0:
            raise ValueError("beta != 0 needs C")
        out = np.empty((m, n), dtype=dt)
    else:
        out = np.array(C, dtype=dt, order="C", copy=True)
        if out.ndim != 2:
            raise ValueError(f"C must be a 2-D array, got {out.ndim} dimension(s)")
    if tol is not None and variant not in (None, "auto"):
        raise ValueError(f"give a variant or a tol, not both (variant={variant!r}, tol={tol!r})")
    ctx = _ctx(device)
    rep = _lib.LinalgReport()
    v = None if variant is None else str(variant).encode()
    ctx.call(_lib.lib.fl_gemm, ctx.ptr, v, float(tol or 0.0), int(moduli), int(bool(trans_a)),
             int(bool(trans_b)), float(alpha), ctypes.byref(_desc(A)), ctypes.byref(_desc(B)), float(beta),
             ctypes.byref(_desc(out)), ctypes.byref(rep))
    return (out, _report(rep)) if return_report else out


def ab_gemm(A, B, variant=None, tol=None, **kw):
    """A @ B with a precision variant (gemm without transposes)."""
    return gemm(A, B, variant, tol, **kw)


def cov_gemm(X, center=True, variant=None, *, device="auto", return_mean=False):
    """The scatter (X - mean)^T (X - mean) (or X^T X with center=False) in one
    pass, with shifted sums so that data far from the origin keeps its
    precision. Divide by n - 1 for the covariance. Returns S, or (S, mean)."""
    X = _float_matrix(X, "X")
    d = X.shape[1]
    S = np.empty((d, d), dtype=X.dtype)
    mean = np.empty((1, d), dtype=X.dtype)
    ctx = _ctx(device)
    v = None if variant is None else str(variant).encode()
    ctx.call(_lib.lib.fl_cov_gemm, ctx.ptr, v, ctypes.byref(_desc(X)), int(bool(center)), ctypes.byref(_desc(S)),
             ctypes.byref(_desc(mean)), None)
    return (S, mean[0]) if return_mean else S


def gram_gemm(X, variant=None, *, device="auto"):
    """The Gram matrix X X^T."""
    X = _float_matrix(X, "X")
    G = np.empty((X.shape[0], X.shape[0]), dtype=X.dtype)
    ctx = _ctx(device)
    v = None if variant is None else str(variant).encode()
    ctx.call(_lib.lib.fl_gram_gemm, ctx.ptr, v, ctypes.byref(_desc(X)), ctypes.byref(_desc(G)), None)
    return G


def cholqr2(X, *, device="auto", return_report=False):
    """Q, R of a tall X (m >= n) by CholeskyQR2 (shifted CholeskyQR3 when X is
    too ill-conditioned for it): Q has orthonormal columns, R is upper
    triangular, X = Q R."""
    X = _float_matrix(X, "X")
    m, n = X.shape
    Q = np.empty((m, n), dtype=X.dtype)
    R = np.empty((n, n), dtype=X.dtype)
    ctx = _ctx(device)
    rep = _lib.LinalgReport()
    ctx.call(_lib.lib.fl_cholqr2, ctx.ptr, ctypes.byref(_desc(X)), ctypes.byref(_desc(Q)), ctypes.byref(_desc(R)),
             ctypes.byref(rep))
    return (Q, R, _report(rep)) if return_report else (Q, R)


def split_basis(X, format="bf16", parts=2, *, device="auto"):
    """Splits float32 X into `parts` float32 arrays whose entries are exactly
    representable in `format` ("tf32", "bf16", "fp16") and sum to X (to the
    precision the parts keep): the operands of the split GEMM variants."""
    X = _float_matrix(X, "X", np.float32)
    outs = [np.empty_like(X) for _ in range(int(parts))] if int(parts) > 0 else [np.empty_like(X)]
    arr = (_lib.Array * len(outs))(*[_desc(o) for o in outs])
    ctx = _ctx(device)
    ctx.call(_lib.lib.fl_split_basis, ctx.ptr, ctypes.byref(_desc(X)), str(format).encode(), int(parts), arr)
    return outs


def eigh(A, variant=None, n_components=0, device="auto", *, return_report=False):
    """Eigenvalues (ascending) and eigenvectors of the symmetric A, as
    numpy.linalg.eigh: returns (w, V) with A @ V[:, j] = w[j] V[:, j].

    Only the lower triangle of A is read. variant: one of EIGH_VARIANTS or
    None ("cusolver"). n_components k: 0 = all n pairs, else the k largest
    (still ascending); "halko" computes only those (0 there means
    ceil(n / 10)) and finds the largest in magnitude, so A should be
    positive semi-definite. The randomized parts (halko, the qdwh splits)
    use the context's seed. Returns (w, V), or (w, V, report).
    """
    A = _float_matrix(A, "A")
    n = A.shape[0]
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square, got {A.shape[0]} x {A.shape[1]}")
    n_components = int(n_components)
    if variant == "halko" and n_components == 0:
        k = (n + 9) // 10
    else:
        k = n_components if 0 < n_components <= n else n
    w = np.empty((1, k), dtype=A.dtype)
    V = np.empty((n, k), dtype=A.dtype)
    ctx = _ctx(device)
    rep = _lib.LinalgReport()
    v = None if variant is None else str(variant).encode()
    ctx.call(_lib.lib.fl_eigh, ctx.ptr, v, ctypes.byref(_desc(A)), n_components, ctypes.byref(_desc(w)),
             ctypes.byref(_desc(V)), ctypes.byref(rep))
    return (w[0], V, _report(rep)) if return_report else (w[0], V)


def polar(A, variant=None, U0=None, device="auto", return_h=True, *, return_report=False):
    """Polar decomposition A = U H of A (m x n, m >= n): U with orthonormal
    columns, H symmetric positive semi-definite (n x n).

    variant: one of POLAR_VARIANTS or None ("qdwh_hybrid"). U0 (m x n):
    "express_warm" only, the polar factor of a nearby matrix (e.g. the
    previous one in a sequence); it sets the iteration's schedule, not its
    answer. Returns (U, H), or U alone with return_h=False; with
    return_report=True the report is appended.
    """
    A = _float_matrix(A, "A")
    m, n = A.shape
    U = np.empty((m, n), dtype=A.dtype)
    H = np.empty((n, n), dtype=A.dtype) if return_h else None
    U0d = None
    if U0 is not None:
        U0 = _float_matrix(U0, "U0", A.dtype)
        U0d = ctypes.byref(_desc(U0))
    ctx = _ctx(device)
    rep = _lib.LinalgReport()
    v = None if variant is None else str(variant).encode()
    ctx.call(_lib.lib.fl_polar, ctx.ptr, v, ctypes.byref(_desc(A)), U0d, ctypes.byref(_desc(U)),
             ctypes.byref(_desc(H)) if return_h else None, ctypes.byref(rep))
    out = (U, H) if return_h else (U,)
    if return_report:
        out = out + (_report(rep),)
    return out if len(out) > 1 else out[0]
