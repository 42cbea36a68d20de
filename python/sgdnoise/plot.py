r"""The paper's figures, drawn from the library: exact theory, approximations and simulation.

Each ``fig*`` function computes its figure from any parameters (the defaults are the paper's,
docs/theory.md §7) with the library's closed forms and its Monte-Carlo SGD simulator, draws it
with matplotlib and returns the :class:`matplotlib.figure.Figure`. The matching ``*_data``
functions return the numbers alone (dicts of numpy arrays), for tables or other plotting tools.
matplotlib is needed only for drawing and is imported on first use.

Every number comes from the library: its closed forms (``label_noise``, ``tail_index``, ...) and
its simulator, never from a re-implementation here. The files that ``sgdnoise-cli reproduce
all --json`` writes hold the same figures computed by the library's core (including the far-tail
samples of Fig. 2, which the Python API does not expose): :func:`read_reproduced` loads them in the
shape of the ``*_data`` functions, and every figure function draws them (``data=``).

Conventions in every figure: solid lines are the exact theory, dashed the continuous-time
approximation [Eq. 7], dotted the discrete-time Hessian approximation (Liu et al. 2021); filled
markers are simulations with error bars of one standard error, hollow markers simulations whose
Hill tail index is at most 4 (``SimulationResult.tail_unreliable``: heavy tail, the error bar is
not trustworthy).

Examples
--------
>>> import sgdnoise.plot as sp                                       # doctest: +SKIP
>>> fig = sp.fig4a()                                                 # doctest: +SKIP
>>> fig.savefig("fig4a.png")                                         # doctest: +SKIP
>>> sp.save_all("figures")                                           # doctest: +SKIP

References
----------
Ziyin, Liu, Mori, Ueda, "Strength of Minibatch Noise in SGD", ICLR 2022, Figures 2, 3 and 4.
"""

from __future__ import annotations

import json
import math
import os
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from .dynamics import LearningCurve, ScheduledSimulation
from .network import NetworkFluctuation
from .models import continuous_time, discrete_hessian, l2_regularized, label_noise
from .simulation import SimulationResult
from .simulation import simulate as _run_simulation
from .stability import (critical_learning_rate, l2_test_loss_curve, optimal_weight_decay, smallest_stable_batch_size,
                        stable_weight_decay_interval, tail_index)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

__all__ = [
    "fig4a",
    "fig4_ellipses",
    "fig3_batch",
    "fig3_weight_decay",
    "fig2_tail",
    "save_all",
    "fig4a_data",
    "fig4_ellipses_data",
    "fig3_batch_data",
    "fig3_weight_decay_data",
    "fig2_tail_data",
    "read_reproduced",
    "network",
    "network_data",
    "learning_curve",
]

# Colours: one per curve kind, the same in every figure.
_EXACT, _CONT, _DISC, _SIM = "#1f4e9c", "#d95f02", "#1b9e77", "#111111"
_PALETTE = ["#1f4e9c", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e"]


def _line2d() -> type[Line2D]:
    from matplotlib.lines import Line2D  # noqa: PLC0415

    return Line2D


def _pyplot() -> ModuleType:
    """matplotlib.pyplot, imported on first use with a clear message when it is missing."""
    try:
        import matplotlib  # noqa: PLC0415

        if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "sgdnoise.plot needs matplotlib, which is not installed: pip install matplotlib "
            "(the numbers alone are available from the *_data functions without it)"
        ) from exc
    return plt


def _axes(ax: Axes | Sequence[Axes] | None, ncols: int = 1, width: float = 5.2, height: float = 4.0
          ) -> tuple[Figure, list[Axes]]:
    """The figure and a list of ``ncols`` axes: new ones, or the given ``ax`` (one or a sequence)."""
    plt = _pyplot()
    if ax is None:
        fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
        return fig, list(axes[0])
    axes = list(np.atleast_1d(ax))  # type: ignore[arg-type]  # one Axes or a sequence of them
    if len(axes) != ncols:
        raise ValueError(f"ax must hold {ncols} axes for this figure, got {len(axes)}")
    return axes[0].figure, axes


def _simulate_label_noise(spectrum: npt.ArrayLike, noise_var: float, lr: float, batch_size: int, steps: int,
                          chains: int, seed: int) -> SimulationResult:
    return _run_simulation(np.asarray(spectrum, dtype=float), noise_var=noise_var, lr=lr, batch_size=batch_size,
                    steps=steps, chains=chains, seed=seed, progress=False)


def _sim_points(ax: Axes, x: npt.ArrayLike, y: npt.ArrayLike, err: npt.ArrayLike, unreliable: npt.ArrayLike,
                label: str = "simulation", color: str = _SIM) -> None:
    """Simulated points: filled where reliable, hollow where the simulator flags a heavy tail."""
    x, y, err, unreliable = map(np.asarray, (x, y, err, unreliable))
    if x.size == 0:
        return
    unreliable = unreliable.astype(bool)
    good = ~unreliable
    if good.any():
        ax.errorbar(x[good], y[good], yerr=err[good], fmt="o", color=color, ms=5, capsize=2, label=label, zorder=5)
    if unreliable.any():
        ax.errorbar(x[unreliable], y[unreliable], yerr=err[unreliable], fmt="o", mfc="white", mec=color,
                    color=color, ms=5, capsize=2, zorder=5,
                    label=f"{label} (heavy tail: Hill ≤ 4)")


# ------------------------------------------------------------------------------------------------
# Figure 4a: Σ versus λ
# ------------------------------------------------------------------------------------------------

def fig4a_data(*, a: float = 1.0, batch_size: int = 10, noise_var: float = 1.0, n_curve: int = 200,
               sim_fractions: Sequence[float] | None = None, steps: int = 200_000, chains: int = 4, seed: int = 0,
               simulate: bool = True) -> dict[str, Any]:
    r"""Numbers of Fig. 4a: Σ of 1-d label-noise SGD versus λ up to the critical :math:`\lambda^*`.

    Parameters
    ----------
    a, batch_size, noise_var : float, int, float
        Curvature, batch size and label-noise variance (the paper: 1, 10, 1).
    n_curve : int
        Points of the theory curves on :math:`(0, \lambda^*)`.
    sim_fractions : sequence of float, optional
        Simulated learning rates as fractions of :math:`\lambda^*` (default 0.1, 0.2, ..., 0.9: well
        inside the stable region, where a sample variance converges).
    steps, chains, seed : int
        Simulation budget per point; ``simulate=False`` skips the simulation.

    Returns
    -------
    dict
        ``critical_learning_rate``; ``lr``, ``exact``, ``continuous_time``, ``discrete_hessian``
        (curves); ``sim`` with ``lr``, ``sigma``, ``stderr``, ``tail_index``, ``tail_unreliable``.
    """
    lc = critical_learning_rate([a], batch_size)
    lrs = lc * np.linspace(0.004, 0.996, n_curve)
    exact = np.array([label_noise([a], noise_var, lr, batch_size).sigma[0] for lr in lrs])
    cont = np.array([continuous_time([a], noise_var, lr, batch_size)[0] for lr in lrs])
    disc = np.array([discrete_hessian([a], noise_var, lr, batch_size)[0] for lr in lrs])
    fractions = np.arange(1, 10) / 10 if sim_fractions is None else np.asarray(sim_fractions, dtype=float)
    sim: dict[str, list[Any]] = {k: [] for k in ("lr", "sigma", "stderr", "tail_index", "tail_unreliable")}
    if simulate:
        for i, f in enumerate(fractions):
            r = _simulate_label_noise([a], noise_var, f * lc, batch_size, steps, chains, seed + i)
            if r.diverged:
                continue
            sim["lr"].append(f * lc)
            sim["sigma"].append(r.sigma[0, 0])
            sim["stderr"].append(r.sigma_stderr[0, 0])
            sim["tail_index"].append(r.tail_index)
            sim["tail_unreliable"].append(r.tail_unreliable)
    return {"critical_learning_rate": lc, "lr": lrs, "exact": exact, "continuous_time": cont,
            "discrete_hessian": disc, "sim": {k: np.asarray(v) for k, v in sim.items()},
            "parameters": {"a": a, "batch_size": batch_size, "noise_var": noise_var}}


def fig4a(ax: Axes | Sequence[Axes] | None = None, *, a: float = 1.0, batch_size: int = 10, noise_var: float = 1.0,
          steps: int = 200_000, chains: int = 4, seed: int = 0, simulate: bool = True,
          data: dict[str, Any] | None = None) -> Figure:
    r"""Fig. 4a: Σ versus the learning rate for 1-d linear regression with label noise.

    Exact theory [Thm 2] against continuous time :math:`\lambda\sigma^2/2S` and the discrete-time
    Hessian approximation :math:`\lambda\sigma^2/(S(2-\lambda a))`, with simulations; the exact Σ
    diverges at :math:`\lambda^*`, where the approximations stay finite. Log scale in Σ.

    Parameters
    ----------
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).
    a, batch_size, noise_var, steps, chains, seed, simulate
        As in :func:`fig4a_data`.
    data : dict, optional
        A result of :func:`fig4a_data` to draw instead of computing one.

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = data or fig4a_data(a=a, batch_size=batch_size, noise_var=noise_var, steps=steps, chains=chains, seed=seed,
                           simulate=simulate)
    fig, (ax,) = _axes(ax)
    p = d["parameters"]
    ax.plot(d["lr"], d["exact"], "-", color=_EXACT, lw=2, label="exact (Thm 2)")
    ax.plot(d["lr"], d["continuous_time"], "--", color=_CONT, lw=1.6, label="continuous time [Eq. 7]")
    ax.plot(d["lr"], d["discrete_hessian"], ":", color=_DISC, lw=2, label="discrete time, Hessian noise")
    s = d["sim"]
    _sim_points(ax, s["lr"], s["sigma"], s["stderr"], s["tail_unreliable"])
    lc = d["critical_learning_rate"]
    ax.axvline(lc, color="0.5", lw=1, ls="-.")
    ax.text(lc * 0.985, 0.03, r"$\lambda^*$" + f" = {lc:.4g}", transform=ax.get_xaxis_transform(), ha="right",
            va="bottom", color="0.3")
    ax.set_yscale("log")
    ax.set_xlim(0, lc * 1.04)
    top = np.nanmax(d["exact"])
    ax.set_ylim(np.nanmin(d["continuous_time"]) * 0.7, top * 1.5)
    ax.set_xlabel(r"learning rate $\lambda$")
    ax.set_ylabel(r"fluctuation $\Sigma = \mathrm{Var}(w)$")
    ax.set_title(f"Fig. 4a: 1-d label noise, a = {p['a']:g}, S = {p['batch_size']}, σ² = {p['noise_var']:g}")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3, which="both")
    return fig


# ------------------------------------------------------------------------------------------------
# Figures 4b and 4c: the 2-d fluctuation ellipses
# ------------------------------------------------------------------------------------------------

def fig4_ellipses_data(*, spectrum: npt.ArrayLike = (1.0, 0.5), lr: float = 1.5, batch_sizes: Sequence[int] = (50, 10),
                       noise_var: float = 1.0, steps: int = 200_000, chains: int = 4, seed: int = 0,
                       simulate: bool = True) -> list[dict[str, Any]]:
    r"""Numbers of Fig. 4b/4c: the 2-d stationary Σ (Hessian eigenvalues ``spectrum``) at one λ.

    Returns
    -------
    list of dict
        One per batch size: ``batch_size``, ``critical_learning_rate``, ``stable``, ``exact``,
        ``continuous_time``, ``discrete_hessian`` (each a (2, 2) array), ``sim``
        (``sigma``, ``stderr``, ``tail_index``, ``tail_unreliable``, or None).
    """
    spec = np.asarray(spectrum, dtype=float)
    out = []
    for i, s in enumerate(batch_sizes):
        lc = critical_learning_rate(spec, s)
        entry = {"batch_size": s, "lr": lr, "critical_learning_rate": lc, "stable": lr < lc, "spectrum": spec}
        if lr < lc:
            entry["exact"] = np.diag(label_noise(spec, noise_var, lr, s).sigma)
        entry["continuous_time"] = np.diag(continuous_time(spec, noise_var, lr, s))
        entry["discrete_hessian"] = np.diag(discrete_hessian(spec, noise_var, lr, s)) if lr * spec.max() < 2 else None
        entry["sim"] = None
        if simulate and lr < lc:
            r = _simulate_label_noise(spec, noise_var, lr, s, steps, chains, seed + i)
            if not r.diverged:
                entry["sim"] = {"sigma": r.sigma, "stderr": r.sigma_stderr, "tail_index": r.tail_index,
                                "tail_unreliable": r.tail_unreliable}
        out.append(entry)
    return out


def _ellipse(sigma: npt.ArrayLike, n: int = 200) -> npt.NDArray[np.float64]:
    """The one-standard-deviation contour {x : xᵀΣ⁻¹x = 1} of a 2×2 covariance."""
    values, vectors = np.linalg.eigh(np.asarray(sigma, dtype=float))
    t = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)])
    return vectors @ (np.sqrt(np.maximum(values, 0))[:, None] * circle)


def fig4_ellipses(ax: Axes | Sequence[Axes] | None = None, *, spectrum: npt.ArrayLike = (1.0, 0.5), lr: float = 1.5,
                  batch_sizes: Sequence[int] = (50, 10), noise_var: float = 1.0, steps: int = 200_000,
                  chains: int = 4, seed: int = 0, simulate: bool = True,
                  data: list[dict[str, Any]] | None = None) -> Figure:
    r"""Fig. 4b/4c: one-standard-deviation ellipses of the 2-d stationary fluctuation Σ.

    One panel per batch size (the paper: S = 50 and S = 10 at λ = 1.5, Hessian eigenvalues 1 and
    0.5; both are stable — the panel titles give :math:`\lambda/\lambda^*`). Exact theory against
    the two approximations and the simulated covariance. Continuous time predicts a circle.

    Parameters
    ----------
    ax : sequence of matplotlib Axes, optional
        One per batch size (default: a new figure).
    data : list of dict, optional
        A result of :func:`fig4_ellipses_data`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = data or fig4_ellipses_data(spectrum=spectrum, lr=lr, batch_sizes=batch_sizes, noise_var=noise_var,
                                   steps=steps, chains=chains, seed=seed, simulate=simulate)
    fig, axes = _axes(ax, ncols=len(d), width=4.6, height=4.6)
    for axis, e in zip(axes, d):
        reach = 0.0
        if e.get("exact") is not None:
            x, y = _ellipse(e["exact"])
            axis.plot(x, y, "-", color=_EXACT, lw=2, label="exact (Thm 2)")
            reach = max(reach, np.abs(x).max(), np.abs(y).max())
        x, y = _ellipse(e["continuous_time"])
        axis.plot(x, y, "--", color=_CONT, lw=1.6, label="continuous time")
        reach = max(reach, np.abs(x).max(), np.abs(y).max())
        if e.get("discrete_hessian") is not None:
            x, y = _ellipse(e["discrete_hessian"])
            axis.plot(x, y, ":", color=_DISC, lw=2, label="discrete time, Hessian noise")
            reach = max(reach, np.abs(x).max(), np.abs(y).max())
        if e["sim"] is not None:
            x, y = _ellipse(e["sim"]["sigma"])
            heavy = e["sim"]["tail_unreliable"]
            axis.plot(x[::8], y[::8], "o", ms=3.5, color=_SIM, mfc="white" if heavy else _SIM, label="simulation")
            reach = max(reach, np.abs(x).max(), np.abs(y).max())
        reach = 1.15 * reach if reach > 0 else 1.0
        axis.set_xlim(-reach, reach)
        axis.set_ylim(-reach, reach)
        axis.set_aspect("equal")
        axis.axhline(0, color="0.85", lw=0.8)
        axis.axvline(0, color="0.85", lw=0.8)
        h = e["spectrum"]
        axis.set_xlabel(f"$w_1$ (Hessian eigenvalue {h[0]:g})")
        axis.set_ylabel(f"$w_2$ (Hessian eigenvalue {h[1]:g})")
        ratio = e["lr"] / e["critical_learning_rate"]
        status = f"λ/λ* = {ratio:.2f}" if e["stable"] else "unstable: λ ≥ λ*"
        axis.set_title(f"S = {e['batch_size']}, λ = {e['lr']:g} ({status})", fontsize=10)
        axis.grid(alpha=0.3)
    Line2D = _line2d()  # noqa: N806
    handles = [
        Line2D([], [], color=_EXACT, lw=2, label="exact (Thm 2)"),
        Line2D([], [], color=_CONT, lw=1.6, ls="--", label="continuous time [Eq. 7]"),
        Line2D([], [], color=_DISC, lw=2, ls=":", label="discrete time, Hessian noise"),
        Line2D([], [], color=_SIM, marker="o", ls="", ms=4, label="simulation"),
        Line2D([], [], color=_SIM, marker="o", mfc="white", ls="", ms=4, label="simulation, heavy tail (Hill ≤ 4)"),
    ]
    fig.suptitle("Fig. 4b/4c: one-standard-deviation ellipses of the stationary fluctuation Σ", fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    return fig


# ------------------------------------------------------------------------------------------------
# Figure 3 (left): Σ versus S
# ------------------------------------------------------------------------------------------------

def fig3_batch_data(*, a: float = 1.5, lr: float = 1.0, noise_var: float = 1.0,
                    batch_sizes: Iterable[int] | None = None, max_batch: int = 256, steps: int = 200_000,
                    chains: int = 4, seed: int = 0, simulate: bool = True) -> dict[str, Any]:
    r"""Numbers of Fig. 3 (left): Σ of 1-d label-noise SGD versus the batch size S at fixed λ.

    Returns
    -------
    dict
        ``smallest_stable`` (the smallest S with λ < λ*(S)); curves ``batch_size``, ``exact``,
        ``continuous_time``, ``discrete_hessian``; ``sim`` (``batch_size``, ``sigma``, ``stderr``,
        ``tail_index``, ``tail_unreliable``).
    """
    smallest = smallest_stable_batch_size([a], lr)
    sizes = np.unique(np.round(np.geomspace(smallest, max(max_batch, smallest + 1), 120)).astype(int))
    exact = np.array([label_noise([a], noise_var, lr, s).sigma[0] for s in sizes])
    cont = np.array([continuous_time([a], noise_var, lr, s)[0] for s in sizes])
    disc = np.array([discrete_hessian([a], noise_var, lr, s)[0] for s in sizes]) if lr * a < 2 else None
    chosen = [8, 10, 12, 16, 20, 32, 50, 100, 200] if batch_sizes is None else list(batch_sizes)
    chosen = [s for s in chosen if s >= smallest]
    sim: dict[str, list[Any]] = {k: [] for k in ("batch_size", "sigma", "stderr", "tail_index", "tail_unreliable")}
    if simulate:
        for i, s in enumerate(chosen):
            r = _simulate_label_noise([a], noise_var, lr, s, steps, chains, seed + i)
            if r.diverged:
                continue
            sim["batch_size"].append(s)
            sim["sigma"].append(r.sigma[0, 0])
            sim["stderr"].append(r.sigma_stderr[0, 0])
            sim["tail_index"].append(r.tail_index)
            sim["tail_unreliable"].append(r.tail_unreliable)
    return {"smallest_stable": smallest, "batch_size": sizes, "exact": exact, "continuous_time": cont,
            "discrete_hessian": disc, "sim": {k: np.asarray(v) for k, v in sim.items()},
            "parameters": {"a": a, "lr": lr, "noise_var": noise_var}}


def fig3_batch(ax: Axes | Sequence[Axes] | None = None, *, a: float = 1.5, lr: float = 1.0, noise_var: float = 1.0,
               batch_sizes: Iterable[int] | None = None, steps: int = 200_000, chains: int = 4, seed: int = 0,
               simulate: bool = True, data: dict[str, Any] | None = None) -> Figure:
    r"""Fig. 3 (left): Σ versus the batch size for 1-d label noise (the paper: a = 1.5, λ = 1).

    Log-log axes; the exact Σ diverges as S falls to the largest unstable batch size, and tends to
    the discrete-time Hessian form at large S, while continuous time stays a factor
    :math:`(2-\lambda a)/2` below.

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = data or fig3_batch_data(a=a, lr=lr, noise_var=noise_var, batch_sizes=batch_sizes, steps=steps,
                                chains=chains, seed=seed, simulate=simulate)
    fig, (ax,) = _axes(ax)
    p = d["parameters"]
    ax.plot(d["batch_size"], d["exact"], "-", color=_EXACT, lw=2, label="exact (Thm 2)")
    ax.plot(d["batch_size"], d["continuous_time"], "--", color=_CONT, lw=1.6, label="continuous time [Eq. 7]")
    if d["discrete_hessian"] is not None:
        ax.plot(d["batch_size"], d["discrete_hessian"], ":", color=_DISC, lw=2, label="discrete time, Hessian noise")
    s = d["sim"]
    _sim_points(ax, s["batch_size"], s["sigma"], s["stderr"], s["tail_unreliable"])
    unstable = d["smallest_stable"] - 1
    if unstable >= 1:
        ax.axvspan(0.5, unstable + 0.5, color="0.9", zorder=0)
        ax.text(0.02, 0.03, f"unstable for S ≤ {unstable}", transform=ax.transAxes, fontsize=8, color="0.35")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(max(0.8, unstable * 0.8), d["batch_size"][-1] * 1.2)
    ax.set_ylim(np.nanmin(d["continuous_time"]) * 0.6, np.nanmax(d["exact"]) * 1.5)
    ax.set_xlabel("batch size S")
    ax.set_ylabel(r"fluctuation $\Sigma = \mathrm{Var}(w)$")
    ax.set_title(f"Fig. 3 (left): label noise, a = {p['a']:g}, λ = {p['lr']:g}, σ² = {p['noise_var']:g}")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, which="both")
    return fig


# ------------------------------------------------------------------------------------------------
# Figure 3 (right): L_test versus the weight decay
# ------------------------------------------------------------------------------------------------

def fig3_weight_decay_data(*, a: float = 1.0, u: float = 1.0,
                           cases: Sequence[tuple[float, int]] = ((0.5, 1), (1.8, 10)), n_curve: int = 400,
                           n_sim: int = 7, steps: int = 200_000, chains: int = 4, seed: int = 0,
                           simulate: bool = True) -> list[dict[str, Any]]:
    r"""Numbers of Fig. 3 (right): the test loss of 1-d L2-regularised SGD versus γ [Thm 4, Cor 1].

    No label noise, so at :math:`\gamma = 0` the noise vanishes at :math:`w^* = u` and
    :math:`L_{test}(0) = 0` whenever γ = 0 is stable: :math:`\gamma^* = 0` for
    :math:`\lambda < \lambda^*(\gamma = 0)`. Past that rate γ = 0 is unstable and :math:`\gamma^*`
    moves into the stable window of K = a + γ, whose geometric mean is :math:`a\sqrt{2/S}`: negative
    (Cor 1) for S > 2, positive for S = 1.

    Parameters
    ----------
    cases : sequence of (lr, batch_size)
        The paper's λ = 0.5, S = 1 and a large-learning-rate case by default.

    Returns
    -------
    list of dict
        One per case: ``lr``, ``batch_size``, ``critical_learning_rate_gamma0``, ``window`` (the
        stable γ interval), ``gamma_star``, ``test_loss_star``, curves ``gamma``, ``test_loss``
        (nan where unstable), ``gd_bias`` (the noise-free ½a(γu/(a+γ))²), and ``sim``
        (``gamma``, ``test_loss``, ``stderr``, ``tail_index``, ``tail_unreliable``).
    """
    out = []
    for ci, (lr, s) in enumerate(cases):
        lc0 = critical_learning_rate([a], s, model="l2_regularized", weight_decay=0.0)
        g_star, l_star = optimal_weight_decay([a], [u], lr, s)
        if abs(g_star) < 1e-9:  # γ = 0 is stable: L_test(0) = 0 exactly (no noise at w* = u)
            g_star = 0.0
            l_star = float(l2_test_loss_curve([a], [u], lr, s, [0.0])[0])
        window = stable_weight_decay_interval([a], [u], lr, s)
        pad = 0.05 * (window[1] - window[0])
        gammas = np.linspace(window[0] - pad, window[1] + pad, n_curve)
        curve = l2_test_loss_curve([a], [u], lr, s, gammas)
        curve = np.where(np.isfinite(curve), curve, np.nan)
        gd = 0.5 * a * (gammas * u / (a + gammas)) ** 2
        grid: Any = list(np.linspace(window[0], window[1], n_sim + 2)[1:-1])
        if window[0] < 0 < window[1]:
            grid.append(0.0)
        grid.append(g_star)
        grid = np.unique(np.round(grid, 12))
        sim: dict[str, list[Any]] = {k: [] for k in ("gamma", "test_loss", "stderr", "tail_index", "tail_unreliable")}
        if simulate:
            for k, g in enumerate(grid):
                r = _run_simulation([a], u=[u], weight_decay=g, lr=lr, batch_size=s, steps=steps, chains=chains,
                             seed=seed + 100 * ci + k, progress=False)
                if r.diverged:
                    continue
                sim["gamma"].append(g)
                sim["test_loss"].append(r.test_loss)
                sim["stderr"].append(0.5 * a * r.sigma_stderr[0, 0])
                sim["tail_index"].append(r.tail_index)
                sim["tail_unreliable"].append(bool(r.tail_unreliable and np.isfinite(r.tail_index)))
        out.append({"lr": lr, "batch_size": s, "critical_learning_rate_gamma0": lc0, "window": window,
                    "gamma_star": g_star, "test_loss_star": l_star, "gamma": gammas, "test_loss": curve,
                    "gd_bias": gd, "sim": {k: np.asarray(v) for k, v in sim.items()},
                    "parameters": {"a": a, "u": u}})
    return out


def fig3_weight_decay(ax: Axes | Sequence[Axes] | None = None, *, a: float = 1.0, u: float = 1.0,
                      cases: Sequence[tuple[float, int]] = ((0.5, 1), (1.8, 10)), steps: int = 200_000,
                      chains: int = 4, seed: int = 0, simulate: bool = True,
                      data: list[dict[str, Any]] | None = None) -> Figure:
    r"""Fig. 3 (right): test loss versus weight decay γ, one panel per (λ, S) case.

    The exact :math:`L_{test}(\gamma)` [Thm 4] (infinite outside the shaded stable window), the
    noise-free bias :math:`\tfrac12 a(\gamma u/(a+\gamma))^2` and simulations; a star marks
    :math:`\gamma^*`. Defaults: the paper's λ = 0.5, S = 1 (γ* = 0) and λ = 1.8, S = 10 past
    :math:`\lambda^*(\gamma=0)` (γ* < 0, Cor 1).

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = data or fig3_weight_decay_data(a=a, u=u, cases=cases, steps=steps, chains=chains, seed=seed,
                                       simulate=simulate)
    fig, axes = _axes(ax, ncols=len(d), width=5.0, height=4.0)
    for axis, e in zip(axes, d):
        lo, hi = e["window"]
        axis.axvspan(lo, hi, color="#e8f0fb", zorder=0, label="stable window")
        axis.plot(e["gamma"], e["test_loss"], "-", color=_EXACT, lw=2, label="exact $L_{test}$ (Thm 4)")
        axis.plot(e["gamma"], e["gd_bias"], "--", color=_CONT, lw=1.5, label="noise-free bias only")
        s = e["sim"]
        _sim_points(axis, s["gamma"], s["test_loss"], s["stderr"], s["tail_unreliable"])
        axis.plot([e["gamma_star"]], [e["test_loss_star"]], "*", ms=15, color="#e7298a", zorder=6,
                  label=f"γ* = {e['gamma_star']:.3g}")
        finite = e["test_loss"][np.isfinite(e["test_loss"])]
        inside = (e["gamma"] > lo + 0.08 * (hi - lo)) & (e["gamma"] < hi - 0.08 * (hi - lo))
        ref = np.nanmax(e["test_loss"][inside]) if inside.any() else (finite.max() if finite.size else 1.0)
        if s["test_loss"].size:
            ref = max(ref, np.nanmax(s["test_loss"] + s["stderr"]))
        if e["test_loss_star"] > 0 and ref / e["test_loss_star"] > 20:
            axis.set_yscale("log")  # a wide positive range: the minimum stays visible
            axis.set_ylim(e["test_loss_star"] / 3, ref * 3)
        else:
            axis.set_ylim(0, 1.25 * max(ref, e["test_loss_star"] * 3, 1e-12))
        axis.set_xlim(e["gamma"][0], e["gamma"][-1])
        axis.axvline(0, color="0.6", lw=0.8)
        lc0 = e["critical_learning_rate_gamma0"]
        relation = "<" if e["lr"] < lc0 else ">"
        axis.set_title(f"λ = {e['lr']:g}, S = {e['batch_size']}  (λ {relation} λ*(γ=0) = {lc0:.3g})", fontsize=10)
        axis.set_xlabel("weight decay γ")
        axis.set_ylabel(r"test loss $L_{test}$")
        axis.legend(fontsize=7.5, loc="upper center")
        axis.grid(alpha=0.3, which="both")
    p = d[0]["parameters"]
    fig.suptitle(f"Fig. 3 (right): L2 regularisation, a = {p['a']:g}, u = {p['u']:g}, no label noise", fontsize=11)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# Figure 2: the power-law tail
# ------------------------------------------------------------------------------------------------

def fig2_tail_data(*, a: float = 1.0, lr: float = 1.0, batch_sizes: Sequence[int] = (3, 5, 10, 20),
                   noise_var: float = 1.0, steps: int = 200_000, chains: int = 4, seed: int = 0,
                   simulate: bool = True) -> list[dict[str, Any]]:
    r"""Numbers of Fig. 2: the tail index of the 1-d stationary law at aλ = ``a * lr``, per batch size.

    The indices of the theory (:func:`sgdnoise.tail_index`: exact Kesten κ, the paper's
    :math:`2S/(a\lambda) - S`, continuous time :math:`2S/(a\lambda) + 1`) and, with ``simulate``,
    the library simulator's Hill estimate. The survival function and the Hill plot need many
    samples of the far tail, which the library's core draws (``sampleStationaryTail``) but the
    Python API does not expose: they come from ``sgdnoise-cli reproduce fig2 --json`` through
    :func:`read_reproduced` (here ``x``, ``survival``, ``hill_k`` and ``hill`` are None).

    Returns
    -------
    list of dict
        ``batch_size``, ``kesten``, ``paper``, ``continuous_time``, ``hill_simulator`` (nan without
        ``simulate``), ``x``, ``survival``, ``hill_k``, ``hill``, ``samples`` (0), ``parameters``.
    """
    out = []
    for i, s in enumerate(batch_sizes):
        hill_sim = math.nan
        if simulate:
            hill_sim = _simulate_label_noise([a], noise_var, lr, s, steps, chains, seed + 50 + i).tail_index
        out.append({"batch_size": s, "kesten": tail_index(a, lr, s, method="kesten"),
                    "paper": tail_index(a, lr, s, method="paper"),
                    "continuous_time": tail_index(a, lr, s, method="continuous_time"), "hill_simulator": hill_sim,
                    "x": None, "survival": None, "hill_k": None, "hill": None, "samples": 0,
                    "parameters": {"a": a, "lr": lr, "noise_var": noise_var}})
    return out


def fig2_tail(ax: Axes | Sequence[Axes] | None = None, *, a: float = 1.0, lr: float = 1.0,
              batch_sizes: Sequence[int] = (3, 5, 10, 20), noise_var: float = 1.0, steps: int = 200_000,
              chains: int = 4, seed: int = 0, simulate: bool = True,
              data: list[dict[str, Any]] | None = None) -> Figure:
    r"""Fig. 2: the power-law tail of the 1-d stationary distribution (the paper: aλ = 1).

    With the far-tail samples (``data`` from :func:`read_reproduced`): left, the survival function
    :math:`P(|w| > x)` on log-log axes for each batch size, with the slope of the exact Kesten
    index (dashed) and of the paper's :math:`2S/(a\lambda) - S` (dotted) through the far tail;
    right, the Hill plot (index estimate against the number k of upper order statistics) with the
    theory's indices as horizontal lines. Without them (computed from the Python API): one panel,
    the tail index against the batch size — the theory's three indices and the simulator's Hill
    estimates.

    Parameters
    ----------
    ax : matplotlib Axes, or a sequence of two with far-tail data, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = data or fig2_tail_data(a=a, lr=lr, batch_sizes=batch_sizes, noise_var=noise_var, steps=steps, chains=chains,
                               seed=seed, simulate=simulate)
    p = d[0]["parameters"]
    if any(e["survival"] is None for e in d):
        fig, (axis,) = _axes(ax)
        _tail_index_panel(axis, d)
    else:
        fig, (left, right) = _axes(ax, ncols=2, width=5.4, height=4.3)
        _survival_panel(left, d)
        _hill_panel(right, d)
    fig.suptitle(f"Fig. 2: power-law tail at aλ = {p['a'] * p['lr']:g} (a = {p['a']:g}, σ² = {p['noise_var']:g})",
                 fontsize=11)
    fig.tight_layout()
    return fig


def _tail_index_panel(axis: Axes, d: list[dict[str, Any]]) -> None:
    """The tail index against the batch size: the theory's indices and the simulator's Hill estimates."""
    sizes = np.array([e["batch_size"] for e in d])
    axis.plot(sizes, [e["kesten"] for e in d], "o-", color=_EXACT, lw=2, label="exact (Kesten) κ")
    axis.plot(sizes, [e["paper"] for e in d], "s:", color=_CONT, lw=1.6, label="paper 2S/(aλ) − S")
    axis.plot(sizes, [e["continuous_time"] for e in d], "^--", color=_DISC, lw=1.4, label="continuous time 2S/(aλ) + 1")
    hill = np.array([e["hill_simulator"] for e in d], dtype=float)
    if np.isfinite(hill).any():
        axis.plot(sizes, hill, "o", color=_SIM, ms=6, mfc="white", label="Hill estimate (simulator, k = √n)")
    axis.set_xticks(sizes)
    axis.set_xlabel("batch size S")
    axis.set_ylabel("tail index")
    axis.legend(fontsize=8, loc="upper left")
    axis.grid(alpha=0.3, which="both")
    axis.set_title("tail index of the stationary law", fontsize=10)


def _survival_panel(left: Axes, d: list[dict[str, Any]]) -> None:
    for i, e in enumerate(d):
        c = _PALETTE[i % len(_PALETTE)]
        keep = e["survival"] > 0
        x, p = e["x"][keep], e["survival"][keep]
        left.loglog(x, p, "-", color=c, lw=2, label=f"S = {e['batch_size']}")
        # Reference slopes anchored where P = 1e-3 (far in the tail, still well sampled).
        j = int(np.argmin(np.abs(np.log(p) - np.log(1e-3))))
        xr = np.geomspace(x[j] / 2, x[-1], 10)
        left.loglog(xr, p[j] * (xr / x[j]) ** (-e["kesten"]), "--", color=c, lw=1)
        left.loglog(xr, p[j] * (xr / x[j]) ** (-e["paper"]), ":", color=c, lw=1.2)
    lo = min(e["survival"][e["survival"] > 0].min() for e in d)
    left.set_ylim(lo * 0.5, 1)
    left.set_xlim(min(e["x"][0] for e in d) * 0.8, max(e["x"][-1] for e in d) * 1.5)
    left.set_xlabel("x")
    left.set_ylabel(r"survival $P(|w| > x)$")
    left.plot([], [], "k--", lw=1, label="slope: exact (Kesten) κ")
    left.plot([], [], "k:", lw=1.2, label="slope: paper 2S/(aλ) − S")
    left.legend(fontsize=7.5, loc="lower left")
    left.grid(alpha=0.3, which="both")
    left.set_title("survival function of the stationary law", fontsize=10)


def _hill_panel(right: Axes, d: list[dict[str, Any]]) -> None:
    for i, e in enumerate(d):
        c = _PALETTE[i % len(_PALETTE)]
        right.semilogx(e["hill_k"], e["hill"], "-", color=c, lw=1.6, label=f"S = {e['batch_size']}: Hill")
        right.axhline(e["kesten"], color=c, ls="--", lw=1)
        right.axhline(e["paper"], color=c, ls=":", lw=1.2)
    right.plot([], [], "k--", lw=1, label="exact (Kesten) κ")
    right.plot([], [], "k:", lw=1.2, label="paper 2S/(aλ) − S")
    right.set_xlabel("k (upper order statistics)")
    right.set_ylabel("tail index")
    top = max(max(e["paper"] for e in d), max(np.nanmax(e["hill"]) for e in d))
    right.set_ylim(0, top * 1.1)
    right.legend(fontsize=7, loc="upper right", ncol=2)
    right.grid(alpha=0.3, which="both")
    right.set_title("Hill plot: estimate against k", fontsize=10)


# ------------------------------------------------------------------------------------------------
# The same figures from the files of `sgdnoise-cli reproduce --json`
# ------------------------------------------------------------------------------------------------

def _columns(records: list[dict[str, Any]]) -> dict[str, npt.NDArray[Any]]:
    """A JSON table (a list of records) as a dict of numpy columns (null is nan)."""
    keys = records[0].keys() if records else ()
    out = {}
    for k in keys:
        values = [r[k] for r in records]
        given = [v for v in values if v is not None]
        if given and all(isinstance(v, (bool, str)) for v in given):
            out[k] = np.array(values, dtype=object)
        else:
            out[k] = np.array([math.nan if v is None else v for v in values], dtype=float)
    return out


def _rows(table: dict[str, npt.NDArray[Any]], mask: npt.NDArray[np.bool_]) -> dict[str, npt.NDArray[Any]]:
    return {k: v[mask] for k, v in table.items()}


def _simulated(table: dict[str, npt.NDArray[Any]], x_key: str, sigma_key: str = "sigma_sim",
               stderr_key: str = "sigma_sim_stderr") -> dict[str, npt.NDArray[Any]]:
    """The simulated points of a CLI table, in the ``sim`` shape of the *_data functions."""
    t = _rows(table, np.isfinite(table[sigma_key]))
    return {x_key: t[x_key], "sigma": t[sigma_key], "stderr": t[stderr_key], "tail_index": t["tail_index_hill"],
            "tail_unreliable": t["tail_unreliable"].astype(bool)}


def _from_fig4a(doc: dict[str, Any]) -> dict[str, Any]:
    rows, curve = (_columns(doc["tables"][k]) for k in ("fig4a", "fig4a_curve"))
    return {"critical_learning_rate": doc["summary"]["critical_learning_rate"], "lr": curve["lr"],
            "exact": curve["sigma_exact"], "continuous_time": curve["sigma_continuous_time"],
            "discrete_hessian": curve["sigma_discrete_hessian"], "sim": _simulated(rows, "lr"),
            "parameters": dict(doc["parameters"])}


def _from_fig4(doc: dict[str, Any], lr: str = "1.50") -> dict[str, Any]:
    p, summary = doc["parameters"], doc["summary"]
    e = summary[f"lr_{lr}"]
    sim = None
    if e["sigma_sim"] is not None:
        table = _columns(doc["tables"][doc["figure"]])
        mine = _rows(table, table["lr"] == float(lr))
        stderr = {q: v for q, v in zip(mine["quantity"], mine["sim_stderr"])}
        sim = {"sigma": np.array(e["sigma_sim"], dtype=float),
               "stderr": np.array([[stderr["sigma_11"], stderr["sigma_12"]], [stderr["sigma_12"], stderr["sigma_22"]]]),
               "tail_index": math.nan if e["tail_index_hill"] is None else e["tail_index_hill"],
               "tail_unreliable": bool(e["tail_unreliable"])}
    lc = summary["critical_learning_rate"]
    return {"batch_size": int(p["batch_size"]), "lr": float(lr), "critical_learning_rate": lc, "stable": float(lr) < lc,
            "spectrum": np.array(p["spectrum"], dtype=float), "exact": np.diag(e["sigma_exact"]),
            "continuous_time": np.diag(e["sigma_continuous_time"]), "discrete_hessian": np.diag(e["sigma_discrete_hessian"]),
            "sim": sim}


def _from_fig3_batch(doc: dict[str, Any]) -> dict[str, Any]:
    rows, curve = (_columns(doc["tables"][k]) for k in ("fig3_batch", "fig3_batch_curve"))
    return {"smallest_stable": int(doc["summary"]["smallest_stable_batch_size"]), "batch_size": curve["batch_size"],
            "exact": curve["sigma_exact"], "continuous_time": curve["sigma_continuous_time"],
            "discrete_hessian": curve["sigma_discrete_hessian"], "sim": _simulated(rows, "batch_size"),
            "parameters": dict(doc["parameters"]["batch"])}


def _from_fig3_weight_decay(doc: dict[str, Any]) -> list[dict[str, Any]]:
    p = doc["parameters"]["weight_decay"]
    rows, curve = (_columns(doc["tables"][k]) for k in ("fig3_weight_decay", "fig3_weight_decay_curve"))
    out = []
    for case in p["cases"]:
        label = case["label"]
        c, r = _rows(curve, curve["case"] == label), _rows(rows, rows["case"] == label)
        r = _rows(r, np.isfinite(r["test_loss_sim"]))
        summary = doc["summary"]["weight_decay"][label]
        out.append({"lr": case["lr"], "batch_size": int(case["batch_size"]),
                    "critical_learning_rate_gamma0": summary["critical_learning_rate_gamma0"],
                    "window": tuple(summary["stable_window"]), "gamma_star": summary["optimal_weight_decay"],
                    "test_loss_star": summary["optimal_test_loss"], "gamma": c["weight_decay"],
                    "test_loss": np.where(np.isfinite(c["test_loss_exact"]), c["test_loss_exact"], np.nan),
                    "gd_bias": c["test_loss_gd"],
                    "sim": {"gamma": r["weight_decay"], "test_loss": r["test_loss_sim"], "stderr": r["test_loss_sim_stderr"],
                            "tail_index": r["tail_index_hill"], "tail_unreliable": r["tail_unreliable"].astype(bool)},
                    "parameters": {"a": p["a"], "u": p["u"]}})
    return out


def _from_fig2(doc: dict[str, Any]) -> list[dict[str, Any]]:
    p = doc["parameters"]
    rows, survival, hill = (_columns(doc["tables"][k]) for k in ("fig2", "fig2_survival", "fig2_hill"))
    out = []
    for i, s in enumerate(rows["batch_size"].astype(int)):
        sv, h = _rows(survival, survival["batch_size"] == s), _rows(hill, hill["batch_size"] == s)
        out.append({"batch_size": int(s), "kesten": rows["kesten"][i], "paper": rows["paper"][i],
                    "continuous_time": rows["continuous_time"][i], "hill_simulator": rows["hill_sqrt_n"][i],
                    "x": sv["x"], "survival": sv["survival"], "hill_k": h["k"].astype(int), "hill": h["hill"],
                    "samples": int(rows["samples"][i]),
                    "parameters": {"a": p["a"], "lr": p["lr"], "noise_var": p["noise_var"]}})
    return out


def read_reproduced(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The figures written by ``sgdnoise-cli reproduce <figure> --out folder --json``, computed by the
    library's core, in the shape of the ``*_data`` functions (for ``data=`` of the figure functions).

    Parameters
    ----------
    folder : str or path-like
        Holding any of fig4a.json, fig4b.json and fig4c.json, fig3.json, fig2.json.

    Returns
    -------
    dict
        Keys among ``"fig4a"``, ``"fig4_ellipses"`` (S = 50 and S = 10 at λ = 1.5, from fig4b.json and
        fig4c.json), ``"fig3_batch"``, ``"fig3_weight_decay"`` and ``"fig2_tail"``, for the files
        present.
    """
    def load(name: str) -> dict[str, Any] | None:
        path = os.path.join(os.fspath(folder), name + ".json")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    out: dict[str, Any] = {}
    docs = {name: load(name) for name in ("fig4a", "fig4b", "fig4c", "fig3", "fig2")}
    if docs["fig4a"]:
        out["fig4a"] = _from_fig4a(docs["fig4a"])
    if docs["fig4b"] and docs["fig4c"]:
        out["fig4_ellipses"] = [_from_fig4(docs["fig4b"]), _from_fig4(docs["fig4c"])]
    if docs["fig3"]:
        out["fig3_batch"] = _from_fig3_batch(docs["fig3"])
        out["fig3_weight_decay"] = _from_fig3_weight_decay(docs["fig3"])
    if docs["fig2"]:
        out["fig2_tail"] = _from_fig2(docs["fig2"])
    return out


# ------------------------------------------------------------------------------------------------

def save_all(folder: str | os.PathLike[str], *, quick: bool = False, dpi: float = 130, seed: int = 0,
             data: dict[str, Any] | None = None) -> list[str]:
    """Draws every figure with the paper's parameters and writes them as PNG files into ``folder``.

    Parameters
    ----------
    folder : str or path-like
        Created when missing.
    quick : bool
        Smaller simulations (about 5x faster, larger error bars).
    dpi : int
    seed : int
    data : dict, optional
        Figures already computed, e.g. ``read_reproduced(folder)`` after ``sgdnoise-cli reproduce
        all --out folder --json``: those are drawn, the others computed.

    Returns
    -------
    list of str
        The paths written: fig4a.png, fig4_ellipses.png, fig3_batch.png, fig3_weight_decay.png,
        fig2_tail.png.
    """
    plt = _pyplot()
    os.makedirs(folder, exist_ok=True)
    steps = 40_000 if quick else 200_000
    given = data or {}
    jobs = [
        ("fig4a", lambda d: fig4a(steps=steps, seed=seed, data=d)),
        ("fig4_ellipses", lambda d: fig4_ellipses(steps=steps, seed=seed, data=d)),
        ("fig3_batch", lambda d: fig3_batch(steps=steps, seed=seed, data=d)),
        ("fig3_weight_decay", lambda d: fig3_weight_decay(steps=steps, seed=seed, data=d)),
        ("fig2_tail", lambda d: fig2_tail(steps=steps, seed=seed, simulate=not quick, data=d)),
    ]
    paths = []
    for name, draw in jobs:
        fig = draw(given.get(name))
        path = os.path.join(os.fspath(folder), name + ".png")
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------------------------------
# A network's prediction (docs/theory.md §8)

def network_data(result: NetworkFluctuation, measured: npt.ArrayLike | None = None,
                 measured_stderr: npt.ArrayLike | None = None) -> dict[str, Any]:
    r"""The numbers of :func:`network`: the two ends of the spectrum of :math:`\tilde H` that
    :func:`sgdnoise.network_fluctuation` found, the stable window of the preconditioned eigenvalues
    (:math:`0 < m < 2(1+\mu)`) and where the largest one would stand at each critical learning rate,
    and the predicted top-k variances (the diagonal of the block of Σ, scalar learning rate; of
    :math:`X_k` otherwise) with the measured ones when given.
    """
    k = result.top_eigenvalues.size
    block = result.sigma_block if result.sigma_block is not None else result.fluctuation_block
    predicted = np.diag(block).copy()
    out: dict[str, Any] = {
        "top": np.asarray(result.top_eigenvalues, dtype=float), "bottom": np.asarray(result.bottom_eigenvalues, dtype=float),
        "edge": 2 * (1 + result.momentum), "predicted": predicted, "measured": None, "measured_stderr": None,
        "m_max_at_multiplicative": None,
    }
    if result.critical_learning_rate_multiplicative is not None and np.ndim(result.lr) == 0:
        # λH scales with λ: at the multiplicative λ*, m_1 would be m_1 λ*/λ.
        out["m_max_at_multiplicative"] = float(result.top_eigenvalues[0] * result.critical_learning_rate_multiplicative
                                               / float(result.lr))
    if measured is not None:
        m = np.asarray(measured, dtype=float)
        if m.shape != (k,):
            raise ValueError(f"measured must hold the {k} top-k variances, got shape {m.shape}")
        out["measured"] = m
        if measured_stderr is not None:
            e = np.asarray(measured_stderr, dtype=float)
            if e.shape != (k,):
                raise ValueError(f"measured_stderr must have shape ({k},), got {e.shape}")
            out["measured_stderr"] = e
    return out


def network(result: NetworkFluctuation, measured: npt.ArrayLike | None = None,
            measured_stderr: npt.ArrayLike | None = None, *,
            ax: Axes | Sequence[Axes] | None = None) -> Figure:
    r"""A network's prediction at a glance (docs/theory.md §8): left, the top-k and bottom-k
    eigenvalues of :math:`\tilde H = \lambda H` against the stable window
    :math:`0 < m < 2(1+\mu)` of a constant noise, with the place the largest would reach at the
    multiplicative critical learning rate; right, the predicted variances of the fluctuation on the
    top-k Hessian eigenvectors, and the measured ones (with one standard error) when given.

    Parameters
    ----------
    result : NetworkFluctuation
    measured, measured_stderr : (k,) array_like, optional
        Variances of :math:`q_i^\top (w_t - w^*)` measured in a run, and their standard errors.
    ax : two matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = network_data(result, measured, measured_stderr)
    fig, (left, right) = _axes(ax, ncols=2, width=5.0, height=4.0)
    k = d["top"].size
    left.axhspan(0.0, d["edge"], color=_EXACT, alpha=0.08, label="stable window, constant noise")
    left.axhline(d["edge"], color=_EXACT, lw=1)
    left.plot(np.arange(1, k + 1), d["top"], "o", color=_EXACT, label="top eigenvalues of λH")
    left.plot(np.arange(k + 2, 2 * k + 2), d["bottom"], "s", color=_CONT, label="bottom eigenvalues of λH")
    if d["m_max_at_multiplicative"] is not None:
        left.axhline(d["m_max_at_multiplicative"], color=_DISC, ls="--", lw=1,
                     label="m_1 at the multiplicative λ*")
    left.axhline(0.0, color="0.5", lw=0.8)
    left.set_xlabel("eigenvalue (top k, then bottom k)")
    left.set_ylabel("m = λ h")
    left.legend(fontsize=7, loc="upper right")
    x = np.arange(1, k + 1)
    right.plot(x, d["predicted"], "_", color=_EXACT, ms=18, mew=2, label="predicted (Thm 1, constant C)")
    if d["measured"] is not None:
        err = d["measured_stderr"] if d["measured_stderr"] is not None else None
        right.errorbar(x, d["measured"], yerr=err, fmt="o", color=_SIM, ms=4, capsize=3, label="measured")
    right.set_xlabel("top Hessian eigenvector i")
    right.set_ylabel("variance of q_i·(w − w*)")
    right.set_xticks(x)
    right.legend(fontsize=7)
    return fig


# ----------------------------------------------------------------------------------------------------
# Learning curves (docs/theory.md §9)

def learning_curve(curves: LearningCurve | Sequence[LearningCurve],
                   simulations: ScheduledSimulation | Sequence[ScheduledSimulation | None] | None = None, *,
                   labels: Sequence[str] | None = None, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    r"""Exact learning curves under schedules against Monte-Carlo SGD (docs/theory.md §9): left,
    :math:`\operatorname{Tr}\Sigma_t`; right, the training loss :math:`E[L(w_t)]` — solid lines the
    exact moments of :func:`sgdnoise.learning_curve`, markers with one standard error the
    simulation of the same schedule (:func:`sgdnoise.simulate_schedule`) where given, the dotted
    line each curve's stationary training loss for its last hyperparameters, and the step at
    which it settled. Both axes logarithmic in the loss/trace.

    Parameters
    ----------
    curves : LearningCurve or sequence of them
    simulations : ScheduledSimulation or sequence (same length, entries may be None), optional
    labels : sequence of str, optional
    ax : two matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    curve_list = [curves] if isinstance(curves, LearningCurve) else list(curves)
    if simulations is None or isinstance(simulations, ScheduledSimulation):
        sims: list[ScheduledSimulation | None] = [simulations] + [None] * (len(curve_list) - 1)
    else:
        sims = list(simulations)
    if len(sims) != len(curve_list):
        raise ValueError(f"simulations must match the {len(curve_list)} curves, got {len(sims)}")
    names = list(labels) if labels is not None else [f"curve {i + 1}" for i in range(len(curve_list))]
    if len(names) != len(curve_list):
        raise ValueError(f"labels must name the {len(curve_list)} curves, got {len(names)}")
    fig, (left, right) = _axes(ax, ncols=2, width=5.0, height=4.0)
    for i, (c, sim, name) in enumerate(zip(curve_list, sims, names)):
        colour = _PALETTE[i % len(_PALETTE)]
        left.plot(c.steps, np.where(c.trace > 0, c.trace, np.nan), "-", color=colour, lw=2,  # log axis
                  label=f"{name} (exact)")
        right.plot(c.steps, c.train_loss, "-", color=colour, lw=2, label=f"{name} (exact)")
        if c.stationary_train_loss is not None:
            right.axhline(c.stationary_train_loss, color=colour, ls=":", lw=1)
        if c.settled_at is not None:
            right.axvline(c.settled_at, color=colour, ls="--", lw=0.8)
        if sim is not None:
            left.errorbar(sim.steps, sim.trace, yerr=sim.trace_stderr, fmt="o", color=colour, ms=3, capsize=2,
                          mfc="white", label=f"{name} (simulation)")
            right.errorbar(sim.steps, sim.train_loss, yerr=sim.train_loss_stderr, fmt="o", color=colour, ms=3,
                           capsize=2, mfc="white", label=f"{name} (simulation)")
    for axis, what in ((left, "Tr Σ_t"), (right, "E[L_train(w_t)]")):
        axis.set_xlabel("step t")
        axis.set_ylabel(what)
        axis.set_yscale("log")
        axis.legend(fontsize=7)
    return fig
