"""ctypes binding of libflashlib: loading, version check, every prototype in
one table, and small owners (Context, Params, Model) that turn fl_status into
exceptions carrying the C message.

Standard library only (no numpy): the estimators convert arrays themselves
and pass fl_array descriptors. Loading libflashlib never loads CUDA; the
library opens libcuda / libflashlib_cuda.so only when a GPU is first used.
"""

import ctypes
import os
import threading
import weakref
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    byref,
    c_char,
    c_char_p,
    c_double,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint64,
    c_void_p,
)

from . import _errors
from ._loader import find_library
from ._version import __version__

# ---- enums (pinned values from flashlib.h) ----------------------------------
FL_DTYPE_F32, FL_DTYPE_F64, FL_DTYPE_F16, FL_DTYPE_BF16, FL_DTYPE_I32, FL_DTYPE_I64, FL_DTYPE_U8 = 1, 2, 3, 4, 5, 6, 7
FL_MEM_HOST, FL_MEM_CUDA = 0, 1
FL_LOG_ERROR, FL_LOG_WARN, FL_LOG_INFO, FL_LOG_DEBUG = 0, 1, 2, 3
FL_PARAM_INT, FL_PARAM_FLOAT, FL_PARAM_CHOICE, FL_PARAM_BOOL = 1, 2, 3, 4
PARAM_TYPE_NAMES = {FL_PARAM_INT: "int", FL_PARAM_FLOAT: "float", FL_PARAM_CHOICE: "choice",
                    FL_PARAM_BOOL: "bool"}

fl_status = c_int  # enum fl_status: 0 ok, negative error


# ---- structures ---------------------------------------------------------------
class Array(Structure):
    """fl_array: a 2-D row-major view of memory the caller owns."""

    _fields_ = [
        ("data", c_void_p),
        ("dtype", c_int),
        ("mem", c_int),
        ("device_id", c_int32),
        ("rows", c_int64),
        ("cols", c_int64),
        ("ld", c_int64),
    ]


class LinalgReport(Structure):
    """fl_linalg_report: what a linear-algebra call did."""

    _fields_ = [
        ("variant", c_char * 32),
        ("backend", c_int),
        ("iterations", c_int32),
        ("expected_residual", c_double),
    ]


class ParamDef(Structure):
    """fl_param_def: one row of a primitive's parameter table."""

    _fields_ = [
        ("name", c_char_p),
        ("type", c_int),
        ("default_str", c_char_p),
        ("lo", c_double),
        ("hi", c_double),
        ("choices", c_char_p),
        ("aliases", c_char_p),
        ("doc", c_char_p),
    ]


class HwProps(Structure):
    """fl_hw_props: properties of one CUDA device."""

    _fields_ = [
        ("name", c_char * 96),
        ("tag", c_char * 16),
        ("sm_major", c_int32),
        ("sm_minor", c_int32),
        ("sm_count", c_int32),
        ("l2_bytes", c_int64),
        ("smem_per_sm_bytes", c_int64),
        ("smem_per_block_optin_bytes", c_int64),
        ("total_mem_bytes", c_int64),
        ("is_ampere", c_int32),
        ("is_hopper", c_int32),
        ("is_blackwell", c_int32),
        ("sm90_enabled", c_int32),
    ]

    def to_dict(self):
        d = {name: getattr(self, name) for name, _ in self._fields_}
        d["name"] = self.name.decode("utf-8", "replace")
        d["tag"] = self.tag.decode("utf-8", "replace")
        for key in ("is_ampere", "is_hopper", "is_blackwell", "sm90_enabled"):
            d[key] = bool(d[key])
        return d


class Route(Structure):
    """fl_route: a routing decision."""

    _fields_ = [("backend", c_int), ("variant", c_char * 32), ("reason", c_char * 256)]


HostAllocFn = CFUNCTYPE(c_void_p, c_void_p, c_size_t)
HostFreeFn = CFUNCTYPE(None, c_void_p, c_void_p)


class HostAllocator(Structure):
    _fields_ = [("alloc", HostAllocFn), ("free", HostFreeFn), ("user", c_void_p)]


DeviceAllocFn = CFUNCTYPE(c_int, c_void_p, c_int32, c_size_t, POINTER(c_void_p))
DeviceFreeFn = CFUNCTYPE(None, c_void_p, c_int32, c_void_p)


class DeviceAllocator(Structure):
    _fields_ = [("alloc", DeviceAllocFn), ("free", DeviceFreeFn), ("user", c_void_p)]


ProgressFn = CFUNCTYPE(c_int, c_void_p, c_char_p, c_int64, c_int64)
LogFn = CFUNCTYPE(None, c_void_p, c_int, c_char_p)


# Opaque handles get distinct pointer types, so ctypes refuses a model where
# a context is expected.
class _Ctx(Structure):
    pass


class _Params(Structure):
    pass


class _Model(Structure):
    pass


class Neighbors(Structure):
    """fl_neighbors: per-query neighbour lists in CSR form, owned by the C
    library until fl_neighbors_free."""

    _fields_ = [
        ("n_rows", c_int64),
        ("nnz", c_int64),
        ("indptr", POINTER(c_int64)),
        ("indices", POINTER(c_int64)),
        ("distances", c_void_p),
        ("dtype", c_int),
    ]


CtxP = POINTER(_Ctx)
ParamsP = POINTER(_Params)
ModelP = POINTER(_Model)
ArrayP = POINTER(Array)

# ---- every prototype, in one table --------------------------------------------
# (name, restype, argtypes). Keep in the order of flashlib.h.
PROTOTYPES = [
    # status and version
    ("fl_status_str", c_char_p, [fl_status]),
    ("fl_version_string", c_char_p, []),
    ("fl_version_number", c_int, []),
    # arrays
    ("fl_array_host", Array, [c_void_p, c_int, c_int64, c_int64]),
    ("fl_array_cuda", Array, [c_void_p, c_int, c_int64, c_int64, c_int32]),
    ("fl_dtype_size", c_size_t, [c_int]),
    ("fl_dtype_name", c_char_p, [c_int]),
    # context
    ("fl_ctx_create", fl_status, [c_char_p, POINTER(CtxP), POINTER(c_char), c_size_t]),
    ("fl_ctx_free", None, [CtxP]),
    ("fl_ctx_last_error", c_char_p, [CtxP]),
    ("fl_ctx_set_threads", fl_status, [CtxP, c_int]),
    ("fl_ctx_set_seed", fl_status, [CtxP, c_uint64]),
    ("fl_ctx_set_verbosity", fl_status, [CtxP, c_int]),
    ("fl_ctx_set_progress", fl_status, [CtxP, ProgressFn, c_void_p]),
    ("fl_ctx_set_log", fl_status, [CtxP, LogFn, c_void_p]),
    ("fl_ctx_set_host_allocator", fl_status, [CtxP, POINTER(HostAllocator)]),
    ("fl_ctx_set_device_allocator", fl_status, [CtxP, POINTER(DeviceAllocator)]),
    ("fl_ctx_release_device_memory", fl_status, [CtxP]),
    ("fl_ctx_device", c_char_p, [CtxP]),
    # hardware
    ("fl_cuda_device_count", c_int, [CtxP, POINTER(c_char_p)]),
    ("fl_cuda_props", fl_status, [CtxP, c_int32, POINTER(HwProps)]),
    ("fl_cuda_loaded", c_int, []),
    # parameters
    ("fl_algorithms", POINTER(c_char_p), []),
    ("fl_param_count", c_int, [c_char_p]),
    ("fl_param_def_at", POINTER(ParamDef), [c_char_p, c_int]),
    ("fl_params_create", fl_status, [CtxP, c_char_p, POINTER(ParamsP)]),
    ("fl_params_free", None, [ParamsP]),
    ("fl_params_copy", fl_status, [CtxP, ParamsP, POINTER(ParamsP)]),
    ("fl_params_set", fl_status, [CtxP, ParamsP, c_char_p, c_char_p]),
    ("fl_params_set_int", fl_status, [CtxP, ParamsP, c_char_p, c_int64]),
    ("fl_params_set_float", fl_status, [CtxP, ParamsP, c_char_p, c_double]),
    ("fl_params_set_array", fl_status, [CtxP, ParamsP, c_char_p, ArrayP]),
    ("fl_params_get", fl_status, [CtxP, ParamsP, c_char_p, POINTER(c_char), c_size_t]),
    # models
    ("fl_model_create", fl_status, [CtxP, c_char_p, ParamsP, POINTER(ModelP)]),
    ("fl_model_free", None, [ModelP]),
    ("fl_model_algo", c_char_p, [ModelP]),
    ("fl_model_params", ParamsP, [ModelP]),
    ("fl_model_fit", fl_status, [ModelP, ArrayP, ArrayP, ArrayP]),
    ("fl_model_predict", fl_status, [ModelP, ArrayP, ArrayP]),
    ("fl_model_transform", fl_status, [ModelP, ArrayP, ArrayP]),
    ("fl_model_fit_predict", fl_status, [ModelP, ArrayP, ArrayP, ArrayP]),
    ("fl_model_score", fl_status, [ModelP, ArrayP, ArrayP, ArrayP, POINTER(c_double)]),
    ("fl_model_inverse_transform", fl_status, [ModelP, ArrayP, ArrayP]),
    ("fl_model_score_samples", fl_status, [ModelP, ArrayP, ArrayP]),
    ("fl_model_attr_info", fl_status, [ModelP, c_char_p, POINTER(c_int), POINTER(c_int64), POINTER(c_int64)]),
    ("fl_model_attr_copy", fl_status, [ModelP, c_char_p, ArrayP]),
    ("fl_model_attr_scalar", fl_status, [ModelP, c_char_p, POINTER(c_double)]),
    ("fl_model_attr_names", POINTER(c_char_p), [ModelP]),
    ("fl_model_is_fitted", c_int, [ModelP]),
    ("fl_model_save", fl_status, [ModelP, c_char_p]),
    ("fl_model_load", fl_status, [CtxP, c_char_p, POINTER(ModelP)]),
    ("fl_model_save_buffer", fl_status, [ModelP, POINTER(c_void_p), POINTER(c_size_t)]),
    ("fl_model_load_buffer", fl_status, [CtxP, c_char_p, c_size_t, POINTER(ModelP)]),
    ("fl_buffer_free", None, [c_void_p]),
    # routing
    ("fl_route_query", fl_status,
     [CtxP, c_char_p, POINTER(HwProps), c_int64, c_int64, c_int, ParamsP, POINTER(Route)]),
    ("fl_backend_name", c_char_p, [c_int]),
    # KMeans typed functions
    ("fl_kmeans_fit", fl_status,
     [CtxP, ArrayP, ArrayP, ParamsP, ArrayP, ArrayP, POINTER(c_double), POINTER(c_int64)]),
    ("fl_kmeans_fit_batched", fl_status,
     [CtxP, ArrayP, c_int64, ParamsP, ArrayP, ArrayP, POINTER(c_double)]),
    # PCA / TruncatedSVD typed functions
    ("fl_pca_fit", fl_status, [CtxP, ArrayP, ParamsP, POINTER(ModelP)]),
    ("fl_truncated_svd_fit", fl_status, [CtxP, ArrayP, ParamsP, POINTER(ModelP)]),
    # nearest neighbours
    ("fl_knn_search", fl_status, [CtxP, ArrayP, ArrayP, c_int64, ParamsP, ArrayP, ArrayP]),
    ("fl_knn_fit", fl_status, [CtxP, ArrayP, ParamsP, POINTER(ModelP)]),
    ("fl_model_kneighbors", fl_status, [ModelP, ArrayP, c_int64, ArrayP, ArrayP]),
    ("fl_model_radius_neighbors", fl_status, [ModelP, ArrayP, c_double, c_int, POINTER(Neighbors)]),
    ("fl_neighbors_free", None, [POINTER(Neighbors)]),
    ("fl_model_set_param", fl_status, [ModelP, c_char_p, c_char_p]),
    ("fl_model_add", fl_status, [ModelP, ArrayP]),
    # linear algebra
    ("fl_gemm", fl_status,
     [CtxP, c_char_p, c_double, c_int, c_int, c_int, c_double, ArrayP, ArrayP, c_double, ArrayP,
      POINTER(LinalgReport)]),
    ("fl_cov_gemm", fl_status, [CtxP, c_char_p, ArrayP, c_int, ArrayP, ArrayP, POINTER(LinalgReport)]),
    ("fl_gram_gemm", fl_status, [CtxP, c_char_p, ArrayP, ArrayP, POINTER(LinalgReport)]),
    ("fl_cholqr2", fl_status, [CtxP, ArrayP, ArrayP, ArrayP, POINTER(LinalgReport)]),
    ("fl_split_basis", fl_status, [CtxP, ArrayP, c_char_p, c_int, ArrayP]),
    ("fl_eigh", fl_status, [CtxP, c_char_p, ArrayP, c_int64, ArrayP, ArrayP, POINTER(LinalgReport)]),
    ("fl_polar", fl_status, [CtxP, c_char_p, ArrayP, ArrayP, ArrayP, ArrayP, POINTER(LinalgReport)]),
]

# Exported for tests but not in the public header: bound when present.
OPTIONAL_PROTOTYPES = [
    ("fl_kmeans_fit_traced", fl_status,
     [CtxP, ArrayP, ParamsP, c_void_p, POINTER(c_double), POINTER(c_double), c_int64, POINTER(c_int64)]),
]


def _load():
    path = find_library()
    try:
        handle = ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_LOCAL)
    except OSError as e:
        raise ImportError(f"flashlib: could not load {path}: {e}") from e
    missing = []
    for name, restype, argtypes in PROTOTYPES:
        try:
            fn = getattr(handle, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise ImportError(
            f"flashlib: {path} lacks {', '.join(missing)}: it was built from another version "
            "of flashlib; rebuild it"
        )
    for name, restype, argtypes in OPTIONAL_PROTOTYPES:
        fn = getattr(handle, name, None)
        if fn is not None:
            fn.restype = restype
            fn.argtypes = argtypes
    got = handle.fl_version_string().decode("ascii", "replace")
    if got != __version__:
        raise ImportError(
            f"flashlib: {path} is version {got} but the Python package is {__version__}; "
            "rebuild the library from this source tree or set FLASHLIB_LIBRARY to a matching build"
        )
    return handle, path


lib, library_path = _load()


def has(name):
    """Whether the loaded library exports an optional function."""
    return hasattr(lib, name)


def _text(b):
    return b.decode("utf-8", "replace") if b is not None else None


def strings(ptr):
    """A NULL-terminated `const char *const *` as a list of str."""
    out = []
    if not ptr:
        return out
    i = 0
    while ptr[i] is not None:
        out.append(ptr[i].decode("utf-8", "replace"))
        i += 1
    return out


def version():
    """The loaded library's version string."""
    return lib.fl_version_string().decode("ascii")


def algorithms():
    return strings(lib.fl_algorithms())


def param_table(algo):
    """The C parameter table of `algo` as a list of dicts, in table order."""
    n = lib.fl_param_count(algo.encode())
    if n < 0:
        raise _errors.InvalidArgumentError(f"unknown algorithm '{algo}' (known: {', '.join(algorithms())})")
    rows = []
    for i in range(n):
        d = lib.fl_param_def_at(algo.encode(), i).contents
        rows.append({
            "name": _text(d.name),
            "type": PARAM_TYPE_NAMES.get(d.type, str(d.type)),
            "default": _text(d.default_str),
            "lo": d.lo,
            "hi": d.hi,
            "choices": _text(d.choices).split("|") if d.choices else [],
            "aliases": _text(d.aliases).split("|") if d.aliases else [],
            "doc": _text(d.doc),
        })
    return rows


def host_array(data, dtype, rows, cols, ld=None):
    """An fl_array for host memory at address `data`."""
    return Array(data, dtype, FL_MEM_HOST, 0, rows, cols, cols if ld is None else ld)


# ---- owners ---------------------------------------------------------------------
class Context:
    """Owns an fl_ctx. One thread uses a context at a time (the C rule): calls
    go through `call`, which holds a lock, so that the status and the message
    read after it belong together even when an estimator is shared between
    threads."""

    def __init__(self, device="auto"):
        if not isinstance(device, str):
            raise _errors.InvalidArgumentError(
                f"device={device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'", -1)
        err = ctypes.create_string_buffer(512)
        ptr = CtxP()
        st = lib.fl_ctx_create(device.encode(), byref(ptr), err, len(err))
        if st:
            raise _errors.make_error(st, err.value.decode("utf-8", "replace"))
        self._ptr = ptr
        self._free = lib.fl_ctx_free
        self.device = device
        self._lock = threading.RLock()
        self._pending = None  # an exception raised inside a callback
        self._log_fn = None  # the Python callables of the moment ...
        self._progress_fn = None
        self._c_log = None  # ... and the ctypes thunks the C library holds:
        self._c_progress = None  # they must live as long as the context
        self._install_callbacks()

    @property
    def ptr(self):
        return self._ptr

    def __del__(self):
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr:
            self._free(ptr)

    def last_error(self):
        return lib.fl_ctx_last_error(self._ptr).decode("utf-8", "replace")

    def call(self, fn, *args):
        """Calls fn(*args) (an fl_status function); raises on failure with the
        context's message, or re-raises an exception a callback caught (e.g.
        KeyboardInterrupt, which cancels the C call)."""
        with self._lock:
            self._pending = None
            st = fn(*args)
            pending, self._pending = self._pending, None
            if pending is not None:
                raise pending
            if st:
                raise _errors.make_error(st, self.last_error())
        return st

    def resolved_device(self):
        """'cpu' or 'cuda:N' ("auto" probes the GPU here, and only here)."""
        with self._lock:
            return lib.fl_ctx_device(self._ptr).decode("ascii")

    @property
    def lock(self):
        """Held around a sequence of calls that must not interleave with
        another thread's (e.g. setting callbacks, then fitting)."""
        return self._lock

    # -- callbacks ------------------------------------------------------------
    def _install_callbacks(self):
        # Both thunks are installed once, for the context's lifetime, and
        # dispatch to the Python callables of the moment (set_log /
        # set_progress swap those, no C call needed). The progress thunk is
        # how Ctrl-C reaches a long C call: the C code calls it once per
        # Lloyd iteration, a Python exception raised while it runs (the
        # KeyboardInterrupt of a pending SIGINT) is kept, the C call is
        # cancelled, and `call` re-raises it. The thunks hold only a weak
        # reference to the context, so they do not keep it alive.
        ref = weakref.ref(self)

        def progress(user, stage, done, total):
            ctx = ref()
            if ctx is None or ctx._progress_fn is None:
                return 0
            try:
                return 1 if ctx._progress_fn(_text(stage), done, total) else 0
            except BaseException as e:  # noqa: BLE001 - re-raised by call()
                ctx._pending = e
                return 1

        def log(user, level, message):
            ctx = ref()
            if ctx is None or ctx._log_fn is None:
                return
            try:
                ctx._log_fn(level, _text(message))
            except BaseException as e:  # noqa: BLE001 - re-raised by call()
                ctx._pending = e

        self._c_progress = ProgressFn(progress)
        self._c_log = LogFn(log)
        lib.fl_ctx_set_progress(self._ptr, self._c_progress, None)
        lib.fl_ctx_set_log(self._ptr, self._c_log, None)

    def set_progress(self, fn):
        """fn(stage, done, total) -> truthy to cancel; None removes it."""
        self._progress_fn = fn

    def set_log(self, fn, level=FL_LOG_INFO):
        """fn(level, message) receives messages at `level` or more severe;
        None removes it (the C library itself never prints)."""
        with self._lock:
            self._log_fn = fn
            self.call(lib.fl_ctx_set_verbosity, self._ptr, level if fn is not None else FL_LOG_ERROR)


_shared = {}  # (pid, thread, device) -> Context
_shared_lock = threading.Lock()
_forked_leftovers = []


def shared_context(device):
    """The context this thread uses for `device`, created on first use and
    then kept: creating a context is cheap, but its first GPU use sets up
    the CUDA module's state (about 0.2 s on an H100), which estimators
    should not pay one by one. One context per thread, because the C
    library allows one thread at a time on a context. After a fork the
    parent's contexts are left alone (never freed: their GPU state is not
    the child's)."""
    key = (os.getpid(), threading.get_ident(), device)
    with _shared_lock:
        ctx = _shared.get(key)
        if ctx is None:
            stale = [k for k in _shared if k[0] != key[0]]
            for k in stale:
                _forked_leftovers.append(_shared.pop(k))
            ctx = _shared[key] = Context(device)
        return ctx


def release_device_memory():
    """Returns to the GPU the memory this process's shared contexts keep
    between calls (fl_ctx_release_device_memory on each: the buffer pool's
    free blocks, the device copies of the last indexes and data used).
    Fitted estimators stay usable; their next GPU call allocates and
    copies again. Each context is taken under its lock, so a call running
    on it in another thread finishes first."""
    with _shared_lock:
        mine = [c for k, c in _shared.items() if k[0] == os.getpid()]
    for ctx in mine:
        ctx.call(lib.fl_ctx_release_device_memory, ctx.ptr)


def release_shared_contexts():
    """Drops the cached contexts (their GPU state is freed once no fitted
    estimator uses them any more)."""
    with _shared_lock:
        _shared.clear()


class Params:
    """Owns an fl_params of one algorithm."""

    def __init__(self, ctx, algo):
        self.ctx = ctx
        self.algo = algo
        ptr = ParamsP()
        ctx.call(lib.fl_params_create, ctx.ptr, algo.encode(), byref(ptr))
        self._ptr = ptr
        self._free = lib.fl_params_free

    @property
    def ptr(self):
        return self._ptr

    def __del__(self):
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr:
            self._free(ptr)

    def set(self, name, text):
        self.ctx.call(lib.fl_params_set, self.ctx.ptr, self._ptr, name.encode(), text.encode())

    def set_array(self, name, array):
        self.ctx.call(lib.fl_params_set_array, self.ctx.ptr, self._ptr, name.encode(), byref(array))

    def get(self, name):
        buf = ctypes.create_string_buffer(256)
        self.ctx.call(lib.fl_params_get, self.ctx.ptr, self._ptr, name.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace")


class Model:
    """Owns an fl_model; keeps its context alive (the C rule: the context
    must outlive the model)."""

    def __init__(self, ctx, ptr):
        self.ctx = ctx
        self._ptr = ptr
        self._free = lib.fl_model_free

    @classmethod
    def create(cls, ctx, algo, params=None):
        ptr = ModelP()
        ctx.call(lib.fl_model_create, ctx.ptr, algo.encode(), params.ptr if params else None, byref(ptr))
        return cls(ctx, ptr)

    @classmethod
    def load_buffer(cls, ctx, data):
        ptr = ModelP()
        data = bytes(data)
        ctx.call(lib.fl_model_load_buffer, ctx.ptr, data, len(data), byref(ptr))
        return cls(ctx, ptr)

    @property
    def ptr(self):
        return self._ptr

    def __del__(self):
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr:
            self._free(ptr)

    @property
    def algo(self):
        return lib.fl_model_algo(self._ptr).decode("ascii")

    @property
    def is_fitted(self):
        return bool(lib.fl_model_is_fitted(self._ptr))

    def param(self, name):
        buf = ctypes.create_string_buffer(256)
        self.ctx.call(lib.fl_params_get, self.ctx.ptr, lib.fl_model_params(self._ptr), name.encode(), buf,
                      len(buf))
        return buf.value.decode("utf-8", "replace")

    @staticmethod
    def _ref(a):
        return byref(a) if a is not None else None

    def fit(self, X, y=None, sample_weight=None):
        self.ctx.call(lib.fl_model_fit, self._ptr, byref(X), self._ref(y), self._ref(sample_weight))

    def predict(self, X, out):
        self.ctx.call(lib.fl_model_predict, self._ptr, byref(X), byref(out))

    def transform(self, X, out):
        self.ctx.call(lib.fl_model_transform, self._ptr, byref(X), byref(out))

    def inverse_transform(self, X, out):
        self.ctx.call(lib.fl_model_inverse_transform, self._ptr, byref(X), byref(out))

    def score_samples(self, X, out):
        self.ctx.call(lib.fl_model_score_samples, self._ptr, byref(X), byref(out))

    def fit_predict(self, X, sample_weight, out):
        self.ctx.call(lib.fl_model_fit_predict, self._ptr, byref(X), self._ref(sample_weight), byref(out))

    def score(self, X, y=None, sample_weight=None):
        out = c_double()
        self.ctx.call(lib.fl_model_score, self._ptr, byref(X), self._ref(y), self._ref(sample_weight),
                      byref(out))
        return out.value

    def kneighbors(self, X, k, dist, idx):
        """X None: the training set, each point left out of its own list."""
        self.ctx.call(lib.fl_model_kneighbors, self._ptr, self._ref(X), k, self._ref(dist), byref(idx))

    def set_param(self, name, text):
        """A search-time parameter of the fitted model (n_probes...)."""
        self.ctx.call(lib.fl_model_set_param, self._ptr, name.encode(), text.encode())

    def add(self, X):
        self.ctx.call(lib.fl_model_add, self._ptr, byref(X))

    def radius_neighbors(self, X, radius, sort_results):
        """(indptr, indices, distances) numpy copies of the CSR lists; the
        distances have numpy dtype `np_dtype` of the C result."""
        res = Neighbors()
        self.ctx.call(lib.fl_model_radius_neighbors, self._ptr, self._ref(X), radius, int(bool(sort_results)),
                      byref(res))
        return res

    def attr_names(self):
        return strings(lib.fl_model_attr_names(self._ptr))

    def attr_info(self, name):
        dtype, rows, cols = c_int(), c_int64(), c_int64()
        self.ctx.call(lib.fl_model_attr_info, self._ptr, name.encode(), byref(dtype), byref(rows),
                      byref(cols))
        return dtype.value, rows.value, cols.value

    def attr_copy(self, name, dst):
        self.ctx.call(lib.fl_model_attr_copy, self._ptr, name.encode(), byref(dst))

    def attr_scalar(self, name):
        out = c_double()
        self.ctx.call(lib.fl_model_attr_scalar, self._ptr, name.encode(), byref(out))
        return out.value

    def save_buffer(self):
        buf, n = c_void_p(), c_size_t()
        self.ctx.call(lib.fl_model_save_buffer, self._ptr, byref(buf), byref(n))
        try:
            return ctypes.string_at(buf, n.value)
        finally:
            lib.fl_buffer_free(buf)

    def save(self, path):
        self.ctx.call(lib.fl_model_save, self._ptr, os.fsencode(path))

    @classmethod
    def load(cls, ctx, path):
        ptr = ModelP()
        ctx.call(lib.fl_model_load, ctx.ptr, os.fsencode(path), byref(ptr))
        return cls(ctx, ptr)


# ---- machine-level queries (used by flashlib.diagnose / flashlib.route) ------------
def cuda_device_count():
    """(count, why): why explains a 0 count, else None. Opens the CUDA driver
    for the query (and closes it)."""
    why = c_char_p()
    n = lib.fl_cuda_device_count(None, byref(why))
    return n, _text(why.value)


def cuda_props(ctx, device_id):
    props = HwProps()
    ctx.call(lib.fl_cuda_props, ctx.ptr, device_id, byref(props))
    return props


def cuda_loaded():
    """Whether libcuda or libflashlib_cuda.so is mapped into this process."""
    return bool(lib.fl_cuda_loaded())


def backend_name(b):
    return lib.fl_backend_name(b).decode("ascii")


def status_name(status):
    return lib.fl_status_str(status).decode("ascii")
