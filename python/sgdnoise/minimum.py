"""SGD noise and fluctuation near a minimum of any model trained with the MSE loss.

The mathematics is in docs/theory.md §5 (and §3 for flat directions).
"""

from __future__ import annotations

import ctypes
import math

import numpy as np
import numpy.typing as npt

from . import _lib
from ._arrays import as_batch_size, as_flat_tolerance, as_scalar, is_scalar, ptr
from ._operands import Operand

__all__ = ["minimum_noise", "minimum_fluctuation"]

_lib_ = _lib.lib


def _decay(op: Operand, weight_decay: npt.ArrayLike | None) -> npt.NDArray[np.float64] | None:
    if weight_decay is None or (is_scalar(weight_decay) and float(weight_decay) == 0.0):  # type: ignore[arg-type]
        return None
    return op.like(weight_decay, "weight_decay")


def minimum_noise(hessian: npt.ArrayLike, loss: float, batch_size: int, weight_decay: npt.ArrayLike | None = 0.0,
                  w_star: npt.ArrayLike | None = None, sigma: npt.ArrayLike | None = None, *,
                  flat_tolerance: float | None = None) -> tuple[npt.NDArray[np.float64], str]:
    r"""The SGD noise near a minimum of any differentiable model with MSE loss [Thm 5, Cor 2].

    Near a minimum :math:`w^*` of :math:`L_\Gamma = L_0 + \tfrac12 w^\top\Gamma w`:

    - :math:`\Gamma \ne 0`: :math:`C \approx \frac{2L_0(w^*)}{S}H_0 - \frac1S\Gamma w^*w^{*\top}\Gamma`
    - :math:`\Gamma = 0, L_0(w^*) > 0`: :math:`C \approx \frac{2L_0(w^*)}{S}H_0` (the Hessian
      approximation, with its exact scale)
    - :math:`\Gamma = 0, L_0(w^*) = 0`: :math:`C \approx \frac1S(\operatorname{Tr}[H_0\Sigma]I - H_0\Sigma)H_0`
      (no noise at an interpolating minimum: :math:`C \propto H` is wrong there [Prop 2])

    Parameters
    ----------
    hessian : (D, D) or (D,) array_like
        :math:`H_0`, the Hessian of the unregularised loss at :math:`w^*` (1-D: its spectrum, in its
        eigenbasis — then ``w_star`` and ``sigma`` are in that basis too).
    loss : float
        :math:`L_0(w^*) \ge 0`.
    batch_size : int
    weight_decay : float or array_like, default 0.0
        :math:`\Gamma`; needs ``w_star``.
    w_star : (D,) array_like, optional
    sigma : array_like, optional
        :math:`\Sigma` (same layout as ``hessian``), needed at an interpolating minimum.
    flat_tolerance : float, optional
        Eigenvalues :math:`h` of :math:`H_0` with :math:`|h| \le` ``flat_tolerance``
        :math:`\cdot\max|h|` are round-off and taken as zero; the default is the library's one
        flat tolerance :math:`16D\varepsilon` (as in :func:`stationary_covariance`).

    Returns
    -------
    noise : ndarray
        :math:`C`, (D, D) — or its diagonal for a 1-D ``hessian`` without weight decay.
    kind : str
        ``"regularized"``, ``"non_interpolating"`` or ``"interpolating"``.

    Raises
    ------
    InvalidArgumentError
        When the formula's :math:`C` is not a covariance (an eigenvalue below
        :math:`-`\ ``flat_tolerance`` times its largest): Theorem 5 does not hold at this minimum.
        On a network trained with weight decay :math:`H_0 = H - \Gamma` is often indefinite; measure
        the noise from per-sample gradients there (:func:`noise_covariance`) and pass it to
        :func:`stationary_covariance`.

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> C, kind = sgdnoise.minimum_noise(np.diag([2.0, 1.0]), loss=0.1, batch_size=10)
    >>> kind, bool(np.allclose(C, 2 * 0.1 / 10 * np.diag([2.0, 1.0])))
    ('non_interpolating', True)
    """
    op = Operand(hessian, "hessian")
    gamma = _decay(op, weight_decay)
    if gamma is not None and op.layout == _lib.LAYOUT_DIAGONAL:  # the Γw*w*ᵀΓ term is not diagonal: compute densely
        op = Operand(np.diag(op.array), "hessian")
        gamma = np.diag(gamma)
    w = None if w_star is None else op.vector(w_star, "w_star")
    sig = None if sigma is None else op.like(sigma, "sigma")
    out = op.empty()
    kind = ctypes.c_int(-1)
    _lib.check(_lib_.sgdnoise_minimum_noise(op.layout, op.dim, ptr(op.array), as_scalar(loss, "loss"),
                                            as_batch_size(batch_size), ptr(gamma), ptr(w), ptr(sig),
                                            as_flat_tolerance(flat_tolerance), ptr(out), ctypes.byref(kind)))
    return out, _lib.MINIMUM_KINDS[kind.value]


def minimum_fluctuation(hessian: npt.ArrayLike, loss: float, lr: npt.ArrayLike, batch_size: int,
                        weight_decay: npt.ArrayLike | None = 0.0, w_star: npt.ArrayLike | None = None,
                        momentum: float = 0.0, *,
                        flat_tolerance: float | None = None) -> tuple[npt.NDArray[np.float64], str, float | None]:
    r"""The stationary fluctuation that goes with :func:`minimum_noise` [Cor 3].

    Theorem 1 with :math:`H = H_0 + \Gamma` and the minimum's noise. At an interpolating minimum
    the only stationary solution is :math:`\Sigma = 0` on the range of :math:`H_0` (as long as
    :math:`\lambda` is below the critical learning rate of that multiplicative noise); flat
    directions of a singular :math:`H_0` get zero fluctuation (docs/theory.md §3); ``flat_tolerance``
    decides which are flat, as in :func:`minimum_noise`, and the noise must be a covariance, as
    there. ``hessian`` may also be a weighted spectrum (:class:`WeightedSpectrum`, e.g. a
    :func:`spectral_density`) when there is no weight decay: the critical learning rate then sums
    over it with the weights, and ``sigma`` holds one value per node.

    Returns
    -------
    sigma : ndarray
        (D, D), or (D,) for a 1-D ``hessian``.
    kind : str
    critical_learning_rate : float or None
        At an interpolating minimum the edge of its multiplicative noise; at a non-interpolating
        one the edge of :math:`C(\Sigma) = \frac1S(\operatorname{Tr}[H_0\Sigma]H_0 - H_0\Sigma H_0)
        + \frac{2L_0}{S}H_0` (docs/theory.md §8), well below the :math:`2(1+\mu)/h_{max}` of the
        constant part alone when the spectrum has many sizeable eigenvalues or with momentum (measured
        on a real network, experiments/real_network); None at a regularised minimum, where
        :math:`H_0` is indefinite and no edge has been shown to hold.

    Raises
    ------
    UnstableError
        At or past that critical learning rate.
    """
    op = Operand(hessian, "hessian")
    gamma = _decay(op, weight_decay)
    w = None if w_star is None else op.vector(w_star, "w_star")
    scale, matrix = op.learning_rate(lr)
    out = op.empty()
    kind = ctypes.c_int(-1)
    critical = np.empty(1)
    _lib.check(_lib_.sgdnoise_minimum_fluctuation(
        op.layout, op.dim, ptr(op.array), as_scalar(loss, "loss"), scale, ptr(matrix), as_batch_size(batch_size),
        ptr(gamma), ptr(w), as_scalar(momentum, "momentum"), as_flat_tolerance(flat_tolerance), ptr(out),
        ctypes.byref(kind), ptr(critical)))
    c = float(critical[0])
    return out, _lib.MINIMUM_KINDS[kind.value], None if math.isnan(c) else c
