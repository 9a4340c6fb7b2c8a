"""flashlib.IVFFlat's search on a CUDA GPU: recall@10 at the default
settings, and the same answers as the CPU backend (the oracle) for the same
index, for every metric, with X=None, padding and add(). Skipped when
flashlib.diagnose() reports no usable GPU."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.datasets import make_blobs  # noqa: E402

import flashlib  # noqa: E402

from test_ivf import brute, recall  # noqa: E402

pytestmark = pytest.mark.gpu

METRICS = ["euclidean", "sqeuclidean", "cosine", "inner_product"]


@pytest.fixture(scope="module")
def clustered():
    X, _ = make_blobs(n_samples=30000, n_features=40, centers=120, cluster_std=3.0, random_state=7)
    Q, _ = make_blobs(n_samples=2000, n_features=40, centers=120, cluster_std=3.0, random_state=7)
    Q = Q + np.random.default_rng(1).normal(scale=0.5, size=Q.shape)
    return X.astype(np.float32), Q.astype(np.float32)


def on_gpu(ix):
    """The same fitted index, searched on the GPU."""
    state = ix.__getstate__()
    state["device"] = "cuda"
    g = flashlib.IVFFlat.__new__(flashlib.IVFFlat)
    g.__setstate__(state)
    return g


def assert_same(gpu, cpu):
    (dg, ig), (dc, ic) = gpu, cpu
    np.testing.assert_allclose(dg, dc, rtol=1e-5, atol=1e-6)
    differ = ig != ic  # only swaps between equal distances
    assert np.all(np.isclose(dg[differ], dc[differ], rtol=1e-9, atol=0)), int(differ.sum())


@pytest.mark.parametrize("metric", METRICS)
def test_gpu_recall_at_default_settings(clustered, metric):
    X, Q = clustered
    ix = flashlib.IVFFlat(metric=metric, random_state=0, device="cuda").fit(X)
    dist, ind = ix.kneighbors(Q)
    ref = brute(X, Q, metric)
    order = np.argsort(-ref if metric == "inner_product" else ref, axis=1, kind="stable")[:, :10]
    assert recall(ind, order) >= 0.95
    got = np.take_along_axis(ref, ind, axis=1)
    np.testing.assert_allclose(dist, got, rtol=2e-4, atol=2e-4 * np.abs(ref).max())


@pytest.mark.parametrize("metric", METRICS)
def test_gpu_matches_cpu(clustered, metric):
    X, Q = clustered
    cpu = flashlib.IVFFlat(n_lists=128, n_probes=6, metric=metric, random_state=0, device="cpu").fit(X)
    gpu = on_gpu(cpu)
    for n in (2000, 17, 1):  # wide tiles, narrow tiles, one query
        assert_same(gpu.kneighbors(Q[:n]), cpu.kneighbors(Q[:n]))
    assert_same(gpu.kneighbors(), cpu.kneighbors())  # X=None: each row left out
    for p in (1, 128):  # search-time knob; all lists = exact
        cpu.set_params(n_probes=p)
        gpu.set_params(n_probes=p)
        assert_same(gpu.kneighbors(Q[:300]), cpu.kneighbors(Q[:300]))


def test_gpu_add_and_padding(clustered):
    X, Q = clustered
    cpu = flashlib.IVFFlat(n_lists=200, n_probes=4, random_state=0, device="cpu").fit(X[:20000])
    gpu = on_gpu(cpu)
    assert_same(gpu.kneighbors(Q[:500]), cpu.kneighbors(Q[:500]))  # the lists go to the device
    cpu.add(X[20000:])
    gpu.add(X[20000:])  # a new index: the device copy must not answer
    d, i = gpu.kneighbors(Q[:500])
    assert i.max() >= 20000
    assert_same((d, i), cpu.kneighbors(Q[:500]))
    # one probe, k above the list sizes: -1 / inf padding as on the CPU
    cpu.set_params(n_probes=1)
    gpu.set_params(n_probes=1)
    k = 240
    dg, ig = gpu.kneighbors(Q[:20], n_neighbors=k)
    dc, ic = cpu.kneighbors(Q[:20], n_neighbors=k)
    assert (ic == -1).any()
    assert_same((dg, ig), (dc, ic))
