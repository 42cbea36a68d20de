"""The framework-free parts of the real-network study, shared by measure.py (JAX) and
measure_torch.py (PyTorch): the data, the initialisation, the minimiser (L-BFGS then Newton on any
value-and-gradient / Hessian callables), the batch-means statistics of a measurement, and the exact
finite-run transient of the additive model.  numpy, scipy and scikit-learn only.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import scipy.optimize as so
from sklearn.datasets import load_diabetes

HIDDEN = 16
K = 5  # top-k / bottom-k Hessian eigendirections
INIT_SEEDS = {1e-3: 0, 0.0: 1}  # per weight decay (seed 0 at gamma = 0 stalls at |grad| ~ 5e-8, see RESULTS.md)
FLAT_TOL = 1e-9  # relative tolerance for flat directions where the default refuses
# the critical-lr grid, lr in units of 2(1+mu)/h_max per momentum (the multiplicative-noise edges with
# momentum are near 0.1 of it)
CRITICAL_FRACS = {0.0: [0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1, 1.5, 2.0, 3.0],
                  0.9: [0.05, 0.07, 0.09, 0.11, 0.13, 0.15, 0.2, 0.3, 0.5, 0.7]}


def log(*a):
    print(*a, flush=True)



def load_data():
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return X, y



def init_params(d, h, seed):
    """The initialisation of the 10 -> h -> 1 MLP in the flat order [W1 (d x h, row-major), b1, W2, b2]:
    W1 ~ N(0, 1/d), W2 ~ N(0, 1/h), biases 0."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(size=d * h) / np.sqrt(d), np.zeros(h), rng.normal(size=h) / np.sqrt(h), [0.0]])


def minimise(value_and_grad, hessian, w0, maxiter):
    """L-BFGS to a minimum, then Newton steps with the dense Hessian (pseudo-inverse on the
    eigenvalues above 1e-10 max) until |grad| < 1e-12 or no further progress.  value_and_grad(w)
    -> (float, (P,) ndarray) and hessian(w) -> (P, P) ndarray take a numpy vector."""
    vg = value_and_grad
    t0 = time.time()
    res = so.minimize(vg, w0, jac=True, method="L-BFGS-B",
                      options=dict(maxiter=maxiter, maxfun=2 * maxiter, gtol=1e-14, ftol=0.0, maxcor=50))
    w = res.x
    gn_lbfgs = float(np.linalg.norm(vg(w)[1]))
    newton = 0
    for newton in range(1, 61):
        _, g = vg(w)
        ev, Q = np.linalg.eigh(hessian(w))
        keep = ev > 1e-10 * ev.max()
        w_new = w - Q[:, keep] @ ((Q[:, keep].T @ g) / ev[keep])
        if np.linalg.norm(vg(w_new)[1]) >= np.linalg.norm(g):
            break
        w = w_new
        if np.linalg.norm(vg(w)[1]) < 1e-12:
            break
    l, g = vg(w)
    return dict(w=w, loss=float(l), grad_norm=float(np.linalg.norm(g)), lbfgs_iterations=int(res.nit),
                lbfgs_message=str(res.message), lbfgs_grad_norm=gn_lbfgs, newton_steps=newton,
                seconds=time.time() - t0)


def batch_stats(out, k):
    """Batch means over (chains x blocks): mean and standard error of the top-k covariance
    (centred in each block), of the projections and of the excess loss."""
    p, pp, q, qq, loss, wbar = (np.asarray(a) for a in out)
    nc, nb = loss.shape
    p = p.reshape(nc * nb, k)
    cov_b = pp.reshape(nc * nb, k, k) - p[:, :, None] * p[:, None, :]
    n = nc * nb
    se = lambda a: a.std(axis=0, ddof=1) / np.sqrt(a.shape[0])  # noqa: E731
    chain_se = lambda a: a.mean(axis=1).std(axis=0, ddof=1) / np.sqrt(a.shape[0])  # noqa: E731
    return dict(
        batches=n,
        cov=cov_b.mean(0), cov_se=se(cov_b),
        cov_chain_se=chain_se(cov_b.reshape(nc, nb, k, k)) if nc > 1 else np.full((k, k), np.nan),
        second_moment=pp.reshape(n, k, k).mean(0),
        loss=float(loss.mean()), loss_se=float(se(loss.ravel())),
        loss_chain_se=float(chain_se(loss)) if nc > 1 else float("nan"),
        mean_top=p.mean(0), mean_top_se=chain_se(p.reshape(nc, nb, k)) if nc > 1 else np.full(k, np.nan),
        mean_bot=q.reshape(n, -1).mean(0),
        mean_bot_se=chain_se(q) if nc > 1 else np.full(q.shape[-1], np.nan),
        mean_bot_last=q[:, -1].mean(0),
        rms_bot=np.sqrt(qq.reshape(n, -1).mean(0)),
        loss_first_block=float(loss[:, 0].mean()), loss_last_block=float(loss[:, -1].mean()),
        w_mean_last_block=wbar[:, -1], w_mean=wbar.mean(1),
    )



def window_average_diag(h, c_diag, lr, mu, burn, steps):
    """Time average over steps burn+1 .. burn+steps of Var(e_i) for each Hessian eigendirection of
    the linear dynamics with constant (additive) noise c_diag, started at e = m = 0 — the exact
    finite-run counterpart of the stationary diagonal of Theorem 1 (Sigma_ii in H's eigenbasis).
    Per direction: z = (e, m), z' = J z + b eta, J = [[1 - lr h, -lr mu], [h, mu]], b = (-lr, 1);
    vec(V)' = (J kron J) vec(V) + c vec(b b^T); augmented with a running sum and taken to the
    needed powers by repeated squaring (exact also for flat and unstable-free slow directions)."""
    n = h.size
    J = np.zeros((n, 2, 2))
    J[:, 0, 0], J[:, 0, 1], J[:, 1, 0], J[:, 1, 1] = 1 - lr * h, -lr * mu, h, mu
    M = np.einsum("nij,nkl->nikjl", J, J).reshape(n, 4, 4)
    bb = np.array([lr * lr, -lr, -lr, 1.0])
    A = np.zeros((n, 9, 9))  # state (vecV[4], 1, sumV[4])
    A[:, :4, :4] = M
    A[:, :4, 4] = c_diag[:, None] * bb
    A[:, 4, 4] = 1
    A[:, 5:, :4] = M
    A[:, 5:, 4] = c_diag[:, None] * bb
    A[:, 5:, 5:] = np.eye(4)
    z = np.zeros((n, 9))
    z[:, 4] = 1
    z = np.einsum("nij,nj->ni", np.linalg.matrix_power(A, burn), z)
    z[:, 5:] = 0
    z = np.einsum("nij,nj->ni", np.linalg.matrix_power(A, steps), z)
    return z[:, 5] / steps


def relaxation_steps(h, lr, mu):
    """Steps for the variance of each eigendirection to relax by 1/e: -1 / (2 log rho(J))."""
    out = np.full(h.size, np.inf)
    for i, hi in enumerate(h):
        rho = np.abs(np.linalg.eigvals(np.array([[1 - lr * hi, -lr * mu], [hi, mu]]))).max()
        if 0 < rho < 1:
            out[i] = -1.0 / (2.0 * np.log(rho))
    return out


def network_critical_lr(h0, gamma, S, mu):
    """docs/theory.md section 8: C(Sigma) = (1/S)(Tr[H0 Sigma] H0 - H0 Sigma H0) + (2 L0/S) H0, the
    engine of section 4 with M = H0, H = H0 + gamma, beta1 = -1, beta2 = 1.  A stationary Sigma
    exists iff e_i = d_ii + m'_i^2/S > 0 for all i and (1/S) sum_i m'_i^2/e_i < 1, with m_i = lr h_i,
    m'_i = lr h0_i, d_ii = (1-mu) m_i (2 - m_i/(1+mu)).  Bisection in lr below 2(1+mu)/h_max."""
    h = h0 + gamma
    live = np.abs(h) > FLAT_TOL * np.abs(h).max()  # flat directions (round-off) carry no dynamics

    def stable(lr):
        m, mp = lr * h, lr * h0
        d = (1 - mu) * m * (2 - m / (1 + mu))
        e = d[live] + mp[live] ** 2 / S
        if np.any(e <= 0):
            return False
        return np.sum(mp[live] ** 2 / e) / S < 1

    hi = 2 * (1 + mu) / h.max()
    lo = 0.0
    if stable(hi * (1 - 1e-12)):
        return hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    return lo


def parse_args(doc, quick_help, print_tables, extra=()):
    """The scripts' command line: --quick, --out, --tables JSON (print_tables of an earlier run's
    JSON, then None is returned) and `extra` (name, help) store_true flags."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    for name, text in extra:
        ap.add_argument(name, action="store_true", help=text)
    ap.add_argument("--out", default=None)
    ap.add_argument("--tables", metavar="JSON", default=None,
                    help="only print the markdown tables of an earlier run's JSON")
    args = ap.parse_args()
    if args.tables:
        with open(args.tables) as fh:
            print_tables(json.load(fh))
        return None
    return args


def write_results(results, path, t_start, print_tables):
    """results["seconds"], the JSON at `path`, and the tables."""
    results["seconds"] = time.time() - t_start
    with open(path, "w") as fh:
        json.dump(results, fh, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    log(f"\nwrote {path} in {results['seconds']:.0f} s")
    print_tables(results)
