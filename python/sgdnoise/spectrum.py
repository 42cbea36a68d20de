"""The top eigenpairs of the noise covariance, and metrics comparing two covariance estimates
(docs/theory.md §2)."""

from __future__ import annotations

import ctypes

import numpy as np
import numpy.typing as npt

from . import _capi, _lib
from ._arrays import as_batch_size, as_gradients, as_square
from .errors import InvalidArgumentError

__all__ = ["noise_top_eigen", "compare"]

_c = _lib.lib


def _as_count(k: object, name: str = "k") -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an integer, got {k!r}")
    return int(k)


def noise_top_eigen(grads: npt.ArrayLike, batch_size: int, k: int,
                    replacement: bool = True) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    r"""The ``k`` largest eigenpairs of the minibatch noise covariance [Prop 1].

    :math:`C = \frac{f}{N} G_c^\top G_c`, with :math:`G_c` the centred (N, D) per-sample gradients
    and :math:`f` the sampling factor (:math:`1/S` with replacement, :math:`(N-S)/(S(N-1))`
    without). When :math:`N \le D`, :math:`C` is never formed: its nonzero spectrum is that of the
    :math:`N \times N` matrix :math:`\frac{f}{N} K`, :math:`K = G_c G_c^\top`, and if
    :math:`K u = \mu u` (:math:`\|u\| = 1`, :math:`\mu > 0`) then :math:`v = G_c^\top u/\sqrt{\mu}`
    is a unit eigenvector of :math:`C` with eigenvalue :math:`f\mu/N`.

    Parameters
    ----------
    grads : (N, D) array_like
        Per-sample gradients, one per row; float32 is kept in float32 (accumulated in float64).
    batch_size : int
        :math:`S \ge 1` (:math:`S \le N` without replacement).
    k : int
        The number of eigenpairs, :math:`1 \le k \le \min(N-1, D)` and at most the numerical rank
        of :math:`C` (eigenvalues at or below :math:`\max(N, D)\,\varepsilon\,\lambda_{\max}` count
        as zero: their eigenvectors are not determined by the data).
    replacement : bool, default True
        Whether minibatch indices are drawn with replacement.

    Returns
    -------
    values : (k,) ndarray
        The eigenvalues, in descending order.
    vectors : (D, k) ndarray
        Column ``j`` is the unit eigenvector of ``values[j]``, signed so that its entry of largest
        magnitude is positive.

    Raises
    ------
    InvalidArgumentError
        Bad shapes, NaN/Inf, a batch size out of range, ``k`` out of range or beyond the numerical
        rank, or :math:`C = 0` (:math:`S = N` without replacement).
    OutOfMemoryError
        :math:`\min(N, D) > 40000`.

    Notes
    -----
    :math:`N \le D`: :math:`K` by blocks of centred columns with ``dsyrk``
    (:math:`O(N^2 D)`), its top-:math:`k` eigenpairs with LAPACK ``dsyevr``, and one pass over
    :math:`G` for :math:`G_c^\top U` (:math:`O(NDk)`); no :math:`D \times D` array. :math:`N > D`:
    :math:`C` itself (:math:`O(ND^2)`) and ``dsyevr`` restricted to the top :math:`k`.

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> g = np.random.default_rng(0).normal(size=(20, 500))   # N < D: the Gram route
    >>> w, v = sgdnoise.noise_top_eigen(g, batch_size=4, k=3)
    >>> C = sgdnoise.noise_covariance(g, 4)
    >>> bool(np.abs(C @ v - v * w).max() < 1e-12 * w[0])
    True
    """
    g = as_gradients(grads)
    s = as_batch_size(batch_size)
    kk = _as_count(k)
    n, d = g.shape
    if kk < 1 or kk > min(n - 1, d):
        raise InvalidArgumentError(f"k must be between 1 and min(N - 1, D) = {min(n - 1, d)}, got {kk}")
    values = np.empty(kk)
    vectors = np.empty((d, kk))
    fn = _c.sgdnoise_noise_top_eigen_f32 if g.dtype == np.float32 else _c.sgdnoise_noise_top_eigen
    sampling = _lib.SAMPLING_WITH_REPLACEMENT if replacement else _lib.SAMPLING_WITHOUT_REPLACEMENT
    _lib.check(fn(n, d, g.ctypes.data, s, sampling, kk, values.ctypes.data, vectors.ctypes.data))
    return values, vectors


def compare(P: npt.ArrayLike, Q: npt.ArrayLike, k: int | None = None) -> dict[str, float]:
    r"""How close a covariance estimate ``P`` is to a reference ``Q``.

    .. math::

        \text{rel\_frobenius} = \frac{\|P - Q\|_F}{\|Q\|_F},\qquad
        \text{cosine} = \frac{\langle P, Q\rangle_F}{\|P\|_F\,\|Q\|_F},\qquad
        \text{trace\_ratio} = \frac{\operatorname{Tr} P}{\operatorname{Tr} Q},\qquad
        \text{overlap} = \frac{\|U_P^\top U_Q\|_F^2}{k},

    with :math:`\langle P, Q\rangle_F = \sum_{ij} P_{ij} Q_{ij}` and :math:`U_P, U_Q` the
    orthonormal top-:math:`k` eigenvectors. The overlap is 1 when the top-:math:`k` eigenspaces
    coincide, 0 when they are orthogonal, :math:`k/D` on average for random subspaces.

    Parameters
    ----------
    P : (D, D) array_like
        The estimate.
    Q : (D, D) array_like
        The reference (not zero).
    k : int, optional
        The subspace dimension of the overlap, :math:`1 \le k \le D`; then ``P`` and ``Q`` must be
        symmetric. Without ``k`` any square matrices work and no overlap is computed.

    Returns
    -------
    dict
        ``rel_frobenius``, ``cosine`` (NaN when ``P`` = 0), ``trace_ratio`` (inf or NaN when
        Tr Q = 0) and, when ``k`` is given, ``overlap``.

    Raises
    ------
    InvalidArgumentError
        Shapes, NaN/Inf, ``Q`` = 0, ``k`` out of range.
    NotSymmetricError
        ``k`` given and ``P`` or ``Q`` not symmetric (relative tolerance 1e-10).

    Notes
    -----
    Sums are taken on ``P`` and ``Q`` divided by their largest entry (the metrics are
    scale-invariant), so nothing overflows. The top-:math:`k` eigenvectors come from LAPACK
    ``dsyevr``; when :math:`\lambda_k = \lambda_{k+1}` the top-:math:`k` eigenspace is not unique.

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> r = sgdnoise.compare(np.diag([3.0, 2, 1]), np.diag([1.0, 2, 3]), k=2)
    >>> bool(np.isclose(r["rel_frobenius"], np.sqrt(8 / 14)) and np.isclose(r["cosine"], 10 / 14))
    True
    >>> round(r["trace_ratio"], 12), round(r["overlap"], 12)
    (1.0, 0.5)
    """
    p = as_square(P, "P")
    d = p.shape[0]
    q = as_square(Q, "Q", d)
    if k is None:
        kk = 0
    else:
        kk = _as_count(k)
        if kk < 1 or kk > d:
            raise InvalidArgumentError(f"k must be between 1 and the dimension {d}, got {kk}")
    out = _capi.sgdnoise_comparison()
    _lib.check(_c.sgdnoise_compare(d, p.ctypes.data, q.ctypes.data, kk, ctypes.byref(out)))
    result = {name: float(getattr(out, name)) for name in ("rel_frobenius", "cosine", "trace_ratio", "overlap")}
    if k is None:
        del result["overlap"]
    return result
