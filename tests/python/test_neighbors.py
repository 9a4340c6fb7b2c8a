"""flashlib.NearestNeighbors, KNeighborsClassifier and KNeighborsRegressor on
the CPU against scikit-learn: every metric with a tie-aware comparison,
self-exclusion, the graphs, radius search, the classifiers, pickling and bad
input. The GPU versions of these checks are in test_neighbors_gpu.py."""

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn import neighbors as skn  # noqa: E402
from sklearn.datasets import make_blobs, make_classification, make_regression  # noqa: E402

import flashlib  # noqa: E402
from flashlib._base import c_param_names, python_param_names  # noqa: E402

METRICS = [
    ("minkowski", 2),
    ("euclidean", 2),
    ("sqeuclidean", 2),
    ("cosine", 2),
    ("manhattan", 2),
    ("minkowski", 1),
    ("minkowski", 3),
]


def brute(X, Q, metric, p):
    """float64 reference distances, n_q x n."""
    X, Q = X.astype(np.float64), Q.astype(np.float64)
    diff = Q[:, None, :] - X[None, :, :]
    if metric in ("euclidean",) or (metric == "minkowski" and p == 2):
        return np.sqrt((diff ** 2).sum(-1))
    if metric == "sqeuclidean":
        return (diff ** 2).sum(-1)
    if metric == "manhattan" or (metric == "minkowski" and p == 1):
        return np.abs(diff).sum(-1)
    if metric == "minkowski":
        return (np.abs(diff) ** p).sum(-1) ** (1.0 / p)
    if metric == "cosine":
        nx = np.linalg.norm(X, axis=1)
        nq = np.linalg.norm(Q, axis=1)
        nx[nx == 0] = 1
        nq[nq == 0] = 1
        return 1.0 - (Q @ X.T) / nq[:, None] / nx[None, :]
    if metric in ("inner_product", "dot"):
        return Q @ X.T
    raise AssertionError(metric)


def check_tie_aware(dist, ind, ref, k, rtol, largest=False, exclude_self=False):
    """dist/ind (n_q x k) are a correct k-NN answer for the reference
    distance matrix ref: each returned distance equals the reference distance
    of its index, rows are sorted, and the k-th distance equals the reference
    k-th order statistic (so any index set that differs does so only among
    ties). Ties are ordered by index where the distances are equal."""
    ref = ref.copy()
    if exclude_self:
        np.fill_diagonal(ref, np.inf if not largest else -np.inf)
    n_q = ref.shape[0]
    finite = np.where(np.isfinite(ref), np.abs(ref), 0.0)
    scale = np.maximum(finite.max(axis=1, keepdims=True), 1e-12)
    got = np.take_along_axis(ref, ind, axis=1)
    np.testing.assert_allclose(dist, got, rtol=rtol, atol=rtol * scale.max())
    srt = -np.sort(-ref, axis=1)[:, :k] if largest else np.sort(ref, axis=1)[:, :k]
    np.testing.assert_allclose(got, srt, rtol=rtol, atol=rtol * scale.max())
    for i in range(n_q):
        assert len(set(ind[i])) == k
        if exclude_self:
            assert i not in set(ind[i])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 9))
    Q = rng.normal(size=(80, 9))
    return X, Q


@pytest.mark.parametrize("metric,p", METRICS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kneighbors_matches_reference(data, metric, p, dtype):
    X, Q = (a.astype(dtype) for a in data)
    k = 7
    nn = flashlib.NearestNeighbors(n_neighbors=k, metric=metric, p=p, device="cpu").fit(X)
    dist, ind = nn.kneighbors(Q)
    assert dist.shape == (80, k) and ind.shape == (80, k)
    assert ind.dtype == np.int64 and dist.dtype == dtype
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    check_tie_aware(dist, ind, brute(X, Q, metric, p), k, rtol)
    if metric != "sqeuclidean":  # scikit-learn agrees with the reference too
        sk = skn.NearestNeighbors(n_neighbors=k, metric=metric, p=p, algorithm="brute").fit(X)
        sd, si = sk.kneighbors(Q)
        np.testing.assert_allclose(dist, sd, rtol=rtol, atol=rtol)
        assert (ind == si).mean() > 0.99  # random data: ties are rare


def test_inner_product_largest_first(data):
    X, Q = data
    nn = flashlib.NearestNeighbors(n_neighbors=5, metric="inner_product", device="cpu").fit(X)
    dist, ind = nn.kneighbors(Q)
    check_tie_aware(dist, ind, brute(X, Q, "inner_product", 2), 5, 1e-9, largest=True)
    assert np.all(np.diff(dist, axis=1) <= 0)
    d2, i2 = flashlib.NearestNeighbors(n_neighbors=5, metric="dot", device="cpu").fit(X).kneighbors(Q)
    np.testing.assert_array_equal(ind, i2)


@pytest.mark.parametrize("metric,p", [("euclidean", 2), ("cosine", 2), ("manhattan", 2)])
def test_self_exclusion_matches_sklearn(data, metric, p):
    X, _ = data
    nn = flashlib.NearestNeighbors(n_neighbors=4, metric=metric, device="cpu").fit(X)
    dist, ind = nn.kneighbors()
    check_tie_aware(dist, ind, brute(X, X, metric, p), 4, 1e-9, exclude_self=True)
    sd, si = skn.NearestNeighbors(n_neighbors=4, metric=metric).fit(X).kneighbors()
    np.testing.assert_allclose(dist, sd, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(ind, si)


def test_ties_ordered_by_index():
    # a lattice: many exactly equal distances
    X = np.array([[i, j] for i in range(6) for j in range(6)], dtype=np.float64)
    X = np.vstack([X, X[:5]])  # exact duplicates at the end
    nn = flashlib.NearestNeighbors(n_neighbors=9, device="cpu").fit(X)
    dist, ind = nn.kneighbors(X)
    for i in range(len(X)):
        for c in range(8):
            if dist[i, c] == dist[i, c + 1]:
                assert ind[i, c] < ind[i, c + 1]
    check_tie_aware(dist, ind, brute(X, X, "euclidean", 2), 9, 1e-12)
    # deterministic: the same answer twice, and with one thread
    d2, i2 = nn.kneighbors(X)
    np.testing.assert_array_equal(ind, i2)


def test_k_limits(data):
    X, Q = data
    X = X[:50]
    nn = flashlib.NearestNeighbors(n_neighbors=1, device="cpu").fit(X)
    d1, i1 = nn.kneighbors(Q)
    np.testing.assert_array_equal(i1[:, 0], brute(X, Q, "euclidean", 2).argmin(axis=1))
    dall, iall = nn.kneighbors(Q, n_neighbors=50)  # k = n_samples: every row, sorted
    for row in iall:
        assert sorted(row) == list(range(50))
    assert np.all(np.diff(dall, axis=1) >= 0)
    with pytest.raises(ValueError, match="n_neighbors"):
        nn.kneighbors(Q, n_neighbors=51)
    with pytest.raises(ValueError, match="n_neighbors"):
        nn.kneighbors(None, n_neighbors=50)  # the point itself is left out: at most 49
    _, iself = nn.kneighbors(None, n_neighbors=49)
    assert all(i not in set(row) for i, row in enumerate(iself))
    with pytest.raises(ValueError):
        nn.kneighbors(Q, n_neighbors=0)


def test_large_k_no_cap():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4))
    Q = rng.normal(size=(3, 4))
    dist, ind = flashlib.NearestNeighbors(n_neighbors=2500, device="cpu").fit(X).kneighbors(Q)
    check_tie_aware(dist, ind, brute(X, Q, "euclidean", 2), 2500, 1e-9)


def test_graphs_match_sklearn(data):
    X, Q = data
    ours = flashlib.NearestNeighbors(n_neighbors=3, radius=2.5, device="cpu").fit(X)
    ref = skn.NearestNeighbors(n_neighbors=3, radius=2.5).fit(X)
    for mode in ("connectivity", "distance"):
        a = ours.kneighbors_graph(Q, mode=mode).toarray()
        b = ref.kneighbors_graph(Q, mode=mode).toarray()
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        a = ours.kneighbors_graph(mode=mode).toarray()
        b = ref.kneighbors_graph(mode=mode).toarray()
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        a = ours.radius_neighbors_graph(Q, mode=mode).toarray()
        b = ref.radius_neighbors_graph(Q, mode=mode).toarray()
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sort_results", [False, True])
def test_radius_neighbors(data, sort_results):
    X, Q = data
    ours = flashlib.NearestNeighbors(radius=3.0, device="cpu").fit(X)
    ref = skn.NearestNeighbors(radius=3.0).fit(X)
    dist, ind = ours.radius_neighbors(Q, sort_results=sort_results)
    rd, ri = ref.radius_neighbors(Q, sort_results=sort_results)
    assert sum(len(r) for r in ind) > 0
    for i in range(len(Q)):
        if sort_results:
            np.testing.assert_allclose(dist[i], rd[i], rtol=1e-9)
            assert np.all(np.diff(dist[i]) >= 0)
        order_ours, order_ref = np.argsort(ind[i]), np.argsort(ri[i])
        np.testing.assert_array_equal(ind[i][order_ours], ri[i][order_ref])
        np.testing.assert_allclose(dist[i][order_ours], rd[i][order_ref], rtol=1e-9)
    # X=None: each point is left out of its own list
    ind_self = ours.radius_neighbors(radius=1.5, return_distance=False)
    ref_self = ref.radius_neighbors(radius=1.5, return_distance=False)
    for i, (a, b) in enumerate(zip(ind_self, ref_self)):
        assert i not in set(a)
        assert sorted(a) == sorted(b)


def test_cosine_zero_row():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    dist, ind = flashlib.NearestNeighbors(n_neighbors=3, metric="cosine", device="cpu").fit(X).kneighbors(
        np.array([[1.0, 1.0]]))
    ref = brute(X, np.array([[1.0, 1.0]]), "cosine", 2)
    check_tie_aware(dist, ind, ref, 3, 1e-9)
    assert dist[0][list(ind[0]).index(0)] == pytest.approx(1.0)


# ---- the classifiers --------------------------------------------------------------------------
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_classifier_matches_sklearn(weights):
    X, y = make_classification(n_samples=500, n_features=6, n_informative=4, n_classes=3, random_state=0)
    Xt, yt = X[:400], y[:400]
    ours = flashlib.KNeighborsClassifier(n_neighbors=7, weights=weights, device="cpu").fit(Xt, yt)
    ref = skn.KNeighborsClassifier(n_neighbors=7, weights=weights).fit(Xt, yt)
    np.testing.assert_array_equal(ours.predict(X[400:]), ref.predict(X[400:]))
    np.testing.assert_allclose(ours.predict_proba(X[400:]), ref.predict_proba(X[400:]), rtol=1e-12)
    assert ours.score(X[400:], y[400:]) == pytest.approx(ref.score(X[400:], y[400:]))
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    # string labels and X=None
    labels = np.array(["a", "b", "c"])[yt]
    ours = flashlib.KNeighborsClassifier(n_neighbors=5, weights=weights, device="cpu").fit(Xt, labels)
    ref = skn.KNeighborsClassifier(n_neighbors=5, weights=weights).fit(Xt, labels)
    np.testing.assert_array_equal(ours.predict(X[400:]), ref.predict(X[400:]))
    np.testing.assert_array_equal(ours.predict(), ref.predict(None))


def test_classifier_multioutput():
    X, y = make_classification(n_samples=300, n_features=5, random_state=1)
    Y = np.stack([y, (X[:, 0] > 0).astype(int)], axis=1)
    ours = flashlib.KNeighborsClassifier(n_neighbors=5, device="cpu").fit(X[:250], Y[:250])
    ref = skn.KNeighborsClassifier(n_neighbors=5).fit(X[:250], Y[:250])
    np.testing.assert_array_equal(ours.predict(X[250:]), ref.predict(X[250:]))
    for a, b in zip(ours.predict_proba(X[250:]), ref.predict_proba(X[250:])):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_regressor_matches_sklearn(weights):
    X, y = make_regression(n_samples=400, n_features=5, noise=0.5, random_state=2)
    ours = flashlib.KNeighborsRegressor(n_neighbors=6, weights=weights, device="cpu").fit(X[:300], y[:300])
    ref = skn.KNeighborsRegressor(n_neighbors=6, weights=weights).fit(X[:300], y[:300])
    np.testing.assert_allclose(ours.predict(X[300:]), ref.predict(X[300:]), rtol=1e-10)
    assert ours.score(X[300:], y[300:]) == pytest.approx(ref.score(X[300:], y[300:]), rel=1e-10)
    Y = np.stack([y, -2 * y], axis=1)
    ours = flashlib.KNeighborsRegressor(n_neighbors=6, weights=weights, device="cpu").fit(X[:300], Y[:300])
    ref = skn.KNeighborsRegressor(n_neighbors=6, weights=weights).fit(X[:300], Y[:300])
    np.testing.assert_allclose(ours.predict(X[300:]), ref.predict(X[300:]), rtol=1e-10)


def test_distance_weights_exact_match():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0.0, 10.0, 20.0, 30.0])
    ours = flashlib.KNeighborsRegressor(n_neighbors=2, weights="distance", device="cpu").fit(X, y)
    ref = skn.KNeighborsRegressor(n_neighbors=2, weights="distance").fit(X, y)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X))


# ---- persistence, parameters, bad input ---------------------------------------------------
def test_pickle_round_trip(data):
    X, Q = data
    nn = flashlib.NearestNeighbors(n_neighbors=4, metric="cosine", device="cpu").fit(X)
    back = pickle.loads(pickle.dumps(nn))
    for a, b in zip(nn.kneighbors(Q), back.kneighbors(Q)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back._fit_X, X)
    assert back.n_samples_fit_ == 600 and back.n_features_in_ == 9
    clf = flashlib.KNeighborsClassifier(3, device="cpu").fit(X, (X[:, 0] > 0).astype(int))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict(Q), clf.predict(Q))


def test_parameters_follow_the_c_table():
    c = set(c_param_names(flashlib.NearestNeighbors))
    for cls in (flashlib.NearestNeighbors, flashlib.KNeighborsClassifier, flashlib.KNeighborsRegressor):
        py = python_param_names(cls)
        missing = c - set(py) - set(getattr(cls, "_fl_internal", {}))
        assert not missing, (cls, missing)
        extra = [n for n in py if n not in c and n not in cls._fl_python_only]
        assert not extra, (cls, extra)


def test_effective_metric():
    X = np.eye(4)
    assert flashlib.NearestNeighbors(device="cpu").fit(X).effective_metric_ == "euclidean"
    assert flashlib.NearestNeighbors(p=1, device="cpu").fit(X).effective_metric_ == "manhattan"
    nn = flashlib.NearestNeighbors(p=3, device="cpu").fit(X)
    assert nn.effective_metric_ == "minkowski" and nn.effective_metric_params_ == {"p": 3}


def test_bad_input_changes_nothing(data):
    X, Q = data
    nn = flashlib.NearestNeighbors(n_neighbors=3, device="cpu").fit(X)
    before = nn.kneighbors(Q)
    bad = Q.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nn.kneighbors(bad)
    bad[3, 2] = np.inf
    with pytest.raises(ValueError):
        nn.kneighbors(bad)
    with pytest.raises(ValueError, match="features"):
        nn.kneighbors(Q[:, :5])
    with pytest.raises(ValueError):
        flashlib.NearestNeighbors(metric="chebyshev", device="cpu").fit(X)
    with pytest.raises(ValueError):
        flashlib.NearestNeighbors(p=0.5, device="cpu").fit(X)
    with pytest.raises(ValueError):
        flashlib.NearestNeighbors(metric="precomputed", device="cpu").fit(X)
    Xbad = X.copy()
    Xbad[0, 0] = np.nan
    with pytest.raises(ValueError):
        nn.fit(Xbad)
    for a, b in zip(before, nn.kneighbors(Q)):  # the failed refit left the fit as it was
        np.testing.assert_array_equal(a, b)
    with pytest.raises(flashlib.NotFittedError):
        flashlib.NearestNeighbors().kneighbors(Q)


def test_knn_route():
    r = flashlib.route("knn", (100000, 64), device="cpu")
    assert r["backend"] == "cpu" and "heaps" in r["reason"]
