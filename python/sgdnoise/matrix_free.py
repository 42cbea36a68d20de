"""The minibatch noise covariance as a matrix-free operator, for models too large for a D x D
matrix (docs/theory.md §2)."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from . import _lib
from ._arrays import as_batch_size, as_float64, as_gradients
from .errors import InvalidArgumentError
from .spectrum import noise_top_eigen

if TYPE_CHECKING:
    from scipy.sparse.linalg import LinearOperator

__all__ = ["NoiseOperator", "noise_operator"]

_c = _lib.lib


class NoiseOperator:
    r"""The noise covariance :math:`C` [Prop 1] of per-sample gradients, applied without forming it.

    .. math::

        C v = \frac{f}{N}\, G_c^\top (G_c v),\qquad G_c = G - \mathbf 1 \bar g^\top,

    :math:`f = 1/S` with replacement, :math:`(N-S)/(S(N-1))` without. Create it with
    :func:`noise_operator`. The operator holds a reference to the gradient array (no copy: a
    C-contiguous float32 or float64 array is used as it is) and its mean, computed once; every call
    hands the raw pointer to the C library. Nothing of size :math:`D \times D` is ever allocated.

    Attributes
    ----------
    shape : (int, int)
        ``(D, D)``.
    dtype : numpy.dtype
        float64 (results are float64 whatever the gradients' dtype).
    grads : (N, D) ndarray
        The gradients (the caller's array when it was already C-contiguous float32/float64).
    mean : (D,) ndarray
        The mean gradient :math:`\bar g`.
    batch_size : int
    replacement : bool

    Notes
    -----
    Precision: each product reads :math:`G` in tiles of 32768 columns and widens the entries to
    float64 on the fly (SIMD kernels for one vector, BLAS ``dgemm`` on centred tiles for a block):
    float32 gradients are never rounded further, ``v`` is not rounded to float32, and every product
    and sum is in float64; the mean is subtracted tile by tile, so at most
    :math:`u\sum_j |g_{ij} v_j|` is lost to cancellation (never the global
    :math:`G^\top G v - N\bar g\bar g^\top v`). Results agree with a float64 evaluation to about
    1e-15, where two float32 BLAS ``sgemv`` calls give about 1e-7 (worse when the mean dominates the
    spread). Speed: :meth:`matvec` costs two passes over :math:`G`, measured at 1.3-1.7 times two
    numpy float32 matrix-vector products of the same shapes (N = 512, D = 10^6, 2 cores);
    :meth:`restrict` one pass. The columns are split over the cores in a fixed way, so results do
    not depend on the thread count. Changing ``grads`` in place after creating the operator makes
    the cached mean stale: create a new operator.
    """

    def __init__(self, grads: npt.ArrayLike, batch_size: int, replacement: bool = True) -> None:
        g = as_gradients(grads)
        n, d = g.shape
        self._s = as_batch_size(batch_size)
        self._sampling = _lib.SAMPLING_WITH_REPLACEMENT if replacement else _lib.SAMPLING_WITHOUT_REPLACEMENT
        factor = ctypes.c_double()
        _lib.check(_c.sgdnoise_noise_factor(n, self._s, self._sampling, ctypes.byref(factor)))
        mean = np.empty(d)
        fn = _c.sgdnoise_gradient_mean_f32 if g.dtype == np.float32 else _c.sgdnoise_gradient_mean
        _lib.check(fn(n, d, g.ctypes.data, mean.ctypes.data))
        mean.flags.writeable = False
        self._g = g
        self._mean = mean
        self._f32 = g.dtype == np.float32
        self.factor = factor.value  # the sampling factor f of [Prop 1]
        self.replacement = bool(replacement)
        self.shape = (d, d)
        self.dtype = np.dtype(np.float64)

    @property
    def grads(self) -> npt.NDArray[np.float32] | npt.NDArray[np.float64]:
        return self._g

    @property
    def mean(self) -> npt.NDArray[np.float64]:
        return self._mean

    @property
    def batch_size(self) -> int:
        return self._s

    def __repr__(self) -> str:
        n, d = self._g.shape
        return (f"NoiseOperator(N={n}, D={d}, dtype={self._g.dtype}, batch_size={self._s}, "
                f"replacement={self.replacement})")

    def matvec(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        r"""The product :math:`C v` (or :math:`C V` for a block of vectors).

        Parameters
        ----------
        v : (D,) or (D, m) array_like
            One vector, or ``m`` vectors as columns (one pass pair over :math:`G` for all of them).

        Returns
        -------
        (D,) or (D, m) ndarray
            :math:`C v`, float64.

        Raises
        ------
        InvalidArgumentError
            Wrong shape or NaN/Inf in ``v``.

        Examples
        --------
        >>> import numpy as np, sgdnoise
        >>> rng = np.random.default_rng(0)
        >>> g = rng.normal(size=(50, 300)).astype(np.float32)
        >>> op = sgdnoise.noise_operator(g, batch_size=5)
        >>> v = rng.normal(size=300)
        >>> C = sgdnoise.noise_covariance(g, 5)      # the dense matrix, for the check only
        >>> bool(np.abs(op.matvec(v) - C @ v).max() < 1e-12 * np.abs(C @ v).max())
        True
        """
        x = np.asarray(v)
        ndim = x.ndim
        a = as_float64(x, "v", ndim if ndim in (1, 2) else 1)
        d = self.shape[0]
        if a.shape[0] != d:
            raise InvalidArgumentError(f"v must have {d} rows, got shape {a.shape}")
        m = 1 if ndim == 1 else a.shape[1]
        if m == 0:
            return np.empty((d, 0))
        out = np.empty(a.shape)
        fn = _c.sgdnoise_noise_operator_apply_f32 if self._f32 else _c.sgdnoise_noise_operator_apply
        n = self._g.shape[0]
        _lib.check(fn(n, d, self._g.ctypes.data, self._mean.ctypes.data, self._s, self._sampling, m,
                      a.ctypes.data, out.ctypes.data))
        return out

    # scipy's name for the block form (V of shape (P, b)): network_fluctuation's block products.
    matmat = matvec

    def __matmul__(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return self.matvec(v)

    def trace(self) -> float:
        r""":math:`\operatorname{Tr} C = \frac{f}{N}\sum_i |g_i - \bar g|^2`, in :math:`O(ND)`.

        Examples
        --------
        >>> import numpy as np, sgdnoise
        >>> g = np.random.default_rng(1).normal(size=(40, 1000))
        >>> op = sgdnoise.noise_operator(g, 8)
        >>> bool(np.isclose(op.trace(), g.var(axis=0).sum() / 8, rtol=1e-12))
        True
        """
        return float(self.diagonal().sum())

    def diagonal(self) -> npt.NDArray[np.float64]:
        r"""The diagonal of :math:`C`, :math:`\frac{f}{N}\sum_i (g_{ij} - \bar g_j)^2`, in :math:`O(ND)`.

        Examples
        --------
        >>> import numpy as np, sgdnoise
        >>> g = np.random.default_rng(2).normal(size=(40, 1000))
        >>> op = sgdnoise.noise_operator(g, 8, replacement=False)
        >>> f = (40 - 8) / (8 * 39)
        >>> bool(np.allclose(op.diagonal(), f * g.var(axis=0), rtol=1e-12, atol=0))
        True
        """
        n, d = self._g.shape
        out = np.empty(d)
        fn = _c.sgdnoise_noise_operator_diagonal_f32 if self._f32 else _c.sgdnoise_noise_operator_diagonal
        _lib.check(fn(n, d, self._g.ctypes.data, self._mean.ctypes.data, self._s, self._sampling, out.ctypes.data))
        return out

    def top_eigen(self, k: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        r"""The ``k`` largest eigenpairs of :math:`C`, through the :math:`N \times N` Gram matrix of the
        centred gradients when :math:`N \le D` (see :func:`noise_top_eigen`; no :math:`D \times D`
        array is made).

        Returns
        -------
        values : (k,) ndarray
            Descending.
        vectors : (D, k) ndarray
            Unit eigenvectors as columns.

        Examples
        --------
        >>> import numpy as np, sgdnoise
        >>> g = np.random.default_rng(3).normal(size=(30, 2000))
        >>> op = sgdnoise.noise_operator(g, 4)
        >>> w, v = op.top_eigen(3)
        >>> bool(np.abs(op.matvec(v) - v * w).max() < 1e-12 * w[0])
        True
        """
        return noise_top_eigen(self._g, self._s, k, replacement=self.replacement)

    def restrict(self, Q: npt.ArrayLike) -> npt.NDArray[np.float64]:
        r"""The restriction :math:`Q^\top C Q = \frac{f}{N} (G_c Q)^\top (G_c Q)` (k, k).

        For orthonormal columns :math:`Q` this is the compression of :math:`C` onto their span
        (its eigenvalues interlace those of :math:`C`); any (D, k) matrix is accepted. One pass over
        :math:`G`.

        Parameters
        ----------
        Q : (D, k) array_like

        Returns
        -------
        (k, k) ndarray
            Symmetric.

        Examples
        --------
        >>> import numpy as np, sgdnoise
        >>> rng = np.random.default_rng(4)
        >>> g = rng.normal(size=(60, 500))
        >>> Q, _ = np.linalg.qr(rng.normal(size=(500, 4)))
        >>> op = sgdnoise.noise_operator(g, 6)
        >>> C = sgdnoise.noise_covariance(g, 6)      # the dense matrix, for the check only
        >>> bool(np.allclose(op.restrict(Q), Q.T @ C @ Q, rtol=1e-12, atol=1e-15))
        True
        """
        q = as_float64(Q, "Q", 2)
        d = self.shape[0]
        if q.shape[0] != d or q.shape[1] == 0:
            raise InvalidArgumentError(f"Q must have shape ({d}, k) with k >= 1, got {q.shape}")
        k = q.shape[1]
        out = np.empty((k, k))
        fn = _c.sgdnoise_noise_operator_restrict_f32 if self._f32 else _c.sgdnoise_noise_operator_restrict
        n = self._g.shape[0]
        _lib.check(fn(n, d, self._g.ctypes.data, self._mean.ctypes.data, self._s, self._sampling, k,
                      q.ctypes.data, out.ctypes.data))
        return out

    def as_linear_operator(self) -> LinearOperator:
        """This operator as a ``scipy.sparse.linalg.LinearOperator`` (needs scipy), e.g. for
        ``scipy.sparse.linalg.eigsh`` or ``cg``.

        Examples
        --------
        >>> import numpy as np, sgdnoise
        >>> g = np.random.default_rng(5).normal(size=(20, 100))
        >>> L = sgdnoise.noise_operator(g, 2).as_linear_operator()
        >>> L.shape
        (100, 100)
        """
        from scipy.sparse.linalg import LinearOperator  # noqa: PLC0415
        return LinearOperator(self.shape, matvec=self.matvec, matmat=self.matvec, rmatvec=self.matvec,
                              dtype=np.float64)


def noise_operator(grads: npt.ArrayLike, batch_size: int, replacement: bool = True) -> NoiseOperator:
    r"""The minibatch noise covariance [Prop 1] as a matrix-free operator.

    .. math::

        C v = \frac{f}{N}\, G_c^\top (G_c v),\qquad G_c = G - \mathbf 1\bar g^\top,\qquad
        f = \tfrac1S \text{ or } \tfrac{N-S}{S(N-1)},

    for models too large for a :math:`D \times D` matrix: :meth:`~NoiseOperator.matvec`,
    :meth:`~NoiseOperator.trace`, :meth:`~NoiseOperator.diagonal`,
    :meth:`~NoiseOperator.top_eigen` and :meth:`~NoiseOperator.restrict`, none of which allocates
    anything of size :math:`D \times D`.

    Parameters
    ----------
    grads : (N, D) array_like
        Per-sample gradients. A C-contiguous float32 or float64 array is used in place (the operator
        keeps a reference, no copy); float32 is never converted as a whole.
    batch_size : int
        :math:`S \ge 1` (:math:`S \le N` without replacement).
    replacement : bool, default True
        Whether minibatch indices are drawn with replacement.

    Returns
    -------
    NoiseOperator

    Raises
    ------
    InvalidArgumentError
        Bad shapes, NaN/Inf in ``grads`` (checked once, when the mean is computed), a batch size out
        of range.

    Notes
    -----
    Creating the operator computes :math:`\bar g` (one pass over :math:`G`). :meth:`~NoiseOperator.matvec`
    costs two passes, :math:`O(NDm)` for ``m`` vectors, with float64 accumulation (see
    :class:`NoiseOperator` for the precision and speed trade-off against float32 BLAS).

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> rng = np.random.default_rng(0)
    >>> g = rng.normal(size=(64, 5000)).astype(np.float32)
    >>> op = sgdnoise.noise_operator(g, batch_size=16)
    >>> v = rng.normal(size=5000)
    >>> c = g.astype(np.float64) - g.astype(np.float64).mean(axis=0)
    >>> expected = c.T @ (c @ v) / (64 * 16)
    >>> bool(np.abs(op @ v - expected).max() < 1e-12 * np.abs(expected).max())
    True
    """
    return NoiseOperator(grads, batch_size, replacement)
