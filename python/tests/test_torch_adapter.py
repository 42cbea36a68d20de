"""The PyTorch adapter (sgdnoise.torch) on a real network: a 10 -> 8 -> 1 tanh MLP (torch.nn) on
scikit-learn's diabetes data (standardised, N = 442, P = 97, float64), trained with weight decay
1e-3 to a minimum (L-BFGS with a strong Wolfe line search, then Newton steps with the dense Hessian
of torch.autograd.functional.hessian) to |grad L| < 1e-10.

Every matrix-free estimate is checked against the dense route: H = the dense Hessian of the flat
loss (weight decay included), per-sample gradients from a loop of torch.autograd.grad over single
examples, C = sgdnoise.noise_covariance(G, S) and Sigma = sgdnoise.stationary_covariance(H, C,
lr, momentum).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes

import sgdnoise
import sgdnoise.torch as st

GAMMA = 1e-3  # weight decay (torch.optim.SGD's weight_decay), passed as weight_decay=
HIDDEN = 8
S = 8  # batch size


def loss_fn(out, target):
    """The MEAN of 1/2 (f(x_i) - y_i)^2 over the batch (no weight decay: that is weight_decay=)."""
    return 0.5 * torch.nn.functional.mse_loss(out, target)


def make_model(seed: int = 0) -> torch.nn.Module:
    """The MLP in the default dtype, initialised as in test_jax_adapter.py."""
    rng = np.random.default_rng(seed)
    model = torch.nn.Sequential(torch.nn.Linear(10, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(rng.normal(size=(10, HIDDEN)).T / np.sqrt(10)))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.from_numpy(rng.normal(size=(1, HIDDEN)) / np.sqrt(HIDDEN)))
        model[2].bias.zero_()
    return model


def rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def net():
    """The trained network at its minimum, with the dense references."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        X, y = load_diabetes(return_X_y=True)
        X = (X - X.mean(0)) / X.std(0)
        y = ((y - y.mean()) / y.std())[:, None]
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        model = make_model()
        names = [n for n, _ in model.named_parameters()]
        shapes = [p.shape for _, p in model.named_parameters()]

        def unflatten(w):
            out, start = {}, 0
            for n, s in zip(names, shapes):
                size = int(np.prod(s))
                out[n] = w[start:start + size].reshape(s)
                start += size
            return out

        def flat_loss(w):
            out = torch.func.functional_call(model, unflatten(w), (Xt,))
            return loss_fn(out, yt) + 0.5 * GAMMA * (w * w).sum()

        def gradient(w):
            w = w.detach().requires_grad_(True)
            return torch.autograd.grad(flat_loss(w), w)[0].detach()

        optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=1000, max_eval=2000, tolerance_grad=1e-12,
                                      tolerance_change=0.0, history_size=30, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = loss_fn(model(Xt), yt) + 0.5 * GAMMA * sum((p * p).sum() for p in model.parameters())
            loss.backward()
            return loss

        for _ in range(3):
            optimizer.step(closure)
        w = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
        for _ in range(10):  # Newton polishing with the dense Hessian
            g = gradient(w)
            if g.norm() < 1e-12:
                break
            w = w - torch.linalg.solve(torch.autograd.functional.hessian(flat_loss, w), g)
        torch.nn.utils.vector_to_parameters(w, model.parameters())
        grad_norm = float(gradient(w).norm())
        H = torch.autograd.functional.hessian(flat_loss, w).numpy()
        H = 0.5 * (H + H.T)
        eigenvalues = np.linalg.eigvalsh(H)
        # Per-sample gradients by a loop of autograd grads over single examples (no weight decay).
        G = np.empty((X.shape[0], w.numel()))
        for i in range(X.shape[0]):
            grads = torch.autograd.grad(loss_fn(model(Xt[i:i + 1]), yt[i:i + 1]), list(model.parameters()))
            G[i] = torch.cat([g.reshape(-1) for g in grads]).numpy()
    finally:
        torch.set_default_dtype(previous)
    return SimpleNamespace(X=X, y=y, data=(X, y), model=model, w=w.numpy(), flat_loss=flat_loss, grad_norm=grad_norm, H=H,
                           eigenvalues=eigenvalues, h_max=float(eigenvalues[-1]), G=G, P=w.numel(), N=X.shape[0])


# ----------------------------------------------------------------------------------------------------
# Import

def test_import_sgdnoise_does_not_import_torch_and_the_adapter_imports_the_real_torch():
    python_dir = str(Path(sgdnoise.__file__).resolve().parents[1])
    code = ("import sys, sgdnoise\n"
            "print('torch' in sys.modules)\n"
            "import sgdnoise.torch as st\n"
            "print(st._torch.__name__, st._torch.__name__ == 'torch' and hasattr(st._torch, 'func'), st.__name__)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (python_dir, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "torch", "True", "sgdnoise.torch"]


# ----------------------------------------------------------------------------------------------------
# The minimum and the flat parameters

def test_training_reaches_a_minimum(net):
    assert net.P == 97 and net.N == 442
    assert net.grad_norm < 1e-10
    assert net.eigenvalues[0] > 0  # a strict minimum (weight decay)
    assert torch.get_default_dtype() == torch.float32  # the fixture restored it
    assert all(p.dtype == torch.float64 for p in net.model.parameters())


def test_flatten_round_trip(net):
    w, load = st.flatten(net.model)
    assert w.dtype == np.float64 and w.shape == (net.P,)
    np.testing.assert_array_equal(w, net.w)
    np.testing.assert_array_equal(w, torch.nn.utils.parameters_to_vector(net.model.parameters()).detach().numpy())
    model = make_model(seed=1).double()
    _, load = st.flatten(model)
    assert load(w) is model
    np.testing.assert_array_equal(st.flatten(model)[0], w)
    model32 = make_model(seed=1)  # float32
    w32, load32 = st.flatten(model32)
    assert w32.dtype == np.float64
    load32(w)
    assert all(p.dtype == torch.float32 for p in model32.parameters())
    assert rel(st.flatten(model32)[0], w) < 1e-7
    with pytest.raises(sgdnoise.InvalidArgumentError):
        load(np.zeros(net.P + 1))


# ----------------------------------------------------------------------------------------------------
# (b) the products against the dense route

def test_hvp_matches_dense_hessian(net, rng):
    h = st.hvp(net.model, loss_fn, net.data, weight_decay=GAMMA)
    assert h.shape == (net.P, net.P) and h.dtype == np.float64 and h.method == "forward-over-reverse"
    for _ in range(3):
        v = rng.standard_normal(net.P)
        assert rel(h(v), net.H @ v) < 1e-10
    assert rel(h.matvec(np.eye(net.P)[0]), net.H[:, 0]) < 1e-10
    assert h.calls == 4
    with pytest.raises(sgdnoise.InvalidArgumentError):
        h(np.zeros(net.P - 1))
    # Without weight decay the product is that of H - gamma I; in chunks, the same H.
    v = rng.standard_normal(net.P)
    assert rel(st.hvp(net.model, loss_fn, net.data)(v), net.H @ v - GAMMA * v) < 1e-10
    assert rel(st.hvp(net.model, loss_fn, net.data, weight_decay=GAMMA, chunk=100)(v), net.H @ v) < 1e-10


def test_matmat_maps_the_hvp_over_columns(net, rng):
    """H V by torch.func.vmap of the forward-over-reverse product against the dense H V, in one
    chunk and in several; the double-backward route, which vmap cannot map, loops over columns."""
    v = rng.standard_normal((net.P, 5))
    for chunk in (None, 100):
        h = st.hvp(net.model, loss_fn, net.data, weight_decay=GAMMA, chunk=chunk)
        block = h.matmat(v)
        assert block.shape == (net.P, 5) and block.dtype == np.float64
        assert rel(block, net.H @ v) < 1e-10
        assert h._vmap is True and h.calls == 5  # mapped; vectors counted
    h = st.hvp(net.model, loss_fn, net.data, weight_decay=GAMMA)
    h.method = "double-backward"
    assert rel(h.matmat(v), net.H @ v) < 1e-10 and h._vmap is None and h.calls == 5
    for bad in (np.zeros(net.P), np.zeros((net.P, 0))):
        with pytest.raises(sgdnoise.InvalidArgumentError):
            h.matmat(bad)


def test_block_network_fluctuation_equals_the_single_one(net):
    """As the JAX adapter's test: the matmat path against matvec only, to 1e-7 relative."""
    h = st.hvp(net.model, loss_fn, net.data, weight_decay=GAMMA)
    c = st.noise(net.model, loss_fn, net.data, S)
    kw = dict(lr=0.2 * 2 / net.h_max, batch_size=S, k=4, probes=8, steps=20, tol=1e-11, seed=2)
    single = sgdnoise.network_fluctuation(h.matvec, c.matvec, net.P, **kw)
    block = sgdnoise.network_fluctuation(h, c, net.P, block_size=4, **kw)
    assert rel(block.top_eigenvalues, single.top_eigenvalues) < 1e-7
    assert rel(block.sigma_block, single.sigma_block) < 1e-7
    assert block.excess_loss == pytest.approx(single.excess_loss, rel=1e-7)


def test_hvp_double_backward_route(net, rng):
    h = st.hvp(net.model, loss_fn, net.data, weight_decay=GAMMA)
    h.method = "double-backward"
    v = rng.standard_normal(net.P)
    assert rel(h(v), net.H @ v) < 1e-10


def test_curvature_gradient_matches_differences_of_the_dense_hessian(net, rng):
    """uᵀ∇_w(vᵀH(w)v) against central differences of vᵀH(w ± εu)v with the dense Hessian (its
    error is O(ε²)); in chunks the same, and weight decay adds nothing (its third derivative is 0)."""
    h = st.hvp(net.model, loss_fn, net.data, weight_decay=GAMMA)
    v = rng.standard_normal(net.P)
    g = h.curvature_gradient(v)
    assert rel(st.hvp(net.model, loss_fn, net.data, chunk=100).curvature_gradient(v), g) < 1e-12
    eps = 1e-4
    w = torch.from_numpy(net.w)
    for _ in range(3):
        u = rng.standard_normal(net.P)
        u /= np.linalg.norm(u)
        step = torch.from_numpy(eps * u)
        plus = torch.autograd.functional.hessian(net.flat_loss, w + step).numpy()
        minus = torch.autograd.functional.hessian(net.flat_loss, w - step).numpy()
        difference = v @ (plus - minus) @ v / (2 * eps)
        assert abs(u @ g - difference) <= 1e-6 * np.linalg.norm(g), (u @ g, difference)


def test_per_sample_gradients_match_the_autograd_loop(net):
    chunks = list(st.per_sample_gradients(net.model, loss_fn, net.data, chunk=100))
    assert [c.shape for c in chunks] == [(100, net.P)] * 4 + [(42, net.P)]
    assert all(c.dtype == np.float64 for c in chunks)
    G = np.concatenate(chunks)
    assert rel(G, net.G) < 1e-12


def test_noise_stacks_the_gradients_into_a_noise_operator(net, rng):
    op = st.noise(net.model, loss_fn, net.data, S, chunk=128)
    assert isinstance(op, sgdnoise.NoiseOperator)
    assert op.grads.shape == (net.N, net.P) and rel(op.grads, net.G) < 1e-12
    C = sgdnoise.noise_covariance(net.G, S)
    v = rng.standard_normal(net.P)
    assert rel(op.matvec(v), C @ v) < 1e-10


@pytest.mark.parametrize("replacement", [True, False])
def test_streaming_noise_matches_the_noise_operator(net, rng, replacement):
    stacked = st.noise(net.model, loss_fn, net.data, S, replacement=replacement, chunk=64)
    streaming = st.noise(net.model, loss_fn, net.data, S, replacement=replacement, chunk=64, memory_limit_bytes=1)
    assert isinstance(streaming, st.StreamingNoise) and isinstance(stacked, sgdnoise.NoiseOperator)
    assert streaming.factor == pytest.approx(stacked.factor, rel=1e-15)
    # Without weight decay in the per-sample gradients the mean gradient is -gamma w at the minimum.
    assert np.abs(streaming.mean - stacked.mean).max() < 1e-12 * np.abs(net.G).max()
    assert rel(stacked.mean, -GAMMA * net.w) < 1e-8
    v = rng.standard_normal(net.P)
    V = rng.standard_normal((net.P, 3))
    assert rel(streaming.matvec(v), stacked.matvec(v)) < 1e-12
    assert rel(streaming @ V, stacked.matvec(V)) < 1e-12
    assert rel(streaming.diagonal(), stacked.diagonal()) < 1e-12
    assert streaming.passes == 4  # the mean, two products, the diagonal
    C = sgdnoise.noise_covariance(net.G, S, replacement=replacement)
    assert rel(streaming.matvec(v), C @ v) < 1e-10


# ----------------------------------------------------------------------------------------------------
# (a) analyze against the dense route

@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_analyze_matches_the_dense_route(net, momentum):
    lr = 0.2 * 2 / net.h_max
    C = sgdnoise.noise_covariance(net.G, S)
    sigma = sgdnoise.stationary_covariance(net.H, C, lr, momentum)
    r = st.analyze(net.model, loss_fn, net.data, lr=lr, batch_size=S, momentum=momentum, weight_decay=GAMMA,
                   k=10, probes=30, steps=40, tol=1e-11)
    assert isinstance(r, sgdnoise.NetworkFluctuation)
    k = r.top_eigenvalues.size
    assert np.abs(r.top_eigenvalues - lr * net.eigenvalues[::-1][:k]).max() < 1e-8 * lr * net.h_max
    assert np.abs(r.bottom_eigenvalues - lr * net.eigenvalues[:k]).max() < 1e-8 * lr * net.h_max
    Q = r.top_eigenvectors
    block = Q.T @ sigma @ Q
    assert rel(r.sigma_block, block) < 1e-8
    assert r.top_trace_sigma == pytest.approx(np.trace(block), rel=1e-8)
    excess = 0.5 * np.trace(net.H @ sigma)
    assert abs(r.excess_loss - excess) < 4 * r.excess_loss_stderr
    assert r.excess_loss_stderr < 0.05 * excess
    assert r.critical_learning_rate_additive == pytest.approx(2 * (1 + momentum) / net.h_max, rel=1e-8)
    assert r.critical_learning_rate_multiplicative is not None
    assert 0 < r.critical_learning_rate_multiplicative <= r.critical_learning_rate_additive
    assert r.batch_size == S and r.lr == lr and r.momentum == momentum
    assert "excess training loss" in r.summary()


def test_network_fluctuation_with_the_streaming_noise_equals_the_stacked_one(net):
    stacked = st.noise(net.model, loss_fn, net.data, S, chunk=100)
    streaming = st.noise(net.model, loss_fn, net.data, S, chunk=100, memory_limit_bytes=1)
    kw = dict(lr=0.2 * 2 / net.h_max, batch_size=S, k=4, probes=4, steps=10)
    a = sgdnoise.network_fluctuation(net.H, stacked, net.P, **kw)
    b = sgdnoise.network_fluctuation(net.H, streaming, net.P, **kw)
    assert streaming.passes == 1 + b.noise_products
    assert rel(b.sigma_block, a.sigma_block) < 1e-10
    assert b.excess_loss == pytest.approx(a.excess_loss, rel=1e-10)


def test_analyze_takes_a_diagonal_learning_rate_as_a_dict(net):
    lr = 0.2 * 2 / net.h_max
    per_parameter = {name: torch.full_like(p, lr) if name.startswith("0.") else lr
                     for name, p in net.model.named_parameters()}
    r = st.analyze(net.model, loss_fn, net.data, lr=per_parameter, batch_size=S, weight_decay=GAMMA,
                   k=4, probes=4, steps=10)
    assert r.sigma_block is None  # a diagonal learning rate: the block is X_k, here Q^T Sigma Q / lr
    assert np.abs(r.top_eigenvalues - lr * net.eigenvalues[::-1][:4]).max() < 1e-8 * lr * net.h_max
    sigma = sgdnoise.stationary_covariance(net.H, sgdnoise.noise_covariance(net.G, S), lr)
    Q = r.top_eigenvectors
    assert rel(r.fluctuation_block, Q.T @ sigma @ Q / lr) < 1e-8
    with pytest.raises(sgdnoise.InvalidArgumentError, match="lr must be"):
        st.analyze(net.model, loss_fn, net.data, lr=np.full(net.P - 1, lr), batch_size=S)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="lr as a dict"):
        st.analyze(net.model, loss_fn, net.data, lr={"0.weight": lr}, batch_size=S)


def test_analyze_refuses_a_summed_loss(net):
    summed = torch.nn.MSELoss(reduction="sum")
    with pytest.raises(sgdnoise.InvalidArgumentError, match="MEAN"):
        st.analyze(net.model, summed, net.data, lr=0.01, batch_size=S, k=2, probes=2, steps=2)


def test_bad_arguments_are_refused(net):
    with pytest.raises(sgdnoise.InvalidArgumentError, match="same number of examples"):
        st.hvp(net.model, loss_fn, (net.X, net.y[:-1]))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="pair"):
        st.hvp(net.model, loss_fn, net.X)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="weight_decay"):
        st.hvp(net.model, loss_fn, net.data, weight_decay=-1.0)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="torch.nn.Module"):
        st.hvp(lambda x: x, loss_fn, net.data)
    with pytest.raises(sgdnoise.InvalidArgumentError):
        st.per_sample_gradients(net.model, loss_fn, net.data, chunk=0)
    with pytest.raises(sgdnoise.InvalidArgumentError):
        st.noise(net.model, loss_fn, net.data, net.N + 1, replacement=False)


# ----------------------------------------------------------------------------------------------------
# (c) float32 parameters

def test_float32_parameters(net, rng):
    model32 = make_model()
    st.flatten(model32)[1](net.w)
    data32 = (torch.from_numpy(net.X).float(), torch.from_numpy(net.y).float())
    chunks = list(st.per_sample_gradients(model32, loss_fn, data32, chunk=128))
    assert all(c.dtype == np.float32 for c in chunks)
    assert rel(np.concatenate(chunks), net.G) < 1e-5
    stacked = st.noise(model32, loss_fn, data32, S, chunk=128)
    assert isinstance(stacked, sgdnoise.NoiseOperator) and stacked.grads.dtype == np.float32
    streaming = st.noise(model32, loss_fn, data32, S, chunk=128, memory_limit_bytes=1)
    v = rng.standard_normal(net.P)
    assert rel(streaming.matvec(v), stacked.matvec(v)) < 1e-12  # the same float32 gradients
    h = st.hvp(model32, loss_fn, data32, weight_decay=GAMMA)
    assert h.dtype == np.float32
    assert rel(h(v), net.H @ v) < 1e-5
    lr = 0.2 * 2 / net.h_max
    r = st.analyze(model32, loss_fn, data32, lr=lr, batch_size=S, weight_decay=GAMMA, k=4, probes=8, steps=20)
    assert np.abs(r.top_eigenvalues - lr * net.eigenvalues[::-1][:4]).max() < 1e-4 * lr * net.h_max
    sigma = sgdnoise.stationary_covariance(net.H, sgdnoise.noise_covariance(net.G, S), lr)
    Q = r.top_eigenvectors
    assert rel(r.sigma_block, Q.T @ sigma @ Q) < 1e-4
