"""Loading libsgdnoise.so and declaring its C functions (the raw bindings).

The library is looked up, in order: the path in the environment variable ``SGDNOISE_LIBRARY``;
the copy bundled inside this package (a wheel from ``pip install ./python``); the release build of
a source checkout (``.build/release/libsgdnoise.so`` next to ``python/``). Each function is declared
once, with its C prototype beside it; the Pythonic layer calls them through :func:`check`.
"""

from __future__ import annotations

import ctypes
import math
import os
from ctypes import c_char_p, c_double, c_int, c_void_p
from pathlib import Path

from . import errors

_HERE = Path(__file__).resolve().parent
_ENV = "SGDNOISE_LIBRARY"

c_ptrdiff = ctypes.c_ssize_t  # ptrdiff_t

# Status codes (enum sgdnoise_status in include/sgdnoise.h).
OK = 0
INVALID_ARGUMENT = 1
NOT_SYMMETRIC = 2
NOT_POSITIVE_DEFINITE = 3
UNSTABLE = 4
NUMERICAL_FAILURE = 5
OUT_OF_MEMORY = 6

# enum sgdnoise_sampling and enum sgdnoise_noise_kind.
SAMPLING_WITH_REPLACEMENT = 0
SAMPLING_WITHOUT_REPLACEMENT = 1
NOISE_KIND = {"full": 0, "diag": 1, "trace": 2}


def _candidates() -> list[Path]:
    env = os.environ.get(_ENV)
    if env:
        return [Path(env)]
    return [_HERE / "libsgdnoise.so", _HERE.parent.parent / ".build" / "release" / "libsgdnoise.so"]


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        if path.is_file():
            try:
                return ctypes.CDLL(str(path))
            except OSError as exc:
                raise ImportError(f"sgdnoise: could not load {path}: {exc}") from exc
        tried.append(str(path))
    raise ImportError(
        "sgdnoise: libsgdnoise.so not found (looked at: " + ", ".join(tried) + "). "
        "Build it with `make build` in the source checkout, install the package with "
        f"`pip install ./python`, or set {_ENV} to its path."
    )


lib = _load()


def _declare(name: str, restype, argtypes) -> None:
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = argtypes


# const char *sgdnoise_version(void);
_declare("sgdnoise_version", c_char_p, [])
# const char *sgdnoise_last_error_message(void);
_declare("sgdnoise_last_error_message", c_char_p, [])
# double sgdnoise_last_error_critical_learning_rate(void);
_declare("sgdnoise_last_error_critical_learning_rate", c_double, [])
# sgdnoise_status sgdnoise_noise_covariance(ptrdiff_t n, ptrdiff_t d, const double *grads,
#     ptrdiff_t batch_size, int sampling, int kind, double *out);
_declare("sgdnoise_noise_covariance", c_int, [c_ptrdiff, c_ptrdiff, c_void_p, c_ptrdiff, c_int, c_int, c_void_p])
# sgdnoise_status sgdnoise_noise_covariance_f32(ptrdiff_t n, ptrdiff_t d, const float *grads,
#     ptrdiff_t batch_size, int sampling, int kind, double *out);
_declare("sgdnoise_noise_covariance_f32", c_int, [c_ptrdiff, c_ptrdiff, c_void_p, c_ptrdiff, c_int, c_int, c_void_p])
# sgdnoise_status sgdnoise_stationary_covariance(ptrdiff_t d, const double *hessian,
#     const double *noise, double lr, const double *lr_matrix, double momentum, double *out_sigma);
_declare("sgdnoise_stationary_covariance", c_int, [c_ptrdiff, c_void_p, c_void_p, c_double, c_void_p, c_double, c_void_p])

_EXCEPTIONS = {
    INVALID_ARGUMENT: errors.InvalidArgumentError,
    NOT_SYMMETRIC: errors.NotSymmetricError,
    NOT_POSITIVE_DEFINITE: errors.NotPositiveDefiniteError,
    NUMERICAL_FAILURE: errors.NumericalError,
    OUT_OF_MEMORY: errors.OutOfMemoryError,
}


def raise_for(status: int) -> None:
    """Raise the exception of a failed call (reads this thread's last error)."""
    message = lib.sgdnoise_last_error_message().decode("utf-8", "replace")
    if status == UNSTABLE:
        critical = lib.sgdnoise_last_error_critical_learning_rate()
        raise errors.UnstableError(message, None if math.isnan(critical) else critical)
    raise _EXCEPTIONS.get(status, errors.SGDNoiseError)(message or f"sgdnoise: status {status}")


def check(status: int) -> None:
    """Raise unless ``status`` is OK."""
    if status != OK:
        raise_for(status)


def version() -> str:
    """The C library's version string."""
    return lib.sgdnoise_version().decode()
