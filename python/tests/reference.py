"""Independent brute-force references for the closed-form models (docs/theory.md §1, §3, §4, §6).

Nothing in this module calls sgdnoise. Every model is written in the common form of
docs/theory.md §4,

    C(Sigma) = (1/S) (beta1 M Sigma M + beta2 Tr[M Sigma] M) + C0,

with H, M, beta1, beta2 and C0 derived here from the model's definition (per-sample gradients of
linear regression with Gaussian inputs, Isserlis' theorem), not copied from the library. Two
routes solve for the stationary fluctuation:

1. ``solve_theorem1``: Theorem 1 with C(Sigma) substituted, as a D^2 x D^2 linear system on
   vec(Sigma) assembled from Kronecker products, solved by numpy.linalg.solve.
2. ``solve_second_moments``: the exact second-moment recursion of the 2D-dimensional linear
   system z = (w, m) of the update rule of docs/theory.md §1,

       z_t = J z_{t-1} + E eta_t,   J = [[I - Lam H, -mu Lam], [H, mu I]],   E = [[-Lam], [I]],

   whose second moment P obeys P <- J P J^T + E C(P_ww) E^T (eta_t has conditional mean 0 and
   conditional covariance C(w), linear in w w^T, so this recursion is exact). Its fixed point's
   w-block is Sigma; its spectral radius (``spectral_radius``) is below one exactly when the
   second moments converge, i.e. when a stationary Sigma exists. This route does not use
   Theorem 1 at all.

Row-major vectorisation throughout: vec(L X R) = kron(L, R^T) vec(X).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.optimize

EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------------
# Random test matrices

def random_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def random_spd(rng: np.random.Generator, d: int, lo: float = 0.2, hi: float = 1.0) -> np.ndarray:
    """Q diag(e) Q^T with e in [lo, hi] (both ends attained for d >= 2), exactly symmetric."""
    q = random_orthogonal(rng, d)
    e = rng.uniform(lo, hi, d)
    if d >= 2:
        e[:2] = lo, hi
    a = (q * e) @ q.T
    return 0.5 * (a + a.T)


def sym(x: np.ndarray) -> np.ndarray:
    return 0.5 * (x + x.T)


def spd_function(a: np.ndarray, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """f(A) for symmetric A through its eigendecomposition, exactly symmetric."""
    e, q = np.linalg.eigh(a)
    return sym((q * f(e)) @ q.T)


def commutator_size(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.linalg.norm(x @ y - y @ x) / (np.linalg.norm(x) * np.linalg.norm(y)))


def rel_err(got, expected) -> float:
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    scale = np.linalg.norm(expected)
    return float(np.linalg.norm(got - expected) / scale) if scale > 0 else float(np.linalg.norm(got))


def min_eig_ratio(x: np.ndarray) -> float:
    """Smallest eigenvalue of a symmetric matrix relative to its largest magnitude."""
    e = np.linalg.eigvalsh(sym(x))
    return float(e.min() / max(np.abs(e).max(), np.finfo(float).tiny))


# --------------------------------------------------------------------------------------------
# Models in the common form of docs/theory.md §4

@dataclass
class LinearModel:
    """A quadratic loss with Hessian H, noise C(Sigma) = (1/S)(b1 M S M + b2 Tr[M S] M) + C0,
    learning-rate matrix lam and momentum mu; w is measured from the stationary mean ``mean``."""

    H: np.ndarray
    M: np.ndarray
    beta1: float
    beta2: float
    S: int
    C0: np.ndarray
    lam: np.ndarray
    mu: float
    mean: np.ndarray
    train_loss: Callable[[np.ndarray], float]
    test_loss: Callable[[np.ndarray], float]
    info: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return self.H.shape[0]

    def noise(self, sigma: np.ndarray) -> np.ndarray:
        m = self.M
        return (self.beta1 * m @ sigma @ m + self.beta2 * np.trace(m @ sigma) * m) / self.S + self.C0

    def noise_operator(self) -> np.ndarray:
        """vec(Sigma) -> vec(C(Sigma) - C0), D^2 x D^2."""
        m = self.M
        vm = m.reshape(-1)
        return (self.beta1 * np.kron(m, m) + self.beta2 * np.outer(vm, vm)) / self.S


def as_lr_matrix(lr, d: int) -> np.ndarray:
    """A learning rate given as a scalar, a (D,) diagonal or a (D, D) matrix, as a matrix."""
    if np.ndim(lr) == 0:
        return float(lr) * np.eye(d)
    if np.ndim(lr) == 1:
        return np.diag(np.asarray(lr, dtype=float))
    return np.asarray(lr, dtype=float)


def label_noise_model(A, noise_var, lr, S, mu) -> LinearModel:
    """y = u^T x + eps, x ~ N(0, A), Var eps = s2; w measured from u. A per-sample gradient is
    g = x (x^T w - eps); by Isserlis cov(g | w) = A w w^T A + (w^T A w + s2) A, so averaged over w
    (mean 0, covariance Sigma) and divided by S: H = M = A, beta1 = beta2 = 1, C0 = s2 A / S."""
    A = np.asarray(A, dtype=float)
    d = A.shape[0]
    return LinearModel(
        H=A, M=A, beta1=1.0, beta2=1.0, S=S, C0=noise_var / S * A, lam=as_lr_matrix(lr, d), mu=mu,
        mean=np.zeros(d),
        train_loss=lambda s: 0.5 * (np.trace(A @ s) + noise_var),
        test_loss=lambda s: 0.5 * np.trace(A @ s))


def input_noise_model(A, B, u, noise_var, lr, S, mu) -> LinearModel:
    """The model sees xt = x + xi, xi ~ N(0, B), label y = u^T x + eps. With K = A + B the loss is
    L(w) = 1/2 [(w-u)^T A (w-u) + w^T B w + s2], minimised at w* = K^{-1} A u. The residual
    r = xt^T w - u^T x - eps and xt are jointly Gaussian with E[r xt] = grad L = K (w - w*) and
    E r^2 = 2 L(w), so by Isserlis cov(xt r | w) = 2 L(w) K + grad L grad L^T. Averaged over
    w = w* + e: C = (1/S)(K Sigma K + Tr[K Sigma] K) + (s2_eff / S) K with
    s2_eff = 2 L(w*) = (w*-u)^T A (w*-u) + w*^T B w* + s2."""
    A, B, u = (np.asarray(x, dtype=float) for x in (A, B, u))
    d = A.shape[0]
    K = A + B
    w_star = np.linalg.solve(K, A @ u)
    delta = w_star - u
    s2_eff = delta @ A @ delta + w_star @ B @ w_star + noise_var
    bias = delta @ A @ delta
    return LinearModel(
        H=K, M=K, beta1=1.0, beta2=1.0, S=S, C0=s2_eff / S * K, lam=as_lr_matrix(lr, d), mu=mu,
        mean=w_star,
        train_loss=lambda s: 0.5 * (np.trace(K @ s) + s2_eff),
        test_loss=lambda s: 0.5 * (np.trace(A @ s) + bias),
        info=dict(K=K, s2_eff=s2_eff))


def l2_model(A, u, Gamma, lr, S, mu) -> LinearModel:
    """Per-sample loss 1/2 (x^T (w - u))^2 + 1/2 w^T Gamma w (no label noise), K = A + Gamma,
    w* = K^{-1} A u, delta = w* - u. g = x x^T (w - u) + Gamma w, so by Isserlis
    cov(g | w) = A v v^T A + (v^T A v) A with v = w - u; averaged over w = w* + e:
    C = (1/S)(A Sigma A + Tr[A Sigma] A) + (1/S)(A delta delta^T A + (delta^T A delta) A)."""
    A, u = np.asarray(A, dtype=float), np.asarray(u, dtype=float)
    d = A.shape[0]
    G = float(Gamma) * np.eye(d) if np.ndim(Gamma) == 0 else np.asarray(Gamma, dtype=float)
    K = A + G
    w_star = np.linalg.solve(K, A @ u)
    delta = w_star - u
    Ad = A @ delta
    bias = delta @ Ad
    return LinearModel(
        H=K, M=A, beta1=1.0, beta2=1.0, S=S, C0=(np.outer(Ad, Ad) + bias * A) / S,
        lam=as_lr_matrix(lr, d), mu=mu, mean=w_star,
        train_loss=lambda s: 0.5 * (np.trace(A @ s) + bias) + 0.5 * (np.trace(G @ s) + w_star @ G @ w_star),
        test_loss=lambda s: 0.5 * (np.trace(A @ s) + bias),
        info=dict(K=K, Gamma=G))


def high_dimensional_model(A_hat, alpha, noise_var, lr, S, mu) -> LinearModel:
    """docs/theory.md §4 [Prop 4]:
    C = (1/S)(Tr[A Sigma] A - A Sigma A) + max(0, s2 (1 - 1/alpha)/S) A,
    i.e. H = M = A_hat, beta1 = -1, beta2 = 1."""
    A = np.asarray(A_hat, dtype=float)
    d = A.shape[0]
    floor = max(0.0, noise_var * (1 - 1 / alpha))
    return LinearModel(
        H=A, M=A, beta1=-1.0, beta2=1.0, S=S, C0=floor / S * A, lam=as_lr_matrix(lr, d), mu=mu,
        mean=np.zeros(d),
        train_loss=lambda s: 0.5 * (np.trace(A @ s) + floor),
        test_loss=lambda s: 0.5 * np.trace(A @ s))


def damped_newton_model(A, noise_var, lr, S, mu) -> LinearModel:
    """Label noise with the learning-rate matrix lam = lr * A^{-1} [Sec 6.4]."""
    A = np.asarray(A, dtype=float)
    return label_noise_model(A, noise_var, spd_function(A, lambda e: lr / e), S, mu)


def discrete_hessian_model(A, noise_var, lr, S, mu) -> LinearModel:
    """Theorem 1 with the Sigma-independent noise C = (s2/S) A (Liu et al. 2021): beta1 = beta2 = 0."""
    A = np.asarray(A, dtype=float)
    d = A.shape[0]
    return LinearModel(
        H=A, M=A, beta1=0.0, beta2=0.0, S=S, C0=noise_var / S * A, lam=as_lr_matrix(lr, d), mu=mu,
        mean=np.zeros(d), train_loss=lambda s: np.nan, test_loss=lambda s: np.nan)


# --------------------------------------------------------------------------------------------
# Route 1: Theorem 1 as a Kronecker linear system

def momentum_constants(mu: float) -> tuple[float, float]:
    return (1 + mu * mu) / (1 - mu * mu), mu / (1 - mu * mu)


def theorem1_operator(H, lam, mu) -> np.ndarray:
    """vec(Sigma) -> vec((1-mu)(Lam H S + S H Lam) - c1 Lam H S H Lam + c2 (Lam H Lam H S + S H Lam H Lam)),
    literally as printed in docs/theory.md §3."""
    d = H.shape[0]
    eye = np.eye(d)
    c1, c2 = momentum_constants(mu)
    lh, hl = lam @ H, H @ lam

    def lr_(left, right):  # X -> left X right
        return np.kron(left, right.T)

    return ((1 - mu) * (lr_(lh, eye) + lr_(eye, hl)) - c1 * lr_(lh, hl)
            + c2 * (lr_(lh @ lh, eye) + lr_(eye, hl @ hl)))


def theorem1_system(model: LinearModel) -> tuple[np.ndarray, np.ndarray]:
    """(Op, rhs) with Op vec(Sigma) = rhs the full stationary equation with C(Sigma) substituted:
    Thm1(Sigma) - Lam (C(Sigma) - C0) Lam = Lam C0 Lam."""
    lam = model.lam
    op = theorem1_operator(model.H, lam, model.mu) - np.kron(lam, lam) @ model.noise_operator()
    return op, (lam @ model.C0 @ lam).reshape(-1)


def solve_theorem1(model: LinearModel) -> np.ndarray:
    op, rhs = theorem1_system(model)
    d = model.dim
    return sym(np.linalg.solve(op, rhs).reshape(d, d))


# --------------------------------------------------------------------------------------------
# Route 2: second moments of the (w, m) system

def second_moment_operator(model: LinearModel) -> tuple[np.ndarray, np.ndarray]:
    """(T, b): vec(P_t) = T vec(P_{t-1}) + b for P = E[z z^T], z = (w, m) (4D^2 x 4D^2)."""
    d = model.dim
    lam, h, mu = model.lam, model.H, model.mu
    eye = np.eye(d)
    J = np.block([[eye - lam @ h, -mu * lam], [h, mu * eye]])
    E = np.vstack([-lam, eye])
    sel = np.hstack([eye, np.zeros((d, d))])
    EE = np.kron(E, E)
    T = np.kron(J, J) + EE @ model.noise_operator() @ np.kron(sel, sel)
    return T, EE @ model.C0.reshape(-1)


def solve_second_moments(model: LinearModel) -> np.ndarray:
    """Sigma as the w-block of the fixed point of the second-moment recursion."""
    T, b = second_moment_operator(model)
    d = model.dim
    p = np.linalg.solve(np.eye(T.shape[0]) - T, b).reshape(2 * d, 2 * d)
    return sym(p[:d, :d])


def spectral_radius(model: LinearModel) -> float:
    """rho of the second-moment recursion: < 1 iff the second moments of SGD converge."""
    T, _ = second_moment_operator(model)
    return float(np.abs(np.linalg.eigvals(T)).max())


def critical_scale(make: Callable[[float], LinearModel], hi: float, xtol_rel: float = 1e-14) -> float:
    """The c at which rho(second moments of make(c)) crosses 1, by bisection/Brent on (0, hi].

    ``hi`` must be unstable; the bracket's lower end is found by halving from hi.
    """
    f = lambda c: spectral_radius(make(c)) - 1.0
    if not f(hi) > 0:
        raise ValueError("upper end of the bracket is stable")
    lo = hi
    for _ in range(60):
        lo *= 0.5
        if f(lo) < 0:
            break
    else:
        raise ValueError("no stable scale found")
    return scipy.optimize.brentq(f, lo, hi, xtol=1e-300, rtol=max(xtol_rel, 4 * EPS), maxiter=500)


def deterministic_edge(model: LinearModel) -> float:
    """The c beyond which c*lam is unstable even without noise: c * max eig(lam^{1/2} H lam^{1/2}) = 2(1+mu)."""
    r = spd_function(model.lam, np.sqrt)
    m = np.linalg.eigvalsh(sym(r @ model.H @ r))
    return 2 * (1 + model.mu) / m.max()


# --------------------------------------------------------------------------------------------
# Natural gradient: the self-consistent equation, solved by a generic root finder

def natural_gradient_reference(A, lr, S, mu, start: np.ndarray) -> np.ndarray:
    """Sigma solving Theorem 1 with H = A, label-noise-free noise C(Sigma) = (1/S)(A S A + Tr[A S] A)
    and Lam = (lr/S) C(Sigma)^{-1}, found by scipy.optimize.root from ``start`` (no ansatz)."""
    A = np.asarray(A, dtype=float)
    d = A.shape[0]
    iu = np.triu_indices(d)

    def unpack(v):
        s = np.zeros((d, d))
        s[iu] = v
        return s + np.triu(s, 1).T

    def residual(v):
        s = unpack(v)
        c = (A @ s @ A + np.trace(A @ s) * A) / S
        lam = (lr / S) * np.linalg.inv(c)
        lhs = theorem1_operator(A, lam, mu) @ s.reshape(-1)
        r = lhs.reshape(d, d) - lam @ c @ lam
        return r[iu]

    sol = scipy.optimize.root(residual, start[iu], method="hybr", options=dict(xtol=1e-14, maxfev=20000))
    s = unpack(sol.x)
    c = (A @ s @ A + np.trace(A @ s) * A) / S
    lam = (lr / S) * np.linalg.inv(c)
    scale = np.linalg.norm(lam @ c @ lam)
    # hybr may stop with "xtol too small" at the limit of double precision: judge by the residual.
    if not np.linalg.norm(residual(sol.x)) <= 1e-13 * scale:
        raise RuntimeError(f"natural-gradient root finder failed: {sol.message}")
    return s


# --------------------------------------------------------------------------------------------
# Closed forms of docs/theory.md §6 used as independent references

def label_noise_trace_sum(lam_a: np.ndarray, S: int, mu: float) -> float:
    """Sum_i x_i / (2(1-mu) - q x_i), x = lam * a, q = (1-mu)/(1+mu) + 1/S (docs/theory.md §6)."""
    q = (1 - mu) / (1 + mu) + 1 / S
    return float(np.sum(lam_a / (2 * (1 - mu) - q * lam_a)))


def label_noise_critical_brentq(a: np.ndarray, S: int, mu: float) -> float:
    """lambda* of label noise: the root of the section-6 sum = S, by scipy brentq below the pole."""
    a = np.asarray(a, dtype=float)
    q = (1 - mu) / (1 + mu) + 1 / S
    pole = 2 * (1 - mu) / (q * a.max())
    f = lambda lam: label_noise_trace_sum(lam * a, S, mu) - S
    return scipy.optimize.brentq(f, 1e-12 * pole, pole * (1 - 1e-15), xtol=1e-300, rtol=4 * EPS, maxiter=500)


def label_noise_critical_1d(a: float, S: int, mu: float) -> float:
    """1-d, by hand: x/(2(1-mu) - q x) = S  =>  x = 2(1-mu)S/(1 + qS) = 2(1-mu)(1+mu)S/((1-mu)S + 2(1+mu))."""
    return 2 * (1 - mu) * (1 + mu) * S / (((1 - mu) * S + 2 * (1 + mu)) * a)


def high_dimensional_critical_brentq(a: np.ndarray, S: int) -> float:
    """lambda* of Thm 6 (mu = 0): Sum_i 1/(2/(lam a_i) - 1 + 1/S) = S, below the diagonal edge
    lam a_max = 2S/(S-1) (no edge for S = 1)."""
    a = np.asarray(a, dtype=float)
    f = lambda lam: float(np.sum(1.0 / (2.0 / (lam * a) - 1 + 1 / S))) - S
    hi = 2 * S / ((S - 1) * a.max()) * (1 - 1e-15) if S > 1 else 4 / a.sum()
    return scipy.optimize.brentq(f, 1e-12 * hi, hi, xtol=1e-300, rtol=4 * EPS, maxiter=500)


def theorem4_test_loss(a: np.ndarray, u: np.ndarray, gamma: float, lr: float, S: int) -> float:
    """L_test of Thm 4 in A's eigenbasis (a: eigenvalues, u: teacher in that basis), Gamma = gamma I,
    scalar lr, mu = 0; +inf where the denominators of Thm 4 say there is no stationary solution
    (K or G not positive, or 1 - (lr/S) Tr[A^2 K^-1 G^-1] <= 0)."""
    k = a + gamma
    if np.any(k <= 0):
        return np.inf
    g = 2 - lr * (k + a * a / (k * S))
    if np.any(g <= 0):
        return np.inf
    t = np.sum(a * a / (k * g))
    gap = 1 - lr / S * t
    if gap <= 0:
        return np.inf
    U = u * u
    base = np.sum(a * gamma ** 2 * U / k ** 2)            # Tr[A K^-2 Gamma^2 U]
    kappa = t / gap
    r = np.sum(a ** 3 * gamma ** 2 * U / (k ** 3 * g)) / gap
    return lr / (2 * S) * (base * kappa + r) + 0.5 * base


# --------------------------------------------------------------------------------------------
# Tail index of the 1-d Kesten recursion (docs/theory.md §6)

def kesten_moment(kappa: float, c: float, S: int) -> float:
    """E|1 - c X|^kappa, X ~ chi^2_S, by scipy.integrate.quad against scipy.stats.chi2's density,
    split at the kink X = 1/c and integrated to infinity."""
    import scipy.integrate
    import scipy.stats

    dist = scipy.stats.chi2(S)
    # in the log domain: (c x)^kappa overflows far in the tail where the density underflows.
    f = lambda x: np.exp(kappa * np.log(abs(1 - c * x)) + dist.logpdf(x)) if x != 1 / c else 0.0
    x0 = 1 / c
    opts = dict(epsabs=0.0, epsrel=1e-13, limit=500)
    left = scipy.integrate.quad(f, 0.0, x0, **opts)[0]
    # the right piece: up to a point well past both the chi^2 bulk and the kink, then the tail.
    mid = x0 + 50.0 + 10 * S
    right = scipy.integrate.quad(f, x0, mid, **opts)[0] + scipy.integrate.quad(f, mid, np.inf, **opts)[0]
    return left + right


def kesten_log_slope(c: float, S: int) -> float:
    """E log|1 - c X| (the Lyapunov exponent of the 1-d recursion), by quad."""
    import scipy.integrate
    import scipy.stats

    dist = scipy.stats.chi2(S)
    f = lambda x: np.log(abs(1 - c * x)) * dist.pdf(x)
    x0 = 1 / c
    opts = dict(epsabs=0.0, epsrel=1e-12, limit=500)
    return (scipy.integrate.quad(f, 0.0, x0, **opts)[0] + scipy.integrate.quad(f, x0, x0 + 100 + 10 * S, **opts)[0]
            + scipy.integrate.quad(f, x0 + 100 + 10 * S, np.inf, **opts)[0])


def kesten_tail_index(a: float, lr: float, S: int) -> float:
    """The kappa > 0 with E|1 - (lr/S) a chi^2_S|^kappa = 1, by brentq on log E|.|^kappa.

    log E|1 - cX|^kappa is convex in kappa, 0 at kappa = 0 with slope E log|1 - cX| < 0 (checked), so
    it has exactly one positive root; the bracket is found by doubling from kappa = 1/4."""
    c = lr * a / S
    if not kesten_log_slope(c, S) < 0:
        raise ValueError("E log|1 - cX| >= 0: no stationary law")
    g = lambda k: np.log(kesten_moment(k, c, S))
    lo, hi = 0.0, 0.25
    while g(hi) < 0:
        lo, hi = hi, 2 * hi
        if hi > 1e3:
            raise ValueError("tail index beyond 1e3")
    if lo == 0.0:
        lo = hi
        while g(lo) >= 0:  # descend into the negative region near 0
            lo *= 0.5
    return scipy.optimize.brentq(g, lo, hi, xtol=1e-300, rtol=1e-14, maxiter=200)


def theorem4_test_loss_grid(a: np.ndarray, u: np.ndarray, gammas: np.ndarray, lr: float, S: int) -> np.ndarray:
    """theorem4_test_loss for many gammas at once (same formula, vectorised over gamma)."""
    g = np.asarray(gammas, dtype=float)[:, None]
    k = a[None, :] + g
    with np.errstate(divide="ignore", invalid="ignore"):
        G = 2 - lr * (k + a * a / (k * S))
        t = np.sum(a * a / (k * G), axis=1)
        gap = 1 - lr / S * t
        U = u * u
        base = np.sum(a * g ** 2 * U / k ** 2, axis=1)
        r = np.sum(a ** 3 * g ** 2 * U / (k ** 3 * G), axis=1) / gap
        loss = lr / (2 * S) * (base * t / gap + r) + 0.5 * base
    ok = np.all(k > 0, axis=1) & np.all(G > 0, axis=1) & (gap > 0)
    return np.where(ok, loss, np.inf)
