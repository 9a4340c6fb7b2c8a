"""The version of the Python package. The shared library it loads must report
the same version through fl_version_string(); _lib checks this on load."""

__version__ = "0.1.0"
