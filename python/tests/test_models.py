"""The closed-form models of docs/theory.md §4 against independent routes.

Routes (all in reference.py, none calls sgdnoise):

1. Brute force for every model: each model's H, M, beta1, beta2, C0 are derived in reference.py
   from per-sample gradients of linear regression (Isserlis' theorem), and Theorem 1 with the
   Sigma-dependent noise substituted is solved as a D^2 x D^2 Kronecker linear system. A second,
   Theorem-1-free route, the exact second-moment recursion of the 2D-dimensional (w, m) system of
   the update rule (docs/theory.md §1), must agree with it; its spectral radius rho is the
   stability reference (a stationary Sigma exists iff rho < 1), and its root rho = 1 found by
   Brent's method is the critical learning rate.
2. The paper's printed formulas wherever their assumptions hold ([Lambda, A] = 0).
3. 1-D spectrum inputs against the dense path (on diag(a), and on a rotated Q diag(a) Q^T).
4. Error classes and messages for bad arguments.
5. A small seeded Monte-Carlo simulation of SGD with a non-commuting learning-rate matrix.

Error budget for the deterministic comparisons: test problems are kept well conditioned (the
Kronecker operator's condition number is asserted <= 1e3 and learning rates are 0.3-0.7 of the
critical one), so the library and the backward-stable references each have forward errors
~ cond * eps ~ 1e-13; the tolerance is RTOL = 1e-12 (Frobenius-norm relative for matrices).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.linalg

import sgdnoise
from sgdnoise import errors

from reference import (
    as_lr_matrix,
    commutator_size,
    critical_scale,
    damped_newton_model,
    deterministic_edge,
    discrete_hessian_model,
    high_dimensional_model,
    input_noise_model,
    l2_model,
    label_noise_critical_brentq,
    label_noise_model,
    min_eig_ratio,
    natural_gradient_reference,
    random_orthogonal,
    random_spd,
    rel_err,
    solve_second_moments,
    solve_theorem1,
    spectral_radius,
    sym,
    theorem1_system,
    high_dimensional_critical_brentq,
    theorem4_test_loss,
)

RTOL = 1e-12
# The brute-force critical scale is the root of rho(c) - 1 with rho from numpy's eigvals: rho is
# accurate to ~1e-14 and c d(rho)/dc >= 0.1 at the root (asserted), brentq stops at 1e-14
# relative, so the root is good to ~1e-13; compare to 1e-11.
CRIT_RTOL = 1e-11
MOMENTA = [0.0, 0.4, 0.8]
# Fraction of the critical learning rate used for each momentum (within 0.3-0.7).
FRACTION = {0.0: 0.7, 0.4: 0.5, 0.8: 0.3}
LR_KINDS = ["scalar", "diagonal", "matrix"]
NOISE_VAR = 0.7


def seeded(*parts) -> np.random.Generator:
    """A generator seeded from the test's parameters (reproducible, different per case)."""
    text = "/".join(map(str, parts))
    return np.random.default_rng(sum((i + 1) * ord(ch) for i, ch in enumerate(text)) % 2**32)


def assert_close(got, expected, rtol, what):
    err = rel_err(got, expected)
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:.1e}\nexpected {expected!r}\nobserved {got!r}"


# --------------------------------------------------------------------------------------------
# Cases: a model, its learning rate kind and momentum, as (reference factory, library call)

BRUTE_MODELS = ["label_noise", "input_noise", "l2_regularized", "l2_regularized_spd_gamma",
                "high_dimensional", "discrete_hessian"]
BATCH = {"label_noise": 4, "input_noise": 2, "l2_regularized": 3, "l2_regularized_spd_gamma": 5,
         "high_dimensional": 4, "discrete_hessian": 8, "damped_newton": 4}
DIM = {"scalar": 6, "diagonal": 4, "matrix": 5}


class Case:
    """``ref(c)``: the reference LinearModel at learning rate c * lr0; ``lib(c)``: the library's
    prediction for the same; ``lr0``: the base learning rate (1.0, a diagonal, or an SPD matrix)."""

    def __init__(self, name: str, lr_kind: str, mu: float, d: int | None = None):
        rng = seeded(name, lr_kind, mu)
        d = d or DIM[lr_kind]
        self.name, self.lr_kind, self.mu, self.d = name, lr_kind, mu, d
        A = random_spd(rng, d, 0.2, 1.0)
        self.A = A
        if lr_kind == "scalar":
            lr0 = 1.0
        elif lr_kind == "diagonal":
            lr0 = rng.uniform(0.3, 2.0, d)
            assert commutator_size(np.diag(lr0), A) > 0.02, "the diagonal learning rate must not commute with A"
        else:
            lr0 = random_spd(rng, d, 0.3, 2.0)
            assert commutator_size(lr0, A) > 0.05, "the learning-rate matrix must not commute with A"
        self.lr0 = lr0
        S = BATCH.get(name, 4)
        if name == "high_dimensional" and lr_kind == "scalar":
            S = 1  # beta1 = -1 cancels the diagonal edge at S = 1: a different regime
        self.S = S
        s2 = NOISE_VAR
        if name == "label_noise":
            self.ref = lambda c: label_noise_model(A, s2, c * lr0, S, mu)
            self.lib = lambda c: sgdnoise.label_noise(A, s2, c * lr0, S, mu)
        elif name == "input_noise":
            B = random_spd(rng, d, 0.05, 0.4)
            u = rng.standard_normal(d)
            self.ref = lambda c: input_noise_model(A, B, u, s2, c * lr0, S, mu)
            self.lib = lambda c: sgdnoise.input_noise(A, B, u, c * lr0, S, noise_var=s2, momentum=mu)
        elif name in ("l2_regularized", "l2_regularized_spd_gamma"):
            gamma = 0.15 if name == "l2_regularized" else random_spd(rng, d, 0.05, 0.4)
            u = rng.standard_normal(d)
            self.ref = lambda c: l2_model(A, u, gamma, c * lr0, S, mu)
            self.lib = lambda c: sgdnoise.l2_regularized(A, u, gamma, c * lr0, S, mu)
        elif name == "high_dimensional":
            alpha = 3.0
            self.ref = lambda c: high_dimensional_model(A, alpha, s2, c * lr0, S, mu)
            self.lib = lambda c: sgdnoise.high_dimensional(A, alpha, s2, c * lr0, S, mu)
        elif name == "discrete_hessian":
            self.ref = lambda c: discrete_hessian_model(A, s2, c * lr0, S, mu)
            self.lib = lambda c: sgdnoise.discrete_hessian(A, s2, c * lr0, S, mu)
        elif name == "damped_newton":
            assert lr_kind == "scalar"
            self.ref = lambda c: damped_newton_model(A, s2, c, S, mu)
            self.lib = lambda c: sgdnoise.damped_newton(A, s2, c, S, mu)
        else:
            raise ValueError(name)

    def critical(self) -> float:
        """The brute-force critical scale c* (rho(second moments) = 1), with a slope check."""
        hi = deterministic_edge(self.ref(1.0)) * 1.001
        c_star = critical_scale(self.ref, hi)
        h = 1e-5
        slope = (spectral_radius(self.ref(c_star * (1 + h))) - spectral_radius(self.ref(c_star * (1 - h)))) / (2 * h)
        assert slope >= 0.1, f"rho crosses 1 too flatly (c drho/dc = {slope}) for the bisection budget"
        return c_star


def brute_cases():
    for name in BRUTE_MODELS:
        for kind in LR_KINDS:
            for mu in MOMENTA:
                yield pytest.param(name, kind, mu, id=f"{name}-{kind}-mu{mu}")
    for mu in MOMENTA:
        yield pytest.param("damped_newton", "scalar", mu, id=f"damped_newton-scalar-mu{mu}")


@pytest.mark.parametrize("name, lr_kind, mu", list(brute_cases()))
def test_brute_force_stationary_solution(name, lr_kind, mu):
    """Every model against the Kronecker solve of Theorem 1 with its C(Sigma), and the (w, m)
    second-moment recursion; sigma, noise, mean, train_loss and test_loss to RTOL."""
    case = Case(name, lr_kind, mu)
    c = FRACTION[mu] * case.critical()
    model = case.ref(c)
    op, _ = theorem1_system(model)
    assert np.linalg.cond(op) <= 1e3, "test problem outside the error budget"

    sigma = solve_theorem1(model)
    # The two references agree (Theorem 1 is the w-block of the (w, m) recursion).
    assert_close(solve_second_moments(model), sigma, RTOL, "reference: second moments vs Theorem 1")
    # The brute-force solution is a covariance: positive definite here (C0 is positive definite).
    assert min_eig_ratio(sigma) > 0, "brute-force Sigma is not positive definite"
    assert spectral_radius(model) < 1

    got = case.lib(c)
    if name == "discrete_hessian":
        assert_close(got, sigma, RTOL, "sigma")
        return
    assert_close(got.sigma, sigma, RTOL, "sigma")
    assert_close(got.noise, model.noise(sigma), RTOL, "noise = C(Sigma)")
    if np.any(model.mean):
        assert_close(got.mean, model.mean, RTOL, "mean")
    else:
        assert np.array_equal(got.mean, np.zeros(case.d)), "mean"
    assert_close(got.train_loss, model.train_loss(sigma), RTOL, "train_loss")
    assert_close(got.test_loss, model.test_loss(sigma), RTOL, "test_loss")
    assert_close(got.coupling_trace, np.trace(model.M @ sigma), RTOL, "coupling_trace = Tr[M Sigma]")
    if name in ("label_noise", "input_noise", "damped_newton"):
        # kappa_mu = T/(1 - T/S), T = Tr[Lam H G^-1], G = 2(1-mu) I - ((1-mu)/(1+mu) + 1/S) Lam H
        # [Thm 3], with H = A (K = A + B for input noise); Tr is similarity invariant, so the
        # definition needs no [Lam, H] = 0.
        lh = model.lam @ model.H
        q = (1 - mu) / (1 + mu) + 1 / case.S
        t = np.trace(lh @ np.linalg.inv(2 * (1 - mu) * np.eye(case.d) - q * lh))
        assert_close(got.kappa, t / (1 - t / case.S), RTOL, "kappa_mu")


def reported_critical_cases():
    """Models and learning-rate kinds for which the library reports a critical learning rate."""
    for name in ["label_noise", "input_noise", "high_dimensional"]:
        for kind in LR_KINDS:
            for mu in MOMENTA:
                yield pytest.param(name, kind, mu, id=f"{name}-{kind}-mu{mu}")
    for mu in MOMENTA:
        yield pytest.param("l2_regularized", "scalar", mu, id=f"l2_regularized-scalar-mu{mu}")
        yield pytest.param("damped_newton", "scalar", mu, id=f"damped_newton-scalar-mu{mu}")


def critical_from_library(case: Case, c0: float) -> float:
    """The library's critical scale c* of lr0 (for a scalar lr: lambda*), from a stable call at
    c0; for a matrix learning rate Lambda = c0 lr0 the library reports the largest stable multiple
    of Lambda, so c* = c0 * reported."""
    reported = case.lib(c0).critical_learning_rate
    assert reported is not None, "the library reports no critical learning rate here"
    return reported if case.lr_kind == "scalar" else c0 * reported


@pytest.mark.parametrize("name, lr_kind, mu", list(reported_critical_cases()))
def test_reported_critical_learning_rate_is_the_stability_edge(name, lr_kind, mu):
    """The library's critical_learning_rate equals the root of rho(second moments) = 1; at
    lambda*(1 - 1e-6) the library returns a finite PSD Sigma (and rho < 1), at lambda*(1 + 1e-6)
    it raises UnstableError carrying lambda* (and rho > 1)."""
    case = Case(name, lr_kind, mu)
    c_ref = case.critical()
    c_lib = critical_from_library(case, 0.5 * c_ref)
    assert_close(c_lib, c_ref, CRIT_RTOL, "critical learning rate vs brute-force rho = 1")

    below, above = c_lib * (1 - 1e-6), c_lib * (1 + 1e-6)
    assert spectral_radius(case.ref(below)) < 1 < spectral_radius(case.ref(above))
    sigma = case.lib(below).sigma
    assert np.all(np.isfinite(sigma))
    assert min_eig_ratio(sigma) >= -1e-12, "Sigma just below the edge is not PSD"
    with pytest.raises(errors.UnstableError) as info:
        case.lib(above)
    expected = c_lib if lr_kind == "scalar" else c_lib / above  # multiple of the passed matrix
    assert info.value.critical_learning_rate is not None
    assert_close(info.value.critical_learning_rate, expected, 1e-12, "UnstableError.critical_learning_rate")


@pytest.mark.parametrize("name", ["l2_regularized-diagonal", "l2_regularized-matrix", "l2_regularized_spd_gamma-scalar"])
@pytest.mark.parametrize("mu", [0.0, 0.4])
def test_l2_iterative_path_stability(name, mu):
    """L2 with a non-commuting preconditioned pair (matrix Gamma or Lambda) has no closed-form edge:
    the library must still agree with the brute-force stability (rho) on both sides of it.
    At 0.9 c* the stationary system's condition number grows like 1/(1 - rho) and the library's
    iteration stops at a relative step of 1e-13: tolerance max(RTOL, 1e-13/(1 - rho))."""
    model_name, kind = name.split("-")
    case = Case(model_name, kind, mu)
    c_ref = case.critical()
    model = case.ref(0.9 * c_ref)
    rho = spectral_radius(model)
    got = case.lib(0.9 * c_ref)
    assert_close(got.sigma, solve_theorem1(model), max(RTOL, 1e-13 / (1 - rho)), "sigma at 0.9 c*")
    with pytest.raises(errors.UnstableError):
        case.lib(1.1 * c_ref)


@pytest.mark.parametrize("d", [2, 4, 6])
@pytest.mark.parametrize("mu", MOMENTA)
@pytest.mark.parametrize("S", [1, 4])
def test_natural_gradient_brute_force(d, mu, S):
    """Natural gradient: the self-consistent equation (Theorem 1 with H = A, noise
    C(Sigma) = (1/S)(A Sigma A + Tr[A Sigma] A), Lambda = (lr/S) C(Sigma)^{-1}) solved by a generic
    root finder from a random SPD start, no ansatz. At the solution the (w, m) second-moment
    recursion has spectral radius exactly 1 (a noise-free C0 = 0 has a nonzero stationary Sigma
    only on the edge)."""
    rng = seeded("natural", d, mu, S)
    A = random_spd(rng, d, 0.2, 1.0)
    lr = 0.3
    sigma = natural_gradient_reference(A, lr, S, mu, start=lr * random_spd(rng, d, 0.5, 2.0))
    assert min_eig_ratio(sigma) > 0
    noise = (A @ sigma @ A + np.trace(A @ sigma) * A) / S
    lam = (lr / S) * np.linalg.inv(noise)
    assert abs(spectral_radius(label_noise_model(A, 0.0, lam, S, mu)) - 1) <= 1e-12

    got = sgdnoise.natural_gradient(A, lr, S, mu)
    assert_close(got.sigma, sigma, 1e-12, "sigma")
    assert_close(got.noise, noise, 1e-12, "noise")
    assert np.array_equal(got.mean, np.zeros(d))
    assert_close(got.train_loss, 0.5 * np.trace(A @ sigma), 1e-12, "train_loss (no label noise)")
    assert_close(got.test_loss, 0.5 * np.trace(A @ sigma), 1e-12, "test_loss")


# --------------------------------------------------------------------------------------------
# The paper's formulas as printed, where their assumptions hold

def commuting_setup(rng, d):
    """A = Q diag(a) Q^T and a learning-rate shape Lambda0 = Q diag(l) Q^T that commutes with it."""
    q = random_orthogonal(rng, d)
    a = rng.uniform(0.2, 1.0, d)
    l = rng.uniform(0.5, 1.5, d)
    return sym((q * a) @ q.T), sym((q * l) @ q.T), q, a, l


@pytest.mark.parametrize("mu", MOMENTA)
@pytest.mark.parametrize("S", [1, 3, 16])
@pytest.mark.parametrize("lr_kind", ["scalar", "commuting_matrix"])
def test_label_noise_theorems_2_3(mu, S, lr_kind):
    """[Thm 2, Thm 3] with [Lambda, A] = 0: Sigma = (s2/S)(1 + k/S) Lambda G^{-1},
    G = 2(1-mu) I - ((1-mu)/(1+mu) + 1/S) Lambda A, k = Tr[Lambda A G^{-1}]/(1 - Tr[..]/S), and
    C = (s2/S) A + (s2/S^2)(1 + k/S)(Lambda A G^{-1} + Tr[Lambda A G^{-1}] I) A."""
    rng = seeded("thm23", mu, S, lr_kind)
    d = 4
    A, lam0, _, a, l = commuting_setup(rng, d)
    if lr_kind == "scalar":
        lam0, l = np.eye(d), np.ones(d)
    c = FRACTION[mu] * label_noise_critical_brentq(a * l, S, mu)
    lam = c * lam0
    s2 = NOISE_VAR
    q = (1 - mu) / (1 + mu) + 1 / S
    G = 2 * (1 - mu) * np.eye(d) - q * lam @ A
    Gi = np.linalg.inv(G)
    t = np.trace(lam @ A @ Gi)
    kappa = t / (1 - t / S)
    sigma = (s2 / S) * (1 + kappa / S) * lam @ Gi
    noise = (s2 / S) * A + (s2 / S**2) * (1 + kappa / S) * (lam @ A @ Gi + t * np.eye(d)) @ A

    got = sgdnoise.label_noise(A, s2, c if lr_kind == "scalar" else lam, S, mu)
    assert_close(got.sigma, sigma, RTOL, "Thm 2 sigma")
    assert_close(got.noise, noise, RTOL, "Thm 3 noise")
    assert_close(got.kappa, kappa, RTOL, "kappa_mu")
    assert_close(got.train_loss, 0.5 * (np.trace(A @ sigma) + s2), RTOL, "train_loss")
    assert_close(got.test_loss, 0.5 * np.trace(A @ sigma), RTOL, "test_loss")


@pytest.mark.parametrize("gamma", [-0.1, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("S", [1, 4])
def test_l2_theorem_4(gamma, S):
    """[Thm 4] scalar lambda, Gamma = gamma I, mu = 0: L_test = (lam/2S)(Tr[A K^-2 Gamma^2 U] k + r)
    + 1/2 Tr[A K^-2 Gamma^2 U] with k, r, G as in docs/theory.md §4 (evaluated in A's
    eigenbasis)."""
    rng = seeded("thm4", gamma, S)
    d = 5
    q = random_orthogonal(rng, d)
    a = rng.uniform(0.2, 1.0, d)
    a[0] = 0.2
    A = sym((q * a) @ q.T)
    u = rng.standard_normal(d)
    ur = q.T @ u
    case_crit = critical_scale(lambda c: l2_model(A, u, gamma, c, S, 0.0), 2 / (a.max() + gamma) * 1.001)
    lr = 0.6 * case_crit
    expected = theorem4_test_loss(a, ur, gamma, lr, S)
    got = sgdnoise.l2_regularized(A, u, gamma, lr, S)
    assert_close(got.test_loss, expected, RTOL, "Thm 4 L_test")
    k = a + gamma
    g = 2 - lr * (k + a * a / (k * S))
    t = np.sum(a * a / (k * g))
    assert_close(got.kappa, t / (1 - lr / S * t), RTOL, "Thm 4 kappa")
    assert_close(got.mean, np.linalg.solve(A + gamma * np.eye(d), A @ u), RTOL, "w* = K^-1 A u")


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("S", [1, 2, 8])
def test_high_dimensional_theorem_6(alpha, S):
    """[Thm 6] Tr[A Sigma] = max{0, (lam s2/S)(1 - 1/alpha) k}, k = Tr[G^-1 A]/(1 - (lam/S) Tr[G^-1 A]),
    G = 2I - lam(1 - 1/S) A; Sigma = 0 when alpha <= 1."""
    rng = seeded("thm6", alpha, S)
    d = 5
    A = random_spd(rng, d, 0.2, 1.0)
    a = np.linalg.eigvalsh(A)
    lr = 0.5 * high_dimensional_critical_brentq(a, S)
    s2 = NOISE_VAR
    G = 2 - lr * (1 - 1 / S) * a
    tr = np.sum(a / G)
    kappa = tr / (1 - lr / S * tr)
    trace = max(0.0, lr * s2 / S * (1 - 1 / alpha) * kappa)
    got = sgdnoise.high_dimensional(A, alpha, s2, lr, S)
    assert_close(np.trace(A @ got.sigma), trace, RTOL, "Tr[A Sigma]")
    assert_close(got.coupling_trace, trace, RTOL, "coupling_trace")
    assert_close(2 * got.test_loss, trace, RTOL, "2 test_loss")
    assert_close(got.train_loss, 0.5 * (trace + max(0.0, s2 * (1 - 1 / alpha))), RTOL, "train_loss")
    assert_close(got.kappa, kappa, RTOL, "kappa hat")
    if alpha <= 1:
        assert np.array_equal(got.sigma, np.zeros((d, d)))


@pytest.mark.parametrize("mu", MOMENTA)
@pytest.mark.parametrize("S", [1, 4, 32])
def test_damped_newton_formula(mu, S):
    """[Sec 6.4] Sigma = lam s2/(g S - lam D) A^{-1}, g = 2(1-mu) - ((1-mu)/(1+mu) + 1/S) lam, stable
    iff g S > lam D, i.e. lam* = 2(1-mu) S / (D + q S)."""
    rng = seeded("newton", mu, S)
    d = 4
    A = random_spd(rng, d, 0.2, 1.0)
    q = (1 - mu) / (1 + mu) + 1 / S
    lam_star = 2 * (1 - mu) * S / (d + q * S)
    lr = 0.5 * lam_star
    g = 2 * (1 - mu) - q * lr
    expected = lr * NOISE_VAR / (g * S - lr * d) * np.linalg.inv(A)
    got = sgdnoise.damped_newton(A, NOISE_VAR, lr, S, mu)
    assert_close(got.sigma, expected, RTOL, "damped Newton sigma")
    assert_close(got.noise, (A @ expected @ A + np.trace(A @ expected) * A + NOISE_VAR * A) / S, RTOL, "noise")
    assert_close(got.test_loss, 0.5 * np.trace(A @ expected), RTOL, "test_loss")


@pytest.mark.parametrize("mu", MOMENTA)
@pytest.mark.parametrize("S", [1, 4, 32])
def test_damped_newton_critical_learning_rate(mu, S):
    """Damped Newton is stable iff g S > lam D: lam* = 2(1-mu) S/(D + q S). The Prediction documents
    critical_learning_rate as lambda* for this batch size and momentum (the Swift doc: "the largest
    stable lambda"), and UnstableError carries it beyond the edge."""
    rng = seeded("newton-crit", mu, S)
    d = 4
    A = random_spd(rng, d, 0.2, 1.0)
    q = (1 - mu) / (1 + mu) + 1 / S
    lam_star = 2 * (1 - mu) * S / (d + q * S)
    for lr in (0.3 * lam_star, 0.7 * lam_star):
        got = sgdnoise.damped_newton(A, NOISE_VAR, lr, S, mu).critical_learning_rate
        assert got is not None
        assert_close(got, lam_star, RTOL, f"damped_newton(lr = {lr}).critical_learning_rate, lambda* = {lam_star}")
    with pytest.raises(errors.UnstableError) as info:
        sgdnoise.damped_newton(A, NOISE_VAR, 2 * lam_star, S, mu)
    assert_close(info.value.critical_learning_rate, lam_star, RTOL, "UnstableError.critical_learning_rate")


@pytest.mark.parametrize("mu", MOMENTA)
@pytest.mark.parametrize("S", [1, 4, 32])
@pytest.mark.parametrize("d", [1, 3, 6])
def test_natural_gradient_formula_and_self_consistency(mu, S, d):
    """[Sec 6.4] Sigma = (lam/2)(1/((1+D)(1+mu)) + 1/((1-mu)S)) A^{-1}; with C = the returned noise,
    stationary_covariance(A, C, lr=(lam/S) C^{-1}, mu) reproduces Sigma, and C is the label-noise
    C(Sigma) without label noise."""
    rng = seeded("natural-formula", mu, S, d)
    A = random_spd(rng, d, 0.2, 1.0) if d > 1 else np.array([[0.7]])
    lr = 0.4
    expected = 0.5 * lr * (1 / ((1 + d) * (1 + mu)) + 1 / ((1 - mu) * S)) * np.linalg.inv(A)
    got = sgdnoise.natural_gradient(A, lr, S, mu)
    assert_close(got.sigma, expected, RTOL, "natural-gradient sigma")
    assert_close(got.noise, (A @ got.sigma @ A + np.trace(A @ got.sigma) * A) / S, RTOL, "noise = C(Sigma)")
    again = sgdnoise.stationary_covariance(A, got.noise, (lr / S) * np.linalg.inv(got.noise), mu)
    assert_close(again, got.sigma, RTOL, "self-consistency through stationary_covariance")


@pytest.mark.parametrize("mu", MOMENTA)
@pytest.mark.parametrize("lr_kind", ["scalar", "matrix"])
def test_continuous_time(mu, lr_kind):
    """[Eq. 7] Sigma = lam s2/(2S) I (scalar, mu = 0); in general the solution of Theorem 1 without
    its O(Lambda^2) terms and with C = (s2/S) A: (1-mu)(Lam A Sig + Sig A Lam) = (s2/S) Lam A Lam,
    solved here by Kronecker products."""
    rng = seeded("ct", mu, lr_kind)
    d, S, s2 = 4, 5, NOISE_VAR
    A = random_spd(rng, d, 0.2, 1.0)
    lr = 0.3 if lr_kind == "scalar" else random_spd(rng, d, 0.2, 0.6)
    lam = as_lr_matrix(lr, d)
    eye = np.eye(d)
    op = (1 - mu) * (np.kron(lam @ A, eye) + np.kron(eye, (A @ lam).T))  # row-major vec(L X R) = kron(L, R^T)
    expected = np.linalg.solve(op, (s2 / S * lam @ A @ lam).reshape(-1)).reshape(d, d)
    got = sgdnoise.continuous_time(A, s2, lr, S, mu)
    assert_close(got, expected, RTOL, "continuous time")
    if lr_kind == "scalar" and mu == 0.0:
        assert_close(got, 0.3 * s2 / (2 * S) * eye, RTOL, "lam s2/(2S) I")


@pytest.mark.parametrize("mu", MOMENTA)
@pytest.mark.parametrize("lr_kind", ["scalar", "matrix"])
def test_discrete_hessian(mu, lr_kind):
    """Liu et al. 2021: Sigma = (lam s2/S)(2I - lam A)^{-1} (scalar, mu = 0); in general the Stein
    equation of the (w, m) system with C = (s2/S) A, by scipy.linalg.solve_discrete_lyapunov."""
    rng = seeded("dh", mu, lr_kind)
    d, S, s2 = 4, 5, NOISE_VAR
    A = random_spd(rng, d, 0.2, 1.0)
    lr = 0.8 if lr_kind == "scalar" else random_spd(rng, d, 0.4, 1.2)
    lam = as_lr_matrix(lr, d)
    eye = np.eye(d)
    C = s2 / S * A
    J = np.block([[eye - lam @ A, -mu * lam], [A, mu * eye]])
    E = np.vstack([-lam, eye])
    expected = scipy.linalg.solve_discrete_lyapunov(J, E @ C @ E.T)[:d, :d]
    got = sgdnoise.discrete_hessian(A, s2, lr, S, mu)
    assert_close(got, expected, RTOL, "discrete Hessian vs Stein (w, m)")
    if mu == 0.0:
        stein = scipy.linalg.solve_discrete_lyapunov(eye - lam @ A, lam @ C @ lam)
        assert_close(got, stein, RTOL, "discrete Hessian vs Stein Sigma - (I - Lam A) Sigma (.)^T = Lam C Lam")
    if lr_kind == "scalar" and mu == 0.0:
        assert_close(got, 0.8 * s2 / S * np.linalg.inv(2 * eye - 0.8 * A), RTOL, "(lam s2/S)(2I - lam A)^-1")


# --------------------------------------------------------------------------------------------
# Spectrum (1-D) inputs against the dense path

SPECTRUM_MODELS = ["label_noise", "input_noise", "l2_regularized", "high_dimensional", "damped_newton",
                   "natural_gradient", "discrete_hessian", "continuous_time"]
SCALARS = ["train_loss", "test_loss", "kappa", "critical_learning_rate", "coupling_trace"]


def spectrum_call(name, a, extras, lr, S, mu, rotate=None):
    """Call model ``name`` with spectrum a (rotate None), diag(a) (rotate = identity), or
    Q diag(a) Q^T (rotate = Q); symmetric extras (B, Gamma, lr) rotate the same way, u -> Q u."""
    if rotate is None:
        A, conj, vec = a, (lambda x: x), (lambda v: v)
    else:
        q = rotate
        conj = lambda x: sym((q * np.asarray(x)) @ q.T)
        vec = lambda v: q @ v
        A = conj(a)
    lr_arg = lr if np.ndim(lr) == 0 else conj(lr)
    s2 = NOISE_VAR
    if name == "label_noise":
        return sgdnoise.label_noise(A, s2, lr_arg, S, mu)
    if name == "input_noise":
        return sgdnoise.input_noise(A, conj(extras["b"]), vec(extras["u"]), lr_arg, S, noise_var=s2, momentum=mu)
    if name == "l2_regularized":
        return sgdnoise.l2_regularized(A, vec(extras["u"]), conj(extras["g"]), lr_arg, S, mu)
    if name == "high_dimensional":
        return sgdnoise.high_dimensional(A, 2.5, s2, lr_arg, S, mu)
    if name == "damped_newton":
        return sgdnoise.damped_newton(A, s2, lr, S, mu)
    if name == "natural_gradient":
        return sgdnoise.natural_gradient(A, lr, S, mu)
    if name == "discrete_hessian":
        return sgdnoise.discrete_hessian(A, s2, lr_arg, S, mu)
    if name == "continuous_time":
        return sgdnoise.continuous_time(A, s2, lr_arg, S, mu)
    raise ValueError(name)


def spectrum_cases():
    for name in SPECTRUM_MODELS:
        kinds = ["scalar"] if name in ("damped_newton", "natural_gradient") else ["scalar", "diagonal"]
        for kind in kinds:
            for mu in [0.0, 0.4]:
                yield pytest.param(name, kind, mu, id=f"{name}-{kind}-mu{mu}")


@pytest.mark.parametrize("name, lr_kind, mu", list(spectrum_cases()))
def test_spectrum_input_matches_dense(name, lr_kind, mu):
    """A 1-D A gives the diagonal of the dense result on diag(A), and of Q^T (dense result on
    Q diag(a) Q^T) Q; same scalars. Off-diagonals of both dense results (rotated back) vanish."""
    rng = seeded("spectrum", name, lr_kind, mu)
    d, S = 5, 3
    a = rng.uniform(0.2, 1.0, d)
    extras = dict(b=rng.uniform(0.05, 0.4, d), u=rng.standard_normal(d), g=rng.uniform(0.05, 0.4, d))
    l = np.ones(d) if lr_kind == "scalar" else rng.uniform(0.5, 1.5, d)
    # a learning rate well inside the stable region of every model: 0.3 of the label-noise lambda*
    # for K = A + B (the most restrictive of these models), and 0.3 * 2(1+mu)/max(l(a+b)).
    lr_scale = 0.3 * label_noise_critical_brentq((a + extras["b"]) * l, S, mu)
    lr = lr_scale if lr_kind == "scalar" else lr_scale * l
    q = random_orthogonal(rng, d)

    flat = spectrum_call(name, a, extras, lr, S, mu)
    diag = spectrum_call(name, a, extras, lr, S, mu, rotate=np.eye(d))
    rot = spectrum_call(name, a, extras, lr, S, mu, rotate=q)

    def matrices(p):
        return [p] if isinstance(p, np.ndarray) else [p.sigma, p.noise]

    for m1, md, mr in zip(matrices(flat), matrices(diag), matrices(rot)):
        assert m1.shape == (d,)
        back = q.T @ mr @ q
        for dense, label in ((md, "diag(A)"), (back, "Q diag(a) Q^T rotated back")):
            assert_close(np.diag(dense), m1, RTOL, f"diagonal of the dense result on {label}")
            if name != "l2_regularized":
                # Every other model's C0 is diagonal with A, so Sigma and C are too; L2's C0 has the
                # rank-one part A delta delta^T A, whose off-diagonal response the spectrum drops.
                off = dense - np.diag(np.diag(dense))
                assert np.linalg.norm(off) <= RTOL * np.linalg.norm(dense), f"off-diagonal of {label}"
    if isinstance(flat, np.ndarray):
        return
    assert_close(diag.mean, flat.mean, RTOL, "mean on diag(A)")
    assert_close(q.T @ rot.mean, flat.mean, RTOL, "mean rotated back")
    for key in SCALARS:
        v1, vd, vr = (getattr(p, key) for p in (flat, diag, rot))
        if v1 is None:
            assert vd is None and vr is None, key
            continue
        assert_close(vd, v1, RTOL, f"{key} on diag(A)")
        assert_close(vr, v1, RTOL, f"{key} on Q diag(a) Q^T")


# --------------------------------------------------------------------------------------------
# Errors: class and a message naming the argument

A2 = np.diag([1.0, 0.5])
U2 = np.array([1.0, -1.0])
A_NEG = np.diag([1.0, -0.05])          # symmetric, one negative eigenvalue (A + 0.1 I stays SPD)
A_NONSYM = np.array([[1.0, 0.2], [0.0, 0.5]])
LR_NOT_SPD = np.diag([0.1, -0.1])
LR_NONSYM = np.array([[0.1, 0.02], [0.0, 0.1]])

BASE_ARGS = {
    "label_noise": dict(A=A2, noise_var=1.0, lr=0.1, batch_size=4, momentum=0.0),
    "input_noise": dict(A=A2, B=0.1 * np.eye(2), u=U2, lr=0.1, batch_size=4, noise_var=1.0, momentum=0.0),
    "l2_regularized": dict(A=A2, u=U2, weight_decay=0.1, lr=0.1, batch_size=4, momentum=0.0),
    "high_dimensional": dict(A_hat=A2, alpha=2.0, noise_var=1.0, lr=0.1, batch_size=4, momentum=0.0),
    "damped_newton": dict(A=A2, noise_var=1.0, lr=0.1, batch_size=4, momentum=0.0),
    "natural_gradient": dict(A=A2, lr=0.1, batch_size=4, momentum=0.0),
    "discrete_hessian": dict(A=A2, noise_var=1.0, lr=0.1, batch_size=4, momentum=0.0),
    "continuous_time": dict(A=A2, noise_var=1.0, lr=0.1, batch_size=4, momentum=0.0),
}
MATRIX_LR = ["label_noise", "input_noise", "l2_regularized", "high_dimensional", "discrete_hessian", "continuous_time"]
IA, NS, NPD = errors.InvalidArgumentError, errors.NotSymmetricError, errors.NotPositiveDefiniteError


def error_cases():
    for name, base in BASE_ARGS.items():
        a_key = "A_hat" if name == "high_dimensional" else "A"
        bad = []
        if "noise_var" in base:
            bad += [("negative", "noise_var", -1.0, IA), ("nan", "noise_var", np.nan, IA)]
        bad += [("zero", "batch_size", 0, IA), ("negative", "batch_size", -3, IA),
                ("one", "momentum", 1.0, IA), ("negative", "momentum", -0.1, IA),
                ("zero", "lr", 0.0, IA), ("negative", "lr", -0.1, IA)]
        if name in MATRIX_LR:
            bad += [("3x3", "lr", np.eye(3), IA), ("3-vector", "lr", np.ones(3), IA),
                    ("not-positive-definite", "lr", LR_NOT_SPD, NPD), ("not-symmetric", "lr", LR_NONSYM, NS)]
        else:
            bad += [("matrix", "lr", 0.1 * np.eye(2), IA)]  # the Newton/natural-gradient lr is a scalar
        if name in ("input_noise", "l2_regularized"):
            bad += [("3-vector", "u", np.ones(3), IA), ("matrix", "u", np.ones((2, 2)), IA)]
        if name == "input_noise":
            # B is a covariance too: diag(0.1, -0.3) keeps A + B positive definite, so only a check of
            # B itself can catch it.
            bad += [("3x3", "B", np.eye(3), IA), ("3-vector", "B", np.ones(3), IA),
                    ("negative-eigenvalue", "B", np.diag([0.1, -0.3]), IA)]
        if name == "l2_regularized":
            bad += [("3x3", "weight_decay", np.eye(3), IA)]
        if name == "high_dimensional":
            bad += [("zero", "alpha", 0.0, IA), ("negative", "alpha", -1.0, IA)]
        if name != "continuous_time":
            # A is an input covariance (a Hessian at a minimum): a negative eigenvalue is invalid input.
            bad += [("negative-eigenvalue", a_key, A_NEG, IA)]
        bad += [("not-symmetric", a_key, A_NONSYM, NS)]
        for label, key, value, cls in bad:
            yield pytest.param(name, key, value, cls, key, id=f"{name}-{key}-{label}")


@pytest.mark.parametrize("name, key, value, cls, word", list(error_cases()))
def test_bad_argument(name, key, value, cls, word):
    """Each bad argument raises its class from sgdnoise.errors, with a message naming it."""
    fn = getattr(sgdnoise, name)
    fn(**BASE_ARGS[name])  # the base call is valid
    with pytest.raises(errors.SGDNoiseError) as info:
        fn(**{**BASE_ARGS[name], key: value})
    assert isinstance(info.value, cls), (
        f"{name}({key}={value!r}) raised {type(info.value).__name__}({info.value}), expected {cls.__name__}")
    assert re.search(rf"(?<![A-Za-z_]){re.escape(word)}(?![A-Za-z_])", str(info.value)), (
        f"{name}({key}=...): message does not name {word!r}: {info.value}")


# --------------------------------------------------------------------------------------------
# Monte Carlo

def test_monte_carlo_label_noise_noncommuting_momentum():
    """Seeded SGD simulation of 2-d label-noise regression (x ~ N(0, A) fresh each step, batch S,
    label noise s2, w measured from u, the update of docs/theory.md §1) with a learning-rate
    matrix that does not commute with A and momentum 0.5, at 0.3 of the brute-force critical scale.

    Standard errors: 2000 independent chains; each chain's time average of w_i w_j over 3000
    post-burn-in steps is one sample, so the spread across chains includes all autocorrelation.
    |z| < 4 for each entry. The test has power: the discrete-Hessian baseline (which drops the
    Sigma-dependent noise) is rejected with |z| > 20."""
    rng = np.random.default_rng(20220127)
    theta = np.pi / 5
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    A = np.diag([1.0, 0.4])
    lam0 = sym((rot * np.array([1.2, 0.4])) @ rot.T)
    assert commutator_size(lam0, A) > 0.1
    S, mu, s2 = 4, 0.5, 1.0
    make = lambda c: label_noise_model(A, s2, c * lam0, S, mu)
    c = 0.3 * critical_scale(make, deterministic_edge(make(1.0)) * 1.001)
    lam = c * lam0
    predicted = sgdnoise.label_noise(A, s2, lam, S, mu).sigma
    baseline = solve_theorem1(discrete_hessian_model(A, s2, lam, S, mu))
    # Second moments relax like rho^t: rho < 0.8 makes a 600-step burn-in from w = 0 exhaustive
    # (0.8^600 ~ 1e-58). Far from the edge the stationary law is light-tailed enough for the
    # across-chain variance of the time averages to exist (fourth moments finite).
    assert spectral_radius(make(c)) < 0.8

    chains, burn, steps = 2000, 600, 3000
    chol = np.linalg.cholesky(A)
    w = np.zeros((chains, 2))
    m = np.zeros((chains, 2))
    acc = np.zeros((chains, 3))
    sd = np.sqrt(s2)
    for t in range(burn + steps):
        x = rng.standard_normal((chains, S, 2)) @ chol.T
        r = np.einsum("csd,cd->cs", x, w) - sd * rng.standard_normal((chains, S))
        g = np.einsum("csd,cs->cd", x, r) / S
        m = mu * m + g
        w = w - m @ lam
        if t >= burn:
            acc += np.stack([w[:, 0] ** 2, w[:, 0] * w[:, 1], w[:, 1] ** 2], axis=1)
    per_chain = acc / steps
    estimate = per_chain.mean(axis=0)
    stderr = per_chain.std(axis=0, ddof=1) / np.sqrt(chains)
    entries = lambda s: np.array([s[0, 0], s[0, 1], s[1, 1]])
    z = (estimate - entries(predicted)) / stderr
    z_baseline = (estimate - entries(baseline)) / stderr
    assert np.all(np.abs(z) < 4), f"z-scores {z}: estimate {estimate} +- {stderr}, predicted {entries(predicted)}"
    assert np.all(np.abs(z_baseline) > 20), f"the simulation cannot tell the baseline apart: {z_baseline}"
