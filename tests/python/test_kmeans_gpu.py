"""flashlib.KMeans on a CUDA GPU against the CPU backend (the oracle).
Skipped when flashlib.diagnose() reports no usable GPU."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.datasets import load_digits, make_blobs  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

import flashlib  # noqa: E402

pytestmark = pytest.mark.gpu


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def spread_init(X, k):
    return X[np.linspace(0, X.shape[0] - 1, k).astype(int)].copy()


def make_data(k):
    """k separated clusters: with more centres than clusters Lloyd's
    trajectory is chaotic (near-ties everywhere), and CPU and GPU rounding
    would legitimately reach different partitions of equal inertia."""
    X, y = make_blobs(n_samples=20000, n_features=32, centers=k, cluster_std=1.0,
                      center_box=(-30, 30), random_state=3)
    return X.astype(np.float32), y


def one_per_cluster(X, y):
    """An init with one row of each true cluster: Lloyd then has a single
    well-defined answer, so CPU and GPU can be compared label by label."""
    return X[[np.flatnonzero(y == j)[0] for j in np.unique(y)]].copy()


@pytest.fixture(scope="module")
def blobs():
    return make_data(16)[0]


@pytest.fixture(scope="module")
def digits():
    return load_digits().data.astype(np.float32)


# (precision, tolerance on the inertia, relative)
PRECISIONS = [("fp32", 1e-4), ("tf32", 1e-2), ("bf16", 1e-2), ("auto", 1e-2)]


@pytest.mark.parametrize("precision, tol", PRECISIONS)
@pytest.mark.parametrize("k", [8, 64])
def test_gpu_matches_cpu_from_same_init(precision, tol, k):
    blobs, y = make_data(k)
    init = one_per_cluster(blobs, y)
    kw = dict(init=init, n_init=1, max_iter=100)
    cpu = flashlib.KMeans(k, device="cpu", **kw).fit(blobs)
    gpu = flashlib.KMeans(k, device="cuda", precision=precision, **kw).fit(blobs)
    assert gpu.cluster_centers_.dtype == np.float32
    assert abs(gpu.inertia_ - cpu.inertia_) <= tol * cpu.inertia_, (gpu.inertia_, cpu.inertia_)
    assert gpu.n_iter_ < 100, "did not converge"
    if precision == "fp32":
        assert adjusted_rand_score(cpu.labels_, gpu.labels_) >= 0.999
        assert rel(gpu.cluster_centers_, cpu.cluster_centers_) <= 1e-4
    # predict / transform / score on the GPU against float64 maths on its own centres.
    X = blobs[:2000]
    C = gpu.cluster_centers_.astype(np.float64)
    D = np.sqrt(((X[:, None, :].astype(np.float64) - C[None]) ** 2).sum(-1))
    assert rel(gpu.transform(X), D) <= (1e-5 if precision == "fp32" else 1e-2)
    agree = np.mean(gpu.predict(X) == D.argmin(axis=1))
    assert agree >= (0.999 if precision == "fp32" else 0.99), agree
    assert gpu.score(blobs) == pytest.approx(-gpu.inertia_, rel=tol)


@pytest.mark.parametrize("precision, tol", PRECISIONS)
def test_gpu_inertia_close_with_near_ties(blobs, precision, tol):
    """64 centres on 16 clusters: near-ties everywhere, so partitions may
    differ by rounding; the objective must not."""
    init = spread_init(blobs, 64)
    kw = dict(init=init, n_init=1, max_iter=100)
    cpu = flashlib.KMeans(64, device="cpu", **kw).fit(blobs)
    gpu = flashlib.KMeans(64, device="cuda", precision=precision, **kw).fit(blobs)
    assert abs(gpu.inertia_ - cpu.inertia_) <= tol * cpu.inertia_, (gpu.inertia_, cpu.inertia_)


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16"])
def test_gpu_converges_like_cpu(blobs, precision):
    """The stopping rule (labels unchanged, or centre shift <= tol x mean
    variance) must fire in every precision: rounding that flips a few
    near-tied points each iteration must not keep a run going to max_iter."""
    init = spread_init(blobs, 64)
    cpu = flashlib.KMeans(64, init=init, max_iter=300, device="cpu").fit(blobs)
    gpu = flashlib.KMeans(64, init=init, max_iter=300, device="cuda", precision=precision).fit(blobs)
    assert cpu.n_iter_ < 300
    assert gpu.n_iter_ <= 2 * cpu.n_iter_ + 10, (gpu.n_iter_, cpu.n_iter_)


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16"])
def test_gpu_fit_is_reproducible(blobs, precision):
    """The same fit twice gives the same result bit for bit: no sum on the
    GPU depends on the order in which threads happen to run."""
    init = spread_init(blobs, 64)
    kw = dict(init=init, max_iter=300, device="cuda", precision=precision)
    a = flashlib.KMeans(64, **kw).fit(blobs)
    b = flashlib.KMeans(64, **kw).fit(blobs)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_ and a.n_iter_ == b.n_iter_


@pytest.mark.parametrize("k", [10, 64])
def test_gpu_kmeanspp_quality(digits, k):
    cpu = flashlib.KMeans(k, n_init=3, random_state=0, device="cpu").fit(digits)
    gpu = flashlib.KMeans(k, n_init=3, random_state=0, device="cuda").fit(digits)
    assert gpu.inertia_ <= 1.02 * cpu.inertia_, (gpu.inertia_, cpu.inertia_)


def test_gpu_float64_input(digits):
    X = digits.astype(np.float64)
    init = spread_init(X, 10)
    cpu = flashlib.KMeans(10, init=init, device="cpu").fit(X)
    gpu = flashlib.KMeans(10, init=init, device="cuda", precision="fp32").fit(X)
    assert gpu.cluster_centers_.dtype == np.float64
    assert gpu.transform(X).dtype == np.float64
    assert abs(gpu.inertia_ - cpu.inertia_) <= 1e-4 * cpu.inertia_
    assert rel(gpu.cluster_centers_, cpu.cluster_centers_) <= 1e-4


@pytest.mark.parametrize("precision, tol", [("fp32", 1e-4), ("tf32", 1e-2)])
def test_gpu_sample_weight(blobs, precision, tol):
    """tf32 with k <= 64 and d <= 32 takes the weighted sums inside the E-step."""
    X = blobs[:5000]
    w = np.random.RandomState(0).randint(1, 4, size=X.shape[0]).astype(np.float32)
    init = spread_init(X, 8)
    kw = dict(init=init, tol=0.0, max_iter=50)
    cpu = flashlib.KMeans(8, device="cpu", **kw).fit(X, sample_weight=w)
    gpu = flashlib.KMeans(8, device="cuda", precision=precision, **kw).fit(X, sample_weight=w)
    assert abs(gpu.inertia_ - cpu.inertia_) <= tol * cpu.inertia_


@pytest.mark.parametrize("d", [8, 16, 24])
def test_gpu_fused_estep_narrow_rows(d):
    """tf32, k <= 64, d < 32: packed rows of 8 or 16 floats load at fixed
    patterns, 24 through the generic path; n leaves a partial last tile."""
    X, y = make_blobs(n_samples=30011, n_features=d, centers=40, cluster_std=1.0, center_box=(-40, 40),
                      random_state=5)
    X = X.astype(np.float32)
    init = one_per_cluster(X, y)
    kw = dict(init=init, n_init=1, max_iter=100)
    cpu = flashlib.KMeans(40, device="cpu", **kw).fit(X)
    gpu = flashlib.KMeans(40, device="cuda", precision="tf32", **kw).fit(X)
    assert abs(gpu.inertia_ - cpu.inertia_) <= 1e-3 * cpu.inertia_, (gpu.inertia_, cpu.inertia_)
    assert adjusted_rand_score(cpu.labels_, gpu.labels_) >= 0.999
    assert rel(gpu.cluster_centers_, cpu.cluster_centers_) <= 1e-3


@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_gpu_metrics(blobs, metric):
    init = spread_init(blobs, 8)
    cpu = flashlib.KMeans(8, init=init, metric=metric, max_iter=50, device="cpu").fit(blobs)
    gpu = flashlib.KMeans(8, init=init, metric=metric, max_iter=50, device="cuda",
                          precision="fp32").fit(blobs)
    assert adjusted_rand_score(cpu.labels_, gpu.labels_) >= 0.99
    assert abs(gpu.inertia_ - cpu.inertia_) <= 1e-3 * abs(cpu.inertia_)


def test_gpu_pickle_and_auto(blobs):
    import pickle

    gpu = flashlib.KMeans(8, random_state=0, device="cuda").fit(blobs)
    back = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_array_equal(back.predict(blobs), gpu.predict(blobs))
    cpu_copy = pickle.loads(pickle.dumps(gpu.set_params(device="cpu")))
    assert adjusted_rand_score(cpu_copy.predict(blobs), gpu.labels_) >= 0.999
    auto = flashlib.KMeans(8, random_state=0).fit(blobs)
    assert auto.__dict__["_fl_model"].ctx.resolved_device().startswith("cuda")


def test_gpu_route():
    r = flashlib.route("kmeans", (1_000_000, 128), {"n_clusters": 8192})
    assert r["backend"].startswith("cuda") and r["device"] == "cuda:0", r


def test_gpu_fit_loads_cuda_only_when_used(subprocess_env):
    """Positive control for test_import.py: the maps check does see CUDA."""
    code = textwrap.dedent("""
        import json
        import numpy as np
        import flashlib
        from flashlib import _lib
        X = np.random.RandomState(0).rand(1000, 8).astype("float32")
        flashlib.KMeans(4, random_state=0, device="cpu").fit(X)
        before = _lib.cuda_loaded()
        flashlib.KMeans(4, random_state=0, device="cuda").fit(X)
        print(json.dumps({"before": before, "after": _lib.cuda_loaded()}))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == {"before": False, "after": True}


def test_release_device_memory_keeps_models_usable():
    """flashlib.release_device_memory() returns the shared contexts' cached
    device memory; a fitted GPU model predicts the same afterwards."""
    X, _ = make_data(8)
    km = flashlib.KMeans(8, random_state=0, device="cuda").fit(X)
    before = km.predict(X)
    flashlib.release_device_memory()
    flashlib.release_device_memory()
    np.testing.assert_array_equal(km.predict(X), before)
    km2 = flashlib.KMeans(8, random_state=0, device="cuda").fit(X)
    np.testing.assert_array_equal(km2.cluster_centers_, km.cluster_centers_)
