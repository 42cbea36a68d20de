#!/usr/bin/env python3
"""SGD fluctuations of a real small network against sgdnoise's predictions.

A 10 -> 16 -> 1 tanh MLP on scikit-learn's diabetes data (X and y standardised), loss
L(w) = (1/N) sum_i 1/2 (f(x_i; w) - y_i)^2 (+ gamma/2 |w|^2), trained to a minimum w*
(L-BFGS, then Newton polishing with the dense Hessian) to |grad L| < 1e-10.  At w* the
script computes the dense Hessian H, the per-sample gradients G (row i = grad l_i, the
gradient of sample i's own loss, so mean(G) = grad L0, docs/conventions.md section 1) and
the Jacobian J (row i = grad f(x_i)), and predicts the stationary covariance Sigma of
plain minibatch SGD (PyTorch momentum convention m <- mu m + g, w <- w - lr m) three ways:

  (i)   additive:    sgdnoise.stationary_covariance(H, noise_covariance(G, S), lr, mu)
  (ii)  Theorem 5:   sgdnoise.minimum_fluctuation(H0, L0, lr, S, gamma, w*, mu)
  (iii) linearised:  sgdnoise.finite_dataset(J, J w* - r, lr, S, gamma, mu)
                     (linear regression on the features j_i whose minimiser is w*)

and measures Sigma on the top-k Hessian eigendirections, the excess training loss and the
mean drift with a jit'ed JAX SGD loop (batch drawn with replacement, several chains, batch
means for the standard errors).  Finally it brackets the learning rate at which SGD
started at w* stops being stationary, next to the predicted critical learning rates.

    PYTHONPATH=python python3 experiments/real_network/measure.py [--quick]
    PYTHONPATH=python python3 experiments/real_network/measure.py --tables results.json

writes experiments/real_network/results.json (results_quick.json with --quick, < 1 minute)
and prints the markdown tables used in RESULTS.md; --tables reprints them from a JSON file.
The weight decays, initialisation seeds, learning rates, batch sizes and run lengths are
fixed in main(); the γ = 0 minimum uses initialisation seed 1 (seed 0 does not converge).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import sgdnoise  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import (CRITICAL_FRACS, FLAT_TOL, HIDDEN, INIT_SEEDS, K, batch_stats, init_params,  # noqa: E402,F401
                    load_data, log, minimise, network_critical_lr, parse_args, relaxation_steps,
                    window_average_diag, write_results)

# ----------------------------------------------------------------------------- data and model
class MLP:
    """f(x; w) = tanh(x W1 + b1) W2 + b2, flat parameter vector w = [W1 (D x H), b1, W2, b2]."""

    def __init__(self, d_in, hidden):
        self.d, self.h = d_in, hidden
        self.P = d_in * hidden + 2 * hidden + 1

    def unpack(self, w):
        d, h = self.d, self.h
        return (w[: d * h].reshape(d, h), w[d * h: d * h + h], w[d * h + h: d * h + 2 * h], w[-1])

    def f(self, w, x):
        W1, b1, W2, b2 = self.unpack(w)
        return jnp.tanh(x @ W1 + b1) @ W2 + b2

    def batch_grad(self, w, xb, yb):
        """Gradient of (1/|B|) sum_B 1/2 (f - y)^2, written out by hand (faster in the SGD loop;
        checked against jax.grad at w*)."""
        W1, b1, W2, b2 = self.unpack(w)
        a = jnp.tanh(xb @ W1 + b1)
        r = (a @ W2 + b2 - yb) / xb.shape[0]
        da = jnp.outer(r, W2) * (1.0 - a * a)
        return jnp.concatenate([(xb.T @ da).ravel(), da.sum(0), a.T @ r, jnp.sum(r)[None]])

    def init(self, seed):
        return init_params(self.d, self.h, seed)


def train(net, X, y, gamma, maxiter, seed):
    """common.minimise (L-BFGS, then Newton polishing) of L_gamma from the initialisation `seed`."""
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def loss(w):
        r = net.f(w, Xj) - yj
        return 0.5 * jnp.mean(r * r) + 0.5 * gamma * jnp.dot(w, w)

    vg = jax.jit(jax.value_and_grad(loss))
    hess = jax.jit(jax.hessian(loss))
    return minimise(lambda w: tuple(np.asarray(a) for a in vg(w)), lambda w: np.asarray(hess(w)),
                    net.init(seed), maxiter)

# ----------------------------------------------------------------------------- SGD simulation
def make_sgd(net, X, y, w_star, Qt, Qb, gamma, L_star):
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    N = X.shape[0]
    ws = jnp.asarray(w_star)
    Qt, Qb = jnp.asarray(Qt), jnp.asarray(Qb)

    def full_loss(w):
        r = net.f(w, Xj) - yj
        return 0.5 * jnp.mean(r * r) + 0.5 * gamma * jnp.dot(w, w) - L_star

    def distinct(perm, u):
        """S distinct indices, uniformly, by a partial Fisher-Yates shuffle of the carried permutation
        (uniform whatever order perm is in, so batches are independent from step to step)."""
        def body(j, p):
            r = j + jnp.floor(u[j] * (N - j)).astype(jnp.int32)
            pj, pr = p[j], p[r]
            return p.at[j].set(pr).at[r].set(pj)

        perm = jax.lax.fori_loop(0, u.shape[0], body, perm)
        return perm, perm[: u.shape[0]]

    def chunk(c, key, lr, mu, S, thin, replace):
        def step(c, u):
            w, m, perm = c
            if replace:
                idx = jnp.floor(u * N).astype(jnp.int32)  # S independent uniform draws
            else:
                perm, idx = distinct(perm, u)
            g = net.batch_grad(w, Xj[idx], yj[idx]) + gamma * w
            m = mu * m + g
            return (w - lr * m, m, perm), None

        c, _ = jax.lax.scan(step, c, jax.random.uniform(key, (thin, S)))
        return c

    def measure(key, lr, mu, S, burn, nblocks, blen, thin, replace):
        """One chain from w*: burn-in, then nblocks blocks of blen steps; every `thin` steps the
        top-k / bottom-k projections of w - w* and the excess loss are recorded; returns the
        per-block means of p, p p^T (top), q, q^2 (bottom) and the excess loss."""
        k1, k2 = jax.random.split(key)
        c = (ws, jnp.zeros_like(ws), jnp.arange(N, dtype=jnp.int32))
        c, _ = jax.lax.scan(lambda c, k: (chunk(c, k, lr, mu, S, thin, replace), None), c,
                            jax.random.split(k1, burn // thin))
        n = blen // thin

        def sub(carry, k):
            c, acc = carry
            c = chunk(c, k, lr, mu, S, thin, replace)
            e = c[0] - ws
            p, q = Qt.T @ e, Qb.T @ e
            acc = (acc[0] + p, acc[1] + jnp.outer(p, p), acc[2] + q, acc[3] + q * q, acc[4] + full_loss(c[0]),
                   acc[5] + c[0])
            return (c, acc), None

        def block(c, k):
            kk = Qt.shape[1]
            acc0 = (jnp.zeros(kk), jnp.zeros((kk, kk)), jnp.zeros(Qb.shape[1]), jnp.zeros(Qb.shape[1]), 0.0,
                    jnp.zeros_like(ws))
            (c, acc), _ = jax.lax.scan(sub, (c, acc0), jax.random.split(k, n))
            return c, tuple(a / n for a in acc)

        c, out = jax.lax.scan(block, c, jax.random.split(k2, nblocks))
        return out

    def trajectory(key, lr, mu, S, steps, thin):
        """One chain from w*: every `thin` steps |w - w*|^2, (top projection)^2 and the excess loss."""
        c = (ws, jnp.zeros_like(ws), jnp.arange(N, dtype=jnp.int32))

        def sub(c, k):
            c = chunk(c, k, lr, mu, S, thin, True)
            e = c[0] - ws
            return c, (jnp.dot(e, e), (Qt[:, 0] @ e) ** 2, full_loss(c[0]))

        c, out = jax.lax.scan(sub, c, jax.random.split(key, steps // thin))
        return out + (c[0],)

    meas = jax.jit(jax.vmap(measure, in_axes=(0, None, None, None, None, None, None, None, None)),
                   static_argnums=(3, 4, 5, 6, 7, 8))
    traj = jax.jit(jax.vmap(trajectory, in_axes=(0, None, None, None, None, None)), static_argnums=(3, 4, 5))
    return meas, traj


# ----------------------------------------------------------------------------- additive-noise transient
# ----------------------------------------------------------------------------- critical learning rates
class Local:
    """Loss, Hessian and per-sample gradients of L_gamma anywhere (for the points SGD visits)."""

    def __init__(self, net, X, y, gamma):
        Xj, yj = jnp.asarray(X), jnp.asarray(y)
        ell = lambda w, x, t: 0.5 * (net.f(w, x) - t) ** 2  # noqa: E731
        loss = lambda w: jnp.mean(jax.vmap(ell, (None, 0, 0))(w, Xj, yj)) + 0.5 * gamma * jnp.dot(w, w)  # noqa: E731
        self.vg = jax.jit(jax.value_and_grad(loss))
        self.hess = jax.jit(jax.hessian(loss))
        self.grads = jax.jit(lambda w: jax.vmap(jax.grad(ell), (None, 0, 0))(w, Xj, yj))

    def analyse(self, w, S, lr, mu, L_star, trace_C_star):
        """At a point w (the time-averaged SGD position): the loss above L*, |grad|, the sharpness,
        the noise trace against w*'s, and the additive-noise excess loss evaluated there,
        1/2 Tr[H Sigma] = 1/2 sum_i lr c_ii / ((1-mu)(2 - lr h_i/(1+mu))) (docs/theory.md section 8's
        phi, finite at h_i = 0), added to the loss offset L(w) - L*."""
        w = jnp.asarray(w)
        val, g = self.vg(w)
        hl, Ql = np.linalg.eigh(np.asarray(self.hess(w)))
        C = sgdnoise.noise_covariance(np.asarray(self.grads(w)), S)
        cd = np.einsum("ij,jk,ki->i", Ql.T, C, Ql)
        half = float(0.5 * np.sum(lr * cd / ((1 - mu) * (2 - lr * hl / (1 + mu)))))
        return dict(loss_offset=float(val) - L_star, grad_norm=float(np.linalg.norm(g)), h_max=float(hl.max()),
                    n_negative=int((hl < -1e-9 * hl.max()).sum()), trace_C_ratio=float(np.trace(C) / trace_C_star),
                    half_tr_local=half, predicted_excess=float(val) - L_star + half)


def api_call(fn, *a, **kw):
    """Run an sgdnoise call, returning (result, None) or (None, 'ErrorType: message')."""
    try:
        return fn(*a, **kw), None
    except sgdnoise.SGDNoiseError as e:
        return None, f"{type(e).__name__}: {e}"


# ----------------------------------------------------------------------------- main
def main():
    args = parse_args(__doc__, "a reduced run (< 2 minutes)", print_tables)
    if args is None:
        return 0
    quick = args.quick
    t_start = time.time()

    X, y = load_data()
    N, D = X.shape
    net = MLP(D, HIDDEN)
    P = net.P
    log(f"# diabetes: N={N}, D={D}; MLP {D}->{HIDDEN}->1 tanh, P={P}; jax {jax.__version__}, "
        f"sgdnoise {sgdnoise.__version__}; quick={quick}")

    gammas = [1e-3] if quick else [1e-3, 0.0]
    S_list = [8] if quick else [8, 32]
    lr_fracs = [0.4] if quick else [0.05, 0.4]  # lr (1-mu)^-1 = frac * 2/h_max
    mus = [0.0, 0.9]
    chains = 4
    steps_measure = 40_000 if quick else 300_000
    nblocks = 8 if quick else 25
    thin = 10
    results = dict(setup=dict(N=N, D=D, P=P, hidden=HIDDEN, k=K, init_seeds={str(k): v for k, v in INIT_SEEDS.items()},
                              chains=chains,
                              steps_measure=steps_measure, nblocks_per_chain=nblocks, thin=thin,
                              loss="L(w) = (1/N) sum_i 1/2 (f(x_i) - y_i)^2 + gamma/2 |w|^2",
                              quick=quick), minima=[])
    api_notes = []

    for gamma in gammas:
        log(f"\n## gamma = {gamma:g}")
        tr = train(net, X, y, gamma, maxiter=3000 if quick else 20000, seed=INIT_SEEDS[gamma])
        w_star = tr["w"]
        log(f"trained: L={tr['loss']:.8f} |grad|={tr['grad_norm']:.2e} (L-BFGS {tr['lbfgs_iterations']} it, "
            f"|grad| {tr['lbfgs_grad_norm']:.1e}, '{tr['lbfgs_message']}'; Newton {tr['newton_steps']}; "
            f"{tr['seconds']:.1f} s)")
        Xj, yj = jnp.asarray(X), jnp.asarray(y)
        wj = jnp.asarray(w_star)
        ell = lambda w, x, t: 0.5 * (net.f(w, x) - t) ** 2  # noqa: E731  the per-sample loss l_i
        L0 = float(jnp.mean(jax.vmap(ell, (None, 0, 0))(wj, Xj, yj)))
        H0 = np.asarray(jax.hessian(lambda w: jnp.mean(jax.vmap(ell, (None, 0, 0))(w, Xj, yj)))(wj))
        H0 = 0.5 * (H0 + H0.T)
        H = H0 + gamma * np.eye(P)
        G = np.asarray(jax.vmap(jax.grad(ell), (None, 0, 0))(wj, Xj, yj))
        J = np.asarray(jax.vmap(jax.grad(net.f), (None, 0))(wj, Xj))
        r = np.asarray(net.f(wj, Xj) - yj)
        grad_check = float(np.linalg.norm(G.mean(0) + gamma * w_star))
        bg_check = float(np.abs(np.asarray(net.batch_grad(wj, Xj[:8], yj[:8])) - G[:8].mean(0)).max())
        GN = J.T @ J / N
        h, Qh = np.linalg.eigh(H)
        h0 = np.linalg.eigvalsh(H0)
        hmax = h.max()
        a = np.tanh(X @ w_star[: D * HIDDEN].reshape(D, HIDDEN) + w_star[D * HIDDEN: D * HIDDEN + HIDDEN])
        saturated = int(np.sum((1 - a * a).max(0) < 1e-6))
        mn = dict(gamma=gamma, train=dict((k, v) for k, v in tr.items() if k != "w"), L0=L0,
                  L_gamma=tr["loss"], grad_check=grad_check, batch_grad_check=bg_check,
                  h_max=float(hmax), h_min=float(h.min()), top_eigs=h[::-1][:K].tolist(),
                  bottom_eigs=h[:K].tolist(), tr_H_over_hmax=float(h[h > 0].sum() / hmax),
                  n_negative=int((h < 0).sum()), n_below_1e_minus_12=int((np.abs(h) <= 1e-12 * hmax).sum()),
                  n_below_1e_minus_9=int((np.abs(h) <= 1e-9 * hmax).sum()),
                  n_below_1e_minus_6=int((np.abs(h) <= 1e-6 * hmax).sum()),
                  n_H0_negative=int((h0 < 0).sum()), H0_min=float(h0.min()),
                  saturated_hidden_units=saturated,
                  gn_vs_H0_rel_frobenius=float(np.linalg.norm(GN - H0) / np.linalg.norm(H0)),
                  rank_J=int(np.linalg.matrix_rank(J)), w_norm=float(np.linalg.norm(w_star)),
                  residual_rms=float(np.sqrt(np.mean(r * r))), configs=[], critical=None)
        log(f"L0={L0:.6f}, h_max={hmax:.4f}, top {np.round(h[::-1][:K], 4)}, bottom {h[:K]}, "
            f"#neg={mn['n_negative']}, #|h|<=1e-9 h_max: {mn['n_below_1e_minus_9']}, #|h|<=1e-6 h_max: "
            f"{mn['n_below_1e_minus_6']}, saturated units {saturated}, rank J {mn['rank_J']}, "
            f"|GN-H0|/|H0|={mn['gn_vs_H0_rel_frobenius']:.3f}, grad check {grad_check:.1e}, "
            f"hand-written batch grad vs jax {bg_check:.1e}")
        Qt = Qh[:, ::-1][:, :K]  # top-k eigenvectors of H, descending
        order_flat = np.argsort(np.abs(h))
        Qb = Qh[:, order_flat[:K]]  # the k flattest directions (smallest |h|)
        mn["flattest_eigs"] = h[order_flat[:K]].tolist()
        meas, traj = make_sgd(net, X, y, w_star, Qt, Qb, gamma, tr["loss"])
        local = Local(net, X, y, gamma)

        # ---------- linearised network: features J, labels J w* - r so that its ridge minimiser is w*
        X_lin, y_lin = J, J @ w_star - r
        gn_ev = np.linalg.eigvalsh(GN + gamma * np.eye(P))
        mn["K_lin_min_eig"] = float(gn_ev.min())
        lin_range = None
        if gn_ev.min() <= 1e-10 * gn_ev.max():
            # K = J^T J/N singular (gamma = 0 with dead units): solve on the range of J^T J.
            ev, V = np.linalg.eigh(GN)
            lin_range = V[:, ev > 1e-9 * ev.max()]
            mn["lin_range_dim"] = int(lin_range.shape[1])

        def linearised(lr, S, mu, replacement=True):
            if lin_range is None:
                pred, err = api_call(sgdnoise.finite_dataset, X_lin, y_lin, lr, S, replacement=replacement,
                                     weight_decay=gamma, momentum=mu)
                return (None, err, None) if pred is None else (pred.sigma, None, pred)
            pred, err = api_call(sgdnoise.finite_dataset, X_lin @ lin_range, y_lin, lr, S,
                                 replacement=replacement, weight_decay=gamma, momentum=mu)
            return (None, err, None) if pred is None else (lin_range @ pred.sigma @ lin_range.T, None, pred)

        # Full-rank probe of the library on the singular K (reported as an API observation)
        if lin_range is not None:
            _, err = api_call(sgdnoise.finite_dataset, X_lin, y_lin, 0.4 * 2 / hmax, 8, weight_decay=gamma)
            mn["finite_dataset_singular_K"] = err or "accepted"
            log(f"finite_dataset on singular J^T J/N: {mn['finite_dataset_singular_K']}")

        # ---------- noise model comparison at w*
        for S in S_list:
            C = sgdnoise.noise_covariance(G, S)
            thm5, err = api_call(sgdnoise.minimum_noise, H0, L0, S, weight_decay=gamma, w_star=w_star)
            if thm5 is None:  # refused since API 1.0 when it is not a covariance (H0 indefinite)
                mn.setdefault("noise_compare", {})[S] = dict(refused=err)
                log(f"S={S}: Thm-5 noise refused: {err}")
                continue
            C5, kind = thm5
            cmp = sgdnoise.compare(C5, C, k=K)
            mn.setdefault("noise_compare", {})[S] = dict(kind=kind, **{k: float(v) for k, v in cmp.items()},
                                                        topk_diag_ratio=(np.diag(Qt.T @ C5 @ Qt)
                                                                         / np.diag(Qt.T @ C @ Qt)).tolist())
            log(f"S={S}: Thm-5 noise ({kind}) vs measured C: {mn['noise_compare'][S]}")

        # ---------- predictions and measurements
        cfgs = [(S, f, mu, True) for S in S_list for f in lr_fracs for mu in mus]
        if not quick and gamma == gammas[0]:
            cfgs.append((32, 0.4, 0.0, False))  # one run drawing batches without replacement
        if not quick and gamma == 0.0:
            cfgs = [c for c in cfgs if c[0] == 8]
        for ci, (S, frac, mu, repl) in enumerate(cfgs):
            lr = (1 - mu) * frac * 2 / hmax
            tag = f"S={S} lr={lr:.5f} ({frac}*(1-mu)*2/h_max) mu={mu} {'with' if repl else 'without'} replacement"
            log(f"\n### {tag}")
            C = sgdnoise.noise_covariance(G, S, replacement=repl)
            C_other = sgdnoise.noise_covariance(G, S, replacement=not repl)
            row = dict(S=S, lr=lr, frac=frac, mu=mu, replacement=repl, preds={}, errors={})
            # (i) additive
            sig, err = api_call(sgdnoise.stationary_covariance, H, C, lr, mu)
            row["errors"]["additive_default"] = err
            if err:
                log(f"  stationary_covariance default: {err}")
            out_i, err = api_call(sgdnoise.stationary_covariance, H, C, lr, mu, flat_tolerance=FLAT_TOL,
                                  return_info=True)
            row["errors"]["additive_flat_tolerance"] = err
            sig_i = None
            if out_i is not None:
                sig_i, info = out_i
                row["additive_info"] = dict(flat_directions=info.flat_directions,
                                            flat_direction_noise=info.flat_direction_noise,
                                            flat_tolerance=info.flat_tolerance)
                log(f"  additive (flat_tolerance={FLAT_TOL:g}): {row['additive_info']}")
            sig_other = sgdnoise.stationary_covariance(H, C_other, lr, mu, flat_tolerance=FLAT_TOL)
            # (ii) Theorem 5
            out5, err5 = api_call(sgdnoise.minimum_fluctuation, H0, L0, lr, S, weight_decay=gamma,
                                  w_star=w_star, momentum=mu)
            row["errors"]["thm5"] = err5
            sig_ii, kind5, lc5 = out5 if out5 else (None, None, None)
            row["thm5_kind"], row["thm5_critical_lr"] = kind5, lc5
            # (iii) linearised network
            sig_iii, err3, pred3 = linearised(lr, S, mu, repl)
            row["errors"]["linearised"] = err3
            if pred3 is not None:
                row["linearised_info"] = dict(iterations=pred3.iterations, residual=pred3.residual,
                                              spectral_radius=pred3.spectral_radius,
                                              mean_minus_wstar=float(np.linalg.norm(
                                                  (lin_range @ pred3.mean if lin_range is not None
                                                   else pred3.mean) - (lin_range @ lin_range.T @ w_star
                                                                        if lin_range is not None else w_star))),
                                              half_tr_K_sigma=float(pred3.train_loss - 0.5 * np.mean(r * r)
                                                                    - 0.5 * gamma * w_star @ w_star))
            for name, s in (("additive", sig_i), ("thm5", sig_ii), ("linearised", sig_iii),
                            ("additive_other_sampling", sig_other)):
                if s is None:
                    continue
                block = Qt.T @ s @ Qt
                row["preds"][name] = dict(top_diag=np.diag(block).tolist(), top_block=block.tolist(),
                                          half_tr_H_sigma=float(0.5 * np.sum(H * s)))
            # finite-window prediction of the additive models (exact transient of Theorem 1's dynamics)
            tau = relaxation_steps(h, lr, mu)
            tau_top = float(tau[::-1][:K].max())
            burn = int(min(max(20 * tau_top, 5000), 100_000))
            burn = (burn // thin + 1) * thin
            blen = steps_measure // nblocks // thin * thin
            steps = blen * nblocks
            for name, s in (("additive", sig_i), ("thm5", sig_ii)):
                if s is None or (name == "thm5" and "refused" in mn["noise_compare"].get(S, {})):
                    continue
                cd = np.einsum("ij,jk,ki->i", Qh.T, (C if name == "additive" else
                               sgdnoise.minimum_noise(H0, L0, S, weight_decay=gamma, w_star=w_star)[0]), Qh)
                v = window_average_diag(h, cd, lr, mu, burn, steps)
                row["preds"][name]["half_tr_H_sigma_window"] = float(0.5 * np.sum(h * v))
                row["preds"][name]["top_diag_window"] = v[::-1][:K].tolist()
            contrib = 0.5 * lr * np.diag(Qh.T @ C @ Qh) / np.maximum((1 - mu) * (2 - lr * h / (1 + mu)), 1e-300)
            slow = tau > burn
            row["tau_top_k"] = tau_top
            row["tau_max_finite"] = float(tau[np.isfinite(tau)].max())
            row["frac_excess_loss_in_directions_slower_than_burn"] = float(contrib[slow].sum() / contrib.sum())
            row["burn"], row["steps"], row["block_len"] = burn, steps, blen
            # measurement
            key = jax.random.split(jax.random.PRNGKey(1000 * int(gamma == 0) + ci), chains)
            t0 = time.time()
            out = meas(key, lr, mu, S, burn, nblocks, blen, thin, repl)
            out = jax.block_until_ready(out)
            st = batch_stats(out, K)
            row["seconds"] = time.time() - t0
            row["measured"] = dict(top_diag=np.diag(st["cov"]).tolist(), top_diag_se=np.diag(st["cov_se"]).tolist(),
                                   top_block=st["cov"].tolist(),
                                   top_offdiag_max_abs_corr=float(np.max(np.abs(
                                       st["cov"] / np.sqrt(np.outer(np.diag(st["cov"]), np.diag(st["cov"])))
                                       - np.eye(K)))),
                                   excess_loss=st["loss"], excess_loss_se=st["loss_se"],
                                   excess_loss_chain_se=st["loss_chain_se"],
                                   loss_first_block=st["loss_first_block"], loss_last_block=st["loss_last_block"],
                                   mean_top=st["mean_top"].tolist(), mean_top_se=st["mean_top_se"].tolist(),
                                   mean_bot=st["mean_bot"].tolist(), mean_bot_se=st["mean_bot_se"].tolist(),
                                   mean_bot_last_block=st["mean_bot_last"].tolist(), rms_bot=st["rms_bot"].tolist(),
                                   top_rms=np.sqrt(np.diag(st["second_moment"])).tolist(),
                                   batches=st["batches"])
            # the drift: where SGD sits on average, and the additive prediction re-evaluated there
            loc = [local.analyse(wm, S, lr, mu, tr["loss"], np.trace(C)) for wm in st["w_mean_last_block"]]
            row["at_sgd_mean"] = {k: float(np.mean([d[k] for d in loc])) for k in loc[0]}
            row["at_sgd_mean"]["dist_from_wstar"] = float(np.mean(np.linalg.norm(st["w_mean_last_block"] - w_star,
                                                                                 axis=1)))
            row["at_sgd_mean"]["sqrt_tr_sigma_additive"] = float(np.sqrt(np.trace(sig_i))) if sig_i is not None else None
            lse = max(st["loss_se"], st["loss_chain_se"] if np.isfinite(st["loss_chain_se"]) else 0.0)
            row["measured"]["excess_loss_se_used"] = lse
            row["at_sgd_mean"]["z"] = (row["at_sgd_mean"]["predicted_excess"] - st["loss"]) / lse
            md, mse = np.diag(st["cov"]), np.diag(st["cov_se"])
            for name, pr in row["preds"].items():
                pr["z_top_diag"] = ((np.array(pr["top_diag"]) - md) / mse).tolist()
                pr["z_loss"] = (pr["half_tr_H_sigma"] - st["loss"]) / lse
                if "half_tr_H_sigma_window" in pr:
                    pr["z_loss_window"] = (pr["half_tr_H_sigma_window"] - st["loss"]) / lse
            log(f"  burn {burn}, {chains}x{steps} steps, {row['seconds']:.1f} s; tau_top {tau_top:.1f}; "
                f"excess-loss share slower than burn {row['frac_excess_loss_in_directions_slower_than_burn']:.2e}")
            log(f"  measured diag {np.array2string(md, precision=4)} +- {np.array2string(mse, precision=2)}; "
                f"excess loss {st['loss']:.5g} +- {st['loss_se']:.2g} (chain se {st['loss_chain_se']:.2g})")
            for name, pr in row["preds"].items():
                log(f"  {name:24s} diag {np.array2string(np.array(pr['top_diag']), precision=4)} "
                    f"z {np.array2string(np.array(pr['z_top_diag']), precision=1)}; 1/2TrHS {pr['half_tr_H_sigma']:.5g}"
                    f" (z {pr['z_loss']:.1f})" + (f", window {pr['half_tr_H_sigma_window']:.5g} "
                                                  f"(z {pr['z_loss_window']:.1f})" if "z_loss_window" in pr else ""))
            fmt = lambda a: "[" + " ".join(f"{x:.2g}" for x in a) + "]"  # noqa: E731
            log(f"  mean drift top-k {fmt(st['mean_top'])} +- {fmt(st['mean_top_se'])} (rms {fmt(np.sqrt(md))}); "
                f"bottom-k {fmt(st['mean_bot'])} +- {fmt(st['mean_bot_se'])}, last block {fmt(st['mean_bot_last'])}")
            log(f"  at the SGD mean (last block): {row['at_sgd_mean']}")
            if row["errors"]["thm5"] or row["errors"]["linearised"]:
                log(f"  errors: {row['errors']}")
            mn["configs"].append(row)

        # ---------- critical learning rate (S = 8)
        crit = dict(S=8, runs=[])
        S = 8
        for mu in ([0.0] if quick else [0.0, 0.9]):
            edge = 2 * (1 + mu) / hmax
            pred = dict(deterministic=edge)
            out5, err = api_call(sgdnoise.minimum_fluctuation, H0, L0, 0.5 * (1 - mu) / hmax, S,
                                 weight_decay=gamma, w_star=w_star, momentum=mu)
            pred["thm5_minimum_fluctuation"] = out5[2] if out5 else err
            pred["network_sec8_own"] = network_critical_lr(h0, gamma, S, mu)
            lc, err = api_call(sgdnoise.critical_learning_rate, h0, S, mu, model="high_dimensional")
            pred["high_dimensional_on_H0_spectrum"] = lc if err is None else err
            h0c = np.where(np.abs(h0) <= FLAT_TOL * np.abs(h0).max(), 0.0, h0)
            lc, err = api_call(sgdnoise.critical_learning_rate, h0c, S, mu, model="high_dimensional")
            pred["high_dimensional_on_H0_spectrum_flat_zeroed"] = lc if err is None else err
            if gamma != 0.0:
                lc, err = api_call(sgdnoise.critical_learning_rate, h, S, mu, model="high_dimensional")
                pred["high_dimensional_on_H_spectrum"] = lc if err is None else err
            t0 = time.time()
            Xl = X_lin if lin_range is None else X_lin @ lin_range
            lc, err = api_call(sgdnoise.critical_learning_rate_dataset, Xl, S, weight_decay=gamma, momentum=mu)
            pred["linearised_dataset"] = lc if err is None else err
            pred["linearised_dataset_seconds"] = time.time() - t0
            log(f"\ncritical lr predictions (S={S}, mu={mu}), also as multiples of 2(1+mu)/h_max: " + ", ".join(
                f"{k}={v:.5g} ({v / edge:.3f})" if isinstance(v, float) and "seconds" not in k else f"{k}={v}"
                for k, v in pred.items()))
            fracs = [0.8, 0.95, 1.05] if quick and mu == 0.0 else CRITICAL_FRACS[mu]
            steps_c = 5_000 if quick else 20_000
            seeds = 4 if quick else 6
            thin_c = 5
            first = slice(0, 200 // thin_c)     # steps 5..200: before the drift has moved w far
            early = slice(20 // thin_c, 200 // thin_c)
            bracket = []
            for fi, c in enumerate(fracs):
                lr = c * edge
                key = jax.random.split(jax.random.PRNGKey(5000 + 100 * fi + int(10 * mu) + 7 * int(gamma == 0)), seeds)
                e2, p2, lo, wf = (np.asarray(a) for a in jax.block_until_ready(traj(key, lr, mu, S, steps_c, thin_c)))
                n = e2.shape[1]
                late = slice(3 * n // 4, n)
                with np.errstate(invalid="ignore", over="ignore"):
                    dist = np.sqrt(e2)
                    bad = ~np.isfinite(dist) | (np.nan_to_num(dist, nan=np.inf) > 1e3)
                    diverged = bad.any(1)
                    first_bad = [int(np.argmax(b)) * thin_c if b.any() else None for b in bad]
                    ok = ~diverged
                    sharp = [float(np.linalg.eigvalsh(np.asarray(local.hess(jnp.asarray(w)))).max())
                             for w in wf[ok][:4]]
                    early_top = p2[:, early].mean(1)
                    first_max = p2[:, first].max(1)
                rec = dict(frac=c, lr=lr, seeds=seeds, steps=steps_c, diverged=int(diverged.sum()),
                           first_divergence_step=[f for f in first_bad if f is not None],
                           early_top_second_moment=float(np.median(early_top[ok])) if ok.any() else None,
                           first200_max_top_sq=float(np.median(first_max)),
                           early_top_second_moment_se=(float(early_top[ok].std(ddof=1) / np.sqrt(ok.sum()))
                                                       if ok.sum() > 1 else None),
                           median_final_dist=float(np.median(dist[ok, -1])) if ok.any() else None,
                           median_late_excess_loss=float(np.median(lo[ok][:, late].mean(1))) if ok.any() else None,
                           final_sharpness=sharp, final_sharpness_times_lr=[x * lr for x in sharp])
                # predicted top-direction variance at this lr (stationary; no value where a model is unstable)
                preds_top = {}
                s_add, _ = api_call(sgdnoise.stationary_covariance, H, sgdnoise.noise_covariance(G, S), lr, mu,
                                    flat_tolerance=FLAT_TOL)
                preds_top["additive"] = None if s_add is None else float(Qt[:, 0] @ s_add @ Qt[:, 0])
                lin_lc = pred["linearised_dataset"]
                s3 = None
                if isinstance(lin_lc, float) and lr < lin_lc:
                    s3, _, _ = linearised(lr, S, mu)
                preds_top["linearised"] = None if s3 is None else float(Qt[:, 0] @ s3 @ Qt[:, 0])
                rec["predicted_top_variance"] = preds_top
                bracket.append(rec)
                log(f"  lr={lr:.5f} ({c}*2(1+mu)/h_max): diverged {rec['diverged']}/{seeds} (steps "
                    f"{rec['first_divergence_step']}); max top^2 in steps<=200 {rec['first200_max_top_sq']:.3g}; "
                    f"top^2 steps 20-200 {rec['early_top_second_moment']} "
                    f"(pred additive {preds_top['additive']}, linearised {preds_top['linearised']}); final |w-w*| "
                    f"{rec['median_final_dist']}; late excess loss {rec['median_late_excess_loss']}; final "
                    f"sharpness*lr {np.round(rec['final_sharpness_times_lr'], 3)}")
            crit["runs"].append(dict(mu=mu, predictions=pred, bracket=bracket))
        mn["critical"] = crit
        results["minima"].append(mn)

    results["api_notes"] = api_notes
    write_results(results, args.out or os.path.join(HERE, "results_quick.json" if quick else "results.json"), t_start,
                  print_tables)


def print_tables(results):
    log("\nSummary: prediction / measurement − 1 (in %) for the top-k variances (range over k = 1..5) and "
        "for the excess loss ½Tr[HΣ]; in brackets the largest |z| over the 5 variances, and z of the loss\n")
    log("| γ | S | λ·h_max/2(1−μ) | μ | repl | additive (i): Σ_kk | ½TrHΣ | Thm 5 (ii): Σ_kk | ½TrHΣ "
        "| linearised (iii): Σ_kk | ½TrHΣ |")
    log("|---|---|---|---|---|---|---|---|---|---|---|")
    for mn in results["minima"]:
        for row in mn["configs"]:
            m = row["measured"]
            cells = []
            for name in ("additive", "thm5", "linearised"):
                pr = row["preds"].get(name)
                if pr is None:
                    cells += ["—", "—"]
                    continue
                rel = 100 * (np.array(pr["top_diag"]) / np.array(m["top_diag"]) - 1)
                cells.append(f"{rel.min():+.1f}…{rel.max():+.1f} (\\|z\\| ≤ {np.max(np.abs(pr['z_top_diag'])):.0f})")
                cells.append(f"{100 * (pr['half_tr_H_sigma'] / m['excess_loss'] - 1):+.1f} (z {pr['z_loss']:+.0f})")
            log(f"| {mn['gamma']:g} | {row['S']} | {row['frac']} | {row['mu']} | {'y' if row['replacement'] else 'n'} | "
                + " | ".join(cells) + " |")
    for mn in results["minima"]:
        log(f"\n#### gamma = {mn['gamma']:g}: h_max = {mn['h_max']:.4f}, L0 = {mn['L0']:.5f}\n")
        log("| S | λ | μ | repl | quantity | measured | additive (i) | z | Thm 5 (ii) | z | linearised (iii) | z |")
        log("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row in mn["configs"]:
            m = row["measured"]
            head = f"| {row['S']} | {row['lr']:.4g} | {row['mu']} | {'y' if row['replacement'] else 'n'} "
            for i in range(K):
                cells = []
                for name in ("additive", "thm5", "linearised"):
                    pr = row["preds"].get(name)
                    cells += ["—", "—"] if pr is None else [f"{pr['top_diag'][i]:.4g}", f"{pr['z_top_diag'][i]:+.1f}"]
                log(head + f"| Σ_{i + 1}{i + 1} | {m['top_diag'][i]:.4g} ± {m['top_diag_se'][i]:.2g} | " + " | ".join(cells) + " |")
            cells = []
            for name in ("additive", "thm5", "linearised"):
                pr = row["preds"].get(name)
                cells += ["—", "—"] if pr is None else [f"{pr['half_tr_H_sigma']:.4g}", f"{pr['z_loss']:+.1f}"]
            log(head + f"| ½Tr HΣ | {m['excess_loss']:.4g} ± {m['excess_loss_se_used']:.2g} | " + " | ".join(cells) + " |")
            cells = []
            for name in ("additive", "thm5"):
                pr = row["preds"].get(name)
                cells += ["—", "—"] if pr is None or "z_loss_window" not in pr else [
                    f"{pr['half_tr_H_sigma_window']:.4g}", f"{pr['z_loss_window']:+.1f}"]
            log(head + f"| ½Tr HΣ (run window) | {m['excess_loss']:.4g} ± {m['excess_loss_se_used']:.2g} | "
                + " | ".join(cells) + " | — | — |")
        log("\nDrift: where SGD sits (mean of w over the last block, per chain, averaged) and the additive "
            "excess loss re-evaluated there\n")
        log("| S | λ | μ | repl | \\|w̄−w*\\| | √TrΣ (i) | L(w̄)−L* | h_max(w̄)/h_max(w*) | TrC(w̄)/TrC(w*) "
            "| L(w̄)−L* + ½Tr[H(w̄)Σ(w̄)] | measured excess | z |")
        log("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row in mn["configs"]:
            a, m = row["at_sgd_mean"], row["measured"]
            log(f"| {row['S']} | {row['lr']:.4g} | {row['mu']} | {'y' if row['replacement'] else 'n'} | "
                f"{a['dist_from_wstar']:.3g} | {a['sqrt_tr_sigma_additive']:.3g} | {a['loss_offset']:.3g} | "
                f"{a['h_max'] / mn['h_max']:.3f} | {a['trace_C_ratio']:.3f} | {a['predicted_excess']:.4g} | "
                f"{m['excess_loss']:.4g} ± {m['excess_loss_se_used']:.2g} | {a['z']:+.1f} |")
        crit = mn.get("critical")
        if not crit:
            continue
        for run in crit["runs"]:
            pr = run["predictions"]
            edge = pr["deterministic"]
            log(f"\nCritical learning rate, S = {crit['S']}, μ = {run['mu']}: predictions as λ / (2(1+μ)/h_max): "
                + "; ".join(f"{k} {v / edge:.3f}" if isinstance(v, float) else f"{k}: {v}"
                            for k, v in pr.items() if "seconds" not in k) + "\n")
            log("| λ/(2(1+μ)/h_max) | λ | diverged | top² steps 20–200 | pred (i) | pred (iii) | final \\|w−w*\\| "
                "| late excess loss | λ·h_max(w_T) |")
            log("|---|---|---|---|---|---|---|---|---|")
            for b in run["bracket"]:
                f = lambda v: "—" if v is None else f"{v:.3g}"  # noqa: E731
                sh = b["final_sharpness_times_lr"]
                log(f"| {b['frac']} | {b['lr']:.4g} | {b['diverged']}/{b['seeds']} | {f(b['early_top_second_moment'])} | "
                    f"{f(b['predicted_top_variance']['additive'])} | {f(b['predicted_top_variance']['linearised'])} | "
                    f"{f(b['median_final_dist'])} | {f(b['median_late_excess_loss'])} | "
                    f"{(f'{min(sh):.2f}–{max(sh):.2f}') if sh else '—'} |")


if __name__ == "__main__":
    sys.exit(main())
