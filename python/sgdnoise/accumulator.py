"""The streaming noise accumulator (docs/theory.md §2): count, mean and centred scatter of
per-sample gradients, chunk by chunk, in O(D^2) memory however many gradients pass through."""

from __future__ import annotations

import ctypes
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from . import _capi, _lib
from ._arrays import as_batch_size
from ._state import MergeableState, as_positive
from .errors import InvalidArgumentError

__all__ = ["NoiseAccumulator"]

_c = _lib.lib


class NoiseAccumulator(MergeableState):
    r"""Streaming accumulator of per-sample gradients for the minibatch noise covariance [Prop 1].

    Keeps the count :math:`N`, the mean :math:`\bar g` and the centred scatter
    :math:`S = \sum_i (g_i - \bar g)(g_i - \bar g)^\top`, so that

    .. math::

        C = \frac{f}{N}\, S,\qquad f = \frac1S \text{ (with replacement)},\quad
        f = \frac{N - S}{S(N - 1)} \text{ (without)},

    is the same matrix as the one-shot :func:`sgdnoise.noise_covariance` of every row seen (equal up
    to rounding), in :math:`O(D^2)` memory whatever :math:`N`. Each chunk's own count
    :math:`n_b`, mean :math:`m_b` and centred scatter :math:`S_b` (one BLAS ``dsyrk``) are combined
    with the running state by the pairwise update of Chan, Golub and LeVeque:

    .. math::

        n = n_a + n_b,\quad \delta = m_b - m_a,\quad \bar g = m_a + \tfrac{n_b}{n}\delta,\quad
        S = S_a + S_b + \tfrac{n_a n_b}{n}\,\delta\delta^\top .

    :meth:`merge` applies the same formula to two accumulators, so shards computed anywhere combine
    exactly, in any order.

    Parameters
    ----------
    dim : int
        The dimension :math:`D` of the gradients, :math:`1 \le D \le 40000` (the state is
        :math:`D^2` doubles).

    Attributes
    ----------
    dim : int
        :math:`D`.
    count : int
        The number of gradients accumulated, :math:`N`.
    mean : (D,) ndarray
        The mean gradient :math:`\bar g` (raises when empty).

    Raises
    ------
    InvalidArgumentError
        ``dim < 1``; any method called after :meth:`close`.
    OutOfMemoryError
        ``dim > 40000``.

    Notes
    -----
    float32 chunks are read as float32 and widened to float64 block by block; every sum is in
    float64. A chunk with NaN/Inf (or entries so large that :math:`S` would overflow) is rejected and
    leaves the accumulator unchanged. The C handle is freed by :meth:`close`, by leaving a ``with``
    block, or (as a safety net) when the object is garbage-collected. Calls on one accumulator from
    several threads are serialised.

    References
    ----------
    T. F. Chan, G. H. Golub, R. J. LeVeque, "Updating formulae and a pairwise algorithm for
    computing sample variances", COMPSTAT 1982. Ziyin, Liu, Mori, Ueda, ICLR 2022, Proposition 1.

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> g = np.random.default_rng(0).normal(size=(1000, 4))
    >>> with sgdnoise.NoiseAccumulator(4) as acc:
    ...     for chunk in np.array_split(g, 7):
    ...         acc.update(chunk)
    ...     C = acc.covariance(batch_size=10)
    ...     acc.count
    1000
    >>> bool(np.allclose(C, sgdnoise.noise_covariance(g, 10), rtol=1e-12, atol=0))
    True
    """

    _family = "accumulator"

    def __init__(self, dim: int) -> None:
        d = as_positive(dim, "dim")
        handle = ctypes.c_void_p()
        _lib.check(_c.sgdnoise_accumulator_create(d, ctypes.byref(handle)))
        self._adopt(handle.value, d)

    def __repr__(self) -> str:
        if self.closed:
            return f"NoiseAccumulator(dim={self._dim}, closed)"
        return f"NoiseAccumulator(dim={self._dim}, count={self.count})"

    # -- results --------------------------------------------------------------------------------

    @overload
    def covariance(self, batch_size: int, replacement: bool = ...,
                   kind: Literal["full", "diag", "diagonal"] = ...) -> npt.NDArray[np.float64]: ...

    @overload
    def covariance(self, batch_size: int, replacement: bool, kind: Literal["trace"]) -> float: ...

    @overload
    def covariance(self, batch_size: int, replacement: bool = ..., *, kind: Literal["trace"]) -> float: ...

    @overload
    def covariance(self, batch_size: int, replacement: bool = ...,
                   kind: Literal["full", "diag", "diagonal", "trace"] = ...) -> npt.NDArray[np.float64] | float: ...

    def covariance(self, batch_size: int, replacement: bool = True,
                   kind: Literal["full", "diag", "diagonal", "trace"] = "full") -> npt.NDArray[np.float64] | float:
        """The noise covariance :math:`C = (f/N) S` of the accumulated gradients [Prop 1].

        Parameters
        ----------
        batch_size : int
            :math:`S \\ge 1` (:math:`S \\le N` without replacement; :math:`C = 0` at :math:`S = N`).
        replacement : bool, default True
            Whether minibatch indices are drawn with replacement.
        kind : {"full", "diag", "trace"}, default "full"
            The (D, D) matrix, its diagonal (D,) or its trace (float). ``"diagonal"`` (the name in C
            and Swift) is accepted for ``"diag"``.

        Returns
        -------
        C : (D, D) ndarray, (D,) ndarray or float
            The same numbers as ``noise_covariance`` on all the rows, up to rounding.

        Raises
        ------
        InvalidArgumentError
            Empty accumulator, batch size out of range, unknown ``kind``, closed accumulator.
        """
        try:
            code = _lib.NOISE_KIND[kind]
        except (KeyError, TypeError):
            raise InvalidArgumentError(f'kind must be "full", "diag" (or "diagonal") or "trace", got {kind!r}') from None
        s = as_batch_size(batch_size)
        d = self._dim
        out = np.empty((d, d) if code == 0 else (d,) if code == 1 else (1,))
        sampling = _lib.SAMPLING_WITH_REPLACEMENT if replacement else _lib.SAMPLING_WITHOUT_REPLACEMENT
        with self._lock:
            _lib.check(_c.sgdnoise_accumulator_covariance(self._live(), s, sampling, code, out.ctypes.data))
        return float(out[0]) if code == 2 else out

    def _noise_scale_scalars(self, hessian: npt.NDArray[np.float64] | None) -> _capi.sgdnoise_noise_scales:
        """The C noise-scale fields of the accumulated gradients (used by ``noise_scale``)."""
        out = _capi.sgdnoise_noise_scales()
        h = None if hessian is None else hessian.ctypes.data
        with self._lock:
            _lib.check(_c.sgdnoise_accumulator_noise_scale(self._live(), h, ctypes.byref(out)))
        return out
