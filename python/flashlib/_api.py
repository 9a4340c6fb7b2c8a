"""Module-level functions: version(), diagnose(), route(), params().

Standard library only (no numpy), so they work in minimal environments.
"""

import ctypes
import numbers
from ctypes import byref

from . import _errors, _lib
from ._version import __version__


def version():
    """The version of the loaded C library (e.g. "0.1.0"); equal to
    flashlib.__version__, which the package checks on load."""
    return _lib.version()


def _probe_cuda(device):
    """Runs a 2 x 1 KMeans on `device`; returns None when it works, else the
    C library's explanation. This loads libcuda and the CUDA module."""
    ctx = _lib.Context(device)
    params = _lib.Params(ctx, "kmeans")
    params.set("n_clusters", "1")
    X = (ctypes.c_float * 2)(0.0, 1.0)
    C = (ctypes.c_float * 1)()
    Xa = _lib.host_array(ctypes.addressof(X), _lib.FL_DTYPE_F32, 2, 1)
    Ca = _lib.host_array(ctypes.addressof(C), _lib.FL_DTYPE_F32, 1, 1)
    try:
        ctx.call(_lib.lib.fl_kmeans_fit, ctx.ptr, byref(Xa), None, params.ptr, byref(Ca), None, None, None)
    except _errors.FlashlibError as e:
        return f"{e.status_name}: {e.message}"
    return None


def diagnose(probe=True):
    """What this machine can run, as a dict.

    Keys: version, package_version, library (path of libflashlib.so),
    algorithms, cuda_device_count, devices (one dict of hardware properties
    per GPU), why_no_gpu (None when a GPU is usable, else the reason),
    cuda_usable, default_device (what device='auto' resolves to),
    cuda_loaded (whether libcuda / libflashlib_cuda.so is mapped now) and
    summary (one line for people: the GPU used, or why none is).

    With probe=True (the default) and a GPU present, a tiny KMeans runs on
    cuda:0 to prove the CUDA module loads and works; that loads CUDA into
    this process. probe=False only queries the driver.
    """
    n, why = _lib.cuda_device_count()
    devices = []
    ctx = _lib.Context("cpu")
    for i in range(n):
        try:
            props = _lib.cuda_props(ctx, i).to_dict()
        except _errors.FlashlibError as e:
            props = {"error": e.message}
        props["id"] = i
        devices.append(props)
    usable = n > 0
    if n > 0 and probe:
        failure = _probe_cuda("cuda:0")
        if failure is not None:
            usable = False
            why = f"a GPU is present but flashlib cannot use it: {failure}"
    default = "cuda:0" if usable else "cpu"
    if n > 0 and not probe:
        default = _lib.Context("auto").resolved_device()
    if usable:
        first = devices[0]
        summary = f"{first.get('name', 'GPU')} (cuda:0, sm_{first.get('sm_major')}{first.get('sm_minor')})"
        if n > 1:
            summary += f" and {n - 1} more"
    else:
        summary = f"none ({why or 'no usable GPU'})"
    return {
        "summary": summary,
        "version": _lib.version(),
        "package_version": __version__,
        "library": _lib.library_path,
        "algorithms": _lib.algorithms(),
        "cuda_device_count": n,
        "devices": devices,
        "cuda_usable": usable,
        "why_no_gpu": None if usable else (why or "no usable GPU"),
        "default_device": default,
        "cuda_loaded": _lib.cuda_loaded(),
    }


def params(algo):
    """The C parameter table of `algo` (name, type, default, bounds, choices,
    aliases, doc), the single source of every parameter's domain."""
    return _lib.param_table(algo)


_DTYPES = {"float32": _lib.FL_DTYPE_F32, "f32": _lib.FL_DTYPE_F32, "float64": _lib.FL_DTYPE_F64,
           "f64": _lib.FL_DTYPE_F64}


def param_text(value):
    """A Python value as the text fl_params_set parses. The C library does the
    validation: a float given for an integer parameter, a bool for a number,
    an unknown word... come back as its error message."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return str(value)


def route(algo, shape, params=None, device=None, dtype="float32"):
    """The routing decision flashlib would take for `algo` on data of
    `shape` = (n_samples, n_features) and `params` (a dict of parameter
    values, e.g. {"n_clusters": 256}), as a dict {backend, variant, reason,
    device}.

    device: None or "auto" (a GPU of this machine when one is present, else
    the CPU), "cpu", "cuda" or "cuda:N" (that GPU's properties; an error if
    there is none). Querying a GPU's properties opens the CUDA driver.
    dtype: "float32" or "float64" (or a numpy dtype / type).
    """
    try:
        n_samples, n_features = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise _errors.InvalidArgumentError(
            f"shape={shape!r}: expected (n_samples, n_features)", -1) from None
    dt = _DTYPES.get(getattr(dtype, "name", None) or getattr(dtype, "__name__", None) or str(dtype))
    if dt is None:
        raise _errors.InvalidArgumentError(f"dtype={dtype!r}: expected float32 or float64", -1)
    ctx = _lib.Context("cpu")
    p = _lib.Params(ctx, algo)
    for name, value in (params or {}).items():
        if hasattr(value, "shape") or isinstance(value, (list, tuple)):
            continue  # array-valued parameters (an init array) do not affect routing
        p.set(name, param_text(value))
    hw = None
    dev = "auto" if device is None else device
    if dev == "cpu":
        resolved = "cpu"
    else:
        probe = _lib.Context(dev)  # validates the device string
        if dev == "auto":
            n, _ = _lib.cuda_device_count()
            device_id = 0 if n > 0 else None
        else:
            device_id = int(dev.split(":", 1)[1]) if ":" in dev else 0
        if device_id is None:
            resolved = "cpu"
        else:
            hw = _lib.cuda_props(probe, device_id)
            resolved = f"cuda:{device_id}"
    out = _lib.Route()
    ctx.call(_lib.lib.fl_route_query, ctx.ptr, algo.encode(), byref(hw) if hw is not None else None,
             n_samples, n_features, dt, p.ptr, byref(out))
    return {
        "backend": _lib.backend_name(out.backend),
        "variant": out.variant.decode("utf-8", "replace"),
        "reason": out.reason.decode("utf-8", "replace"),
        "device": resolved,
    }
