"""What importing flashlib loads: nothing heavy, and never CUDA. Each test
runs in a fresh interpreter so that nothing this test process loaded counts."""

import json
import subprocess
import sys
import textwrap

import pytest


def run(code, env):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


MAPS = """
def cuda_maps():
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1] for line in f
                       if "libcuda" in line or "libflashlib_cuda" in line})
"""


def test_import_loads_nothing(subprocess_env):
    r = run("""
        import json, sys
        import flashlib
        after_import = {m: m in sys.modules for m in ("numpy", "sklearn", "flashlib._lib")}
        v = flashlib.version()
        after_version = {m: m in sys.modules for m in ("numpy", "sklearn")}
        print(json.dumps({"import": after_import, "version": after_version, "v": v,
                          "pkg": flashlib.__version__}))
    """, subprocess_env)
    assert r["import"] == {"numpy": False, "sklearn": False, "flashlib._lib": False}
    assert r["version"] == {"numpy": False, "sklearn": False}
    assert r["v"] == r["pkg"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cpu_fit_never_loads_cuda(subprocess_env, dtype):
    r = run(MAPS + textwrap.dedent(f"""
        import json
        import flashlib
        before = cuda_maps()
        import numpy as np
        X = np.random.RandomState(0).rand(500, 8).astype("{dtype}")
        km = flashlib.KMeans(4, random_state=0, device="cpu").fit(X)
        km.predict(X); km.transform(X); km.score(X)
        import pickle
        pickle.loads(pickle.dumps(km)).predict(X)
        flashlib.release_device_memory()  # CPU contexts only: nothing to release, nothing loaded
        from flashlib import _lib
        print(json.dumps({{"before": before, "after": cuda_maps(), "flag": _lib.cuda_loaded()}}))
    """), subprocess_env)
    assert r == {"before": [], "after": [], "flag": False}


def test_wrong_library_version_is_a_clear_import_error(subprocess_env, tmp_path):
    r = run("""
        import json
        import flashlib._version as v
        v.__version__ = "9.9.9"
        try:
            import flashlib._lib
        except ImportError as e:
            print(json.dumps({"error": str(e)}))
        else:
            print(json.dumps({"error": None}))
    """, subprocess_env)
    assert r["error"] and "9.9.9" in r["error"] and "0.1.0" in r["error"]


def test_missing_library_is_a_clear_import_error(subprocess_env, tmp_path):
    env = dict(subprocess_env, FLASHLIB_LIBRARY=str(tmp_path / "nope.so"))
    r = run("""
        import json
        import flashlib  # still fine: nothing is loaded yet
        try:
            flashlib.KMeans
        except ImportError as e:
            print(json.dumps({"error": str(e)}))
    """, env)
    assert "nope.so" in r["error"] and "FLASHLIB_LIBRARY" in r["error"]


def test_works_without_sklearn(subprocess_env):
    """The fallbacks used when scikit-learn is not installed: parameters,
    validation messages, errors, pickling."""
    r = run("""
        import json, pickle, sys
        sys.modules["sklearn"] = None  # makes `import sklearn...` raise ImportError
        import numpy as np
        import flashlib
        X = np.random.RandomState(0).rand(200, 5)
        km = flashlib.KMeans(3, random_state=0, device="cpu")
        out = {"repr": repr(km), "params": sorted(km.get_params())}
        km.fit(X)
        out["labels_ok"] = bool((km.predict(X) == km.labels_).all())
        out["nf"] = km.n_features_in_
        errors = {}
        for name, bad in [("1d", X[:, 0]), ("nan", np.where(X > 0.99, np.nan, X)),
                          ("inf", np.where(X > 0.99, np.inf, X)), ("empty", X[:0]),
                          ("features", X[:, :3])]:
            try:
                km.predict(bad)
            except ValueError as e:
                errors[name] = str(e)
        out["errors"] = errors
        nf = flashlib.NotFittedError
        out["nf_bases"] = [issubclass(nf, ValueError), issubclass(nf, AttributeError)]
        try:
            flashlib.KMeans().predict(X)
        except nf as e:
            out["not_fitted"] = str(e)
        back = pickle.loads(pickle.dumps(km))
        out["pickle_ok"] = bool((back.predict(X) == km.labels_).all())
        km.set_params(n_clusters=4)
        try:
            km.set_params(bogus=1)
        except ValueError as e:
            out["set_params"] = str(e)
        out["sklearn_loaded"] = any(m.startswith("sklearn.") for m in sys.modules)
        print(json.dumps(out))
    """, subprocess_env)
    assert r["repr"] == "KMeans(device='cpu', n_clusters=3, random_state=0)"
    assert "n_clusters" in r["params"] and "device" in r["params"]
    assert r["labels_ok"] and r["pickle_ok"] and r["nf"] == 5
    e = r["errors"]
    assert "Expected 2D array" in e["1d"] and "NaN" in e["nan"] and "infinity" in e["inf"]
    assert "0 sample(s)" in e["empty"]
    assert e["features"] == "X has 3 features, but KMeans is expecting 5 features as input."
    assert r["nf_bases"] == [True, True] and "not fitted" in r["not_fitted"]
    assert "bogus" in r["set_params"]
    assert not r["sklearn_loaded"]
