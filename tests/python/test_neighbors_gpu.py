"""flashlib.NearestNeighbors and the kNN estimators on a CUDA GPU against a
float64 reference and the CPU backend (the oracle). Skipped when
flashlib.diagnose() reports no usable GPU."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.datasets import make_blobs, make_classification  # noqa: E402

import flashlib  # noqa: E402

from test_neighbors import brute, check_tie_aware  # noqa: E402

pytestmark = pytest.mark.gpu

PRECISIONS = ["fp32", "tf32", "bf16", "fp16"]


@pytest.fixture(scope="module")
def clustered():
    X, _ = make_blobs(n_samples=6000, n_features=48, centers=30, cluster_std=2.0, random_state=5)
    Q, _ = make_blobs(n_samples=300, n_features=48, centers=30, cluster_std=2.0, random_state=5)
    return X.astype(np.float32), Q.astype(np.float32)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_gpu_exact_against_reference(clustered, precision, metric):
    X, Q = clustered
    k = 10
    nn = flashlib.NearestNeighbors(n_neighbors=k, metric=metric, precision=precision, device="cuda").fit(X)
    dist, ind = nn.kneighbors(Q)
    # distances exact in fp32 whatever the scan's precision (re-ranked)
    check_tie_aware(dist, ind, brute(X, Q, metric, 2), k, 1e-4)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_gpu_inner_product(clustered, precision):
    X, Q = clustered
    nn = flashlib.NearestNeighbors(n_neighbors=8, metric="inner_product", precision=precision,
                                   device="cuda").fit(X)
    dist, ind = nn.kneighbors(Q)
    check_tie_aware(dist, ind, brute(X, Q, "inner_product", 2), 8, 1e-4, largest=True)


@pytest.mark.parametrize("metric,p", [("manhattan", 2), ("minkowski", 3)])
def test_gpu_simt_metrics(clustered, metric, p):
    X, Q = clustered
    nn = flashlib.NearestNeighbors(n_neighbors=6, metric=metric, p=p, device="cuda").fit(X)
    dist, ind = nn.kneighbors(Q)
    check_tie_aware(dist, ind, brute(X, Q, metric, p), 6, 1e-4)


def test_gpu_matches_cpu_indices(clustered):
    X, Q = clustered
    gpu = flashlib.NearestNeighbors(n_neighbors=10, precision="fp32", device="cuda").fit(X).kneighbors(Q)
    cpu = flashlib.NearestNeighbors(n_neighbors=10, device="cpu").fit(X).kneighbors(Q)
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-4, atol=1e-3)
    assert (gpu[1] == cpu[1]).mean() > 0.999


def test_gpu_self_exclusion_and_ties():
    X = np.array([[i, j] for i in range(12) for j in range(12)], dtype=np.float32)
    X = np.vstack([X, X[:20]])  # exact duplicates
    nn = flashlib.NearestNeighbors(n_neighbors=9, device="cuda").fit(X)
    dist, ind = nn.kneighbors()
    check_tie_aware(dist, ind, brute(X, X, "euclidean", 2), 9, 1e-5, exclude_self=True)
    for i in range(len(X)):
        for c in range(8):
            if dist[i, c] == dist[i, c + 1]:
                assert ind[i, c] < ind[i, c + 1]
    d2, i2 = nn.kneighbors()
    np.testing.assert_array_equal(ind, i2)  # deterministic


@pytest.mark.parametrize("k", [1, 100, 1024, 3000])
def test_gpu_any_k(k):
    rng = np.random.default_rng(k)
    X = rng.normal(size=(3000, 16)).astype(np.float32)
    Q = rng.normal(size=(50, 16)).astype(np.float32)
    dist, ind = flashlib.NearestNeighbors(n_neighbors=k, device="cuda").fit(X).kneighbors(Q)
    check_tie_aware(dist, ind, brute(X, Q, "euclidean", 2), k, 1e-4)


def test_gpu_float64_input(clustered):
    X, Q = (a.astype(np.float64) for a in clustered)
    dist, ind = flashlib.NearestNeighbors(n_neighbors=5, device="cuda").fit(X).kneighbors(Q)
    assert dist.dtype == np.float64
    check_tie_aware(dist, ind, brute(X, Q, "euclidean", 2), 5, 1e-4)


def test_gpu_classifier_matches_cpu():
    X, y = make_classification(n_samples=3000, n_features=20, n_informative=10, n_classes=4, random_state=0)
    X = X.astype(np.float32)
    gpu = flashlib.KNeighborsClassifier(n_neighbors=15, precision="fp32", device="cuda").fit(X[:2500], y[:2500])
    cpu = flashlib.KNeighborsClassifier(n_neighbors=15, device="cpu").fit(X[:2500], y[:2500])
    assert (gpu.predict(X[2500:]) == cpu.predict(X[2500:])).mean() > 0.99


def test_gpu_model_database_cached_and_invalidated():
    # a fitted model's database stays on the device between searches; a
    # refit (new data, same shape) must not reuse the old copy
    rng = np.random.default_rng(7)
    X1 = rng.normal(size=(5000, 16)).astype(np.float32)
    X2 = rng.normal(size=(5000, 16)).astype(np.float32)
    Q = rng.normal(size=(40, 16)).astype(np.float32)
    nn = flashlib.NearestNeighbors(n_neighbors=5, precision="fp32", device="cuda").fit(X1)
    a = nn.kneighbors(Q)
    b = nn.kneighbors(Q)  # from the cached copy
    np.testing.assert_array_equal(a[1], b[1])
    check_tie_aware(a[0], a[1], brute(X1, Q, "euclidean", 2), 5, 1e-4)
    nn.fit(X2)
    c = nn.kneighbors(Q)
    check_tie_aware(c[0], c[1], brute(X2, Q, "euclidean", 2), 5, 1e-4)
    d, i = nn.kneighbors()  # self queries against the cached rows
    check_tie_aware(d, i, brute(X2, X2, "euclidean", 2), 5, 1e-4, exclude_self=True)
