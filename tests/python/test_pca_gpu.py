"""flashlib.PCA's covariance_eigh path on a CUDA GPU against scikit-learn
(and the CPU backend). Skipped when flashlib.diagnose() reports no usable
GPU."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.decomposition import PCA as SkPCA  # noqa: E402

import flashlib  # noqa: E402

pytestmark = pytest.mark.gpu


def data(n, d, seed=0):
    """Offsets of 3, decaying scales and a rotation of the first columns:
    distinct eigenvalues, components that are not the axes."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) / (1.0 + 0.3 * np.arange(d))
    Q, _ = np.linalg.qr(rng.standard_normal((min(d, 4), min(d, 4))))
    X[:, : Q.shape[0]] = X[:, : Q.shape[0]] @ Q
    return (X + 3.0).astype(np.float32)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("n, d, k", [(4000, 37, 6), (6000, 96, 12), (3000, 129, 20), (20000, 8, 8)])
def test_pca_gpu_vs_sklearn(n, d, k):
    X = data(n, d)
    g = flashlib.PCA(n_components=k, svd_solver="covariance_eigh", device="cuda").fit(X)
    s = SkPCA(n_components=k, svd_solver="covariance_eigh").fit(X.astype(np.float64))
    # scikit-learn's signs (svd_flip) on both sides: compared directly
    assert rel(g.components_, s.components_) < 1e-3
    assert rel(g.explained_variance_, s.explained_variance_) < 1e-5
    assert rel(g.explained_variance_ratio_, s.explained_variance_ratio_) < 1e-5
    assert rel(g.singular_values_, s.singular_values_) < 1e-5
    assert rel(g.mean_, s.mean_) < 1e-6
    assert g.n_components_ == s.n_components_
    if k < d:
        assert abs(g.noise_variance_ - s.noise_variance_) <= 1e-4 * abs(s.noise_variance_)
    assert rel(g.transform(X), s.transform(X)) < 1e-4
    Y = g.transform(X)
    assert rel(g.inverse_transform(Y), s.inverse_transform(Y.astype(np.float64))) < 1e-5


def test_pca_gpu_matches_cpu_backend():
    X = data(50000, 64, seed=1)
    g = flashlib.PCA(n_components=10, svd_solver="covariance_eigh", device="cuda").fit(X)
    c = flashlib.PCA(n_components=10, svd_solver="covariance_eigh", device="cpu").fit(X)
    for name, tol in (("components_", 1e-3), ("explained_variance_", 1e-5), ("singular_values_", 1e-5),
                      ("mean_", 1e-6)):
        assert rel(getattr(g, name), getattr(c, name)) < tol, name


def test_pca_gpu_fraction_and_large_mean():
    # a mean 1e4 times the spread: the shifted pass keeps the variance
    rng = np.random.default_rng(2)
    X = (1e4 + rng.standard_normal((20000, 20)) * (1.0 + np.arange(20))).astype(np.float32)
    g = flashlib.PCA(n_components=0.8, svd_solver="covariance_eigh", device="cuda").fit(X)
    s = SkPCA(n_components=0.8, svd_solver="covariance_eigh").fit(X.astype(np.float64))
    assert g.n_components_ == s.n_components_
    assert rel(g.explained_variance_, s.explained_variance_) < 1e-4


def test_cuda_forced_other_solvers_unsupported():
    X = data(2000, 20)
    with pytest.raises(flashlib.UnsupportedError, match="no CUDA path"):
        flashlib.PCA(n_components=3, svd_solver="full", device="cuda").fit(X)
    with pytest.raises(flashlib.UnsupportedError, match="no CUDA path"):
        flashlib.TruncatedSVD(n_components=3, algorithm="arpack", device="cuda").fit(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_randomized_matches_exact(dtype):
    """The randomized solvers on the GPU (fli_la over cuBLAS/cuSOLVER)
    against the exact decomposition of the same data."""
    rng = np.random.default_rng(5)
    X = (rng.standard_normal((20000, 64)) * np.geomspace(10, 0.1, 64) + 3.0).astype(dtype)
    g = flashlib.PCA(n_components=8, svd_solver="randomized", random_state=0, device="cuda").fit(X)
    s = SkPCA(n_components=8, svd_solver="full").fit(X.astype(np.float64))
    comp = g.components_ * np.sign(np.sum(g.components_ * s.components_, axis=1, keepdims=True))
    assert np.max(np.abs(comp - s.components_)) < 1e-3
    assert rel(g.explained_variance_, s.explained_variance_) < 1e-4
    assert rel(g.explained_variance_ratio_, s.explained_variance_ratio_) < 1e-4
    t = flashlib.TruncatedSVD(n_components=8, random_state=0, device="cuda").fit(X)
    c = flashlib.TruncatedSVD(n_components=8, random_state=0, device="cpu").fit(X)
    assert rel(t.singular_values_, c.singular_values_) < 1e-4
    assert rel(t.explained_variance_, c.explained_variance_) < 1e-3
