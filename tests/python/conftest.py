"""Test set-up: import flashlib from the source tree (python/) and load the
library the way the package does (flashlib/_loader.py): $FLASHLIB_LIBRARY,
then python/flashlib/libflashlib.so, then build/lib/libflashlib.so. The
path found is exported in FLASHLIB_LIBRARY so that subprocesses started by
the tests load the same file."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON_DIR = os.path.join(ROOT, "python")
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

from flashlib._loader import find_library  # noqa: E402  (standard library only)

os.environ["FLASHLIB_LIBRARY"] = os.path.abspath(find_library())


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a usable CUDA GPU (skipped without one)")


_GPU = None


def gpu_status():
    """(usable, why) from flashlib.diagnose(), computed once. Probing loads
    CUDA into this process: only GPU tests call it."""
    global _GPU
    if _GPU is None:
        import flashlib

        d = flashlib.diagnose()
        _GPU = (d["cuda_usable"], d["why_no_gpu"])
    return _GPU


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is not None:
        usable, why = gpu_status()
        if not usable:
            pytest.skip(f"no usable GPU: {why}")


@pytest.fixture
def subprocess_env():
    """Environment for a child Python that imports flashlib from the tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    return env
