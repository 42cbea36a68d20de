"""Symmetric operands of the model functions: a dense (D, D) matrix, a 1-D spectrum, or a
weighted spectrum.

A 1-D ``A`` is read as the eigenvalues of a diagonal A (how users pass a Hessian or data spectrum
of millions of entries); every other symmetric argument of the same call then follows A's
layout, and matrix results come back as 1-D diagonals. A weighted spectrum — any object with
``nodes`` and ``weights`` attributes, such as :class:`sgdnoise.WeightedSpectrum` or the result of
:func:`sgdnoise.spectral_density` — is passed in the C layout SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM
(nodes then weights); the other arguments then hold one entry per node, as for a 1-D spectrum,
and matrix results are the values at the nodes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import _lib
from ._arrays import as_float64, as_scalar, as_square, is_scalar, scaled_identity
from .errors import InvalidArgumentError

_LAYOUT_DENSE, _LAYOUT_DIAGONAL, _LAYOUT_WEIGHTED = _lib.LAYOUT_DENSE, _lib.LAYOUT_DIAGONAL, _lib.LAYOUT_WEIGHTED_SPECTRUM


def weighted_parts(x: object, name: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """(nodes, weights) of a weighted spectrum (an object with ``nodes`` and ``weights``), as 1-D
    float64 arrays of equal length; None for anything else."""
    if not (hasattr(x, "nodes") and hasattr(x, "weights")):
        return None
    nodes = as_float64(x.nodes, f"{name}.nodes", 1)  # type: ignore[attr-defined]
    weights = as_float64(x.weights, f"{name}.weights", 1)  # type: ignore[attr-defined]
    if nodes.shape != weights.shape:
        raise InvalidArgumentError(f"{name}: nodes ({nodes.size}) and weights ({weights.size}) must have equal lengths")
    if nodes.size == 0:
        raise InvalidArgumentError(f"{name} must not be empty")
    return nodes, weights


class Operand:
    """A validated symmetric argument with its C layout."""

    __slots__ = ("array", "layout", "dim")

    array: npt.NDArray[np.float64]
    layout: int
    dim: int

    def __init__(self, x: npt.ArrayLike, name: str) -> None:
        parts = weighted_parts(x, name)
        if parts is not None:
            self.array = np.concatenate(parts)
            self.layout = _LAYOUT_WEIGHTED
            self.dim = parts[0].size
            return
        ndim = -1 if x is None else x.ndim if type(x) is np.ndarray else np.ndim(x)
        if ndim == 1:
            self.array = as_float64(x, name, 1)
            if self.array.size == 0:
                raise InvalidArgumentError(f"{name} must not be empty")
            self.layout = _LAYOUT_DIAGONAL
        elif ndim == 2:
            self.array = as_square(x, name)
            self.layout = _LAYOUT_DENSE
        else:
            shape = "None" if x is None else f"an array of shape {np.shape(x)}"
            raise InvalidArgumentError(
                f"{name} must be a (D, D) symmetric matrix or a 1-D spectrum (its D eigenvalues), got {shape}")
        self.dim = self.array.shape[0]

    @property
    def diagonal(self) -> bool:
        """Whether the other arguments and the results hold one entry per direction (a 1-D spectrum)
        or per node (a weighted spectrum)."""
        return self.layout != _LAYOUT_DENSE

    def like(self, x: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
        """Another symmetric argument in this operand's layout: a scalar s means s * I, a 1-D
        array a diagonal, a 2-D array a matrix (only with a dense operand)."""
        if is_scalar(x):
            value = as_scalar(x, name)
            return np.full(self.dim, value) if self.diagonal else scaled_identity(value, self.dim)
        if np.ndim(x) == 1:
            v = as_float64(x, name, 1)
            if v.shape[0] != self.dim:
                raise InvalidArgumentError(f"{name} must have {self.dim} entries, got {v.shape[0]}")
            return v if self.diagonal else np.diag(v)
        if self.diagonal:
            raise InvalidArgumentError(
                f"{name} is a matrix but A was given as a spectrum (1-D): pass {name} as a 1-D diagonal")
        return as_square(x, name, self.dim)

    def learning_rate(self, lr: npt.ArrayLike) -> tuple[float, npt.NDArray[np.float64] | None]:
        """(scale, matrix or None) for the C convention: the learning rate is scale * matrix."""
        if is_scalar(lr):
            return as_scalar(lr, "lr"), None
        return 1.0, self.like(lr, "lr")

    def vector(self, x: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
        v = as_float64(x, name, 1)
        if v.shape[0] != self.dim:
            raise InvalidArgumentError(f"{name} must have {self.dim} entries, got {v.shape[0]}")
        return v

    def empty(self) -> npt.NDArray[np.float64]:
        """An output buffer for a matrix result in this layout."""
        return np.empty(self.dim if self.diagonal else (self.dim, self.dim))

