"""The Frequent Directions sketch of the noise (docs/theory.md §10): the top of the noise
covariance's spectrum from one streaming, mergeable pass, in O(ℓD) memory, with a guaranteed error
bound, for dimensions where a D × D covariance does not fit."""

from __future__ import annotations

import ctypes

import numpy as np
import numpy.typing as npt

from . import _lib
from ._arrays import as_batch_size
from ._state import MergeableState, as_positive

__all__ = ["NoiseSketch"]

_c = _lib.lib


class NoiseSketch(MergeableState):
    r"""A streaming, mergeable Frequent Directions sketch of the minibatch noise [Prop 1].

    Keeps :math:`\ell` = ``rows`` orthogonal rows :math:`B` (:math:`\ell \times D`), the count
    :math:`N`, the mean :math:`\bar g` and the exact trace of the centred scatter
    :math:`S = \sum_i (g_i - \bar g)(g_i - \bar g)^\top`, with the guarantee

    .. math::

        0 \preceq S - B^\top B \preceq \Delta I,\qquad
        \Delta \le \frac{\sum_{i > k} \lambda_i(S)}{\ell + 1 - k}\quad (k \le \ell),

    where :math:`\Delta`, the total shrinkage, is known exactly. The noise covariance
    :math:`C = (f/N) S` is approximated by :math:`\hat C = (f/N) B^\top B`, so every eigenvalue obeys
    :math:`\lambda_i(\hat C) \le \lambda_i(C) \le \lambda_i(\hat C) + (f/N)\Delta` and
    :math:`\|C - \hat C\|_2 \le (f/N)\Delta` (:meth:`error_bound`).

    Rows are buffered and folded :math:`\lceil 1.5\ell \rceil` at a time. Each fold centres the
    buffered rows on their own mean and stacks them under :math:`B` with one row
    :math:`\sqrt{N n_b/(N + n_b)}\,(m_b - \bar g)`: the Gram matrix of that stack is exactly the
    pairwise (Chan–Golub–LeVeque) increment of :math:`S`, so a large mean costs no accuracy. Every
    squared singular value of the stack is then reduced by the :math:`(\ell+1)`-th largest, and the
    top :math:`\ell` are kept. :meth:`merge` applies the same step to two sketches, and the
    guarantee holds for the union. The cost is about :math:`6.8\,\ell D` flops per gradient (BLAS),
    and the memory about :math:`(3.5\ell + 2) D` doubles.

    Parameters
    ----------
    dim : int
        The dimension :math:`D` of the gradients.
    rows : int
        :math:`\ell`, :math:`1 \le \ell \le 4096`. The guarantee for the top :math:`k` directions
        needs :math:`\ell > k`, and a larger :math:`\ell` gives a smaller bound.

    Attributes
    ----------
    dim, rows : int
        :math:`D` and :math:`\ell`.
    count : int
        :math:`N`.
    mean : (D,) ndarray
        :math:`\bar g` (raises when empty).

    Notes
    -----
    float32 chunks are widened to float64, and all arithmetic is in float64. A chunk with NaN/Inf
    is rejected and leaves the sketch unchanged. The sketch pickles (:meth:`to_bytes`), so shards
    computed on other processes or machines merge. Calls from several threads are serialised.

    References
    ----------
    E. Liberty, KDD 2013; M. Ghashami, E. Liberty, J. M. Phillips, D. P. Woodruff, SIAM J. Comput.
    2016. docs/theory.md §10.

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> rng = np.random.default_rng(0)
    >>> g = rng.normal(size=(2000, 300)) * np.linspace(3, 0.1, 300)   # decaying noise spectrum
    >>> sketch = sgdnoise.NoiseSketch(300, rows=40)
    >>> for chunk in np.array_split(g, 10):
    ...     sketch.update(chunk)
    >>> values, vectors = sketch.top_eigen(5, batch_size=32)
    >>> exact = np.linalg.eigvalsh(sgdnoise.noise_covariance(g, 32))[::-1][:5]
    >>> bound = sketch.error_bound(32)
    >>> bool(np.all(values <= exact + 1e-12) and np.all(exact <= values + bound + 1e-12))
    True
    """

    _family = "sketch"

    def __init__(self, dim: int, rows: int) -> None:
        d = as_positive(dim, "dim")
        ell = as_positive(rows, "rows")
        handle = ctypes.c_void_p()
        _lib.check(_c.sgdnoise_sketch_create(d, ell, ctypes.byref(handle)))
        self._adopt(handle.value, d)

    def __repr__(self) -> str:
        if self.closed:
            return f"NoiseSketch(dim={self._dim}, closed)"
        return f"NoiseSketch(dim={self._dim}, rows={self.rows}, count={self.count})"

    @property
    def rows(self) -> int:
        r""":math:`\ell`, the number of rows kept."""
        return self._query("rows")

    def _top(self, k: int, batch_size: int, replacement: bool,
             vectors: bool) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None, float, float]:
        s = as_batch_size(batch_size)
        k = as_positive(k, "k") if k else 0
        values = np.empty(k)
        vecs = np.empty((self._dim, k)) if vectors else None
        bound, trace = ctypes.c_double(), ctypes.c_double()
        sampling = _lib.SAMPLING_WITH_REPLACEMENT if replacement else _lib.SAMPLING_WITHOUT_REPLACEMENT
        with self._lock:
            _lib.check(_c.sgdnoise_sketch_top_eigen(self._live(), k, s, sampling, values.ctypes.data,
                                                    None if vecs is None else vecs.ctypes.data,
                                                    ctypes.byref(bound), ctypes.byref(trace)))
        return values, vecs, bound.value, trace.value

    def top_eigen(self, k: int, batch_size: int,
                  replacement: bool = True) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        r"""The ``k`` largest eigenpairs of the sketched noise covariance :math:`\hat C = (f/N) B^\top B`.

        Each true eigenvalue lies in :math:`[\lambda_i(\hat C), \lambda_i(\hat C) + \epsilon]`, with
        :math:`\epsilon` = :meth:`error_bound` of the same arguments. Rows still buffered are folded
        first.

        Parameters
        ----------
        k : int
            :math:`1 \le k \le` the number of nonzero rows the sketch holds (at most ``rows``).
        batch_size : int
            :math:`S` (:math:`S \le N` without replacement).
        replacement : bool, default True
            Whether minibatch indices are drawn with replacement.

        Returns
        -------
        values : (k,) ndarray
            Descending.
        vectors : (D, k) ndarray
            Unit eigenvectors as columns, each signed so that its largest-magnitude entry is positive.
        """
        values, vectors, _, _ = self._top(k, batch_size, replacement, True)
        assert vectors is not None
        return values, vectors

    def error_bound(self, batch_size: int, replacement: bool = True) -> float:
        r"""The guaranteed bound :math:`(f/N)\Delta` on :math:`\|C - \hat C\|_2`, which also bounds
        how far each eigenvalue of :math:`C` lies above the sketched one."""
        return self._top(0, batch_size, replacement, False)[2]

    def trace(self, batch_size: int, replacement: bool = True) -> float:
        r"""The exact :math:`\operatorname{Tr} C = (f/N)\operatorname{Tr} S` (kept exactly by the
        pairwise update, not sketched)."""
        return self._top(0, batch_size, replacement, False)[3]
