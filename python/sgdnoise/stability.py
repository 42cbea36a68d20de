"""Stability, scaling laws, tails and the optimal weight decay (docs/theory.md §6)."""

from __future__ import annotations

import ctypes
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _lib
from ._arrays import as_batch_size, as_float64, as_scalar, ptr
from ._operands import Operand, weighted_parts
from .errors import InvalidArgumentError

__all__ = [
    "critical_learning_rate",
    "label_noise_sweep",
    "scaling_law",
    "tail_index",
    "optimal_weight_decay",
    "l2_test_loss_curve",
    "smallest_stable_batch_size",
    "stable_weight_decay_interval",
]

_lib_ = _lib.lib


def critical_learning_rate(A: npt.ArrayLike, batch_size: int, momentum: float = 0.0, *,
                           model: Literal["label_noise", "high_dimensional", "l2_regularized"] = "label_noise",
                           weight_decay: npt.ArrayLike | None = None) -> float:
    r"""The critical learning rate :math:`\lambda^*`: the largest :math:`\lambda` with a stationary Σ.

    For label noise (docs/theory.md §6) the unique root of

    .. math::

        \sum_i \frac{\lambda a_i}{2(1-\mu) - (\frac{1-\mu}{1+\mu} + \frac1S)\lambda a_i} = S

    below :math:`2(1-\mu)(1+\mu)S/(((1-\mu)S + 1 + \mu)a_{max})`, to full double precision.

    Parameters
    ----------
    A : (D, D) or (D,) array_like, or WeightedSpectrum
        Input covariance (for input noise pass :math:`A + B`), or its spectrum, or a weighted
        spectrum (:class:`WeightedSpectrum`, e.g. a :func:`spectral_density`: every sum over the
        spectrum weighs node l by :math:`\omega_l`).
    batch_size : int
    momentum : float, default 0.0
    model : {"label_noise", "high_dimensional", "l2_regularized"}
        The noise model whose edge is wanted.
    weight_decay : float or array_like, optional
        :math:`\Gamma`, required for ``"l2_regularized"`` (one entry per node for a weighted
        spectrum).

    Examples
    --------
    >>> import sgdnoise
    >>> lc = sgdnoise.critical_learning_rate([1.0], batch_size=1)   # 1-d, S = 1: 2*l/(2 - 2*l) = 1
    >>> round(lc, 12)
    0.666666666667
    """
    try:
        code = _lib.MODEL[model]
    except (KeyError, TypeError):
        raise InvalidArgumentError(f"model must be one of {sorted(_lib.MODEL)}, got {model!r}") from None
    op = Operand(A, "A")
    gamma = None
    if model == "l2_regularized":
        if weight_decay is None:
            raise InvalidArgumentError('weight_decay is required for model="l2_regularized"')
        gamma = op.like(weight_decay, "weight_decay")
    out = np.empty(1)
    _lib.check(_lib_.sgdnoise_critical_learning_rate(
        code, op.layout, op.dim, ptr(op.array), ptr(gamma), as_batch_size(batch_size),
        as_scalar(momentum, "momentum"), ptr(out)))
    return float(out[0])


def _spectrum(spectrum: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """(values, weights or None): a 1-D spectrum, or a weighted spectrum's nodes and weights."""
    parts = weighted_parts(spectrum, "spectrum")
    return parts if parts is not None else (as_float64(spectrum, "spectrum", 1), None)


def label_noise_sweep(spectrum: npt.ArrayLike | Any, noise_var: float, lr: npt.ArrayLike, batch_size: npt.ArrayLike,
                      momentum: npt.ArrayLike = 0.0) -> dict[str, npt.NDArray[np.float64]]:
    r"""κ, losses and λ* of the label-noise model for many hyperparameters on one spectrum.

    ``lr``, ``batch_size`` and ``momentum`` broadcast against each other; each point costs
    :math:`O(D)` with no eigendecomposition (:math:`\operatorname{Tr}[\Lambda A G_\mu^{-1}] =
    \sum_i \lambda a_i / (2(1-\mu) - q\lambda a_i)`, :math:`q = \frac{1-\mu}{1+\mu} + \frac1S`),
    spread over all cores. Unstable points have infinite κ and losses. ``spectrum`` is a 1-D array
    of eigenvalues or a weighted spectrum (:class:`WeightedSpectrum`, e.g. a
    :func:`spectral_density`), whose node l counts :math:`\omega_l` times in every sum.

    Returns
    -------
    dict
        ``kappa``, ``train_loss``, ``test_loss``, ``critical_learning_rate``: arrays of the
        broadcast shape.
    """
    a, weights = _spectrum(spectrum)
    lr_b, s_b, mu_b = np.broadcast_arrays(np.asarray(lr, dtype=np.float64), np.asarray(batch_size),
                                          np.asarray(momentum, dtype=np.float64))
    if not np.issubdtype(s_b.dtype, np.integer):
        raise InvalidArgumentError("batch_size must be integers")
    shape = lr_b.shape
    lrs = np.ascontiguousarray(lr_b.ravel())
    ss = np.ascontiguousarray(s_b.ravel(), dtype=np.intp)
    mus = np.ascontiguousarray(mu_b.ravel())
    n = lrs.size
    out = {k: np.empty(n) for k in ("kappa", "train_loss", "test_loss", "critical_learning_rate")}
    outputs = (ptr(out["kappa"]), ptr(out["train_loss"]), ptr(out["test_loss"]), ptr(out["critical_learning_rate"]))
    if weights is None:
        _lib.check(_lib_.sgdnoise_label_noise_sweep(
            a.size, ptr(a), as_scalar(noise_var, "noise_var"), n, ptr(lrs), ptr(ss), ptr(mus), *outputs))
    else:
        _lib.check(_lib_.sgdnoise_label_noise_sweep_weighted(
            a.size, ptr(a), ptr(weights), as_scalar(noise_var, "noise_var"), n, ptr(lrs), ptr(ss), ptr(mus), *outputs))
    return {k: v.reshape(shape) for k, v in out.items()}


def scaling_law(spectrum: npt.ArrayLike | Any, noise_var: float, ratio: float, batch_sizes: npt.ArrayLike,
                momentum: float = 0.0) -> dict[str, npt.NDArray[Any]]:
    r"""The λ–S scaling law along :math:`\lambda = kS` [Sec 6.5].

    Σ depends on λ and S not only through λ/S (the :math:`1/S^2` term and the λ-only part of
    :math:`G_\mu` break it). Returns a dict with ``batch_size``, ``lr`` (= ratio·S),
    ``trace_sigma`` (exact label-noise theory, inf where unstable), ``trace_sigma_law`` (the
    λ/S prediction :math:`\lambda\sigma^2 D/(2S(1-\mu))`) and their ``ratio``. ``spectrum`` may be
    a weighted spectrum (:class:`WeightedSpectrum`): then :math:`\operatorname{Tr}\Sigma =
    \sum_l\omega_l\Sigma_l` and :math:`D = \sum_l\omega_l`.
    """
    a, weights = _spectrum(spectrum)
    s = np.ascontiguousarray(np.atleast_1d(batch_sizes), dtype=np.intp)
    exact, law = np.empty(s.size), np.empty(s.size)
    k = as_scalar(ratio, "ratio")
    if weights is None:
        _lib.check(_lib_.sgdnoise_scaling_law(a.size, ptr(a), as_scalar(noise_var, "noise_var"), k, s.size, ptr(s),
                                              as_scalar(momentum, "momentum"), ptr(exact), ptr(law)))
    else:
        _lib.check(_lib_.sgdnoise_scaling_law_weighted(a.size, ptr(a), ptr(weights), as_scalar(noise_var, "noise_var"),
                                                       k, s.size, ptr(s), as_scalar(momentum, "momentum"), ptr(exact),
                                                       ptr(law)))
    return {"batch_size": s.copy(), "lr": k * s, "trace_sigma": exact, "trace_sigma_law": law, "ratio": exact / law}


def tail_index(a: float, lr: float, batch_size: int,
               method: Literal["paper", "kesten", "continuous_time"] = "kesten") -> float:
    r"""Tail index of the 1-d stationary distribution of SGD [Sec 6.6].

    ``"paper"``: :math:`\beta = 2S/(a\lambda) - S`; ``"continuous_time"``: :math:`2S/(a\lambda) + 1`;
    ``"kesten"`` (exact for Gaussian inputs): the :math:`\kappa > 0` with
    :math:`E|1 - \frac\lambda S a\chi^2_S|^\kappa = 1`. Moments of order ≥ the index diverge.

    Examples
    --------
    >>> import sgdnoise
    >>> sgdnoise.tail_index(1.0, 1.0, 10, method="paper")
    10.0
    """
    try:
        code = _lib.TAIL_METHOD[method]
    except (KeyError, TypeError):
        raise InvalidArgumentError(f"method must be one of {sorted(_lib.TAIL_METHOD)}, got {method!r}") from None
    out = np.empty(1)
    _lib.check(_lib_.sgdnoise_tail_index(as_scalar(a, "a"), as_scalar(lr, "lr"), as_batch_size(batch_size), code,
                                         ptr(out)))
    return float(out[0])


def optimal_weight_decay(A: npt.ArrayLike, u: npt.ArrayLike, lr: float, batch_size: int,
                         momentum: float = 0.0) -> tuple[float, float]:
    r"""The optimal weight decay :math:`\gamma^* = \arg\min_\gamma L_{test}(\gamma)` [Thm 4, Cor 1].

    Minimises over the whole stable interval of :math:`\gamma` (negative values included;
    :math:`L_{test} = \infty` where unstable): a 257-point bracket, then golden-section search to
    1e-12 relative. At a large learning rate :math:`\gamma^*` can be negative [Cor 1].

    Returns
    -------
    (gamma_star, test_loss) : tuple of float
    """
    op = Operand(A, "A")
    uu = op.vector(u, "u")
    g, loss = np.empty(1), np.empty(1)
    _lib.check(_lib_.sgdnoise_optimal_weight_decay(
        op.layout, op.dim, ptr(op.array), ptr(uu), as_scalar(lr, "lr"), as_batch_size(batch_size),
        as_scalar(momentum, "momentum"), ptr(g), ptr(loss)))
    return float(g[0]), float(loss[0])


def l2_test_loss_curve(A: npt.ArrayLike, u: npt.ArrayLike, lr: float, batch_size: int, weight_decays: npt.ArrayLike,
                       momentum: float = 0.0) -> npt.NDArray[np.float64]:
    r""":math:`L_{test}(\gamma)` of L2-regularised SGD for each :math:`\gamma` (inf where unstable) [Thm 4]."""
    op = Operand(A, "A")
    uu = op.vector(u, "u")
    gammas = np.ascontiguousarray(np.atleast_1d(weight_decays), dtype=np.float64)
    out = np.empty(gammas.size)
    _lib.check(_lib_.sgdnoise_l2_test_loss_curve(
        op.layout, op.dim, ptr(op.array), ptr(uu), as_scalar(lr, "lr"), as_batch_size(batch_size),
        as_scalar(momentum, "momentum"), gammas.size, ptr(gammas), ptr(out)))
    return out.reshape(np.shape(weight_decays))


def smallest_stable_batch_size(A: npt.ArrayLike, lr: float, momentum: float = 0.0) -> int:
    r"""The smallest batch size :math:`S` at which label-noise SGD at learning rate ``lr`` has a
    stationary distribution: the smallest :math:`S` with :math:`\lambda < \lambda^*(S)`
    (docs/theory.md §6; :math:`\lambda^*(S)` grows with :math:`S`, so doubling and bisection).

    Raises
    ------
    UnstableError
        When no batch size is stable (``lr`` at or past the gradient-descent edge
        :math:`2(1+\mu)/a_{max}`, which the error carries as its critical learning rate).

    Examples
    --------
    >>> import sgdnoise
    >>> sgdnoise.smallest_stable_batch_size([1.5], lr=1.0)  # 1-d: the smallest S > 2λa/(2 − λa) = 6
    7
    """
    op = Operand(A, "A")
    out = ctypes.c_ssize_t(0)
    _lib.check(_lib_.sgdnoise_smallest_stable_batch_size(
        op.layout, op.dim, ptr(op.array), as_scalar(lr, "lr"), as_scalar(momentum, "momentum"), ctypes.byref(out)))
    return int(out.value)


def stable_weight_decay_interval(A: npt.ArrayLike, u: npt.ArrayLike, lr: float, batch_size: int,
                                 momentum: float = 0.0) -> tuple[float, float] | None:
    r"""The interval of scalar weight decays :math:`\gamma` (:math:`\Gamma = \gamma I`, negative
    allowed) for which L2-regularised SGD has a stationary distribution [Thm 4], computed exactly;
    :func:`l2_test_loss_curve` is finite exactly inside it. None when no :math:`\gamma` is stable.

    Returns
    -------
    (lower, upper) : tuple of float, or None
    """
    op = Operand(A, "A")
    uu = op.vector(u, "u")
    lower, upper = np.empty(1), np.empty(1)
    _lib.check(_lib_.sgdnoise_stable_weight_decay_interval(
        op.layout, op.dim, ptr(op.array), ptr(uu), as_scalar(lr, "lr"), as_batch_size(batch_size),
        as_scalar(momentum, "momentum"), ptr(lower), ptr(upper)))
    if np.isnan(lower[0]):
        return None
    return float(lower[0]), float(upper[0])
