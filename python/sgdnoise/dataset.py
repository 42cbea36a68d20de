"""The exact fluctuation of SGD on a finite real dataset (docs/theory.md §4.1)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from . import _capi, _lib
from ._arrays import as_batch_size, as_dense_or_none, as_float64, as_scalar, as_square, dense_learning_rate, ptr
from .errors import InvalidArgumentError
from .models import Prediction, _prediction

__all__ = ["finite_dataset", "critical_learning_rate_dataset", "DatasetPrediction"]

_lib_ = _lib.lib


@dataclass(frozen=True)
class DatasetPrediction(Prediction):
    """A :class:`Prediction` with the diagnostics of the iterative solve.

    Attributes
    ----------
    iterations : int
        Fixed-point iterations used (1 for D ≤ 8: the step that checks the direct solve).
    residual : float
        The final relative fixed-point step (≤ 1e-13 on success).
    spectral_radius : float
        Spectral radius of the second-moment map when it was computed (NaN when the positivity
        of the solution certified stability).
    """

    iterations: int = 0
    residual: float = float("nan")
    spectral_radius: float = float("nan")




def _data(X: npt.ArrayLike, y: npt.ArrayLike | None = None
          ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    xs = as_float64(X, "X", 2)
    if xs.shape[0] == 0 or xs.shape[1] == 0:
        raise InvalidArgumentError(f"X must be non-empty, got shape {xs.shape}")
    ys = None
    if y is not None:
        ys = as_float64(y, "y", 1)
        if ys.shape[0] != xs.shape[0]:
            raise InvalidArgumentError(f"y must have {xs.shape[0]} entries (one per row of X), got {ys.shape[0]}")
    return xs, ys


def finite_dataset(X: npt.ArrayLike, y: npt.ArrayLike, lr: npt.ArrayLike, batch_size: int, replacement: bool = True,
                   weight_decay: npt.ArrayLike = 0.0, momentum: float = 0.0, *, u: npt.ArrayLike | None = None,
                   A: npt.ArrayLike | None = None, critical_learning_rate: bool = False,
                   sampling: Literal["with_replacement", "without_replacement", "epoch_shuffling"] | None = None
                   ) -> DatasetPrediction:
    r"""Exact stationary fluctuation of SGD on linear regression over the dataset ``X``, ``y``.

    No Gaussian or :math:`N\to\infty` assumption (docs/theory.md §4.1, an extension of the
    paper's Lemma 1). With :math:`\hat A = X^\top X/N`, :math:`K = \hat A + \Gamma`,
    :math:`w^* = K^{-1}X^\top y/N`, residuals :math:`r_i = x_i^\top w^* - y_i` and
    :math:`z_i = x_i r_i - \overline{x r}`:

    .. math::

        K\Sigma + \Sigma K - \lambda K\Sigma K = \lambda f\,[F(\Sigma) - \hat A\Sigma\hat A + R],\quad
        F(\Sigma) = \tfrac1N\sum_i (x_i^\top\Sigma x_i)\,x_i x_i^\top,\quad R = \tfrac1N\sum_i z_i z_i^\top

    (matrix learning rates and momentum as in Theorem 1), :math:`f = 1/S` with replacement,
    :math:`(N-S)/(S(N-1))` without.

    Epoch shuffling (``sampling="epoch_shuffling"``, what data loaders do; docs/theory.md §4.2):
    the batches of one epoch are dependent, so :math:`fR` is replaced by the exact source of the
    epoch-correlated additive noise, the mean is offset from :math:`w^*` to second order, and the
    multiplicative noise is treated as fresh. ``sigma`` and ``mean`` are then the covariance and
    mean of :math:`w` at a random step (averaged over the phases of an epoch). Scalar ``lr``, any
    momentum, ``batch_size`` :math:`\le N`; validated against simulated epoch-shuffled SGD in the
    regime stated in docs/theory.md §4.2.

    Parameters
    ----------
    X : (N, D) array_like
    y : (N,) array_like
    lr : float or (D, D) array_like
    batch_size : int
    replacement : bool, default True
        Minibatches drawn with replacement, or (False) as S distinct indices at every step.
    weight_decay : float, (D,) or (D, D) array_like, default 0.0
    momentum : float, default 0.0
    u : (D,) array_like, optional
        Teacher defining ``test_loss`` :math:`= \tfrac12E[(w-u)^\top A(w-u)]` (NaN without it).
    A : (D, D) array_like, optional
        Population covariance for ``test_loss`` (default :math:`\hat A`).
    critical_learning_rate : bool, default False
        Also find this dataset's :math:`\lambda^*` (as :func:`critical_learning_rate_dataset` does)
        and fill the result's ``critical_learning_rate`` with it; it costs roughly ten times the
        prediction, so it is off by default and the field is None then. ``kappa`` is always None:
        the theory defines no :math:`\kappa` for a finite dataset. Not available with epoch
        shuffling.
    sampling : {"with_replacement", "without_replacement", "epoch_shuffling"}, optional
        Overrides ``replacement`` when given (the names of :func:`simulate`).

    Returns
    -------
    DatasetPrediction
        ``sigma``, ``noise`` (:math:`f[F(\Sigma) - \hat A\Sigma\hat A + R]`), ``mean`` (:math:`w^*`),
        ``train_loss`` (:math:`E[L_\Gamma(w)]`), ``test_loss``, and ``iterations``, ``residual``,
        ``spectral_radius``.

    Raises
    ------
    UnstableError
        When the second moments diverge; carries this dataset's critical learning rate.

    Notes
    -----
    Fixed point preconditioned by the exact spectral solve of Theorem 1, Anderson-accelerated;
    :math:`O(ND^2 + D^3)` per iteration through BLAS; never forms a :math:`D^2\times D^2` matrix
    above :math:`D = 8` (up to there the :math:`D(D+1)/2` unknowns are solved at once by LU and
    checked by one step of the iteration, which then reports ``iterations == 1``).
    """
    xs, ys = _data(X, y)
    if ys is None:
        raise InvalidArgumentError("y is required")
    code = _lib.sampling_code(replacement, sampling)
    if critical_learning_rate and code == _lib.SAMPLING_EPOCH_SHUFFLING:
        raise InvalidArgumentError("critical_learning_rate: no critical learning rate is established for epoch "
                                   "shuffling (docs/theory.md §4.2)")
    n, d = xs.shape
    gamma = as_dense_or_none(weight_decay, "weight_decay", d)
    scale, lr_matrix = dense_learning_rate(lr, d)
    uu = None if u is None else as_float64(u, "u", 1)
    a = None if A is None else as_square(A, "A", d)
    sigma, noise, mean = np.empty((d, d)), np.empty((d, d)), np.empty(d)
    scalars, info = _capi.sgdnoise_prediction(), _capi.sgdnoise_dataset_info()
    _lib.check(_lib_.sgdnoise_finite_dataset(
        n, d, ptr(xs), ptr(ys), code, ptr(gamma), scale, ptr(lr_matrix),
        as_batch_size(batch_size), as_scalar(momentum, "momentum"), ptr(uu), ptr(a), ptr(sigma), ptr(noise),
        ptr(mean), ptr(scalars), ptr(info)))
    critical = None
    if critical_learning_rate:
        critical = critical_learning_rate_dataset(xs, batch_size, code == _lib.SAMPLING_WITH_REPLACEMENT, weight_decay,
                                                  momentum, lr_matrix)
    result = _prediction(sigma, noise, mean, scalars, DatasetPrediction, iterations=info.iterations,
                         residual=info.residual, spectral_radius=info.spectral_radius)
    return result if critical is None else replace(result, critical_learning_rate=critical)


def critical_learning_rate_dataset(X: npt.ArrayLike, batch_size: int, replacement: bool = True,
                                   weight_decay: npt.ArrayLike = 0.0, momentum: float = 0.0,
                                   lr_matrix: npt.ArrayLike | None = None) -> float:
    r"""The critical learning rate of SGD on the dataset ``X`` (docs/theory.md §4.1).

    The largest :math:`\lambda` whose second-moment map has spectral radius below one (bracketed
    to 1e-9 relative by false position; each step a warm-started power iteration of
    :math:`O(ND^2)` products). For a scalar learning rate and a scalar weight decay it is solved on
    the range of X (dimension rank X ≤ min(N, D)), so N < D is cheap. With ``lr_matrix``
    :math:`M`: the largest :math:`\lambda` such that :math:`\lambda M` is stable. Independent of
    the labels.
    """
    xs, _ = _data(X)
    n, d = xs.shape
    gamma = as_dense_or_none(weight_decay, "weight_decay", d)
    m = None if lr_matrix is None else as_dense_or_none(lr_matrix, "lr_matrix", d)
    out = np.empty(1)
    _lib.check(_lib_.sgdnoise_critical_learning_rate_dataset(
        n, d, xs.ctypes.data, 0 if replacement else 1, None if gamma is None else gamma.ctypes.data,
        None if m is None else m.ctypes.data, as_batch_size(batch_size), as_scalar(momentum, "momentum"),
        out.ctypes.data))
    return float(out[0])
