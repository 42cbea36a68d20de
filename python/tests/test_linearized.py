"""The linearised network's critical learning rate (docs/theory.md §8, noise model (iii)).

Independent routes: the second-moment map of SGD on linear regression built explicitly as a
(2P)² × (2P)² matrix from its definition (numpy, momentum included) and bisected on its spectral
radius; the features against finite differences of the model's outputs; the two adapters against
each other on the same network.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import sgdnoise
import sgdnoise.jax as sj
import sgdnoise.torch as st
from sgdnoise.errors import InvalidArgumentError

jax.config.update("jax_enable_x64", True)


def brute_force_edge(x: np.ndarray, batch_size: int, gamma: float | np.ndarray = 0.0, momentum: float = 0.0) -> float:
    """The largest λ at which E[z zᵀ] of z = (e, m), z' = K z, stays bounded: K(B) =
    [[I − λ(B + Γ), −λμ], [B + Γ, μ]] with B the mean of S examples' x xᵀ drawn with replacement
    (m ← μ m + ĝ, e ← e − λ m) and Γ = γI (or a given matrix). The map Z ↦ E[K Z Kᵀ] = K̄ Z K̄ᵀ +
    (1/S) mean_i L_i Z L_iᵀ with L_i the part of K linear in x_i x_iᵀ − A, as a (2P)² matrix;
    bisection on its spectral radius."""
    n, p = x.shape
    a = x.T @ x / n
    eye = np.eye(p)
    decay = gamma * eye if np.ndim(gamma) == 0 else np.asarray(gamma)

    def radius(lam: float) -> float:
        kbar = np.block([[eye - lam * (a + decay), -lam * momentum * eye], [a + decay, momentum * eye]])
        t = np.kron(kbar, kbar)
        for xi in x:
            d = np.outer(xi, xi) - a
            li = np.block([[-lam * d, np.zeros((p, p))], [d, np.zeros((p, p))]])
            t += np.kron(li, li) / (batch_size * n)
        return float(np.max(np.abs(np.linalg.eigvals(t))))

    lo, hi = 0.0, 1.0
    while radius(hi) < 1:
        hi *= 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if radius(mid) < 1 else (lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("momentum", [0.0, 0.6])
@pytest.mark.parametrize("gamma", [0.0, 0.05])
def test_edge_matches_the_explicit_second_moment_map(gamma, momentum):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(25, 3)) * np.array([1.5, 1.0, 0.4])
    ours = sgdnoise.linearized_critical_learning_rate(x, 4, weight_decay=gamma, momentum=momentum)
    assert ours == pytest.approx(brute_force_edge(x, 4, gamma, momentum), rel=1e-7)


@pytest.mark.parametrize("gamma", [0.0, 0.05])
def test_rank_deficient_features_solve_on_the_range(gamma):
    """P = 5 features of rank 2: the null directions feel only γ (stable below 2(1+μ)/γ, far above
    the edge here), so the edge is the range's. Checked against the full 5-dimensional map at
    γ > 0 and against the features written in another basis of their range at γ = 0."""
    rng = np.random.default_rng(4)
    z = rng.normal(size=(20, 2))
    mix = rng.normal(size=(2, 5))
    x = z @ mix
    ours = sgdnoise.linearized_critical_learning_rate(x, 3, weight_decay=gamma)
    if gamma > 0:
        assert ours == pytest.approx(brute_force_edge(x, 3, gamma), rel=1e-7)
    else:
        q, _ = np.linalg.qr(mix.T)           # an orthonormal basis of the range (not the SVD's)
        assert ours == pytest.approx(brute_force_edge(x @ q, 3), rel=1e-7)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_wide_features_solve_on_the_range(momentum):
    """N = 6 examples, P = 9 parameters (a network wider than its data): the range has dimension 6
    and is reached through the 6 x 6 Gram matrix; against the full 9-dimensional map (γ > 0)."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(6, 9))
    ours = sgdnoise.linearized_critical_learning_rate(x, 2, weight_decay=0.02, momentum=momentum)
    assert ours == pytest.approx(brute_force_edge(x, 2, 0.02, momentum), rel=1e-7)


def test_weight_decay_alone_sets_the_edge_of_flat_features():
    x = np.zeros((6, 3))
    assert sgdnoise.linearized_critical_learning_rate(x, 2, weight_decay=0.5, momentum=0.5) == pytest.approx(6.0)
    with pytest.raises(InvalidArgumentError, match="positive eigenvalue"):
        sgdnoise.linearized_critical_learning_rate(x, 2)


def test_diagonal_preconditioner_is_a_multiple_of_it():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20, 3))
    d = np.array([1.0, 0.5, 2.0])
    c = sgdnoise.linearized_critical_learning_rate(x, 4, lr=d)
    # SGD with the matrix rate cΛ on features x is SGD with the scalar rate c on x Λ^{1/2}
    assert c == pytest.approx(brute_force_edge(x * np.sqrt(d), 4), rel=1e-7)


def test_diagonal_preconditioner_with_weight_decay():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(15, 3))
    d = np.array([1.0, 0.5, 2.0])
    c = sgdnoise.linearized_critical_learning_rate(x, 3, lr=d, weight_decay=0.1)
    # in w̃ = Λ^{-1/2} w the weight decay becomes γΛ: the explicit map with that matrix decay
    xs = x * np.sqrt(d)
    assert c == pytest.approx(brute_force_edge(xs, 3, 0.1 * np.diag(d)), rel=1e-7)


def test_features_validate_their_inputs():
    with pytest.raises(InvalidArgumentError, match="convex"):
        sgdnoise.linearized_features(np.ones((3, 2)), [1.0, -0.1, 1.0])
    with pytest.raises(InvalidArgumentError, match="one per example"):
        sgdnoise.linearized_features(np.ones((3, 2)), [1.0, 1.0])
    with pytest.raises(InvalidArgumentError, match="non-finite"):
        sgdnoise.linearized_features(np.array([[1.0, np.nan]]))
    np.testing.assert_allclose(sgdnoise.linearized_features(np.ones((2, 2)), [4.0, 1.0]), [[2.0, 2.0], [1.0, 1.0]])


# ------------------------------------------------------------------------------------------------
# The adapters: a 3 -> 4 -> 1 tanh network (P = 21) on 40 examples

N, HIDDEN = 40, 4


def _data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, 3))
    y = np.tanh(x @ np.array([1.0, -0.5, 0.3])) + 0.2 * rng.normal(size=N)
    return x, y


def _torch_model(seed: int = 0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, HIDDEN, dtype=torch.float64), torch.nn.Tanh(),
                               torch.nn.Linear(HIDDEN, 1, dtype=torch.float64))


def _outputs(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x)).numpy()[:, 0]


def _finite_difference_jacobian(model, x):
    w0, load = st.flatten(model)
    cols = []
    for e in np.eye(w0.size):
        load(w0 + 1e-6 * e)
        plus = _outputs(model, x)
        load(w0 - 1e-6 * e)
        cols.append((plus - _outputs(model, x)) / 2e-6)
    load(w0)
    return np.stack(cols, axis=1)


def test_torch_features_are_scaled_output_gradients():
    x, y = _data()
    model = _torch_model()
    j = _finite_difference_jacobian(model, x)
    half = st.linearized_features(model, lambda o, t: 0.5 * torch.nn.functional.mse_loss(o, t), (x, y[:, None]))
    np.testing.assert_allclose(half, j, rtol=0, atol=1e-8 * np.abs(j).max())
    full = st.linearized_features(model, torch.nn.MSELoss(), (x, y[:, None]), chunk=7)
    np.testing.assert_allclose(full, np.sqrt(2) * half, rtol=1e-13, atol=0)
    # the logistic loss: curvature p(1 - p) at each example's logit
    labels = (y > 0).astype(np.float64)[:, None]
    logistic = st.linearized_features(model, torch.nn.BCEWithLogitsLoss(), (x, labels))
    p = 1 / (1 + np.exp(-_outputs(model, x)))
    np.testing.assert_allclose(logistic, np.sqrt(p * (1 - p))[:, None] * half, rtol=1e-12, atol=1e-15)


def test_torch_features_need_one_output_per_example():
    x, y = _data()
    model = torch.nn.Linear(3, 2, dtype=torch.float64)
    with pytest.raises(InvalidArgumentError, match="one output per example"):
        st.linearized_features(model, torch.nn.MSELoss(), (x, np.zeros((N, 2))))


def _jax_apply(params, x):
    w1, b1, w2, b2 = params
    return jnp.tanh(x @ w1 + b1) @ w2 + b2


def _torch_params_for_jax(model):
    # torch's Linear computes x Wᵀ + b
    w1, b1, w2, b2 = (p.detach().numpy() for p in model.parameters())
    return (jnp.asarray(w1.T), jnp.asarray(b1), jnp.asarray(w2.T), jnp.asarray(b2))


def test_jax_and_torch_features_agree():
    x, y = _data()
    model = _torch_model()
    params = _torch_params_for_jax(model)
    ours = sj.linearized_features(_jax_apply, lambda f, t: 0.5 * (f[:, 0] - t) ** 2, params, (x, y), chunk=16)
    reference = st.linearized_features(model, lambda o, t: 0.5 * torch.nn.functional.mse_loss(o, t), (x, y[:, None]))
    # the same parameters in another order: JAX flattens W1 (3 x 4) row-major, torch W1ᵀ (4 x 3)
    order = np.concatenate([np.arange(12).reshape(4, 3).T.ravel(), np.arange(12, 21)])
    np.testing.assert_allclose(ours, reference[:, order], rtol=1e-12, atol=1e-14)


def _trained_torch(gamma: float):
    """The network at a minimum of 0.5 mse + (γ/2)|w|² (L-BFGS to |∇L| < 1e-10)."""
    x, y = _data()
    model = _torch_model(1)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y[:, None])
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=5000, tolerance_grad=1e-13, tolerance_change=0,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = 0.5 * torch.nn.functional.mse_loss(model(xt), yt) + 0.5 * gamma * sum((p ** 2).sum()
                                                                                      for p in model.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert float(grad.norm()) < 1e-8
    return model, x, y


@pytest.fixture(scope="module")
def trained():
    return _trained_torch(1e-2)


def test_torch_analyze_reports_the_linearized_edge(trained):
    model, x, y = trained
    loss = lambda o, t: 0.5 * torch.nn.functional.mse_loss(o, t)  # noqa: E731
    features = st.linearized_features(model, loss, (x, y[:, None]))
    expected = sgdnoise.linearized_critical_learning_rate(features, 4, weight_decay=1e-2, momentum=0.5)
    r = st.analyze(model, loss, (x, y[:, None]), lr=0.01, batch_size=4, momentum=0.5, weight_decay=1e-2, k=2,
                   probes=4, steps=6, linearized=True)
    assert r.critical_learning_rate_linearized == expected
    assert "linearised network (exact)" in r.summary()
    assert st.analyze(model, loss, (x, y[:, None]), lr=0.01, batch_size=4, weight_decay=1e-2, k=2,
                      probes=4, steps=6).critical_learning_rate_linearized is None


def test_jax_analyze_reads_the_weight_decay_off_the_loss(trained):
    model, x, y = trained
    params = _torch_params_for_jax(model)
    gamma = 1e-2

    def loss_fn(p, batch):
        xb, yb = batch
        return 0.5 * jnp.mean((_jax_apply(p, xb)[:, 0] - yb) ** 2) + 0.5 * gamma * sum(jnp.sum(a ** 2) for a in p)

    example = lambda f, t: 0.5 * (f[:, 0] - t) ** 2  # noqa: E731
    r = sj.analyze(loss_fn, params, (x, y), lr=0.01, batch_size=4, momentum=0.5, k=2, probes=4, steps=6,
                   linearized=(_jax_apply, example))
    features = sj.linearized_features(_jax_apply, example, params, (x, y))
    assert r.critical_learning_rate_linearized == pytest.approx(
        sgdnoise.linearized_critical_learning_rate(features, 4, weight_decay=gamma, momentum=0.5), rel=1e-9)
    # a per-example loss that is not the one inside loss_fn (twice it) is refused
    with pytest.raises(InvalidArgumentError, match="does not match"):
        sj.analyze(loss_fn, params, (x, y), lr=0.01, batch_size=4, k=2, probes=4, steps=6,
                   linearized=(_jax_apply, lambda f, t: (f[:, 0] - t) ** 2))
