"""Conversion of array-likes for the C layer: C-contiguous arrays of the right dtype and shape.

Entries (finiteness, symmetry) are checked once, in the C library, which names the argument in
its message; here only what the C layer cannot see is checked: dimensions and shapes.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidArgumentError


def as_float64(x, name: str, ndim: int) -> np.ndarray:
    """``x`` as a C-contiguous float64 array of ``ndim`` dimensions."""
    try:
        a = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{name} must be a real array: {exc}") from None
    if a.ndim != ndim:
        raise InvalidArgumentError(f"{name} must be {ndim}-dimensional, got shape {a.shape}")
    return a


def as_square(x, name: str, size: int | None = None) -> np.ndarray:
    """``x`` as a C-contiguous float64 square matrix (of side ``size`` when given)."""
    a = as_float64(x, name, 2)
    if a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise InvalidArgumentError(f"{name} must be a non-empty square matrix, got shape {a.shape}")
    if size is not None and a.shape[0] != size:
        raise InvalidArgumentError(f"{name} must be {size} x {size}, got shape {a.shape}")
    return a


def as_gradients(x, name: str = "grads") -> np.ndarray:
    """Per-sample gradients as a C-contiguous (N, D) array, float32 kept as float32."""
    a = np.asarray(x)
    dtype = np.float32 if a.dtype == np.float32 else np.float64
    try:
        a = np.ascontiguousarray(a, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{name} must be a real array: {exc}") from None
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise InvalidArgumentError(f"{name} must be a non-empty (N, D) array, got shape {a.shape}")
    return a


def as_batch_size(s, name: str = "batch_size") -> int:
    """A batch size as a Python int (range checked by the C library)."""
    if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an integer, got {s!r}")
    return int(s)


def as_scalar(x, name: str) -> float:
    """A real scalar as a Python float (range checked by the C library)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a real number, got {x!r}") from None
