"""The package version; `sgdnoise.__version__` is read from the loaded C library instead."""

__version__ = "1.0.0"
