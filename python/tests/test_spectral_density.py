"""sgdnoise.spectral_density (stochastic Lanczos quadrature, docs/theory.md §8) against dense
references: each probe's Gauss rule integrates polynomials of degree < 2·steps exactly (the
probe's quadratic form zᵀHᵏz, with z read from the first vector the recurrence multiplies), the
weights sum to P, and Hutchinson's Tr H is unbiased with an honest standard error (z-scores over
seeds)."""

from __future__ import annotations

import numpy as np
import pytest

import sgdnoise


def dense(values, rng):
    q, _ = np.linalg.qr(rng.standard_normal((len(values), len(values))))
    h = (q * np.asarray(values)) @ q.T
    return 0.5 * (h + h.T)


def test_each_probe_rule_is_exact_for_polynomials_below_twice_the_steps(rng):
    p, steps, probes = 40, 5, 3
    values = 2 * np.sin(np.arange(p)) + 0.5
    h = dense(values, rng)
    seen = []

    def hvp(v):
        seen.append(np.array(v))
        return h @ v

    rho = sgdnoise.spectral_density(hvp, p, probes=probes, steps=steps, seed=4)
    assert rho.hessian_products == probes * steps == len(seen) == rho.nodes.size == rho.weights.size
    scale = np.abs(values).max()
    for k in range(probes):
        z = np.rint(seen[k * steps] * np.sqrt(p))          # v0 = z/|z|, z Rademacher
        assert np.all(np.abs(z) == 1)
        nodes, weights = rho.nodes[k * steps:(k + 1) * steps], rho.weights[k * steps:(k + 1) * steps] * probes
        for degree in range(2 * steps):
            exact = z @ np.linalg.matrix_power(h, degree) @ z
            assert abs(weights @ nodes**degree - exact) <= 1e-11 * p * scale**degree, (k, degree)
        # Degree 2s is beyond the rule: it is not exact in general (the check above has teeth).
        beyond = z @ np.linalg.matrix_power(h, 2 * steps) @ z
        assert abs(weights @ nodes**(2 * steps) - beyond) > 1e-6 * p * scale**(2 * steps)
    assert rho.weights.sum() == pytest.approx(p, rel=1e-13)
    assert np.all(rho.weights >= 0)
    assert rho.trace == pytest.approx(rho.weights @ rho.nodes, rel=1e-13)


def test_enough_steps_resolve_every_function_exactly_per_probe(rng):
    """steps ≥ P: each probe's Krylov space is the whole space (or an invariant part of it), so
    Σ w φ(θ) = (1/n) Σ_probes zᵀφ(H)z for every φ — here φ = exp, against eigh."""
    p = 12
    h = dense(rng.uniform(-1, 2, p), rng)
    seen = []

    def hvp(v):
        seen.append(np.array(v))
        return h @ v

    rho = sgdnoise.spectral_density(hvp, p, probes=1, steps=50, seed=1)
    assert rho.nodes.size <= p and rho.hessian_products <= p + 1
    z = np.rint(seen[0] * np.sqrt(p))
    w, q = np.linalg.eigh(h)
    assert rho.weights @ np.exp(rho.nodes) == pytest.approx(z @ (q * np.exp(w)) @ q.T @ z, rel=1e-10)
    assert rho.trace_stderr == np.inf  # one probe: no spread to measure


def test_hutchinson_trace_is_unbiased_with_an_honest_standard_error(rng):
    p = 30
    values = 3 * np.cos(0.7 * np.arange(p)) + 1
    h = dense(values, rng)
    z = []
    for seed in range(200):
        rho = sgdnoise.spectral_density(h, p, probes=8, steps=2, seed=seed)
        z.append((rho.trace - values.sum()) / rho.trace_stderr)
    z = np.asarray(z)
    assert abs(z.mean()) < 4 / np.sqrt(z.size), z.mean()
    assert 0.8 < z.var(ddof=1) < 2.2, z.var(ddof=1)  # Student t with 7 degrees of freedom: 1.4


def test_equal_seeds_give_equal_densities(rng):
    h = dense(rng.uniform(0, 1, 20), rng)
    a = sgdnoise.spectral_density(h, 20, probes=3, steps=4, seed=9)
    b = sgdnoise.spectral_density(lambda v: h @ v, 20, probes=3, steps=4, seed=9)
    np.testing.assert_array_equal(a.nodes, b.nodes)
    np.testing.assert_array_equal(a.weights, b.weights)
    c = sgdnoise.spectral_density(h, 20, probes=3, steps=4, seed=10)
    assert not np.array_equal(a.nodes, c.nodes)


def test_errors():
    h = np.eye(5)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="probes"):
        sgdnoise.spectral_density(h, 5, probes=0)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="steps"):
        sgdnoise.spectral_density(h, 5, steps=0)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="hvp"):
        sgdnoise.spectral_density(np.eye(4), 5)

    def failing(v):
        raise ValueError("hvp failed")

    with pytest.raises(ValueError, match="hvp failed") as info:
        sgdnoise.spectral_density(failing, 5)
    assert isinstance(info.value.__cause__, sgdnoise.CancelledError)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="returned shape"):
        sgdnoise.spectral_density(lambda v: np.ones(3), 5)
    with pytest.raises(sgdnoise.NumericalError):
        sgdnoise.spectral_density(lambda v: np.full(5, np.nan), 5)
