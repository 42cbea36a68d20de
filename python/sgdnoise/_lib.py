"""Loading libsgdnoise.so and declaring its C functions (the raw bindings).

The library is looked up, in order: the path in the environment variable ``SGDNOISE_LIBRARY``;
the copy bundled inside this package (the wheel of ``make wheel``, which also carries OpenBLAS and
LAPACKE in ``sgdnoise.libs/``, or ``pip install ./python``); the release build of
a source checkout (``.build/release/libsgdnoise.so`` next to ``python/``). Each function is declared
from the generated :mod:`sgdnoise._capi` (written from ``include/sgdnoise.h`` by
``scripts/make_bindings.py``; ``make test`` checks it is current), so the header is the one truth
of every signature and constant. The Pythonic layer calls them through :func:`check`.

Once loaded, the library's BLAS and LAPACK calls are routed to numpy's own OpenBLAS when numpy runs
on an ILP64 OpenBLAS (the numpy wheels from PyPI: ``numpy.libs/libscipy_openblas64_*.so``): one
OpenBLAS thread pool then serves numpy and sgdnoise. With two pools (the library's own, linked
OpenBLAS beside numpy's), each keeps its threads spinning for a while after a call, and a call to
one library right after a call to the other runs slower (issue 15: label_noise at D = 1500 took
0.49 s right after numpy.linalg.eigh against 0.44 s after a pause). ``SGDNOISE_BLAS=linked`` in the
environment keeps the linked OpenBLAS; :data:`blas` tells which one is in use.
"""

from __future__ import annotations

import ctypes
import math
import os
from ctypes import c_char_p, c_double, c_int, c_void_p
from pathlib import Path
from typing import NoReturn

from . import _capi, errors

_HERE = Path(__file__).resolve().parent
_ENV = "SGDNOISE_LIBRARY"
_BLAS_ENV = "SGDNOISE_BLAS"

c_ptrdiff = ctypes.c_ssize_t  # ptrdiff_t
P = c_void_p  # an array argument: a numpy array's data pointer, or None for NULL

# Status codes, enum codes and the Python names of their values (all from the generated _capi).
OK = _capi.SGDNOISE_STATUS_OK
INVALID_ARGUMENT = _capi.SGDNOISE_STATUS_INVALID_ARGUMENT
NOT_SYMMETRIC = _capi.SGDNOISE_STATUS_NOT_SYMMETRIC
NOT_POSITIVE_DEFINITE = _capi.SGDNOISE_STATUS_NOT_POSITIVE_DEFINITE
UNSTABLE = _capi.SGDNOISE_STATUS_UNSTABLE
NUMERICAL_FAILURE = _capi.SGDNOISE_STATUS_NUMERICAL_FAILURE
OUT_OF_MEMORY = _capi.SGDNOISE_STATUS_OUT_OF_MEMORY
CANCELLED = _capi.SGDNOISE_STATUS_CANCELLED
SAMPLING_WITH_REPLACEMENT = _capi.SGDNOISE_SAMPLING_WITH_REPLACEMENT
SAMPLING_WITHOUT_REPLACEMENT = _capi.SGDNOISE_SAMPLING_WITHOUT_REPLACEMENT
SAMPLING_EPOCH_SHUFFLING = _capi.SGDNOISE_SAMPLING_EPOCH_SHUFFLING
SAMPLING = {"with_replacement": SAMPLING_WITH_REPLACEMENT, "without_replacement": SAMPLING_WITHOUT_REPLACEMENT,
            "epoch_shuffling": SAMPLING_EPOCH_SHUFFLING}


def sampling_code(replacement: bool, sampling: str | None) -> int:
    """The C code of ``sampling`` when given (one of :data:`SAMPLING`'s names), else of ``replacement``."""
    mode = sampling if sampling is not None else ("with_replacement" if replacement else "without_replacement")
    if mode not in SAMPLING:
        raise errors.InvalidArgumentError(f"sampling must be one of {sorted(SAMPLING)}, got {mode!r}")
    return SAMPLING[mode]
NOISE_KIND = {"full": _capi.SGDNOISE_NOISE_KIND_FULL, "diag": _capi.SGDNOISE_NOISE_KIND_DIAGONAL,
              "diagonal": _capi.SGDNOISE_NOISE_KIND_DIAGONAL,
              "trace": _capi.SGDNOISE_NOISE_KIND_TRACE}
LAYOUT_DENSE = _capi.SGDNOISE_LAYOUT_DENSE
LAYOUT_DIAGONAL = _capi.SGDNOISE_LAYOUT_DIAGONAL
LAYOUT_WEIGHTED_SPECTRUM = _capi.SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM
MODEL = {"label_noise": _capi.SGDNOISE_MODEL_LABEL_NOISE, "high_dimensional": _capi.SGDNOISE_MODEL_HIGH_DIMENSIONAL,
         "l2_regularized": _capi.SGDNOISE_MODEL_L2_REGULARIZED}
TAIL_METHOD = {"paper": _capi.SGDNOISE_TAIL_METHOD_PAPER, "kesten": _capi.SGDNOISE_TAIL_METHOD_KESTEN,
               "continuous_time": _capi.SGDNOISE_TAIL_METHOD_CONTINUOUS_TIME}
MINIMUM_KINDS = tuple(name.removeprefix("SGDNOISE_MINIMUM_KIND_").lower()
                      for name, _ in sorted(_capi.sgdnoise_minimum_kind.items(), key=lambda kv: kv[1]))
PROGRESS_CALLBACK = _capi.sgdnoise_progress_callback
VERSION_NUMBER = (_capi.SGDNOISE_VERSION_MAJOR * 10000 + _capi.SGDNOISE_VERSION_MINOR * 100
                  + _capi.SGDNOISE_VERSION_PATCH)

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


for _name, (_restype, _argtypes) in _capi.FUNCTIONS.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes

if not lib.sgdnoise_abi_compatible(VERSION_NUMBER):
    raise ImportError(
        f"sgdnoise: the library {lib.sgdnoise_version().decode()} does not serve this package's C interface "
        f"{_capi.SGDNOISE_VERSION_MAJOR}.{_capi.SGDNOISE_VERSION_MINOR}: install matching versions")



def _numpy_openblas() -> tuple[str, bytes, bytes] | None:
    """numpy's OpenBLAS, when it is an ILP64 OpenBLAS mapped into this process: its path and the
    prefix and suffix of its symbols; else None.

    The candidates are the OpenBLAS objects mapped into the process (/proc/self/maps) that numpy
    ships (in ``numpy.libs/`` beside the package, or inside it) or that numpy was built against
    (the ``scipy_openblas64`` package); ILP64 is confirmed by the library's own configuration
    string (USE64BITINT), never assumed from a name."""
    import numpy

    site = Path(numpy.__file__).resolve().parent.parent
    homes = (site / "numpy.libs", site / "numpy", site / "scipy_openblas64")
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            mapped = {fields[5] for fields in (line.split(maxsplit=5) for line in maps) if len(fields) == 6}
    except OSError:
        return None
    for name in sorted(mapped):
        path = Path(name.strip())
        if "openblas" not in path.name or not any(path.is_relative_to(home) for home in homes):
            continue
        try:  # RTLD_NOLOAD: the object numpy already loaded, or nothing
            blas = ctypes.CDLL(str(path), mode=os.RTLD_NOW | os.RTLD_NOLOAD)
        except OSError:
            continue
        for prefix, suffix in (("scipy_", "64_"), ("", "64_")):
            config = getattr(blas, f"{prefix}openblas_get_config{suffix}", None)
            if config is None:
                continue
            config.restype = ctypes.c_char_p
            if b"USE64BITINT" in (config() or b"").split():
                return str(path), prefix.encode(), suffix.encode()
    return None


def _route_blas() -> str:
    """Routes the library's BLAS to numpy's (see the module's doc) unless SGDNOISE_BLAS=linked;
    returns the path of the BLAS in use, or "linked"."""
    choice = os.environ.get(_BLAS_ENV, "numpy")
    if choice not in ("numpy", "linked"):
        raise ImportError(f"sgdnoise: {_BLAS_ENV}={choice!r}: expected 'numpy' (the default) or 'linked'")
    found = _numpy_openblas() if choice == "numpy" else None
    if found is not None and lib.sgdnoise_use_blas_ilp64(found[0].encode(), found[1], found[2]) == OK:
        return lib.sgdnoise_blas_library().decode()
    lib.sgdnoise_use_blas_ilp64(None, None, None)
    return "linked"


#: The OpenBLAS the library calls: the path of numpy's, or "linked" (the one it was built with).
blas = _route_blas()

_EXCEPTIONS = {
    INVALID_ARGUMENT: errors.InvalidArgumentError,
    NOT_SYMMETRIC: errors.NotSymmetricError,
    NOT_POSITIVE_DEFINITE: errors.NotPositiveDefiniteError,
    NUMERICAL_FAILURE: errors.NumericalError,
    OUT_OF_MEMORY: errors.OutOfMemoryError,
    CANCELLED: errors.CancelledError,
}


def raise_for(status: int) -> NoReturn:
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
