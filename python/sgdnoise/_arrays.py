"""Conversion of array-likes for the C layer: C-contiguous arrays of the right dtype and shape.

Entries (finiteness, symmetry) are checked once, in the C library, which names the argument in
its message; here only what the C layer cannot see is checked: dimensions and shapes.

A small model call costs a few µs in C, so the common arguments take a fast path here: a Python
float or int is a real scalar without asking numpy (``np.ndim`` and ``np.iscomplexobj`` of a float
cost about a µs each, as much as a 2 × 2 eigendecomposition), and :func:`ptr` reads a data pointer
in a fifth of the time of ``ndarray.ctypes.data``. Every other argument goes the general way, with
the same checks and messages.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgumentError


_PTRDIFF_MAX = 2**63 - 1
_address, _char_at, _byref = ctypes.addressof, ctypes.c_char.from_buffer, ctypes.byref
_FLOAT64 = np.dtype(np.float64)  # native float64: numpy's one instance of it


def ptr(a: np.ndarray | ctypes.Structure | None) -> int | ctypes._CArgObject | None:
    """The data pointer of a C-contiguous array, a reference to a result struct, or None."""
    if type(a) is np.ndarray:
        try:  # the address of a writable contiguous buffer: ~0.2 µs against ~1.5 µs for a.ctypes.data
            return _address(_char_at(a))
        except (TypeError, ValueError, BufferError):  # read-only or empty: the general way
            return a.ctypes.data
    if a is None:
        return None
    if isinstance(a, ctypes.Structure):
        return _byref(a)
    return a.ctypes.data


def is_scalar(x: object) -> bool:
    """``np.ndim(x) == 0``, answered without numpy for a Python float or int."""
    return type(x) is float or type(x) is int or np.ndim(x) == 0


@functools.lru_cache(maxsize=32)
def _small_identity(d: int) -> npt.NDArray[np.float64]:
    eye = np.eye(d)
    eye.flags.writeable = False
    return eye


def scaled_identity(value: float, d: int) -> npt.NDArray[np.float64]:
    """``value * np.eye(d)``, the same array; the identity of a small D is made once."""
    return value * (_small_identity(d) if d <= 64 else np.eye(d))


def _reject_complex(a: Any, name: str) -> None:
    if np.iscomplexobj(a):
        raise InvalidArgumentError(f"{name} must be real, got a complex array")


def as_float64(x: npt.ArrayLike, name: str, ndim: int) -> npt.NDArray[np.float64]:
    """``x`` as a C-contiguous float64 array of ``ndim`` dimensions."""
    if type(x) is np.ndarray and x.dtype is _FLOAT64 and x.ndim == ndim:  # nothing complex to reject
        return x if x.flags.c_contiguous else np.ascontiguousarray(x)
    try:
        _reject_complex(x, name)
        a = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidArgumentError):
            raise
        raise InvalidArgumentError(f"{name} must be a real array: {exc}") from None
    if a.ndim != ndim:
        raise InvalidArgumentError(f"{name} must be {ndim}-dimensional, got shape {a.shape}")
    return a


def as_square(x: npt.ArrayLike, name: str, size: int | None = None) -> npt.NDArray[np.float64]:
    """``x`` as a C-contiguous float64 square matrix (of side ``size`` when given)."""
    a = as_float64(x, name, 2)
    if a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise InvalidArgumentError(f"{name} must be a non-empty square matrix, got shape {a.shape}")
    if size is not None and a.shape[0] != size:
        raise InvalidArgumentError(f"{name} must be {size} x {size}, got shape {a.shape}")
    return a


def as_gradients(x: npt.ArrayLike, name: str = "grads") -> npt.NDArray[np.float32] | npt.NDArray[np.float64]:
    """Per-sample gradients as a C-contiguous (N, D) array, float32 kept as float32."""
    try:
        a = np.asarray(x)
        _reject_complex(a, name)
        dtype = np.float32 if a.dtype == np.float32 else np.float64
        a = np.ascontiguousarray(a, dtype=dtype)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidArgumentError):
            raise
        raise InvalidArgumentError(f"{name} must be a real array: {exc}") from None
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise InvalidArgumentError(f"{name} must be a non-empty (N, D) array, got shape {a.shape}")
    return a


def as_batch_size(s: object, name: str = "batch_size") -> int:
    """A batch size as a Python int (range checked by the C library)."""
    if type(s) is int and -_PTRDIFF_MAX <= s <= _PTRDIFF_MAX:
        return s
    if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an integer, got {s!r}")
    if not -_PTRDIFF_MAX <= int(s) <= _PTRDIFF_MAX:
        raise InvalidArgumentError(f"{name} = {int(s)} is out of range")
    return int(s)


def as_scalar(x: Any, name: str) -> float:
    """A real scalar as a Python float (range checked by the C library)."""
    if type(x) is float:
        return x
    if np.iscomplexobj(x):
        raise InvalidArgumentError(f"{name} must be a real number, got {x!r}")
    try:
        return float(x)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a real number, got {x!r}") from None


def as_flat_tolerance(flat_tolerance: float | None) -> float:
    """The C value of a relative flat tolerance (None: the library's default 16·D·ε). C reads 0 as
    the default, so an explicit 0 (only exact zeros are flat) travels as the smallest positive
    double, which only exact zeros satisfy."""
    if flat_tolerance is None:
        return 0.0
    tolerance = as_scalar(flat_tolerance, "flat_tolerance")
    return 5e-324 if tolerance == 0.0 else tolerance


def as_dense_or_none(x: npt.ArrayLike | None, name: str, d: int) -> npt.NDArray[np.float64] | None:
    """A (D, D) matrix argument given as a scalar s (s·I; None when 0), a 1-D diagonal or a
    matrix; None stays None."""
    if x is None:
        return None
    if is_scalar(x):
        value = as_scalar(x, name)
        return None if value == 0 else scaled_identity(value, d)
    if np.ndim(x) == 1:
        v = as_float64(x, name, 1)
        if v.shape[0] != d:
            raise InvalidArgumentError(f"{name} must have {d} entries, got {v.shape[0]}")
        return np.diag(v)
    return as_square(x, name, d)


def dense_learning_rate(lr: npt.ArrayLike, d: int) -> tuple[float, npt.NDArray[np.float64] | None]:
    """(scale, matrix or None) for the C convention lr = scale * matrix, with a dense matrix."""
    if is_scalar(lr):
        return as_scalar(lr, "lr"), None
    return 1.0, as_dense_or_none(lr, "lr", d)
