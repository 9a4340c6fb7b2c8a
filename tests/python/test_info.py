"""flashlib.info: the cost model through Python.

Estimates work as the README writes them, importing and estimating needs
neither numpy nor CUDA (checked in fresh interpreters), bad input raises
InfoError naming the nearest valid name, and confidence tiers follow the
data: the weakest part of a compound, "calibrated" only for entries whose
held-out error is <= 20%."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import flashlib.info as info

README = dict(shape=(100_000, 64), params={"K": 256, "max_iters": 20}, device="H200")


def test_readme_call():
    e = info.estimate("kmeans", **README)
    assert e.op == "kmeans" and e.device == "H200" and e.shape == (100_000, 64)
    assert e.runtime_ms > 0 and e.iterations == 20
    assert e.flops >= 2 * 100_000 * 256 * 64 * 20
    assert e.hbm_bytes > 100_000 * 64 * 4
    assert e.peak_memory_bytes > 100_000 * 4 and e.peak_memory_exact
    assert e.bottleneck in ("compute", "memory", "latency", "transfer")
    assert e.confidence in ("measured", "calibrated", "roofline", "heuristic")
    assert e.backend in ("cuda", "cuda-sm90") and e.variant == "tf32"
    names = [s.name for s in e.subops]
    assert any("init" in n for n in names) or any("init" in c.name for s in e.subops for c in s.subops)
    run = [s for s in e.subops if s.name == "run"][0]
    lloyd = [s for s in run.subops if s.name.startswith("lloyd")][0]
    parts = " ".join(c.name for c in lloyd.subops)  # separate kernels, or one fused kernel
    assert lloyd.repeat == 20 and "assign" in parts and "update" in parts
    assert abs(sum(s.runtime_ms for s in e.subops) - e.runtime_ms) <= 1e-9 * e.runtime_ms
    line = e.summary_line()
    assert "kmeans" in line and "H200" in line and f"[{e.confidence}]" in line
    tree = e.tree()
    assert tree.count("\n") >= len(names) + 2 and "assign" in tree
    d = e.to_dict()
    assert d["runtime_ms"] == pytest.approx(e.runtime_ms) and d["confidence"] == e.confidence
    assert d["tree"]["subops"][0]["name"] == names[0]
    json.dumps(d)  # serialisable


def test_aliases_and_sklearn_names_agree():
    a = info.estimate("kmeans", (100_000, 64), {"K": 256, "max_iters": 20}, device="H200")
    b = info.estimate("kmeans", (100_000, 64), "n_clusters=256,max_iter=20", device="h200", dtype="float32")
    assert a.runtime_ms == b.runtime_ms and a.peak_memory_bytes == b.peak_memory_bytes


def test_every_op_estimates():
    for op in info.ops():
        shape = (2048, 2048, 512)[: op["ndim"][1]]
        e = info.estimate(op["name"], shape, device="H100")
        assert e.runtime_ms > 0, op["name"]
        if not op["implemented"]:
            assert e.confidence in ("roofline", "heuristic", "calibrated"), op["name"]
            assert any("not implemented" in n for n in e.notes), op["name"]


def _walk(nodes):
    for n in nodes:
        yield n
        yield from _walk(n.subops)


@pytest.mark.parametrize("op,shape,params", [
    ("kmeans", (100_000, 64), {"K": 256}),
    ("dbscan", (50_000, 8), None),
    ("pca", (1_000_000, 256), None),
    ("spectral_clustering", (5000, 16), {"n_clusters": 8}),
    ("ivf_pq", (1_000_000, 96), {"nlist": 1024}),
])
def test_compound_takes_the_weakest_tier(op, shape, params):
    order = {t: i for i, t in enumerate(info.TIERS)}
    e = info.estimate(op, shape, params, device="H100")
    nodes = list(_walk(e.subops))
    if e.confidence != "measured":
        assert order[e.confidence] == min(order[n.confidence] for n in nodes)


def test_tiers_follow_the_calibration_data():
    for c in info.calibrations():
        assert c["calibrated"] == (c["median_err"] <= 0.20)
        assert c["n_holdout"] > 0 and c["describe"]
        if c["op"] != "kmeans":
            continue
        prec, _, path = c["variant"].partition("-")  # "tf32-sm90": the entry of those kernels
        shape, k = {"sm90": ((200_000, 64), 1024), "fused": ((200_000, 32), 64)}.get(path, ((200_000, 100), 512))
        e = info.estimate("kmeans", shape, {"n_clusters": k, "precision": prec, "expected_iter": 17},
                          device=c["device"])
        if e.model_key != c["variant"]:
            continue  # this shape runs other kernels on that device
        if e.confidence != "measured":
            assert e.confidence == ("calibrated" if c["calibrated"] else "heuristic")
    # no entry for this (variant, device) pair: roofline on a GPU, heuristic on the nominal CPU
    have = {(c["op"], c["variant"], c["device"]) for c in info.calibrations()}
    if ("kmeans", "tf32", "L40S") not in have:
        assert info.estimate("kmeans", (10_000, 32), {"K": 64}, device="L40S").confidence == "roofline"
    assert info.estimate("kmeans", (10_000, 32), {"K": 64}, device="cpu").confidence == "heuristic"


def test_pareto_and_tolerance_choice():
    front = info.pareto("gemm", (8192, 8192, 8192), device="H100")
    every = info.pareto("gemm", (8192, 8192, 8192), device="H100", include_dominated=True)
    assert 3 <= len(front) < len(every) == 12
    for a, b in zip(front, front[1:]):
        assert a["runtime_ms"] <= b["runtime_ms"] and a["expected_residual"] > b["expected_residual"]
    for tol in (1e-2, 1e-3, 1e-5, 1e-7):
        e = info.estimate("gemm", (8192, 8192, 8192), device="H100", tol=tol)
        assert e.expected_residual <= tol
        ok = [v for v in every if v["expected_residual"] <= tol]
        assert e.runtime_ms <= min(v["runtime_ms"] for v in ok) * (1 + 1e-9)
        assert e.variant in {v["name"] for v in ok}


def test_compare_never_invents():
    c = info.compare("kmeans", (500_000, 64), {"K": 64}, device="H200")
    assert c["flashlib"].runtime_ms > 0
    assert set(c["references"]) == {"scikit-learn", "pytorch"}
    for r in c["references"].values():
        if r["measured"]:
            assert r["anchor_ms"] > 0 and r["scale"] > 0 and r["anchor_source"]
            assert r["runtime_ms"] == pytest.approx(r["anchor_ms"] * r["scale"])
        else:
            assert "runtime_ms" not in r and "no anchor" in r["scaling"]
    u = info.compare("umap", (50_000, 64))
    assert not any(r["measured"] for r in u["references"].values())


@pytest.mark.parametrize("call,needle", [
    (lambda: info.estimate("kmean", (100, 4)), "did you mean 'kmeans'"),
    (lambda: info.estimate("kmeans", (100, 4), device="H201"), "did you mean"),
    (lambda: info.estimate("kmeans", (100, 4), {"n_cluster": 3}), "did you mean 'n_clusters'"),
    (lambda: info.estimate("kmeans", (100, 4), {"max_iterz": 3}), "did you mean 'max_iter'"),
    (lambda: info.estimate("kmeans", (100, 4), {"K": 0}), "must be in"),
    (lambda: info.estimate("kmeans", (100, 4), {"K": 101}), "n_samples=100"),
    (lambda: info.estimate("kmeans", (100, 4), {"K": 3, "n_clusters": 3}), "given twice"),
    (lambda: info.estimate("kmeans", (0, 4)), ">= 1"),
    (lambda: info.estimate("kmeans", (-5, 4)), ">= 1"),
    (lambda: info.estimate("kmeans", (2**62, 2**20)), "overflows 64 bits"),
    (lambda: info.estimate("kmeans", (2**64, 4)), "64 bits"),
    (lambda: info.estimate("kmeans", (100,)), "dimension"),
    (lambda: info.estimate("kmeans", "100x4"), "shape"),
    (lambda: info.estimate("kmeans", (100, 4), dtype="f17"), "unknown dtype"),
    (lambda: info.estimate("kmeans", (100, 4), {"init": "kmeans"}), "expected one of"),
    (lambda: info.estimate("kmeans", (100, 4), {"K": "a b"}), "may not contain"),
    (lambda: info.estimate("gemm", (2**30, 2**30, 2**30)), "overflows 64 bits"),
    (lambda: info.pareto("gemn", (8, 8, 8)), "unknown family"),
    (lambda: info.devices("Z80"), "unknown device"),
])
def test_bad_input_raises_with_a_suggestion(call, needle):
    with pytest.raises(info.InfoError, match=None) as ex:
        call()
    assert needle in str(ex.value), str(ex.value)


def test_devices_have_sources():
    names = {d["name"] for d in info.devices()}
    assert {"H100-SXM", "H100-PCIe", "H200", "A100-40GB", "A100-80GB", "L40S", "B200", "cpu"} <= names
    h = info.devices("H100")
    assert h["name"] == "H100-SXM" and h["peak_tflops"]["bf16"] == pytest.approx(989.4)
    assert h["measured_tflops"]["tf32"] == 397 and h["copy_gbs_measured"] == 2990
    for d in info.devices():
        assert d["peak_source"] and d["memory_source"]


STUB = textwrap.dedent("""
    import sys

    class _NoNumpy:
        def find_spec(self, name, path=None, target=None):
            if name == "numpy" or name.startswith("numpy."):
                raise ImportError("numpy is not installed (test stub)")
            return None

    sys.meta_path.insert(0, _NoNumpy())
    try:
        import numpy  # noqa: F401
        raise SystemExit("the stub did not block numpy")
    except ImportError:
        pass
    import flashlib.info as info
    e = info.estimate("kmeans", shape=(100_000, 64), params={"K": 256, "max_iters": 20}, device="H200")
    e.print_tree()
    info.estimate("kmeans", (1000, 8), {"K": 4}, device="this")
    info.pareto("gemm", (4096, 4096, 4096))
    info.compare("kmeans", (10_000, 8), {"K": 4})
    maps = open("/proc/self/maps").read()
    bad = [lib for lib in ("libcuda.so", "libflashlib_cuda", "libcudart", "libcublas") if lib in maps]
    assert not bad, bad
    assert "numpy" not in sys.modules
    print("OK", info.library_path)
""")


def test_import_without_numpy_and_never_cuda(subprocess_env):
    out = subprocess.run([sys.executable, "-c", STUB], env=subprocess_env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "OK" in out.stdout


def test_standalone_library_maps_nothing_but_libc(subprocess_env):
    """libflashlib_info.so alone: no BLAS, no OpenMP, no libflashlib."""
    path = os.path.join(os.path.dirname(subprocess_env["FLASHLIB_LIBRARY"]), "libflashlib_info.so")
    if not os.path.isfile(path):
        pytest.skip(f"{path} not built")
    code = textwrap.dedent(f"""
        import ctypes
        lib = ctypes.CDLL({path!r})
        maps = open("/proc/self/maps").read()
        bad = [x for x in ("openblas", "gomp", "libflashlib.so", "libcuda", "libstdc++") if x in maps]
        assert not bad, bad
        print("OK")
    """)
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr
