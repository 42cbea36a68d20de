"""sgdnoise in two minutes: measure the minibatch noise of SGD, then predict its fluctuation.

    make demo        (or: PYTHONPATH=python python3 examples/demo.py)

Part 1 measures the noise covariance C from per-sample gradients of a linear regression
[Prop 1]; part 2 solves the stationary equation [Thm 1] for the paper's 2-d example (Ziyin, Liu,
Mori, Ueda, ICLR 2022, Fig. 4b/4c) and shows what happens past the critical learning rate.
"""

import numpy as np

import sgdnoise


def show(title, m):
    """Print a matrix under a title, indented."""
    body = np.array2string(np.asarray(m), precision=5, suppress_small=True, floatmode="fixed")
    print(f"     {title}\n" + "\n".join("         " + line for line in body.splitlines()))


print(f"sgdnoise {sgdnoise.__version__}\n")

# --- Part 1: the noise, measured from per-sample gradients ---------------------------------------
print("1. Minibatch noise of linear regression (N = 2000 samples, D = 3, label noise σ = 0.5)")
rng = np.random.default_rng(0)
n, noise_sd = 2000, 0.5
A = np.array([[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.25]])   # input covariance
u = np.array([1.0, -1.0, 0.5])                                       # teacher
X = rng.multivariate_normal(np.zeros(3), A, size=n)
y = X @ u + noise_sd * rng.standard_normal(n)
w = np.linalg.lstsq(X, y, rcond=None)[0]       # the minimum of the training loss
grads = X * (X @ w - y)[:, None]               # ∇ℓ_i(w) for ℓ_i = ½ (wᵀx_i − y_i)²
print(f"   per-sample gradients at the least-squares minimum: shape {grads.shape}, "
      f"|mean| = {np.linalg.norm(grads.mean(0)):.1e}")
for s in (10, 100):
    with_r = sgdnoise.noise_covariance(grads, s, replacement=True)
    without = sgdnoise.noise_covariance(grads, s, replacement=False)
    print(f"\n   batch size S = {s}")
    show("with replacement, C = (1/S)(M2 − ḡḡᵀ):", with_r)
    show("without replacement, C = (N−S)/(S(N−1)) (M2 − ḡḡᵀ):", without)
    print(f"     trace ratio without/with = {np.trace(without) / np.trace(with_r):.4f}"
          f"  (= (N−S)/(N−1) = {(n - s) / (n - 1):.4f})")
print()
show("for comparison, the label-noise approximation σ²A/S at S = 10:", noise_sd**2 * A / 10)

# --- Part 2: the fluctuation, predicted ----------------------------------------------------------
print("\n2. Stationary fluctuation Σ of SGD, the paper's 2-d example")
H = np.diag([1.0, 0.5])                        # Hessian eigenvalues 1 and 0.5
lr, var = 1.5, 1.0
print(f"   H = diag(1, 0.5), λ = {lr}, noise C = (σ²/S) H with σ² = {var} "
      "(discrete-time Hessian approximation)")
for s in (50, 10):
    for mu in (0.0, 0.5):
        sigma = sgdnoise.stationary_covariance(H, var / s * H, lr, momentum=mu)
        print(f"\n   S = {s}, momentum μ = {mu}")
        show("Σ =", sigma)
        print(f"     eigenvalues of Σ: {np.array2string(np.linalg.eigvalsh(sigma), precision=5)}")
        if mu == 0.0:   # Liu et al. 2021's closed form, Σ = (λσ²/S)(2I − λH)⁻¹
            closed = lr * var / s * np.linalg.inv(2 * np.eye(2) - lr * H)
            print(f"     closed form (λσ²/S)(2I − λH)⁻¹ agrees to {np.abs(sigma - closed).max():.1e}")

print("\n   Past the critical learning rate there is no stationary distribution:")
for lr_big, mu in ((2.5, 0.0), (3.5, 0.5)):
    try:
        sgdnoise.stationary_covariance(H, H / 10, lr_big, momentum=mu)
    except sgdnoise.UnstableError as err:
        print(f"   λ = {lr_big}, μ = {mu}: UnstableError: {err}")
        print(f"     err.critical_learning_rate = {err.critical_learning_rate}"
              f"  (2(1+μ)/h_max = {2 * (1 + mu) / 1.0})")
