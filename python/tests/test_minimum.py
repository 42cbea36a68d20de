"""Noise at a general minimum [Thm 5, Cor 2, Cor 3] — including the worked example of a two-layer
tanh network, whose per-sample gradients (hand-written backprop) and Hessian (central finite
differences of the exact full-batch gradient) are computed here, independently of the library."""

import numpy as np
import pytest
import scipy.optimize

import sgdnoise


# --- a two-layer tanh network f(x) = a · tanh(W x), loss ℓ_i = ½ (f(x_i) − y_i)² -------------

def unpack(theta, hidden, d):
    return theta[: hidden * d].reshape(hidden, d), theta[hidden * d:]


def per_sample_gradients(theta, x, y, hidden):
    w, a = unpack(theta, hidden, x.shape[1])
    h = np.tanh(x @ w.T)                    # (N, hidden)
    r = h @ a - y                           # residuals
    grad_a = r[:, None] * h                 # ∂ℓ_i/∂a
    grad_w = (r[:, None] * a[None, :] * (1 - h**2))[:, :, None] * x[:, None, :]  # ∂ℓ_i/∂W
    return np.concatenate([grad_w.reshape(len(x), -1), grad_a], axis=1), r


def loss_and_gradient(theta, x, y, hidden):
    g, r = per_sample_gradients(theta, x, y, hidden)
    return 0.5 * np.mean(r**2), g.mean(axis=0)


def hessian_fd(theta, x, y, hidden, step=1e-5):
    p = theta.size
    h = np.empty((p, p))
    for k in range(p):
        e = np.zeros(p)
        e[k] = step
        h[:, k] = (loss_and_gradient(theta + e, x, y, hidden)[1] - loss_and_gradient(theta - e, x, y, hidden)[1]) / (2 * step)
    return 0.5 * (h + h.T)


def train(x, y, hidden, seed):
    rng = np.random.default_rng(seed)
    theta0 = 0.5 * rng.standard_normal(hidden * x.shape[1] + hidden)
    res = scipy.optimize.minimize(loss_and_gradient, theta0, args=(x, y, hidden), jac=True, method="BFGS",
                                  options={"gtol": 1e-12, "maxiter": 20000})
    return res.x


def metrics(p, q):
    return (np.linalg.norm(p - q) / np.linalg.norm(q), np.sum(p * q) / (np.linalg.norm(p) * np.linalg.norm(q)),
            np.trace(p) / np.trace(q))


def test_worked_example_non_interpolating_minimum():
    """With label noise the trained network sits at a minimum with L₀ > 0: the measured minibatch
    noise matches Theorem 5's (2L₀/S)H₀ in shape and in scale, while the plain Hessian
    approximation C = H/S has the right shape but a scale off by 1/(2L₀)."""
    rng = np.random.default_rng(0)
    n, d, hidden, s = 4000, 3, 3, 16
    x = rng.standard_normal((n, d))
    teacher = np.tanh(x @ rng.standard_normal((2, d)).T) @ np.array([1.0, -0.7])
    y = teacher + 0.3 * rng.standard_normal(n)
    theta = train(x, y, hidden, seed=1)
    loss, grad = loss_and_gradient(theta, x, y, hidden)
    assert np.linalg.norm(grad) < 1e-7
    h0 = hessian_fd(theta, x, y, hidden)
    assert np.linalg.eigvalsh(h0).min() > -1e-6  # a minimum
    g, _ = per_sample_gradients(theta, x, y, hidden)
    measured = sgdnoise.noise_covariance(g, s)
    predicted, kind = sgdnoise.minimum_noise(0.5 * (h0 + h0.T), loss, s)
    assert kind == "non_interpolating"
    rel, cosine, trace_ratio = metrics(predicted, measured)
    assert cosine > 0.95 and rel < 0.35 and 0.8 < trace_ratio < 1.25, (rel, cosine, trace_ratio)
    _, cosine_h, trace_ratio_h = metrics(h0 / s, measured)
    assert cosine_h > 0.95 and trace_ratio_h > 1 / (2 * loss) * 0.7  # right shape, wrong scale


def test_worked_example_interpolating_minimum():
    """Without label noise an over-parameterised network interpolates (L₀ = 0): the measured noise
    vanishes at w*, as Corollary 2 says (C ∝ (Tr[H₀Σ] − H₀Σ)H₀ → 0 with Σ), while the Hessian
    approximation predicts noise of the size of H/S."""
    rng = np.random.default_rng(2)
    n, d, hidden, s = 6, 2, 4, 2
    x = rng.standard_normal((n, d))
    y = np.tanh(x @ rng.standard_normal((2, d)).T) @ np.array([1.0, 0.5])
    theta = train(x, y, hidden, seed=3)
    loss, _ = loss_and_gradient(theta, x, y, hidden)
    assert loss < 1e-18
    h0 = hessian_fd(theta, x, y, hidden)
    g, _ = per_sample_gradients(theta, x, y, hidden)
    measured = sgdnoise.noise_covariance(g, s)
    predicted, kind = sgdnoise.minimum_noise(0.5 * (h0 + h0.T), 0.0, s, sigma=np.zeros_like(h0))
    assert kind == "interpolating"
    scale = np.linalg.norm(h0 / s)
    assert np.linalg.norm(measured) < 1e-8 * scale and np.linalg.norm(predicted) == 0.0
    # A finite-difference Hessian carries round-off eigenvalues of either sign far above 16·D·ε:
    # the default flat tolerance refuses them by name, a tolerance at the difference scheme's
    # accuracy treats them as flat.
    values = np.linalg.eigvalsh(0.5 * (h0 + h0.T))
    assert values.min() < 0 and abs(values.min()) < 1e-6 * values.max()
    with pytest.raises(sgdnoise.InvalidArgumentError, match="hessian has the eigenvalue"):
        sgdnoise.minimum_fluctuation(0.5 * (h0 + h0.T), 0.0, 0.1, s)
    sigma, _, critical = sgdnoise.minimum_fluctuation(0.5 * (h0 + h0.T), 0.0, 0.1, s, flat_tolerance=1e-6)
    assert np.all(sigma == 0.0) and critical is not None and critical > 0


def test_regularized_formula_and_fluctuation():
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    h0 = (q * [2.0, 1.0, 0.5]) @ q.T
    h0 = 0.5 * (h0 + h0.T)
    w = np.array([1.0, -2.0, 0.5])
    gamma, loss, s, lr = 0.2, 0.3, 8, 0.4
    c, kind = sgdnoise.minimum_noise(h0, loss, s, weight_decay=gamma, w_star=w)
    expected = 2 * loss / s * h0 - np.outer(gamma * w, gamma * w) / s
    assert kind == "regularized"
    np.testing.assert_allclose(c, expected, rtol=1e-14, atol=1e-16)
    sigma, kind, critical = sgdnoise.minimum_fluctuation(h0, loss, lr, s, weight_decay=gamma, w_star=w, momentum=0.3)
    np.testing.assert_allclose(sigma, sgdnoise.stationary_covariance(h0 + gamma * np.eye(3), expected, lr, 0.3),
                               rtol=1e-13, atol=1e-16)
    assert critical is None  # H₀ may be indefinite at a regularised minimum: no edge is claimed


def test_singular_hessian_projects_onto_the_range():
    """Cor 3 with a flat direction: Σ is solved on the range of H₀ and is zero on its null space."""
    h = np.array([2.0, 1.0, 0.0])
    sigma, kind, _ = sgdnoise.minimum_fluctuation(h, 0.1, 0.5, 10)
    c = 2 * 0.1 / 10 * h
    np.testing.assert_allclose(sigma[:2], 0.5**2 * c[:2] / (0.5 * h[:2] * (2 - 0.5 * h[:2])), rtol=1e-14)
    assert sigma[2] == 0.0 and kind == "non_interpolating"
    dense, _, _ = sgdnoise.minimum_fluctuation(np.diag(h), 0.1, 0.5, 10)
    np.testing.assert_allclose(np.diag(dense), sigma, rtol=1e-13, atol=1e-17)


def test_errors():
    with pytest.raises(sgdnoise.InvalidArgumentError, match="sigma"):
        sgdnoise.minimum_noise(np.eye(2), 0.0, 4)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="w_star"):
        sgdnoise.minimum_noise(np.eye(2), 0.1, 4, weight_decay=0.1)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="loss"):
        sgdnoise.minimum_noise(np.eye(2), -1.0, 4)


@pytest.mark.parametrize("layout", ["dense", "diagonal"])
def test_thm5_noise_that_is_not_a_covariance_is_refused_with_the_reason(layout):
    """At a regularised minimum of a network H₀ = H − Γ is often indefinite, and (Γw*)(Γw*)ᵀ can
    outweigh (2L₀)H₀: the formula's C is then not a covariance, and neither C nor the Σ built on it
    may be returned as one."""
    def shaped(v):
        return np.diag(v) if layout == "dense" else np.asarray(v)

    gamma = shaped([0.1, 0.1])
    # H₀ indefinite (a direction the weight decay alone holds): C has a negative eigenvalue.
    with pytest.raises(sgdnoise.InvalidArgumentError, match="not a covariance") as info:
        sgdnoise.minimum_noise(shaped([2.0, -0.05]), 0.3, 4, weight_decay=gamma, w_star=[0.0, 1.0])
    assert "negative eigenvalue" in str(info.value) and "per-sample gradients" in str(info.value)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="not a covariance"):
        sgdnoise.minimum_fluctuation(shaped([2.0, -0.05]), 0.3, 0.1, 4, weight_decay=gamma, w_star=[0.0, 1.0])
    # H₀ positive definite but the weight-decay term dominates: 2·0.01·1 − 1² < 0 in direction 1.
    with pytest.raises(sgdnoise.InvalidArgumentError, match="not a covariance"):
        sgdnoise.minimum_noise(shaped([1.0, 1.0]), 0.01, 1, weight_decay=shaped([1.0, 1.0]), w_star=[1.0, 0.0])
    # The same formula where it is a covariance is returned unchanged: C = (2L/S)H₀ − (Γw)(Γw)ᵀ/S.
    c, kind = sgdnoise.minimum_noise(shaped([1.0, 1.0]), 1.0, 2, weight_decay=gamma, w_star=[1.0, 0.0])
    assert kind == "regularized"
    np.testing.assert_allclose(np.diag(c) if c.ndim == 2 else c, [(2 * 1.0 - 0.01) / 2, 1.0], rtol=1e-15)


def test_flat_tolerance_is_the_same_default_everywhere():
    """One flat tolerance: a round-off eigenvalue of −1e−15 next to 1 (below 16·D·ε ≈ 1.1e−14) is
    flat for stationary_covariance, minimum_noise and minimum_fluctuation alike; −1e−9 is refused
    by all three unless the caller passes a tolerance above it."""
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    for tiny, accepted in ((-1e-15, True), (-1e-9, False)):
        h = (q * [1.0, 0.5, tiny]) @ q.T
        h = 0.5 * (h + h.T)
        calls = [
            lambda **k: sgdnoise.stationary_covariance(h, 0.01 * np.eye(3), 0.1, **k),
            lambda **k: sgdnoise.minimum_noise(h, 0.1, 4, **k),
            lambda **k: sgdnoise.minimum_fluctuation(h, 0.1, 0.1, 4, **k),
        ]
        for call in calls:
            if accepted:
                call()
            else:
                with pytest.raises(sgdnoise.SGDNoiseError):
                    call()
                call(flat_tolerance=1e-8)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_non_interpolating_critical_learning_rate_is_the_multiplicative_edge(momentum):
    """Near a minimum the noise is C(Σ) = (1/S)(Tr[H₀Σ]H₀ − H₀ΣH₀) + (2L₀/S)H₀ (docs/theory.md §8):
    stationary iff (1/S) Σ_i φ(λh_i) < 1 with φ(m) = m/((1−μ)(2 − m/(1+μ)) + m/S). The root is found
    here with scipy's brentq; the library reports it and refuses learning rates past it, although
    the constant part alone would allow up to 2(1+μ)/h_max (several times more with momentum)."""
    h = np.array([3.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.2, 0.1])
    s = 4

    def excess(lr):
        m = lr * h
        return np.sum(m / ((1 - momentum) * (2 - m / (1 + momentum)) + m / s)) / s - 1

    expected = scipy.optimize.brentq(excess, 1e-9, 2 * (1 + momentum) / h.max() * (1 - 1e-12), xtol=1e-15)
    _, kind, critical = sgdnoise.minimum_fluctuation(h, 0.1, 0.5 * expected, s, momentum=momentum)
    assert kind == "non_interpolating"
    assert critical == pytest.approx(expected, rel=1e-10)
    assert critical < (0.8 if momentum == 0 else 0.5) * 2 * (1 + momentum) / h.max()
    sgdnoise.minimum_fluctuation(np.diag(h), 0.1, expected * (1 - 1e-6), s, momentum=momentum)
    with pytest.raises(sgdnoise.UnstableError) as info:
        sgdnoise.minimum_fluctuation(np.diag(h), 0.1, expected * (1 + 1e-6), s, momentum=momentum)
    assert info.value.critical_learning_rate == pytest.approx(expected, rel=1e-10)
