"""Critical learning rates, sweeps, the scaling law, tail indices and the optimal weight decay
(docs/theory.md §6, and Thm 4 / Cor 1 of docs/theory.md §4) against independent routes.

Routes (reference.py; none calls sgdnoise):
- lambda* of label noise: scipy.optimize.brentq on the sum of docs/theory.md §6; in 1-d, the
  root solved by hand. High-dimensional lambda*: brentq on its Thm-6 condition. L2 lambda*: the
  root of rho = 1 for the exact second-moment recursion of the (w, m) system.
- Sweeps and the scaling law: per-point label_noise calls, and the paper's closed forms evaluated
  here.
- Kesten tail index: scipy.integrate.quad of E|1 - (lr/S) a chi^2_S|^k against scipy.stats.chi2,
  and brentq; at even integer k, E|1 - cX|^k = 1 is a polynomial in c (moments of chi^2), solved
  with numpy.roots, with no quadrature at all.
- Optimal weight decay: a dense scan of L_test(gamma) (Thm 4 at mu = 0, the brute-force Kronecker
  solve with the rho stability check otherwise), refined with scipy.optimize.minimize_scalar.

Tolerances are stated at each test with their reason.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize

import sgdnoise
from sgdnoise import errors

from reference import (
    EPS,
    critical_scale,
    deterministic_edge,
    high_dimensional_critical_brentq,
    kesten_log_slope,
    kesten_tail_index,
    l2_model,
    label_noise_critical_1d,
    label_noise_critical_brentq,
    label_noise_trace_sum,
    random_orthogonal,
    random_spd,
    rel_err,
    solve_theorem1,
    spectral_radius,
    sym,
    theorem4_test_loss,
    theorem4_test_loss_grid,
)


def seeded(*parts) -> np.random.Generator:
    text = "/".join(map(str, parts))
    return np.random.default_rng(sum((i + 1) * ord(ch) for i, ch in enumerate(text)) % 2**32)


def assert_close(got, expected, rtol, what):
    err = rel_err(got, expected)
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:.1e}; expected {expected!r}, observed {got!r}"


# --------------------------------------------------------------------------------------------
# Critical learning rates

@pytest.mark.parametrize("mu", [0.0, 0.4, 0.8])
@pytest.mark.parametrize("S", [1, 2, 7, 64, 1000])
@pytest.mark.parametrize("layout", ["dense", "spectrum"])
def test_label_noise_critical_learning_rate_brentq(mu, S, layout):
    """lambda* = the root of sum_i lam a_i/(2(1-mu) - q lam a_i) = S below the pole (brentq).

    1e-12 relative: the sum's terms are positive and lam d/dlam of the sum exceeds the sum (= S)
    at the root, so the root is conditioned like the sum itself (~D eps); eigenvalues of the dense A
    (condition 5) move lambda* by ~eps * cond."""
    rng = seeded("crit", mu, S, layout)
    d = 6
    q = random_orthogonal(rng, d)
    a = rng.uniform(0.2, 1.0, d)
    A = sym((q * a) @ q.T) if layout == "dense" else a
    expected = label_noise_critical_brentq(a, S, mu)
    assert_close(sgdnoise.critical_learning_rate(A, S, mu), expected, 1e-12, "critical_learning_rate")
    got = sgdnoise.label_noise(A, 1.0, 0.5 * expected, S, mu).critical_learning_rate
    assert_close(got, expected, 1e-12, "label_noise(...).critical_learning_rate")


@pytest.mark.parametrize("a", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("S", [1, 4, 10, 100])
@pytest.mark.parametrize("mu", [0.0, 0.5, 0.9])
def test_label_noise_critical_learning_rate_1d_by_hand(a, S, mu):
    """1-d: lam a/(2(1-mu) - q lam a) = S gives lam* = 2(1-mu)(1+mu)S/(((1-mu)S + 2(1+mu)) a)
    (mu = 0: 2S/((S+2)a); S = 1, a = 1: 2/3). A handful of roundings: 1e-13."""
    expected = label_noise_critical_1d(a, S, mu)
    if mu == 0.0:
        assert math.isclose(expected, 2 * S / ((S + 2) * a), rel_tol=4 * EPS)
    assert_close(sgdnoise.critical_learning_rate([a], S, mu), expected, 1e-13, "1-d lambda*")
    assert_close(sgdnoise.critical_learning_rate(np.array([[a]]), S, mu), expected, 1e-13, "1-d lambda* (dense)")


@pytest.mark.parametrize("S", [1, 2, 5, 50])
def test_high_dimensional_critical_learning_rate(S):
    """Thm 6 (mu = 0): sum_i 1/(2/(lam a_i) - 1 + 1/S) = S (brentq); at S = 1 it reads
    lam Tr[A]/2 = 1, i.e. lam* = 2/Tr A, by hand. 1e-12 as for label noise."""
    rng = seeded("hd-crit", S)
    d = 6
    A = random_spd(rng, d, 0.2, 1.0)
    a = np.linalg.eigvalsh(A)
    expected = high_dimensional_critical_brentq(a, S)
    if S == 1:
        assert math.isclose(expected, 2 / a.sum(), rel_tol=1e-14)
    for layout in (A, a):
        got = sgdnoise.critical_learning_rate(layout, S, model="high_dimensional")
        assert_close(got, expected, 1e-12, "high-dimensional lambda*")
    got = sgdnoise.high_dimensional(A, 2.0, 1.0, 0.5 * expected, S).critical_learning_rate
    assert_close(got, expected, 1e-12, "high_dimensional(...).critical_learning_rate")


@pytest.mark.parametrize("mu", [0.0, 0.4, 0.8])
@pytest.mark.parametrize("gamma", ["-0.1", "0", "0.3", "commuting_matrix"])
@pytest.mark.parametrize("S", [1, 4])
def test_l2_critical_learning_rate_brute_force(mu, gamma, S):
    """L2 lambda* against the root of rho = 1 of the (w, m) second-moment recursion of the L2
    model (H = A + Gamma, M = A), found by brentq. 1e-11: rho comes from numpy's eigvals (~1e-14)
    and crosses 1 with slope c drho/dc >= 0.1 (asserted)."""
    rng = seeded("l2-crit", mu, gamma, S)
    d = 4
    q = random_orthogonal(rng, d)
    a = rng.uniform(0.2, 1.0, d)
    A = sym((q * a) @ q.T)
    u = rng.standard_normal(d)
    G = sym((q * rng.uniform(-0.1, 0.4, d)) @ q.T) if gamma == "commuting_matrix" else float(gamma)
    make = lambda c: l2_model(A, u, G, c, S, mu)
    expected = critical_scale(make, deterministic_edge(make(1.0)) * 1.001)
    h = 1e-5
    slope = (spectral_radius(make(expected * (1 + h))) - spectral_radius(make(expected * (1 - h)))) / (2 * h)
    assert slope >= 0.1
    got = sgdnoise.critical_learning_rate(A, S, mu, model="l2_regularized", weight_decay=G)
    assert_close(got, expected, 1e-11, "L2 lambda*")


# --------------------------------------------------------------------------------------------
# Sweep and scaling law

def test_label_noise_sweep_against_pointwise_calls():
    """label_noise_sweep on a random spectrum, lr (9,1,1) x batch (1,3,1) x momentum (1,1,2)
    broadcast: kappa, losses and lambda* against label_noise at each point (inf where it raises
    UnstableError), and against the section-6 sum evaluated here. kappa = T/(1 - T/S) amplifies the
    ~D eps rounding of T by 1/(1 - T/S): tolerance 1e-13/(1 - T/S), at least 1e-12."""
    rng = seeded("sweep")
    spectrum = rng.uniform(0.1, 1.0, 8)
    s2 = 0.8
    lr = np.geomspace(0.05, 3.0, 9)[:, None, None]
    S = np.array([1, 4, 32])[None, :, None]
    mu = np.array([0.0, 0.5])[None, None, :]
    out = sgdnoise.label_noise_sweep(spectrum, s2, lr, S, mu)
    shape = (9, 3, 2)
    for key in ("kappa", "train_loss", "test_loss", "critical_learning_rate"):
        assert out[key].shape == shape, key
    n_stable = n_unstable = 0
    for i, j, k in np.ndindex(*shape):
        l, s, m = float(lr[i, 0, 0]), int(S[0, j, 0]), float(mu[0, 0, k])
        crit = label_noise_critical_brentq(spectrum, s, m)
        assert abs(l / crit - 1) > 1e-3, "grid point too close to lambda*"
        assert_close(out["critical_learning_rate"][i, j, k], crit, 1e-12, f"lambda* at {(l, s, m)}")
        try:
            p = sgdnoise.label_noise(spectrum, s2, l, s, m)
        except errors.UnstableError as exc:
            n_unstable += 1
            assert l > crit
            for key in ("kappa", "train_loss", "test_loss"):
                assert out[key][i, j, k] == np.inf, f"{key} at unstable {(l, s, m)}"
            assert_close(out["critical_learning_rate"][i, j, k], exc.critical_learning_rate, 1e-14, "lambda*")
            continue
        n_stable += 1
        assert l < crit
        t = label_noise_trace_sum(l * spectrum, s, m)
        kappa = t / (1 - t / s)
        tol = max(1e-12, 1e-13 / (1 - t / s))
        for key, value in (("kappa", p.kappa), ("train_loss", p.train_loss), ("test_loss", p.test_loss),
                           ("critical_learning_rate", p.critical_learning_rate)):
            assert_close(out[key][i, j, k], value, tol if key != "critical_learning_rate" else 1e-12,
                         f"{key} at {(l, s, m)} vs label_noise")
        assert_close(out["kappa"][i, j, k], kappa, tol, "kappa vs the section-6 sum")
        assert_close(out["test_loss"][i, j, k], 0.5 * s2 / s * kappa, tol, "L_test = (s2/2S) kappa")
    assert n_stable >= 10 and n_unstable >= 10


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_scaling_law(mu):
    """scaling_law along lam = kS: trace_sigma against label_noise traces and against the paper's
    closed form Tr Sigma = (s2/S)(1 + kappa/S) sum_i lam/G_i (scalar lam); inf exactly beyond
    lambda*(S) (brentq); the law is k s2 D/(2(1-mu)) at every S; the exact trace exceeds it and
    grows with S."""
    rng = seeded("scaling", mu)
    spectrum = rng.uniform(0.1, 1.0, 6)
    s2, k = 0.9, 0.02
    sizes = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    out = sgdnoise.scaling_law(spectrum, s2, k, sizes, mu)
    assert np.array_equal(out["batch_size"], sizes)
    assert_close(out["lr"], k * sizes, 4 * EPS, "lr = kS")
    law = k * s2 * spectrum.size / (2 * (1 - mu))
    assert_close(out["trace_sigma_law"], np.full(sizes.size, law), 4 * EPS, "lambda/S law")
    q = lambda S: (1 - mu) / (1 + mu) + 1 / S
    seen_inf = False
    for i, S in enumerate(sizes):
        lam = k * S
        if lam >= label_noise_critical_brentq(spectrum, int(S), mu):
            assert out["trace_sigma"][i] == np.inf and out["ratio"][i] == np.inf
            with pytest.raises(errors.UnstableError):
                sgdnoise.label_noise(spectrum, s2, lam, int(S), mu)
            seen_inf = True
            continue
        assert not seen_inf, "stable again beyond an unstable batch size"
        g = 2 * (1 - mu) - q(S) * lam * spectrum
        t = np.sum(lam * spectrum / g)
        kappa = t / (1 - t / S)
        trace = s2 / S * (1 + kappa / S) * np.sum(lam / g)
        assert_close(out["trace_sigma"][i], trace, 1e-12, f"trace at S = {S}")
        assert_close(out["trace_sigma"][i], sgdnoise.label_noise(spectrum, s2, lam, int(S), mu).sigma.sum(), 1e-13,
                     f"trace vs label_noise at S = {S}")
        assert_close(out["ratio"][i], trace / law, 1e-12, "ratio")
    assert seen_inf, "the sweep should reach lambda*(S)"
    finite = out["ratio"][np.isfinite(out["ratio"])]
    assert np.all(finite > 1) and np.all(np.diff(finite) > 0), f"ratio along lam = kS: {finite}"


def test_scaling_law_small_ratio_limit():
    """As k -> 0 the exact trace obeys the lambda/S law: ratio - 1 = O(lam a) (here <= 1e-4)."""
    spectrum = np.array([0.2, 0.5, 1.0])
    out = sgdnoise.scaling_law(spectrum, 1.0, 1e-6, [1, 4, 16], 0.0)
    assert np.all(np.abs(out["ratio"] - 1) <= 1e-4), out["ratio"]


# --------------------------------------------------------------------------------------------
# Tail index

def test_tail_index_reference_value():
    """S = 10, a lam = 1: paper 10, exact Kesten index ~ 7.51 (docs/theory.md §6), against
    quad + brentq to 1e-8 relative (quad at epsrel 1e-13 resolves log E|.|^k to ~1e-12)."""
    got = sgdnoise.tail_index(1, 1, 10, "kesten")
    assert 7.5 < got < 7.52
    assert_close(got, kesten_tail_index(1.0, 1.0, 10), 1e-8, "Kesten index")
    assert sgdnoise.tail_index(1.0, 1.0, 10, method="paper") == 10.0


@pytest.mark.parametrize("a, lr, S", [(1.0, 0.5, 4), (2.0, 0.3, 1), (1.0, 1.5, 32), (0.5, 3.0, 10), (0.8, 0.05, 2)])
def test_kesten_tail_index_quadrature(a, lr, S):
    """Kesten index against quad + brentq at several (a, lr, S): 1e-8 relative."""
    assert_close(sgdnoise.tail_index(a, lr, S, "kesten"), kesten_tail_index(a, lr, S), 1e-8, "Kesten index")


@pytest.mark.parametrize("k", [2, 4, 6, 8])
@pytest.mark.parametrize("S", [1, 3, 10])
def test_kesten_tail_index_even_moments_exact(k, S):
    """At an even integer k, E(1 - cX)^k = sum_j C(k, j)(-c)^j E X^j with E X^j = S(S+2)...(S+2j-2):
    E(1 - cX)^k = 1 is a polynomial equation in c whose positive root c_k gives tail index exactly
    k at lr = c_k S (a = 1). No quadrature; 1e-10 (polynomial roots are accurate to ~1e-14)."""
    moments = [math.prod(S + 2 * i for i in range(j)) for j in range(k + 1)]
    # (E(1 - cX)^k - 1)/c = sum_{j>=1} C(k, j)(-1)^j m_j c^{j-1}
    coeffs = [math.comb(k, j) * (-1) ** j * moments[j] for j in range(k, 0, -1)]
    roots = np.roots(coeffs)
    positive = sorted(r.real for r in roots if abs(r.imag) < 1e-12 and r.real > 0)
    c_k = positive[0]  # E(1 - cX)^k < 1 for 0 < c < c_k (convexity in c at small c), = 1 at c_k
    poly = lambda c: sum(math.comb(k, j) * (-c) ** j * moments[j] for j in range(k + 1))
    assert poly(0.5 * c_k) < 1 and abs(poly(c_k) - 1) < 1e-10
    got = sgdnoise.tail_index(1.0, c_k * S, S, "kesten")
    assert_close(got, k, 1e-10, f"Kesten index at c = {c_k}")


@pytest.mark.parametrize("a, lr, S", [(1.0, 1.0, 10), (2.0, 0.7, 3), (0.5, 0.1, 64)])
def test_paper_and_continuous_time_tail_index(a, lr, S):
    """beta = 2S/(a lam) - S [Sec 6.6] and its continuous-time limit 2S/(a lam) + 1."""
    assert_close(sgdnoise.tail_index(a, lr, S, "paper"), 2 * S / (a * lr) - S, 4 * EPS, "paper")
    assert_close(sgdnoise.tail_index(a, lr, S, "continuous_time"), 2 * S / (a * lr) + 1, 4 * EPS, "continuous time")


@pytest.mark.parametrize("a", [0.5, 1.0, 3.0])
def test_tail_index_two_at_critical_learning_rate(a):
    """At lambda* of the 1-d label-noise model (S = 10: lam* a = 2S/(S+2)), Sigma diverges: both
    the paper's index and the Kesten index equal 2 (E(1 - cX)^2 = 1 exactly at c = 2/(S+2)).
    Paper: a few roundings (1e-13); Kesten: 1e-10 (the library's root tolerance is 1e-12)."""
    S = 10
    lam_star = label_noise_critical_1d(a, S, 0.0)
    assert_close(sgdnoise.critical_learning_rate([a], S), lam_star, 1e-13, "lambda*")
    assert_close(sgdnoise.tail_index(a, lam_star, S, "paper"), 2.0, 1e-13, "paper index at lambda*")
    assert_close(sgdnoise.tail_index(a, lam_star, S, "kesten"), 2.0, 1e-10, "Kesten index at lambda*")


def test_tail_index_no_stationary_law():
    """E log|1 - (lam/S) a chi^2_S| >= 0 (here S = 1, a lam = 4: +0.356 by quad): UnstableError."""
    assert kesten_log_slope(4.0, 1) > 0.3
    with pytest.raises(errors.UnstableError):
        sgdnoise.tail_index(4.0, 1.0, 1, "kesten")


# --------------------------------------------------------------------------------------------
# Optimal weight decay and the L_test(gamma) curve

def l2_loss_reference(A, u, lr, S, mu):
    """L_test(gamma) for Gamma = gamma I: Thm 4 in A's eigenbasis at mu = 0, else the brute-force
    Kronecker solve with the rho < 1 stability check; +inf where unstable or K not PD."""
    a, q = np.linalg.eigh(A)
    ur = q.T @ u

    def loss(gamma):
        if mu == 0.0:
            return theorem4_test_loss(a, ur, gamma, lr, S)
        if gamma <= -a.min():
            return np.inf
        model = l2_model(A, u, gamma, lr, S, mu)
        if not spectral_radius(model) < 1:
            return np.inf
        return model.test_loss(solve_theorem1(model))

    return loss, (-a.min(), 2 * (1 + mu) / lr - a.min())


def minimise_reference(loss, interval, n):
    """Dense scan of ``loss`` on n interior points of ``interval``, then minimize_scalar (bounded)
    on the two neighbours of the best point."""
    lo, hi = interval
    grid = lo + (hi - lo) * (np.arange(n) + 0.5) / n
    values = np.array([loss(g) for g in grid])
    best = int(np.argmin(values))
    assert np.isfinite(values[best]), "no stable weight decay in the scan"
    left = grid[best - 1] if best > 0 else lo
    right = grid[best + 1] if best < n - 1 else hi
    res = scipy.optimize.minimize_scalar(loss, bounds=(left, right), method="bounded",
                                         options=dict(xatol=1e-14, maxiter=500))
    return (res.x, res.fun) if res.fun <= values[best] else (grid[best], values[best])


def assert_optimum(got, ref, loss):
    """L_test at the optimum to 1e-12 relative (the minimum value is well conditioned), and never
    below the reference minimum by more than that; gamma* to the flatness limit
    |dgamma| <~ sqrt(2 * 1e-13 * L / L''), L'' by central differences."""
    g_ref, l_ref = ref
    g_lib, l_lib = got
    assert_close(l_lib, l_ref, 1e-12, "L_test at gamma*")
    assert_close(loss(g_lib), l_lib, 1e-12, "the library's L_test(gamma*) is the loss at its gamma*")
    h = 1e-3 * max(1.0, abs(g_ref))
    curvature = (loss(g_ref + h) - 2 * l_ref + loss(g_ref - h)) / h**2
    assert curvature > 0
    tol = 10 * math.sqrt(2 * 1e-13 * l_ref / curvature) + 1e-12 * max(1.0, abs(g_ref))
    assert abs(g_lib - g_ref) <= tol, f"gamma*: library {g_lib}, reference {g_ref}, tolerance {tol:.2e}"


def test_optimal_weight_decay_negative():
    """Cor 1: 1-d, a = 1, S = 4, lam = 1.38 > lam*(gamma = 0) = 8/6: L_test(0) = inf (gamma = 0
    unstable, confirmed by rho >= 1) and gamma* < 0."""
    A, u, lr, S = np.array([[1.0]]), np.array([1.0]), 1.38, 4
    assert lr > label_noise_critical_1d(1.0, S, 0.0)
    assert spectral_radius(l2_model(A, u, 0.0, lr, S, 0.0)) > 1
    with pytest.raises(errors.UnstableError):
        sgdnoise.l2_regularized(A, u, 0.0, lr, S)
    assert sgdnoise.l2_test_loss_curve(A, u, lr, S, [0.0])[0] == np.inf
    loss, interval = l2_loss_reference(A, u, lr, S, 0.0)
    ref = minimise_reference(loss, interval, 20001)
    got = sgdnoise.optimal_weight_decay(A, u, lr, S)
    assert got[0] < 0 and ref[0] < 0
    assert_optimum(got, ref, loss)
    got_spectrum = sgdnoise.optimal_weight_decay([1.0], u, lr, S)
    assert_optimum(got_spectrum, ref, loss)


@pytest.mark.parametrize("mu, S, lr_factor", [(0.0, 8, 1.01), (0.0, 16, 1.1), (0.4, 2, 1.02), (0.4, 2, 1.05)])
def test_optimal_weight_decay_random(mu, S, lr_factor):
    """A random 3-d problem beyond the edge of gamma = 0 (lam = factor * lam*(gamma = 0), so
    L_test(0) = inf and gamma* != 0; negative at mu = 0, positive here at mu = 0.4): the library's
    gamma* and L_test against a dense scan + minimize_scalar of the reference L_test(gamma)."""
    rng = seeded("owd", mu, lr_factor)
    d = 3
    A = random_spd(rng, d, 0.3, 1.0)
    u = rng.standard_normal(d)
    lr = lr_factor * label_noise_critical_brentq(np.linalg.eigvalsh(A), S, mu)
    loss, interval = l2_loss_reference(A, u, lr, S, mu)
    ref = minimise_reference(loss, interval, 4001 if mu == 0.0 else 801)
    got = sgdnoise.optimal_weight_decay(A, u, lr, S, mu)
    assert_optimum(got, ref, loss)


def test_optimal_weight_decay_zero():
    """No label noise and gamma = 0 stable: L_test(0) = 0 exactly (Sigma = 0, w* = u) and
    L_test >= 0, so gamma* = 0. L_test ~ c gamma^2 near 0 and the search stops at 1e-12 relative,
    so |gamma*| <= 1e-9 and L_test(gamma*) <= 1e-15 (1/2 u^T A u)."""
    rng = seeded("owd-zero")
    d, S = 3, 4
    A = random_spd(rng, d, 0.2, 1.0)
    u = rng.standard_normal(d)
    lr = 0.5 * label_noise_critical_brentq(np.linalg.eigvalsh(A), S, 0.0)
    p = sgdnoise.l2_regularized(A, u, 0.0, lr, S)
    # w* - u = K^{-1} A u - u is zero up to rounding (~10 eps |u|), so L_test(0) ~ (10 eps)^2 u^T A u.
    assert 0.0 <= p.test_loss <= (10 * EPS) ** 2 * (u @ A @ u), p.test_loss
    gamma, loss = sgdnoise.optimal_weight_decay(A, u, lr, S)
    assert abs(gamma) <= 1e-9, gamma
    assert 0.0 <= loss <= 1e-15 * 0.5 * (u @ A @ u), loss


@pytest.mark.parametrize("mu", [0.0, 0.4])
def test_l2_test_loss_curve_inf_exactly_where_unstable(mu):
    """l2_test_loss_curve is inf exactly where l2_regularized raises UnstableError (and where rho >= 1
    for the reference), and equals its test_loss elsewhere (and the reference L_test, 1e-12)."""
    rng = seeded("curve", mu)
    d, S = 3, (8 if mu == 0.0 else 2)
    A = random_spd(rng, d, 0.3, 1.0)
    u = rng.standard_normal(d)
    a_min = np.linalg.eigvalsh(A).min()
    lr = 1.03 * label_noise_critical_brentq(np.linalg.eigvalsh(A), S, mu)
    loss, (lo, hi) = l2_loss_reference(A, u, lr, S, mu)
    gammas = np.linspace(lo + 1e-3, hi + 0.3, 61)
    curve = sgdnoise.l2_test_loss_curve(A, u, lr, S, gammas, mu)
    assert curve.shape == gammas.shape
    kinds = set()
    for g, value in zip(gammas, curve):
        rho = spectral_radius(l2_model(A, u, g, lr, S, mu))
        assert abs(rho - 1) > 1e-6, "grid point too close to the edge"
        try:
            p = sgdnoise.l2_regularized(A, u, g, lr, S, mu)
        except errors.UnstableError:
            kinds.add("unstable")
            assert value == np.inf, f"curve finite at unstable gamma = {g}"
            assert rho > 1
            continue
        kinds.add("stable")
        assert rho < 1
        # The stationary system's condition number grows like 1/(1 - rho) towards the edge.
        tol = max(1e-12, 1e-13 / (1 - rho))
        assert_close(value, p.test_loss, tol, f"curve vs l2_regularized at gamma = {g}")
        assert_close(value, loss(g), tol, f"curve vs reference at gamma = {g}")
    assert kinds == {"stable", "unstable"}
    # gamma <= -a_min: A + gamma I is not positive definite; the curve is inf and l2_regularized
    # rejects the weight decay as invalid input.
    bad = -a_min - 0.05
    assert sgdnoise.l2_test_loss_curve(A, u, lr, S, [bad], mu)[0] == np.inf
    with pytest.raises(errors.InvalidArgumentError):
        sgdnoise.l2_regularized(A, u, bad, lr, S, mu)


@pytest.mark.parametrize("a, u, S, lr", [
    ([1.0], [1.0], 3, 1.2247436466467174),
    ([1.0, 0.6], [1.0, 0.5], 4, 1.3112552377144966),
])
def test_optimal_weight_decay_narrow_stable_window(a, u, S, lr):
    """lr is 1e-6 below the largest lr for which any gamma is stable (located offline by bisection on
    the Thm-4 reference); there the stable gamma-window is narrower than the spacing of a 257-point grid over
    the candidate interval (-a_min, 2/lr - a_max). optimal_weight_decay promises the minimum over the
    whole stable interval: it must find the window and its minimum. Reference: a 400001-point scan
    of Thm 4 and minimize_scalar; L_test to max(1e-12, 1e-13/(1 - rho)) (the stationary system's
    condition number ~ 1/(1 - rho) is ~1e6 here)."""
    a, u = np.asarray(a), np.asarray(u)
    lo, hi = -a.min(), 2 / lr - a.max()
    grid = lo + (hi - lo) * (np.arange(400001) + 0.5) / 400001
    values = theorem4_test_loss_grid(a, u, grid, lr, S)
    stable = grid[np.isfinite(values)]
    assert stable.size > 0 and stable.max() - stable.min() < (hi - lo) / 257, "window not narrow"
    best = int(np.argmin(values))
    loss = lambda g: theorem4_test_loss(a, u, g, lr, S)
    res = scipy.optimize.minimize_scalar(loss, bounds=(grid[best - 1], grid[best + 1]), method="bounded",
                                         options=dict(xatol=1e-14))
    g_ref, l_ref = res.x, res.fun
    A = np.diag(a)
    rho = spectral_radius(l2_model(A, u, g_ref, lr, S, 0.0))
    assert rho < 1
    l_lib_at_ref = sgdnoise.l2_regularized(A, u, g_ref, lr, S).test_loss  # the library agrees it is stable
    tol = max(1e-12, 1e-13 / (1 - rho))
    assert_close(l_lib_at_ref, l_ref, tol, "l2_regularized at the reference gamma*")
    g_lib, l_lib = sgdnoise.optimal_weight_decay(A, u, lr, S)
    assert_close(l_lib, l_ref, tol, f"minimum L_test (library gamma* = {g_lib}, reference {g_ref})")


# --- The smallest stable batch size and the stable weight-decay window (one home: the core) -------

@pytest.mark.parametrize("a, lr", [(1.5, 1.0), (1.0, 0.3), (2.0, 0.9987), (0.7, 2.8)])
def test_smallest_stable_batch_size_matches_the_1d_closed_form(a, lr):
    """1-d label noise: λ*(S) = 2S/(a(S + 2)), so the smallest stable S is the smallest integer
    above 2λa/(2 − λa)."""
    bound = 2 * lr * a / (2 - lr * a)
    expected = math.floor(bound) + 1
    assert sgdnoise.smallest_stable_batch_size([a], lr) == expected


def test_smallest_stable_batch_size_refuses_the_gradient_descent_edge():
    with pytest.raises(sgdnoise.UnstableError) as info:
        sgdnoise.smallest_stable_batch_size([1.5, 0.5], lr=2.0)
    assert info.value.critical_learning_rate == pytest.approx(2 / 1.5, rel=1e-15)


@pytest.mark.parametrize("lr, s", [(0.5, 1), (1.8, 10), (1.0, 4)])
def test_stable_weight_decay_interval_matches_the_1d_closed_form(lr, s):
    """1-d L2 without label noise: Var' = ((1 − λK)² + 2λ²a²/S) Var + const with K = a + γ, so
    γ is stable iff |1 − λK| < r = √(1 − 2λ²a²/S)."""
    a = 1.0
    r = math.sqrt(1 - 2 * lr**2 * a**2 / s)
    lower, upper = sgdnoise.stable_weight_decay_interval([a], [1.0], lr, s)
    assert lower == pytest.approx((1 - r) / lr - a, rel=1e-12, abs=1e-14)
    assert upper == pytest.approx((1 + r) / lr - a, rel=1e-12, abs=1e-14)
    inside = sgdnoise.l2_test_loss_curve([a], [1.0], lr, s, [lower + 1e-6, upper - 1e-6])
    outside = sgdnoise.l2_test_loss_curve([a], [1.0], lr, s, [lower - 1e-6, upper + 1e-6])
    assert np.all(np.isfinite(inside)) and np.all(np.isinf(outside))


def test_no_stable_weight_decay_is_none():
    # 2λ²a²/S ≥ 1: no γ can make the variance contract.
    assert sgdnoise.stable_weight_decay_interval([1.0], [1.0], 1.0, 1) is None
