#!/usr/bin/env python3
"""The critical learning rate through PyTorch: where real torch SGD stops being stationary at w*.

Issue 12's point 4(c) through the PyTorch adapter, at both minima of measure.py (gamma = 1e-3 from
init seed 0, gamma = 0 from init seed 1), S = 8, mu in {0, 0.9}.  The network, data and loss are
measure_torch.py's (nn.Sequential(Linear(10, 16), Tanh(), Linear(16, 1)), float64, 0.5 * mse_loss,
weight decay as torch.optim.SGD's); the minima are trained in torch from measure.py's
initialisations permuted into torch's parameter order (with --jax also in JAX by measure.train,
and compared: the same point at gamma = 1e-3, another point of the same flat valley at gamma = 0).

Predictions at each minimum and momentum:
  - additive and multiplicative (Theorem 5 / docs/theory.md section 8) critical learning rates, with
    the latter's probe stderr, from sgdnoise.torch.analyze; the multiplicative one also exactly from
    the dense Hessian spectrum (common.network_critical_lr, the formula analyze estimates);
  - the linearised network's sgdnoise.critical_learning_rate_dataset(J, S, weight_decay, momentum)
    on the per-sample Jacobian J of the model output (torch.func.jacrev under vmap), restricted to
    the range of J^T J where that is singular (gamma = 0, as measure.py does).

Measurement: VectorSGD (measure_torch.py: torch.optim.SGD's update on `chains` flat parameter
vectors at once, checked step for step against torch.optim.SGD there) from w* with m = 0, batches of
S drawn with replacement, T steps, at every learning rate of common.CRITICAL_FRACS (in units of
2(1+mu)/h_max; measure.py's grid) and of REFINE (around the predictions), with the same batch
indices at every learning rate.
Every `thin` steps p = q1^T (w - w*) (q1 the top Hessian eigenvector) and |w - w*|^2 are recorded.
A chain diverges when |w - w*| > 1e3 or is not finite.  The second moment m_j = E[p^2] (over the
chains that did not diverge) is taken in the doubling windows (T/2^(j+1), T/2^j], j = 0..6 (from
T/128 on), and its change with run length is the slope s of log m_j against log t (least squares
over the windows; stderr by a bootstrap over chains): the second moment is multiplied by G = 2^s
each time the run doubles.  The verdict at a learning rate:

  diverges    at least one chain diverged within T steps;
  leaves      none diverged, but the second moment of p changes with run length — |s| >
              log2(1 + GROWTH_TOL) and |s| > 2 stderr (a rise: the chains wander off; a fall: they
              have left w* early for a quieter region) — or the tail of p is too heavy for a second
              moment to exist (Hill index of |p| over (T/2, T] at most 2: the multiplicative
              criteria are where the stationary second moment stops existing, i.e. where the tail
              index of the stationary law falls to 2);
  stationary  otherwise.

The same growth G_w of E|w - w*|^2 is reported but not tested: at both minima SGD also moves along
(nearly) flat directions at every learning rate tried (RESULTS.md section 2), which no critical
learning rate is about.  The verdicts are computed from the stored statistics by verdict() (also
by --tables).

    PYTHONPATH=python python3 experiments/real_network/measure_torch_bracket.py [--quick] [--jax]

writes experiments/real_network/results_torch_bracket.json (results_torch_bracket_quick.json with
--quick: gamma = 0 and mu = 0 only, w* loaded from the full run's JSON when there is one, four
learning rates, 32 chains x 4 000 steps, 20 probes, no linearised prediction; about 40 s) and
prints the markdown tables of RESULTS.md ("Critical learning rate through PyTorch"); --tables JSON
reprints them.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

import sgdnoise
import sgdnoise.torch as st

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import (CRITICAL_FRACS, FLAT_TOL, HIDDEN, INIT_SEEDS, load_data, log,  # noqa: E402
                    network_critical_lr, parse_args, write_results)
from measure_torch import (F64, VectorSGD, data_tensors, full_loss_function, jax_to_torch_order,  # noqa: E402
                           loss_fn, make_model, train_torch)

S = 8
DIVERGED = 1e3        # |w - w*| beyond which a chain counts as diverged
GROWTH_TOL = 0.1      # a second moment "grows" when it rises by more than this fraction per doubling of T
WINDOWS = 7           # doubling windows (T/2^(j+1), T/2^j], j < WINDOWS
HILL_GROUPS = 8       # the chains are split into this many groups for the Hill index's stderr
REFINE = {0.0: {0.875, 0.925}, 0.9: {0.1, 0.12}}  # added to common.CRITICAL_FRACS around the predictions
BOOTSTRAP = 400       # resamples of the chains for the growth's stderr


# ----------------------------------------------------------------------------- statistics
def hill_index(samples):
    """Hill estimate of the tail index alpha of positive samples (P(X > x) ~ x^-alpha) with
    k = max(10, floor(sqrt(n))) order statistics: alpha = k / sum_{i<k} log(X_(i) / X_(k)), X_(0) the
    largest — the estimator of the library's simulator (Swift TailSamples.hillIndex, which the
    Python API does not expose on arbitrary samples); NaN for fewer than 100 samples."""
    x = np.sort(np.asarray(samples, dtype=float)[np.isfinite(samples) & (np.asarray(samples) > 0)])[::-1]
    n = x.size
    if n < 100:
        return float("nan")
    k = max(10, int(np.sqrt(n)))
    s = float(np.sum(np.log(x[:k] / x[k])))
    return float("inf") if s <= 0 else k / s


def doubling_windows(n):
    """Index slices of the windows (n/2^(j+1), n/2^j] of n records, j = WINDOWS-1 .. 0 (oldest first)."""
    return [slice(n >> (j + 1), n >> j) for j in reversed(range(WINDOWS))]


def growth(x, n, seed=0):
    """Second moment of x (chains, records; NaN-free) in the doubling windows, and the growth per
    doubling of the run length: G = 2^s, s the least-squares slope of log m_j against log2 of the
    window's end, with a bootstrap-over-chains stderr of s."""
    wins = doubling_windows(n)
    per_chain = np.stack([(x[:, w] ** 2).mean(1) for w in wins], axis=1)  # (chains, WINDOWS)
    t = np.arange(WINDOWS, dtype=float)  # log2 of the window ends, up to a constant
    slope = lambda m: float(np.polyfit(t, np.log(m), 1)[0])  # noqa: E731
    s = slope(per_chain.mean(0))
    rng = np.random.default_rng(seed)
    boot = [slope(per_chain[rng.integers(0, x.shape[0], x.shape[0])].mean(0)) for _ in range(BOOTSTRAP)]
    return dict(windows=per_chain.mean(0).tolist(), growth=2.0 ** s, slope=s, slope_se=float(np.std(boot, ddof=1)))


def changes(g):
    """The second moment changes with run length: by more than GROWTH_TOL per doubling, either way
    (a rise: the chains wander off or blow up; a fall: they have left w* for a quieter region), and
    by more than 2 stderr of the slope."""
    s = abs(g["slope"])
    return bool(s > np.log2(1 + GROWTH_TOL) and s > 2 * g["slope_se"])


def verdict(rec):
    """'diverges', 'leaves' or 'stationary' (the module docstring) from assess()'s statistics."""
    if rec["diverged"]:
        return "diverges"
    if "top" not in rec or changes(rec["top"]) or not rec["hill_top"] > 2:
        return "leaves"
    return "stationary"


# ----------------------------------------------------------------------------- predictions
def jacobian(model, X):
    """The per-sample Jacobian of the model output, (N, P) in sgdnoise.torch.flatten's order."""
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def f(p, x):
        return torch.func.functional_call(model, p, (x.unsqueeze(0),)).squeeze()

    rows = torch.func.vmap(torch.func.jacrev(f), in_dims=(None, 0))(params, X)
    return torch.cat([rows[n].reshape(X.shape[0], -1) for n in names], dim=1).numpy()


def predictions(model, X, y, gamma, mu, h, J_lin, probes, steps):
    """The critical learning rates (absolute) at w* for momentum mu, S = 8."""
    hmax = float(h.max())
    edge = 2 * (1 + mu) / hmax
    t0 = time.time()
    r = st.analyze(model, loss_fn, (X, y), lr=0.05 * (1 - mu) * 2 / hmax, batch_size=S, momentum=mu,
                   weight_decay=gamma, k=5, probes=probes, steps=steps, seed=0)
    out = dict(edge=edge, analyze_additive=r.critical_learning_rate_additive,
               analyze_multiplicative=r.critical_learning_rate_multiplicative,
               analyze_multiplicative_stderr=r.critical_learning_rate_multiplicative_stderr,
               analyze_seconds=time.time() - t0,
               dense_sec8=network_critical_lr(h - gamma, gamma, S, mu))
    out["z_analyze_vs_dense"] = ((out["analyze_multiplicative"] - out["dense_sec8"])
                                 / out["analyze_multiplicative_stderr"])
    if J_lin is not None:
        t0 = time.time()
        out["linearised"] = sgdnoise.critical_learning_rate_dataset(J_lin, S, weight_decay=gamma, momentum=mu)
        out["linearised_seconds"] = time.time() - t0
    return out


# ----------------------------------------------------------------------------- measurement
def bracket_run(sgd, w_star, q1, lr, mu, gamma, steps, thin, seed):
    """All chains from w* (m = 0) for `steps` steps with batch indices from `seed`; every `thin` steps
    p = q1^T (w - w*) and |w - w*|^2 per chain, NaN from a chain's divergence on.  Stops early once
    every chain has diverged.  Returns p, e2 (chains, steps/thin), the step of each chain's
    divergence (-1: none) and the final w."""
    sgd.reset(w_star)
    sgd.gen.manual_seed(seed)
    ws, q = torch.as_tensor(w_star), torch.as_tensor(q1)
    batches = sgd.batches(S, "replacement")
    n = steps // thin
    p = np.full((sgd.C, n), np.nan)
    e2 = np.full((sgd.C, n), np.nan)
    first = np.full(sgd.C, -1)
    for j in range(n):
        sgd.run(batches, thin, lr, mu, gamma)
        e = sgd.w - ws
        d2 = (e * e).sum(1).numpy()
        bad = ~np.isfinite(d2) | (d2 > DIVERGED ** 2)
        first[bad & (first < 0)] = (j + 1) * thin
        ok = first < 0
        p[ok, j] = (e @ q).numpy()[ok]
        e2[ok, j] = d2[ok]
        if not ok.any():
            break
    return p, e2, first, sgd.w.numpy().copy()


def assess(p, e2, first, steps, thin):
    """The verdict of the module docstring and the numbers behind it."""
    n = steps // thin
    B = slice(n // 2, n)
    ok = first < 0
    rec = dict(chains=int(p.shape[0]), diverged=int((~ok).sum()),
               first_divergence_steps=sorted(int(f) for f in first[~ok]))
    if ok.sum() >= 2:
        pk, dk = p[ok], np.sqrt(e2[ok])
        gp, gw = growth(pk, n), growth(dk, n)
        absp = np.abs(pk[:, B])
        groups = [hill_index(g.ravel()) for g in np.array_split(absp, min(HILL_GROUPS, absp.shape[0]))]
        alpha = hill_index(absp.ravel())
        rec.update(top=gp, dist=gw,
                   top_second_moment_B=float((pk[:, B] ** 2).mean()),
                   top_second_moment_B_median_chain=float(np.median((pk[:, B] ** 2).mean(1))),
                   hill_top=alpha, hill_top_groups_se=float(np.std(groups, ddof=1) / np.sqrt(len(groups))),
                   hill_samples=int(absp.size), median_final_dist=float(np.median(dk[:, -1])),
                   max_dist=float(dk.max()))
    rec["verdict"] = verdict(rec)
    return rec


# ----------------------------------------------------------------------------- one minimum
def saved_minimum(gamma):
    """w* at gamma from the full run's JSON (results_torch_bracket.json), or None."""
    path = os.path.join(HERE, "results_torch_bracket.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return next((np.array(mn["w_star"]) for mn in json.load(fh)["minima"] if mn["gamma"] == gamma), None)


def minimum(gamma, X, y, Xn, yn, args, chains, steps, thin, fracs_for, mus, probes, steps_lanczos, linearised,
            w_saved=None):
    """Train (or load w_saved), predict and bracket at the minimum of L_gamma; the record for the JSON."""
    model = make_model(X.shape[1], HIDDEN)
    if w_saved is None:
        tr = train_torch(model, X, y, gamma, maxiter=20000, seed=INIT_SEEDS[gamma])
    else:
        st.flatten(model)[1](w_saved)
        wt = torch.tensor(w_saved, requires_grad=True)
        val = full_loss_function(model, X, y, gamma)(wt)
        tr = dict(loaded="results_torch_bracket.json", loss=float(val), lbfgs_iterations=0, newton_steps=0, seconds=0.0,
                  grad_norm=float(torch.autograd.grad(val, wt)[0].norm()))
    w_star, _ = st.flatten(model)
    f = full_loss_function(model, X, y, gamma)
    H = torch.func.hessian(f)(torch.as_tensor(w_star)).numpy()
    h, Q = np.linalg.eigh(0.5 * (H + H.T))
    hmax = float(h.max())
    q1 = Q[:, -1]
    mn = dict(gamma=gamma, init_seed=INIT_SEEDS[gamma], train=dict((k, v) for k, v in tr.items() if k != "w"),
              w_star=w_star.tolist(), w_norm=float(np.linalg.norm(w_star)), h_max=hmax, top_eigs=h[::-1][:5].tolist(),
              n_flat=int((np.abs(h) <= FLAT_TOL * hmax).sum()), runs=[])
    log(f"\n## gamma={gamma:g} (init seed {INIT_SEEDS[gamma]}): L={tr['loss']:.10f} |grad|={tr['grad_norm']:.1e} "
        f"(L-BFGS {tr['lbfgs_iterations']} it, Newton {tr['newton_steps']}; {tr['seconds']:.1f} s); |w*|={mn['w_norm']:.6g}; "
        f"h_max={hmax:.6f}, next {np.round(h[::-1][1:5], 4)}; {mn['n_flat']} eigenvalues with |h| <= {FLAT_TOL:g} h_max")
    if args.jax:
        import measure
        t0 = time.time()
        trj = measure.train(measure.MLP(X.shape[1], HIDDEN), Xn, yn, gamma, maxiter=20000, seed=INIT_SEEDS[gamma])
        w_jax = trj["w"][jax_to_torch_order(X.shape[1], HIDDEN)]
        mn["jax"] = dict(loss=trj["loss"], grad_norm=trj["grad_norm"], lbfgs_iterations=trj["lbfgs_iterations"],
                         w_star_max_abs_diff=float(np.abs(w_jax - w_star).max()),
                         w_star_rel_diff=float(np.linalg.norm(w_jax - w_star) / np.linalg.norm(w_star)),
                         seconds=time.time() - t0)
        log(f"JAX minimum (measure.train, {mn['jax']['seconds']:.1f} s): L={trj['loss']:.10f}, L-BFGS "
            f"{trj['lbfgs_iterations']} it; max |w*_torch - w*_jax| = {mn['jax']['w_star_max_abs_diff']:.2e} "
            f"(relative {mn['jax']['w_star_rel_diff']:.1e})")

    J_lin = None
    if linearised:
        J = jacobian(model, X)
        G = np.concatenate(list(st.per_sample_gradients(model, loss_fn, (X, y))))
        r = (model(X) - y).detach().numpy()
        mn["jacobian_vs_per_sample_gradients"] = float(np.abs(G - r * J).max() / np.abs(G).max())  # g_i = r_i j_i
        GN = J.T @ J / J.shape[0]
        ev, V = np.linalg.eigh(GN)
        H0 = H - gamma * np.eye(H.shape[0])
        mn.update(rank_J=int(np.linalg.matrix_rank(J)),
                  gn_vs_H0_rel_frobenius=float(np.linalg.norm(GN - H0) / np.linalg.norm(H0)))
        if (ev + gamma).min() <= 1e-10 * (ev + gamma).max():  # J^T J singular: its range (measure.py's rule)
            V = V[:, ev > FLAT_TOL * ev.max()]
            J_lin = J @ V
            mn["lin_range_dim"] = int(V.shape[1])
        else:
            J_lin = J
        log(f"Jacobian (vmap(jacrev)): max|G - r J|/max|G| = {mn['jacobian_vs_per_sample_gradients']:.1e} (G from "
            f"sgdnoise.torch.per_sample_gradients), rank {mn['rank_J']}, |J^T J/N - H0|_F/|H0|_F = {mn['gn_vs_H0_rel_frobenius']:.3f}, "
            f"linearised on {J_lin.shape[1]} columns")

    sgd = VectorSGD(X, y, chains)
    for mu in mus:
        pred = predictions(model, X, y, gamma, mu, h, J_lin, probes, steps_lanczos)
        edge = pred["edge"]
        log(f"\n### gamma={gamma:g}, mu={mu}: critical lr in units of 2(1+mu)/h_max = {edge:.5g}: analyze additive "
            f"{pred['analyze_additive'] / edge:.4f}, multiplicative {pred['analyze_multiplicative'] / edge:.4f} +- "
            f"{pred['analyze_multiplicative_stderr'] / edge:.4f} (dense section 8: {pred['dense_sec8'] / edge:.4f}, "
            f"z {pred['z_analyze_vs_dense']:+.2f}; analyze {pred['analyze_seconds']:.1f} s)"
            + (f", linearised {pred['linearised'] / edge:.4f} ({pred['linearised_seconds']:.1f} s)"
               if "linearised" in pred else ""))
        bracket = []
        for i, c in enumerate(fracs_for(mu)):
            lr = c * edge
            t0 = time.time()
            p, e2, first, _ = bracket_run(sgd, w_star, q1, lr, mu, gamma, steps, thin,
                                          seed=1000 + int(100 * mu) + int(gamma == 0))
            rec = dict(frac=c, lr=lr, steps=steps, thin=thin, **assess(p, e2, first, steps, thin),
                       seconds=time.time() - t0)
            bracket.append(rec)
            log(f"  {c:5.3f} (lr {lr:.5g}): {rec['verdict']:10s} diverged {rec['diverged']}/{chains}"
                + (f" (first at steps {rec['first_divergence_steps'][:3]})" if rec["diverged"] else "")
                + (f"; E[p^2] by doubling window {np.array2string(np.array(rec['top']['windows']), precision=4)}: "
                   f"growth per doubling {rec['top']['growth']:.3f} (slope {rec['top']['slope']:+.3f} +- "
                   f"{rec['top']['slope_se']:.3f}); median chain E[p^2] {rec['top_second_moment_B_median_chain']:.3g}; "
                   f"E|w-w*|^2 {np.array2string(np.array(rec['dist']['windows']), precision=3)} growth "
                   f"{rec['dist']['growth']:.3f} +- slope {rec['dist']['slope_se']:.3f}; Hill |p| {rec['hill_top']:.2f} +- "
                   f"{rec['hill_top_groups_se']:.2f}; median final |w-w*| {rec['median_final_dist']:.3g}, max "
                   f"{rec['max_dist']:.3g}" if "top" in rec else "")
                + f" [{rec['seconds']:.1f} s]")
        mn["runs"].append(dict(mu=mu, predictions=pred, bracket=bracket))
    return mn


def main():
    args = parse_args(__doc__, "gamma = 0, mu = 0, four learning rates, short runs (< 60 s)", print_tables,
                      extra=[("--jax", "also train measure.py's JAX minima and compare them with the torch ones")])
    if args is None:
        return 0
    quick = args.quick
    t_start = time.time()
    torch.set_num_threads(1)  # tiny tensors; the machine is shared
    Xn, yn = load_data()
    X, y = data_tensors(Xn, yn)
    log(f"# critical-lr bracket through PyTorch: torch {torch.__version__}, sgdnoise {sgdnoise.__version__}, "
        f"S={S}, quick={quick}")
    if quick:
        chains, steps, thin, probes = 32, 4000, 10, 20
        gammas, mus = [0.0], [0.0]
        fracs_for = lambda mu: [0.8, 0.9, 0.95, 1.05]  # noqa: E731
    else:
        chains, steps, thin, probes = 64, 20000, 10, 60
        gammas, mus = [1e-3, 0.0], [0.0, 0.9]
        # measure.py's grid, refined around the predictions
        fracs_for = lambda mu: sorted(set(CRITICAL_FRACS[mu]) | REFINE[mu])  # noqa: E731
    results = dict(setup=dict(S=S, chains=chains, steps=steps, thin=thin, probes=probes, diverged=DIVERGED,
                              growth_tol=GROWTH_TOL, windows=WINDOWS, hill_groups=HILL_GROUPS, quick=quick,
                              torch=torch.__version__), minima=[])
    for gamma in gammas:
        results["minima"].append(minimum(gamma, X, y, Xn, yn, args, chains, steps, thin, fracs_for, mus, probes, 8,
                                         linearised=not quick, w_saved=saved_minimum(gamma) if quick else None))
    write_results(results, args.out or os.path.join(
        HERE, "results_torch_bracket_quick.json" if quick else "results_torch_bracket.json"), t_start, print_tables)
    return 0


# ----------------------------------------------------------------------------- tables
def _jax_brackets():
    """measure.py's critical-lr runs (results.json) by (gamma, mu): {frac: record}."""
    path = os.path.join(HERE, "results.json")
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return {(mn["gamma"], run["mu"]): {b["frac"]: b for b in run["bracket"]}
                for mn in json.load(fh)["minima"] if mn.get("critical") for run in mn["critical"]["runs"]}


def _runs(results):
    """(label of the minimum, run, predictions, 2(1+mu)/h_max) for every minimum and momentum."""
    for mn in results["minima"]:
        for run in mn["runs"]:
            yield f"γ = {mn['gamma']:g}", run, run["predictions"], run["predictions"]["edge"]


def print_tables(results):
    s = results["setup"]
    jax = _jax_brackets()
    log(f"\nPredictions, λ in units of 2(1+μ)/h_max (S = {s['S']}):\n")
    log("| minimum | μ | 2(1+μ)/h_max | analyze additive | analyze multiplicative (Thm 5 / §8) ± stderr | dense §8 | "
        "linearised (`critical_learning_rate_dataset`) |")
    log("|---|---|---|---|---|---|---|")
    for label, run, p, e in _runs(results):
        lin = f"{p['linearised'] / e:.3f}" if "linearised" in p else "—"
        log(f"| {label} | {run['mu']} | {e:.4f} | {p['analyze_additive'] / e:.3f} | "
            f"{p['analyze_multiplicative'] / e:.3f} ± {p['analyze_multiplicative_stderr'] / e:.3f} | "
            f"{p['dense_sec8'] / e:.3f} | {lin} |")
    log(f"\nEvery run: {s['chains']} chains × {s['steps']} steps from w* (m = 0), batches with replacement; p the "
        f"projection of w − w* on the top Hessian eigenvector. E[p²] in the first and the last of the {s['windows']} "
        f"doubling windows, (T/{2 ** s['windows']}, T/{2 ** (s['windows'] - 1)}] and (T/2, T] (over the chains that "
        "did not diverge), and the median over chains of their own E[p²] in (T/2, T]; G: the growth of E[p²] per "
        "doubling of the run length "
        "(2^slope, ± the slope's bootstrap stderr); G_w: the same for |w − w*|²; Hill: tail index of |p| over "
        f"(T/2, T] (± stderr over {s['hill_groups']} groups of chains); JAX: measure.py's 6 seeds × 2·10⁴ steps "
        "(diverged, median final |w−w*|).\n")
    log("| minimum | μ | λ/(2(1+μ)/h_max) | verdict | diverged | E[p²] first → last window (median chain) | G (slope ± se) | G_w | Hill \\|p\\| | "
        "median final \\|w−w*\\| | JAX: diverged, final \\|w−w*\\| |")
    log("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, run, _, _ in _runs(results):
        jb = jax.get((float(label.split("= ")[1]), run["mu"]), {})
        for b in run["bracket"]:
            j = jb.get(b["frac"])
            jtxt = "—" if j is None else (f"{j['diverged']}/{j['seeds']}, "
                                         + ("—" if j["median_final_dist"] is None else f"{j['median_final_dist']:.3g}"))
            mid = "— | — | — | — | —"
            if "top" in b:
                t = b["top"]
                mid = (f"{t['windows'][0]:.3g} → {t['windows'][-1]:.3g} ({b['top_second_moment_B_median_chain']:.3g}) | "
                       f"{t['growth']:.2f} ({t['slope']:+.2f} ± {t['slope_se']:.2f}) | {b['dist']['growth']:.2f} | "
                       f"{b['hill_top']:.2f} ± {b['hill_top_groups_se']:.2f} | {b['median_final_dist']:.3g}")
            log(f"| {label} | {run['mu']} | {b['frac']} | {verdict(b)} | {b['diverged']}/{b['chains']} | {mid} | {jtxt} |")
    log("\nBrackets (λ in units of 2(1+μ)/h_max): stationarity is lost in (last stationary, first not stationary], "
        "divergence sets in in (last without divergence, first with divergence]; the predictions inside each:\n")
    log("| minimum | μ | stationary (p) | leaves (no divergence) | diverges | stationarity lost in | "
        "predictions inside | divergence in | predictions inside |")
    log("|---|---|---|---|---|---|---|---|---|")
    fmt = lambda a: ", ".join(f"{x:g}" for x in a) or "none"  # noqa: E731
    for label, run, p, e in _runs(results):
        named = [("additive", p["analyze_additive"]), ("multiplicative", p["analyze_multiplicative"]),
                 ("linearised", p.get("linearised"))]
        by = {v: [b["frac"] for b in run["bracket"] if verdict(b) == v] for v in ("stationary", "leaves", "diverges")}
        cells = []
        for below, above in ((by["stationary"], by["leaves"] + by["diverges"]),
                             (by["stationary"] + by["leaves"], by["diverges"])):
            hi = min(above, default=float("inf"))
            lo = max((x for x in below if x < hi), default=0.0)
            inside = [f"{n} {v / e:.3f}" for n, v in named if v is not None and lo < v / e <= hi]
            cells += [f"({lo:g}, {hi:g}]", ", ".join(inside) or "none"]
        log(f"| {label} | {run['mu']} | {fmt(by['stationary'])} | {fmt(by['leaves'])} | {fmt(by['diverges'])} | "
            + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
