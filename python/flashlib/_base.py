"""What every flashlib estimator shares: scikit-learn base classes (or a tiny
fallback), input validation, numpy <-> fl_array views, the mapping of Python
parameters onto the C parameter table, contexts, fitted attributes read from
the C model, and pickling through the C model format.

No algorithm lives here: the estimators hand validated arrays and parameter
text to libflashlib and read its results back.
"""

import contextlib
import inspect
import numbers
import sys

import numpy as np

from . import _errors, _lib
from ._api import param_text

try:
    from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
    from sklearn.utils.validation import check_array as _sk_check_array

    try:  # scikit-learn >= 1.6
        from sklearn.base import ClassNamePrefixFeaturesOutMixin
    except ImportError:  # pragma: no cover - older scikit-learn
        ClassNamePrefixFeaturesOutMixin = None
    try:  # scikit-learn >= 1.6
        from sklearn.utils.validation import validate_data as _sk_validate_data
    except ImportError:  # pragma: no cover - older scikit-learn
        _sk_validate_data = None
    try:  # private, but stable since scikit-learn 0.2x; gives its exact messages
        from sklearn.utils.validation import _check_sample_weight as _sk_check_sample_weight
    except ImportError:  # pragma: no cover
        _sk_check_sample_weight = None
    HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    HAVE_SKLEARN = False
    _sk_check_sample_weight = None

_NP_TO_FL = {
    np.dtype(np.float32): _lib.FL_DTYPE_F32,
    np.dtype(np.float64): _lib.FL_DTYPE_F64,
    np.dtype(np.int32): _lib.FL_DTYPE_I32,
    np.dtype(np.int64): _lib.FL_DTYPE_I64,
    np.dtype(np.uint8): _lib.FL_DTYPE_U8,
}
_FL_TO_NP = {v: k for k, v in _NP_TO_FL.items()}

_FLOAT_DTYPES = [np.float64, np.float32]

_SEED_MAX = 2**31 - 1


def _seed_from(random_state):
    """The integer seed of one fit, with scikit-learn's meaning of
    random_state: None draws from numpy's global RandomState (so successive
    fits differ, and np.random.seed makes them reproducible), an int is the
    seed, a RandomState (or Generator) instance gives its next draw."""
    if random_state is None:
        return int(np.random.randint(0, _SEED_MAX))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)  # the C table checks the range
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, _SEED_MAX))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, _SEED_MAX))
    raise _errors.InvalidArgumentError(
        f"random_state={random_state!r}: expected None, an int or a numpy RandomState")


# ---- fallbacks when scikit-learn is absent ---------------------------------------
if not HAVE_SKLEARN:  # pragma: no cover - exercised only without scikit-learn

    class BaseEstimator:
        """get_params / set_params / repr with scikit-learn's behaviour."""

        @classmethod
        def _get_param_names(cls):
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values()
                          if p.name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep=True):
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            valid = self._get_param_names()
            for key, value in params.items():
                if key not in valid:
                    raise ValueError(f"Invalid parameter {key!r} for estimator {self}. "
                                     f"Valid parameters are: {valid!r}.")
                setattr(self, key, value)
            return self

        def __repr__(self):
            sig = inspect.signature(type(self).__init__)
            shown = []
            for name, value in self.get_params().items():
                default = sig.parameters[name].default
                if not (value is default or (isinstance(value, (str, numbers.Number))
                                             and type(value) is type(default) and value == default)):
                    shown.append(f"{name}={value!r}")
            return f"{type(self).__name__}({', '.join(shown)})"

    class ClusterMixin:
        _estimator_type = "clusterer"

    class TransformerMixin:
        pass

if not HAVE_SKLEARN or ClassNamePrefixFeaturesOutMixin is None:  # pragma: no cover

    class ClassNamePrefixFeaturesOutMixin:
        def get_feature_names_out(self, input_features=None):
            self._fl_check_fitted()
            prefix = type(self).__name__.lower()
            return np.asarray([f"{prefix}{i}" for i in range(self._n_features_out)], dtype=object)


class DenseFloatTagsMixin:
    """scikit-learn tags of every flashlib estimator: dense input only, and
    transforms that keep float32 and float64. First among the bases, so it
    edits the tags after the scikit-learn mixins have set theirs."""

    if HAVE_SKLEARN and hasattr(TransformerMixin, "__sklearn_tags__"):

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.sparse = False
            if tags.transformer_tags is not None:
                tags.transformer_tags.preserves_dtype = ["float64", "float32"]
            return tags


# ---- input validation ----------------------------------------------------------------
def _own_check_array(X, name, dtype=_FLOAT_DTYPES):  # used without scikit-learn
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise TypeError("Sparse data was passed, but dense data is required. Use '.toarray()' to "
                        "convert to a dense numpy array.")
    try:
        a = np.asarray(X)
        if a.dtype.kind == "c":
            raise ValueError("Complex data not supported")
        if a.dtype not in [np.dtype(d) for d in dtype]:
            a = a.astype(np.float64 if a.dtype.kind != "f" or a.dtype.itemsize > 4 else np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Unable to convert {name} to a float array: {e}") from None
    if a.ndim != 2:
        kind = "scalar" if a.ndim == 0 else f"{a.ndim}D"
        raise ValueError(
            f"Expected 2D array, got {kind} array instead:\narray={a!r}.\nReshape your data either "
            "using array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) "
            "if it contains a single sample.")
    if a.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={a.shape}) while a minimum of 1 is "
                         "required.")
    if a.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={a.shape}) while a minimum of 1 is "
                         "required.")
    if not np.isfinite(a).all():
        if np.isnan(a).any():
            raise ValueError(f"Input {name} contains NaN.")
        raise ValueError(f"Input {name} contains infinity or a value too large for {a.dtype!r}.")
    return a


def check_array(X, name="X", dtype=_FLOAT_DTYPES):
    """A 2-D finite float array (scikit-learn's check_array when available)."""
    if HAVE_SKLEARN:
        return _sk_check_array(X, dtype=dtype, accept_sparse=False, order=None, copy=False,
                               input_name=name)
    return _own_check_array(X, name, dtype)


def validate_X(est, X, reset, finite=True):
    """Validates X like scikit-learn's validate_data: dtype (float32 and
    float64 kept, the rest converted to float64), 2-D, non-empty, finite;
    records n_features_in_ / feature_names_in_ when reset, checks them
    otherwise ("X has 3 features, but KMeans is expecting 5 features").
    finite=False leaves NaN/Inf to the C library, which checks every input
    itself (in the same pass as the work where it can): one pass over X
    instead of two."""
    if HAVE_SKLEARN:
        kw = dict(reset=reset, dtype=_FLOAT_DTYPES, accept_sparse=False, order=None, copy=False)
        if not finite:
            kw["ensure_all_finite" if _sk_validate_data is not None else "force_all_finite"] = False
        if _sk_validate_data is not None:
            return _sk_validate_data(est, X, **kw)
        return est._validate_data(X, **kw)  # pragma: no cover - scikit-learn < 1.6
    a = _own_check_array(X, "X")  # pragma: no cover - without scikit-learn
    if reset:
        est.n_features_in_ = a.shape[1]
        cols = getattr(X, "columns", None)
        if cols is not None and len(cols) and all(isinstance(c, str) for c in cols):
            est.feature_names_in_ = np.asarray(list(cols), dtype=object)
        else:
            est.__dict__.pop("feature_names_in_", None)
    elif a.shape[1] != est.n_features_in_:
        raise ValueError(f"X has {a.shape[1]} features, but {type(est).__name__} is expecting "
                         f"{est.n_features_in_} features as input.")
    return a


def check_sample_weight(sample_weight, X):
    """None, or a 1-D array of X's dtype with one weight per row. The C
    library checks the values (finite, >= 0, positive sum); scikit-learn's
    checker, when available, gives its own messages first."""
    if sample_weight is None:
        return None
    if _sk_check_sample_weight is not None:
        return _sk_check_sample_weight(sample_weight, X, dtype=X.dtype)
    n = X.shape[0]
    if isinstance(sample_weight, numbers.Number):
        return np.full(n, sample_weight, dtype=X.dtype)
    try:
        sw = np.asarray(sample_weight, dtype=X.dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"sample_weight could not be converted to {X.dtype}: {e}") from None
    if sw.ndim != 1:
        raise ValueError("Sample weights must be 1D array or scalar")
    if sw.shape != (n,):
        raise ValueError(f"sample_weight.shape == {sw.shape}, expected {(n,)}!")
    return sw


# ---- numpy <-> fl_array ---------------------------------------------------------------
def host_view(a):
    """(fl_array, owner) describing the 2-D (or 1-D, as n x 1) numpy array `a`
    without copying when its rows are unit-stride with a positive row stride
    (C-contiguous arrays and row slices of them, via ld); otherwise a
    C-contiguous copy. Keep `owner` alive while the C call runs."""
    if a.dtype not in _NP_TO_FL or not a.dtype.isnative:
        raise TypeError(f"internal: no fl_dtype for {a.dtype}")
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    rows, cols = a.shape
    isz = a.itemsize
    s0, s1 = a.strides
    ok = (a.flags.aligned and (cols <= 1 or s1 == isz)
          and (rows <= 1 or (s0 > 0 and s0 % isz == 0 and s0 // isz >= cols)))
    if not ok:
        a = np.ascontiguousarray(a)
        s0 = cols * isz
    ld = cols if rows <= 1 else s0 // isz
    return _lib.host_array(a.ctypes.data, _NP_TO_FL[a.dtype], rows, cols, max(ld, cols)), a


def new_host(shape, dtype):
    """(fl_array, array): a fresh C-contiguous output."""
    a = np.empty(shape, dtype=dtype)
    rows = shape[0]
    cols = shape[1] if len(shape) > 1 else 1
    return _lib.host_array(a.ctypes.data, _NP_TO_FL[a.dtype], rows, cols, cols), a


@contextlib.contextmanager
def unchanged_on_error(est):
    """Restores the estimator's attributes when the block raises: a failed
    fit changes nothing (the C library guarantees the same for its model)."""
    saved = dict(est.__dict__)
    try:
        yield
    except BaseException:
        est.__dict__.clear()
        est.__dict__.update(saved)
        raise


def _stderr_log(level, message):
    if level == _lib.FL_LOG_ERROR:
        return  # errors are raised as exceptions carrying the same message
    sys.stderr.write(f"[flashlib] {message}\n")
    sys.stderr.flush()


def _stderr_progress(stage, done, total):
    sys.stderr.write(f"[flashlib] {stage}: {done}/{total}\n" if total else f"[flashlib] {stage}: {done}\n")
    sys.stderr.flush()
    return 0


class FlashlibEstimator(BaseEstimator):
    """Base of the flashlib estimators. Subclasses set:

    _fl_algo      the C algorithm name ("kmeans")
    _fl_python_only  Python parameters the C table does not have (device...)
    _fl_internal  C parameters without a Python parameter: {name: why}
    _fl_attrs     fitted attributes read from the C model: {name: kind}, kind
                  one of "matrix", "vector", "float", "int"
    """

    _fl_algo = None
    _fl_python_only = frozenset({"device"})
    _fl_internal = {}
    _fl_attrs = {}
    _fl_table_cache = None

    # -- the C parameter table ----------------------------------------------------
    @classmethod
    def _fl_param_table(cls):
        if cls.__dict__.get("_fl_table_cache") is None:
            cls._fl_table_cache = _lib.param_table(cls._fl_algo)
        return cls._fl_table_cache

    def _fl_param_values(self, X):
        """{C parameter name: value} for this fit: the Python parameter of the
        same name, random_state turned into this fit's integer seed
        (subclasses translate the others whose Python form differs, such as
        an init array)."""
        params = self.get_params(deep=False)
        values = {row["name"]: params[row["name"]] for row in self._fl_param_table() if row["name"] in params}
        if "random_state" in values:
            values["random_state"] = _seed_from(values["random_state"])
        return values

    def _fl_fit_model(self, X):
        """The common fit: X validated (n_features_in_ recorded), a C model
        built from the parameters, fitted on X and installed. Returns the
        validated X; call it inside unchanged_on_error."""
        X = validate_X(self, X, reset=True, finite=False)
        values = self._fl_param_values(X)
        Xa, Xkeep = host_view(X)
        with self._fl_session(self._fl_context()) as ctx:
            model = _lib.Model.create(ctx, self._fl_algo, self._fl_params(ctx, values))
            model.fit(Xa, None, None)
            self._fl_install(model)
        return X

    def _fl_params(self, ctx, values):
        p = _lib.Params(ctx, self._fl_algo)
        for name, value in values.items():
            if isinstance(value, np.ndarray):
                arr, keep = host_view(value)
                p.set_array(name, arr)
                del keep
            else:
                p.set(name, param_text(value))
        return p

    # -- contexts -------------------------------------------------------------------
    def _fl_context(self):
        """The context for self.device (shared by this thread's estimators on
        that device, created on first use; creating it touches no GPU)."""
        device = self.device
        if not isinstance(device, str):
            raise _errors.InvalidArgumentError(
                f"device={device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
        return _lib.shared_context(device)

    @contextlib.contextmanager
    def _fl_session(self, ctx):
        """Holds the context for a sequence of calls and points its log and
        progress callbacks at this estimator's verbosity (contexts are
        shared, so every method sets them)."""
        with ctx.lock:
            verbose = getattr(self, "verbose", 0)
            try:
                verbose = int(verbose)
            except (TypeError, ValueError, OverflowError):
                verbose = 0
            if verbose > 0:
                ctx.set_log(_stderr_log, _lib.FL_LOG_DEBUG if verbose >= 2 else _lib.FL_LOG_INFO)
                ctx.set_progress(_stderr_progress)
            else:
                ctx.set_log(None)
                ctx.set_progress(None)
            yield ctx

    # -- fitted state -----------------------------------------------------------------
    def __sklearn_is_fitted__(self):
        return "_fl_model" in self.__dict__

    def _fl_check_fitted(self):
        if "_fl_model" not in self.__dict__:
            raise _errors.not_fitted_error_class()(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with appropriate "
                "arguments before using this estimator.")
        return self.__dict__["_fl_model"]

    def _fl_install(self, model):
        """Reads the fitted attributes from the C model into numpy / Python
        values and makes `model` the estimator's model."""
        values = {}
        for name, kind in self._fl_attrs.items():
            code, rows, cols = model.attr_info(name)
            out, arr = new_host((rows, cols), _FL_TO_NP[code])
            model.attr_copy(name, out)
            if kind == "vector":
                arr = arr.reshape(rows)
            elif kind == "float":
                arr = float(arr[0, 0])
            elif kind == "int":
                arr = int(arr[0, 0])
            values[name] = arr
        self.__dict__.update(values)
        self._fl_model = model

    # -- pickling: parameters + the C model's own serialization ------------------------
    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k != "_fl_model" and k not in self._fl_attrs}
        model = self.__dict__.get("_fl_model")
        state["_fl_model_bytes"] = model.save_buffer() if model is not None else None
        return state

    def __setstate__(self, state):
        state = dict(state)
        data = state.pop("_fl_model_bytes", None)
        state.pop("_sklearn_version", None)
        self.__dict__.update(state)
        if data is not None:
            device = getattr(self, "device", "auto")
            ctx = _lib.shared_context(device if isinstance(device, str) else "auto")
            self._fl_install(_lib.Model.load_buffer(ctx, data))

    # -- helpers for the estimators' methods ------------------------------------------------
    def _fl_ready_X(self, X):
        """X itself when it is already what the C library takes: a 2-D
        float32/float64 ndarray of the fitted width, with no feature names
        to check. scikit-learn's validation costs ~0.4 ms a call, more than
        predicting a few rows on the CPU; the C library checks finiteness
        itself. None otherwise."""
        if (type(X) is np.ndarray and X.ndim == 2 and X.dtype in _FLOAT_DTYPES and X.shape[0] > 0
                and X.shape[1] == self.__dict__.get("n_features_in_")
                and "feature_names_in_" not in self.__dict__):
            return X
        return None

    def _fl_apply(self, X, run):
        """run(validated X) for a fitted estimator, through the fast path when
        X is ready; when the C library rejects it, X goes through the full
        validation, so that the error message is scikit-learn's."""
        model = self._fl_check_fitted()
        ready = self._fl_ready_X(X)
        if ready is not None:
            try:
                with self._fl_session(model.ctx):
                    return run(model, ready)
            except _errors.InvalidArgumentError:
                pass  # explained by validate_X below, or raised again by run
        X = validate_X(self, X, reset=False)
        with self._fl_session(model.ctx):
            return run(model, X)

    def _fl_predict_like(self, X, method, out_shape, out_dtype):
        def run(model, X):
            Xa, Xkeep = host_view(X)
            out, arr = new_host(out_shape(X), out_dtype(X))
            getattr(model, method)(Xa, out)
            return arr

        return self._fl_apply(X, run)


def c_param_names(cls):
    """The names in the C table of an estimator class (for tests and docs)."""
    return [row["name"] for row in cls._fl_param_table()]


def python_param_names(cls):
    sig = inspect.signature(cls.__init__)
    return [p.name for p in sig.parameters.values() if p.name != "self"]
