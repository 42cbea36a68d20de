"""The gradient noise scales of McCandlish et al. (2018): B_simple, B_noise, the two-batch
estimator and the critical-batch view."""

from __future__ import annotations

import ctypes

from dataclasses import dataclass
from typing import Callable, overload

import numpy as np
import numpy.typing as npt

from . import _capi, _lib
from ._arrays import as_batch_size, as_float64, as_gradients, as_scalar, as_square
from .accumulator import NoiseAccumulator
from .errors import InvalidArgumentError

__all__ = ["NoiseScale", "noise_scale", "two_batch_noise_scale", "critical_batch_view"]

_c = _lib.lib


@dataclass(frozen=True)
class NoiseScale:
    r"""Gradient noise scales (McCandlish et al. 2018) and their ingredients.

    Attributes
    ----------
    b_simple : float
        :math:`B_\text{simple} = \operatorname{Tr}\Sigma_1 / |G|^2`.
    b_noise : float or None
        :math:`B_\text{noise} = \operatorname{Tr}(H\Sigma_1) / (G^\top H G)` (None without a Hessian).
    trace_sigma : float
        :math:`\operatorname{Tr}\Sigma_1`, :math:`\Sigma_1` the per-sample covariance (batch size 1,
        with replacement).
    grad_sq_norm : float
        :math:`|G|^2`, :math:`G` the mean gradient.
    trace_hessian_sigma, grad_hessian_grad : float or None
        :math:`\operatorname{Tr}(H\Sigma_1)` and :math:`G^\top H G` (None without a Hessian).
    """

    b_simple: float
    b_noise: float | None
    trace_sigma: float
    grad_sq_norm: float
    trace_hessian_sigma: float | None = None
    grad_hessian_grad: float | None = None


def _from_scalars(out: _capi.sgdnoise_noise_scales) -> NoiseScale:
    hessian = not np.isnan(out.trace_hessian_sigma)
    return NoiseScale(
        b_simple=out.b_simple, b_noise=out.b_noise if hessian else None, trace_sigma=out.trace_sigma,
        grad_sq_norm=out.grad_sq_norm, trace_hessian_sigma=out.trace_hessian_sigma if hessian else None,
        grad_hessian_grad=out.grad_hessian_grad if hessian else None)


def _call_hvp(hvp: Callable[[npt.NDArray[np.float64]], npt.ArrayLike], v: npt.NDArray[np.float64],
              d: int) -> npt.NDArray[np.float64]:
    r = np.asarray(hvp(v.copy()), dtype=np.float64).reshape(-1)
    if r.shape != (d,):
        raise InvalidArgumentError(f"hvp must return a vector of {d} entries, got shape {np.shape(r)}")
    if not np.all(np.isfinite(r)):
        raise InvalidArgumentError("hvp returned NaN or infinite entries")
    return r


def noise_scale(grads: npt.ArrayLike | NoiseAccumulator, hessian: npt.ArrayLike | None = None, *,
                hvp: Callable[[npt.NDArray[np.float64]], npt.ArrayLike] | None = None) -> NoiseScale:
    r"""The gradient noise scales of McCandlish et al. (2018) from per-sample gradients.

    .. math::

        B_\text{simple} = \frac{\operatorname{Tr}\Sigma_1}{|G|^2},\qquad
        B_\text{noise} = \frac{\operatorname{Tr}(H\Sigma_1)}{G^\top H G},

    with :math:`G = \bar g` the mean gradient and :math:`\Sigma_1 = M_2 - \bar g\bar g^\top` the
    per-sample covariance: the noise covariance [Prop 1] at batch size 1 with replacement
    (population convention, divide by :math:`N`). :math:`B_\text{noise}` is the batch size at
    which the noise and the signal of a step are of equal size for a quadratic model with Hessian
    :math:`H`; see :func:`critical_batch_view`.

    Parameters
    ----------
    grads : (N, D) array_like or NoiseAccumulator
        Per-sample gradients (float32 kept as float32), or an accumulator holding them.
    hessian : (D, D) array_like, optional
        A dense symmetric Hessian :math:`H`; gives ``b_noise``.
    hvp : callable, optional, keyword-only
        A Hessian-vector product ``hvp(v) -> H v`` on (D,) float64 arrays (instead of ``hessian``),
        for models whose Hessian cannot be stored.

    Returns
    -------
    NoiseScale
        ``b_simple``, ``trace_sigma``, ``grad_sq_norm`` and, with a Hessian, ``b_noise``,
        ``trace_hessian_sigma``, ``grad_hessian_grad``.

    Raises
    ------
    InvalidArgumentError
        Bad shapes, NaN/Inf, both ``hessian`` and ``hvp``, an empty accumulator, an ``hvp`` returning
        the wrong shape or non-finite values.
    NotSymmetricError
        ``hessian`` not symmetric.

    Notes
    -----
    Without a Hessian the cost is :math:`O(ND)`. With a dense Hessian,
    :math:`\operatorname{Tr}(H\Sigma_1) = \tfrac1N\sum_{jk} H_{jk} S_{jk}` with :math:`S` the
    centred scatter (:math:`O(ND^2)`). With ``hvp``, :math:`G^\top H G` costs one product and
    :math:`\operatorname{Tr}(H\Sigma_1)` is exact: :math:`\tfrac1N\sum_i c_i^\top H c_i` over the
    centred gradients :math:`c_i` (:math:`N` products) when an (N, D) array with :math:`N \le D` is
    given, otherwise :math:`\sum_j \lambda_j v_j^\top H v_j` over the eigenpairs of
    :math:`\Sigma_1` with :math:`\lambda_j > D\varepsilon\lambda_{\max}` (at most :math:`D`
    products). :math:`B_\text{simple}` is ``inf`` when :math:`G = 0`.

    References
    ----------
    S. McCandlish, J. Kaplan, D. Amodei, OpenAI Dota Team, "An Empirical Model of Large-Batch
    Training", arXiv:1812.06162 (2018), Eqs. 2.7-2.9.

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> rng = np.random.default_rng(0)
    >>> g = rng.normal(size=(2000, 3)) + [1.0, 0.0, 0.5]
    >>> r = sgdnoise.noise_scale(g, hessian=np.diag([1.0, 2.0, 3.0]))
    >>> G, c = g.mean(axis=0), g - g.mean(axis=0)
    >>> bool(np.isclose(r.b_simple, (c * c).sum(axis=1).mean() / (G @ G), rtol=1e-12))
    True
    >>> bool(np.isclose(r.b_noise, (c * c * [1, 2, 3]).sum(axis=1).mean() / (G * G * [1, 2, 3]).sum(),
    ...                 rtol=1e-12))
    True
    """
    if hessian is not None and hvp is not None:
        raise InvalidArgumentError("give either hessian or hvp, not both")
    if hvp is not None and not callable(hvp):
        raise InvalidArgumentError(f"hvp must be callable, got {type(hvp).__name__}")
    out = _capi.sgdnoise_noise_scales()
    if isinstance(grads, NoiseAccumulator):
        d = grads.dim
        h = None if hessian is None else as_square(hessian, "hessian", d)
        out = grads._noise_scale_scalars(h)
        g = None
    else:
        g = as_gradients(grads)
        n, d = g.shape
        h = None if hessian is None else as_square(hessian, "hessian", d)
        fn = _c.sgdnoise_noise_scale_f32 if g.dtype == np.float32 else _c.sgdnoise_noise_scale
        _lib.check(fn(n, d, g.ctypes.data, None if h is None else h.ctypes.data, ctypes.byref(out)))
    result = _from_scalars(out)
    if hvp is None:
        return result

    # Hessian-vector products.
    if g is None:
        assert isinstance(grads, NoiseAccumulator)
        mean = grads.mean
    else:
        mean = np.empty(d)
        fn = _c.sgdnoise_gradient_mean_f32 if g.dtype == np.float32 else _c.sgdnoise_gradient_mean
        _lib.check(fn(g.shape[0], d, g.ctypes.data, mean.ctypes.data))
    ghg = float(mean @ _call_hvp(hvp, mean, d))
    if g is not None and g.shape[0] <= d:
        trace_h = 0.0
        for row in g:
            c = row.astype(np.float64) - mean
            trace_h += float(c @ _call_hvp(hvp, c, d))
        trace_h /= g.shape[0]
    else:
        if g is None:
            assert isinstance(grads, NoiseAccumulator)
            sigma = grads.covariance(1)
        else:
            from .noise import noise_covariance  # noqa: PLC0415
            sigma = noise_covariance(g, 1)
        w, v = np.linalg.eigh(sigma)
        keep = w > d * np.finfo(np.float64).eps * max(w[-1], 0.0)
        trace_h = sum(float(lam * (u @ _call_hvp(hvp, u, d))) for lam, u in zip(w[keep], v[:, keep].T))
    return NoiseScale(
        b_simple=result.b_simple, b_noise=trace_h / ghg, trace_sigma=result.trace_sigma,
        grad_sq_norm=result.grad_sq_norm, trace_hessian_sigma=trace_h, grad_hessian_grad=ghg)


def two_batch_noise_scale(small_sq_norm: npt.ArrayLike, big_sq_norm: npt.ArrayLike, small_batch: int,
                          big_batch: int) -> NoiseScale:
    r"""Unbiased two-batch estimates of :math:`|G|^2` and :math:`\operatorname{Tr}\Sigma_1`, and
    :math:`B_\text{simple}` (McCandlish et al. 2018, Appendix A.1).

    From squared norms :math:`|G_B|^2` of minibatch-mean gradients at two batch sizes
    :math:`B_\text{small} < B_\text{big}`, using
    :math:`E|G_B|^2 = |G|^2 + \operatorname{Tr}\Sigma_1 / B`:

    .. math::

        |G|^2 \approx \frac{B_\text{big}|G_\text{big}|^2 - B_\text{small}|G_\text{small}|^2}
                           {B_\text{big} - B_\text{small}},\qquad
        \operatorname{Tr}\Sigma_1 \approx \frac{|G_\text{small}|^2 - |G_\text{big}|^2}
                                              {1/B_\text{small} - 1/B_\text{big}},\qquad
        B_\text{simple} \approx \frac{\operatorname{Tr}\Sigma_1}{|G|^2}.

    Each of the two estimates is unbiased, but their ratio is not
    (:math:`E[X/Y] \ne E[X]/E[Y]`). As McCandlish et al. recommend, repeated measurements are
    averaged first — the means of ``small_sq_norm`` and of ``big_sq_norm`` enter the formulas —
    and only the averaged numerator and denominator are divided.

    Parameters
    ----------
    small_sq_norm : float or (m,) array_like
        :math:`|G_\text{small}|^2` of one or more independent batches of size ``small_batch``.
    big_sq_norm : float or (m',) array_like
        :math:`|G_\text{big}|^2` of one or more batches of size ``big_batch`` (``m'`` may differ
        from ``m``).
    small_batch, big_batch : int
        :math:`1 \le B_\text{small} < B_\text{big}`.

    Returns
    -------
    NoiseScale
        ``grad_sq_norm`` and ``trace_sigma`` (the unbiased estimates) and ``b_simple``;
        ``b_noise`` is None. With few measurements ``grad_sq_norm`` may come out :math:`\le 0`
        and ``b_simple`` negative or infinite: that is reported, not hidden.

    Raises
    ------
    InvalidArgumentError
        Empty, negative or non-finite norms; batch sizes out of range.

    Notes
    -----
    The batches must be drawn independently with replacement (or from a stream), so that
    :math:`E|G_B|^2 = |G|^2 + \operatorname{Tr}\Sigma_1/B`. For :math:`B` distinct samples of a
    finite set of :math:`N`, replace :math:`1/B` by :math:`(N-B)/(B(N-1))`.

    Examples
    --------
    >>> import sgdnoise
    >>> G2, tr = 0.5, 40.0                     # feed the exact expectations |G|^2 + Tr/B
    >>> r = sgdnoise.two_batch_noise_scale(G2 + tr / 8, G2 + tr / 512, 8, 512)
    >>> round(r.grad_sq_norm, 12), round(r.trace_sigma, 10), round(r.b_simple, 9)
    (0.5, 40.0, 80.0)
    """
    norms = []
    for name, x in (("small_sq_norm", small_sq_norm), ("big_sq_norm", big_sq_norm)):
        a = as_float64(np.reshape(x, -1) if np.ndim(x) == 0 else x, name, 1)
        if a.size == 0:
            raise InvalidArgumentError(f"{name} must hold at least one measurement")
        norms.append(a)
    small, big = norms
    bs = as_batch_size(small_batch, "small_batch")
    bb = as_batch_size(big_batch, "big_batch")
    out = _capi.sgdnoise_noise_scales()
    _lib.check(_c.sgdnoise_two_batch_noise_scale(small.size, small.ctypes.data, big.size, big.ctypes.data, bs, bb,
                                                 ctypes.byref(out)))
    return _from_scalars(out)


@overload
def critical_batch_view(b_noise: float, batch_sizes: float) -> float: ...


@overload
def critical_batch_view(b_noise: float, batch_sizes: npt.ArrayLike) -> float | npt.NDArray[np.float64]: ...


def critical_batch_view(b_noise: float, batch_sizes: npt.ArrayLike) -> float | npt.NDArray[np.float64]:
    r"""The fraction of the best per-step improvement that SGD with batch size :math:`B` achieves,

    .. math::

        \frac{\varepsilon_\text{opt}(B)}{\varepsilon_\max} = \frac{1}{1 + B_\text{noise}/B}

    (McCandlish et al. 2018, Eq. 2.7): about :math:`B/B_\text{noise}` for
    :math:`B \ll B_\text{noise}` (doubling the batch doubles the progress per step) and close to 1
    for :math:`B \gg B_\text{noise}` (more data per step is wasted).

    Parameters
    ----------
    b_noise : float
        The noise scale, finite and :math:`\ge 0` (``b_noise`` or ``b_simple`` of a
        :class:`NoiseScale`).
    batch_sizes : float or array_like
        Batch sizes :math:`B > 0` (need not be integers).

    Returns
    -------
    float or ndarray
        Of the shape of ``batch_sizes``.

    Raises
    ------
    InvalidArgumentError
        ``b_noise`` negative or non-finite; a batch size :math:`\le 0` or non-finite.

    Examples
    --------
    >>> import sgdnoise
    >>> sgdnoise.critical_batch_view(100.0, [10, 100, 1000]).round(6).tolist()
    [0.090909, 0.5, 0.909091]
    """
    b = as_scalar(b_noise, "b_noise")
    shape = np.shape(batch_sizes)
    flat = as_float64(np.reshape(batch_sizes, -1), "batch_sizes", 1)
    if flat.size == 0:
        raise InvalidArgumentError("batch_sizes must hold at least one batch size")
    out = np.empty(flat.size)
    _lib.check(_c.sgdnoise_critical_batch_view(b, flat.size, flat.ctypes.data, out.ctypes.data))
    return float(out[0]) if shape == () else out.reshape(shape)

