"""The minibatch noise covariance from per-sample gradients (docs/theory.md §2, [Prop 1])."""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from . import _lib
from ._arrays import as_batch_size, as_gradients
from .errors import InvalidArgumentError

__all__ = ["noise_covariance"]


@overload
def noise_covariance(grads: npt.ArrayLike, batch_size: int, *, replacement: bool = ...,
                     kind: Literal["full", "diag", "diagonal"] = ...) -> npt.NDArray[np.float64]: ...


@overload
def noise_covariance(grads: npt.ArrayLike, batch_size: int, *, replacement: bool = ...,
                     kind: Literal["trace"]) -> float: ...


@overload
def noise_covariance(grads: npt.ArrayLike, batch_size: int, *, replacement: bool = ...,
                     kind: Literal["full", "diag", "diagonal", "trace"] = ...) -> npt.NDArray[np.float64] | float: ...


def noise_covariance(grads: npt.ArrayLike, batch_size: int, *, replacement: bool = True,
                     kind: Literal["full", "diag", "diagonal", "trace"] = "full") -> npt.NDArray[np.float64] | float:
    r"""Minibatch noise covariance of SGD from per-sample gradients [Prop 1].

    .. math::

        C = f\,\bigl(M_2 - \bar g \bar g^\top\bigr),\qquad
        \bar g = \tfrac1N \sum_i g_i,\quad M_2 = \tfrac1N \sum_i g_i g_i^\top,

    with :math:`f = 1/S` when the batch is drawn with replacement and
    :math:`f = (N-S)/(S(N-1))` for :math:`S` distinct indices (:math:`C = 0` at :math:`S = N`).
    This is the covariance of :math:`\hat g - \nabla L` for the minibatch gradient
    :math:`\hat g = \tfrac1S\sum_{i\in B} g_i` of the mean loss :math:`L = \tfrac1N\sum_i \ell_i`.

    Parameters
    ----------
    grads : (N, D) array_like
        Row ``i`` is the per-sample gradient :math:`g_i = \nabla \ell_i(w)`. float32 input is kept
        in float32 in memory and accumulated in float64.
    batch_size : int
        The batch size :math:`S \ge 1` (:math:`S \le N` without replacement).
    replacement : bool, default True
        Whether minibatch indices are drawn with replacement.
    kind : {"full", "diag", "trace"}, default "full"
        The whole :math:`D\times D` matrix (one SYRK, :math:`O(ND^2)`), its diagonal or its trace
        (both :math:`O(ND)`). ``"diagonal"`` (the name in C
        and Swift) is accepted for ``"diag"``.

    Returns
    -------
    C : (D, D) ndarray, (D,) ndarray or float
        The covariance, its diagonal, or its trace.

    Raises
    ------
    InvalidArgumentError
        For a non-2-D or empty ``grads``, NaN/Inf entries, ``batch_size < 1``, or
        ``batch_size > N`` without replacement; an unknown ``kind``.

    Notes
    -----
    Two passes: the mean, then the centred scatter accumulated block by block with BLAS ``dsyrk``,
    so a large mean gradient does not cancel digits.

    References
    ----------
    Ziyin, Liu, Mori, Ueda, "Strength of Minibatch Noise in SGD", ICLR 2022, Proposition 1.

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> g = np.random.default_rng(0).normal(size=(1000, 3))
    >>> C = sgdnoise.noise_covariance(g, batch_size=10)
    >>> bool(np.allclose(C, np.cov(g.T, bias=True) / 10, rtol=1e-12, atol=0))
    True
    """
    try:
        code = _lib.NOISE_KIND[kind]
    except (KeyError, TypeError):
        raise InvalidArgumentError(f'kind must be "full", "diag" (or "diagonal") or "trace", got {kind!r}') from None
    g = as_gradients(grads)
    s = as_batch_size(batch_size)
    n, d = g.shape
    out = np.empty((d, d) if code == 0 else (d,) if code == 1 else (1,))
    fn = _lib.lib.sgdnoise_noise_covariance_f32 if g.dtype == np.float32 else _lib.lib.sgdnoise_noise_covariance
    sampling = _lib.SAMPLING_WITH_REPLACEMENT if replacement else _lib.SAMPLING_WITHOUT_REPLACEMENT
    _lib.check(fn(n, d, g.ctypes.data, s, sampling, code, out.ctypes.data))
    return float(out[0]) if code == 2 else out
