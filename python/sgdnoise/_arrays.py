"""Conversion of array-likes for the C layer: C-contiguous arrays of the right dtype and shape.

Entries (finiteness, symmetry) are checked once, in the C library, which names the argument in
its message; here only what the C layer cannot see is checked: dimensions and shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgumentError


_PTRDIFF_MAX = 2**63 - 1


def _reject_complex(a: Any, name: str) -> None:
    if np.iscomplexobj(a):
        raise InvalidArgumentError(f"{name} must be real, got a complex array")


def as_float64(x: npt.ArrayLike, name: str, ndim: int) -> npt.NDArray[np.float64]:
    """``x`` as a C-contiguous float64 array of ``ndim`` dimensions."""
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
    if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an integer, got {s!r}")
    if not -_PTRDIFF_MAX <= int(s) <= _PTRDIFF_MAX:
        raise InvalidArgumentError(f"{name} = {int(s)} is out of range")
    return int(s)


def as_scalar(x: Any, name: str) -> float:
    """A real scalar as a Python float (range checked by the C library)."""
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
    if np.ndim(x) == 0:
        value = as_scalar(x, name)
        return None if value == 0 else value * np.eye(d)
    if np.ndim(x) == 1:
        v = as_float64(x, name, 1)
        if v.shape[0] != d:
            raise InvalidArgumentError(f"{name} must have {d} entries, got {v.shape[0]}")
        return np.diag(v)
    return as_square(x, name, d)


def dense_learning_rate(lr: npt.ArrayLike, d: int) -> tuple[float, npt.NDArray[np.float64] | None]:
    """(scale, matrix or None) for the C convention lr = scale * matrix, with a dense matrix."""
    if np.ndim(lr) == 0:
        return as_scalar(lr, "lr"), None
    return 1.0, as_dense_or_none(lr, "lr", d)
