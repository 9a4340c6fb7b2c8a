"""Exceptions for fl_status codes.

Every failed C call becomes an instance of FlashlibError carrying the C
library's message (fl_ctx_last_error) and the status code. Each code has its
own subclass, which also derives from the built-in exception that Python and
scikit-learn code already catch for that kind of failure: a bad argument is a
ValueError, an allocation failure a MemoryError, a missing GPU a
RuntimeError, and an unfitted model scikit-learn's NotFittedError.

Standard library only: scikit-learn is imported only when NotFittedError is
first needed (creating the class lazily keeps `import flashlib` and the
cost model free of numpy/scipy/sklearn imports, and the class is created
once, so `except flashlib.NotFittedError` always catches what is raised).
"""

import threading

# Pinned values from flashlib.h (enum fl_status).
STATUS_NAMES = {
    0: "FL_STATUS_OK",
    -1: "FL_STATUS_INVALID_ARG",
    -2: "FL_STATUS_OUT_OF_MEMORY",
    -3: "FL_STATUS_DEVICE_OOM",
    -4: "FL_STATUS_UNSUPPORTED",
    -5: "FL_STATUS_NO_DEVICE",
    -6: "FL_STATUS_CUDA_ERROR",
    -7: "FL_STATUS_IO_ERROR",
    -8: "FL_STATUS_CORRUPT",
    -9: "FL_STATUS_VERSION_MISMATCH",
    -10: "FL_STATUS_CANCELLED",
    -11: "FL_STATUS_NOT_FITTED",
    -12: "FL_STATUS_INTERNAL",
    -13: "FL_STATUS_NUMERICAL",
}


class FlashlibError(Exception):
    """Base of every error reported by the flashlib C library.

    Attributes: `status` (the negative fl_status code, or None when the
    code is unknown to this package), `status_name` ("FL_STATUS_...") and
    `message` (the C library's explanation)."""

    status = None

    def __init__(self, message="", status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    @property
    def status_name(self):
        return STATUS_NAMES.get(self.status, f"FL_STATUS_UNKNOWN({self.status})")

    def __reduce__(self):
        # Keep the code across pickling (joblib workers re-raise in the parent).
        return (type(self), (self.message, self.status))


class InvalidArgumentError(FlashlibError, ValueError):
    """A parameter or array is outside its domain (FL_STATUS_INVALID_ARG)."""

    status = -1


class OutOfMemoryError(FlashlibError, MemoryError):
    """Host memory allocation failed (FL_STATUS_OUT_OF_MEMORY)."""

    status = -2


class DeviceOutOfMemoryError(OutOfMemoryError):
    """GPU memory allocation failed (FL_STATUS_DEVICE_OOM)."""

    status = -3


class UnsupportedError(FlashlibError, NotImplementedError):
    """A valid request this build or backend cannot do (FL_STATUS_UNSUPPORTED)."""

    status = -4


class NoDeviceError(FlashlibError, RuntimeError):
    """A GPU was asked for and none is usable (FL_STATUS_NO_DEVICE); the
    message says why (no driver, no device, CPU-only build...)."""

    status = -5


class CudaError(FlashlibError, RuntimeError):
    """A CUDA runtime, driver or library call failed (FL_STATUS_CUDA_ERROR)."""

    status = -6


class FlashlibIOError(FlashlibError, OSError):
    """A file could not be opened, read or written (FL_STATUS_IO_ERROR)."""

    status = -7

    def __init__(self, message="", status=None):
        # OSError's constructor interprets 2+ arguments as (errno, strerror).
        FlashlibError.__init__(self, message, status)


class CorruptError(FlashlibError, ValueError):
    """A model file or buffer is truncated or corrupt (FL_STATUS_CORRUPT)."""

    status = -8


class VersionMismatchError(FlashlibError, ValueError):
    """A file or module comes from another version (FL_STATUS_VERSION_MISMATCH)."""

    status = -9


class CancelledError(FlashlibError):
    """The progress callback asked to stop (FL_STATUS_CANCELLED)."""

    status = -10


class InternalError(FlashlibError, RuntimeError):
    """A bug in flashlib (FL_STATUS_INTERNAL): please report it."""

    status = -12


class NumericalError(FlashlibError, ValueError):
    """The input is too ill-conditioned for the method (FL_STATUS_NUMERICAL),
    e.g. a rank-deficient matrix given to CholeskyQR2."""

    status = -13


_CLASSES = {
    cls.status: cls
    for cls in (
        InvalidArgumentError,
        OutOfMemoryError,
        DeviceOutOfMemoryError,
        UnsupportedError,
        NoDeviceError,
        CudaError,
        FlashlibIOError,
        CorruptError,
        VersionMismatchError,
        CancelledError,
        InternalError,
        NumericalError,
    )
}

_not_fitted_lock = threading.Lock()
_not_fitted_cls = None


def _make_not_fitted():
    try:
        from sklearn.exceptions import NotFittedError as base
    except ImportError:
        # scikit-learn's own NotFittedError derives from both.
        bases = (FlashlibError, ValueError, AttributeError)
    else:
        bases = (FlashlibError, base)

    def __init__(self, message="", status=None):
        FlashlibError.__init__(self, message, status)

    return type(
        "NotFittedError",
        bases,
        {
            "__doc__": "A method needs a fitted model (FL_STATUS_NOT_FITTED). Subclass of "
            "scikit-learn's NotFittedError when scikit-learn is installed, else of "
            "ValueError and AttributeError.",
            "__module__": __name__,
            "__init__": __init__,
            "status": -11,
        },
    )


def not_fitted_error_class():
    """The NotFittedError class, created on first use (see the module doc)."""
    global _not_fitted_cls
    if _not_fitted_cls is None:
        with _not_fitted_lock:
            if _not_fitted_cls is None:
                _not_fitted_cls = _make_not_fitted()
    return _not_fitted_cls


def error_class(status):
    """The exception class for an fl_status code."""
    if status == -11:
        return not_fitted_error_class()
    return _CLASSES.get(status, FlashlibError)


def make_error(status, message):
    """An exception instance for a failed call."""
    return error_class(status)(message, status)


def __getattr__(name):
    if name == "NotFittedError":
        return not_fitted_error_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
