r"""The streaming noise product shared by the framework adapters (:mod:`sgdnoise.torch`; the same
product as :class:`sgdnoise.jax.StreamingNoise`): per-sample gradients recomputed chunk by chunk for
every product, each chunk handed to the core's noise-operator product. No framework is imported
here.
"""

from __future__ import annotations

import ctypes
from typing import Callable, Iterator, Protocol

import numpy as np
import numpy.typing as npt

from . import _lib
from ._arrays import as_batch_size, as_float64
from .errors import InvalidArgumentError
from .matrix_free import NoiseOperator, noise_operator

__all__ = ["GradientStream", "StreamingNoise"]

_c = _lib.lib


class GradientStream(Protocol):
    """What :class:`StreamingNoise` reads: N, P, the gradients' dtype, the chunk size, and an
    iteration over C-contiguous (n_chunk, P) blocks of per-sample gradients in that dtype
    (float32 or float64), in example order."""

    n: int
    dim: int
    dtype: np.dtype
    chunk: int

    def __iter__(self) -> Iterator[np.ndarray]: ...


class StreamingNoise:
    r"""The noise covariance :math:`C v = \frac fN\sum_i (g_i - \bar g)\big((g_i - \bar g)^\top v\big)`
    of per-sample gradients recomputed chunk by chunk for every product (see :func:`noise`).

    :math:`\bar g` is computed once, on creation (one pass); each :meth:`matvec` is one more pass of
    per-sample gradients, each chunk handed to the core's noise-operator product (float64
    accumulation, float32 gradients widened on the fly) with that global mean. Memory O(chunk·P).

    Attributes
    ----------
    shape : (int, int)
        (P, P).
    dtype : numpy.dtype
        float64 (the results).
    mean : (P,) ndarray
        :math:`\bar g`.
    factor : float
        The sampling factor f of [Prop 1]: 1/S with replacement, (N−S)/(S(N−1)) without.
    batch_size : int
    replacement : bool
    samples : int
        N.
    passes : int
        Passes of per-sample gradients so far (1 for the mean, 1 per product).
    """

    def __init__(self, stream: GradientStream, batch_size: int, replacement: bool = True) -> None:
        self._stream = stream
        n, d = stream.n, stream.dim
        self.batch_size = as_batch_size(batch_size)
        self.replacement = bool(replacement)
        sampling = _lib.SAMPLING_WITH_REPLACEMENT if replacement else _lib.SAMPLING_WITHOUT_REPLACEMENT
        factor = ctypes.c_double()
        _lib.check(_c.sgdnoise_noise_factor(n, self.batch_size, sampling, ctypes.byref(factor)))
        self.factor = factor.value
        self._f32 = stream.dtype == np.float32
        mean_fn = _c.sgdnoise_gradient_mean_f32 if self._f32 else _c.sgdnoise_gradient_mean
        total, part = np.zeros(d), np.empty(d)
        for g in stream:
            _lib.check(mean_fn(g.shape[0], d, g.ctypes.data, part.ctypes.data))
            total += g.shape[0] * part
        mean = total / n
        mean.flags.writeable = False
        self._mean = mean
        self.samples = n
        self.shape = (d, d)
        self.dtype = np.dtype(np.float64)
        self.passes = 1

    @property
    def mean(self) -> npt.NDArray[np.float64]:
        return self._mean

    def __repr__(self) -> str:
        return (f"StreamingNoise(N={self.samples}, P={self.shape[0]}, dtype={self._stream.dtype}, "
                f"chunk={self._stream.chunk}, batch_size={self.batch_size}, replacement={self.replacement})")

    def _sweep(self, apply: Callable[..., int], m: int, v: np.ndarray | None, out_shape: tuple[int, ...]) -> np.ndarray:
        d = self.shape[0]
        total, part = np.zeros(out_shape), np.empty(out_shape)
        # Each chunk as its own noise operator with f = 1 (S = 1, with replacement) and the global
        # mean: (1/n_c) sum_{i in chunk} (g_i - gbar)(g_i - gbar)^T v; weighted by n_c and summed.
        for g in self._stream:
            args = (g.shape[0], d, g.ctypes.data, self._mean.ctypes.data, 1, _lib.SAMPLING_WITH_REPLACEMENT)
            args += (m, v.ctypes.data) if v is not None else ()
            _lib.check(apply(*args, part.ctypes.data))
            total += g.shape[0] * part
        self.passes += 1
        total *= self.factor / self.samples
        return total

    def matvec(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """:math:`C v` for a (P,) vector, or :math:`C V` for a (P, m) block (one pass for all m).

        Returns
        -------
        (P,) or (P, m) ndarray, float64
        """
        x = np.asarray(v)
        a = as_float64(x, "v", x.ndim if x.ndim in (1, 2) else 1)
        d = self.shape[0]
        if a.shape[0] != d:
            raise InvalidArgumentError(f"v must have {d} rows, got shape {a.shape}")
        m = 1 if a.ndim == 1 else a.shape[1]
        if m == 0:
            return np.empty((d, 0))
        apply = _c.sgdnoise_noise_operator_apply_f32 if self._f32 else _c.sgdnoise_noise_operator_apply
        return self._sweep(apply, m, a, a.shape)

    __call__ = matvec
    # scipy's name for the block form (V of shape (P, b)): network_fluctuation's block products.
    matmat = matvec

    def __matmul__(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return self.matvec(v)

    def diagonal(self) -> npt.NDArray[np.float64]:
        r"""The diagonal of :math:`C` (one pass)."""
        fn = _c.sgdnoise_noise_operator_diagonal_f32 if self._f32 else _c.sgdnoise_noise_operator_diagonal
        return self._sweep(fn, 0, None, (self.shape[0],))

    def trace(self) -> float:
        r""":math:`\operatorname{Tr} C` (one pass)."""
        return float(self.diagonal().sum())


def as_chunk(chunk: object, n: int) -> int:
    """A chunk size of per-sample gradients: an integer >= 1, capped at N."""
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or int(chunk) < 1:
        raise InvalidArgumentError(f"chunk must be an integer >= 1, got {chunk!r}")
    return min(int(chunk), n)


def stacked_or_streaming(stream: GradientStream, batch_size: int, replacement: bool,
                         memory_limit_bytes: object) -> NoiseOperator | StreamingNoise:
    """The noise product of the adapters: the per-sample gradients stacked into a
    :class:`NoiseOperator` when N·P of them fit in ``memory_limit_bytes``, else recomputed chunk by
    chunk for every product (:class:`StreamingNoise`)."""
    s = as_batch_size(batch_size)
    if isinstance(memory_limit_bytes, bool) or not isinstance(memory_limit_bytes, (int, np.integer)):
        raise InvalidArgumentError(f"memory_limit_bytes must be an integer, got {memory_limit_bytes!r}")
    if stream.n * stream.dim * stream.dtype.itemsize <= memory_limit_bytes:
        return noise_operator(_stack(stream), s, replacement)
    return StreamingNoise(stream, s, replacement)


def _stack(stream: GradientStream) -> np.ndarray:
    """The whole (N, P) matrix of per-sample gradients, in the stream's dtype."""
    out = np.empty((stream.n, stream.dim), dtype=stream.dtype)
    row = 0
    for g in stream:
        out[row:row + g.shape[0]] = g
        row += g.shape[0]
    return out
