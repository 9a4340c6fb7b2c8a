"""The GPU searches of the approximate indexes against the CPU backend (the
oracle) for the same index, and their recall@10 at the default settings:
IVFFlat (the same answers, for every metric, with X=None, padding and
add()), IVFPQ (the same result sets but for near-ties of the coarse GEMM and of
the large batches' residual tables, summed from precomputed terms: >= 99%
of the CPU's ids, equal distances for every shared id) and
CAGRA (recall >= 0.95 and within 0.02 of the CPU's walk; >= 97% of the
CPU's ids). Skipped when flashlib.diagnose() reports no usable GPU."""

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
    g = type(ix).__new__(type(ix))
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


# ---- IVF-PQ and CAGRA ------------------------------------------------------------------------


def assert_sets_agree(gpu, cpu, min_share):
    """At least min_share of the CPU's ids come back from the GPU for the
    same query, each with the same exact distance (1e-5 relative); rows
    padded alike."""
    (dg, ig), (dc, ic) = gpu, cpu
    shared = total = 0
    for q in range(ic.shape[0]):
        pos = {int(v): j for j, v in enumerate(ig[q]) if v >= 0}
        for j, v in enumerate(ic[q]):
            if v < 0:
                assert ig[q, j] == -1
                continue
            total += 1
            if int(v) in pos:
                shared += 1
                np.testing.assert_allclose(dg[q, pos[int(v)]], dc[q, j], rtol=1e-5, atol=1e-6)
    assert shared >= min_share * total, (shared, total)


@pytest.mark.parametrize("metric", METRICS)
def test_pq_gpu_matches_cpu(clustered, metric):
    X, Q = clustered
    cpu = flashlib.IVFPQ(n_lists=128, n_probes=6, metric=metric, random_state=0, device="cpu").fit(X)
    gpu = on_gpu(cpu)
    for n in (2000, 17, 1):
        assert_sets_agree(gpu.kneighbors(Q[:n]), cpu.kneighbors(Q[:n]), 0.99)
    assert_sets_agree(gpu.kneighbors(), cpu.kneighbors(), 0.99)  # X=None: each row left out
    own = gpu.kneighbors(return_distance=False)
    assert not np.any(own == np.arange(len(X))[:, None])
    for p in (1, 128):
        cpu.set_params(n_probes=p)
        gpu.set_params(n_probes=p)
        assert_sets_agree(gpu.kneighbors(Q[:300]), cpu.kneighbors(Q[:300]), 0.99)


@pytest.mark.parametrize("metric", METRICS)
def test_pq_gpu_recall_at_default_settings(clustered, metric):
    X, Q = clustered
    ix = flashlib.IVFPQ(metric=metric, random_state=0, device="cuda").fit(X)
    dist, ind = ix.kneighbors(Q)
    ref = brute(X, Q, metric)
    order = np.argsort(-ref if metric == "inner_product" else ref, axis=1, kind="stable")[:, :10]
    assert recall(ind, order) >= 0.95
    got = np.take_along_axis(ref, ind, axis=1)  # refined: exact distances
    np.testing.assert_allclose(dist, got, rtol=2e-4, atol=2e-4 * np.abs(ref).max())


def test_pq_gpu_codes_only_and_add(clustered):
    X, Q = clustered
    cpu = flashlib.IVFPQ(n_lists=64, n_probes=8, refine=1, random_state=0, device="cpu").fit(X[:20000])
    gpu = on_gpu(cpu)
    dg, ig = gpu.kneighbors(Q[:500])
    assert np.all(np.diff(dg, axis=1) >= 0)  # quantised distances, sorted
    assert_sets_agree((dg, ig), cpu.kneighbors(Q[:500]), 0.99)
    cpu.add(X[20000:])
    gpu.add(X[20000:])  # a new index: the device copy must not answer
    d, i = gpu.kneighbors(Q[:500])
    assert i.max() >= 20000
    assert_sets_agree((d, i), cpu.kneighbors(Q[:500]), 0.99)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "inner_product"])
def test_cagra_gpu_recall_matches_cpu(clustered, metric):
    X, Q = clustered
    X = X[:12000]
    cpu = flashlib.CAGRA(metric=metric, random_state=0, device="cpu").fit(X)
    gpu = on_gpu(cpu)
    ref = brute(X, Q, metric)
    order = np.argsort(-ref if metric == "inner_product" else ref, axis=1, kind="stable")[:, :10]
    dg, ig = gpu.kneighbors(Q)
    dc, ic = cpu.kneighbors(Q)
    rg, rc = recall(ig, order), recall(ic, order)
    assert rg >= 0.95 and rg >= rc - 0.02, (rg, rc)
    assert_sets_agree((dg, ig), (dc, ic), 0.97)
    got = np.take_along_axis(ref, ig, axis=1)  # exact distances of the returned nodes
    np.testing.assert_allclose(dg, got, rtol=2e-4, atol=2e-4 * np.abs(ref).max())
    for n in (7, 1):
        assert_sets_agree(gpu.kneighbors(Q[:n]), cpu.kneighbors(Q[:n]), 0.9)


def test_cagra_gpu_knobs_and_self():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4000, 24)).astype(np.float32)  # unclustered: a harder graph walk
    Q = rng.normal(size=(200, 24)).astype(np.float32)
    ref = np.argsort(brute(X, Q, "euclidean"), axis=1, kind="stable")[:, :10]
    cpu = flashlib.CAGRA(graph_degree=16, intermediate_graph_degree=32, random_state=1, device="cpu").fit(X)
    gpu = on_gpu(cpu)
    r = []
    for itopk, width in ((10, 1), (32, 2), (128, 4)):
        for ix in (cpu, gpu):
            ix.set_params(itopk_size=itopk, search_width=width)
        rg = recall(gpu.kneighbors(Q, return_distance=False), ref)
        rc = recall(cpu.kneighbors(Q, return_distance=False), ref)
        assert rg >= rc - 0.02, (itopk, rg, rc)
        r.append(rg)
    assert r[0] < r[-1] and r[-1] >= 0.95, r
    own = gpu.kneighbors(return_distance=False)
    assert all(i not in set(row) for i, row in enumerate(own))
    a = gpu.kneighbors(Q)
    np.testing.assert_array_equal(a[1], gpu.kneighbors(Q)[1])  # deterministic
