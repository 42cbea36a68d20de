"""The JAX adapter (sgdnoise.jax) on a real network: a 10 -> 8 -> 1 tanh MLP on scikit-learn's
diabetes data (standardised, N = 442, P = 97, float64), trained with weight decay to a minimum
(L-BFGS, then Newton steps with the dense Hessian) to |grad L| < 1e-10.

Every matrix-free estimate is checked against the dense route: H = jax.hessian of the flat loss,
per-sample gradients from jax.jacrev of the vector of per-example losses (plus the weight decay's
gradient), C = sgdnoise.noise_covariance(G, S) and Sigma = sgdnoise.stationary_covariance(H, C,
lr, momentum).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so
from jax.flatten_util import ravel_pytree
from sklearn.datasets import load_diabetes

import sgdnoise
import sgdnoise.jax as sj

jax.config.update("jax_enable_x64", True)

GAMMA = 1e-3  # weight decay, inside loss_fn
HIDDEN = 8
S = 8  # batch size


def model(p, x):
    return jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]


def loss_fn(p, batch):
    """The training loss: MEAN of 1/2 (f(x_i) - y_i)^2 over the batch, plus (gamma/2)|w|^2."""
    x, t = batch
    r = model(p, x) - t
    return 0.5 * jnp.mean(r * r) + 0.5 * GAMMA * sum(jnp.sum(a * a) for a in jax.tree_util.tree_leaves(p))


def initial_params(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"W1": rng.normal(size=(10, HIDDEN)) / np.sqrt(10), "b1": np.zeros(HIDDEN),
            "W2": rng.normal(size=HIDDEN) / np.sqrt(HIDDEN), "b2": np.array(0.0)}


def rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def net():
    """The trained network at its minimum, with the dense references."""
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    data = (jnp.asarray(X), jnp.asarray(y))
    w0, unravel = ravel_pytree(jax.tree_util.tree_map(jnp.asarray, initial_params()))

    def flat_loss(w):
        return loss_fn(unravel(w), data)

    value_and_grad = jax.jit(jax.value_and_grad(flat_loss))
    hessian = jax.jit(jax.hessian(flat_loss))
    res = so.minimize(lambda w: tuple(np.asarray(a) for a in value_and_grad(w)), np.asarray(w0), jac=True,
                      method="L-BFGS-B", options=dict(maxiter=3000, maxfun=6000, gtol=1e-12, ftol=0.0, maxcor=30))
    w = res.x
    for _ in range(5):  # Newton polishing with the dense Hessian
        g = np.asarray(value_and_grad(w)[1])
        if np.linalg.norm(g) < 1e-12:
            break
        w = w - np.linalg.solve(np.asarray(hessian(w)), g)
    grad_norm = float(np.linalg.norm(value_and_grad(w)[1]))
    H = np.asarray(hessian(w))
    H = 0.5 * (H + H.T)
    eigenvalues = np.linalg.eigvalsh(H)

    def per_example_losses(w):
        r = model(unravel(w), data[0]) - data[1]
        return 0.5 * r * r

    G = np.asarray(jax.jacrev(per_example_losses)(w)) + GAMMA * w  # rows: grad (l_i + gamma/2 |w|^2)
    return SimpleNamespace(X=X, y=y, data=(X, y), w=w, params=unravel(jnp.asarray(w)), unravel=unravel, flat_loss=flat_loss,
                           grad_norm=grad_norm, H=H, eigenvalues=eigenvalues, h_max=float(eigenvalues[-1]), G=G,
                           P=w.size, N=X.shape[0])


# ----------------------------------------------------------------------------------------------------
# Import

def test_import_sgdnoise_does_not_import_jax_and_the_adapter_imports_the_real_jax():
    python_dir = str(Path(sgdnoise.__file__).resolve().parents[1])
    code = ("import sys, sgdnoise\n"
            "print('jax' in sys.modules)\n"
            "import sgdnoise.jax as sj\n"
            "print(sj._jax.__name__, sj._jax.__name__ == 'jax' and hasattr(sj._jax, 'jit'), sj.__name__)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (python_dir, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "jax", "True", "sgdnoise.jax"]


# ----------------------------------------------------------------------------------------------------
# The minimum and the flat parameters

def test_training_reaches_a_minimum(net):
    assert net.P == 97 and net.N == 442
    assert net.grad_norm < 1e-10
    assert net.eigenvalues[0] > 0  # a strict minimum (weight decay)


def test_flatten_round_trip(net):
    w, unflatten = sj.flatten(net.params)
    assert w.dtype == np.float64 and w.shape == (net.P,)
    np.testing.assert_array_equal(w, net.w)
    back = unflatten(w)
    for key in net.params:
        np.testing.assert_array_equal(np.asarray(back[key]), np.asarray(net.params[key]))
    p32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), net.params)
    w32, unflatten32 = sj.flatten(p32)
    assert w32.dtype == np.float64
    assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(unflatten32(w32)))
    with pytest.raises(sgdnoise.InvalidArgumentError):
        unflatten(np.zeros(net.P + 1))


# ----------------------------------------------------------------------------------------------------
# (b) the products against the dense route

def test_hvp_matches_dense_hessian(net, rng):
    h = sj.hvp(loss_fn, net.params, net.data)
    assert h.shape == (net.P, net.P) and h.dtype == np.float64
    for _ in range(3):
        v = rng.standard_normal(net.P)
        assert rel(h(v), net.H @ v) < 1e-10
    assert rel(h.matvec(np.eye(net.P)[0]), net.H[:, 0]) < 1e-10
    assert h.calls == 4
    with pytest.raises(sgdnoise.InvalidArgumentError):
        h(np.zeros(net.P - 1))


def test_matmat_is_the_vmapped_hvp(net, rng):
    """H V by jax.vmap of the product against the dense H V and against the columns' matvec."""
    h = sj.hvp(loss_fn, net.params, net.data)
    v = rng.standard_normal((net.P, 5))
    block = h.matmat(v)
    assert block.shape == (net.P, 5) and block.dtype == np.float64
    assert rel(block, net.H @ v) < 1e-10
    assert rel(block, np.stack([h.matvec(v[:, j]) for j in range(5)], axis=1)) < 1e-12
    assert h.calls == 10  # vectors, a block of b counting b
    for bad in (np.zeros(net.P), np.zeros((net.P, 0)), np.zeros((net.P - 1, 2))):
        with pytest.raises(sgdnoise.InvalidArgumentError):
            h.matmat(bad)


def test_block_network_fluctuation_equals_the_single_one(net):
    """network_fluctuation with the adapter's matmat (probes in lockstep, blocks of 4) against the
    same call through matvec only: the products differ in rounding (XLA's batched and unbatched
    programs), the eigenpairs are asked to 1e-11, so the results agree to 1e-7 relative."""
    h = sj.hvp(loss_fn, net.params, net.data)
    c = sj.noise(loss_fn, net.params, net.data, S)
    kw = dict(lr=0.2 * 2 / net.h_max, batch_size=S, k=4, probes=8, steps=20, tol=1e-11, seed=2)
    single = sgdnoise.network_fluctuation(h.matvec, c.matvec, net.P, **kw)
    calls = h.calls
    block = sgdnoise.network_fluctuation(h, c, net.P, block_size=4, **kw)
    assert h.calls - calls == block.hessian_products
    assert rel(block.top_eigenvalues, single.top_eigenvalues) < 1e-7
    assert rel(block.sigma_block, single.sigma_block) < 1e-7
    assert block.excess_loss == pytest.approx(single.excess_loss, rel=1e-7)
    assert block.critical_learning_rate_multiplicative == pytest.approx(single.critical_learning_rate_multiplicative,
                                                                        rel=1e-7)


def test_curvature_gradient_matches_the_dense_third_derivative(net, rng):
    """∇_w(vᵀH(w)v) against jax.grad of vᵀ(dense jax.hessian)v, and analyze(drift_steps=...) wires it
    into network_drift."""
    h = sj.hvp(loss_fn, net.params, net.data)
    dense_hessian = jax.hessian(net.flat_loss)
    for _ in range(2):
        v = rng.standard_normal(net.P)
        reference = np.asarray(jax.grad(lambda u: jnp.asarray(v) @ dense_hessian(u) @ jnp.asarray(v))(jnp.asarray(net.w)))
        assert rel(h.curvature_gradient(v), reference) < 1e-10
    lr = 0.05 * 2 / net.h_max
    r = sj.analyze(loss_fn, net.params, net.data, lr=lr, batch_size=8, k=3, probes=4, steps=10, drift_steps=[0, 100])
    assert r.drift is not None and r.drift.curvature_gradient_products == 3
    direct = sgdnoise.network_drift(r, h, h.curvature_gradient, steps=[0, 100])
    np.testing.assert_allclose(r.drift.displacements, direct.displacements, rtol=1e-12, atol=1e-15)
    assert np.all(r.drift.displacements[0] == 0) and "Mean drift" in r.summary()


def test_per_sample_gradients_match_the_jacobian_route(net):
    chunks = list(sj.per_sample_gradients(loss_fn, net.params, net.data, chunk=100))
    assert [c.shape for c in chunks] == [(100, net.P)] * 4 + [(42, net.P)]
    assert all(c.dtype == np.float64 for c in chunks)
    G = np.concatenate(chunks)
    assert rel(G, net.G) < 1e-12
    # The weight decay adds gamma w to every row and cancels in the covariance.
    C = sgdnoise.noise_covariance(G, S)
    assert rel(C, sgdnoise.noise_covariance(net.G - GAMMA * net.w, S)) < 1e-10


def test_noise_stacks_the_gradients_into_a_noise_operator(net, rng):
    op = sj.noise(loss_fn, net.params, net.data, S, chunk=128)
    assert isinstance(op, sgdnoise.NoiseOperator)
    assert op.grads.shape == (net.N, net.P) and rel(op.grads, net.G) < 1e-12
    C = sgdnoise.noise_covariance(net.G, S)
    v = rng.standard_normal(net.P)
    assert rel(op.matvec(v), C @ v) < 1e-10


@pytest.mark.parametrize("replacement", [True, False])
def test_streaming_noise_matches_the_noise_operator(net, rng, replacement):
    stacked = sj.noise(loss_fn, net.params, net.data, S, replacement=replacement, chunk=64)
    streaming = sj.noise(loss_fn, net.params, net.data, S, replacement=replacement, chunk=64, memory_limit_bytes=1)
    assert isinstance(streaming, sj.StreamingNoise) and isinstance(stacked, sgdnoise.NoiseOperator)
    assert streaming.factor == pytest.approx(stacked.factor, rel=1e-15)
    # At a minimum the mean gradient is ~1e-15 (weight decay balances it): compare it on the scale of G.
    assert np.abs(streaming.mean - stacked.mean).max() < 1e-12 * np.abs(net.G).max()
    v = rng.standard_normal(net.P)
    V = rng.standard_normal((net.P, 3))
    assert rel(streaming.matvec(v), stacked.matvec(v)) < 1e-12
    assert rel(streaming @ V, stacked.matvec(V)) < 1e-12
    assert rel(streaming.diagonal(), stacked.diagonal()) < 1e-12
    assert streaming.passes == 4  # the mean, two products, the diagonal
    # ... and both against the dense covariance.
    C = sgdnoise.noise_covariance(net.G, S, replacement=replacement)
    assert rel(streaming.matvec(v), C @ v) < 1e-10


# ----------------------------------------------------------------------------------------------------
# (a) analyze against the dense route

@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_analyze_matches_the_dense_route(net, momentum):
    lr = 0.2 * 2 / net.h_max
    C = sgdnoise.noise_covariance(net.G, S)
    sigma = sgdnoise.stationary_covariance(net.H, C, lr, momentum)
    r = sj.analyze(loss_fn, net.params, net.data, lr=lr, batch_size=S, momentum=momentum, k=10, probes=30, steps=40)
    assert isinstance(r, sgdnoise.NetworkFluctuation)
    k = r.top_eigenvalues.size
    # Eigenvalues of lr H at both ends.
    assert np.abs(r.top_eigenvalues - lr * net.eigenvalues[::-1][:k]).max() < 1e-8 * lr * net.h_max
    assert np.abs(r.bottom_eigenvalues - lr * net.eigenvalues[:k]).max() < 1e-8 * lr * net.h_max
    # The exact block Q_k^T Sigma Q_k.
    Q = r.top_eigenvectors
    block = Q.T @ sigma @ Q
    assert rel(r.sigma_block, block) < 1e-8
    assert r.top_trace_sigma == pytest.approx(np.trace(block), rel=1e-8)
    # The excess loss 1/2 Tr[H Sigma], within 4 standard errors of the probes.
    excess = 0.5 * np.trace(net.H @ sigma)
    assert abs(r.excess_loss - excess) < 4 * r.excess_loss_stderr
    assert r.excess_loss_stderr < 0.05 * excess
    # The additive critical learning rate 2(1 + mu)/h_max.
    assert r.critical_learning_rate_additive == pytest.approx(2 * (1 + momentum) / net.h_max, rel=1e-8)
    assert r.critical_learning_rate_multiplicative is not None
    assert 0 < r.critical_learning_rate_multiplicative <= r.critical_learning_rate_additive
    assert r.batch_size == S and r.lr == lr and r.momentum == momentum
    assert "excess training loss" in r.summary()


def test_network_fluctuation_with_the_streaming_noise_equals_the_stacked_one(net):
    h = net.H  # the noise path is under test here; the dense Hessian keeps it quick
    stacked = sj.noise(loss_fn, net.params, net.data, S, chunk=100)
    streaming = sj.noise(loss_fn, net.params, net.data, S, chunk=100, memory_limit_bytes=1)
    kw = dict(lr=0.2 * 2 / net.h_max, batch_size=S, k=4, probes=4, steps=10)
    a = sgdnoise.network_fluctuation(h, stacked, net.P, **kw)
    b = sgdnoise.network_fluctuation(h, streaming, net.P, **kw)
    assert streaming.passes == 1 + b.noise_products
    assert rel(b.sigma_block, a.sigma_block) < 1e-10
    assert b.excess_loss == pytest.approx(a.excess_loss, rel=1e-10)


def test_analyze_takes_a_diagonal_learning_rate_as_a_pytree(net):
    lr = 0.2 * 2 / net.h_max
    tree = jax.tree_util.tree_map(lambda a: jnp.full(jnp.shape(a), lr), net.params)
    r = sj.analyze(loss_fn, net.params, net.data, lr=tree, batch_size=S, k=4, probes=4, steps=10)
    assert r.sigma_block is None  # a diagonal learning rate: the block is X_k, here Q^T Sigma Q / lr
    assert np.abs(r.top_eigenvalues - lr * net.eigenvalues[::-1][:4]).max() < 1e-8 * lr * net.h_max
    sigma = sgdnoise.stationary_covariance(net.H, sgdnoise.noise_covariance(net.G, S), lr)
    Q = r.top_eigenvectors
    assert rel(r.fluctuation_block, Q.T @ sigma @ Q / lr) < 1e-8
    with pytest.raises(sgdnoise.InvalidArgumentError, match="lr must be"):
        sj.analyze(loss_fn, net.params, net.data, lr=np.full(net.P - 1, lr), batch_size=S)


def test_analyze_refuses_a_summed_loss(net):
    def summed(p, batch):
        return loss_fn(p, batch) * batch[0].shape[0]

    with pytest.raises(sgdnoise.InvalidArgumentError, match="MEAN"):
        sj.analyze(summed, net.params, net.data, lr=0.01, batch_size=S, k=2, probes=2, steps=2)


def test_bad_data_is_refused(net):
    with pytest.raises(sgdnoise.InvalidArgumentError, match="same number of examples"):
        sj.hvp(loss_fn, net.params, (net.X, net.y[:-1]))
    with pytest.raises(sgdnoise.InvalidArgumentError):
        sj.per_sample_gradients(loss_fn, net.params, net.data, chunk=0)
    with pytest.raises(sgdnoise.InvalidArgumentError):
        sj.noise(loss_fn, net.params, net.data, net.N + 1, replacement=False)


# ----------------------------------------------------------------------------------------------------
# (c) float32 parameters

def test_float32_parameters(net, rng):
    p32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), net.params)
    data32 = (net.X.astype(np.float32), net.y.astype(np.float32))
    chunks = list(sj.per_sample_gradients(loss_fn, p32, data32, chunk=128))
    assert all(c.dtype == np.float32 for c in chunks)
    G32 = np.concatenate(chunks)
    assert rel(G32, net.G) < 1e-5
    stacked = sj.noise(loss_fn, p32, data32, S, chunk=128)
    assert isinstance(stacked, sgdnoise.NoiseOperator) and stacked.grads.dtype == np.float32
    streaming = sj.noise(loss_fn, p32, data32, S, chunk=128, memory_limit_bytes=1)
    v = rng.standard_normal(net.P)
    assert rel(streaming.matvec(v), stacked.matvec(v)) < 1e-12  # the same float32 gradients
    h = sj.hvp(loss_fn, p32, data32)
    assert h.dtype == np.float32
    assert rel(h(v), net.H @ v) < 1e-5
    lr = 0.2 * 2 / net.h_max
    r = sj.analyze(loss_fn, p32, data32, lr=lr, batch_size=S, k=4, probes=8, steps=20)
    assert np.abs(r.top_eigenvalues - lr * net.eigenvalues[::-1][:4]).max() < 1e-4 * lr * net.h_max
    sigma = sgdnoise.stationary_covariance(net.H, sgdnoise.noise_covariance(net.G, S), lr)
    Q = r.top_eigenvectors
    assert rel(r.sigma_block, Q.T @ sigma @ Q) < 1e-4
