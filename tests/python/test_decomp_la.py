"""The randomized PCA / TruncatedSVD solver written over flashlib's dense
operations (the GPU's path) run on the CPU's implementation of them
(FL_DECOMP_LA=1), against the CPU backend's own randomized solver and
scikit-learn. Same data, same subspace: components agree up to sign."""
import os

import numpy as np
import pytest
from sklearn.decomposition import PCA as SkPCA
from sklearn.decomposition import TruncatedSVD as SkTSVD

import flashlib
from flashlib import _lib


def data(n, d, dtype, offset=5.0, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.geomspace(10.0, 0.1, d)  # a decaying spectrum: randomized converges
    X = rng.standard_normal((n, d)) * scales + offset * (1 + np.arange(d) / d)
    return X.astype(dtype)


@pytest.fixture
def la_path(monkeypatch):
    # contexts read FL_DECOMP_LA when created, and estimators share cached
    # ones: drop the cache whenever the variable changes
    _lib.release_shared_contexts()
    monkeypatch.setenv("FL_DECOMP_LA", "1")
    yield
    monkeypatch.delenv("FL_DECOMP_LA")
    _lib.release_shared_contexts()


def align(a, b):
    return a * np.sign(np.sum(a * b, axis=1, keepdims=True))


def err(g, ref):
    return np.max(np.abs(align(g.components_, ref.components_) - ref.components_))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pca_randomized_la_matches(la_path, dtype):
    """Randomized is an approximation: against the exact PCA the la path's
    error is that of the CPU backend's randomized solver (another random
    start), and both are small on a decaying spectrum."""
    X = data(3000, 40, dtype)
    kw = dict(n_components=5, svd_solver="randomized", random_state=0, device="cpu")
    g = flashlib.PCA(**kw).fit(X)
    os.environ.pop("FL_DECOMP_LA")
    _lib.release_shared_contexts()
    c = flashlib.PCA(**kw).fit(X)
    os.environ["FL_DECOMP_LA"] = "1"
    _lib.release_shared_contexts()
    s = SkPCA(n_components=5, svd_solver="full").fit(X.astype(np.float64))
    e_la, e_cpu = err(g, s), err(c, s)
    assert e_la < 3 * e_cpu + 1e-5 and e_la < 1e-3, (e_la, e_cpu)
    rt = 1e-6 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(g.explained_variance_, s.explained_variance_, rtol=rt)
    np.testing.assert_allclose(g.explained_variance_ratio_, s.explained_variance_ratio_, rtol=rt)
    np.testing.assert_allclose(g.singular_values_, s.singular_values_, rtol=rt)
    # a float32 mean of 3000 rows through BLAS: ~sqrt(n) u = 3e-6 relative, the
    # kernel's summation order decides where in that range (2.5e-6 seen on a 16-core host)
    np.testing.assert_allclose(g.mean_, s.mean_, rtol=1e-6 if dtype == np.float64 else 1e-5)
    np.testing.assert_allclose(g.noise_variance_, s.noise_variance_, rtol=1e-3)
    np.testing.assert_allclose(np.abs(g.transform(X[:50])), np.abs(s.transform(X[:50].astype(np.float64))),
                               rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_truncated_svd_la_matches(la_path, dtype):
    X = data(2500, 30, dtype, offset=0.5, seed=1)
    g = flashlib.TruncatedSVD(n_components=4, random_state=0, device="cpu").fit(X)
    s = SkTSVD(n_components=4, algorithm="arpack").fit(X.astype(np.float64))
    assert err(g, s) < 1e-3
    rt = 1e-6 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(g.singular_values_, s.singular_values_, rtol=rt)
    np.testing.assert_allclose(g.explained_variance_, s.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(g.explained_variance_ratio_, s.explained_variance_ratio_, rtol=1e-4)


def test_la_path_far_from_origin(la_path):
    """A mean 1e4 times the spread: the shifted centring keeps the variance."""
    rng = np.random.default_rng(3)
    X = (1e4 + rng.standard_normal((4000, 12)) * np.geomspace(3, 0.3, 12)).astype(np.float32)
    g = flashlib.PCA(n_components=3, svd_solver="randomized", random_state=0, device="cpu").fit(X)
    s = SkPCA(n_components=3, svd_solver="full").fit(X.astype(np.float64))
    np.testing.assert_allclose(g.explained_variance_, s.explained_variance_, rtol=1e-3)
    np.testing.assert_allclose(g.explained_variance_ratio_, s.explained_variance_ratio_, rtol=1e-3)


def test_la_path_constant_and_rank_deficient(la_path):
    """All-constant columns centre to zero: the range finder's basis comes
    from a Householder QR then, and the fit is finite."""
    rng = np.random.default_rng(4)
    X = np.ones((50, 6)) * np.arange(6)
    g = flashlib.PCA(n_components=2, svd_solver="randomized", random_state=0, device="cpu").fit(X)
    assert np.all(np.isfinite(g.components_)) and np.all(g.explained_variance_ == 0)
    Y = rng.standard_normal((200, 2)) @ rng.standard_normal((2, 8))  # rank 2 < k + oversamples
    g = flashlib.TruncatedSVD(n_components=3, random_state=0, device="cpu").fit(Y)
    s = np.linalg.svd(Y, compute_uv=False)
    np.testing.assert_allclose(g.singular_values_[:2], s[:2], rtol=1e-10)
    assert g.singular_values_[2] < 1e-10 * s[0]
