"""flashlib.KMeans on the CPU against scikit-learn, its properties, and
its behaviour on bad input."""

import copy
import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.cluster import KMeans as SkKMeans  # noqa: E402
from sklearn.datasets import load_digits, make_blobs  # noqa: E402
from sklearn.exceptions import NotFittedError as SkNotFittedError  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

import flashlib  # noqa: E402
from flashlib import _lib  # noqa: E402
from flashlib._base import c_param_names, python_param_names  # noqa: E402


def rel(a, b):
    """Relative Frobenius error of a against the reference b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=3000, n_features=12, centers=6, cluster_std=0.6, random_state=7)
    return X, y


@pytest.fixture(scope="module")
def digits():
    return load_digits().data.astype(np.float64)


def first_rows_init(X, k):
    """k distinct rows spread over X: a deterministic explicit init."""
    idx = np.linspace(0, X.shape[0] - 1, k).astype(int)
    return X[idx].copy()


# ---- quality against scikit-learn (one-sided: being better is fine) -------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blobs_match_sklearn(blobs, dtype):
    X, _ = blobs
    X = X.astype(dtype)
    ours = flashlib.KMeans(6, random_state=0, device="cpu").fit(X)
    ref = SkKMeans(6, random_state=0).fit(X)
    assert adjusted_rand_score(ref.labels_, ours.labels_) >= 0.99
    assert ours.inertia_ <= 1.01 * ref.inertia_
    assert ours.labels_.dtype == np.int32 and ours.labels_.shape == (X.shape[0],)
    assert ours.cluster_centers_.dtype == dtype and ours.cluster_centers_.shape == (6, 12)
    assert isinstance(ours.inertia_, float) and isinstance(ours.n_iter_, int) and ours.n_iter_ >= 1
    assert ours.n_features_in_ == 12


@pytest.mark.parametrize("n_init", [1, 10])
def test_digits_inertia_within_1pct(digits, n_init):
    # One k-means++ run lands in a local optimum that varies by a few percent
    # with the seed (for scikit-learn too), so single runs are compared on the
    # mean over seeds; with n_init=10 the best of ten is stable enough alone.
    seeds = range(8) if n_init == 1 else [0]
    ours = np.mean([flashlib.KMeans(10, n_init=n_init, random_state=s, device="cpu").fit(digits).inertia_
                    for s in seeds])
    ref = np.mean([SkKMeans(10, n_init=n_init, random_state=s).fit(digits).inertia_ for s in seeds])
    assert ours <= 1.01 * ref, (ours, ref)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-4), (np.float32, 1e-3)])
@pytest.mark.parametrize("data", ["digits", "blobs"])
def test_init_array_gives_sklearn_centres(digits, blobs, data, dtype, tol):
    X = (digits if data == "digits" else blobs[0]).astype(dtype)
    k = 10 if data == "digits" else 6
    init = first_rows_init(X, k)
    ours = flashlib.KMeans(k, init=init, n_init=1, device="cpu").fit(X)
    ref = SkKMeans(k, init=init, n_init=1).fit(X)
    assert rel(ours.cluster_centers_, ref.cluster_centers_) <= tol
    assert abs(ours.inertia_ - ref.inertia_) <= tol * ref.inertia_
    # Same init and same Lloyd steps: clusters keep the init's numbering.
    assert adjusted_rand_score(ref.labels_, ours.labels_) >= 0.99
    assert np.mean(ours.labels_ == ref.labels_) >= 0.99


def test_objective_never_rises(digits):
    init = first_rows_init(digits, 10)
    inertias = [
        flashlib.KMeans(10, init=init, max_iter=m, tol=0.0, device="cpu").fit(digits).inertia_
        for m in range(1, 11)
    ]
    for a, b in zip(inertias, inertias[1:]):
        assert b <= a * (1 + 1e-12), inertias
    assert inertias[-1] < inertias[0]  # the test must be able to fail


@pytest.mark.skipif(not _lib.has("fl_kmeans_fit_traced"), reason="library has no trace hook")
def test_objective_trace_never_rises(digits):
    import ctypes

    X = np.ascontiguousarray(digits)
    ctx = _lib.Context("cpu")
    p = _lib.Params(ctx, "kmeans")
    for name, value in (("n_clusters", "10"), ("random_state", "3"), ("tol", "0"), ("max_iter", "50")):
        p.set(name, value)
    C = np.empty((10, X.shape[1]))
    trace = np.empty(64)
    n = ctypes.c_int64()
    inertia = ctypes.c_double()
    Xa = _lib.host_array(X.ctypes.data, _lib.FL_DTYPE_F64, *X.shape)
    ctx.call(_lib.lib.fl_kmeans_fit_traced, ctx.ptr, ctypes.byref(Xa), p.ptr, C.ctypes.data,
             ctypes.byref(inertia), trace.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), 64,
             ctypes.byref(n))
    t = trace[: n.value]
    assert n.value >= 2
    assert np.all(np.diff(t) <= 1e-12 * t[:-1]), t
    assert inertia.value <= t[-1] * (1 + 1e-12)


# ---- sample weights -------------------------------------------------------------------------
def test_sample_weight_equals_repetition(blobs):
    X, _ = blobs
    X = X[:500]
    rng = np.random.RandomState(0)
    w = rng.randint(0, 4, size=X.shape[0])  # zeros remove rows
    w[:6] = np.maximum(w[:6], 1)
    init = first_rows_init(X[w > 0], 6)
    kw = dict(init=init, n_init=1, tol=0.0, device="cpu")  # tol=0: stop when labels settle
    weighted = flashlib.KMeans(6, **kw).fit(X, sample_weight=w.astype(float))
    repeated = flashlib.KMeans(6, **kw).fit(np.repeat(X, w, axis=0))
    assert rel(weighted.cluster_centers_, repeated.cluster_centers_) <= 1e-10
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-10)
    ref = SkKMeans(6, init=init, n_init=1, tol=0.0).fit(X, sample_weight=w.astype(float))
    assert rel(weighted.cluster_centers_, ref.cluster_centers_) <= 1e-6
    # score with weights is minus the weighted inertia.
    assert weighted.score(X, sample_weight=w) == pytest.approx(-weighted.inertia_, rel=1e-10)


@pytest.mark.parametrize("bad", [[-1.0], [np.nan], [np.inf]])
def test_bad_sample_weight(blobs, bad):
    X = blobs[0][:20]
    w = np.ones(20)
    w[3] = bad[0]
    with pytest.raises(ValueError):
        flashlib.KMeans(2, device="cpu").fit(X, sample_weight=w)
    with pytest.raises(ValueError, match="sample_weight"):
        flashlib.KMeans(2, device="cpu").fit(X, sample_weight=np.ones(19))


# ---- metrics ----------------------------------------------------------------------------------
def directional_blobs(n=1200, d=10, k=5, seed=0):
    rng = np.random.RandomState(seed)
    dirs = rng.randn(k, d)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    lab = rng.randint(0, k, n)
    X = dirs[lab] + 0.05 * rng.randn(n, d)
    X *= rng.uniform(0.5, 20.0, size=(n, 1))  # norms must not matter for cosine
    return X, lab


def test_cosine_matches_sklearn_on_normalised_data():
    X, truth = directional_blobs()
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    init = Xn[[np.flatnonzero(truth == j)[0] for j in range(5)]]  # one row per direction
    ours = flashlib.KMeans(5, init=init * 3.0, metric="cosine", device="cpu").fit(X)
    ref = SkKMeans(5, init=init, n_init=1).fit(Xn)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert adjusted_rand_score(truth, ours.labels_) >= 0.99
    norms = np.linalg.norm(ours.cluster_centers_, axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6)
    ref_dirs = ref.cluster_centers_ / np.linalg.norm(ref.cluster_centers_, axis=1, keepdims=True)
    assert rel(ours.cluster_centers_, ref_dirs) <= 1e-6
    # transform is 1 - cosine similarity; the scale of X does not matter.
    T = ours.transform(X)
    np.testing.assert_allclose(T, 1.0 - Xn @ ours.cluster_centers_.T, atol=1e-9)
    np.testing.assert_array_equal(ours.predict(X * 7.0), ours.labels_)
    assert ours.inertia_ == pytest.approx(T.min(axis=1).sum(), rel=1e-9)


def test_dot_metric_is_sane():
    X, _ = directional_blobs(seed=1)
    ours = flashlib.KMeans(5, metric="dot", random_state=0, device="cpu").fit(X)
    S = X @ ours.cluster_centers_.T
    assert set(np.unique(ours.labels_)) <= set(range(5))
    np.testing.assert_array_equal(ours.labels_, S.argmax(axis=1))
    np.testing.assert_array_equal(ours.predict(X), ours.labels_)
    np.testing.assert_allclose(ours.transform(X), -S, rtol=1e-9, atol=1e-9)
    assert np.isfinite(ours.inertia_)
    assert ours.score(X) == pytest.approx(-ours.inertia_, rel=1e-9)


def test_euclidean_transform_score_consistent(blobs):
    X, _ = blobs
    km = flashlib.KMeans(6, random_state=1, device="cpu").fit(X)
    T = km.transform(X)
    ref = np.sqrt(((X[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(T, ref, rtol=1e-7, atol=1e-7)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    np.testing.assert_array_equal(km.labels_, T.argmin(axis=1))
    assert km.inertia_ == pytest.approx((T.min(axis=1) ** 2).sum(), rel=1e-9)
    assert km.score(X) == pytest.approx(-km.inertia_, rel=1e-9)
    np.testing.assert_array_equal(km.fit_predict(X), km.labels_)
    np.testing.assert_allclose(km.fit_transform(X), T, rtol=1e-12)


# ---- input handling ---------------------------------------------------------------------------
def test_dtypes_and_layouts(blobs):
    X = blobs[0][:400]
    base = flashlib.KMeans(4, random_state=0, device="cpu").fit(X)
    # ints become float64; lists work; float32 stays float32.
    Xi = np.round(X * 10).astype(np.int64)
    assert flashlib.KMeans(4, random_state=0, device="cpu").fit(Xi).cluster_centers_.dtype == np.float64
    lst = flashlib.KMeans(4, random_state=0, device="cpu").fit(X.tolist())
    np.testing.assert_array_equal(lst.labels_, base.labels_)
    k32 = flashlib.KMeans(4, random_state=0, device="cpu").fit(X.astype(np.float32))
    assert k32.cluster_centers_.dtype == np.float32
    assert k32.transform(X.astype(np.float32)).dtype == np.float32
    assert base.transform(X).dtype == np.float64
    # Fortran order (copied) and a column slice of a wider array (passed with ld): same result.
    for Xv in (np.asfortranarray(X), np.hstack([X, np.zeros((400, 5))])[:, :12]):
        other = flashlib.KMeans(4, random_state=0, device="cpu").fit(Xv)
        np.testing.assert_array_equal(other.labels_, base.labels_)
        np.testing.assert_array_equal(other.cluster_centers_, base.cluster_centers_)
        np.testing.assert_array_equal(base.predict(Xv), base.labels_)
    # Predict on data of the other precision.
    np.testing.assert_array_equal(k32.predict(X), k32.labels_)


def test_strided_rows_are_not_copied():
    from flashlib._base import host_view

    wide = np.arange(60, dtype=np.float64).reshape(6, 10)
    view = wide[1:5, 2:7]
    arr, owner = host_view(view)
    assert owner is view and arr.ld == 10 and arr.rows == 4 and arr.cols == 5
    arr, owner = host_view(wide[::2])  # every other row: ld 20, still no copy
    assert np.shares_memory(owner, wide) and arr.ld == 20
    arr, owner = host_view(wide[:, ::2])  # strided columns need a copy
    assert owner.flags.c_contiguous and arr.ld == 5


BAD_X = {
    "nan": lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X),
    "inf": lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.inf, X),
    "empty_rows": lambda X: X[:0],
    "empty_cols": lambda X: X[:, :0],
    "one_d": lambda X: X[:, 0],
    "strings": lambda X: np.array([["a", "b"]] * 10),
    "too_few_rows": lambda X: X[:3],  # n_clusters=4 > 3 samples
    "sparse": lambda X: __import__("scipy.sparse").sparse.csr_matrix(X),
}
BAD_MESSAGES = {"nan": "NaN", "inf": "infinity", "one_d": "Expected 2D array", "too_few_rows": "n_samples=3"}


def fitted_state(km):
    """Everything fit sets (not the parameters), and the C model object."""
    params = km.get_params()
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in km.__dict__.items()
            if k != "_fl_model" and k not in params}, km.__dict__.get("_fl_model")


def assert_state_equal(a, b):
    (da, ma), (db, mb) = a, b
    assert ma is mb
    assert da.keys() == db.keys()
    for k in da:
        np.testing.assert_array_equal(np.asarray(da[k], dtype=object), np.asarray(db[k], dtype=object))


@pytest.mark.parametrize("kind", sorted(BAD_X))
def test_bad_input_raises_and_changes_nothing(blobs, kind):
    X = blobs[0][:50]
    km = flashlib.KMeans(4, random_state=0, device="cpu").fit(X)
    before = fitted_state(km)
    expected = TypeError if kind == "sparse" else ValueError
    with pytest.raises(expected, match=BAD_MESSAGES.get(kind)):
        km.fit(BAD_X[kind](X))
    assert_state_equal(fitted_state(km), before)
    if kind != "too_few_rows":
        for method in ("predict", "transform", "score"):
            with pytest.raises(expected, match=BAD_MESSAGES.get(kind)):
                getattr(km, method)(BAD_X[kind](X))
    assert_state_equal(fitted_state(km), before)
    # An unfitted estimator stays unfitted.
    fresh = flashlib.KMeans(4, device="cpu")
    with pytest.raises(expected):
        fresh.fit(BAD_X[kind](X))
    assert set(fresh.__dict__) == set(fresh.get_params())


BAD_PARAMS = [
    dict(n_clusters=0), dict(n_clusters=2.5), dict(n_clusters="three"), dict(n_clusters=True),
    dict(max_iter=0), dict(tol=-1.0), dict(tol=float("nan")), dict(n_init=0), dict(n_init="twice"),
    dict(init="kmeans||"), dict(init=np.zeros((3, 5))), dict(init=np.full((4, 12), np.nan)),
    dict(random_state=-1), dict(random_state="seed"), dict(algorithm="full"), dict(metric="manhattan"),
    dict(precision="fp8"), dict(device="tpu"), dict(device="cuda:x"), dict(device=3), dict(verbose=-1),
]


@pytest.mark.parametrize("params", BAD_PARAMS, ids=lambda p: "-".join(f"{k}={v!r}"[:30] for k, v in p.items()))
def test_bad_params_raise_value_error(blobs, params):
    X = blobs[0][:50]
    km = flashlib.KMeans(4, random_state=0, device="cpu").fit(X)
    before = fitted_state(km)
    km.set_params(**params)  # never validated at set time (scikit-learn rule)
    with pytest.raises(ValueError) as info:
        km.fit(X)
    name = next(iter(params))
    if name not in ("init",) or isinstance(params[name], str):
        assert name in str(info.value) or "device" in str(info.value), str(info.value)
    assert_state_equal(fitted_state(km), before)


def test_c_message_reaches_python(blobs):
    with pytest.raises(flashlib.InvalidArgumentError, match=r"n_clusters=0: must be in \[1,") as info:
        flashlib.KMeans(0, device="cpu").fit(blobs[0][:10])
    assert info.value.status == -1 and info.value.status_name == "FL_STATUS_INVALID_ARG"


def test_mismatched_features_at_predict(blobs):
    X = blobs[0][:50, :5]
    km = flashlib.KMeans(3, random_state=0, device="cpu").fit(X)
    for method in ("predict", "transform", "score"):
        with pytest.raises(ValueError, match="X has 3 features, but KMeans is expecting 5 features as input"):
            getattr(km, method)(X[:, :3])


def test_not_fitted():
    km = flashlib.KMeans(device="cpu")
    for method in ("predict", "transform", "score"):
        with pytest.raises(SkNotFittedError) as info:
            getattr(km, method)(np.ones((3, 2)))
        assert isinstance(info.value, flashlib.NotFittedError)
        assert isinstance(info.value, flashlib.FlashlibError)
        assert isinstance(info.value, AttributeError) and isinstance(info.value, ValueError)


# ---- parameters ------------------------------------------------------------------------------
def test_python_signature_matches_c_table():
    py = python_param_names(flashlib.KMeans)
    c = c_param_names(flashlib.KMeans)
    internal = set(flashlib.KMeans._fl_internal)
    missing = [n for n in c if n not in py and n not in internal]
    assert not missing, f"C parameters without a Python counterpart: {missing}"
    extra = [n for n in py if n not in c and n not in flashlib.KMeans._fl_python_only]
    assert not extra, f"Python parameters the C table does not know: {extra}"
    assert internal <= set(c), "an 'internal' parameter left the C table"
    # scikit-learn's parameters, with its defaults, come first.
    sk = SkKMeans().get_params()
    ours = flashlib.KMeans().get_params()
    for name, default in sk.items():
        assert name in ours and ours[name] == default, name


def test_c_defaults_match_python_defaults():
    table = {row["name"]: row for row in flashlib.params("kmeans")}
    km = flashlib.KMeans()
    for name in ("n_clusters", "init", "n_init", "max_iter", "tol", "algorithm", "metric", "precision"):
        py = getattr(km, name)
        c = table[name]["default"]
        assert str(py) == c or (isinstance(py, float) and float(c) == py), (name, py, c)


def test_random_state_semantics(blobs):
    X = blobs[0][:300]
    kw = dict(n_clusters=8, init="random", n_init=1, device="cpu")
    a = flashlib.KMeans(random_state=3, **kw).fit(X).cluster_centers_
    b = flashlib.KMeans(random_state=3, **kw).fit(X).cluster_centers_
    np.testing.assert_array_equal(a, b)
    np.random.seed(11)
    c = flashlib.KMeans(**kw).fit(X).cluster_centers_
    np.random.seed(11)
    d = flashlib.KMeans(**kw).fit(X).cluster_centers_
    np.testing.assert_array_equal(c, d)  # None draws from numpy's global state
    rs = np.random.RandomState(5)
    km = flashlib.KMeans(random_state=rs, **kw)
    seeds = [km.fit(X).cluster_centers_ for _ in range(4)]
    assert any(not np.array_equal(seeds[0], s) for s in seeds[1:])  # the state advances
    e = flashlib.KMeans(random_state=np.random.RandomState(5), **kw).fit(X).cluster_centers_
    np.testing.assert_array_equal(e, seeds[0])


def test_callable_init_and_n_init_warning(blobs):
    X = blobs[0][:300]
    init = first_rows_init(X, 4)
    calls = []

    def my_init(X_, k, random_state):
        calls.append((X_.shape, k))
        return init

    a = flashlib.KMeans(4, init=my_init, device="cpu").fit(X)
    b = flashlib.KMeans(4, init=init, device="cpu").fit(X)
    assert calls == [(X.shape, 4)]
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    with pytest.warns(RuntimeWarning, match="Explicit initial center position passed"):
        flashlib.KMeans(4, init=init, n_init=3, device="cpu").fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flashlib.KMeans(4, init=init, n_init="auto", device="cpu").fit(X)


def test_verbose_prints_to_stderr(blobs, capsys):
    X = blobs[0][:200]
    flashlib.KMeans(3, random_state=0, device="cpu").fit(X)
    assert capsys.readouterr().err == ""
    flashlib.KMeans(3, random_state=0, verbose=1, device="cpu").fit(X)
    err = capsys.readouterr().err
    assert "[flashlib]" in err and "kmeans" in err


def test_interrupt_cancels_the_c_call(blobs, monkeypatch):
    import flashlib._base as base

    X = blobs[0][:200]
    km = flashlib.KMeans(3, random_state=0, device="cpu").fit(X)
    before = fitted_state(km)

    def interrupt(stage, done, total):
        raise KeyboardInterrupt

    monkeypatch.setattr(base, "_stderr_progress", interrupt)
    km.set_params(verbose=1)
    with pytest.raises(KeyboardInterrupt):
        km.fit(X * 2)
    assert_state_equal(fitted_state(km), before)
    monkeypatch.undo()
    km.set_params(verbose=0).fit(X)  # the context still works


# ---- persistence, clone ------------------------------------------------------------------------
def test_pickle_round_trip(blobs):
    X = blobs[0]
    km = flashlib.KMeans(6, random_state=0, device="cpu").fit(X)
    back = pickle.loads(pickle.dumps(km))
    np.testing.assert_array_equal(back.predict(X), km.predict(X))
    np.testing.assert_array_equal(back.cluster_centers_, km.cluster_centers_)
    np.testing.assert_array_equal(back.labels_, km.labels_)
    assert back.inertia_ == km.inertia_ and back.n_iter_ == km.n_iter_
    assert back.n_features_in_ == km.n_features_in_
    assert back.get_params() == km.get_params()
    deep = copy.deepcopy(km)
    np.testing.assert_array_equal(deep.transform(X[:10]), km.transform(X[:10]))
    # unfitted estimators too
    fresh = pickle.loads(pickle.dumps(flashlib.KMeans(5, metric="cosine")))
    assert fresh.get_params() == flashlib.KMeans(5, metric="cosine").get_params()
    with pytest.raises(flashlib.NotFittedError):
        fresh.predict(X)


def test_pickle_carries_the_c_model_format(blobs):
    km = flashlib.KMeans(3, random_state=0, device="cpu").fit(blobs[0][:100])
    state = km.__getstate__()
    data = state["_fl_model_bytes"]
    assert data[:8] == b"FLMODEL\0"
    assert "cluster_centers_" not in state  # rebuilt from the model on load
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= 0xFF
    state["_fl_model_bytes"] = bytes(corrupt)
    with pytest.raises(flashlib.CorruptError) as info:
        flashlib.KMeans().__setstate__(state)
    assert isinstance(info.value, ValueError)
    state["_fl_model_bytes"] = data[:20]
    with pytest.raises(ValueError):
        flashlib.KMeans().__setstate__(state)


def test_clone(blobs):
    km = flashlib.KMeans(4, init="random", metric="cosine", precision="fp32", device="cpu")
    km.fit(blobs[0][:100])
    c = clone(km)
    assert c.get_params() == km.get_params()
    assert not hasattr(c, "cluster_centers_") and "_fl_model" not in c.__dict__


# ---- devices --------------------------------------------------------------------------------
def test_device_cpu_and_auto(blobs):
    X = blobs[0]
    cpu = flashlib.KMeans(6, random_state=0, device="cpu").fit(X)
    auto = flashlib.KMeans(6, random_state=0).fit(X)
    if not flashlib.diagnose(probe=False)["cuda_device_count"]:
        np.testing.assert_array_equal(auto.cluster_centers_, cpu.cluster_centers_)
    else:
        assert adjusted_rand_score(cpu.labels_, auto.labels_) >= 0.99


def test_device_cuda_without_gpu_says_why(blobs):
    d = flashlib.diagnose(probe=False)
    if d["cuda_device_count"]:
        pytest.skip("this machine has a GPU")
    km = flashlib.KMeans(3, device="cuda")
    with pytest.raises(flashlib.NoDeviceError) as info:
        km.fit(blobs[0][:50])
    assert isinstance(info.value, RuntimeError)
    msg = str(info.value)
    assert "cuda" in msg and ("driver" in msg or "GPU" in msg), msg
    assert not hasattr(km, "cluster_centers_")
    assert d["why_no_gpu"] and d["default_device"] == "cpu" and not d["cuda_usable"]


def test_diagnose_and_route():
    d = flashlib.diagnose(probe=False)
    for key in ("summary", "version", "library", "cuda_device_count", "devices", "why_no_gpu", "cuda_usable",
                "default_device", "cuda_loaded", "algorithms"):
        assert key in d
    assert d["version"] == flashlib.__version__ == flashlib.version()
    assert "kmeans" in d["algorithms"]
    r = flashlib.route("kmeans", (100000, 64), {"n_clusters": 256}, device="cpu")
    assert r["backend"] == "cpu" and r["device"] == "cpu" and r["reason"]
    assert flashlib.route("kmeans", (10, 3), device="cpu", dtype=np.float64)["variant"] == "fp64"
    with pytest.raises(ValueError, match="n_clusters"):
        flashlib.route("kmeans", (100, 4), {"n_clusters": "many"}, device="cpu")
    with pytest.raises(ValueError, match="unknown algorithm"):
        flashlib.route("kmedoids", (100, 4), device="cpu")
    with pytest.raises(ValueError):
        flashlib.route("kmeans", (0, 4), device="cpu")


def test_error_classes():
    from flashlib import _errors

    expected = {-1: ValueError, -2: MemoryError, -3: MemoryError, -4: NotImplementedError,
                -5: RuntimeError, -6: RuntimeError, -7: OSError, -8: ValueError, -9: ValueError,
                -11: SkNotFittedError, -12: RuntimeError}
    for code, base in expected.items():
        e = _errors.make_error(code, "why")
        assert isinstance(e, base) and isinstance(e, flashlib.FlashlibError)
        assert e.status == code and str(e) == "why"
        assert e.status_name == _lib.status_name(code)
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and back.status == code and back.message == "why"
    assert type(_errors.make_error(-10, "x")) is flashlib.CancelledError
    assert type(_errors.make_error(-99, "x")) is flashlib.FlashlibError


@pytest.mark.skipif(pytest.importorskip("sklearn") and not __import__("importlib").util.find_spec("pandas"),
                    reason="pandas is not installed")
def test_feature_names_in():
    import pandas as pd

    X = pd.DataFrame(np.random.RandomState(0).rand(40, 3), columns=["a", "b", "c"])
    km = flashlib.KMeans(2, random_state=0, device="cpu").fit(X)
    np.testing.assert_array_equal(km.feature_names_in_, ["a", "b", "c"])
    with pytest.warns(UserWarning, match="feature names"):
        km.predict(X.to_numpy())
    back = pickle.loads(pickle.dumps(km))
    np.testing.assert_array_equal(back.feature_names_in_, ["a", "b", "c"])


# ---- threads ---------------------------------------------------------------------------------
def test_threads_and_shared_contexts(blobs):
    from concurrent.futures import ThreadPoolExecutor

    X = blobs[0]
    seeds = list(range(6))
    serial = [flashlib.KMeans(6, random_state=s, device="cpu").fit(X) for s in seeds]
    # Estimators of one thread and device share a context; other threads get their own.
    assert serial[0]._fl_model.ctx is serial[1]._fl_model.ctx
    with ThreadPoolExecutor(4) as pool:
        par = list(pool.map(lambda s: flashlib.KMeans(6, random_state=s, device="cpu").fit(X), seeds))
        for a, b in zip(serial, par):
            np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
        assert any(p._fl_model.ctx is not serial[0]._fl_model.ctx for p in par)
        # One fitted estimator used from several threads at once.
        km = serial[0]
        outs = list(pool.map(lambda i: km.predict(X[i * 500:(i + 1) * 500]), range(6)))
    np.testing.assert_array_equal(np.concatenate(outs), km.labels_)
