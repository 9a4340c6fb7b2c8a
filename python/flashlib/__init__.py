"""flashlib: GPU-accelerated classical machine learning with scikit-learn's
semantics, through a thin ctypes layer over libflashlib.

Importing this package loads nothing: not numpy, not libflashlib, and never
CUDA. The library is loaded on first use of anything that needs it
(flashlib.KMeans, flashlib.version(), ...); GPU contexts are created per
estimator when it is fitted, and CUDA is loaded only when a GPU is used.
"""

from ._version import __version__

_LAZY = {
    # name: (module, attribute)
    "KMeans": ("cluster", "KMeans"),
    "PCA": ("decomposition", "PCA"),
    "TruncatedSVD": ("decomposition", "TruncatedSVD"),
    "NearestNeighbors": ("neighbors", "NearestNeighbors"),
    "KNeighborsClassifier": ("neighbors", "KNeighborsClassifier"),
    "KNeighborsRegressor": ("neighbors", "KNeighborsRegressor"),
    "IVFFlat": ("neighbors", "IVFFlat"),
    "IVFPQ": ("neighbors", "IVFPQ"),
    "CAGRA": ("neighbors", "CAGRA"),
    "version": ("_api", "version"),
    "diagnose": ("_api", "diagnose"),
    "route": ("_api", "route"),
    "params": ("_api", "params"),
    "release_device_memory": ("_lib", "release_device_memory"),
    "FlashlibError": ("_errors", "FlashlibError"),
    "InvalidArgumentError": ("_errors", "InvalidArgumentError"),
    "OutOfMemoryError": ("_errors", "OutOfMemoryError"),
    "DeviceOutOfMemoryError": ("_errors", "DeviceOutOfMemoryError"),
    "UnsupportedError": ("_errors", "UnsupportedError"),
    "NoDeviceError": ("_errors", "NoDeviceError"),
    "CudaError": ("_errors", "CudaError"),
    "FlashlibIOError": ("_errors", "FlashlibIOError"),
    "CorruptError": ("_errors", "CorruptError"),
    "VersionMismatchError": ("_errors", "VersionMismatchError"),
    "CancelledError": ("_errors", "CancelledError"),
    "NotFittedError": ("_errors", "NotFittedError"),
    "InternalError": ("_errors", "InternalError"),
    "NumericalError": ("_errors", "NumericalError"),
}

__all__ = ["__version__", *_LAZY]


_SUBMODULES = ("cluster", "decomposition", "info", "linalg", "neighbors")


def __getattr__(name):
    import importlib

    if name in _SUBMODULES:  # flashlib.info works without `import flashlib.info`
        return importlib.import_module(f".{name}", __name__)
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'flashlib' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
