#!/usr/bin/env python3
"""The PyTorch half of the real-network check: sgdnoise.torch.analyze against real torch SGD.

The network and data of measure.py, as a PyTorch module in float64: nn.Sequential(Linear(10, 16),
Tanh(), Linear(16, 1)) on scikit-learn's diabetes data (X and y standardised), loss_fn =
0.5 * mse_loss (the batch mean of 1/2 (f - y)^2) and weight decay gamma = 1e-3 as torch.optim.SGD's
weight_decay.  The minimum w* is found in torch from the initialisation of measure.py (seed 0,
same L-BFGS + Newton polishing, common.minimise); with --jax it is compared with measure.py's JAX
minimum and sgdnoise.jax.analyze is run at the same point (the two adapters' predictions must agree
to round-off).  At w* the script predicts, with sgdnoise.torch.analyze(model, loss_fn, (X, y),
lr, batch_size, momentum, weight_decay), the block of Sigma on the top-k Hessian eigenvectors, the
excess loss 1/2 Tr[H Sigma] (with its probe standard error) and the critical learning rates, checks
them against the dense route (torch.func.hessian, per-sample gradients, stationary_covariance), and
measures them with real minibatch SGD started at w* with m = 0:

    torch.optim.SGD(params, lr, momentum=mu, dampening=0, nesterov=False, weight_decay=gamma)

run as `chains` independent copies at once (VectorSGD: the same update on a (chains, P) tensor of
flat parameters with the batch gradient written out; checked step for step against
torch.optim.SGD on the nn.Module, identical batches, before any measurement), with batches drawn
with replacement (what the prediction assumes) or as a DataLoader(shuffle=True) draws them (epoch
shuffling, the last batch of an epoch shorter).  After a burn-in of >= 20 relaxation times of the
top-k directions, every `thin` steps the projections of w_t - w* on the top-k eigenvectors (and on
the k flattest ones) and every `loss_every` steps L(w_t) - L(w*) are recorded; covariance and
excess loss with standard errors by batch means over (chain, block) batches (common.batch_stats).

    PYTHONPATH=python python3 experiments/real_network/measure_torch.py [--quick] [--jax]

writes experiments/real_network/results_torch.json (results_torch_quick.json with --quick, which
loads w* from the test fixture this script's full run writes with --write-fixture instead of
training, and runs only the small learning rate, shorter, with fewer probes and no S = 32) and prints the markdown table of
RESULTS.md ("PyTorch"); --tables JSON reprints it.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import sgdnoise
import sgdnoise.torch as st

F64 = torch.float64  # every tensor here is float64 explicitly: importing this module changes no torch default

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import (HIDDEN, INIT_SEEDS, K, batch_stats, init_params, load_data, log,  # noqa: E402
                    minimise, parse_args, relaxation_steps, window_average_diag, write_results)

GAMMA = 1e-3
FIXTURE = os.path.join(HERE, "..", "..", "python", "tests", "data", "diabetes_mlp_torch_wstar.npz")


# ----------------------------------------------------------------------------- model, loss, minimum
def loss_fn(output, target):
    """The batch MEAN of 1/2 (f - y)^2 (measure.py's loss; weight decay is the optimiser's)."""
    return 0.5 * F.mse_loss(output, target)


def make_model(d_in=10, hidden=HIDDEN):
    torch.manual_seed(0)  # the initial values are overwritten; fixed for reproducibility only
    return torch.nn.Sequential(torch.nn.Linear(d_in, hidden, dtype=F64), torch.nn.Tanh(),
                               torch.nn.Linear(hidden, 1, dtype=F64))


def jax_to_torch_order(d_in=10, hidden=HIDDEN):
    """Index with w_torch = w_jax[index]: measure.py's flat vector is [W1 (d x h row-major), b1, W2,
    b2]; torch's (sgdnoise.torch.flatten, named_parameters order) is [W1^T = Linear.weight (h x d),
    b1, W2 (1 x h), b2]."""
    n1 = d_in * hidden
    return np.concatenate([np.arange(n1).reshape(d_in, hidden).T.ravel(), np.arange(n1, n1 + 2 * hidden + 1)])


def data_tensors(X, y):
    return torch.as_tensor(X), torch.as_tensor(y).reshape(-1, 1)


def full_loss_function(model, X, y, gamma):
    """w (flat torch tensor) -> L_gamma(w) through torch.func.functional_call on the module."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]

    def loss(w):
        params = dict(zip(names, (c.reshape(s) for c, s in zip(torch.split(w, sizes), shapes))))
        return loss_fn(torch.func.functional_call(model, params, (X,)), y) + 0.5 * gamma * torch.dot(w, w)

    return loss


def train_torch(model, X, y, gamma, maxiter, seed):
    """common.minimise (L-BFGS, then Newton polishing) of L_gamma in torch, from measure.py's
    initialisation (permuted into torch's parameter order); loads w* into the model."""
    f = full_loss_function(model, X, y, gamma)
    hess = torch.func.hessian(f)

    def vg(w):
        wt = torch.tensor(w, requires_grad=True)
        val = f(wt)
        (g,) = torch.autograd.grad(val, wt)
        return float(val.detach()), g.numpy()

    w0 = init_params(X.shape[1], HIDDEN, seed)[jax_to_torch_order(X.shape[1], HIDDEN)]
    out = minimise(vg, lambda w: hess(torch.as_tensor(w)).numpy(), w0, maxiter)
    st.flatten(model)[1](out["w"])
    return out


def load_fixture(model):
    """The committed w* (written by this script's --write-fixture) loaded into the model."""
    z = np.load(FIXTURE)
    st.flatten(model)[1](z["w_star"])
    return z


# ----------------------------------------------------------------------------- the SGD loop
class VectorSGD:
    """`chains` independent runs of torch.optim.SGD(lr, momentum=mu, weight_decay=gamma,
    dampening=0, nesterov=False) on the 10 -> h -> 1 tanh MLP, as one (chains, P) tensor of flat
    parameters in torch's order: per step g = grad of the batch mean of 1/2 (f - y)^2 (written out,
    batched over chains with bmm) + gamma w; m <- mu m + g; w <- w - lr m.  The per-step Python
    overhead of torch.optim (and of autograd) is paid once for all chains."""

    def __init__(self, X, y, chains, hidden=HIDDEN, seed=0):
        self.X, self.y = X, y
        self.N, self.d = X.shape
        self.h, self.C = hidden, chains
        self.P = self.d * hidden + 2 * hidden + 1
        self.w = torch.zeros(chains, self.P, dtype=F64)
        self.m = torch.zeros(chains, self.P, dtype=F64)
        self.g = torch.zeros(chains, self.P, dtype=F64)
        self.gen = torch.Generator().manual_seed(seed)
        d, h, C = self.d, hidden, chains
        views = lambda t: (t[:, : d * h].view(C, h, d), t[:, d * h: d * h + h],  # noqa: E731
                           t[:, d * h + h: d * h + 2 * h].view(C, 1, h), t[:, -1:])
        self.W1, self.b1, self.W2, self.b2 = views(self.w)
        self.gW1, self.gb1, self.gW2, self.gb2 = views(self.g)

    def reset(self, w0):
        self.w.copy_(torch.as_tensor(w0).expand(self.C, -1))
        self.m.zero_()

    def forward(self, x):
        """(C, n, d) -> hidden activations (C, n, h) and outputs (C, n, 1)."""
        a = torch.tanh(torch.baddbmm(self.b1.unsqueeze(1), x, self.W1.transpose(1, 2)))
        return a, torch.baddbmm(self.b2.unsqueeze(1), a, self.W2.transpose(1, 2))

    def batch_grad(self, xb, yb):
        """self.g <- gradient of (1/n) sum_batch 1/2 (f - y)^2 for each chain; xb (C, n, d), yb (C, n, 1)."""
        a, out = self.forward(xb)
        r = (out - yb) / xb.shape[1]
        torch.bmm(r.transpose(1, 2), a, out=self.gW2)
        torch.sum(r, 1, out=self.gb2)
        da = r * self.W2 * (1.0 - a * a)
        torch.bmm(da.transpose(1, 2), xb, out=self.gW1)
        torch.sum(da, 1, out=self.gb1)

    def step(self, xb, yb, lr, mu, gamma):
        self.batch_grad(xb, yb)
        self.g.add_(self.w, alpha=gamma)
        self.m.mul_(mu).add_(self.g)
        self.w.add_(self.m, alpha=-lr)

    def loss(self, gamma):
        """L_gamma(w) of every chain on the whole data, (C,)."""
        _, out = self.forward(self.X.expand(self.C, -1, -1))
        return 0.5 * ((out.squeeze(-1) - self.y.reshape(1, -1)) ** 2).mean(1) + 0.5 * gamma * (self.w * self.w).sum(1)

    def batches(self, S, sampling, chunk=1000):
        """Endless (xb, yb) batches for all chains: S independent uniform indices per step
        ("replacement"), or DataLoader(shuffle=True, drop_last=False) epochs ("epoch": a fresh
        uniform permutation per chain and epoch cut into batches of S, the last one N mod S)."""
        X, y, N, C = self.X, self.y, self.N, self.C
        while True:
            if sampling == "replacement":
                idx = torch.randint(N, (chunk, C, S), generator=self.gen)
                xs, ys = X[idx], y[idx]
                for t in range(chunk):
                    yield xs[t], ys[t]
            elif sampling == "epoch":
                perm = torch.argsort(torch.rand(C, N, generator=self.gen, dtype=F64), dim=1)
                xs, ys = X[perm], y[perm]
                for s in range(0, N, S):
                    yield xs[:, s:s + S], ys[:, s:s + S]
            else:
                raise ValueError(sampling)

    def run(self, batches, steps, lr, mu, gamma):
        for _ in range(steps):
            self.step(*next(batches), lr, mu, gamma)


def check_against_optim(model, X, y, w_star, lr, mu, gamma, S, steps=200, sampling="epoch", seed=0):
    """Max |w_vector - w_optim| over `steps` steps of VectorSGD (one chain) and of
    torch.optim.SGD on the nn.Module, started at w* on the same batches (DataLoader batch
    structure with the short last batch by default), and the max |w_t - w*| reached."""
    sgd = VectorSGD(X, y, 1, seed=seed)
    sgd.reset(w_star)
    _, load = st.flatten(model)
    load(w_star)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=mu, dampening=0, nesterov=False, weight_decay=gamma)
    batches = sgd.batches(S, sampling)
    diff = dist = 0.0
    for _ in range(steps):
        xb, yb = next(batches)
        sgd.step(xb, yb, lr, mu, gamma)
        opt.zero_grad()
        loss_fn(model(xb[0]), yb[0]).backward()
        opt.step()
        w_opt = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
        diff = max(diff, float((sgd.w[0] - w_opt).abs().max()))
        dist = max(dist, float((sgd.w[0] - torch.as_tensor(w_star)).abs().max()))
    load(w_star)
    return diff, dist


def measure(sgd, w_star, Qt, Qb, lr, mu, gamma, S, sampling, burn, nblocks, blen, thin, loss_every, L_star):
    """Every chain from w* (m = 0): `burn` steps, then nblocks blocks of blen steps; returns the
    per-(chain, block) means of p, p p^T (projections on the columns of Qt), q, q^2 (on the columns
    of Qb, e.g. the flattest directions; Qt when None), the excess loss and w, in
    common.batch_stats's layout."""
    sgd.reset(w_star)
    ws = torch.as_tensor(w_star)
    Qt = torch.as_tensor(Qt)
    Qb = Qt if Qb is None else torch.as_tensor(Qb)
    batches = sgd.batches(S, sampling)
    sgd.run(batches, burn, lr, mu, gamma)
    C, k, kb = sgd.C, Qt.shape[1], Qb.shape[1]
    acc = {n: [] for n in ("p", "pp", "q", "qq", "loss", "w")}
    for _ in range(nblocks):
        p = torch.zeros(C, k, dtype=F64)
        pp = torch.zeros(C, k, k, dtype=F64)
        q = torch.zeros(C, kb, dtype=F64)
        qq = torch.zeros(C, kb, dtype=F64)
        lo = torch.zeros(C, dtype=F64)
        wsum = torch.zeros(C, sgd.P, dtype=F64)
        nrec = nloss = 0
        for t in range(thin, blen + 1, thin):
            sgd.run(batches, thin, lr, mu, gamma)
            e = sgd.w - ws
            pt, qt = e @ Qt, e @ Qb
            p += pt
            pp += pt.unsqueeze(2) * pt.unsqueeze(1)
            q += qt
            qq += qt * qt
            wsum += sgd.w
            nrec += 1
            if t % loss_every == 0:
                lo += sgd.loss(gamma) - L_star
                nloss += 1
        for n, a in (("p", p / nrec), ("pp", pp / nrec), ("q", q / nrec), ("qq", qq / nrec), ("loss", lo / nloss),
                     ("w", wsum / nrec)):
            acc[n].append(a.numpy().copy())
    return tuple(np.stack(acc[n], axis=1) for n in ("p", "pp", "q", "qq", "loss", "w"))


def stderrs(st_):
    """The standard errors used: for each top-k variance and for the excess loss the larger of the
    batch-means stderr over (chain, block) batches and the chain-to-chain one (which also sees
    correlations slower than a block)."""
    nan0 = lambda a: np.nan_to_num(np.asarray(a, dtype=float), nan=0.0)  # noqa: E731
    se_diag = np.maximum(np.diag(st_["cov_se"]), nan0(np.diag(st_["cov_chain_se"])))
    return se_diag, max(st_["loss_se"], float(nan0(st_["loss_chain_se"])))


def z_scores(pred_diag, pred_loss, pred_loss_se, st_):
    """z = (prediction - measurement) / stderr of the top-k variances and of the excess loss (the
    stderrs of `stderrs`, the loss's combined with the prediction's probe stderr)."""
    se_diag, lse = stderrs(st_)
    lse = float(np.hypot(lse, pred_loss_se))
    return (np.asarray(pred_diag) - np.diag(st_["cov"])) / se_diag, (pred_loss - st_["loss"]) / lse, lse


def run_config(sgd, w_star, Qt, Qb, h, lr, mu, S, sampling, nblocks, blen, L_star, min_burn, thin=10, loss_every=50):
    """Burn-in of max(20 relaxation times of the top-k directions, min_burn) steps, then the
    measurement; returns (batch statistics, burn, seconds)."""
    tau_top = float(relaxation_steps(h[::-1][:K], lr, mu).max())
    burn = int(np.ceil(max(20 * tau_top, min_burn) / thin) * thin)
    t0 = time.time()
    out = measure(sgd, w_star, Qt, Qb, lr, mu, GAMMA, S, sampling, burn, nblocks, blen, thin, loss_every, L_star)
    return batch_stats(out, Qt.shape[1]), burn, tau_top, time.time() - t0


# ----------------------------------------------------------------------------- main
def jax_cross_check(X, y, w_star_torch, analyses):
    """measure.py's JAX minimum, and sgdnoise.jax.analyze at the torch w* with the parameters as a
    tuple in torch's layout (so that both adapters flatten to the same vector and draw the same
    probes): block and excess loss against the torch adapter's."""
    import jax
    import jax.numpy as jnp
    import measure
    import sgdnoise.jax as sj

    jax.config.update("jax_enable_x64", True)
    tr = measure.train(measure.MLP(X.shape[1], HIDDEN), X, y, GAMMA, maxiter=20000, seed=INIT_SEEDS[GAMMA])
    w_jax = tr["w"][jax_to_torch_order(X.shape[1], HIDDEN)]
    d, h = X.shape[1], HIDDEN
    w = w_star_torch
    params = (jnp.asarray(w[: d * h].reshape(h, d)), jnp.asarray(w[d * h: d * h + h]),
              jnp.asarray(w[d * h + h: d * h + 2 * h].reshape(1, h)), jnp.asarray(w[-1:]))

    def jloss(p, batch):
        W1, b1, W2, b2 = p
        x, t = batch
        out = jnp.tanh(x @ W1.T + b1) @ W2.T + b2
        r = out[:, 0] - t
        return 0.5 * jnp.mean(r * r) + 0.5 * GAMMA * sum(jnp.sum(a * a) for a in p)

    rows = []
    for a in (a for a in analyses if a["S"] == 8):
        r = sj.analyze(jloss, params, (jnp.asarray(X), jnp.asarray(y)), lr=a["lr"], batch_size=a["S"],
                       momentum=a["mu"], k=K, probes=a["probes"], seed=0)
        bt = np.asarray(a["sigma_block"])
        rows.append(dict(S=a["S"], lr=a["lr"], mu=a["mu"],
                         block_rel_diff=float(np.abs(np.abs(r.sigma_block) - np.abs(bt)).max() / np.abs(bt).max()),
                         excess_loss_jax=r.excess_loss, excess_loss_torch=a["excess_loss"],
                         excess_loss_rel_diff=abs(r.excess_loss / a["excess_loss"] - 1),
                         critical_multiplicative_jax=r.critical_learning_rate_multiplicative,
                         critical_multiplicative_torch=a["critical_learning_rate_multiplicative"]))
    return dict(jax_train=dict((k, v) for k, v in tr.items() if k != "w"),
                w_star_max_abs_diff=float(np.abs(w_jax - w_star_torch).max()), analyze=rows)


def main():
    args = parse_args(__doc__, "small learning rate, S = 8, shorter runs (< 40 s)", print_tables,
                      extra=[("--jax", "also compare with measure.py's JAX minimum and sgdnoise.jax"),
                             ("--write-fixture", f"write w* to {os.path.relpath(FIXTURE)}")])
    if args is None:
        return 0
    quick = args.quick
    t_start = time.time()
    torch.set_default_dtype(F64)
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead (and the machine is shared)

    Xn, yn = load_data()
    X, y = data_tensors(Xn, yn)
    N, D = X.shape
    model = make_model(D, HIDDEN)
    P = sum(p.numel() for p in model.parameters())
    log(f"# diabetes N={N}, D={D}; torch MLP {D}->{HIDDEN}->1 tanh, P={P}; torch {torch.__version__}, "
        f"sgdnoise {sgdnoise.__version__}; gamma={GAMMA:g}; quick={quick}")
    if quick:  # the minimum this script's full run trained and wrote (--write-fixture)
        z = load_fixture(model)
        tr = dict(loaded=os.path.relpath(FIXTURE), loss=float(z["loss"]), grad_norm=float(z["grad_norm"]),
                  lbfgs_iterations=0, newton_steps=0, seconds=0.0)
    else:
        tr = train_torch(model, X, y, GAMMA, maxiter=20000, seed=INIT_SEEDS[GAMMA])
    w_star, _ = st.flatten(model)
    log(f"minimum in torch: L={tr['loss']:.10f} |grad|={tr['grad_norm']:.1e} (L-BFGS {tr['lbfgs_iterations']} it, "
        f"Newton {tr['newton_steps']}; {tr['seconds']:.1f} s)")
    if args.write_fixture and not quick:
        os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
        np.savez(FIXTURE, w_star=w_star, gamma=GAMMA, loss=tr["loss"], grad_norm=tr["grad_norm"])
        log(f"wrote {os.path.relpath(FIXTURE)}")

    # ---------- dense route at w* (for the check of the adapter, the flattest directions and the
    # finite-run transient)
    f = full_loss_function(model, X, y, GAMMA)
    H = torch.func.hessian(f)(torch.as_tensor(w_star)).numpy()
    H = 0.5 * (H + H.T)
    G = np.concatenate(list(st.per_sample_gradients(model, loss_fn, (X, y))))
    h, Qh = np.linalg.eigh(H)
    hmax = float(h.max())
    Qb = Qh[:, np.argsort(np.abs(h))[:K]]
    L_star = float(f(torch.as_tensor(w_star)))
    log(f"h_max={hmax:.6f}, top {np.round(h[::-1][:K], 4)}, smallest {h.min():.3g}; L*={L_star:.10f}; "
        f"|mean G + gamma w*| = {np.linalg.norm(G.mean(0) + GAMMA * w_star):.1e}")

    results = dict(setup=dict(N=N, D=D, P=P, hidden=HIDDEN, k=K, gamma=GAMMA, torch=torch.__version__,
                              quick=quick, train=dict((k, v) for k, v in tr.items() if k != "w"), L_star=L_star,
                              h_max=hmax, top_eigs=h[::-1][:K].tolist(), h_min=float(h.min())),
                   checks={}, configs=[])

    # ---------- the vectorised loop is torch.optim.SGD
    chk = {}
    for mu in (0.0, 0.9):
        lr = (1 - mu) * 0.4 * 2 / hmax
        for sampling in ("epoch", "replacement"):
            diff, dist = check_against_optim(model, X, y, w_star, lr, mu, GAMMA, 8, sampling=sampling)
            chk[f"mu={mu} {sampling}"] = dict(max_abs_diff=diff, max_abs_move=dist)
    results["checks"]["vector_sgd_vs_torch_optim_200_steps"] = chk
    log(f"VectorSGD vs torch.optim.SGD (200 steps from w*, same batches, c=0.4): {chk}")

    # ---------- configurations: one analyze per (S, c, mu); the epoch-shuffled runs (S = 8) are compared
    # with its replacement=False prediction, which is the same Sigma times (N - S)/(N - 1) (Sigma is
    # linear in C, and noise_covariance's factor goes from 1/S to (N - S)/(S (N - 1))).
    chains = 64
    fracs = [0.05] if quick else [0.05, 0.4]
    cases = [(8, c, mu) for c in fracs for mu in (0.0, 0.9)] + ([] if quick else [(32, c, 0.0) for c in fracs])
    nblocks, blen = (4, 1000) if quick else (4, 4000)
    min_burn = 500 if quick else 2000
    probes, steps = (30, 8) if quick else (60, 8)  # g(m) is smooth on [0, m_max]: 8 Lanczos steps are exact here
    sgd = VectorSGD(X, y, chains, seed=1)
    analyses = []
    for S, c, mu in cases:
        lr = (1 - mu) * c * 2 / hmax
        t0 = time.time()
        r = st.analyze(model, loss_fn, (X, y), lr=lr, batch_size=S, momentum=mu, weight_decay=GAMMA, k=K,
                       probes=probes, steps=steps, seed=0)
        t_an = time.time() - t0
        Qt = r.top_eigenvectors
        analyses.append(dict(S=S, lr=lr, mu=mu, probes=probes, steps=steps, sigma_block=r.sigma_block.tolist(),
                             excess_loss=r.excess_loss,
                             critical_learning_rate_multiplicative=r.critical_learning_rate_multiplicative))
        for sampling in ("replacement", "epoch") if (S == 8 and (not quick or mu == 0.0)) else ("replacement",):
            fpc = 1.0 if sampling == "replacement" else (N - S) / (N - 1)
            # dense route on the same eigenvectors
            Cn = sgdnoise.noise_covariance(G, S, replacement=(sampling == "replacement"))
            sig = sgdnoise.stationary_covariance(H, Cn, lr, mu)
            block_dense = Qt.T @ sig @ Qt
            half_dense = float(0.5 * np.sum(H * sig))
            cd = np.einsum("ij,jk,ki->i", Qh.T, Cn, Qh)
            st_, burn, tau_top, secs = run_config(sgd, w_star, Qt, Qb, h, lr, mu, S, sampling, nblocks, blen, L_star,
                                                  min_burn)
            v = window_average_diag(h, cd, lr, mu, burn, nblocks * blen)
            half_window = float(0.5 * np.sum(h * v))
            tau = relaxation_steps(h, lr, mu)
            contrib = 0.5 * lr * cd / ((1 - mu) * (2 - lr * h / (1 + mu)))
            slow_share = float(contrib[tau > burn].sum() / contrib.sum())
            block = fpc * r.sigma_block
            pred_diag = np.diag(block)
            pred_loss, pred_loss_se = fpc * r.excess_loss, fpc * r.excess_loss_stderr
            wrong = pred_diag / 4  # the prediction for batch size 4 S (Sigma is proportional to 1/S)
            z_diag, z_loss, lse = z_scores(pred_diag, pred_loss, pred_loss_se, st_)
            z_wrong, _, _ = z_scores(wrong, pred_loss, 0.0, st_)
            md, mse = np.diag(st_["cov"]), stderrs(st_)[0]
            row = dict(S=S, frac=c, lr=lr, mu=mu, sampling=sampling, chains=chains, burn=burn, nblocks=nblocks,
                       block_len=blen, thin=10, loss_every=50, tau_top_k=tau_top, seconds_sgd=secs,
                       seconds_analyze=t_an, probes=probes, steps=steps,
                       predicted=dict(top_diag=pred_diag.tolist(), sigma_block=block.tolist(),
                                      excess_loss=pred_loss, excess_loss_stderr=pred_loss_se,
                                      excess_loss_dense=half_dense, excess_loss_window_dense=half_window,
                                      share_of_excess_loss_slower_than_burn=slow_share,
                                      critical_learning_rate_additive=r.critical_learning_rate_additive,
                                      critical_learning_rate_multiplicative=r.critical_learning_rate_multiplicative,
                                      critical_learning_rate_multiplicative_stderr=(
                                          r.critical_learning_rate_multiplicative_stderr),
                                      top_eigenvalues=r.top_eigenvalues.tolist(), hessian_products=r.hessian_products,
                                      noise_products=r.noise_products,
                                      block_vs_dense_rel=float(np.abs(block - block_dense).max()
                                                               / np.abs(block_dense).max()),
                                      z_excess_vs_dense=(pred_loss - half_dense) / pred_loss_se,
                                      top_diag_batch_4S=wrong.tolist()),
                       measured=dict(top_diag=md.tolist(), top_diag_se=mse.tolist(),
                                     top_diag_se_batch_means=np.diag(st_["cov_se"]).tolist(),
                                     top_diag_se_chains=np.diag(st_["cov_chain_se"]).tolist(),
                                     top_block=st_["cov"].tolist(),
                                     excess_loss=st_["loss"], excess_loss_se=st_["loss_se"],
                                     excess_loss_chain_se=st_["loss_chain_se"], excess_loss_se_used=lse,
                                     loss_first_block=st_["loss_first_block"], loss_last_block=st_["loss_last_block"],
                                     mean_top=st_["mean_top"].tolist(), mean_top_se=st_["mean_top_se"].tolist(),
                                     mean_bot_last_block=st_["mean_bot_last"].tolist(),
                                     dist_mean_last_block=float(np.mean(np.linalg.norm(
                                         st_["w_mean_last_block"] - w_star, axis=1))),
                                     batches=st_["batches"]),
                       z=dict(top_diag=z_diag.tolist(), excess_loss=z_loss,
                              excess_loss_window=(half_window - st_["loss"]) / lse,
                              top_diag_batch_4S=z_wrong.tolist()))
            results["configs"].append(row)
            log(f"\n### S={S} c={c} lr={lr:.6g} mu={mu} {sampling}: analyze {t_an:.1f} s (block vs dense "
                f"{row['predicted']['block_vs_dense_rel']:.1e}, excess z vs dense "
                f"{row['predicted']['z_excess_vs_dense']:+.2f}); SGD {chains} chains x ({burn} + {nblocks}x{blen}) "
                f"steps in {secs:.1f} s; tau_top {tau_top:.1f}; excess-loss share slower than burn {slow_share:.1e}")
            log(f"  predicted diag {np.array2string(pred_diag, precision=4)}; measured "
                f"{np.array2string(md, precision=4)} +- {np.array2string(mse, precision=2)}; z "
                f"{np.array2string(z_diag, precision=1)}; 4S z {np.array2string(z_wrong, precision=0)}")
            log(f"  excess loss predicted {pred_loss:.5g} +- {pred_loss_se:.2g} (dense {half_dense:.5g}, run window "
                f"{half_window:.5g}); measured {st_['loss']:.5g} +- {lse:.2g}; z {z_loss:+.1f} (window "
                f"{row['z']['excess_loss_window']:+.1f}); first/last block {st_['loss_first_block']:.5g} / "
                f"{st_['loss_last_block']:.5g}; |w_mean - w*| (last block) {row['measured']['dist_mean_last_block']:.3g}")
        log(f"  critical lr: additive {r.critical_learning_rate_additive:.5g}, multiplicative "
            f"{r.critical_learning_rate_multiplicative:.5g} +- {r.critical_learning_rate_multiplicative_stderr:.2g}")

    if args.jax:
        t0 = time.time()
        results["jax_cross_check"] = jx = jax_cross_check(Xn, yn, w_star, analyses)
        jx["seconds"] = time.time() - t0
        log(f"\nJAX cross-check ({jx['seconds']:.1f} s): max |w*_jax - w*_torch| = {jx['w_star_max_abs_diff']:.1e}; "
            + "; ".join(f"S={a['S']} lr={a['lr']:.4g} mu={a['mu']}: block {a['block_rel_diff']:.1e}, excess loss "
                        f"{a['excess_loss_rel_diff']:.1e}" for a in jx["analyze"]))

    write_results(results, args.out or os.path.join(HERE, "results_torch_quick.json" if quick else "results_torch.json"),
                  t_start, print_tables)
    return 0


def print_tables(results):
    log("\n| S | c | λ | μ | batches | quantity | measured | predicted (analyze) | z | pred/meas − 1 | z if S → 4S |")
    log("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in results["configs"]:
        m, p, z = row["measured"], row["predicted"], row["z"]
        head = (f"| {row['S']} | {row['frac']} | {row['lr']:.4g} | {row['mu']} | "
                f"{'with repl.' if row['sampling'] == 'replacement' else 'epochs (DataLoader)'} ")
        for i in range(len(m["top_diag"])):
            log(head + f"| Σ_{i + 1}{i + 1} | {m['top_diag'][i]:.4g} ± {m['top_diag_se'][i]:.2g} | "
                f"{p['top_diag'][i]:.4g} | {z['top_diag'][i]:+.1f} | {100 * (p['top_diag'][i] / m['top_diag'][i] - 1):+.1f} % | "
                f"{z['top_diag_batch_4S'][i]:+.0f} |")
        log(head + f"| ½Tr HΣ | {m['excess_loss']:.4g} ± {m['excess_loss_se_used']:.2g} | {p['excess_loss']:.4g} ± "
            f"{p['excess_loss_stderr']:.1g} | {z['excess_loss']:+.1f} | {100 * (p['excess_loss'] / m['excess_loss'] - 1):+.1f} % | — |")
    jax_path = os.path.join(HERE, "results.json")
    if not os.path.exists(jax_path):
        return
    with open(jax_path) as fh:
        jax_rows = {(r["S"], r["frac"], r["mu"]): r for mn in json.load(fh)["minima"] if mn["gamma"] == GAMMA
                    for r in mn["configs"] if r["replacement"]}
    log("\nThe same configurations measured with JAX (measure.py, results.json: 4 chains x 3·10⁵ steps after a "
        "5 010-step burn-in) and with torch (64 chains x the steps above): measured Σ_kk (k = 1..5) and "
        "excess loss; z = (torch − JAX)/√(se_torch² + se_JAX²)\n")
    log("| S | c | μ | Σ_kk torch | Σ_kk JAX | z | ½Tr HΣ torch | ½Tr HΣ JAX | z |")
    log("|---|---|---|---|---|---|---|---|---|")
    for row in results["configs"]:
        jr = jax_rows.get((row["S"], row["frac"], row["mu"]))
        if row["sampling"] != "replacement" or jr is None:
            continue
        m, jm = row["measured"], jr["measured"]
        zt = (np.array(m["top_diag"]) - jm["top_diag"]) / np.hypot(m["top_diag_se"], jm["top_diag_se"])
        zl = (m["excess_loss"] - jm["excess_loss"]) / np.hypot(m["excess_loss_se_used"], jm["excess_loss_se_used"])
        fmt = lambda a: " ".join(f"{x:.4g}" for x in a)  # noqa: E731
        log(f"| {row['S']} | {row['frac']} | {row['mu']} | {fmt(m['top_diag'])} | {fmt(jm['top_diag'])} | "
            f"{' '.join(f'{x:+.1f}' for x in zt)} | {m['excess_loss']:.4g} | {jm['excess_loss']:.4g} | {zl:+.1f} |")


if __name__ == "__main__":
    sys.exit(main())
