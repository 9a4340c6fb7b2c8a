"""flashlib.linalg against numpy in float64: the GEMM ladder's errors
ordered as their arithmetic says, the tolerance rule, cov/gram products,
CholeskyQR2 and split_basis; bad input raises and leaves outputs alone."""
import numpy as np
import pytest

import flashlib
from flashlib import linalg


@pytest.fixture(scope="module")
def ab():
    rng = np.random.default_rng(0)
    return rng.standard_normal((40, 300)), rng.standard_normal((300, 30))


def rel(c, ref):
    return np.linalg.norm(c - ref) / np.linalg.norm(ref)


def test_every_variant_float32(ab):
    A, B = (x.astype(np.float32) for x in ab)
    ref = A.astype(np.float64) @ B.astype(np.float64)
    errs = {}
    for v in linalg.GEMM_VARIANTS:
        C, rep = linalg.gemm(A, B, v, device="cpu", return_report=True)
        assert C.dtype == np.float32 and C.shape == (40, 30)
        assert rep.variant == v and rep.backend == "cpu"
        errs[v] = rel(C, ref)
    # one rounded product keeps ~2^-8 (bf16) / 2^-11 (tf32, fp16) ...
    assert 1e-4 < errs["bf16"] < 2e-2
    assert 1e-5 < errs["tf32"] < 2e-3 and 1e-5 < errs["fp16"] < 2e-3
    # ... and splitting buys it back
    assert errs["3xtf32"] < errs["tf32"] / 50
    assert errs["3xbf16"] < errs["bf16"] / 50
    assert errs["3xfp16"] < errs["fp16"] / 50
    for v in ("fp32", "3xtf32", "fp16x9", "fp64", "ozaki_int8", "tf32x6"):
        assert errs[v] < 1e-6, (v, errs[v])


def test_float64_variants_reach_double(ab):
    A, B = ab
    ref = A @ B
    assert rel(linalg.gemm(A, B, "fp64", device="cpu"), ref) < 1e-14
    assert rel(linalg.gemm(A, B, "ozaki_int8", device="cpu"), ref) < 1e-14
    e32 = rel(linalg.gemm(A, B, "fp32", device="cpu"), ref)
    assert 1e-9 < e32 < 1e-5  # float64 data through float32 products
    e8 = rel(linalg.gemm(A, B, "ozaki_int8", moduli=8, device="cpu"), ref)
    assert 1e-13 < e8 < 1e-5  # fewer moduli, fewer bits


def test_transposes_alpha_beta(ab):
    A, B = ab
    C0 = np.random.default_rng(1).standard_normal((300, 300))
    C = linalg.gemm(A, A, "fp64", trans_a=True, alpha=2.0, beta=-1.0, C=C0, device="cpu")
    np.testing.assert_allclose(C, 2 * A.T @ A - C0, rtol=1e-12, atol=1e-10)
    G = linalg.gemm(B, B, "fp64", trans_b=True, device="cpu")
    np.testing.assert_allclose(G, B @ B.T, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(linalg.ab_gemm(A, B, "fp64", device="cpu"), A @ B, rtol=1e-12, atol=1e-11)


def test_tolerance_picks_accurate_enough(ab):
    A, B = (x.astype(np.float32) for x in ab)
    ref = A.astype(np.float64) @ B.astype(np.float64)
    for tol in (1e-2, 1e-4, 1e-6):
        C, rep = linalg.gemm(A, B, tol=tol, device="cpu", return_report=True)
        assert 0 < rep.expected_residual <= tol
        assert rel(C, ref) < 10 * tol  # the model's RMS residual, with slack
    with pytest.raises(flashlib.InvalidArgumentError, match="tol"):
        linalg.gemm(A, B, tol=1e-40, device="cpu")


def test_gemm_bad_input(ab):
    A, B = (x.astype(np.float32) for x in ab)
    with pytest.raises(flashlib.InvalidArgumentError, match="inner dimensions"):
        linalg.gemm(A, A, device="cpu")
    with pytest.raises(flashlib.InvalidArgumentError, match="unknown variant"):
        linalg.gemm(A, B, "int4", device="cpu")
    bad = A.copy()
    bad[0, 0] = np.inf
    with pytest.raises(flashlib.InvalidArgumentError):
        linalg.gemm(bad, B, device="cpu")
    with pytest.raises(ValueError, match="not both"):
        linalg.gemm(A, B, "tf32", tol=1e-3, device="cpu")


def test_cov_and_gram():
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((2000, 6)) + 500.0).astype(np.float32)
    Xd = X.astype(np.float64)
    S, mean = linalg.cov_gemm(X, device="cpu", return_mean=True)
    ref = (Xd - Xd.mean(0)).T @ (Xd - Xd.mean(0))
    assert rel(S, ref) < 1e-5  # a plain float32 X^T X - n m m^T loses everything here
    np.testing.assert_allclose(mean, Xd.mean(0), rtol=1e-6)
    # elementwise against np.cov: float32 sums are off by a few 1e-6 of the matrix's scale, which is
    # 3e-4 of its smallest off-diagonal entries on some BLAS kernels (a 16-core host): hence atol
    cv = np.cov(Xd, rowvar=False)
    np.testing.assert_allclose(S / (len(X) - 1), cv, rtol=1e-4, atol=1e-5 * np.abs(cv).max())
    np.testing.assert_allclose(linalg.cov_gemm(Xd, center=False, device="cpu"), Xd.T @ Xd, rtol=1e-12)
    np.testing.assert_allclose(linalg.gram_gemm(Xd[:50], device="cpu"), Xd[:50] @ Xd[:50].T, rtol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 1e-5)])
def test_cholqr2(dtype, tol):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((500, 20)).astype(dtype)
    Q, R, rep = linalg.cholqr2(X, device="cpu", return_report=True)
    assert np.linalg.norm(Q.T @ Q - np.eye(20)) < tol * 10
    assert rel(Q @ R, X) < tol
    assert np.all(np.tril(R, -1) == 0)
    assert rep.iterations == 2
    # ill-conditioned (1e10 in float64): the shifted pass runs first
    if dtype == np.float64:
        U, _ = np.linalg.qr(rng.standard_normal((500, 20)))
        V, _ = np.linalg.qr(rng.standard_normal((20, 20)))
        Y = U @ np.diag(np.logspace(0, -10, 20)) @ V.T
        Q, R, rep = linalg.cholqr2(Y, device="cpu", return_report=True)
        assert rep.iterations == 3
        assert np.linalg.norm(Q.T @ Q - np.eye(20)) < 1e-12
        assert rel(Q @ R, Y) < 1e-13
    with pytest.raises(flashlib.InvalidArgumentError, match="m >= n"):
        linalg.cholqr2(X.T, device="cpu")
    with pytest.raises(flashlib.NumericalError):
        linalg.cholqr2(np.zeros((10, 3)), device="cpu")


def test_split_basis():
    x = np.random.default_rng(4).standard_normal((7, 9)).astype(np.float32)
    for fmt, bits in (("tf32", 11), ("bf16", 8), ("fp16", 11)):
        parts = linalg.split_basis(x, fmt, 2, device="cpu")
        for p in parts:  # each entry has at most `bits` significant bits
            m, _ = np.frexp(p.astype(np.float64))
            assert np.all(np.ldexp(m, bits) == np.round(np.ldexp(m, bits)))
        # two parts keep ~2 x bits; fp16's second part is floored by its
        # subnormal quantum 2^-24
        floor = 2.0 ** -25 if fmt == "fp16" else 0.0
        assert np.all(np.abs(parts[0] + parts[1] - x) <= np.abs(x) * 2.0 ** (-2 * bits + 2) + floor)
    with pytest.raises(flashlib.InvalidArgumentError, match="format"):
        linalg.split_basis(x, "fp4", 1, device="cpu")
