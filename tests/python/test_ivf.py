"""flashlib.IVFFlat on the CPU: recall@10 against exact search on clustered
data at the default search settings, the recall knob, add(), padding,
persistence and bad input."""

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.datasets import make_blobs  # noqa: E402

import flashlib  # noqa: E402



def brute(X, Q, metric, p=2):
    """float64 reference distances through one GEMM (the tests' data is
    far from ties, and a difference tensor of this size is gigabytes)."""
    X, Q = X.astype(np.float64), Q.astype(np.float64)
    G = Q @ X.T
    if metric == "inner_product":
        return G
    if metric == "cosine":
        nx, nq = np.linalg.norm(X, axis=1), np.linalg.norm(Q, axis=1)
        return 1.0 - G / np.maximum(nq[:, None], 1e-300) / np.maximum(nx[None, :], 1e-300)
    d2 = np.maximum((Q * Q).sum(1)[:, None] + (X * X).sum(1)[None, :] - 2 * G, 0.0)
    return d2 if metric == "sqeuclidean" else np.sqrt(d2)


def recall(ind, ref):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(ind, ref)])


@pytest.fixture(scope="module")
def clustered():
    X, _ = make_blobs(n_samples=20000, n_features=32, centers=100, cluster_std=3.0, random_state=11)
    Q, _ = make_blobs(n_samples=400, n_features=32, centers=100, cluster_std=3.0, random_state=11,
                      shuffle=True)
    rng = np.random.default_rng(0)
    Q = Q + rng.normal(scale=0.5, size=Q.shape)
    return X.astype(np.float32), Q.astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine", "inner_product"])
def test_recall_at_default_settings(clustered, metric):
    X, Q = clustered
    ix = flashlib.IVFFlat(metric=metric, random_state=0, device="cpu").fit(X)
    assert ix.n_lists_ == round(4 * np.sqrt(len(X)))
    dist, ind = ix.kneighbors(Q)
    ref = brute(X, Q, metric, 2)
    order = np.argsort(-ref if metric == "inner_product" else ref, axis=1, kind="stable")[:, :10]
    assert recall(ind, order) >= 0.95
    # the distances returned are the exact ones of the indices returned
    got = np.take_along_axis(ref, ind, axis=1)
    np.testing.assert_allclose(dist, got, rtol=2e-4, atol=2e-4 * np.abs(ref).max())
    assert np.all(np.diff(dist, axis=1) <= 0) if metric == "inner_product" else np.all(np.diff(dist, axis=1) >= 0)


def test_recall_grows_with_probes(clustered):
    X, Q = clustered
    ref = np.argsort(brute(X, Q, "euclidean", 2), axis=1, kind="stable")[:, :10]
    ix = flashlib.IVFFlat(n_lists=256, n_probes=1, random_state=0, device="cpu").fit(X)
    r = []
    for p in (1, 4, 16, 256):
        ix.set_params(n_probes=p)  # no rebuild: a search-time knob
        r.append(recall(ix.kneighbors(Q, return_distance=False), ref))
    assert r == sorted(r) and r[-1] == 1.0 and r[0] < 0.95
    # every list probed = exact search, distances included
    dist, ind = ix.kneighbors(Q)
    exact = np.sort(brute(X, Q, "euclidean", 2), axis=1)[:, :10]
    np.testing.assert_allclose(dist, exact, rtol=1e-5, atol=1e-4)


def test_deterministic_and_self_query(clustered):
    X, _ = clustered
    X = X[:3000]
    a = flashlib.IVFFlat(n_lists=40, n_probes=40, random_state=3, device="cpu").fit(X)
    b = flashlib.IVFFlat(n_lists=40, n_probes=40, random_state=3, device="cpu").fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    d1, i1 = a.kneighbors()
    d2, i2 = b.kneighbors()
    np.testing.assert_array_equal(i1, i2)
    assert all(i not in set(row) for i, row in enumerate(i1))  # each point left out of its own list
    ref = brute(X, X, "euclidean", 2)
    np.fill_diagonal(ref, np.inf)
    np.testing.assert_allclose(d1, np.sort(ref, axis=1)[:, :10], rtol=1e-5, atol=1e-4)


def test_add_continues_indices(clustered):
    X, Q = clustered
    X = X[:4000]
    full = flashlib.IVFFlat(n_lists=32, n_probes=32, random_state=0, device="cpu").fit(X)
    part = flashlib.IVFFlat(n_lists=32, n_probes=32, random_state=0, device="cpu").fit(X[:2500])
    part.add(X[2500:])
    assert part.n_samples_fit_ == 4000
    d, i = part.kneighbors(Q[:50])
    exact = np.argsort(brute(X, Q[:50], "euclidean", 2), axis=1, kind="stable")[:, :10]
    assert recall(i, exact) == 1.0  # every list probed: exact
    np.testing.assert_allclose(d, full.kneighbors(Q[:50])[0], rtol=1e-6)


def test_padding_when_lists_are_short():
    X = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0], [10.1, 10.0]], dtype=np.float32)
    ix = flashlib.IVFFlat(n_lists=2, n_probes=1, n_neighbors=3, random_state=0, device="cpu").fit(X)
    dist, ind = ix.kneighbors(np.array([[0.0, 0.05]], dtype=np.float32))
    assert sorted(ind[0, :2]) == [0, 1] and ind[0, 2] == -1 and np.isinf(dist[0, 2])


def test_pickle_and_dtypes(clustered):
    X, Q = clustered
    ix = flashlib.IVFFlat(n_lists=64, random_state=0, device="cpu").fit(X[:5000].astype(np.float64))
    d64, i64 = ix.kneighbors(Q.astype(np.float64))
    assert d64.dtype == np.float64
    back = pickle.loads(pickle.dumps(ix))
    d2, i2 = back.kneighbors(Q.astype(np.float64))
    np.testing.assert_array_equal(i64, i2)
    np.testing.assert_array_equal(d64, d2)


def test_bad_input(clustered):
    X, Q = clustered
    with pytest.raises(ValueError, match="n_probes=20: must be <= n_lists=10"):
        flashlib.IVFFlat(n_lists=10, n_probes=20, device="cpu").fit(X[:100])
    with pytest.raises(ValueError, match="n_lists=200: must be <= n_samples=100"):
        flashlib.IVFFlat(n_lists=200, device="cpu").fit(X[:100])
    ix = flashlib.IVFFlat(n_lists=10, device="cpu").fit(X[:500])
    before = ix.kneighbors(Q[:5])
    ix.set_params(n_probes=11)
    with pytest.raises(ValueError, match="n_probes=11: must be <= n_lists=10"):
        ix.kneighbors(Q[:5])
    ix.set_params(n_probes="auto")
    with pytest.raises(ValueError, match="features"):
        ix.kneighbors(Q[:5, :4])
    bad = Q[:5].copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError):
        ix.kneighbors(bad)
    with pytest.raises(ValueError):
        ix.add(bad)
    with pytest.raises(ValueError, match="n_neighbors"):
        ix.kneighbors(Q[:5], n_neighbors=501)
    for a, b in zip(before, ix.kneighbors(Q[:5])):  # nothing changed
        np.testing.assert_array_equal(a, b)
    assert ix.n_samples_fit_ == 500


# ---- IVF-PQ --------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["euclidean", "cosine", "inner_product"])
def test_pq_recall_at_default_settings(clustered, metric):
    X, Q = clustered
    X = X[:10000]
    ix = flashlib.IVFPQ(metric=metric, random_state=0, device="cpu").fit(X)
    assert ix.pq_dim_ == 8 and ix.pq_bits_ == 8 and ix.compression_ratio == 16.0
    dist, ind = ix.kneighbors(Q)
    ref = brute(X, Q, metric)
    order = np.argsort(-ref if metric == "inner_product" else ref, axis=1, kind="stable")[:, :10]
    assert recall(ind, order) >= 0.95
    got = np.take_along_axis(ref, ind, axis=1)  # refined: exact distances
    np.testing.assert_allclose(dist, got, rtol=2e-4, atol=2e-4 * np.abs(ref).max())


def test_pq_codes_only_and_knobs(clustered):
    X, Q = clustered
    X = X[:10000]
    ref = np.argsort(brute(X, Q, "euclidean"), axis=1, kind="stable")[:, :10]
    ix = flashlib.IVFPQ(n_lists=32, refine=1, kmeans_n_iters=10, random_state=0, device="cpu").fit(X)
    d1, i1 = ix.kneighbors(Q)
    r1 = recall(i1, ref)
    assert 0.6 < r1 < 1.0  # quantised: good, not exact
    # quantised distances approximate the true ones and are sorted
    exact = np.take_along_axis(brute(X, Q, "euclidean"), i1, axis=1)
    assert np.median(np.abs(d1 - exact) / exact) < 0.1
    assert np.all(np.diff(d1, axis=1) >= 0)
    with pytest.raises(flashlib.UnsupportedError, match="X=None. needs the raw rows"):
        ix.kneighbors()
    ix2 = flashlib.IVFPQ(n_lists=32, refine=8, kmeans_n_iters=10, random_state=0, device="cpu").fit(X)
    assert recall(ix2.kneighbors(Q, return_distance=False), ref) > r1
    ix2.set_params(n_probes=32)  # every list: only the re-rank pool limits recall
    assert recall(ix2.kneighbors(Q, return_distance=False), ref) >= 0.99


def test_pq_add_pickle_errors(clustered):
    X, Q = clustered
    a = flashlib.IVFPQ(n_lists=32, random_state=0, device="cpu").fit(X[:3000])
    a.add(X[3000:4000])
    assert a.n_samples_fit_ == 4000
    d, i = a.kneighbors(Q[:20])
    assert i.max() < 4000 and (i >= 3000).any()
    back = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(back.kneighbors(Q[:20])[1], i)
    with pytest.raises(ValueError, match="pq_dim=5: must divide n_features=32"):
        flashlib.IVFPQ(pq_dim=5, device="cpu").fit(X[:1000])
    with pytest.raises(ValueError, match="at least 256 rows"):
        flashlib.IVFPQ(n_lists=4, device="cpu").fit(X[:100])
    with pytest.raises(ValueError):
        flashlib.IVFPQ(pq_bits=9, device="cpu").fit(X[:1000])
    with pytest.raises(ValueError, match="features"):
        a.add(X[:10, :8])
    assert a.n_samples_fit_ == 4000


# ---- CAGRA ------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["euclidean", "cosine", "inner_product"])
def test_cagra_recall_at_default_settings(clustered, metric):
    X, Q = clustered
    X = X[:10000]
    ix = flashlib.CAGRA(metric=metric, random_state=0, device="cpu").fit(X)
    g = ix.graph_
    assert g.shape == (10000, 64) and g.min() >= 0 and g.max() < 10000
    assert not np.any(g == np.arange(10000)[:, None])  # no self loops
    dist, ind = ix.kneighbors(Q)
    ref = brute(X, Q, metric)
    order = np.argsort(-ref if metric == "inner_product" else ref, axis=1, kind="stable")[:, :10]
    assert recall(ind, order) >= 0.95
    got = np.take_along_axis(ref, ind, axis=1)  # exact distances of the returned nodes
    np.testing.assert_allclose(dist, got, rtol=2e-4, atol=2e-4 * np.abs(ref).max())


def test_cagra_knob_determinism_self_and_pickle():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4000, 24)).astype(np.float32)  # unclustered: a harder graph walk
    Q = rng.normal(size=(200, 24)).astype(np.float32)
    ref = np.argsort(brute(X, Q, "euclidean"), axis=1, kind="stable")[:, :10]
    ix = flashlib.CAGRA(graph_degree=16, intermediate_graph_degree=32, random_state=1, device="cpu").fit(X)
    r = []
    for itopk in (10, 32, 128):
        ix.set_params(itopk_size=itopk)
        r.append(recall(ix.kneighbors(Q, return_distance=False), ref))
    assert r[0] < r[-1] and r[-1] >= 0.95, r
    a = ix.kneighbors(Q)
    b = pickle.loads(pickle.dumps(ix)).kneighbors(Q)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])
    again = flashlib.CAGRA(graph_degree=16, intermediate_graph_degree=32, itopk_size=128, random_state=1,
                           device="cpu").fit(X)
    np.testing.assert_array_equal(again.graph_, ix.graph_)
    np.testing.assert_array_equal(again.kneighbors(Q)[1], a[1])
    own = ix.kneighbors(return_distance=False)
    assert all(i not in set(row) for i, row in enumerate(own))


def test_cagra_errors(clustered):
    X, Q = clustered
    with pytest.raises(ValueError, match="intermediate_graph_degree=8: must be >= graph_degree=16"):
        flashlib.CAGRA(graph_degree=16, intermediate_graph_degree=8, device="cpu").fit(X[:100])
    with pytest.raises(ValueError, match="at least 2 samples"):
        flashlib.CAGRA(device="cpu").fit(X[:1])
    small = flashlib.CAGRA(device="cpu").fit(X[:50])  # degrees clamp to the data
    assert small.graph_degree_ == 49
    ix = flashlib.CAGRA(graph_degree=8, intermediate_graph_degree=16, device="cpu").fit(X[:500])
    with pytest.raises(ValueError, match="features"):
        ix.kneighbors(Q[:3, :5])
    with pytest.raises(ValueError, match="n_neighbors"):
        ix.kneighbors(Q[:3], n_neighbors=501)
    bad = Q[:3].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError):
        ix.kneighbors(bad)
