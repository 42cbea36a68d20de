r"""Real networks without dense matrices (docs/theory.md §8): Hessian eigenpairs from a
Hessian-vector product, and the stationary fluctuation of SGD at a minimum from that product and
the noise operator of per-sample gradients.

The Hessian and the noise arrive as products ``v -> H v`` and ``v -> C v`` (Python callables, a
:class:`NoiseOperator`, or small dense arrays); the numerics run in the library's core, which calls
them back. A callable that raises stops the computation cleanly and its exception propagates.
"""

from __future__ import annotations

import ctypes
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import numpy.typing as npt

from . import _capi, _lib
from ._arrays import as_scalar, ptr
from .errors import CancelledError, InvalidArgumentError
from .linearized import linearized_critical_learning_rate, linearized_features

__all__ = ["HessianEigen", "MeanDrift", "NetworkFluctuation", "hessian_eigen", "mean_drift", "network_drift",
           "network_fluctuation", "relaxation_steps"]

_lib_ = _lib.lib

Product = Callable[[npt.NDArray[np.float64]], npt.ArrayLike]
_WHICH = {"largest": _capi.SGDNOISE_SPECTRUM_END_LARGEST, "smallest": _capi.SGDNOISE_SPECTRUM_END_SMALLEST,
          "both": _capi.SGDNOISE_SPECTRUM_END_BOTH}


def _as_count(x: Any, name: str, minimum: int = 1) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or int(x) < minimum:
        raise InvalidArgumentError(f"{name} must be an integer >= {minimum}, got {x!r}")
    return int(x)


def _as_product(op: Any, dim: int, name: str) -> Product:
    """A product ``v -> A v`` from a callable, an object with ``matvec`` (or only ``matmat``: a
    block of one) or a dense (dim, dim) array."""
    if hasattr(op, "matvec"):
        return op.matvec
    if hasattr(op, "matmat"):
        return lambda v: op.matmat(v[:, None])
    if callable(op):
        return op
    a = np.asarray(op, dtype=np.float64)
    if a.shape != (dim, dim):
        raise InvalidArgumentError(f"{name} must be a callable v -> {name} v, an operator with matvec, "
                                   f"or a ({dim}, {dim}) array, got shape {a.shape}")
    return lambda v: a @ v


def _as_block_product(op: Any, dim: int, name: str) -> Callable[[npt.NDArray[np.float64]], Any]:
    """A block product ``V -> A V`` (V of shape (dim, b)) from an object with ``matmat`` (scipy's
    LinearOperator convention), or else from a single product applied to each column."""
    if hasattr(op, "matmat"):
        return op.matmat
    if not hasattr(op, "matvec") and not callable(op):
        a = np.asarray(op, dtype=np.float64)
        if a.shape == (dim, dim):
            return lambda v: a @ v
    single = _as_product(op, dim, name)
    return lambda v: np.stack([_checked(single, v[:, j], name) for j in range(v.shape[1])], axis=1)


def _checked(product: Product, x: npt.NDArray[np.float64], name: str) -> npt.NDArray[np.float64]:
    """``product(x)`` for x of shape (P,) or (P, count), as a float64 array of x's shape (a result
    with x's entries as one column or row is accepted for a (P,) input or a single column)."""
    y = np.asarray(product(x), dtype=np.float64)
    if y.shape != x.shape and y.size == x.size and (x.ndim == 1 or x.shape[1] == 1) and (
            y.ndim == 1 or (y.ndim == 2 and 1 in y.shape)):
        y = y.reshape(x.shape)
    if y.shape != x.shape:
        raise InvalidArgumentError(f"{name} returned shape {np.shape(y)}, expected {x.shape}")
    return y


class _Callback:
    """A Python product as an ``sgdnoise_matvec_callback``, or with ``block=True`` a block product
    ``V -> A V`` (V of shape (P, count), read-only) as an ``sgdnoise_block_matvec_callback``: the
    exception it raises (or a wrong shape) is kept and re-raised after the C call, which stops with
    SGDNOISE_STATUS_CANCELLED."""

    def __init__(self, product: Product, dim: int, name: str, block: bool = False):
        self.product, self.dim, self.name = product, dim, name
        self.error: BaseException | None = None
        self.calls = 0
        self.c = (_capi.sgdnoise_block_matvec_callback(self._call_block) if block
                  else _capi.sgdnoise_matvec_callback(self._call))

    def _call(self, _context: Any, d: int, v: int, out: int) -> int:
        return self._call_block(_context, d, 1, v, out, single=True)

    def _call_block(self, _context: Any, d: int, count: int, v: int, out: int, single: bool = False) -> int:
        try:
            self.calls += 1
            x = np.ctypeslib.as_array(ctypes.cast(v, ctypes.POINTER(ctypes.c_double)), shape=(count, d))
            x.flags.writeable = False  # the library's buffer, valid during this call only
            y = _checked(self.product, x[0] if single else x.T, self.name)
            np.ctypeslib.as_array(ctypes.cast(out, ctypes.POINTER(ctypes.c_double)), shape=(count, d))[:] = \
                y if single else y.T
            return 0
        except BaseException as exc:  # noqa: BLE001 - re-raised after the C call returns
            self.error = exc
            return 1


def _check(status: int, *callbacks: _Callback) -> None:
    if status == _lib.CANCELLED:
        for cb in callbacks:
            if cb.error is not None:
                try:
                    _lib.raise_for(status)
                except CancelledError as cancelled:
                    raise cb.error from cancelled
    _lib.check(status)


@dataclass(frozen=True)
class HessianEigen:
    """Eigenpairs of a Hessian known through its product (restarted Lanczos, docs/theory.md §8).

    Attributes
    ----------
    values : (k,) ndarray
        Descending for ``"largest"``, ascending for ``"smallest"``; for ``"both"`` the k largest
        (descending) then the k smallest (ascending).
    vectors : (P, k) ndarray
        Orthonormal eigenvectors as columns (as :func:`numpy.linalg.eigh` returns them).
    residuals : (k,) ndarray
        :math:`\\|H q - \\theta q\\|`, computed from products.
    converged : bool
        Every residual within the tolerance (False: the product budget ran out first).
    products : int
        Hessian-vector products used.
    """

    values: npt.NDArray[np.float64]
    vectors: npt.NDArray[np.float64]
    residuals: npt.NDArray[np.float64]
    converged: bool
    products: int


def hessian_eigen(hvp: Product | Any, dim: int, k: int = 10, *,
                  which: Literal["largest", "smallest", "both"] = "largest", tol: float = 1e-10,
                  max_products: int | None = None, seed: int = 0, verify: bool = True) -> HessianEigen:
    r"""The k algebraically largest and/or smallest eigenpairs of a Hessian from its product.

    Thick-restart Lanczos, reorthogonalised fully below P = 16384 and partially from there on
    (when an estimate of the lost orthogonality asks for it; docs/theory.md §8); converged when every
    :math:`\|Hq - \theta q\| \le` ``tol`` :math:`\cdot\max|\theta|`.

    Parameters
    ----------
    hvp : callable, operator with ``matvec``, or (P, P) array_like
        ``v -> H v`` for a float64 vector of length P; H symmetric.
    dim : int
        P.
    k : int
        Eigenpairs at each wanted end (k < P; 2k < P for ``"both"``).
    which : {"largest", "smallest", "both"}
    tol : float
    max_products : int, optional
        Budget of products (default: the library's).
    seed : int
        The random start vector's seed.
    verify : bool
        True (default): after convergence a verification cycle searches the complement of the
        converged vectors for a missed copy of a repeated eigenvalue, and every residual is
        recomputed with one more product. False: ARPACK's contract (``scipy.sparse.linalg.eigsh``)
        at its cost or less — stop when the Lanczos estimates converge; the residuals are those of
        the Lanczos relation (exact to rounding).

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> H = np.diag(np.arange(1.0, 101.0))
    >>> e = sgdnoise.hessian_eigen(lambda v: H @ v, 100, k=3)
    >>> np.round(e.values, 10).tolist(), e.converged
    ([100.0, 99.0, 98.0], True)
    """
    p = _as_count(dim, "dim")
    kk = _as_count(k, "k")
    if which not in _WHICH:
        raise InvalidArgumentError(f"which must be one of {sorted(_WHICH)}, got {which!r}")
    budget = 0 if max_products is None else _as_count(max_products, "max_products")
    count = 2 * kk if which == "both" else kk
    if count >= p:
        raise InvalidArgumentError(f"{'2k' if which == 'both' else 'k'} = {count} must be less than dim = {p}")
    cb = _Callback(_as_product(hvp, p, "hvp"), p, "hvp")
    values, vectors, residuals = np.empty(count), np.empty((count, p)), np.empty(count)
    info = _capi.sgdnoise_eigen_info()
    code = _WHICH[which] + (0 if verify else _capi.SGDNOISE_SPECTRUM_END_LARGEST_UNVERIFIED)
    status = _lib_.sgdnoise_hessian_eigen(p, cb.c, None, kk, code, as_scalar(tol, "tol"), budget,
                                          int(seed) & (2**64 - 1), ptr(values), ptr(vectors), ptr(residuals),
                                          ctypes.byref(info))
    _check(status, cb)
    return HessianEigen(values=values, vectors=vectors.T.copy(), residuals=residuals, converged=bool(info.converged),
                        products=int(info.products))


@dataclass(frozen=True)
class NetworkFluctuation:
    r"""The stationary fluctuation of SGD at a network's minimum, matrix-free (docs/theory.md §8).

    With :math:`\tilde H = \Lambda^{1/2} H \Lambda^{1/2}` (scalar :math:`\lambda`:
    :math:`\lambda H`), :math:`\tilde C = \Lambda^{1/2} C \Lambda^{1/2}`, its top-k eigenpairs
    :math:`(m_i, q_i)` and :math:`d_{ij} = (1-\mu)(m_i + m_j - m_im_j/(1+\mu)) + c_2(m_i-m_j)^2`.

    Attributes
    ----------
    top_eigenvalues, bottom_eigenvalues : (k,) ndarray
        The k largest (descending) and smallest (ascending) eigenvalues of :math:`\tilde H`;
        a negative bottom eigenvalue is negative curvature (no stationary state along it).
    top_eigenvectors : (P, k) ndarray
        :math:`q_i` as columns (the Hessian's eigenvectors for a scalar learning rate).
    fluctuation_block : (k, k) ndarray
        :math:`X_k`, :math:`(X_k)_{ij} = q_i^\top\tilde C q_j / d_{ij}`, exact for a constant noise
        (Theorem 1). For a scalar :math:`\lambda`, ``sigma_block`` :math:`= \lambda X_k` is the block
        :math:`Q_k^\top\Sigma Q_k` of the fluctuation on the top-k Hessian eigenvectors.
    sigma_block : (k, k) ndarray or None
        :math:`Q_k^\top\Sigma Q_k` for a scalar learning rate (None for a diagonal one).
    excess_loss, excess_loss_stderr : float
        :math:`\tfrac12\operatorname{Tr}[H\Sigma]` (top k exact, the rest from probes) and its
        standard error over the probes.
    top_trace_sigma : float
        :math:`\operatorname{Tr}\Sigma` on the top-k directions (exact).
    critical_learning_rate_additive : float
        :math:`2(1+\mu)/h_{max}` in learning-rate units: the edge for a constant noise.
    critical_learning_rate_multiplicative, critical_learning_rate_multiplicative_stderr : float or None
        The edge under Theorem 5's multiplicative noise over the whole spectrum (top k exact, the
        bulk from stochastic Lanczos quadrature), with its standard error; None without a batch size.
    hessian_products, noise_products : int
    max_residual : float
        The largest residual of the top eigenpairs.
    top_converged, bottom_converged : bool
        Whether the top eigenpairs met the tolerance, and whether the bottom ones converged within
        their budget (four Lanczos subspaces, or all of them when P ≤ 200: the bottom of a network's
        spectrum is a degenerate bulk
        near zero); unconverged bottom values are upper bounds, so a negative one still proves
        negative curvature.
    top_relaxation_steps, slowest_relaxation_steps : float
        Steps in which the mean relaxes by a factor e along the slowest top-k direction (the block
        of Σ is stationary after a few of these) and along the smallest bottom eigenvalue found
        (``inf`` when it is flat or negative: no stationary state there, the mean drifts —
        :func:`network_drift`). See :func:`relaxation_steps`.
    lr, momentum, batch_size
        The inputs.
    flat_directions : int
        How many bottom directions are flat (:math:`|m| \le 10^{-6} m_{max}`).
    flat_diffusion_per_step : float
        The noise entering them, :math:`\sum_b q_b^\top\tilde C q_b/(1-\mu)^2`: the growth per step of
        :math:`\operatorname{Tr} X` along them (for a scalar λ, times λ for Tr Σ): SGD random-walks
        there; 0 when no noise enters them.
    bottom_noise_trace : float
        :math:`\sum_b q_b^\top\tilde C q_b` over the k bottom eigenvectors.
    drift : MeanDrift or None
        The mean drift, when the adapters' ``analyze(..., drift_steps=...)`` computed it.
    critical_learning_rate_linearized : float or None
        The edge of the linearised network (noise model (iii) of docs/theory.md §8: §4.1 on the
        per-example output gradients, multiplicative noise exact), when ``features`` were given
        (:func:`sgdnoise.linearized_critical_learning_rate`); exact, no probe error.
    """

    top_eigenvalues: npt.NDArray[np.float64]
    top_eigenvectors: npt.NDArray[np.float64]
    bottom_eigenvalues: npt.NDArray[np.float64]
    fluctuation_block: npt.NDArray[np.float64]
    sigma_block: npt.NDArray[np.float64] | None
    excess_loss: float
    excess_loss_stderr: float
    top_trace_sigma: float
    critical_learning_rate_additive: float
    critical_learning_rate_multiplicative: float | None
    critical_learning_rate_multiplicative_stderr: float | None
    hessian_products: int
    noise_products: int
    max_residual: float
    top_converged: bool
    bottom_converged: bool
    top_relaxation_steps: float
    slowest_relaxation_steps: float
    flat_directions: int
    flat_diffusion_per_step: float
    bottom_noise_trace: float
    lr: Any
    momentum: float
    batch_size: int | None
    drift: MeanDrift | None = None
    critical_learning_rate_linearized: float | None = None

    def summary(self) -> str:
        """A readable report of the prediction and of the regime in which it was shown to hold."""
        k = self.top_eigenvalues.size
        lines = [
            f"SGD at a minimum, matrix-free (k = {k}, {self.hessian_products} Hessian and "
            f"{self.noise_products} noise products; largest eigenpair residual {self.max_residual:.1e})",
            "  top eigenvalues of the preconditioned Hessian: "
            + ", ".join(f"{m:.4g}" for m in self.top_eigenvalues[:5]) + (" ..." if k > 5 else ""),
            f"  excess training loss 1/2 Tr[H Sigma] = {self.excess_loss:.4g} +- {self.excess_loss_stderr:.2g}",
            f"  Tr Sigma on the top {k} directions   = {self.top_trace_sigma:.4g}",
            f"  critical learning rate, constant noise (2(1+mu)/h_max) = {self.critical_learning_rate_additive:.6g}",
        ]
        if self.critical_learning_rate_multiplicative is not None:
            lines.append(f"  critical learning rate, Thm 5 noise (whole spectrum)   = "
                         f"{self.critical_learning_rate_multiplicative:.6g} +- "
                         f"{self.critical_learning_rate_multiplicative_stderr:.2g}")
        if self.critical_learning_rate_linearized is not None:
            lines.append(f"  critical learning rate, linearised network (exact)     = "
                         f"{self.critical_learning_rate_linearized:.6g}")
        negative = self.bottom_eigenvalues[self.bottom_eigenvalues < -1e-6 * self.top_eigenvalues[0]]
        if not self.top_converged:
            lines.append("  WARNING: the top eigenpairs did not reach the tolerance (noisy products?)")
        if negative.size:
            lines.append(f"  NEGATIVE CURVATURE: {negative.size} eigenvalue(s) down to {negative.min():.3g}: "
                         "no stationary state along those directions")
        # The unit of the measurements: c = lr h_max / (2(1 - mu)), the effective rate lr/(1 - mu)
        # against gradient descent's edge 2/h_max (experiments/real_network).
        c = self.top_eigenvalues[0] / (2 * (1 - self.momentum))
        lines.append(f"  Regime: c = lr h_max/(2(1-mu)) = {c:.2g}. The block, the excess loss and Tr Sigma assume\n"
                     "  the noise stays C(w*) (Theorem 1, exact for a constant C). Measured on a real network\n"
                     "  (experiments/real_network): within a few % up to c = 0.05; 12-27 % low at c = 0.4,\n"
                     "  where the multiplicative noise matters; not valid at a regularised minimum at large lr,\n"
                     "  where SGD drifts. For the edge use the multiplicative or the linearised critical learning\n"
                     "  rate, not the constant-noise one: at an unregularised minimum both lay between where SGD\n"
                     "  stopped being stationary and its first divergences (0.85-0.93 of 2/h_max; 0.11-0.13 of\n"
                     "  2(1+mu)/h_max at mu = 0.9); at a regularised one SGD drifted away and diverged only 3-7x\n"
                     "  above them.")
        if self.critical_learning_rate_multiplicative is not None and np.ndim(self.lr) == 0 \
                and float(self.lr) >= self.critical_learning_rate_multiplicative:
            lines.append("  WARNING: lr is past the multiplicative critical learning rate: with Thm 5's noise SGD has no\n"
                         "  stationary state here (measured on a real network: it leaves the minimum).")
        if self.critical_learning_rate_linearized is not None and np.ndim(self.lr) == 0 \
                and float(self.lr) >= self.critical_learning_rate_linearized:
            lines.append("  WARNING: lr is past the linearised network's critical learning rate.")
        if c > 0.1:
            lines.append("  WARNING: beyond c = 0.1 the constant-noise prediction was not shown to hold.")
        slowest = ("never relaxes (flat or negative curvature: the mean drifts there, see network_drift)"
                   if not np.isfinite(self.slowest_relaxation_steps)
                   else f"relaxes in {self.slowest_relaxation_steps:.3g} steps")
        lines.append(f"  Relaxation: the top-{k} block is stationary after a few times {self.top_relaxation_steps:.3g} "
                     f"steps;\n  the slowest direction found {slowest}.")
        if self.flat_directions:
            scale = float(self.lr) if np.ndim(self.lr) == 0 else 1.0
            lines.append(f"  Flat directions: {self.flat_directions} of the {k} lowest found; the noise entering them "
                         + ("is zero: no random walk there." if self.flat_diffusion_per_step == 0 else
                            f"makes Tr Sigma grow by {scale * self.flat_diffusion_per_step:.3g} per step along them "
                            "(a random walk, no stationary state)."))
        if self.drift is not None:
            d = self.drift
            norms = ", ".join(f"{n:.3g} (t = {t})" for t, n in zip(d.steps, d.displacement_norms))
            share = d.excess_loss_covered / self.excess_loss if self.excess_loss > 0 else float("nan")
            lines.append(f"  Mean drift |E[w_t - w*]| (second order, driven by the top-{k} block, {share:.0%} of the "
                         f"excess loss):\n    {norms}; compare sqrt(Tr Sigma_top) = {np.sqrt(self.top_trace_sigma):.3g}")
        return "\n".join(lines)


def network_fluctuation(hvp: Product | Any, noise: Product | Any, dim: int, *, lr: float | npt.ArrayLike,
                        momentum: float = 0.0, k: int = 10, probes: int = 30, steps: int = 40,
                        batch_size: int | None = None, tol: float = 1e-8, seed: int = 0,
                        block_size: int = 8, features: npt.ArrayLike | None = None, weight_decay: float = 0.0,
                        replacement: bool = True) -> NetworkFluctuation:
    r"""The stationary fluctuation of SGD at a minimum of a network, from products only.

    Lanczos for the top-k (and bottom-k) eigenpairs of :math:`\tilde H`; the exact k x k block of
    Σ on the top-k eigenvectors from k noise products (Theorem 1 is diagonal in :math:`\tilde H`'s
    eigenbasis); the excess loss :math:`\tfrac12\operatorname{Tr}[H\Sigma] =
    \tfrac12\operatorname{Tr}[g(\tilde H)\tilde C]`, :math:`g(m) = 1/((1-\mu)(2 - m/(1+\mu)))`, with
    the top k exact and ``probes`` deflated Hutchinson probes (Krylov :math:`g(\tilde H) z`) for the
    rest; the critical learning rates of a constant noise and, given ``batch_size``, of Theorem 5's
    multiplicative noise over the whole spectrum (docs/theory.md §8), its spectral density from the
    same probes (each Krylov space then run to ``steps`` products). Memory
    :math:`O((k + \text{steps}) P)`; never a :math:`P \times P` matrix.

    **Block products.** When ``hvp`` has ``matmat`` (scipy's ``LinearOperator`` convention:
    ``V`` of shape (P, b) to ``H V``, as the JAX and torch adapters' ``HessianProduct`` has it), the
    probes advance ``block_size`` at a time in lockstep with one ``matmat`` of their vectors per
    step (far cheaper than b separate products for a vectorised HVP), and the noise products come as
    blocks too (``noise.matmat``, else ``noise`` column by column); the eigenpairs take blocks of one.
    The result equals that of the single products to rounding (exactly, when ``matmat`` gives each
    column the bits of ``matvec``); memory :math:`O((k + \text{block\_size}\cdot\text{steps}) P)`;
    ``hessian_products`` counts vectors.

    Parameters
    ----------
    hvp : callable, operator with ``matvec`` or ``matmat``, or (P, P) array_like
        ``v -> H v`` at the minimum (with ``matmat``: ``V -> H V`` for V of shape (P, b)).
    noise : callable, :class:`NoiseOperator`, or (P, P) array_like
        ``v -> C v``, C the minibatch noise covariance at the minimum (e.g.
        ``sgdnoise.noise_operator(per_sample_grads, batch_size)``).
    dim : int
        P.
    lr : float or (P,) array_like
        A scalar :math:`\lambda`, or the diagonal of a preconditioner :math:`\Lambda` (then the
        critical learning rates are multiples of that diagonal).
    momentum : float
    k, probes, steps : int
        Eigenpairs at each end (2k < P), Rademacher probes (≥ 2), Lanczos steps per probe.
    batch_size : int, optional
        S, for the multiplicative critical learning rate.
    tol : float
        Relative residual tolerance of the eigenpairs.
    seed : int
    block_size : int
        The most vectors per ``matmat`` call (≥ 1), used when ``hvp`` has ``matmat``.
    features : (N, P) array_like, optional
        The linearised network's features (:func:`sgdnoise.linearized_features`: per-example output
        gradients times √ℓ''), for models small enough: adds its exact critical learning rate
        (needs ``batch_size``; costs a dense §4.1 solve on the range of the features).
    weight_decay : float
        γ inside ``hvp`` (its Hessian γI), used only with ``features``.
    replacement : bool
        The sampling of the minibatches, used only with ``features`` (the noise operator has its own).

    Raises
    ------
    UnstableError
        When :math:`m_{max} \ge 2(1+\mu)` (carries the additive critical learning rate).
    """
    p = _as_count(dim, "dim")
    kk = _as_count(k, "k")
    nprobes = _as_count(probes, "probes", 2)
    nsteps = _as_count(steps, "steps")
    if 2 * kk >= p:
        raise InvalidArgumentError(f"2k = {2 * kk} must be less than dim = {p}")
    s = 0 if batch_size is None else _as_count(batch_size, "batch_size")
    if features is not None:
        if s == 0:
            raise InvalidArgumentError("features need batch_size: the linearised network's critical learning rate "
                                       "depends on S")
        features = linearized_features(features)
        if features.shape[1] != p:
            raise InvalidArgumentError(f"features must have dim = {p} columns, got shape {features.shape}")
    block = hasattr(hvp, "matmat")
    if block:
        width = _as_count(block_size, "block_size")
        h_cb = _Callback(hvp.matmat, p, "hvp", block=True)
        c_cb = _Callback(_as_block_product(noise, p, "noise"), p, "noise", block=True)
    else:
        h_cb = _Callback(_as_product(hvp, p, "hvp"), p, "hvp")
        c_cb = _Callback(_as_product(noise, p, "noise"), p, "noise")
    if np.ndim(lr) == 0:
        scale, diagonal = as_scalar(lr, "lr"), None
    else:
        diagonal = np.ascontiguousarray(lr, dtype=np.float64)
        if diagonal.shape != (p,):
            raise InvalidArgumentError(f"lr must be a scalar or the {p} diagonal entries of a preconditioner, "
                                       f"got shape {diagonal.shape}")
        scale = 1.0
    top, vectors, bottom = np.empty(kk), np.empty((kk, p)), np.empty(kk)
    fluctuation = np.empty((kk, kk))
    summary = _capi.sgdnoise_network_summary()
    operators = (p, h_cb.c, None, c_cb.c, None) + ((width,) if block else ())
    status = (_lib_.sgdnoise_network_fluctuation_block if block else _lib_.sgdnoise_network_fluctuation)(
        *operators, scale, ptr(diagonal), as_scalar(momentum, "momentum"), kk, nprobes, nsteps,
        s, as_scalar(tol, "tol"), int(seed) & (2**64 - 1), ptr(top), ptr(vectors), ptr(bottom), ptr(fluctuation),
        ctypes.byref(summary))
    _check(status, h_cb, c_cb)
    multiplicative = None if s == 0 else float(summary.critical_learning_rate_multiplicative)
    linearized = None if features is None else linearized_critical_learning_rate(
        features, s, lr=None if diagonal is None else diagonal, weight_decay=weight_decay, momentum=momentum,
        replacement=replacement)
    return NetworkFluctuation(
        top_eigenvalues=top, top_eigenvectors=vectors.T.copy(), bottom_eigenvalues=bottom,
        fluctuation_block=fluctuation, sigma_block=None if diagonal is not None else scale * fluctuation,
        excess_loss=float(summary.excess_loss), excess_loss_stderr=float(summary.excess_loss_stderr),
        top_trace_sigma=float(summary.top_trace_sigma),
        critical_learning_rate_additive=float(summary.critical_learning_rate_additive),
        critical_learning_rate_multiplicative=multiplicative,
        critical_learning_rate_multiplicative_stderr=None if s == 0 else
        float(summary.critical_learning_rate_multiplicative_stderr),
        hessian_products=int(summary.hessian_products), noise_products=int(summary.noise_products),
        max_residual=float(summary.max_residual), top_converged=bool(summary.top_converged),
        bottom_converged=bool(summary.bottom_converged), top_relaxation_steps=float(summary.top_relaxation_steps),
        slowest_relaxation_steps=float(summary.slowest_relaxation_steps),
        flat_directions=int(summary.flat_directions), flat_diffusion_per_step=float(summary.flat_diffusion_per_step),
        bottom_noise_trace=float(summary.bottom_noise_trace), lr=lr, momentum=float(momentum),
        batch_size=batch_size, critical_learning_rate_linearized=linearized)


def relaxation_steps(curvature: float, momentum: float = 0.0) -> float:
    r"""Steps in which the mean of SGD relaxes by a factor e along a direction of curvature
    ``curvature`` :math:`= \lambda h` (docs/theory.md §8): :math:`-1/\ln\rho`, with :math:`\rho` the
    spectral radius of the mean recursion's map :math:`[[\mu, x], [-\mu, 1-x]]`; ``inf`` for a
    flat, negative or unstable direction. Second moments relax twice as fast.

    >>> round(relaxation_steps(0.01), 2)
    99.5
    """
    out = ctypes.c_double()
    _lib.check(_lib_.sgdnoise_relaxation_steps(as_scalar(curvature, "curvature"), as_scalar(momentum, "momentum"),
                                               ctypes.byref(out)))
    return float(out.value)


@dataclass(frozen=True)
class MeanDrift:
    r"""The mean of SGD's iterates moved by its own fluctuation (docs/theory.md §8, "Drift").

    At second order the mean follows the gradient of :math:`L(w) + \tfrac12\operatorname{Tr}[H(w)\Sigma]`
    with Σ fixed: a constant force :math:`\tfrac12 g`, :math:`g = \nabla_w\operatorname{Tr}[H(w)\Sigma]`
    at :math:`w^*`. With momentum, along an eigendirection of curvature h,
    :math:`E[w_t - w^*] = -\tfrac{\lambda}{2}\psi_t(\lambda h)\,g` (:math:`\psi_t(x) = (1-(1-x)^t)/x` at
    :math:`\mu = 0`): stiff directions settle at :math:`-\tfrac12 H^{-1}g`, flat ones drift by
    :math:`\tfrac{\lambda}{2(1-\mu)}g` per step without end.

    Attributes
    ----------
    gradient : (P,) ndarray
        g.
    excess_loss_covered : float
        :math:`\tfrac12\operatorname{Tr}[H\Sigma]` of the Σ used (compare with the whole excess loss:
        only that part of Σ drives this drift).
    steps : (n,) ndarray of int
    displacements : (n, P) ndarray
        :math:`E[w_t - w^*]` at each step.
    eigenvector_displacements : (n, k) ndarray
        The same on the given eigenvectors.
    offsets : (k,) ndarray
        The stationary offsets :math:`-\tfrac12 q_i^\top g/h_i` (NaN where :math:`h_i \le 0`).
    converged : bool
        Whether the Krylov part met its tolerance.
    hessian_products, curvature_gradient_products : int
    lr, momentum : float
    """

    gradient: npt.NDArray[np.float64]
    excess_loss_covered: float
    steps: npt.NDArray[np.int64]
    displacements: npt.NDArray[np.float64]
    eigenvector_displacements: npt.NDArray[np.float64]
    offsets: npt.NDArray[np.float64]
    converged: bool
    hessian_products: int
    curvature_gradient_products: int
    lr: float
    momentum: float

    @property
    def displacement_norms(self) -> npt.NDArray[np.float64]:
        r""":math:`\|E[w_t - w^*]\|` at each step."""
        return np.linalg.norm(self.displacements, axis=1)


def mean_drift(hvp: Product | Any, curvature_gradient: Product, dim: int, eigenvalues: npt.ArrayLike,
               eigenvectors: npt.ArrayLike, sigma_block: npt.ArrayLike, *, lr: float, momentum: float = 0.0,
               steps: Any, krylov_steps: int = 60) -> MeanDrift:
    r"""The mean displacement :math:`E[w_t - w^*]` of SGD driven by its fluctuation (see :class:`MeanDrift`).

    Σ is given on eigenvectors of H: ``eigenvectors`` (P, k) orthonormal columns with
    ``eigenvalues`` (k,), and ``sigma_block`` :math:`= Q^\top\Sigma Q` (k, k) — the top-k block of
    :func:`network_fluctuation` (:func:`network_drift` does this), or for a small model the whole
    Σ in H's eigenbasis (k = P). The part of g outside span Q is handled by a Krylov method
    (``krylov_steps`` Hessian-vector products at most, shared by all steps).

    Parameters
    ----------
    hvp : callable, operator with ``matvec``, or (P, P) array_like
        ``v -> H v`` at :math:`w^*`.
    curvature_gradient : callable
        ``v -> grad_w (v^T H(w) v)`` at :math:`w^*` (the third derivative contracted twice; the
        adapters' ``curvature_gradient`` builds it).
    dim : int
    eigenvalues, eigenvectors, sigma_block : array_like
    lr, momentum : float
        A scalar learning rate and the momentum.
    steps : int or sequence of int
        The steps t ≥ 0 at which the mean is wanted.
    krylov_steps : int
    """
    p = _as_count(dim, "dim")
    h = np.ascontiguousarray(np.atleast_1d(np.asarray(eigenvalues, dtype=np.float64)))
    kk = h.size
    q = np.asarray(eigenvectors, dtype=np.float64)
    if q.shape != (p, kk):
        raise InvalidArgumentError(f"eigenvectors must have shape ({p}, {kk}) (one column per eigenvalue), got {q.shape}")
    rows = np.ascontiguousarray(q.T)
    block = np.ascontiguousarray(sigma_block, dtype=np.float64)
    if block.shape != (kk, kk):
        raise InvalidArgumentError(f"sigma_block must have shape ({kk}, {kk}), got {block.shape}")
    t = np.atleast_1d(np.asarray(steps))
    if t.ndim != 1 or t.size == 0 or t.dtype.kind not in "iu" or (t < 0).any():
        raise InvalidArgumentError(f"steps must be a step t >= 0 or a non-empty list of them, got {steps!r}")
    t = np.ascontiguousarray(t, dtype=np.int64)
    h_cb = _Callback(_as_product(hvp, p, "hvp"), p, "hvp")
    g_cb = _Callback(curvature_gradient, p, "curvature_gradient")
    gradient, displacements = np.empty(p), np.empty((t.size, p))
    along, offsets = np.empty((t.size, kk)), np.empty(kk)
    summary = _capi.sgdnoise_drift_summary()
    status = _lib_.sgdnoise_mean_drift(
        p, h_cb.c, None, g_cb.c, None, kk, ptr(h), ptr(rows), ptr(block), as_scalar(lr, "lr"),
        as_scalar(momentum, "momentum"), t.size, t.ctypes.data, _as_count(krylov_steps, "krylov_steps"),
        ptr(gradient), ptr(displacements), ptr(along), ptr(offsets), ctypes.byref(summary))
    _check(status, h_cb, g_cb)
    return MeanDrift(gradient=gradient, excess_loss_covered=float(summary.excess_loss_covered), steps=t,
                     displacements=displacements, eigenvector_displacements=along, offsets=offsets,
                     converged=bool(summary.converged), hessian_products=int(summary.hessian_products),
                     curvature_gradient_products=int(summary.curvature_gradient_products), lr=float(lr),
                     momentum=float(momentum))


def network_drift(result: NetworkFluctuation, hvp: Product | Any, curvature_gradient: Product, *, steps: Any,
                  krylov_steps: int = 60) -> MeanDrift:
    r"""The mean drift driven by the top-k block of Σ that :func:`network_fluctuation` computed
    (scalar learning rate): :func:`mean_drift` with the Hessian's top-k eigenpairs
    :math:`(m_i/\lambda, q_i)` and ``result.sigma_block``. Only that block drives it:
    ``excess_loss_covered`` against ``result.excess_loss`` says how much of Σ's loss that is.
    """
    if result.sigma_block is None:
        raise InvalidArgumentError("network_drift needs a scalar learning rate (the result has a diagonal one)")
    lr = float(result.lr)
    return mean_drift(hvp, curvature_gradient, result.top_eigenvectors.shape[0], result.top_eigenvalues / lr,
                      result.top_eigenvectors, result.sigma_block, lr=lr, momentum=result.momentum, steps=steps,
                      krylov_steps=krylov_steps)


def with_drift(result: NetworkFluctuation, hessian: Any, steps: Any) -> NetworkFluctuation:
    """``result`` with its mean drift at ``steps`` (the adapters' ``analyze(drift_steps=...)``):
    ``hessian`` is an adapter's Hessian product, which also has ``curvature_gradient``."""
    if steps is None:
        return result
    return dataclasses.replace(result, drift=network_drift(result, hessian, hessian.curvature_gradient, steps=steps))
