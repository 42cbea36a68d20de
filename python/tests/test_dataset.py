"""finite_dataset (docs/theory.md §4.1) against a brute-force D²×D² solve and the Gaussian limit."""

import numpy as np
import pytest

import sgdnoise


def op_matrix(op, d):
    """The D²×D² matrix of a linear map on D×D matrices (column j = vec(op(E_j)))."""
    cols = []
    for j in range(d * d):
        e = np.zeros(d * d)
        e[j] = 1.0
        cols.append(op(e.reshape(d, d)).ravel())
    return np.array(cols).T


def brute_force(x, y, lr, s, replacement, gamma, mu):
    """Σ from the vectorised second-moment equation, derived independently of the library:
    per-sample gradients g_i(w) = x_i(x_iᵀw − y_i) + Γw; with e = w − w*, the centred gradient is
    z_i + (x_ix_iᵀ − Â)e, so C(Σ) = f[(1/N)Σ(x_ix_iᵀ − Â)Σ(x_ix_iᵀ − Â) + R]; Theorem 1 with
    H = Â + Γ and that C is linear in Σ."""
    n, d = x.shape
    a_hat = x.T @ x / n
    k = a_hat + gamma
    w_star = np.linalg.solve(k, x.T @ y / n)
    z = x * (x @ w_star - y)[:, None]
    zc = z - z.mean(axis=0)
    r = zc.T @ zc / n
    f = 1 / s if replacement else (n - s) / (s * (n - 1))
    lam = lr * np.eye(d) if np.ndim(lr) == 0 else lr
    c1, c2 = (1 + mu**2) / (1 - mu**2), mu / (1 - mu**2)
    lk = lam @ k

    def multiplicative(sig):
        out = np.zeros((d, d))
        for xi in x:
            m = np.outer(xi, xi) - a_hat
            out += m @ sig @ m
        return f * out / n

    def lhs(sig):
        return ((1 - mu) * (lk @ sig + sig @ lk.T) - c1 * lk @ sig @ lk.T
                + c2 * (lk @ lk @ sig + sig @ (lk @ lk).T) - lam @ multiplicative(sig) @ lam)

    m = op_matrix(lhs, d)
    sigma = np.linalg.solve(m, (lam @ (f * r) @ lam).ravel()).reshape(d, d)
    return sigma, w_star


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("gamma", [0.0, 0.3])
@pytest.mark.parametrize("mu", [0.0, 0.6])
@pytest.mark.parametrize("d, n", [(2, 12), (4, 60)])
def test_against_brute_force(replacement, gamma, mu, d, n):
    rng = np.random.default_rng(d * 100 + n)
    x = rng.standard_normal((n, d)) * np.linspace(1.0, 0.4, d) + 0.1
    y = x @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n)
    s = 3
    lc = sgdnoise.critical_learning_rate_dataset(x, s, replacement=replacement, weight_decay=gamma, momentum=mu)
    lr = 0.5 * lc
    p = sgdnoise.finite_dataset(x, y, lr, s, replacement=replacement, weight_decay=gamma, momentum=mu)
    sigma, w_star = brute_force(x, y, lr, s, replacement, gamma * np.eye(d), mu)
    assert np.all(np.linalg.eigvalsh(sigma) > 0)
    np.testing.assert_allclose(p.sigma, sigma, rtol=1e-9, atol=1e-12 * np.abs(sigma).max())
    np.testing.assert_allclose(p.mean, w_star, rtol=1e-12, atol=1e-13)
    assert p.residual <= 1e-12


def test_matrix_learning_rate_against_brute_force():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((30, 3)) * [1.0, 0.6, 0.3]
    y = x @ [0.5, 1.0, -1.0] + 0.2 * rng.standard_normal(30)
    m = np.array([[1.0, 0.3, 0.0], [0.3, 0.7, 0.1], [0.0, 0.1, 0.5]])
    lc = sgdnoise.critical_learning_rate_dataset(x, 4, lr_matrix=m)
    lr = 0.5 * lc * m
    p = sgdnoise.finite_dataset(x, y, lr, 4, momentum=0.3)
    sigma, _ = brute_force(x, y, lr, 4, True, np.zeros((3, 3)), 0.3)
    np.testing.assert_allclose(p.sigma, sigma, rtol=1e-9, atol=1e-12 * np.abs(sigma).max())


def test_critical_learning_rate_is_the_edge():
    """Just below λ* the brute-force operator gives a PSD solution; just above, the library raises
    UnstableError carrying λ*, and the brute-force second-moment iteration map has spectral
    radius above one."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 2)) * [1.0, 0.5]
    y = x @ [1.0, 1.0] + 0.5 * rng.standard_normal(20)
    lc = sgdnoise.critical_learning_rate_dataset(x, 2)
    below = sgdnoise.finite_dataset(x, y, lc * (1 - 1e-5), 2)
    assert np.all(np.linalg.eigvalsh(below.sigma) > 0)
    with pytest.raises(sgdnoise.UnstableError) as info:
        sgdnoise.finite_dataset(x, y, lc * (1 + 1e-5), 2)
    assert info.value.critical_learning_rate == pytest.approx(lc, rel=1e-8)


def test_gaussian_limit():
    """As N grows, the exact finite-data Σ approaches the Gaussian N → ∞ closed form of Lemma 1 /
    Theorem 2 (label noise) with the population A and σ²: the error shrinks like 1/√N."""
    rng = np.random.default_rng(1)
    a = np.array([[1.0, 0.2], [0.2, 0.5]])
    u = np.array([1.0, -1.0])
    lr, s, noise_var = 0.4, 4, 0.5
    exact = sgdnoise.label_noise(a, noise_var, lr, s).sigma
    errors = []
    for n in (2_000, 200_000):
        x = rng.multivariate_normal(np.zeros(2), a, size=n)
        y = x @ u + np.sqrt(noise_var) * rng.standard_normal(n)
        p = sgdnoise.finite_dataset(x, y, lr, s)
        errors.append(np.linalg.norm(p.sigma - exact) / np.linalg.norm(exact))
    assert errors[1] < 0.02
    assert errors[1] < errors[0] / 3


def test_bad_arguments():
    x = np.ones((5, 2))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="y"):
        sgdnoise.finite_dataset(x, np.ones(4), 0.1, 1)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="batch_size"):
        sgdnoise.finite_dataset(np.eye(2), np.ones(2), 0.1, 3, replacement=False)
    with pytest.raises(sgdnoise.NotPositiveDefiniteError):
        sgdnoise.finite_dataset(x, np.ones(5), 0.1, 1)  # rank-deficient XᵀX, no weight decay
    with pytest.raises(sgdnoise.InvalidArgumentError, match="X"):
        sgdnoise.finite_dataset(np.array([[np.nan, 1.0]]), np.ones(1), 0.1, 1)


def test_a_singular_design_is_refused_not_answered_arbitrarily():
    """With a duplicated column XᵀX/N is singular and w* is not unique: a Cholesky factorisation may
    still succeed on round-off, so the call must refuse by the spectrum, whatever the rounding."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((50, 3))
    x = np.column_stack([x, x[:, 0]])
    y = x[:, :3] @ [1.0, -1.0, 0.5] + 0.1 * rng.standard_normal(50)
    with pytest.raises(sgdnoise.NotPositiveDefiniteError, match="not unique"):
        sgdnoise.finite_dataset(x, y, 0.05, 4)
    # A weight decay makes it nonsingular again: the prediction exists.
    p = sgdnoise.finite_dataset(x, y, 0.05, 4, weight_decay=1e-3)
    assert np.all(np.isfinite(p.sigma))
