"""The spectral density of a Hessian known through its product, as a weighted spectrum
(stochastic Lanczos quadrature, docs/theory.md §8)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _capi, _lib
from ._arrays import ptr
from ._operands import weighted_parts
from .network import Product, _as_count, _as_product, _Callback, _check

__all__ = ["WeightedSpectrum", "SpectralDensity", "spectral_density"]

_lib_ = _lib.lib


@dataclass(frozen=True)
class WeightedSpectrum:
    r"""A spectrum whose node :math:`\theta_l` stands for :math:`\omega_l` directions
    (docs/theory.md §8): :math:`\sum_l \omega_l\,\varphi(\theta_l)` stands for
    :math:`\operatorname{Tr}\varphi(H) = \sum_i \varphi(h_i)`.

    Accepted as ``A`` (``A_hat``, ``hessian``) wherever a 1-D spectrum is and the model needs only
    traces over it: :func:`label_noise`, :func:`high_dimensional`, :func:`critical_learning_rate`,
    :func:`smallest_stable_batch_size`, :func:`minimum_fluctuation` (without weight decay),
    :func:`label_noise_sweep` and :func:`scaling_law`. Every trace becomes a weighted sum
    (:math:`\operatorname{Tr}[A\Sigma] = \sum_l \omega_l\theta_l\Sigma_l`), the dimension is
    :math:`D = \sum_l\omega_l`, and per-direction results (``sigma``, ``noise``, per-node learning
    rates and weight decays) hold one value per node. With integer weights every result equals that
    of the 1-D spectrum with node l repeated :math:`\omega_l` times. Any object with ``nodes`` and
    ``weights`` attributes is accepted the same way (a :class:`SpectralDensity` included); a tuple
    ``(nodes, weights)`` is not, as it cannot be told from a 2 × 2 matrix.

    Attributes
    ----------
    nodes : (L,) ndarray
        :math:`\theta_l`, finite.
    weights : (L,) ndarray
        :math:`\omega_l \ge 0`, not all zero.
    """

    nodes: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        nodes, weights = weighted_parts(self, "WeightedSpectrum")  # type: ignore[misc]
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "weights", weights)


@dataclass(frozen=True)
class SpectralDensity:
    r"""The spectral density of a Hessian by stochastic Lanczos quadrature (docs/theory.md §8).

    A weighted spectrum (see :class:`WeightedSpectrum`; pass it as ``A`` directly): the Gauss
    rules of every probe, appended. The weights sum to P, and for smooth :math:`\varphi`

    .. math::

        \sum_l \omega_l\,\varphi(\theta_l) \approx \operatorname{Tr}\varphi(H),

    exactly per probe (:math:`z^\top\varphi(H)z/n`, n probes) for polynomials of degree
    :math:`< 2\,` ``steps``.

    Attributes
    ----------
    nodes : (L,) ndarray
        The Ritz values :math:`\theta_l`, probe after probe (each probe's ascending); L ≤
        ``probes * steps``.
    weights : (L,) ndarray
        :math:`\omega_l = \|z\|^2\tau_l^2/n` (:math:`\tau_l` the first entry of the eigenvector of
        :math:`\theta_l` in the probe's Lanczos tridiagonal), summing to P.
    trace, trace_stderr : float
        Hutchinson's :math:`\operatorname{Tr}H` (the mean over the probes of :math:`z^\top Hz`,
        :math:`= \sum_l\omega_l\theta_l`) and its standard error over the probes (inf for one).
    hessian_products : int
        Hessian-vector products used.
    """

    nodes: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]
    trace: float
    trace_stderr: float
    hessian_products: int


def spectral_density(hvp: Product | Any, dim: int, *, probes: int = 30, steps: int = 30,
                     seed: int = 0) -> SpectralDensity:
    r"""The spectral density of a Hessian from its product: stochastic Lanczos quadrature.

    ``probes`` Rademacher vectors z, ``steps`` Lanczos steps from each (Golub & Meurant; Ubaru,
    Chen & Saad 2017; docs/theory.md §8): each probe's tridiagonal :math:`T = Y\Theta Y^\top` gives
    the Gauss rule :math:`z^\top\varphi(H)z \approx \|z\|^2\sum_l \tau_l^2\varphi(\theta_l)`, and
    their mean (Hutchinson) estimates :math:`\operatorname{Tr}\varphi(H)`. Cost: ``probes * steps``
    products (fewer when a probe's Krylov space is invariant), memory ``steps + 1`` vectors.

    The result is a weighted spectrum that the O(D) models accept in place of a 1-D spectrum
    (:class:`WeightedSpectrum`): e.g. ``label_noise(spectral_density(hvp, P), noise_var, lr, S)``.
    Their traces then carry the quadrature's error: statistical, shrinking like
    :math:`1/\sqrt{\text{probes}}`, and a bias from resolving the model's :math:`\varphi` with
    ``steps`` nodes per probe, small for functions smooth on the spectrum (near the critical
    learning rate their pole approaches the spectrum and more steps are needed).

    Parameters
    ----------
    hvp : callable, operator with ``matvec``, or (P, P) array_like
        ``v -> H v`` for a float64 vector of length P; H symmetric.
    dim : int
        P.
    probes, steps : int
        n ≥ 1 probes, s ≥ 1 Lanczos steps per probe.
    seed : int
        The probes' seed: equal seeds give equal results.

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> H = np.diag(np.linspace(0.1, 2.0, 200))
    >>> rho = sgdnoise.spectral_density(lambda v: H @ v, 200, probes=10, steps=20)
    >>> round(float(rho.weights.sum()), 9), round(float(rho.weights @ rho.nodes), 9) == round(rho.trace, 9)
    (200.0, True)
    """
    p = _as_count(dim, "dim")
    n = _as_count(probes, "probes")
    s = _as_count(steps, "steps")
    cb = _Callback(_as_product(hvp, p, "hvp"), p, "hvp")
    capacity = n * min(s, p)
    nodes, weights = np.empty(capacity), np.empty(capacity)
    info = _capi.sgdnoise_spectral_density_info()
    info.size = ctypes.sizeof(info)
    status = _lib_.sgdnoise_spectral_density(p, cb.c, None, n, s, int(seed) & (2**64 - 1), ptr(nodes), ptr(weights),
                                             ctypes.byref(info))
    _check(status, cb)
    count = int(info.nodes)
    return SpectralDensity(nodes=nodes[:count].copy(), weights=weights[:count].copy(), trace=float(info.trace),
                           trace_stderr=float(info.trace_stderr), hessian_products=int(info.products))
