"""stationary_covariance [Thm 1] (docs/theory.md §3) against independent routes.

1. A brute-force Kronecker solve of Theorem 1 as a D^2 x D^2 linear system (D <= 6).
2. scipy.linalg.solve_discrete_lyapunov at mu = 0: Sigma - A Sigma A^T = Lambda C Lambda,
   A = I - Lambda H.
3. With momentum: the stationary covariance of the 2D-dimensional linear system in (w, m), derived
   from the update rule of docs/theory.md §1 and solved as a Stein equation by scipy.
4. The residual of Theorem 1 itself.
5. The closed form of the discrete-time Hessian approximation (Liu et al. 2021) and the paper's
   2-d example; in 1-D, exact rational arithmetic.

The references assemble Theorem 1 in a regrouped, cancellation-free form (theorem1_terms), checked
against the literal form in test_regrouped_operator_is_theorem1.

Error budget: the test problems are well conditioned (the conditioning of the Kronecker operator
is checked, <= 1e3), so a backward-stable solver and a backward-stable reference each have forward
errors ~ cond * eps <~ 2e-13; the tolerance is 1e-12 relative (Frobenius norm).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import scipy.linalg

import sgdnoise

EPS = np.finfo(np.float64).eps
RTOL = 1e-12
MOMENTA = [0.0, 0.5, 0.9]



def rel_err(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))


def constants(mu: float) -> tuple[float, float]:
    """c1, c2 of Theorem 1."""
    return (1 + mu * mu) / (1 - mu * mu), mu / (1 - mu * mu)


def lr_matrix(lr, d: int) -> np.ndarray:
    """Lambda as a matrix (a scalar lr means lr * I)."""
    return lr * np.eye(d) if np.ndim(lr) == 0 else np.asarray(lr, dtype=np.float64)


def theorem1_terms(h, c, lr, mu, sigma):
    """Theorem 1's left-hand side as three terms, and its right-hand side Lambda C Lambda.

    With K = Lambda H (so Sigma H Lambda = Sigma K^T) the left-hand side is regrouped as

        (1-mu)(K Sigma + Sigma K^T) - (1-mu)/(1+mu) K Sigma K^T + c2 [K, [K, Sigma]]_*,
        [K, [K, Sigma]]_* = K (K Sigma - Sigma K^T) - (K Sigma - Sigma K^T) K^T,

    which is the same expression (c1 = 2 c2 + (1-mu)/(1+mu)) without its cancellation: in the
    eigenbasis the three terms are d_ij = (1-mu)(m_i + m_j) - (1-mu)/(1+mu) m_i m_j
    + c2 (m_i - m_j)^2 times Y_ij, each no larger than the right-hand side's entry, whereas the
    literal c1 and c2 terms are ~ 1/(1-mu) times larger than their sum.
    See test_regrouped_operator_is_theorem1 for the identity.
    """
    lam = lr_matrix(lr, len(h))
    _, c2 = constants(mu)
    k = lam @ h
    commutator = k @ sigma - sigma @ k.T
    terms = [(1 - mu) * (k @ sigma + sigma @ k.T),
             -(1 - mu) / (1 + mu) * k @ sigma @ k.T,
             c2 * (k @ commutator - commutator @ k.T)]
    return terms, lam @ c @ lam


def relative_residual(h, c, lr, mu, sigma) -> float:
    """||LHS(Sigma) - Lambda C Lambda||_F / (sum_k ||term_k||_F + ||Lambda C Lambda||_F).

    The normwise backward error of Theorem 1, its left-hand side evaluated in the regrouped form
    of theorem1_terms: the denominator is the size of what is added up, so that the exact
    solution, evaluated in floating point, has a residual of a few eps.
    """
    terms, rhs = theorem1_terms(h, c, lr, mu, sigma)
    residual = sum(terms) - rhs
    return float(np.linalg.norm(residual) / (sum(np.linalg.norm(t) for t in terms) + np.linalg.norm(rhs)))


def literal_kronecker_operator(h, lr, mu) -> np.ndarray:
    """Theorem 1's left-hand side, term by term as written, as a D^2 x D^2 matrix acting on
    row-major vec(Sigma): vec(A X B) = (A kron B^T) vec(X)."""
    d = len(h)
    lam = lr_matrix(lr, d)
    c1, c2 = constants(mu)
    eye = np.eye(d)
    lh, hl = lam @ h, h @ lam
    return ((1 - mu) * (np.kron(lh, eye) + np.kron(eye, hl.T))
            - c1 * np.kron(lh, hl.T)
            + c2 * (np.kron(lh @ lh, eye) + np.kron(eye, (hl @ hl).T)))


def kronecker_operator(h, lr, mu) -> np.ndarray:
    """The same operator assembled in the regrouped, cancellation-free form (theorem1_terms):
    with L = K kron I (Sigma -> K Sigma) and R = I kron K (Sigma -> Sigma K^T), which commute,
    (1-mu)(L + R) - (1-mu)/(1+mu) L R + c2 (L - R)^2."""
    d = len(h)
    k = lr_matrix(lr, d) @ h
    _, c2 = constants(mu)
    eye = np.eye(d)
    left, right = np.kron(k, eye), np.kron(eye, k)
    diff = left - right
    return (1 - mu) * (left + right) - (1 - mu) / (1 + mu) * np.kron(k, k) + c2 * diff @ diff


def kronecker_solve(h, c, lr, mu) -> tuple[np.ndarray, float]:
    """Sigma by a dense solve of the vectorised Theorem 1, and the condition number of the solve."""
    d = len(h)
    lam = lr_matrix(lr, d)
    k = kronecker_operator(h, lr, mu)
    return np.linalg.solve(k, (lam @ c @ lam).ravel()).reshape(d, d), float(np.linalg.cond(k))


def augmented_system(h, lr, mu) -> tuple[np.ndarray, np.ndarray]:
    """Transition T and noise input B of z_t = (w_t, m_t) = T z_{t-1} + B eta_t.

    From docs/theory.md §1,
    g_t = H w_{t-1} + eta_t, m_t = mu m_{t-1} + g_t, w_t = w_{t-1} - Lambda m_t:
        m_t = H w_{t-1} + mu m_{t-1} + eta_t
        w_t = (I - Lambda H) w_{t-1} - mu Lambda m_{t-1} - Lambda eta_t
    """
    d = len(h)
    lam = lr_matrix(lr, d)
    eye = np.eye(d)
    t = np.block([[eye - lam @ h, -mu * lam], [h, mu * eye]])
    b = np.vstack([-lam, eye])
    return t, b


def augmented_covariance(h, c, lr, mu) -> np.ndarray:
    """The w-block of the stationary covariance Z = T Z T^T + B C B^T, by scipy's Stein solver."""
    t, b = augmented_system(h, lr, mu)
    assert np.abs(np.linalg.eigvals(t)).max() < 1, "the reference system must be stable"
    z = scipy.linalg.solve_discrete_lyapunov(t, b @ c @ b.T)
    return z[: len(h), : len(h)]


def learning_rate(kind, h, mu, fraction, spd, rng):
    """A scalar lr, or an SPD lr matrix that does not commute with H, at ``fraction`` of the
    stability edge: rho(Lambda H) = fraction * 2 (1 + mu). The matrix's eigenvalues span a factor
    3.3, enough to make it far from commuting, small enough to keep the test problems well
    conditioned."""
    edge = 2 * (1 + mu)
    if kind == "scalar":
        return fraction * edge / np.linalg.eigvalsh(h).max()
    for _ in range(100):  # draw until Lambda and H clearly do not commute (rejection sampling)
        lam = spd(len(h), 0.3, 1.0)
        if len(h) == 1 or commutator(lam, h) > 0.05:
            break
    rho = np.linalg.eigvals(lam @ h).real.max()
    return lam * (fraction * edge / rho)


def commutator(lam, h) -> float:
    """||Lambda H - H Lambda||_2 / (||Lambda||_2 ||H||_2)."""
    norm = lambda x: np.linalg.norm(x, 2)  # noqa: E731
    return float(norm(lam @ h - h @ lam) / (norm(lam) * norm(h)))


def assert_non_commuting(lam, h):
    if np.ndim(lam) == 2 and len(h) > 1:
        assert commutator(lam, h) > 0.05, "the test problem must not commute"


@pytest.mark.parametrize("d", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("mu", MOMENTA)
@pytest.mark.parametrize("lr_kind", ["scalar", "matrix"])
@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_matches_brute_force_kronecker_solve(d, mu, lr_kind, fraction, spd, rng):
    h, c = spd(d, 0.3, 1.0), spd(d, 0.05, 1.0)
    lam = learning_rate(lr_kind, h, mu, fraction, spd, rng)
    assert_non_commuting(lam, h)
    expected, cond = kronecker_solve(h, c, lam, mu)
    assert cond < 1e3, f"reference ill-conditioned ({cond:.1e}): the error budget does not hold"
    got = sgdnoise.stationary_covariance(h, c, lam, momentum=mu)
    assert rel_err(got, expected) <= RTOL, (rel_err(got, expected), cond)


@pytest.mark.parametrize("d", [2, 5, 30, 120])
@pytest.mark.parametrize("lr_kind", ["scalar", "matrix"])
@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_matches_scipy_stein_solver_without_momentum(d, lr_kind, fraction, spd, rng):
    h, c = spd(d, 0.1, 1.0), spd(d, 0.05, 1.0)
    lam = learning_rate(lr_kind, h, 0.0, fraction, spd, rng)
    assert_non_commuting(lam, h)
    lm = lr_matrix(lam, d)
    a = np.eye(d) - lm @ h
    expected = scipy.linalg.solve_discrete_lyapunov(a, lm @ c @ lm)  # X = A X A^T + Q
    got = sgdnoise.stationary_covariance(h, c, lam)
    assert rel_err(got, expected) <= RTOL
    # The two equations are the same one: Sigma - A Sigma A^T = Lambda C Lambda.
    r = got - a @ got @ a.T - lm @ c @ lm
    assert np.linalg.norm(r) <= RTOL * (2 * np.linalg.norm(got) + np.linalg.norm(lm @ c @ lm))


@pytest.mark.parametrize("d", [1, 2, 5, 20])
@pytest.mark.parametrize("mu", MOMENTA)
@pytest.mark.parametrize("lr_kind", ["scalar", "matrix"])
def test_matches_augmented_position_momentum_system(d, mu, lr_kind, spd, rng):
    h, c = spd(d, 0.1, 1.0), spd(d, 0.05, 1.0)
    lam = learning_rate(lr_kind, h, mu, 0.7, spd, rng)
    assert_non_commuting(lam, h)
    expected = augmented_covariance(h, c, lam, mu)
    got = sgdnoise.stationary_covariance(h, c, lam, momentum=mu)
    assert rel_err(got, expected) <= RTOL


def test_augmented_system_is_the_update_rule(spd, rng):
    """The transition matrix of augmented_system reproduces a few explicit steps of
    g = H w + eta, m = mu m + g, w = w - Lambda m."""
    d, mu = 3, 0.6
    h = spd(d)
    lam = learning_rate("matrix", h, mu, 0.7, spd, rng)
    t, b = augmented_system(h, lam, mu)
    w, m = rng.standard_normal(d), rng.standard_normal(d)
    z = np.concatenate([w, m])
    for _ in range(5):
        eta = rng.standard_normal(d)
        m = mu * m + h @ w + eta
        w = w - lam @ m
        z = t @ z + b @ eta
        np.testing.assert_allclose(z, np.concatenate([w, m]), rtol=1e-13, atol=1e-13)


def test_regrouped_operator_is_theorem1(spd, rng):
    """The cancellation-free grouping used by the references is Theorem 1, term for term."""
    for mu in MOMENTA:
        h = spd(4)
        lam = learning_rate("matrix", h, mu, 0.8, spd, rng)
        literal = literal_kronecker_operator(h, lam, mu)
        regrouped = kronecker_operator(h, lam, mu)
        c1, _ = constants(mu)
        # Rounding of the literal form: ~ eps times its largest (c1-weighted) term.
        scale = c1 * np.linalg.norm(np.kron(lam @ h, h @ lam))
        assert np.linalg.norm(literal - regrouped) <= 64 * EPS * scale


@pytest.mark.parametrize("d", [3, 50, 200])
@pytest.mark.parametrize("mu", MOMENTA)
@pytest.mark.parametrize("lr_kind", ["scalar", "matrix"])
def test_theorem1_residual(d, mu, lr_kind, spd, rng):
    h, c = spd(d, 0.01, 1.0), spd(d, 0.01, 1.0)
    lam = learning_rate(lr_kind, h, mu, 0.9, spd, rng)
    sigma = sgdnoise.stationary_covariance(h, c, lam, momentum=mu)
    assert relative_residual(h, c, lam, mu, sigma) <= RTOL


def exact_scalar_sigma(h: float, c: float, lam: float, mu: float) -> Fraction:
    """The 1-D solution in exact rational arithmetic from the inputs' exact binary values:
    Sigma = lam^2 c / d,  d = (1-mu) m (2 - m/(1+mu)),  m = lam h  (docs/theory.md §3)."""
    m, mu_ = Fraction(lam) * Fraction(h), Fraction(mu)
    return Fraction(lam) ** 2 * Fraction(c) / ((1 - mu_) * m * (2 - m / (1 + mu_)))


@pytest.mark.parametrize("mu", [
    0.0, 0.5,
    0.9, 0.99, 0.999,
])
@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_one_dimensional_solution_is_correctly_rounded(mu, fraction):
    """In 1-D the answer is a rational function of the inputs: compare to exact arithmetic.

    Error budget: a handful of roundings in forming m, 2 - m/(1+mu) and the products, each
    amplified at most by the conditioning of d with respect to m, |m d'(m)/d| = |2(1-a)/(2-a)|,
    a = m/(1+mu): tolerance 8 eps (2 + that).
    """
    h, c = 0.7, 0.3
    lam = fraction * 2 * (1 + mu) / h
    a = lam * h / (1 + mu)
    tol = 8 * EPS * (2 + abs(2 * (1 - a) / (2 - a)))
    expected = exact_scalar_sigma(h, c, lam, mu)
    got = sgdnoise.stationary_covariance([[h]], [[c]], lam, momentum=mu)[0, 0]
    err = abs(float((Fraction(got) - expected) / expected))
    assert err <= tol, f"relative error {err:.2e} > {tol:.2e}"


@pytest.mark.parametrize("mu", MOMENTA)
def test_discrete_time_hessian_approximation_closed_form(mu, spd):
    """C = (sigma^2/S) A with a scalar lr: Sigma = lam sigma^2 / (S (1-mu)) (2I - lam A/(1+mu))^-1.

    (At mu = 0 this is Liu et al. 2021's Sigma = (lam sigma^2/S)(2I - lam A)^-1, docs/theory.md §4.)
    """
    d, s, var = 5, 10, 1.3
    a = spd(d, 0.2, 1.0)
    lam = 1.5 * (1 + mu) / np.linalg.eigvalsh(a).max()
    expected = lam * var / (s * (1 - mu)) * np.linalg.inv(2 * np.eye(d) - lam * a / (1 + mu))
    got = sgdnoise.stationary_covariance(a, var / s * a, lam, momentum=mu)
    assert rel_err(got, expected) <= RTOL


@pytest.mark.parametrize("s, expected_diag", [(50, [1.5 / 50 / 0.5, 1.5 / 50 / 1.25]),
                                              (10, [1.5 / 10 / 0.5, 1.5 / 10 / 1.25])])
def test_paper_two_dimensional_example(s, expected_diag):
    """Fig. 4b/4c: Hessian eigenvalues 1 and 0.5, lam = 1.5, C = H/S: Sigma = (lam/S)(2 - lam h)^-1."""
    h = np.diag([1.0, 0.5])
    got = sgdnoise.stationary_covariance(h, h / s, 1.5)
    np.testing.assert_allclose(got, np.diag(expected_diag), rtol=RTOL, atol=0)


def test_flat_directions_get_zero_fluctuation_and_range_is_solved(orthogonal, spd):
    """A zero eigenvalue of H: Sigma is solved on the range of H and is 0 on its null space
    (docs/theory.md §3, documented in the docstring)."""
    d, lam, mu = 4, 0.8, 0.5
    q = orthogonal(d)
    h = (q * np.array([0.0, 0.3, 0.7, 1.0])) @ q.T
    h = 0.5 * (h + h.T)
    c = spd(d, 0.1, 1.0)
    got = sgdnoise.stationary_covariance(h, c, lam, momentum=mu)
    null, rng_basis = q[:, :1], q[:, 1:]
    # Reference: the reduced problem on the range, by the Kronecker solve.
    reduced, _ = kronecker_solve(rng_basis.T @ h @ rng_basis, rng_basis.T @ c @ rng_basis, lam, mu)
    expected = rng_basis @ reduced @ rng_basis.T
    assert rel_err(got, expected) <= RTOL
    assert np.linalg.norm(got @ null) <= RTOL * np.linalg.norm(got)


@pytest.mark.parametrize("lr_kind", ["scalar", "matrix"])
def test_result_is_exactly_symmetric_and_positive_semidefinite(lr_kind, spd, rng):
    d = 40
    h, c = spd(d, 0.05, 1.0), spd(d, 0.0, 1.0)
    lam = learning_rate(lr_kind, h, 0.5, 0.95, spd, rng)
    sigma = sgdnoise.stationary_covariance(h, c, lam, momentum=0.5)
    np.testing.assert_array_equal(sigma, sigma.T)
    ev = np.linalg.eigvalsh(sigma)
    assert ev.min() >= -d * EPS * ev.max()


def test_linear_in_the_noise(spd):
    h, c = spd(6), spd(6)
    a = sgdnoise.stationary_covariance(h, c, 0.7, momentum=0.3)
    b = sgdnoise.stationary_covariance(h, 3.0 * c, 0.7, momentum=0.3)
    assert rel_err(b, 3.0 * a) <= RTOL


def test_identity_matrix_lr_equals_scalar_lr(spd):
    h, c = spd(7), spd(7)
    scalar = sgdnoise.stationary_covariance(h, c, 0.9, momentum=0.5)
    matrix = sgdnoise.stationary_covariance(h, c, 0.9 * np.eye(7), momentum=0.5)
    assert rel_err(matrix, scalar) <= RTOL


def test_close_to_the_stability_edge(spd):
    # m_max = 0.999 * 2: Sigma grows like 1/(2 - m_max) but stays accurate; the Kronecker
    # operator's condition ~ 1e3 here, which the budget still covers.
    h, c = spd(4, 0.3, 1.0), spd(4)
    lam = 0.999 * 2 / np.linalg.eigvalsh(h).max()
    expected, cond = kronecker_solve(h, c, lam, 0.0)
    assert cond < 1e4
    assert rel_err(sgdnoise.stationary_covariance(h, c, lam), expected) <= cond * 100 * EPS


def test_array_like_and_non_contiguous_inputs(spd, rng):
    d = 5
    h, c = spd(d), spd(d)
    lam = learning_rate("matrix", h, 0.5, 0.6, spd, rng)
    expected, _ = kronecker_solve(h, c, lam, 0.5)

    def strided(x):
        big = np.zeros((2 * d, 2 * d))
        big[::2, ::2] = x
        return big[::2, ::2]

    variants = {
        "lists": (h.tolist(), c.tolist(), lam.tolist()),
        "strided views": (strided(h), strided(c), strided(lam)),
        "fortran order": (np.asfortranarray(h), np.asfortranarray(c), np.asfortranarray(lam)),
        "float32": (h.astype(np.float32), c.astype(np.float32), lam.astype(np.float32)),
    }
    for label, (hh, cc, ll) in variants.items():
        got = sgdnoise.stationary_covariance(hh, cc, ll, momentum=0.5)
        if label == "float32":  # the inputs themselves changed by ~6e-8 relative
            ref, _ = kronecker_solve(*(np.asarray(x, np.float64) for x in (hh, cc, ll)), 0.5)
        else:
            ref = expected
        assert rel_err(got, ref) <= RTOL, label


def test_scalar_lr_of_other_numeric_types(spd):
    h, c = spd(3), spd(3)
    expected, _ = kronecker_solve(h, c, 1.0, 0.0)
    for lr in (1, np.float32(1.0), np.int64(1), np.array(1.0)):
        assert rel_err(sgdnoise.stationary_covariance(h, c, lr), expected) <= RTOL, repr(lr)


def test_inputs_are_not_modified(spd, rng):
    h, c = spd(6), spd(6)
    lam = learning_rate("matrix", h, 0.0, 0.5, spd, rng)
    copies = [x.copy() for x in (h, c, lam)]
    sgdnoise.stationary_covariance(h, c, lam, momentum=0.2)
    for before, after in zip(copies, (h, c, lam)):
        np.testing.assert_array_equal(before, after)


def test_return_info_reports_eigenvalues_and_flat_directions():
    """docs/theory.md §3: with a singular H, Σ is solved on the range and the null space is
    reported — its dimension and the noise power that enters it (in units of Λ^{1/2}CΛ^{1/2} = λC
    here)."""
    q, _ = np.linalg.qr(np.random.default_rng(8).standard_normal((3, 3)))
    h = (q * [1.0, 0.5, 0.0]) @ q.T
    h = 0.5 * (h + h.T)
    c = np.diag([0.3, 0.2, 0.1])
    lam = 0.7
    sigma, info = sgdnoise.stationary_covariance(h, c, lam, return_info=True)
    np.testing.assert_array_equal(sigma, sgdnoise.stationary_covariance(h, c, lam))
    np.testing.assert_allclose(info.eigenvalues, lam * np.array([0.0, 0.5, 1.0]), atol=1e-14)
    assert info.flat_directions == 1
    v = q[:, 2]  # the null vector of h
    assert info.flat_direction_noise == pytest.approx(lam * v @ c @ v, rel=1e-12)
    np.testing.assert_allclose(sigma @ v, 0.0, atol=1e-15)
    regular, info2 = sgdnoise.stationary_covariance(np.eye(2), np.eye(2), 0.5, return_info=True)
    assert info2.flat_directions == 0 and info2.flat_direction_noise == 0.0
