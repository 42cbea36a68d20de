"""The stationary fluctuation of SGD: the generalised Lyapunov equation (docs/theory.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from . import _capi, _lib
from ._arrays import as_flat_tolerance, as_scalar, as_square, is_scalar, ptr

__all__ = ["stationary_covariance", "StationaryInfo"]

_stationary = _lib.lib.sgdnoise_stationary_covariance
_fluctuation = _lib.lib.sgdnoise_stationary_fluctuation


@dataclass(frozen=True)
class StationaryInfo:
    r"""What solving Theorem 1 learnt beyond Σ (``stationary_covariance(..., return_info=True)``).

    Attributes
    ----------
    eigenvalues : (D,) ndarray
        The eigenvalues :math:`m` of :math:`\Lambda^{1/2}H\Lambda^{1/2}`, ascending; the dynamics
        are stable iff :math:`0 < m < 2(1+\mu)` off the flat ones.
    flat_directions : int
        The number of zero eigenvalues (flat directions), where Σ is reported as 0.
    flat_direction_noise : float
        The noise power entering them, in units of :math:`\Lambda^{1/2}C\Lambda^{1/2}`; positive
        means the parameters random-walk along the flat directions (no stationary law there).
    flat_tolerance : float
        The relative tolerance used: :math:`|m| \le` ``flat_tolerance`` :math:`\cdot \max|m|` is flat.
    """

    eigenvalues: npt.NDArray[np.float64]
    flat_directions: int
    flat_direction_noise: float
    flat_tolerance: float


def _learning_rate(lr: npt.ArrayLike, d: int) -> tuple[float, npt.NDArray[np.float64] | None]:
    """(scalar, matrix or None) for the C convention: the learning rate is scalar * matrix."""
    if is_scalar(lr):
        return as_scalar(lr, "lr"), None
    return 1.0, as_square(lr, "lr", d)


@overload
def stationary_covariance(hessian: npt.ArrayLike, noise: npt.ArrayLike, lr: npt.ArrayLike, momentum: float = ...,
                          *, flat_tolerance: float | None = ...,
                          return_info: Literal[False] = ...) -> npt.NDArray[np.float64]: ...


@overload
def stationary_covariance(hessian: npt.ArrayLike, noise: npt.ArrayLike, lr: npt.ArrayLike, momentum: float = ...,
                          *, flat_tolerance: float | None = ...,
                          return_info: Literal[True]) -> tuple[npt.NDArray[np.float64], StationaryInfo]: ...


@overload
def stationary_covariance(hessian: npt.ArrayLike, noise: npt.ArrayLike, lr: npt.ArrayLike, momentum: float = ...,
                          *, flat_tolerance: float | None = ..., return_info: bool
                          ) -> npt.NDArray[np.float64] | tuple[npt.NDArray[np.float64], StationaryInfo]: ...


def stationary_covariance(hessian: npt.ArrayLike, noise: npt.ArrayLike, lr: npt.ArrayLike, momentum: float = 0.0,
                          *, flat_tolerance: float | None = None, return_info: bool = False
                          ) -> npt.NDArray[np.float64] | tuple[npt.NDArray[np.float64], StationaryInfo]:
    r"""Stationary fluctuation :math:`\Sigma = \lim \operatorname{cov}(w_t)` of SGD [Thm 1].

    Solves the generalised (discrete) Lyapunov equation of SGD with momentum :math:`\mu` and
    learning rate :math:`\Lambda` (a scalar :math:`\lambda` means :math:`\Lambda = \lambda I`)

    .. math::

        (1-\mu)(\Lambda H\Sigma + \Sigma H\Lambda) - c_1 \Lambda H\Sigma H\Lambda
        + c_2(\Lambda H\Lambda H\Sigma + \Sigma H\Lambda H\Lambda) = \Lambda C\Lambda,

    :math:`c_1 = (1+\mu^2)/(1-\mu^2)`, :math:`c_2 = \mu/(1-\mu^2)`. At :math:`\mu = 0` it is
    :math:`\Sigma - (I-\Lambda H)\Sigma(I-\Lambda H)^\top = \Lambda C\Lambda`.

    Parameters
    ----------
    hessian : (D, D) array_like
        The Hessian :math:`H`, symmetric.
    noise : (D, D) array_like
        The noise covariance :math:`C`, symmetric (e.g. from :func:`noise_covariance`).
    lr : float or (D, D) array_like
        :math:`\lambda > 0`, or a symmetric positive-definite learning-rate matrix :math:`\Lambda`.
    momentum : float, default 0.0
        :math:`\mu \in [0, 1)`.
    flat_tolerance : float, optional
        Eigenvalues :math:`m` of :math:`\Lambda^{1/2}H\Lambda^{1/2}` with
        :math:`|m| \le` ``flat_tolerance`` :math:`\cdot\max|m|` are flat directions (Σ is 0
        there); the default is :math:`16 D\varepsilon`. A Hessian computed at a real minimum has
        round-off eigenvalues of either sign: pass e.g. ``1e-9`` to treat them as flat instead of
        getting :class:`UnstableError` for a negative eigenvalue.
    return_info : bool, default False
        Also return a :class:`StationaryInfo` (eigenvalues, flat directions and the noise that
        enters them), as docs/theory.md §3 asks for a singular H.

    Returns
    -------
    sigma : (D, D) ndarray
        :math:`\Sigma`, symmetric. Along flat directions of :math:`H` (zero eigenvalues) the
        fluctuation is undetermined and reported as 0 (docs/theory.md §3).

    Raises
    ------
    UnstableError
        When an eigenvalue :math:`m` of :math:`\Lambda^{1/2} H \Lambda^{1/2}` is negative or
        :math:`\ge 2(1+\mu)`; ``critical_learning_rate`` is :math:`\lambda\,2(1+\mu)/m_{max}`.
    NotSymmetricError, NotPositiveDefiniteError, InvalidArgumentError
        For bad input; the message names the argument.

    Notes
    -----
    Spectral solution (docs/theory.md §3): with :math:`P = \Lambda^{1/2}` and
    :math:`P H P = Q\,\mathrm{diag}(m)\,Q^\top`, :math:`Y = Q^\top P^{-1}\Sigma P^{-1} Q` has
    :math:`Y_{ij} = (Q^\top P C P Q)_{ij} / d_{ij}`,
    :math:`d_{ij} = (1-\mu)(m_i+m_j) - c_1 m_i m_j + c_2(m_i^2+m_j^2)`.
    Cost: one symmetric eigendecomposition (two for a matrix learning rate) and two symmetric
    rotations of one triangular and one general matrix product each, :math:`O(D^3)`.

    References
    ----------
    Ziyin, Liu, Mori, Ueda, "Strength of Minibatch Noise in SGD", ICLR 2022, Theorem 1.

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> H = np.diag([1.0, 0.5]); C = H / 50
    >>> S = sgdnoise.stationary_covariance(H, C, lr=1.5)
    >>> A = np.eye(2) - 1.5 * H
    >>> bool(np.allclose(S - A @ S @ A.T, 1.5**2 * C, rtol=0, atol=1e-15))
    True
    """
    h = as_square(hessian, "hessian")
    d = h.shape[0]
    c = as_square(noise, "noise", d)
    scale, matrix = _learning_rate(lr, d)
    out = np.empty((d, d))
    m = ptr(matrix)
    tolerance = as_flat_tolerance(flat_tolerance)
    if not return_info and flat_tolerance is None:
        status = _stationary(d, ptr(h), ptr(c), scale, m, as_scalar(momentum, "momentum"), ptr(out))
        if status:
            _lib.raise_for(status)
        return out
    eigenvalues, info = np.empty(d), _capi.sgdnoise_fluctuation_info()
    _lib.check(_fluctuation(d, ptr(h), ptr(c), scale, m, as_scalar(momentum, "momentum"), tolerance, ptr(out),
                            ptr(eigenvalues), ptr(info)))
    if not return_info:
        return out
    return out, StationaryInfo(eigenvalues=eigenvalues, flat_directions=int(info.flat_directions),
                               flat_direction_noise=float(info.flat_direction_noise),
                               flat_tolerance=float(info.flat_tolerance))
