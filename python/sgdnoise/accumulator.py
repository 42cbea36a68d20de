"""The streaming noise accumulator (docs/theory.md §2): count, mean and centred scatter of
per-sample gradients, chunk by chunk, in O(D^2) memory however many gradients pass through."""

from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from . import _capi, _lib
from ._arrays import as_batch_size
from .errors import InvalidArgumentError

__all__ = ["NoiseAccumulator"]

_c = _lib.lib


def _as_dim(dim: object) -> int:
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise InvalidArgumentError(f"dim must be an integer, got {dim!r}")
    if dim < 1:
        raise InvalidArgumentError(f"dim must be at least 1, got {dim}")
    return int(dim)


def _as_chunk(chunk: npt.ArrayLike, dim: int) -> npt.NDArray[np.float32] | npt.NDArray[np.float64]:
    """A chunk as a C-contiguous (n, dim) float32 or float64 array (float32 kept as float32; a 1-D
    array of ``dim`` entries is one row)."""
    a = np.asarray(chunk)
    dtype = np.float32 if a.dtype == np.float32 else np.float64
    try:
        a = np.ascontiguousarray(a, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"chunk must be a real array: {exc}") from None
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[1] != dim:
        raise InvalidArgumentError(f"chunk must have shape (n, {dim}) (or ({dim},) for one gradient), got {a.shape}")
    return a


class NoiseAccumulator:
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

    def __init__(self, dim: int) -> None:
        d = _as_dim(dim)
        handle = ctypes.c_void_p()
        _lib.check(_c.sgdnoise_accumulator_create(d, ctypes.byref(handle)))
        self._handle = handle.value
        self._dim = d
        self._lock = threading.RLock()
        # The safety net: frees the handle when the object is collected (or at exit) unless close()
        # already did. It holds the address, not the object.
        self._finalizer = weakref.finalize(self, _c.sgdnoise_accumulator_free, handle.value)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the C state now. Idempotent; every other method raises afterwards."""
        with self._lock:
            self._finalizer()
            self._handle = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._handle is None

    def __enter__(self) -> NoiseAccumulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _live(self) -> int:
        handle = self._handle
        if handle is None:
            raise InvalidArgumentError("this NoiseAccumulator has been closed; create a new one")
        return handle

    def __repr__(self) -> str:
        if self.closed:
            return f"NoiseAccumulator(dim={self._dim}, closed)"
        return f"NoiseAccumulator(dim={self._dim}, count={self.count})"

    # -- updates --------------------------------------------------------------------------------

    def update(self, chunk: npt.ArrayLike) -> None:
        """Add the rows of ``chunk``.

        Parameters
        ----------
        chunk : (n, D) or (D,) array_like
            Per-sample gradients, one per row (a 1-D array is one gradient). float32 stays float32 in
            memory; anything else is converted to float64. ``n = 0`` does nothing.

        Raises
        ------
        InvalidArgumentError
            Wrong shape, NaN/Inf entries, entries so large that the scatter would overflow (the
            accumulator is then unchanged), or a closed accumulator.
        """
        g = _as_chunk(chunk, self._dim)
        with self._lock:
            handle = self._live()
            if g.shape[0] == 0:
                return
            fn = _c.sgdnoise_accumulator_update_f32 if g.dtype == np.float32 else _c.sgdnoise_accumulator_update
            _lib.check(fn(handle, g.shape[0], g.ctypes.data))

    def merge(self, other: NoiseAccumulator) -> None:
        """Add everything ``other`` accumulated (``other`` is unchanged).

        Afterwards ``self`` describes the union of both sets of gradients, exactly as if all rows
        had been passed to one accumulator. Merging an accumulator with itself counts its gradients
        twice.

        Parameters
        ----------
        other : NoiseAccumulator
            Of the same dimension.

        Raises
        ------
        InvalidArgumentError
            ``other`` is not a NoiseAccumulator, has another dimension, or either is closed.
        """
        if not isinstance(other, NoiseAccumulator):
            raise InvalidArgumentError(f"other must be a NoiseAccumulator, got {type(other).__name__}")
        first, second = sorted((self, other), key=id)  # a fixed lock order: no deadlock
        with first._lock, second._lock:
            _lib.check(_c.sgdnoise_accumulator_merge(self._live(), other._live()))

    # -- results --------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """The dimension :math:`D`."""
        return self._dim

    @property
    def count(self) -> int:
        """The number of gradients accumulated, :math:`N`."""
        out = _lib.c_ptrdiff()
        with self._lock:
            _lib.check(_c.sgdnoise_accumulator_count(self._live(), ctypes.byref(out)))
        return int(out.value)

    @property
    def mean(self) -> npt.NDArray[np.float64]:
        """The mean gradient :math:`\\bar g`, shape (D,) (InvalidArgumentError when empty)."""
        out = np.empty(self._dim)
        with self._lock:
            _lib.check(_c.sgdnoise_accumulator_mean(self._live(), out.ctypes.data))
        return out

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
