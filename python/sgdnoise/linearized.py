r"""The linearised network near a minimum (docs/theory.md §8, noise model (iii)): the critical
learning rate of SGD on linear regression with the network's per-example features.

Expanding each example's output to first order around the minimum, f(x_i; w) ≈ f(x_i; w*) +
j_iᵀ(w − w*) with j_i = ∇_w f(x_i; w*), and its loss ℓ(f) to second order, the per-example
gradient becomes g_i(w) ≈ g_i(w*) + c_i j_i j_iᵀ (w − w*), c_i = ℓ''(f(x_i; w*)) (the Gauss–Newton
per-example Hessian). That is the gradient of linear regression on the features x_i = √c_i j_i
(with labels that make w* its minimiser), so §4.1 gives its exact multiplicative noise and its
critical learning rate; the labels do not enter the critical learning rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .dataset import critical_learning_rate_dataset
from .errors import InvalidArgumentError

__all__ = ["linearized_critical_learning_rate", "linearized_features"]

_DENSE_LIMIT = 4096  # P beyond which a P x P second-moment problem is refused


def linearized_features(jacobian: npt.ArrayLike, output_curvature: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
    r"""The features :math:`x_i = \sqrt{c_i}\, j_i` of the linearised network.

    Parameters
    ----------
    jacobian : (N, P) array_like
        Row i is :math:`j_i = \nabla_w f(x_i; w^*)`, the gradient of example i's (scalar) output.
    output_curvature : float or (N,) array_like, optional
        :math:`c_i = \partial^2\ell/\partial f^2` at example i's output (1 for ½(f − y)², 2 for
        (f − y)², p(1 − p) for the logistic loss); default 1. Every :math:`c_i \ge 0` (a loss that is
        convex in the output), finite.
    """
    j = np.asarray(jacobian, dtype=np.float64)
    if j.ndim != 2 or j.shape[0] < 1 or j.shape[1] < 1:
        raise InvalidArgumentError(f"jacobian must be an (N, P) array with N, P >= 1, got shape {j.shape}")
    if not np.all(np.isfinite(j)):
        raise InvalidArgumentError("jacobian has a non-finite entry")
    if output_curvature is None:
        return np.ascontiguousarray(j)
    c = np.asarray(output_curvature, dtype=np.float64)
    if c.ndim == 0:
        c = np.full(j.shape[0], float(c))
    if c.shape != (j.shape[0],):
        raise InvalidArgumentError(f"output_curvature must be a scalar or {j.shape[0]} values (one per example), "
                                   f"got shape {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        bad = c[~(np.isfinite(c) & (c >= 0))][0]
        raise InvalidArgumentError(f"output_curvature must be finite and >= 0 (a loss convex in the output), "
                                   f"got {bad!r}: the Gauss-Newton linearisation does not apply")
    return np.ascontiguousarray(np.sqrt(c)[:, None] * j)


def linearized_critical_learning_rate(features: npt.ArrayLike, batch_size: int, *, lr: Any = None,
                                      weight_decay: float = 0.0, momentum: float = 0.0,
                                      replacement: bool = True) -> float:
    r"""The critical learning rate of SGD on the linearised network (docs/theory.md §8 (iii), §4.1).

    The largest λ whose second-moment map of SGD on linear regression with these features (plus
    weight decay γ) has spectral radius below one: the learning rate at which the linearised
    network stops having a stationary state, with its multiplicative noise included exactly.

    :func:`sgdnoise.critical_learning_rate_dataset` on the features: for a scalar learning rate it
    solves on their range, of dimension r = rank ≤ min(N, P) (the directions orthogonal to every
    feature feel only the weight decay, decoupled from the rest, so λ* = min(λ*_range, 2(1+μ)/γ)
    exactly), so the cost is a root search over power iterations at O(N r²) per product whatever P
    (about a second at N = 442, r = 193): this is for datasets of up to about a thousand
    examples. A diagonal preconditioner Λ is the same problem on the features x_iΛ^{1/2} without
    weight decay; with weight decay it is solved in all P dimensions (P ≤ 4096).

    Parameters
    ----------
    features : (N, P) array_like
        :func:`linearized_features` (the per-example output gradients scaled by √ℓ'').
    batch_size : int
        S.
    lr : None, float or (P,) array_like
        None or a scalar: the result is λ*. A (P,) diagonal Λ of a preconditioner: the result is the
        largest multiple c such that cΛ is stable (as in :func:`sgdnoise.network_fluctuation`).
    weight_decay : float
        γ ≥ 0 (the Hessian of the regulariser is γI).
    momentum : float
    replacement : bool
        Minibatches with replacement, or without.

    Returns
    -------
    float
        λ* (or the multiple c).
    """
    x = linearized_features(features)
    if lr is None or np.ndim(lr) == 0:
        return critical_learning_rate_dataset(x, batch_size, replacement=replacement, weight_decay=weight_decay,
                                              momentum=momentum)
    d = np.asarray(lr, dtype=np.float64)
    p = x.shape[1]
    if d.shape != (p,) or not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise InvalidArgumentError(f"lr must be None, a scalar, or {p} positive diagonal entries, got shape {d.shape}")
    if np.ndim(weight_decay) == 0 and float(weight_decay) == 0:
        # SGD with cΛ on x is SGD with c on x Λ^{1/2} (w̃ = Λ^{-1/2} w): the range route applies
        return critical_learning_rate_dataset(x * np.sqrt(d), batch_size, replacement=replacement, momentum=momentum)
    if p > _DENSE_LIMIT:
        raise InvalidArgumentError(f"a diagonal learning rate with weight decay is solved in all P = {p} dimensions "
                                   f"(P x P matrices): limited to P <= {_DENSE_LIMIT}")
    return critical_learning_rate_dataset(x, batch_size, replacement=replacement, weight_decay=weight_decay,
                                          momentum=momentum, lr_matrix=np.diag(d))
