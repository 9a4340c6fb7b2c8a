"""Where libflashlib.so is looked for. Pure standard library, imported by
_lib (which loads the library) and by the test suite's conftest (which must
find the same file), so there is exactly one search order:

  1. $FLASHLIB_LIBRARY, when set (and then nothing else: a wrong path is an
     error, never silently replaced by another build);
  2. libflashlib.so next to this file (an installed package);
  3. ../../build/lib/libflashlib.so relative to this file (the source tree).
"""

import os

LIBRARY_NAME = "libflashlib.so"
ENV_VAR = "FLASHLIB_LIBRARY"


def candidates():
    """The paths tried, in order."""
    env = os.environ.get(ENV_VAR)
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    return [
        os.path.join(here, LIBRARY_NAME),
        os.path.normpath(os.path.join(here, "..", "..", "build", "lib", LIBRARY_NAME)),
    ]


def find_library():
    """The first existing candidate. Raises ImportError naming every path
    tried and how to fix it."""
    tried = candidates()
    for path in tried:
        if os.path.isfile(path):
            return path
    if os.environ.get(ENV_VAR):
        raise ImportError(
            f"flashlib: {ENV_VAR}={tried[0]} does not exist; point it at a built "
            f"{LIBRARY_NAME} or unset it"
        )
    raise ImportError(
        f"flashlib: {LIBRARY_NAME} not found (looked in {', '.join(tried)}); build it with "
        "`cmake -S . -B build && cmake --build build --target flashlib` or set "
        f"{ENV_VAR} to its path"
    )
