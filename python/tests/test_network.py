"""Matrix-free curvature and the fluctuation of a network (docs/theory.md §8), against the dense
route: numpy's eigh, the library's dense Theorem 1 solver, and the high-dimensional model's
critical learning rate (the same multiplicative noise solved by another algorithm). Estimates
with a standard error are checked by z-scores."""

from __future__ import annotations

import numpy as np
import pytest

import sgdnoise


def problem(rng, p=60, top=(5.0, 3.0, 2.5, 2.0), n=200):
    q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    h = np.concatenate([top, rng.uniform(0.0, 1.0, p - len(top))])
    hessian = (q * h) @ q.T
    hessian = 0.5 * (hessian + hessian.T)
    grads = rng.standard_normal((n, p)) * rng.uniform(0.1, 1.0, p)
    return hessian, grads


def test_hessian_eigen_matches_eigh(rng):
    hessian, _ = problem(rng)
    exact = np.linalg.eigh(hessian)
    e = sgdnoise.hessian_eigen(lambda v: hessian @ v, hessian.shape[0], k=4, which="both")
    np.testing.assert_allclose(e.values[:4], exact.eigenvalues[::-1][:4], rtol=1e-9)
    np.testing.assert_allclose(e.values[4:], exact.eigenvalues[:4], atol=1e-9 * exact.eigenvalues[-1])
    assert e.converged and e.products > 0 and e.vectors.shape == (hessian.shape[0], 8)
    for i in range(4):  # well-separated top eigenvalues: vectors up to sign
        assert abs(e.vectors[:, i] @ exact.eigenvectors[:, -1 - i]) > 1 - 1e-8
    np.testing.assert_allclose(np.linalg.norm(hessian @ e.vectors - e.vectors * e.values, axis=0), e.residuals,
                               atol=1e-12)


def test_hessian_eigen_unverified_is_arpacks_contract_in_fewer_products():
    """verify=False: the eigenpairs of eigh to the tolerance, residuals that are the true ones (the
    Lanczos relation holds to rounding), and no more products than scipy's eigsh on the same
    operator and tolerance (counted here, side by side)."""
    import scipy.sparse.linalg as sla

    rng = np.random.default_rng(7)
    p = 400
    q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    hessian = (q * (3.0 * 0.93 ** np.arange(p))) @ q.T  # a decaying spectrum
    hessian = 0.5 * (hessian + hessian.T)
    exact = np.linalg.eigh(hessian).eigenvalues[::-1][:10]
    count = {"n": 0}

    def counted(v):
        count["n"] += 1
        return hessian @ np.ravel(v)

    sla.eigsh(sla.LinearOperator((p, p), matvec=counted, dtype=np.float64), k=10, which="LA", tol=1e-8,
              return_eigenvectors=False, v0=rng.standard_normal(p))
    fast = sgdnoise.hessian_eigen(lambda v: hessian @ v, p, k=10, tol=1e-8, verify=False)
    thorough = sgdnoise.hessian_eigen(lambda v: hessian @ v, p, k=10, tol=1e-8)
    assert fast.converged and thorough.converged
    np.testing.assert_allclose(fast.values, exact, rtol=0, atol=1e-8 * exact[0])
    true = np.linalg.norm(hessian @ fast.vectors - fast.vectors * fast.values, axis=0)
    np.testing.assert_allclose(fast.residuals, true, rtol=0, atol=1e-12 * exact[0])
    assert fast.products <= count["n"], (fast.products, count["n"])
    assert thorough.products > fast.products  # the verification cycle and the residual products


@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("batch_size", [4, 16])
def test_network_fluctuation_against_the_dense_route(rng, momentum, batch_size):
    hessian, grads = problem(rng)
    p = hessian.shape[0]
    lr = 0.2
    noise = sgdnoise.noise_operator(grads, batch_size)
    dense_noise = sgdnoise.noise_covariance(grads, batch_size)
    # The block is exact given exact eigenvectors; its error follows the residual tolerance
    # (error ≲ residual / gap), so the eigenpairs are asked to 1e-11 here.
    r = sgdnoise.network_fluctuation(lambda v: hessian @ v, noise, p, lr=lr, momentum=momentum, k=4, probes=40,
                                     steps=30, batch_size=batch_size, seed=3, tol=1e-11)
    sigma = sgdnoise.stationary_covariance(hessian, dense_noise, lr, momentum)
    q = r.top_eigenvectors
    block = q.T @ sigma @ q
    # (a) the k x k block is exact (Theorem 1 is diagonal in H's eigenbasis).
    np.testing.assert_allclose(r.sigma_block, block, rtol=0, atol=1e-10 * np.abs(block).max())
    assert r.top_trace_sigma == pytest.approx(np.trace(block), rel=1e-10)
    # (b) the excess loss, top k exact + probes: a z-score.
    exact = 0.5 * np.trace(hessian @ sigma)
    assert abs(r.excess_loss - exact) < 4 * r.excess_loss_stderr, (r.excess_loss, exact, r.excess_loss_stderr)
    assert r.excess_loss_stderr < 0.05 * exact
    # (c) the critical learning rates.
    h_max = np.linalg.eigvalsh(hessian)[-1]
    assert r.critical_learning_rate_additive == pytest.approx(2 * (1 + momentum) / h_max, rel=1e-9)
    dense_critical = sgdnoise.critical_learning_rate(hessian, batch_size, momentum, model="high_dimensional")
    z = (r.critical_learning_rate_multiplicative - dense_critical) / r.critical_learning_rate_multiplicative_stderr
    assert abs(z) < 4, (r.critical_learning_rate_multiplicative, dense_critical, z)
    assert r.noise_products == 2 * 4 + 40  # k bottom-noise and k block products + one per probe
    assert r.top_converged and r.max_residual <= 1e-11 * r.top_eigenvalues[0]


def test_diagonal_learning_rate(rng):
    """Λ = diag(d): the block is X_k = Q̃ᵀ Λ^{-1/2} Σ Λ^{-1/2} Q̃ with Q̃ the eigenvectors of
    Λ^{1/2} H Λ^{1/2}."""
    hessian, grads = problem(rng)
    p = hessian.shape[0]
    d = rng.uniform(0.05, 0.2, p)
    dense_noise = sgdnoise.noise_covariance(grads, 8)
    r = sgdnoise.network_fluctuation(lambda v: hessian @ v, dense_noise, p, lr=d, k=3, probes=20, steps=30, tol=1e-11)
    sigma = sgdnoise.stationary_covariance(hessian, dense_noise, np.diag(d))
    root = np.sqrt(d)
    x = sigma / np.outer(root, root)
    q = r.top_eigenvectors
    np.testing.assert_allclose(r.fluctuation_block, q.T @ x @ q, atol=1e-10 * np.abs(q.T @ x @ q).max())
    assert r.sigma_block is None
    h_tilde = hessian * np.outer(root, root)
    np.testing.assert_allclose(r.top_eigenvalues, np.linalg.eigvalsh(h_tilde)[::-1][:3], rtol=1e-9)
    assert abs(r.excess_loss - 0.5 * np.trace(hessian @ sigma)) < 4 * r.excess_loss_stderr


def test_unstable_carries_the_additive_critical_learning_rate(rng):
    hessian, grads = problem(rng)
    with pytest.raises(sgdnoise.UnstableError) as info:
        sgdnoise.network_fluctuation(hessian, np.eye(hessian.shape[0]), hessian.shape[0], lr=0.5, k=2)
    assert info.value.critical_learning_rate == pytest.approx(2 / 5.0, rel=1e-8)


def test_a_callback_that_raises_propagates_its_exception(rng):
    hessian, _ = problem(rng)
    p = hessian.shape[0]
    calls = []

    def hvp(v):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("stop")
        return hessian @ v

    with pytest.raises(KeyboardInterrupt, match="stop") as info:
        sgdnoise.hessian_eigen(hvp, p, k=2)
    assert isinstance(info.value.__cause__, sgdnoise.CancelledError)
    assert len(calls) == 5  # no call after the one that raised
    with pytest.raises(sgdnoise.InvalidArgumentError, match="returned shape"):
        sgdnoise.hessian_eigen(lambda v: np.ones(p + 1), p, k=2)
    with pytest.raises(sgdnoise.NumericalError, match="NaN"):
        sgdnoise.hessian_eigen(lambda v: np.full(p, np.nan), p, k=2)
    with pytest.raises(ValueError, match="noise failed"):
        sgdnoise.network_fluctuation(hessian, lambda v: (_ for _ in ()).throw(ValueError("noise failed")), p,
                                     lr=0.1, k=2)


def test_arguments_are_checked():
    h = np.eye(4)
    for kwargs, message in [({"k": 2}, "2k = 4"), ({"k": 0}, "k must be"), ({"probes": 1}, "probes"),
                            ({"momentum": 1.0}, "momentum"), ({"lr": -1.0}, "lr")]:
        args = {"lr": 0.1, "k": 1} | kwargs
        with pytest.raises(sgdnoise.InvalidArgumentError, match=message):
            sgdnoise.network_fluctuation(h, h, 4, **args)


def test_summary_states_the_regime_and_warns_outside_it():
    h = np.diag(np.linspace(1.0, 0.01, 50))
    inside = sgdnoise.network_fluctuation(h, 0.01 * np.eye(50), 50, lr=0.05, k=3, probes=5, batch_size=4)
    text = inside.summary()
    assert "Regime: c = lr h_max/(2(1-mu)) = 0.025." in text and "WARNING" not in text
    # With momentum c measures the effective rate lr/(1 - mu): 0.025/(1 - 0.9) = 0.25, past 0.1.
    fast = sgdnoise.network_fluctuation(h, 0.01 * np.eye(50), 50, lr=0.05, momentum=0.9, k=3, probes=5)
    assert "= 0.25." in fast.summary() and "c = 0.1 the constant-noise prediction was not shown" in fast.summary()
    outside = sgdnoise.network_fluctuation(h, 0.01 * np.eye(50), 50, lr=0.5, k=3, probes=5, batch_size=4)
    assert outside.critical_learning_rate_multiplicative < 0.5
    text = outside.summary()
    assert "past the multiplicative critical learning rate" in text and "not shown to hold" in text


def cubic(rng, p=20):
    """L(w) = ½wᵀAw + (1/6)Σ c_abc w_a w_b w_c: H(w) = A + c·w, ∇(vᵀH(w)v) = c(v, v, ·)."""
    q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    h = np.concatenate([[3.0, 2.0, 1.5], rng.uniform(0.02, 0.3, p - 4), [0.0]])
    a = (q * h) @ q.T
    a = 0.5 * (a + a.T)
    c = rng.uniform(-1, 1, (p, p, p))
    c = sum(np.transpose(c, perm) for perm in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]) / 6
    return a, c


@pytest.mark.parametrize("momentum", [0.0, 0.8])
def test_mean_drift_against_the_mean_recursion(momentum):
    """network_drift's mean against a plain loop of the heavy-ball mean recursion with the force
    ½∇Tr[H(w)Σ_k] (g by einsum with the whole Σ_k = Q S Qᵀ), on a cubic loss."""
    rng = np.random.default_rng(3)
    a, c = cubic(rng)
    p = a.shape[0]
    grads = rng.standard_normal((300, p)) * 0.3
    lr = 0.1 * (1 - momentum)
    r = sgdnoise.network_fluctuation(a, sgdnoise.noise_operator(grads, 8), p, lr=lr, momentum=momentum, k=3,
                                     probes=4, steps=10, tol=1e-12)
    steps = [0, 3, 50, 800]
    drift = sgdnoise.network_drift(r, a, lambda v: np.einsum("abc,a,b->c", c, v, v), steps=steps)
    q = r.top_eigenvectors
    sigma_k = q @ r.sigma_block @ q.T
    g = np.einsum("abc,ab->c", c, sigma_k)
    np.testing.assert_allclose(drift.gradient, g, rtol=0, atol=1e-12 * np.abs(g).max())
    assert drift.converged and drift.curvature_gradient_products == 3
    np.testing.assert_allclose(drift.excess_loss_covered, 0.5 * np.trace(a @ sigma_k), rtol=1e-10)
    e, m = np.zeros(p), np.zeros(p)
    for t in range(801):
        if t in steps:
            row = steps.index(t)
            np.testing.assert_allclose(drift.displacements[row], e, rtol=0, atol=1e-9 * max(np.abs(e).max(), 1e-300))
            np.testing.assert_allclose(drift.eigenvector_displacements[row], q.T @ e, rtol=0,
                                       atol=1e-9 * max(np.abs(e).max(), 1e-300))
        m = momentum * m + a @ e + 0.5 * g
        e = e - lr * m
    h = r.top_eigenvalues / lr
    np.testing.assert_allclose(drift.offsets, -0.5 * (q.T @ g) / h, rtol=1e-10)
    # The flat direction (h = 0) is found at the bottom: it never relaxes, and the summary says so.
    assert r.slowest_relaxation_steps == np.inf
    assert np.isclose(r.top_relaxation_steps, sgdnoise.relaxation_steps(r.top_eigenvalues[-1], momentum))
    assert "never" in r.summary()


def test_relaxation_steps_is_the_decay_of_the_mean():
    for x, mu in [(0.05, 0.0), (0.02, 0.9), (0.7, 0.3)]:
        tau = sgdnoise.relaxation_steps(x, mu)
        e, m, sizes = 1.0, 0.0, []
        for n in range(1, 1201):
            m = mu * m + x * e
            e -= m
            sizes.append(np.hypot(e, m))
        rho = (max(sizes[1000:1200]) / max(sizes[400:600])) ** (1 / 600)
        assert abs(np.exp(-1 / tau) - rho) < 2e-3, (x, mu, tau, rho)
    assert sgdnoise.relaxation_steps(0.0) == np.inf and sgdnoise.relaxation_steps(-1e-3, 0.5) == np.inf
