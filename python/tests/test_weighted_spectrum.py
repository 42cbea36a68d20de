"""A weighted spectrum (sgdnoise.WeightedSpectrum, a spectral_density result) in place of a 1-D
spectrum (docs/theory.md §8), against independent routes: with integer weights, the 1-D spectrum
with node l repeated ω_l times (the same scalars to rounding, the same value on every copy of a
node); with real weights, Thm 3's closed form written here in numpy with weighted sums; and a
stochastic Lanczos density of a dense H against H's exact spectrum (z-scores from the probes, and
the error measured against the number of steps)."""

from __future__ import annotations

import numpy as np
import pytest

import sgdnoise

NODES = np.array([2.5, 1.0, 0.31, 0.07, 0.0004])
COUNTS = np.array([1, 3, 2, 5, 4])
REPEATED = np.repeat(NODES, COUNTS)
FIRST = np.concatenate([[0], np.cumsum(COUNTS)[:-1]])
W = sgdnoise.WeightedSpectrum(NODES, COUNTS.astype(float))


def at_nodes(values):
    """A repeated-spectrum result at the nodes; every copy of a node must carry the same value."""
    for start, count in zip(FIRST, COUNTS):
        assert np.all(values[start:start + count] == values[start])
    return values[FIRST]


def close(a, b, rtol=1e-12):
    if a is None or b is None:
        assert a is None and b is None
        return
    np.testing.assert_allclose(a, b, rtol=rtol, atol=0)


def same_prediction(w, r):
    close(w.sigma, at_nodes(r.sigma))
    close(w.noise, at_nodes(r.noise))
    for field in ("train_loss", "test_loss", "kappa", "critical_learning_rate", "coupling_trace",
                  "flat_direction_noise"):
        close(getattr(w, field), getattr(r, field))


@pytest.mark.parametrize("lr, s, mu", [(0.3, 4, 0.0), (0.2, 2, 0.5), (0.01, 1, 0.9)])
def test_integer_weights_give_the_repeated_spectrum(lr, s, mu):
    per_node = 0.5 * lr * (1 + 0.3 * np.arange(5))
    for rate, rate_repeated in ((lr, lr), (per_node, np.repeat(per_node, COUNTS))):
        same_prediction(sgdnoise.label_noise(W, 0.7, rate, s, mu), sgdnoise.label_noise(REPEATED, 0.7, rate_repeated, s, mu))
        same_prediction(sgdnoise.high_dimensional(W, 3.0, 0.7, rate, s, mu),
                        sgdnoise.high_dimensional(REPEATED, 3.0, 0.7, rate_repeated, s, mu))
    # The spectral_density result and any object with nodes and weights are accepted alike.
    class Duck:
        nodes, weights = NODES.tolist(), COUNTS.tolist()

    same_prediction(sgdnoise.label_noise(Duck(), 0.7, lr, s, mu), sgdnoise.label_noise(REPEATED, 0.7, lr, s, mu))


@pytest.mark.parametrize("s, mu", [(1, 0.0), (7, 0.5)])
def test_integer_weights_critical_learning_rates(s, mu):
    gamma = 0.01 * np.arange(5)
    close(sgdnoise.critical_learning_rate(W, s, mu), sgdnoise.critical_learning_rate(REPEATED, s, mu))
    close(sgdnoise.critical_learning_rate(W, s, mu, model="high_dimensional"),
          sgdnoise.critical_learning_rate(REPEATED, s, mu, model="high_dimensional"))
    close(sgdnoise.critical_learning_rate(W, s, mu, model="l2_regularized", weight_decay=gamma),
          sgdnoise.critical_learning_rate(REPEATED, s, mu, model="l2_regularized", weight_decay=np.repeat(gamma, COUNTS)))
    assert sgdnoise.smallest_stable_batch_size(W, 0.5, mu) == sgdnoise.smallest_stable_batch_size(REPEATED, 0.5, mu)


@pytest.mark.parametrize("loss", [0.3, 0.0])
def test_integer_weights_minimum_fluctuation(loss):
    per_node = 0.1 + 0.02 * np.arange(5)
    for rate, rate_repeated in ((0.2, 0.2), (per_node, np.repeat(per_node, COUNTS))):
        sw, kw, cw = sgdnoise.minimum_fluctuation(W, loss, rate, 3, momentum=0.3)
        sr, kr, cr = sgdnoise.minimum_fluctuation(REPEATED, loss, rate_repeated, 3, momentum=0.3)
        assert kw == kr
        close(sw, at_nodes(sr))
        close(cw, cr)
    # Past the weighted edge: unstable, at the repeated spectrum's critical learning rate.
    edge = sgdnoise.minimum_fluctuation(REPEATED, 0.3, 0.1, 3)[2]
    with pytest.raises(sgdnoise.UnstableError) as info:
        sgdnoise.minimum_fluctuation(W, 0.3, 1.01 * edge, 3)
    close(info.value.critical_learning_rate, edge)


def test_integer_weights_sweeps():
    lr = np.array([0.05, 0.2, 0.4, 0.9, 3.0])
    s = np.array([1, 4, 4, 16, 2])
    mu = np.array([0.0, 0.0, 0.5, 0.2, 0.0])
    w = sgdnoise.label_noise_sweep(W, 0.5, lr, s, mu)
    r = sgdnoise.label_noise_sweep(REPEATED, 0.5, lr, s, mu)
    assert np.isinf(r["kappa"]).any() and np.isfinite(r["kappa"]).any()
    for key in r:
        np.testing.assert_allclose(w[key], r[key], rtol=1e-12)
    w = sgdnoise.scaling_law(W, 0.5, 0.02, [1, 8, 64, 4096])
    r = sgdnoise.scaling_law(REPEATED, 0.5, 0.02, [1, 8, 64, 4096])
    assert np.isinf(r["trace_sigma"]).any() and np.isfinite(r["trace_sigma"]).any()
    for key in ("trace_sigma", "trace_sigma_law"):
        np.testing.assert_allclose(w[key], r[key], rtol=1e-12)


@pytest.mark.parametrize("lr, s, mu", [(0.1, 3, 0.0), (0.05, 10, 0.6)])
def test_real_weights_follow_the_closed_form(lr, s, mu):
    """Thm 3 with weighted traces: G_μ = 2(1−μ) − ((1−μ)/(1+μ) + 1/S)λa, T = Σ ω λa/g,
    κ = T/(1 − T/S), Σ_l = (σ²/S)(1 + κ/S)λ/g_l, L_test = σ²κ/(2S); λ* the root of T(λ) = S."""
    weights = np.array([0.37, 2.9, 11.25, 0.004, 6.5])
    spectrum = sgdnoise.WeightedSpectrum(NODES, weights)
    sigma2 = 0.8
    p = sgdnoise.label_noise(spectrum, sigma2, lr, s, mu)
    q = (1 - mu) / (1 + mu) + 1 / s
    g = 2 * (1 - mu) - q * lr * NODES
    t = weights @ (lr * NODES / g)
    kappa = t / (1 - t / s)
    close(p.kappa, kappa, 1e-13)
    close(p.test_loss, sigma2 / (2 * s) * kappa, 1e-13)
    close(p.sigma, sigma2 / s * (1 + kappa / s) * lr / g, 1e-13)
    lc = sgdnoise.critical_learning_rate(spectrum, s, mu)
    close(weights @ (lc * NODES / (2 * (1 - mu) - q * lc * NODES)), s, 1e-12)
    close(p.critical_learning_rate, lc, 1e-14)
    # Scaling every weight by c is the same as scaling T's weights: κ(cω) from the same formula.
    p2 = sgdnoise.label_noise(sgdnoise.WeightedSpectrum(NODES, 2.5 * weights), sigma2, lr, s, mu)
    t2 = 2.5 * t
    close(p2.kappa, t2 / (1 - t2 / s), 1e-13)


def test_where_a_weighted_spectrum_is_refused():
    u = np.ones(5)
    for call in (lambda: sgdnoise.input_noise(W, 0.1, u, 0.1, 2, 1.0),
                 lambda: sgdnoise.l2_regularized(W, u, 0.1, 0.1, 2),
                 lambda: sgdnoise.damped_newton(W, 1.0, 0.1, 2),
                 lambda: sgdnoise.natural_gradient(W, 0.1, 2),
                 lambda: sgdnoise.continuous_time(W, 1.0, 0.1, 2),
                 lambda: sgdnoise.minimum_noise(W, 0.1, 2),
                 lambda: sgdnoise.minimum_noise(W, 0.1, 2, weight_decay=0.1, w_star=u),
                 lambda: sgdnoise.optimal_weight_decay(W, u, 0.1, 2)):
        with pytest.raises(sgdnoise.InvalidArgumentError, match="WEIGHTED_SPECTRUM|weighted spectrum"):
            call()
    with pytest.raises(sgdnoise.InvalidArgumentError, match="weight decay"):
        sgdnoise.minimum_fluctuation(W, 0.1, 0.1, 2, weight_decay=0.1, w_star=u)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="matrix"):
        sgdnoise.label_noise(W, 1.0, np.eye(5), 2)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="weights"):
        sgdnoise.label_noise(sgdnoise.WeightedSpectrum(NODES, -np.ones(5)), 1.0, 0.1, 2)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="equal lengths"):
        sgdnoise.WeightedSpectrum(NODES, np.ones(4))


@pytest.mark.parametrize("fraction", [0.18, 0.88])
def test_a_spectral_density_approaches_the_dense_answers(rng, fraction):
    """SLQ of a dense H (P = 300, a network-like decaying spectrum) fed to label_noise and
    critical_learning_rate at λ = fraction · λ*. The trace T = Σ λa/g of label noise is checked by
    a z-score against the probes' own spread (each probe's estimate is n Σ_seg ω φ(θ)); the errors
    of κ and λ* are printed against the number of steps (run pytest -s to see them)."""
    p, probes = 300, 40
    values = 2.0 * 0.985 ** np.arange(p)
    q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    h = (q * values) @ q.T
    h = 0.5 * (h + h.T)
    s, sigma2 = 8, 1.0
    exact_lc = sgdnoise.critical_learning_rate(values, s)
    lr = fraction * exact_lc
    exact = sgdnoise.label_noise(values, sigma2, lr, s)
    phi = lambda a: lr * a / (2 - (1 + 1 / s) * lr * a)  # noqa: E731
    t_exact = phi(values).sum()
    print(f"\nP = {p}, {probes} probes, lr = {fraction} lr*: exact kappa = {exact.kappa:.6g}, lr* = {exact_lc:.6g}")
    for steps in (1, 2, 4, 8, 16, 32):
        rho = sgdnoise.spectral_density(h, p, probes=probes, steps=steps, seed=3)
        lc = sgdnoise.critical_learning_rate(rho, s)
        per_probe = probes * (rho.weights * phi(rho.nodes)).reshape(probes, -1).sum(axis=1)
        z = (per_probe.mean() - t_exact) / (per_probe.std(ddof=1) / np.sqrt(probes))
        kappa = sgdnoise.label_noise(rho, sigma2, lr, s).kappa if lr < lc else np.inf
        print(f"steps {steps:2d}: kappa rel. error {kappa / exact.kappa - 1:+.2e}, "
              f"lr* rel. error {lc / exact_lc - 1:+.2e}, z(T) = {z:+.2f}")
        if steps >= 4:  # φ is smooth on the spectrum: a few nodes resolve it, the probes' noise remains
            assert abs(z) < 4.5, (steps, z)
            close(lc, exact_lc, 0.05)  # loose sanity bounds; the z-score is the test
            close(kappa, exact.kappa, 0.2)
        assert rho.weights.sum() == pytest.approx(p, rel=1e-12)
