"""sgdnoise.plot: every figure function writes a non-empty PNG; the data behind them is right.

Skipped without matplotlib (the *_data checks and the ImportError message run regardless).
Simulation budgets are tiny: these tests check plumbing and the theory curves, not statistics.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sgdnoise
from sgdnoise import plot

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("SGDNOISE_CLI", ROOT / ".build" / "release" / "sgdnoise-cli"))

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL = {"steps": 5_000, "chains": 2}


def needs_matplotlib():
    return pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install matplotlib)")


def save(fig, path):
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=60)
    plt.close(fig)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 2000
    return data


@pytest.mark.parametrize("draw", [
    lambda: plot.fig4a(**SMALL),
    lambda: plot.fig4_ellipses(**SMALL),
    lambda: plot.fig3_batch(batch_sizes=[10, 50], **SMALL),
    lambda: plot.fig3_weight_decay(**SMALL),
    lambda: plot.fig2_tail(batch_sizes=(3, 10), **SMALL),
], ids=["fig4a", "fig4_ellipses", "fig3_batch", "fig3_weight_decay", "fig2_tail"])
def test_each_figure_writes_a_png(tmp_path, draw):
    needs_matplotlib()
    save(draw(), tmp_path / "figure.png")


def test_figures_draw_into_given_axes(tmp_path):
    plt = needs_matplotlib().pyplot
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    assert plot.fig4a(ax=axes[0], simulate=False) is fig
    assert plot.fig3_batch(ax=axes[1], simulate=False) is fig
    assert plot.fig4_ellipses(ax=[axes[2]], batch_sizes=(50,), simulate=False) is fig
    save(fig, tmp_path / "panel.png")
    with pytest.raises(ValueError, match="2 axes"):
        plot.fig4_ellipses(ax=axes[0], simulate=False)


def test_save_all(tmp_path):
    needs_matplotlib()
    paths = plot.save_all(tmp_path / "figures", quick=True)
    assert [p.rsplit("/", 1)[-1] for p in paths] == [
        "fig4a.png", "fig4_ellipses.png", "fig3_batch.png", "fig3_weight_decay.png", "fig2_tail.png"]
    for p in paths:
        assert open(p, "rb").read(8) == PNG_SIGNATURE


def test_missing_matplotlib_gives_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot.fig4a(simulate=False)


# ---------------------------------------------------------------------------------------------
# The numbers behind the figures (no matplotlib needed).

def test_fig4a_data_theory_curves():
    d = plot.fig4a_data(simulate=False, n_curve=20)
    a, s, var = 1.0, 10, 1.0
    assert np.isclose(d["critical_learning_rate"], 2 * s / (a * (s + 2)), rtol=1e-12)
    lr = d["lr"]
    g = 2 - (1 + 1 / s) * lr * a
    t = lr * a / g
    exact = var / s * (1 + t / (1 - t / s) / s) * lr / g
    np.testing.assert_allclose(d["exact"], exact, rtol=1e-12)
    np.testing.assert_allclose(d["continuous_time"], lr * var / (2 * s), rtol=1e-12)
    np.testing.assert_allclose(d["discrete_hessian"], lr * var / (s * (2 - lr * a)), rtol=1e-12)
    assert d["sim"]["lr"].size == 0


def test_fig4a_data_simulation_agrees_where_the_tail_is_light():
    d = plot.fig4a_data(n_curve=5, sim_fractions=[0.3], steps=100_000, chains=2, seed=3)
    lr = d["sim"]["lr"][0]
    g = 2 - 1.1 * lr
    t = lr / g
    exact = 0.1 * (1 + t / (1 - t / 10) / 10) * lr / g
    assert abs(d["sim"]["sigma"][0] - exact) < 6 * d["sim"]["stderr"][0]


def test_fig4_ellipses_data_paper_settings_are_stable():
    data = plot.fig4_ellipses_data(simulate=False)
    assert [e["batch_size"] for e in data] == [50, 10]
    assert all(e["stable"] for e in data)
    for e in data:
        assert e["exact"].shape == (2, 2)
        assert e["exact"][0, 0] > e["discrete_hessian"][0, 0] > e["continuous_time"][0, 0]
    unstable = plot.fig4_ellipses_data(lr=1.9, batch_sizes=(10,), simulate=False)[0]
    assert not unstable["stable"] and "exact" not in unstable


def test_fig3_weight_decay_data_optimal_gamma():
    paper, large = plot.fig3_weight_decay_data(simulate=False)
    assert paper["gamma_star"] == 0 and paper["test_loss_star"] == 0  # no noise at w* = u when γ = 0 is stable
    assert paper["lr"] < paper["critical_learning_rate_gamma0"]
    assert large["lr"] > large["critical_learning_rate_gamma0"]
    assert large["window"][1] < 0 and large["gamma_star"] < 0  # Cor 1: negative weight decay
    (s1,) = plot.fig3_weight_decay_data(cases=((0.7, 1),), simulate=False)
    assert s1["gamma_star"] > 0  # at S = 1 the stable window lies above γ = 0


def test_fig3_batch_data_smallest_stable_batch():
    d = plot.fig3_batch_data(simulate=False)
    assert d["smallest_stable"] == 7  # λ*(S) = 2S/(a(S + 2)) > 1 ⇔ S > 6 for a = 1.5
    assert np.all(np.diff(d["exact"]) < 0)


def test_fig2_tail_data_indices():
    (e,) = plot.fig2_tail_data(batch_sizes=(5,), steps=20_000, chains=2)
    assert e["paper"] == 5 and e["continuous_time"] == 11
    assert 4.0 < e["kesten"] < 4.4
    assert 2 < e["hill_simulator"] < 8
    assert e["survival"] is None and e["hill"] is None  # far-tail samples: only through read_reproduced


def test_plot_draws_no_algorithm_of_its_own():
    """The tail sampler and the Hill estimator live in the library's core, not in plot.py."""
    source = Path(plot.__file__).read_text()
    for word in ("chisquare", "standard_normal", "default_rng", "np.log(sorted"):
        assert word not in source


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    if not CLI.exists():
        pytest.skip(f"{CLI} is not built (make build-cli)")
    out = tmp_path_factory.mktemp("reproduced")
    r = subprocess.run([str(CLI), "reproduce", "all", "--out", str(out), "--json", "--quick", "--steps", "20000",
                        "--chains", "2", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return plot.read_reproduced(out)


def test_read_reproduced_gives_every_figure_in_the_data_shape(reproduced):
    assert set(reproduced) == {"fig4a", "fig4_ellipses", "fig3_batch", "fig3_weight_decay", "fig2_tail"}
    d = reproduced["fig4a"]
    assert np.isclose(d["critical_learning_rate"], 5 / 3, rtol=1e-12)
    np.testing.assert_allclose(d["continuous_time"], d["lr"] / 20, rtol=1e-12)
    assert d["sim"]["lr"].size > 0 and np.all(d["sim"]["stderr"] > 0)
    assert [e["batch_size"] for e in reproduced["fig4_ellipses"]] == [50, 10]
    assert all(e["exact"].shape == (2, 2) and e["sim"]["sigma"].shape == (2, 2) for e in reproduced["fig4_ellipses"])
    assert reproduced["fig3_batch"]["smallest_stable"] == 7
    paper = reproduced["fig3_weight_decay"][0]
    assert paper["gamma_star"] == 0 and paper["test_loss_star"] == 0
    for e in reproduced["fig2_tail"]:
        s = e["batch_size"]
        assert e["paper"] == s and e["continuous_time"] == 2 * s + 1
        assert np.all(np.diff(e["survival"]) <= 0) and e["survival"][0] == pytest.approx(0.5, abs=0.01)
        assert e["hill_k"].size > 0 and e["samples"] == 2 * 10_000


def test_figures_draw_the_reproduced_data(tmp_path, reproduced):
    needs_matplotlib()
    for name, draw in (("fig4a", plot.fig4a), ("fig4_ellipses", plot.fig4_ellipses), ("fig3_batch", plot.fig3_batch),
                       ("fig3_weight_decay", plot.fig3_weight_decay), ("fig2_tail", plot.fig2_tail)):
        save(draw(data=reproduced[name]), tmp_path / f"{name}.png")
    paths = plot.save_all(tmp_path / "all", data=reproduced)
    assert len(paths) == 5


def test_network_figure_and_its_data(tmp_path):
    """The network figure draws; its data are the result's own numbers (and the multiplicative edge
    rescales m_1 by λ*/λ)."""
    needs_matplotlib()
    rng = np.random.default_rng(2)
    p = 40
    q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    hessian = (q * np.concatenate([[4.0, 3.0, 2.0], rng.uniform(0, 1, p - 3)])) @ q.T
    hessian = 0.5 * (hessian + hessian.T)
    grads = rng.standard_normal((200, p)) * 0.2
    r = sgdnoise.network_fluctuation(hessian, sgdnoise.noise_operator(grads, 8), p, lr=0.05, k=3, probes=4,
                                     steps=10, batch_size=8)
    d = plot.network_data(r, measured=np.diag(r.sigma_block) * 1.02, measured_stderr=np.full(3, 1e-5))
    np.testing.assert_array_equal(d["predicted"], np.diag(r.sigma_block))
    np.testing.assert_array_equal(d["top"], r.top_eigenvalues)
    assert d["edge"] == 2.0
    assert np.isclose(d["m_max_at_multiplicative"], r.top_eigenvalues[0] * r.critical_learning_rate_multiplicative / 0.05)
    save(plot.network(r, np.diag(r.sigma_block), np.full(3, 1e-5)), tmp_path / "network.png")
    with pytest.raises(ValueError, match="top-k variances"):
        plot.network_data(r, measured=[1.0])


def test_learning_curve_figure(tmp_path):
    """The learning-curve figure draws exact curves with and without a simulation; mismatched
    lengths are refused."""
    needs_matplotlib()
    A = np.array([1.0, 0.5])
    decay = sgdnoise.Schedule.milestones(1.5, 0.1, at=[20, 40], steps=60, batch_size=10)
    ramp = sgdnoise.Schedule.batch_size_ramp(1.5, 10, 10, at=[20, 40], steps=60)
    record = np.arange(0, 61, 5)
    curves = [sgdnoise.learning_curve("label_noise", s, A=A, noise_var=1.0, record=record) for s in (decay, ramp)]
    sim = sgdnoise.simulate_schedule(A, schedule=decay, noise_var=1.0, record=record[1:], chains=500, seed=0)
    save(plot.learning_curve(curves, [sim, None], labels=["lr decay", "batch ramp"]), tmp_path / "curve.png")
    save(plot.learning_curve(curves[0]), tmp_path / "one.png")
    with pytest.raises(ValueError, match="simulations must match"):
        plot.learning_curve(curves, [sim])
