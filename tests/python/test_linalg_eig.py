"""flashlib.linalg.eigh and polar against numpy (float64 references:
numpy.linalg.eigh, and the polar factor U_s V_s^T from numpy.linalg.svd),
every variant in float64 and float32; bad input raises FlashlibError with a
message that says what was wrong."""
import numpy as np
import pytest

import flashlib
from flashlib import linalg

EIGH = ("cusolver", "jacobi", "qdwh", "qdwh_ns")


def sym(n, seed=0):
    g = np.random.default_rng(seed).standard_normal((n, n))
    return (g + g.T) / 2


def with_condition(m, n, cond, seed=1):
    rng = np.random.default_rng(seed)
    P, _ = np.linalg.qr(rng.standard_normal((m, n)))
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (P * np.logspace(0, -np.log10(cond), n)) @ Q.T


def tol(dtype, n):
    u = 1.1e-16 if dtype == np.float64 else 6e-8
    return 200 * u * np.sqrt(n + 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", EIGH)
@pytest.mark.parametrize("n", [1, 2, 17, 300])
def test_eigh_matches_numpy(variant, dtype, n):
    A = sym(n).astype(dtype)
    w, V, rep = linalg.eigh(A, variant, device="cpu", return_report=True)
    assert w.dtype == dtype and V.shape == (n, n) and rep.variant == variant and rep.backend == "cpu"
    A64 = A.astype(np.float64)
    ref = np.linalg.eigh(A64)[0]
    scale = np.abs(ref).max()
    t = tol(dtype, n)
    assert np.all(np.diff(w) >= 0)
    assert np.abs(w - ref).max() / scale <= t
    V64 = V.astype(np.float64)
    assert np.linalg.norm(A64 @ V64 - V64 * w) / np.linalg.norm(A64) <= t
    assert np.linalg.norm(V64.T @ V64 - np.eye(n)) <= t * np.sqrt(n + 1)


def test_eigh_reads_the_lower_triangle_and_top_k():
    A = sym(50, seed=3)
    B = np.tril(A) + np.triu(np.full((50, 50), 1e30), 1)
    ref = np.linalg.eigh(A)[0]
    for v in EIGH:
        w, V = linalg.eigh(B, v, n_components=4, device="cpu")
        assert w.shape == (4,) and V.shape == (50, 4)
        np.testing.assert_allclose(w, ref[-4:], rtol=0, atol=1e-12 * np.abs(ref).max())
        np.testing.assert_allclose(A @ V, V * w, atol=1e-11)


def test_halko_top_k():
    rng = np.random.default_rng(5)
    Q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    lam = 0.7 ** np.arange(200)[::-1]
    A = (Q * lam) @ Q.T
    w, V, rep = linalg.eigh(A, "halko", n_components=8, device="cpu", return_report=True)
    assert rep.iterations == 4
    np.testing.assert_allclose(w, lam[-8:], rtol=1e-9)
    assert np.linalg.norm(A @ V - V * w) / np.linalg.norm(A) < 1e-6
    w0, V0 = linalg.eigh(A, "halko", device="cpu")  # 0: ceil(n / 10) = 20
    assert w0.shape == (20,) and V0.shape == (200, 20)


def polar_ref(A):
    Us, _, Vt = np.linalg.svd(A.astype(np.float64), full_matrices=False)
    return Us @ Vt


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", linalg.POLAR_VARIANTS)
@pytest.mark.parametrize("shape", [(1, 1), (17, 17), (120, 80)])
def test_polar_matches_svd(variant, dtype, shape):
    m, n = shape
    cond = 100.0
    A = with_condition(m, n, cond).astype(dtype)
    U0 = None
    if variant == "express_warm":
        U0 = polar_ref(A + 1e-3 * np.random.default_rng(2).standard_normal(A.shape) / np.sqrt(m))
    U, H, rep = linalg.polar(A, variant, U0=U0, device="cpu", return_report=True)
    assert U.dtype == dtype and U.shape == (m, n) and H.shape == (n, n) and rep.variant == variant
    A64, U64, H64 = (x.astype(np.float64) for x in (A, U, H))
    u = 1.1e-16 if dtype == np.float64 else 6e-8
    bf16 = dtype == np.float32 and variant.startswith("express")
    assert np.linalg.norm(U64.T @ U64 - np.eye(n)) <= 200 * u * (n + 1)
    t_res = 2.0**-8 * cond / 8 if bf16 else 200 * u * np.sqrt(n + 1)
    t_u = 2.0**-8 * cond / 8 if bf16 else 200 * u * cond * np.sqrt(n + 1)
    assert np.linalg.norm(A64 - U64 @ H64) / np.linalg.norm(A64) <= t_res
    assert np.linalg.norm(U64 - polar_ref(A)) / np.sqrt(n) <= t_u
    assert np.array_equal(H, H.T)
    assert np.linalg.eigvalsh(H64).min() >= -1e-2 * np.abs(H64).max()


def test_polar_without_h():
    A = with_condition(30, 20, 10.0)
    U = linalg.polar(A, return_h=False, device="cpu")
    np.testing.assert_allclose(U, polar_ref(A), atol=1e-12)


def test_bad_input():
    A = sym(4)
    with pytest.raises(flashlib.FlashlibError, match="unknown variant"):
        linalg.eigh(A, "lanczos", device="cpu")
    with pytest.raises(flashlib.FlashlibError, match="n_components=5"):
        linalg.eigh(A, "qdwh", n_components=5, device="cpu")
    with pytest.raises(ValueError, match="square"):
        linalg.eigh(np.ones((3, 4)), device="cpu")
    B = A.copy()
    B[2, 1] = np.nan
    with pytest.raises(flashlib.FlashlibError, match="NaN"):
        linalg.eigh(B, device="cpu")
    with pytest.raises(flashlib.FlashlibError, match="m >= n"):
        linalg.polar(np.ones((3, 4)), device="cpu")
    with pytest.raises(flashlib.FlashlibError, match="needs U0"):
        linalg.polar(A, "express_warm", device="cpu")
    with pytest.raises(flashlib.FlashlibError, match="U0 is f64 4 x 3"):
        linalg.polar(A, "express_warm", U0=np.ones((4, 3)), device="cpu")
    with pytest.raises(flashlib.FlashlibError, match="unknown variant"):
        linalg.polar(A, "newton", device="cpu")


@pytest.mark.parametrize("variant", ["qdwh", "qdwh_ns"])
def test_divide_and_conquer_low_rank(variant):
    # 299 zero eigenvalues: after the first split the zero block is within
    # rounding of the whole matrix's scale and goes straight to syevd
    # (one split's polar steps, not a cascade of splits of rounding noise)
    x = np.arange(300.0)
    A = np.outer(x, x)
    w, V, rep = linalg.eigh(A, variant, device="cpu", return_report=True)
    ref = np.linalg.eigvalsh(A)
    assert np.abs(w - ref).max() <= 1e-14 * ref[-1]
    assert np.linalg.norm(A @ V - V * w) <= 1e-13 * np.linalg.norm(A)
    assert rep.iterations <= (6 if variant == "qdwh" else 40)
