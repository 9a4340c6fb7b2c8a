"""flashlib.info — the cost model: what an op will cost before running it.

    import flashlib.info as info
    e = info.estimate("kmeans", shape=(100_000, 64), params={"K": 256, "max_iters": 20}, device="H200")
    print(e.summary_line())
    e.print_tree()

Standard library only: this module loads libflashlib_info.so (libc + libm,
nothing else) through ctypes. It imports no numpy, loads no CUDA and needs
no GPU, so it works on a laptop, in CI, or inside an agent's loop (about a
microsecond in C, a few more through Python).

Functions: estimate, pareto, compare, devices, ops, calibrations.
Errors: InfoError (a ValueError) with the library's message, which names
the nearest valid op, device or parameter.

The library is looked for at $FLASHLIB_INFO_LIBRARY, beside
$FLASHLIB_LIBRARY, next to this file, then in the source tree's build/lib;
libflashlib.so (which contains the same functions) is the last resort.
"""

import ctypes
import os
import threading
from ctypes import POINTER, Structure, c_char, c_char_p, c_double, c_int, c_int32, c_int64, c_size_t, c_uint64

__all__ = ["estimate", "pareto", "compare", "devices", "ops", "calibrations", "Estimate", "SubOp", "InfoError"]

MAX_DIMS, MAX_NODES, MAX_NOTES, MAX_REFS, NPREC = 4, 24, 12, 4, 8
BOUNDS = ("compute", "memory", "latency", "transfer")
TIERS = ("heuristic", "roofline", "calibrated", "measured")
PRECS = ("fp64", "fp64-tensor", "fp32", "tf32", "bf16", "fp16", "fp8", "int8")


class InfoError(ValueError):
    """Bad input to the cost model: unknown op, device, dtype or parameter,
    a size < 1, a shape whose bytes overflow 64 bits. The message says what
    was wrong and, for names, the nearest valid one."""


# ---- C structures (flashlib_info.h) -------------------------------------------
class _Node(Structure):
    _fields_ = [
        ("name", c_char_p), ("detail", c_char_p), ("parent", c_int32), ("depth", c_int32),
        ("repeat", c_double), ("runtime_ms", c_double), ("flops", c_double), ("hbm_bytes", c_double),
        ("launches", c_double), ("bound", c_int), ("tier", c_int),
    ]


class _Result(Structure):
    _fields_ = [
        ("op", c_char_p), ("device", c_char_p), ("dtype", c_char_p), ("ndim", c_int32),
        ("shape", c_int64 * MAX_DIMS),
        ("runtime_ms", c_double), ("flops", c_double), ("hbm_bytes", c_double), ("iterations", c_double),
        ("peak_memory_bytes", c_uint64), ("peak_host_bytes", c_uint64),
        ("peak_memory_exact", c_int32), ("fits_in_memory", c_int32),
        ("bound", c_int), ("achieved_tflops", c_double), ("achieved_gbs", c_double),
        ("peak_share", c_double), ("peak_value", c_double), ("peak_what", c_char_p),
        ("expected_residual", c_double), ("implemented", c_int32),
        ("backend", c_char * 16), ("variant", c_char * 32), ("reason", c_char * 256),
        ("tier", c_int), ("calibration", c_char_p), ("model_key", c_char_p),
        ("n_nodes", c_int32), ("nodes", _Node * MAX_NODES),
        ("n_notes", c_int32), ("notes", c_char_p * MAX_NOTES),
    ]


class _Variant(Structure):
    _fields_ = [
        ("name", c_char_p), ("runtime_ms", c_double), ("expected_residual", c_double),
        ("residual_source", c_char_p), ("tier", c_int), ("dominated", c_int32),
    ]


class _Reference(Structure):
    _fields_ = [
        ("name", c_char_p), ("where", c_char_p), ("measured", c_int32), ("runtime_ms", c_double),
        ("speedup", c_double), ("anchor_ms", c_double), ("anchor_ndim", c_int32),
        ("anchor_shape", c_int64 * MAX_DIMS), ("anchor_params", c_char_p), ("anchor_device", c_char_p),
        ("anchor_source", c_char_p), ("scaling", c_char_p), ("scale", c_double),
    ]


class _Comparison(Structure):
    _fields_ = [("flashlib", _Result), ("n_refs", c_int32), ("refs", _Reference * MAX_REFS)]


class _Device(Structure):
    _fields_ = [
        ("name", c_char_p), ("aliases", c_char_p), ("description", c_char_p), ("is_gpu", c_int32),
        ("sm_major", c_int32), ("sm_minor", c_int32), ("sm_count", c_int32),
        ("l2_bytes", c_int64), ("memory_bytes", c_int64), ("smem_per_sm_bytes", c_int64),
        ("hbm_gbs", c_double), ("copy_gbs", c_double), ("h2d_gbs", c_double), ("launch_us", c_double),
        ("peak_tflops", c_double * NPREC), ("measured_tflops", c_double * NPREC),
        ("peak_source", c_char_p), ("measured_source", c_char_p), ("memory_source", c_char_p),
    ]


class _Op(Structure):
    _fields_ = [
        ("name", c_char_p), ("family", c_char_p), ("shape_doc", c_char_p), ("summary", c_char_p),
        ("implemented", c_int32), ("min_ndim", c_int32), ("max_ndim", c_int32),
    ]


class _Calibration(Structure):
    _fields_ = [
        ("op", c_char_p), ("variant", c_char_p), ("dtype", c_char_p), ("device", c_char_p),
        ("median_err", c_double), ("p90_err", c_double), ("n_fit", c_int32), ("n_holdout", c_int32),
        ("calibrated", c_int32), ("describe", c_char_p),
    ]


_Shape = c_int64 * MAX_DIMS
_PROTOTYPES = [
    ("fl_info_estimate", c_int, [c_char_p, _Shape, c_int, c_char_p, c_char_p, c_char_p, POINTER(_Result),
                                 c_char_p, c_size_t]),
    ("fl_info_summary", c_size_t, [POINTER(_Result), c_char_p, c_size_t]),
    ("fl_info_tree", c_size_t, [POINTER(_Result), c_char_p, c_size_t]),
    ("fl_info_json", c_size_t, [POINTER(_Result), c_char_p, c_size_t]),
    ("fl_info_pareto", c_int, [c_char_p, _Shape, c_int, c_char_p, c_char_p, c_char_p, c_int,
                               POINTER(_Variant), c_int, POINTER(c_int), c_char_p, c_size_t]),
    ("fl_info_compare", c_int, [c_char_p, _Shape, c_int, c_char_p, c_char_p, c_char_p, POINTER(_Comparison),
                                c_char_p, c_size_t]),
    ("fl_info_device_count", c_int, []),
    ("fl_info_device_at", POINTER(_Device), [c_int]),
    ("fl_info_device_find", POINTER(_Device), [c_char_p]),
    ("fl_info_op_count", c_int, []),
    ("fl_info_op_at", POINTER(_Op), [c_int]),
    ("fl_info_op_param", c_int, [c_char_p, c_int, POINTER(c_char_p), POINTER(c_char_p), POINTER(c_char_p),
                                 POINTER(c_char_p), POINTER(c_int)]),
    ("fl_info_calibration_at", c_int, [c_int, POINTER(_Calibration)]),
    ("fl_info_sizeof", c_size_t, [c_char_p]),
]


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    out = []
    env = os.environ.get("FLASHLIB_INFO_LIBRARY")
    if env:
        return [env]
    main = os.environ.get("FLASHLIB_LIBRARY")
    if main:
        out.append(os.path.join(os.path.dirname(main), "libflashlib_info.so"))
    out.append(os.path.join(here, "libflashlib_info.so"))
    out.append(os.path.normpath(os.path.join(here, "..", "..", "build", "lib", "libflashlib_info.so")))
    if main:
        out.append(main)  # libflashlib contains fl_info_* too
    out.append(os.path.join(here, "libflashlib.so"))
    out.append(os.path.normpath(os.path.join(here, "..", "..", "build", "lib", "libflashlib.so")))
    return out


def _load():
    tried = _candidates()
    for path in tried:
        if os.path.isfile(path):
            lib = ctypes.CDLL(path)
            for name, res, args in _PROTOTYPES:
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = res, args
            for tname, cls in (("result", _Result), ("node", _Node), ("variant", _Variant),
                               ("reference", _Reference), ("comparison", _Comparison), ("device", _Device),
                               ("calibration", _Calibration)):
                if lib.fl_info_sizeof(tname.encode()) != ctypes.sizeof(cls):
                    raise ImportError(f"flashlib.info: {path} has another layout of fl_info_{tname} "
                                      "(a library from another version?)")
            return lib, path
    raise ImportError("flashlib.info: libflashlib_info.so not found (looked in "
                      + ", ".join(tried) + "); build it with `cmake --build build --target flashlib_info` "
                      "or set FLASHLIB_INFO_LIBRARY")


_lib, library_path = _load()
_tls = threading.local()


def _errbuf():
    buf = getattr(_tls, "err", None)
    if buf is None:
        buf = _tls.err = ctypes.create_string_buffer(1024)
    return buf


def _s(b):
    return b.decode("utf-8", "replace") if b is not None else None


def _shape(shape):
    if type(shape) is int:
        shape = (shape,)
    try:
        n = len(shape)
        if not 1 <= n <= MAX_DIMS:
            raise InfoError(f"shape={shape!r}: expected 1 to {MAX_DIMS} dimensions")
        lo, hi = min(shape), max(shape)
        if lo < -2**63 or hi >= 2**63:
            raise InfoError(f"shape={shape!r}: sizes must fit in 64 bits")
        return _Shape(*shape), n
    except TypeError:
        raise InfoError(f"shape={shape!r}: expected a tuple of 1 to 4 integers") from None


def _params(params, tol=None):
    """'name=value ...' for the C parser. Booleans become true/false; a
    value may not contain the separators (spaces, ',', ';')."""
    if params is None:
        text = ""
    elif type(params) is str:
        text = params
    elif isinstance(params, dict):
        parts = []
        for k, v in params.items():
            if v is None:
                continue
            v = "true" if v is True else "false" if v is False else str(v)
            k = str(k)
            if not v or " " in v or "," in v or ";" in v or "=" in k or " " in k:
                raise InfoError(f"parameter {k}={v!r}: names and values may not contain spaces, ',' or ';'")
            parts.append(k + "=" + v)
        text = " ".join(parts)
    else:
        raise InfoError(f"params={params!r}: expected a dict or a 'name=value ...' string")
    if tol is not None:
        text += f" tol={tol!r}"
    return text.encode()


def _enc(s, what):
    if s is None:
        return None
    if not isinstance(s, str):
        raise InfoError(f"{what}={s!r}: expected a string")
    return s.encode()


class SubOp:
    """One node of the sub-operation tree (runtime and counts are totals
    over all its repeats)."""

    __slots__ = ("name", "detail", "repeat", "runtime_ms", "flops", "hbm_bytes", "launches", "bottleneck",
                 "confidence", "subops")

    def to_dict(self):
        return {"name": self.name, "detail": self.detail, "repeat": self.repeat, "runtime_ms": self.runtime_ms,
                "flops": self.flops, "hbm_bytes": self.hbm_bytes, "launches": self.launches,
                "bottleneck": self.bottleneck, "confidence": self.confidence,
                "subops": [c.to_dict() for c in self.subops]}

    def __repr__(self):
        return f"SubOp({self.name!r}, {self.runtime_ms:.4g} ms, {self.bottleneck}, {self.confidence})"


class Estimate:
    """What fl_info_estimate returned. Fields are read from the C result on
    access; the tree (subops) is built on first use."""

    __slots__ = ("_r", "_subops")

    def __init__(self, r):
        self._r = r
        self._subops = None

    op = property(lambda s: _s(s._r.op))
    device = property(lambda s: _s(s._r.device))
    dtype = property(lambda s: _s(s._r.dtype))
    shape = property(lambda s: tuple(s._r.shape[: s._r.ndim]))
    runtime_ms = property(lambda s: s._r.runtime_ms)
    flops = property(lambda s: s._r.flops)
    hbm_bytes = property(lambda s: s._r.hbm_bytes)
    iterations = property(lambda s: s._r.iterations)
    peak_memory_bytes = property(lambda s: s._r.peak_memory_bytes)
    peak_host_bytes = property(lambda s: s._r.peak_host_bytes)
    peak_memory_exact = property(lambda s: bool(s._r.peak_memory_exact))
    fits_in_memory = property(lambda s: bool(s._r.fits_in_memory))
    bottleneck = property(lambda s: BOUNDS[s._r.bound])
    bound = bottleneck
    achieved_tflops = property(lambda s: s._r.achieved_tflops)
    achieved_gbs = property(lambda s: s._r.achieved_gbs)
    peak_share = property(lambda s: s._r.peak_share)
    peak_value = property(lambda s: s._r.peak_value)
    peak_what = property(lambda s: _s(s._r.peak_what))
    expected_residual = property(lambda s: s._r.expected_residual if s._r.expected_residual >= 0 else None)
    implemented = property(lambda s: bool(s._r.implemented))
    backend = property(lambda s: _s(s._r.backend))
    variant = property(lambda s: _s(s._r.variant))
    reason = property(lambda s: _s(s._r.reason))
    confidence = property(lambda s: TIERS[s._r.tier])
    calibration = property(lambda s: _s(s._r.calibration))
    model_key = property(lambda s: _s(s._r.model_key))
    notes = property(lambda s: [_s(s._r.notes[i]) for i in range(s._r.n_notes)])

    @property
    def subops(self):
        """The root's children (each with .subops of its own)."""
        if self._subops is None:
            r = self._r
            nodes = []
            for i in range(r.n_nodes):
                n = r.nodes[i]
                o = SubOp()
                o.name, o.detail = _s(n.name), _s(n.detail)
                o.repeat, o.runtime_ms, o.flops = n.repeat, n.runtime_ms, n.flops
                o.hbm_bytes, o.launches = n.hbm_bytes, n.launches
                o.bottleneck, o.confidence, o.subops = BOUNDS[n.bound], TIERS[n.tier], []
                nodes.append(o)
                if n.parent >= 0:
                    nodes[n.parent].subops.append(o)
            self._subops = nodes[0].subops if nodes else []
        return self._subops

    def _fmt(self, fn):
        buf = ctypes.create_string_buffer(4096)
        need = fn(ctypes.byref(self._r), buf, len(buf))
        if need >= len(buf):
            buf = ctypes.create_string_buffer(need + 1)
            fn(ctypes.byref(self._r), buf, len(buf))
        return buf.value.decode("utf-8", "replace")

    def summary_line(self):
        return self._fmt(_lib.fl_info_summary)

    def tree(self):
        """The tree as text (what print_tree prints)."""
        return self._fmt(_lib.fl_info_tree)

    def print_tree(self, file=None):
        print(self.tree(), end="", file=file)

    def to_json(self):
        return self._fmt(_lib.fl_info_json)

    def to_dict(self):
        import json  # standard library, loaded only when asked for

        return json.loads(self.to_json())

    def __repr__(self):
        return f"Estimate({self.summary_line()})"


def estimate(op, shape, params=None, device=None, dtype=None, tol=None):
    """Estimate `op` on `shape` (kmeans: (n_samples, n_features); gemm:
    (M, K, N)) with `params` (a dict by scikit-learn name or alias, or a
    "name=value ..." string) on `device` (a name of devices(), or "this";
    default "H100") for data of `dtype` (default "float32"). `tol` is the
    same as params={"tol": tol}. Raises InfoError on bad input."""
    dims, nd = _shape(shape)
    r = _Result()
    err = _errbuf()
    rc = _lib.fl_info_estimate(_enc(op, "op"), dims, nd, _params(params, tol), _enc(dtype, "dtype"),
                               _enc(device, "device"), ctypes.byref(r), err, len(err))
    if rc:
        raise InfoError(err.value.decode("utf-8", "replace"))
    return Estimate(r)


def pareto(family, shape, params=None, device=None, dtype=None, include_dominated=False):
    """The variants of `family` ("gemm", "eigh", "polar") on the Pareto front
    of runtime vs expected residual, fastest first (every variant with
    include_dominated=True), as dicts."""
    dims, nd = _shape(shape)
    out = (_Variant * 32)()
    n = c_int(0)
    err = _errbuf()
    rc = _lib.fl_info_pareto(_enc(family, "family"), dims, nd, _params(params), _enc(dtype, "dtype"),
                             _enc(device, "device"), int(bool(include_dominated)), out, 32, ctypes.byref(n), err,
                             len(err))
    if rc:
        raise InfoError(err.value.decode("utf-8", "replace"))
    return [{"name": _s(v.name), "runtime_ms": v.runtime_ms, "expected_residual": v.expected_residual,
             "residual_source": _s(v.residual_source), "confidence": TIERS[v.tier], "dominated": bool(v.dominated)}
            for v in out[: min(n.value, 32)]]


def compare(op, shape, params=None, device=None, dtype=None):
    """flashlib's estimate beside references measured by bench/calib
    (scikit-learn on the GPU machine's CPU, plain PyTorch on the GPU) at
    anchor shapes and scaled by the op's complexity model. A reference
    without a measured anchor has measured=False and no numbers."""
    dims, nd = _shape(shape)
    c = _Comparison()
    err = _errbuf()
    rc = _lib.fl_info_compare(_enc(op, "op"), dims, nd, _params(params), _enc(dtype, "dtype"), _enc(device, "device"),
                              ctypes.byref(c), err, len(err))
    if rc:
        raise InfoError(err.value.decode("utf-8", "replace"))
    refs = {}
    for r in c.refs[: c.n_refs]:
        d = {"where": _s(r.where), "measured": bool(r.measured), "scaling": _s(r.scaling)}
        if r.measured:
            d.update(runtime_ms=r.runtime_ms, speedup=r.speedup, anchor_ms=r.anchor_ms,
                     anchor_shape=tuple(r.anchor_shape[: r.anchor_ndim]), anchor_params=_s(r.anchor_params),
                     anchor_device=_s(r.anchor_device), anchor_source=_s(r.anchor_source), scale=r.scale)
        refs[_s(r.name)] = d
    f = _Result()
    ctypes.memmove(ctypes.byref(f), ctypes.byref(c.flashlib), ctypes.sizeof(_Result))
    return {"flashlib": Estimate(f), "references": refs, "shape": tuple(dims[:nd]), "device": _s(c.flashlib.device),
            "dtype": _s(c.flashlib.dtype)}


def _device_dict(d):
    return {
        "name": _s(d.name), "aliases": _s(d.aliases).split("|"), "description": _s(d.description),
        "is_gpu": bool(d.is_gpu), "compute_capability": f"{d.sm_major}.{d.sm_minor}" if d.is_gpu else None,
        "sm_count": d.sm_count, "l2_bytes": d.l2_bytes, "memory_bytes": d.memory_bytes,
        "hbm_gbs": d.hbm_gbs, "copy_gbs_measured": d.copy_gbs or None, "h2d_gbs": d.h2d_gbs,
        "peak_tflops": {PRECS[i]: d.peak_tflops[i] for i in range(NPREC) if d.peak_tflops[i] > 0},
        "measured_tflops": {PRECS[i]: d.measured_tflops[i] for i in range(NPREC) if d.measured_tflops[i] > 0},
        "peak_source": _s(d.peak_source), "measured_source": _s(d.measured_source),
        "memory_source": _s(d.memory_source),
    }


def devices(name=None):
    """The device table as dicts (or the one row `name` resolves to)."""
    if name is not None:
        p = _lib.fl_info_device_find(_enc(name, "name"))
        if not p:
            raise InfoError(f"unknown device {name!r} (known: {', '.join(d['name'] for d in devices())}, this)")
        return _device_dict(p.contents)
    return [_device_dict(_lib.fl_info_device_at(i).contents) for i in range(_lib.fl_info_device_count())]


def ops():
    """Every op the cost model knows, with its parameters."""
    out = []
    for i in range(_lib.fl_info_op_count()):
        o = _lib.fl_info_op_at(i).contents
        params = []
        name, default, aliases, doc, io = c_char_p(), c_char_p(), c_char_p(), c_char_p(), c_int()
        k = 0
        while _lib.fl_info_op_param(o.name, k, ctypes.byref(name), ctypes.byref(default), ctypes.byref(aliases),
                                    ctypes.byref(doc), ctypes.byref(io)) == 0:
            params.append({"name": _s(name.value), "default": _s(default.value),
                           "aliases": _s(aliases.value).split("|") if aliases.value else [],
                           "doc": _s(doc.value), "info_only": bool(io.value)})
            k += 1
        out.append({"name": _s(o.name), "family": _s(o.family), "shape": _s(o.shape_doc),
                    "summary": _s(o.summary), "implemented": bool(o.implemented),
                    "ndim": (o.min_ndim, o.max_ndim), "params": params})
    return out


def calibrations():
    """The calibration entries compiled into the library, with the errors
    each made on shapes held out of its fit."""
    out, i, c = [], 0, _Calibration()
    while _lib.fl_info_calibration_at(i, ctypes.byref(c)) == 0:
        out.append({"op": _s(c.op), "variant": _s(c.variant), "dtype": _s(c.dtype), "device": _s(c.device),
                    "median_err": c.median_err, "p90_err": c.p90_err, "n_fit": c.n_fit, "n_holdout": c.n_holdout,
                    "calibrated": bool(c.calibrated), "describe": _s(c.describe)})
        i += 1
    return out
