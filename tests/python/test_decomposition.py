"""flashlib.PCA and flashlib.TruncatedSVD against scikit-learn: every
solver, whitening, n_components as a fraction, the inverse round trip,
scores, pickling and bad input."""

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn import decomposition as skd  # noqa: E402

import flashlib  # noqa: E402


def _data(n=400, d=16, dtype=np.float64, seed=0):
    rng = np.random.RandomState(seed)
    scales = 0.7 ** np.arange(d)
    X = rng.randn(n, d) * scales @ rng.randn(d, d) + 50.0
    return X.astype(dtype)


TOL = {np.float64: 1e-8, np.float32: 2e-3}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["full", "covariance_eigh", "arpack", "randomized", "auto"])
@pytest.mark.parametrize("whiten", [False, True])
def test_pca_matches_sklearn(solver, dtype, whiten):
    X = _data(dtype=dtype)
    kw = dict(n_components=5, svd_solver=solver, whiten=whiten, random_state=0)
    ours = flashlib.PCA(device="cpu", **kw).fit(X)
    ref = skd.PCA(**kw).fit(X)
    tol = TOL[dtype] * (50 if solver == "randomized" else 1)
    assert ours.components_.dtype == X.dtype and ours.components_.shape == (5, 16)
    # scikit-learn's sign convention: equal, not only up to sign
    np.testing.assert_allclose(ours.components_, ref.components_, atol=tol * 10)
    ev = ref.explained_variance_
    np.testing.assert_allclose(ours.explained_variance_, ev, rtol=tol * 10, atol=tol * ev[0])
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, atol=tol * 10)
    np.testing.assert_allclose(ours.singular_values_, ref.singular_values_, rtol=tol * 10)
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-6)
    assert ours.noise_variance_ == pytest.approx(ref.noise_variance_, rel=tol * 100, abs=float(tol * ev[0]))
    assert ours.n_components_ == ref.n_components_ and ours.n_samples_ == ref.n_samples_
    Y, Yr = ours.transform(X), ref.transform(X)
    assert Y.dtype == X.dtype
    np.testing.assert_allclose(Y, Yr, atol=tol * 100 * np.abs(Yr).max())
    np.testing.assert_allclose(ours.inverse_transform(Y), ref.inverse_transform(Yr),
                               atol=tol * 100 * np.abs(X).max())
    if dtype == np.float64:
        np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-6)
        assert ours.score(X) == pytest.approx(ref.score(X), rel=1e-6)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.999])
@pytest.mark.parametrize("solver", ["full", "covariance_eigh"])
def test_pca_fraction(fraction, solver):
    X = _data()
    ours = flashlib.PCA(fraction, svd_solver=solver, device="cpu").fit(X)
    ref = skd.PCA(fraction, svd_solver=solver).fit(X)
    assert ours.n_components_ == ref.n_components_
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-8)


def test_pca_none_and_round_trip():
    X = _data(n=60, d=8)
    p = flashlib.PCA(device="cpu").fit(X)
    assert p.n_components_ == 8 and p.noise_variance_ == 0.0
    np.testing.assert_allclose(p.inverse_transform(p.transform(X)), X, atol=1e-9)
    np.testing.assert_allclose(p.get_covariance(), np.cov(X.T), rtol=1e-8, atol=1e-10)


def test_pca_auto_rule_follows_sklearn():
    # tall (covariance_eigh), small (full), wide with few components (randomized)
    for shape, k in [((2000, 20), 3), ((300, 200), 150), ((60, 700), 5)]:
        X = np.random.RandomState(1).randn(*shape)
        ref = skd.PCA(k, random_state=0).fit(X)
        route = flashlib.route("pca", shape, {"n_components": k}, device="cpu")
        assert route["variant"] == ref._fit_svd_solver, (shape, route)


@pytest.mark.parametrize("algorithm", ["randomized", "arpack"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_truncated_svd_matches_sklearn(algorithm, dtype):
    X = _data(dtype=dtype) - 50.0 + np.linspace(0, 3, 16).astype(dtype)
    ours = flashlib.TruncatedSVD(4, algorithm=algorithm, random_state=0, device="cpu").fit(X)
    ref = skd.TruncatedSVD(4, algorithm=algorithm, random_state=0).fit(X)
    tol = TOL[dtype] * (1e3 if algorithm == "randomized" else 10)
    np.testing.assert_allclose(ours.components_, ref.components_, atol=tol)
    np.testing.assert_allclose(ours.singular_values_, ref.singular_values_, rtol=tol)
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=tol)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=tol)
    np.testing.assert_allclose(ours.transform(X), ref.transform(X), atol=tol * np.abs(X).max() * 10)
    np.testing.assert_allclose(ours.fit_transform(X), ref.transform(X), atol=tol * np.abs(X).max() * 10)


def test_constant_and_rank_deficient_columns_are_finite():
    rng = np.random.RandomState(0)
    a = rng.randn(50, 1)
    X = np.hstack([np.full((50, 1), 3.0), a, a, 2 * a, rng.randn(50, 1)])
    for solver in ["full", "covariance_eigh", "randomized", "arpack"]:
        p = flashlib.PCA(3, svd_solver=solver, whiten=True, random_state=0, device="cpu").fit(X)
        assert np.isfinite(p.components_).all() and np.isfinite(p.explained_variance_).all()
        assert np.isfinite(p.transform(X)).all()
    Z = np.zeros((10, 3))
    p = flashlib.PCA(device="cpu").fit(Z)
    assert np.isfinite(p.explained_variance_ratio_).all()


def test_pickle_and_refit_unchanged_on_error():
    X = _data(dtype=np.float32)
    p = flashlib.PCA(3, device="cpu").fit(X)
    q = pickle.loads(pickle.dumps(p))
    np.testing.assert_array_equal(p.transform(X), q.transform(X))
    before = p.components_.copy()
    with pytest.raises(ValueError, match="NaN"):
        p.fit(np.full((5, 16), np.nan))
    np.testing.assert_array_equal(p.components_, before)


@pytest.mark.parametrize("kw, match", [
    (dict(n_components=17), "n_components=17: must be in \\[1, min\\(n_samples=400, n_features=16\\)\\]"),
    (dict(n_components=0.5, svd_solver="randomized"), "variance fraction"),
    (dict(n_components=1.5), "a float must be in \\(0, 1\\)"),
    (dict(n_components=16, svd_solver="arpack"), "min\\(n_samples=400, n_features=16\\) - 1"),
    (dict(svd_solver="lapack"), "must be one of"),
])
def test_pca_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        flashlib.PCA(device="cpu", **kw).fit(_data())


def test_bad_input():
    p = flashlib.PCA(2, device="cpu").fit(_data())
    with pytest.raises(ValueError, match="16 features"):
        p.transform(np.zeros((3, 5)))
    X = _data()
    X[3, 4] = np.inf
    with pytest.raises(ValueError):
        flashlib.PCA(device="cpu").fit(X)
    with pytest.raises(ValueError, match="n_components=20"):
        flashlib.TruncatedSVD(20, device="cpu").fit(_data())


def test_cuda_device_other_solvers_say_no_cuda_path():
    """Only covariance_eigh and randomized run on the GPU: the exact solvers
    say so, GPU or not."""
    with pytest.raises(flashlib.UnsupportedError, match="no CUDA path yet"):
        flashlib.PCA(svd_solver="full", device="cuda").fit(_data())
    with pytest.raises(flashlib.UnsupportedError, match="no CUDA path yet"):
        flashlib.TruncatedSVD(3, algorithm="arpack", device="cuda").fit(_data())
    if flashlib.diagnose(probe=False)["cuda_device_count"] == 0:
        with pytest.raises(flashlib.NoDeviceError):  # it has one: no GPU here
            flashlib.TruncatedSVD(3, device="cuda").fit(_data())
