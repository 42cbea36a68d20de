"""The exact closed forms of linear regression (docs/theory.md §4) and their baselines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np
import numpy.typing as npt

from . import _capi, _lib
from ._arrays import as_batch_size, as_scalar, ptr
from ._operands import Operand

__all__ = [
    "Prediction",
    "label_noise",
    "input_noise",
    "l2_regularized",
    "high_dimensional",
    "damped_newton",
    "natural_gradient",
    "continuous_time",
    "discrete_hessian",
]

_lib_ = _lib.lib
_T = TypeVar("_T")
_P = TypeVar("_P", bound="Prediction")


@dataclass(frozen=True)
class Prediction:
    """The exact stationary prediction of a linear-regression model.

    Attributes
    ----------
    sigma : ndarray
        The fluctuation :math:`\\Sigma = \\lim \\operatorname{cov}(w_t)`, (D, D), or its diagonal (D,)
        when ``A`` was given as a spectrum.
    noise : ndarray
        The gradient-noise covariance :math:`C` at stationarity (same shape as ``sigma``).
    mean : (D,) ndarray
        The stationary mean of :math:`w` (:math:`w^*`; zeros for label noise).
    train_loss, test_loss : float
        :math:`E[L(w)]` and :math:`E[\\tfrac12 (w-u)^\\top A (w-u)]` at stationarity.
    kappa : float or None
        The paper's :math:`\\kappa` for this model, where it defines one.
    critical_learning_rate : float or None
        :math:`\\lambda^*` for this batch size and momentum (for a matrix learning rate
        :math:`\\Lambda`: the largest stable multiple :math:`c` of :math:`\\Lambda`).
    coupling_trace : float
        :math:`\\operatorname{Tr}[M\\Sigma]`, the scalar that couples the noise to the fluctuation.
    flat_direction_noise : float
        Noise power entering flat directions of the Hessian (random walk there); 0 when none.
    """

    sigma: npt.NDArray[np.float64]
    noise: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    train_loss: float
    test_loss: float
    kappa: float | None
    critical_learning_rate: float | None
    coupling_trace: float
    flat_direction_noise: float


def _from_fields(cls: type[_T], fields: dict[str, object]) -> _T:
    """An instance of the frozen dataclass ``cls`` whose ``__dict__`` is ``fields`` (every field;
    the classes it serves have no ``__post_init__``): the generated ``__init__`` would set each
    field through ``object.__setattr__``, a µs of a 2 × 2 model call."""
    instance = object.__new__(cls)
    object.__setattr__(instance, "__dict__", fields)
    return instance


def _prediction(sigma: npt.NDArray[np.float64], noise: npt.NDArray[np.float64], mean: npt.NDArray[np.float64],
                scalars: _capi.sgdnoise_prediction, cls: type[_P] = Prediction, /, **extra: object) -> _P:
    """The :class:`Prediction` of a C result, or of its subclass ``cls`` whose own fields are ``extra``."""
    kappa, critical = scalars.kappa, scalars.critical_learning_rate  # NaN (x != x): none
    fields = {"sigma": sigma, "noise": noise, "mean": mean, "train_loss": scalars.train_loss,
              "test_loss": scalars.test_loss, "kappa": None if kappa != kappa else kappa,
              "critical_learning_rate": None if critical != critical else critical,
              "coupling_trace": scalars.coupling_trace, "flat_direction_noise": scalars.flat_direction_noise}
    fields.update(extra)
    return _from_fields(cls, fields)


def _outputs(op: Operand) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], _capi.sgdnoise_prediction]:
    return op.empty(), op.empty(), _capi.sgdnoise_prediction()


def label_noise(A: npt.ArrayLike, noise_var: float, lr: npt.ArrayLike, batch_size: int,
                momentum: float = 0.0) -> Prediction:
    r"""Exact stationary fluctuation of SGD on linear regression with label noise [Lemma 1, Thm 2, Thm 3].

    Inputs :math:`x \sim N(0, A)`, labels :math:`y = u^\top x + \varepsilon`,
    :math:`\operatorname{Var}\varepsilon = \sigma^2`. The noise is
    :math:`C = \frac1S(A\Sigma A + \operatorname{Tr}[A\Sigma]A) + \frac{\sigma^2}{S}A` and, for
    :math:`[\Lambda, A] = 0`,

    .. math::

        \Sigma = \frac{\sigma^2}{S}\Bigl(1 + \frac{\kappa_\mu}{S}\Bigr)\Lambda G_\mu^{-1},\quad
        G_\mu = 2(1-\mu)I - \Bigl(\frac{1-\mu}{1+\mu} + \frac1S\Bigr)\Lambda A,\quad
        \kappa_\mu = \frac{\operatorname{Tr}[\Lambda A G_\mu^{-1}]}{1 - \operatorname{Tr}[\Lambda A G_\mu^{-1}]/S},

    :math:`L_{train} = \tfrac12(\operatorname{Tr}[A\Sigma] + \sigma^2)`,
    :math:`L_{test} = \tfrac12\operatorname{Tr}[A\Sigma]`. Any SPD :math:`\Lambda` is handled
    exactly (commuting with :math:`A` or not) through :math:`\Lambda^{1/2}A\Lambda^{1/2}`.

    Parameters
    ----------
    A : (D, D) or (D,) array_like, or WeightedSpectrum
        Input covariance (= Hessian), or its spectrum, or a weighted spectrum
        (:class:`WeightedSpectrum`, e.g. a :func:`spectral_density`): node l then counts
        :math:`\omega_l` times in every trace, and ``sigma``, ``noise`` and a diagonal ``lr`` hold
        one value per node.
    noise_var : float
        Label-noise variance :math:`\sigma^2 \ge 0`.
    lr : float or array_like
        :math:`\lambda > 0`, an SPD (D, D) matrix, or a positive (D,) diagonal.
    batch_size : int
        :math:`S \ge 1`.
    momentum : float, default 0.0
        :math:`\mu \in [0, 1)`.

    Returns
    -------
    Prediction
        ``sigma``, ``noise``, ``mean`` (zeros), ``train_loss``, ``test_loss``, ``kappa``
        (:math:`\kappa_\mu`), ``critical_learning_rate``.

    Raises
    ------
    UnstableError
        Beyond the critical learning rate; carries :math:`\lambda^*`.

    Notes
    -----
    One eigendecomposition and two SYRKs (:math:`O(D^3)`); :math:`O(D)` for a spectrum.

    References
    ----------
    Ziyin, Liu, Mori, Ueda, "Strength of Minibatch Noise in SGD", ICLR 2022, Theorems 2 and 3.

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> p = sgdnoise.label_noise([1.0], noise_var=1.0, lr=0.5, batch_size=10)
    >>> G = 2 - (1 + 1/10) * 0.5          # G_mu at mu = 0
    >>> k = (0.5 / G) / (1 - 0.5 / G / 10)
    >>> bool(np.isclose(p.sigma[0], 1/10 * (1 + k/10) * 0.5 / G, rtol=1e-14))
    True
    """
    op = Operand(A, "A")
    scale, matrix = op.learning_rate(lr)
    sigma, noise, scalars = _outputs(op)
    _lib.check(_lib_.sgdnoise_label_noise(
        op.layout, op.dim, ptr(op.array), as_scalar(noise_var, "noise_var"), scale, ptr(matrix),
        as_batch_size(batch_size), as_scalar(momentum, "momentum"), ptr(sigma), ptr(noise), ptr(scalars)))
    return _prediction(sigma, noise, np.zeros(op.dim), scalars)


def input_noise(A: npt.ArrayLike, B: npt.ArrayLike, u: npt.ArrayLike, lr: npt.ArrayLike, batch_size: int,
                noise_var: float = 0.0, momentum: float = 0.0) -> Prediction:
    r"""Exact stationary fluctuation of SGD on linear regression with input noise [App. E.3].

    The model sees :math:`x + \xi`, :math:`\xi \sim N(0, B)`, labels come from the clean
    :math:`x`. With :math:`K = A + B` the label-noise result holds with :math:`A \to K` and
    :math:`\sigma^2 \to \sigma^2 + u^\top(A - AK^{-1}A)u`; the mean is :math:`w^* = K^{-1}Au` and
    :math:`L_{test} = \tfrac12(\operatorname{Tr}[A\Sigma] + (w^*-u)^\top A(w^*-u))`.

    Parameters
    ----------
    A : (D, D) or (D,) array_like
        Clean-input covariance, or its spectrum.
    B : float, (D,) or (D, D) array_like
        Input-noise covariance (a scalar means :math:`bI`), in ``A``'s layout.
    u : (D,) array_like
        The teacher.
    lr, batch_size, noise_var, momentum
        As in :func:`label_noise`.

    Returns
    -------
    Prediction
        With ``mean`` :math:`= w^*` and ``kappa`` the label-noise :math:`\kappa_\mu` with
        :math:`A \to K`.

    References
    ----------
    Ziyin, Liu, Mori, Ueda, ICLR 2022, Appendix E.3.
    """
    op = Operand(A, "A")
    b = op.like(B, "B")
    uu = op.vector(u, "u")
    scale, matrix = op.learning_rate(lr)
    sigma, noise, scalars = _outputs(op)
    mean = np.empty(op.dim)
    _lib.check(_lib_.sgdnoise_input_noise(
        op.layout, op.dim, ptr(op.array), ptr(b), ptr(uu), as_scalar(noise_var, "noise_var"), scale, ptr(matrix),
        as_batch_size(batch_size), as_scalar(momentum, "momentum"), ptr(sigma), ptr(noise), ptr(mean), ptr(scalars)))
    return _prediction(sigma, noise, mean, scalars)


def l2_regularized(A: npt.ArrayLike, u: npt.ArrayLike, weight_decay: npt.ArrayLike, lr: npt.ArrayLike, batch_size: int,
                   momentum: float = 0.0) -> Prediction:
    r"""Exact stationary fluctuation of SGD with L2 regularisation [Prop 3, Thm 4].

    Loss :math:`\tfrac12(w-u)^\top A(w-u) + \tfrac12 w^\top\Gamma w` (no label noise),
    :math:`K = A + \Gamma`, :math:`w^* = K^{-1}Au`; the noise is
    :math:`C = \frac1S(A\Sigma A + \operatorname{Tr}[A\Sigma]A) + \frac1S(AK^{-1}\Gamma U\Gamma K^{-1}A
    + \operatorname{Tr}[AK^{-1}\Gamma U\Gamma K^{-1}]A)`, :math:`U = uu^\top`. For
    :math:`[A,\Gamma] = 0` and scalar :math:`\lambda`:
    :math:`L_{test} = \frac{\lambda}{2S}(\operatorname{Tr}[AK^{-2}\Gamma^2U]\kappa + r)
    + \frac12\operatorname{Tr}[AK^{-2}\Gamma^2U]`.

    Parameters
    ----------
    A : (D, D) or (D,) array_like
        Input covariance, or its spectrum.
    u : (D,) array_like
        The teacher.
    weight_decay : float, (D,) or (D, D) array_like
        :math:`\Gamma` (a scalar means :math:`\gamma I`; negative values allowed while
        :math:`A + \Gamma` is positive definite).
    lr, batch_size, momentum
        As in :func:`label_noise`.

    Returns
    -------
    Prediction
        ``mean`` :math:`= w^*`; ``train_loss`` the regularised objective; ``test_loss``
        :math:`E[\tfrac12(w-u)^\top A(w-u)]`; ``kappa`` the :math:`\kappa` of Theorem 4 (scalar lr).

    Notes
    -----
    :math:`\Sigma` comes from the spectral solver (the paper's Eq. 12 is not symmetric in general).
    When :math:`\Lambda^{1/2}A\Lambda^{1/2}` and :math:`\Lambda^{1/2}K\Lambda^{1/2}` do not commute
    (matrix :math:`\Gamma` or :math:`\Lambda`), it is solved iteratively and
    ``critical_learning_rate`` is None.

    References
    ----------
    Ziyin, Liu, Mori, Ueda, ICLR 2022, Proposition 3, Theorem 4, Corollary 1.
    """
    op = Operand(A, "A")
    gamma = op.like(weight_decay, "weight_decay")
    uu = op.vector(u, "u")
    scale, matrix = op.learning_rate(lr)
    sigma, noise, scalars = _outputs(op)
    mean = np.empty(op.dim)
    _lib.check(_lib_.sgdnoise_l2_regularized(
        op.layout, op.dim, ptr(op.array), ptr(uu), ptr(gamma), scale, ptr(matrix), as_batch_size(batch_size),
        as_scalar(momentum, "momentum"), ptr(sigma), ptr(noise), ptr(mean), ptr(scalars)))
    return _prediction(sigma, noise, mean, scalars)


def high_dimensional(A_hat: npt.ArrayLike, alpha: float, noise_var: float, lr: npt.ArrayLike, batch_size: int,
                     momentum: float = 0.0) -> Prediction:
    r"""Stationary fluctuation of SGD in high-dimensional regression [Prop 4, Thm 6].

    :math:`N, D \to \infty` with :math:`\alpha = N/D`; the noise is
    :math:`C = \frac1S(\operatorname{Tr}[\hat A\Sigma]I - \hat A\Sigma)\hat A
    + \max\{0, \frac{\sigma^2}{S}(1 - \frac1\alpha)\}\hat A`, so that
    :math:`\operatorname{Tr}[\hat A\Sigma] = \max\{0, \frac{\lambda\sigma^2}{S}(1-\frac1\alpha)\hat\kappa\}`,
    :math:`\hat\kappa = \frac{\operatorname{Tr}[\hat G^{-1}\hat A]}{1 - \frac\lambda S\operatorname{Tr}[\hat G^{-1}\hat A]}`,
    :math:`\hat G = 2I - \lambda(1 - \frac1S)\hat A`.

    Parameters
    ----------
    A_hat : (D, D) or (D,) array_like, or WeightedSpectrum
        Empirical input covariance, or its spectrum, or a weighted spectrum (as in
        :func:`label_noise`).
    alpha : float
        :math:`N/D > 0`.
    noise_var, lr, batch_size, momentum
        As in :func:`label_noise`.

    Returns
    -------
    Prediction
        ``train_loss`` :math:`= \tfrac12(\operatorname{Tr}[\hat A\Sigma] + \max\{0, \sigma^2(1-1/\alpha)\})`;
        ``test_loss`` :math:`= \tfrac12\operatorname{Tr}[\hat A\Sigma]` (the excess due to the SGD
        fluctuation only); ``kappa`` :math:`= \hat\kappa`.

    References
    ----------
    Ziyin, Liu, Mori, Ueda, ICLR 2022, Proposition 4, Theorem 6.
    """
    op = Operand(A_hat, "A_hat")
    scale, matrix = op.learning_rate(lr)
    sigma, noise, scalars = _outputs(op)
    _lib.check(_lib_.sgdnoise_high_dimensional(
        op.layout, op.dim, ptr(op.array), as_scalar(alpha, "alpha"), as_scalar(noise_var, "noise_var"), scale,
        ptr(matrix), as_batch_size(batch_size), as_scalar(momentum, "momentum"), ptr(sigma), ptr(noise), ptr(scalars)))
    return _prediction(sigma, noise, np.zeros(op.dim), scalars)


def damped_newton(A: npt.ArrayLike, noise_var: float, lr: float, batch_size: int, momentum: float = 0.0) -> Prediction:
    r"""Damped Newton's method with label noise [Sec 6.4]: learning rate :math:`\Lambda = \lambda A^{-1}`.

    .. math::

        \Sigma = \frac{\lambda\sigma^2}{gS - \lambda D}A^{-1},\quad
        g = 2(1-\mu) - \Bigl(\frac{1-\mu}{1+\mu} + \frac1S\Bigr)\lambda,

    stable iff :math:`gS > \lambda D`. Parameters as in :func:`label_noise` (``lr`` a scalar).
    """
    op = Operand(A, "A")
    sigma, noise, scalars = _outputs(op)
    _lib.check(_lib_.sgdnoise_damped_newton(
        op.layout, op.dim, ptr(op.array), as_scalar(noise_var, "noise_var"), as_scalar(lr, "lr"),
        as_batch_size(batch_size), as_scalar(momentum, "momentum"), ptr(sigma), ptr(noise), ptr(scalars)))
    return _prediction(sigma, noise, np.zeros(op.dim), scalars)


def natural_gradient(A: npt.ArrayLike, lr: float, batch_size: int, momentum: float = 0.0) -> Prediction:
    r"""Natural-gradient descent without label noise [Sec 6.4]: :math:`\Lambda = \frac\lambda S C^{-1}`.

    The self-consistent stationary solution is

    .. math::

        \Sigma = \frac\lambda2\Bigl(\frac1{(1+D)(1+\mu)} + \frac1{(1-\mu)S}\Bigr)A^{-1},

    with noise :math:`C = \frac{c(1+D)}{S}A`. Parameters as in :func:`label_noise`.
    """
    op = Operand(A, "A")
    sigma, noise, scalars = _outputs(op)
    _lib.check(_lib_.sgdnoise_natural_gradient(
        op.layout, op.dim, ptr(op.array), as_scalar(lr, "lr"), as_batch_size(batch_size),
        as_scalar(momentum, "momentum"), ptr(sigma), ptr(noise), ptr(scalars)))
    return _prediction(sigma, noise, np.zeros(op.dim), scalars)


def continuous_time(A: npt.ArrayLike, noise_var: float, lr: npt.ArrayLike, batch_size: int,
                    momentum: float = 0.0) -> npt.NDArray[np.float64]:
    r"""The continuous-time approximation with Hessian-shaped noise [Eq. 7].

    :math:`\Sigma = \frac{\sigma^2}{2S(1-\mu)}\Lambda` (:math:`\frac{\lambda\sigma^2}{2S}I` for
    scalar :math:`\lambda`, :math:`\mu = 0`) — one of the three curves of the paper's Figure 4.
    Returns :math:`\Sigma` in ``A``'s layout.
    """
    return _baseline(_lib_.sgdnoise_continuous_time, A, noise_var, lr, batch_size, momentum)


def discrete_hessian(A: npt.ArrayLike, noise_var: float, lr: npt.ArrayLike, batch_size: int,
                     momentum: float = 0.0) -> npt.NDArray[np.float64]:
    r"""Discrete time with Hessian-shaped noise :math:`C = \frac{\sigma^2}{S}A` (Liu et al. 2021).

    :math:`\Sigma = \frac{\lambda\sigma^2}{S}(2I - \lambda A)^{-1}` for scalar :math:`\lambda`,
    :math:`\mu = 0`; with momentum or a matrix learning rate, Theorem 1 with that noise. The second
    baseline of the paper's Figure 4. Returns :math:`\Sigma` in ``A``'s layout.
    """
    return _baseline(_lib_.sgdnoise_discrete_hessian, A, noise_var, lr, batch_size, momentum)


def _baseline(fn: Callable[..., int], A: npt.ArrayLike, noise_var: float, lr: npt.ArrayLike, batch_size: int,
              momentum: float) -> npt.NDArray[np.float64]:
    op = Operand(A, "A")
    scale, matrix = op.learning_rate(lr)
    out = op.empty()
    _lib.check(fn(op.layout, op.dim, ptr(op.array), as_scalar(noise_var, "noise_var"), scale, ptr(matrix),
                  as_batch_size(batch_size), as_scalar(momentum, "momentum"), ptr(out)))
    return out
