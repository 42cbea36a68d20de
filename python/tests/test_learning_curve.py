"""sgdnoise.learning_curve and sgdnoise.Schedule (docs/theory.md §9) through the C library.

The references are independent of the Swift recursion: the stationary closed forms of the model
functions, a dense numpy recursion of the 2D x 2D second moment of (e, m) written from the theory,
and Monte-Carlo SGD (sgdnoise.simulate).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import sgdnoise
from sgdnoise import InvalidArgumentError, Schedule, learning_curve


# --- (a) constant schedules converge to the stationary predictions --------------------------------------


@pytest.mark.parametrize("momentum", [0.0, 0.6])
def test_constant_schedule_converges_to_label_noise(momentum):
    spectrum = np.array([1.0, 0.5, 0.2, 0.05])
    lr, s, noise_var = 0.3, 4, 0.7
    p = sgdnoise.label_noise(spectrum, noise_var=noise_var, lr=lr, batch_size=s, momentum=momentum)
    t = 6000
    c = learning_curve("label_noise", Schedule(lr, s, momentum, steps=t), A=spectrum, noise_var=noise_var,
                       record=[t // 2, t])
    # The slowest mode relaxes in about 1/(lr a_min) steps: t is ~90 of them.
    assert c.moment_time < t / 50
    assert c.trace[-1] == pytest.approx(np.sum(p.sigma), rel=1e-8)
    assert c.train_loss[-1] == pytest.approx(p.train_loss, rel=1e-8)
    assert c.test_loss[-1] == pytest.approx(p.test_loss, rel=1e-8)
    np.testing.assert_allclose(c.sigma_diagonal[-1], p.sigma, rtol=1e-8)
    assert c.stationary_train_loss == pytest.approx(p.train_loss, rel=1e-12)
    assert c.unstable_from is None
    assert c.settled_at is not None and c.settled_at < t // 2


@pytest.mark.parametrize("model", ["l2", "l2_regularized"])
def test_constant_schedule_converges_to_l2_regularized_dense(model):
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    A = (q * np.array([1.0, 0.4, 0.1])) @ q.T
    A = 0.5 * (A + A.T)
    gamma = 0.05 * np.eye(3)        # commutes with A (the dense L2 recursion needs [A, Gamma] = 0)
    u = np.array([1.0, -2.0, 0.5])
    lr, s, mu = 0.2, 3, 0.5
    p = sgdnoise.l2_regularized(A, u, gamma, lr=lr, batch_size=s, momentum=mu)
    t = 8000
    c = learning_curve(model, Schedule(lr, s, mu, steps=t), A=A, u=u, weight_decay=gamma, record=[t])
    assert c.trace[-1] == pytest.approx(np.trace(p.sigma), rel=1e-8)
    assert c.train_loss[-1] == pytest.approx(p.train_loss, rel=1e-8)
    assert c.test_loss[-1] == pytest.approx(p.test_loss, rel=1e-8)
    np.testing.assert_allclose(c.sigma_diagonal[-1], np.diag(p.sigma), rtol=1e-8)
    np.testing.assert_allclose(c.mean[-1], p.mean, rtol=1e-8)


# --- (b) an independent brute-force recursion of the (e, m) second moment ---------------------------------


def brute_force(A, noise_fn, e0, lrs, sizes, momenta, record):
    """E[z] and E[z z^T] of z = (e, m) under SGD with momentum, as dense 2D x 2D matrices.

    m_{t+1} = mu m_t + g, e_{t+1} = e_t - lr m_{t+1}, g = A e_t + xi with E[xi] = 0 and
    Cov(xi) = noise_fn(M_ee, S) given the past (M_ee = E[e e^T], uncentred). So z_{t+1} = T z + b xi,
    T = [[I - lr A, -lr mu I], [A, mu I]], b = [-lr I; I].
    """
    d = A.shape[0]
    eye = np.eye(d)
    z = np.concatenate([e0, np.zeros(d)])
    Z = np.outer(z, z)
    out = {}
    if 0 in record:
        out[0] = (z[:d].copy(), Z[:d, :d].copy())
    for t, (lr, s, mu) in enumerate(zip(lrs, sizes, momenta), start=1):
        T = np.block([[eye - lr * A, -lr * mu * eye], [A, mu * eye]])
        b = np.vstack([-lr * eye, eye])
        C = noise_fn(Z[:d, :d], s)
        Z = T @ Z @ T.T + b @ C @ b.T
        z = T @ z
        if t in record:
            out[t] = (z[:d].copy(), Z[:d, :d].copy())
    return out


def schedule_with_changes(t):
    lrs = np.where(np.arange(t) < 30, 0.4, 0.1)
    lrs[45:50] = 0.0                                  # a pause: lr = 0 at some steps
    sizes = np.where(np.arange(t) < 50, 2, 5)
    momenta = np.where(np.arange(t) < 40, 0.6, 0.0)
    momenta[60:] = 0.3
    return lrs, sizes, momenta


def test_label_noise_matches_brute_force_second_moment_with_momentum_and_changes():
    A = np.array([[0.9, 0.3], [0.3, 0.4]])            # dense, not diagonal
    noise_var = 0.5
    e0 = np.array([1.5, -0.7])
    t = 120
    lrs, sizes, momenta = schedule_with_changes(t)
    record = [0, 1, 2, 29, 30, 31, 45, 50, 51, 60, 61, 90, 120]

    def label_noise_c(M, s):
        # Gaussian x: Cov(x x^T e) = A M A + Tr[A M] A (Isserlis), plus the label noise.
        return (A @ M @ A + np.trace(A @ M) * A + noise_var * A) / s

    ref = brute_force(A, label_noise_c, e0, lrs, sizes, momenta, set(record))
    c = learning_curve("label_noise", Schedule(lrs, sizes, momenta), A=A, noise_var=noise_var, w0=e0, record=record)
    np.testing.assert_array_equal(c.steps, record)
    for k, step in enumerate(record):
        mean, M = ref[step]
        sigma = M - np.outer(mean, mean)
        np.testing.assert_allclose(c.mean[k], mean, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(c.sigma_diagonal[k], np.diag(sigma), rtol=1e-9, atol=1e-13)
        assert c.trace[k] == pytest.approx(np.trace(sigma), rel=1e-9, abs=1e-13)
        assert c.test_loss[k] == pytest.approx(0.5 * np.trace(A @ M), rel=1e-10)
        assert c.train_loss[k] == pytest.approx(0.5 * (np.trace(A @ M) + noise_var), rel=1e-10)
    # The pause (lr = 0, mu = 0.6 -> 0 at 40): without momentum the moments stand still.
    i, j = record.index(45), record.index(50)
    np.testing.assert_allclose(c.mean[i], c.mean[j], rtol=1e-14)
    assert c.trace[i] == pytest.approx(c.trace[j], rel=1e-14)


def test_quadratic_matches_brute_force_with_non_commuting_noise():
    H = np.array([[1.0, 0.2], [0.2, 0.3]])
    C = np.array([[0.2, -0.15], [-0.15, 0.5]])        # does not commute with H
    e0 = np.array([-0.4, 2.0])
    ref_s = 2
    t = 100
    lrs, sizes, momenta = schedule_with_changes(t)
    record = list(range(0, t + 1, 7)) + [t]
    ref = brute_force(H, lambda M, s: (ref_s / s) * C, e0, lrs, sizes, momenta, set(record))
    c = learning_curve("quadratic", Schedule(lrs, sizes, momenta), hessian=H, noise=C, reference_batch_size=ref_s,
                       w0=e0, record=record)
    for k, step in enumerate(record):
        mean, M = ref[step]
        sigma = M - np.outer(mean, mean)
        np.testing.assert_allclose(c.mean[k], mean, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(c.sigma_diagonal[k], np.diag(sigma), rtol=1e-9, atol=1e-13)
        assert c.train_loss[k] == pytest.approx(0.5 * np.trace(H @ M), rel=1e-10)
        assert c.test_loss[k] == pytest.approx(0.5 * np.trace(H @ M), rel=1e-10)


# --- (c) late times against Monte-Carlo SGD at the final hyperparameters ----------------------------------


def test_step_decay_settles_where_monte_carlo_sgd_fluctuates():
    A = np.array([[1.0, 0.25], [0.25, 0.5]])
    noise_var = 1.0
    sched = Schedule.step_decay(0.5, factor=0.2, every=400, steps=1200, batch_size=2, momentum=0.3)
    c = learning_curve("label_noise", sched, A=A, noise_var=noise_var, w0=[2.0, -1.0], record=[1200])
    lr, s, mu = sched.lr[-1], int(sched.batch_size[-1]), sched.momentum[-1]
    assert c.settled_at is not None and 800 < c.settled_at < 1200
    sim = sgdnoise.simulate(A, noise_var=noise_var, lr=lr, batch_size=s, momentum=mu, steps=20000, burn_in=2000,
                            chains=8, seed=11)
    assert not sim.diverged
    z = (np.diag(sim.sigma) - c.sigma_diagonal[-1]) / np.diag(sim.sigma_stderr)
    assert np.all(np.abs(z) < 4.5), z
    # The stationary values it settles to are the closed form's; 400 updates after the last decay
    # the curve is within the tolerance of settled_at, not yet at them (moment_time ~ 44 updates).
    p = sgdnoise.label_noise(A, noise_var=noise_var, lr=lr, batch_size=s, momentum=mu)
    assert c.stationary_train_loss == pytest.approx(p.train_loss, rel=1e-12)
    assert c.train_loss[-1] == pytest.approx(p.train_loss, rel=c.tolerance)


@pytest.mark.parametrize("model", ["label_noise", "l2"])
def test_curve_against_monte_carlo_sgd_following_the_schedule_early_middle_late(model):
    """The C scheduled simulation (sgdnoise_simulation_run_schedule) with momentum, a warm-up, a
    step decay and a batch-size ramp, at early, middle and late steps (z < 4.5)."""
    A = np.array([[1.0, 0.25], [0.25, 0.5]])
    u = np.array([1.0, -0.5])
    base = Schedule.step_decay(0.6, factor=0.3, every=40, steps=110, momentum=0.4,
                               batch_size=Schedule.batch_size_ramp(0.1, 2, 2, at=[60], steps=110).batch_size)
    sched = Schedule.warmup(10, base)
    record = [0, 3, 10, 25, 50, 75, 120]
    w0 = np.array([2.0, -1.0])
    if model == "label_noise":
        curve = learning_curve(model, sched, A=A, noise_var=1.0, w0=w0, record=record)
        sim = sgdnoise.simulate_schedule(A, noise_var=1.0, schedule=sched, record=record, w0=w0, chains=8000, seed=5)
    else:
        gamma = 0.2 * np.eye(2)
        curve = learning_curve(model, sched, A=A, u=u, weight_decay=gamma, w0=w0, record=record)
        sim = sgdnoise.simulate_schedule(A, u=u, weight_decay=gamma, schedule=sched, record=record, w0=w0,
                                         chains=8000, seed=6)
    assert not sim.diverged and sim.chains_used == 8000
    np.testing.assert_allclose(sim.mean[0], w0, rtol=1e-14)  # (the simulator works in an eigenbasis)
    late = slice(1, None)  # at step 0 every chain is at w0: no spread
    for est, se, exact, what in [(sim.trace, sim.trace_stderr, curve.trace, "trace"),
                                 (sim.train_loss, sim.train_loss_stderr, curve.train_loss, "train_loss"),
                                 (sim.mean, sim.mean_stderr, curve.mean, "mean"),
                                 (np.diagonal(sim.sigma, axis1=1, axis2=2), np.diagonal(sim.sigma_stderr, axis1=1, axis2=2),
                                  curve.sigma_diagonal, "sigma")]:
        z = (est[late] - exact[late]) / se[late]
        assert np.all(np.abs(z) < 4.5), (what, z)


def test_simulate_schedule_rejects_a_single_chain():
    with pytest.raises(InvalidArgumentError, match="chains"):
        sgdnoise.simulate_schedule([1.0], noise_var=1.0, schedule=Schedule(0.1, 1, steps=3), chains=1, seed=1)


# --- instability -------------------------------------------------------------------------------------------


def test_unstable_from_names_the_first_update_beyond_the_critical_learning_rate():
    spectrum = np.array([1.0, 0.3])
    critical = sgdnoise.critical_learning_rate(spectrum, batch_size=2)
    lrs = np.full(50, 0.5 * critical)
    lrs[20:30] = 1.05 * critical                      # a stretch beyond lr*
    c = learning_curve("label_noise", Schedule(lrs, 2), A=spectrum, noise_var=1.0)
    assert c.unstable_from == 21
    assert c.trace[25] > c.trace[21]                  # the moments grow there
    assert learning_curve("label_noise", Schedule(0.5 * critical, 2, steps=50), A=spectrum,
                          noise_var=1.0).unstable_from is None


def test_input_and_high_dimensional_models_run_and_converge():
    A = np.array([1.0, 0.4])
    p = sgdnoise.input_noise(A, 0.1, [1.0, 2.0], lr=0.3, batch_size=3, noise_var=0.2)
    c = learning_curve("input_noise", Schedule(0.3, 3, steps=3000), A=A, B=0.1, u=[1.0, 2.0], noise_var=0.2,
                       record=[3000])
    assert c.train_loss[-1] == pytest.approx(p.train_loss, rel=1e-8)
    assert c.test_loss[-1] == pytest.approx(p.test_loss, rel=1e-8)
    h = sgdnoise.high_dimensional(A, alpha=2.0, noise_var=0.5, lr=0.3, batch_size=3)
    c = learning_curve("high_dimensional", Schedule(0.3, 3, steps=3000), A_hat=A, alpha=2.0, noise_var=0.5,
                       record=[3000])
    assert c.train_loss[-1] == pytest.approx(h.train_loss, rel=1e-8)


def test_steps_truncates_or_holds_the_last_hyperparameters_and_default_record():
    sched = Schedule([0.2, 0.1], 2)
    long = learning_curve("label_noise", sched, steps=300, A=[1.0], noise_var=1.0)
    explicit = learning_curve("label_noise", Schedule(np.r_[0.2, np.full(299, 0.1)], 2), A=[1.0], noise_var=1.0)
    np.testing.assert_array_equal(long.steps, [k * 300 // 100 for k in range(101)])
    np.testing.assert_allclose(long.trace, explicit.trace, rtol=0)
    short = learning_curve("label_noise", sched, steps=1, A=[1.0], noise_var=1.0)
    np.testing.assert_array_equal(short.steps, [0, 1])
    table = long.to_dict(moments=True)
    assert set(table) == {"step", "train_loss", "test_loss", "trace", "mean_0", "sigma_0"}
    assert all(len(v) == 101 for v in table.values())
    assert learning_curve("label_noise", sched, A=[1.0], noise_var=1.0, moments=False).mean is None


# --- schedule shapes: the formulas documented at Swift's Schedule.Shape ------------------------------------


def test_shapes_follow_the_documented_formulas():
    t = 23
    k = np.arange(t)
    np.testing.assert_allclose(Schedule.step_decay(0.3, 0.5, 4, steps=t).lr, [0.3 * 0.5 ** (i // 4) for i in k])
    np.testing.assert_allclose(Schedule.milestones(0.3, 0.1, [5, 12], steps=t).lr,
                               [0.3 * 0.1 ** sum(m <= i for m in (5, 12)) for i in k])
    np.testing.assert_allclose(Schedule.exponential(0.3, 0.9, steps=t).lr, [0.3 * 0.9 ** i for i in k])
    np.testing.assert_allclose(Schedule.cosine(0.3, 0.01, steps=t).lr,
                               [0.01 + 0.5 * 0.29 * (1 + math.cos(math.pi * i / t)) for i in k])
    w = Schedule.warmup(5, Schedule.cosine(0.3, steps=t - 5, batch_size=4, momentum=0.9))
    assert w.steps == t
    np.testing.assert_allclose(w.lr[:5], [0.3 * (i + 1) / 5 for i in range(5)])
    np.testing.assert_allclose(w.lr[5:], [0.5 * 0.3 * (1 + math.cos(math.pi * i / (t - 5))) for i in range(t - 5)])
    assert set(w.batch_size) == {4} and set(w.momentum) == {0.9}
    r = Schedule.batch_size_ramp(0.1, 2, 4, at=[3, 10], steps=t)
    np.testing.assert_array_equal(r.batch_size, [2 * 4 ** sum(m <= i for m in (3, 10)) for i in k])
    e = Schedule.batch_size_ramp(0.1, 1, 2, every=5, steps=t)
    np.testing.assert_array_equal(e.batch_size, [2 ** (i // 5) for i in k])
    c = Schedule.constant(0.1, 3, 0.5, steps=4)
    assert c == Schedule([0.1] * 4, [3] * 4, [0.5] * 4)
    assert not c.lr.flags.writeable


# --- (d) argument validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("build", [
    lambda: Schedule([0.1, 0.2], [1, 2, 3]),
    lambda: Schedule(0.1, 2),
    lambda: Schedule([0.1, 0.2], 2, steps=3),
    lambda: Schedule([], 2),
    lambda: Schedule(0.1, 2.5, steps=3),
    lambda: Schedule([[0.1]], 2),
    lambda: Schedule.batch_size_ramp(0.1, 2, 2, steps=5),
])
def test_bad_schedules_raise(build):
    with pytest.raises(InvalidArgumentError):
        build()


@pytest.mark.parametrize("schedule, name", [
    (Schedule([0.1, -0.1], 2), "learningRate"),
    (Schedule([0.1, math.nan], 2), "learningRate"),
    (Schedule(0.1, [2, 0]), "batchSize"),
    (Schedule(0.1, 2, [0.0, 1.0]), "momentum"),
])
def test_bad_schedule_values_are_rejected_by_the_library(schedule, name):
    with pytest.raises(InvalidArgumentError, match=name):
        learning_curve("label_noise", schedule, A=[1.0], noise_var=1.0)


@pytest.mark.parametrize("kwargs", [
    {"model": "nope", "A": [1.0], "noise_var": 1.0},
    {"model": "label_noise", "A": [1.0]},
    {"model": "label_noise", "A": [1.0], "noise_var": 1.0, "u": [1.0]},
    {"model": "label_noise", "A": [1.0], "noise_var": 1.0, "record": [0, 0]},
    {"model": "label_noise", "A": [1.0], "noise_var": 1.0, "record": [0, 11]},
    {"model": "label_noise", "A": [1.0], "noise_var": 1.0, "record": []},
    {"model": "label_noise", "A": [1.0], "noise_var": 1.0, "w0": [1.0, 2.0]},
    {"model": "label_noise", "A": [1.0], "noise_var": 1.0, "tolerance": 0.0},
    {"model": "label_noise", "A": [1.0], "noise_var": -1.0},
    {"model": "quadratic", "hessian": [1.0], "noise": [1.0], "reference_batch_size": 0},
    {"model": "label_noise", "A": [1.0], "noise_var": 1.0, "steps": 0},
])
def test_bad_arguments_raise_invalid_argument(kwargs):
    model = kwargs.pop("model")
    with pytest.raises(InvalidArgumentError):
        learning_curve(model, Schedule(0.1, 2, steps=10), **kwargs)


# --- (d) a finite dataset (docs/theory.md §4.1, §9) ------------------------------------------------------


def tiny_dataset(n=5, d=3, seed=21):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + 0.7 * rng.standard_normal(n)
    return X, y


def batches(n, s, replacement):
    """Every possible minibatch with its probability: N^S ordered draws, or C(N, S) subsets."""
    import itertools

    if replacement:
        draws = list(itertools.product(range(n), repeat=s))
    else:
        draws = list(itertools.combinations(range(n), s))
    return [(list(b), 1.0 / len(draws)) for b in draws]


def enumerated_moments(X, y, gamma, w0, sigma0, lrs, sizes, momenta, replacement, record):
    """E[z], E[z z^T] of z = (w, m) by averaging the exact affine update of every minibatch:
    g_B(w) = mean_{i in B} x_i (x_i^T w - y_i) + Gamma w, m' = mu m + g_B(w), w' = w - lr m',
    so z' = T_B z + c_B with B independent of z. Nothing of the theory's F, R or J is used."""
    n, d = X.shape
    eye = np.eye(d)
    z = np.concatenate([w0, np.zeros(d)])
    Z = np.outer(z, z)
    Z[:d, :d] += sigma0
    out = {0: (z[:d].copy(), Z[:d, :d] - np.outer(z[:d], z[:d]))} if 0 in record else {}
    cache = {}
    for t, (lr, s, mu) in enumerate(zip(lrs, sizes, momenta), start=1):
        if s not in cache:
            cache[s] = [(X[b].T @ X[b] / s, X[b].T @ y[b] / s, p) for b, p in batches(n, s, replacement)]
        z_new, Z_new = np.zeros(2 * d), np.zeros((2 * d, 2 * d))
        for a_b, xy_b, p in cache[s]:
            k = a_b + gamma
            T = np.block([[eye - lr * k, -lr * mu * eye], [k, mu * eye]])
            c = np.concatenate([lr * xy_b, -xy_b])
            z_new += p * (T @ z + c)
            Tz = T @ z
            Z_new += p * (T @ Z @ T.T + np.outer(Tz, c) + np.outer(c, Tz) + np.outer(c, c))
        z, Z = z_new, Z_new
        if t in record:
            out[t] = (z[:d].copy(), Z[:d, :d] - np.outer(z[:d], z[:d]))
    return out


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_finite_dataset_curve_matches_the_enumeration_of_every_minibatch(replacement, momentum):
    """N = 5, D = 3, S switching between 1 and 2, a learning-rate change, a start far from w*
    (the cross term J matters) and a random start with covariance sigma0."""
    X, y = tiny_dataset()
    gamma = np.diag([0.05, 0.0, 0.1])
    u = np.array([0.3, -0.2, 0.1])
    A = np.diag([1.0, 0.5, 0.8])
    t = 60
    lrs = np.where(np.arange(t) < 20, 0.25, 0.1)
    sizes = np.where(np.arange(t) < 35, 1, 2)
    momenta = np.full(t, momentum)
    w0 = np.array([1.5, -2.0, 0.7])
    q = np.random.default_rng(4).standard_normal((3, 3))
    sigma0 = 0.1 * q @ q.T
    record = [0, 1, 2, 5, 19, 20, 21, 34, 35, 36, 60]
    ref = enumerated_moments(X, y, gamma, w0, sigma0, lrs, sizes, momenta, replacement, set(record))
    c = learning_curve("finite_dataset", Schedule(lrs, sizes, momenta), X=X, y=y, replacement=replacement,
                       weight_decay=gamma, u=u, A=A, w0=w0, sigma0=sigma0, record=record)
    assert c.sigma.shape == (len(record), 3, 3)
    k_hat = X.T @ X / 5 + gamma
    for k, step in enumerate(record):
        mean, sigma = ref[step]
        M = sigma + np.outer(mean, mean)
        np.testing.assert_allclose(c.mean[k], mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(c.sigma[k], sigma, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(c.sigma_diagonal[k], np.diag(sigma), rtol=1e-9, atol=1e-12)
        train = 0.5 * np.trace(k_hat @ M) - mean @ (X.T @ y / 5) + 0.5 * np.mean(y * y)
        assert c.train_loss[k] == pytest.approx(train, rel=1e-9)
        test = 0.5 * (np.trace(A @ M) - 2 * u @ A @ mean + u @ A @ u)
        assert c.test_loss[k] == pytest.approx(test, rel=1e-9)


def test_finite_dataset_enumeration_needs_the_cross_term():
    """A control: the same recursion written without J(e) + J(e)^T (as at stationarity) is far from
    the enumeration in a transient from w0 != w*, so the check above can tell."""
    X, y = tiny_dataset()
    n, d = X.shape
    lr, s, t = 0.25, 1, 10
    w0 = np.array([1.5, -2.0, 0.7])
    ref = enumerated_moments(X, y, np.zeros((d, d)), w0, np.zeros((d, d)), [lr] * t, [s] * t, [0.0] * t, True, {t})
    a_hat = X.T @ X / n
    w_star = np.linalg.solve(a_hat, X.T @ y / n)
    r = X @ w_star - y
    zr = X * r[:, None]
    zr -= zr.mean(axis=0)
    R = zr.T @ zr / n
    e, M = w0 - w_star, np.outer(w0 - w_star, w0 - w_star)
    for _ in range(t):
        F = (X.T * np.einsum("ij,jk,ik->i", X, M, X)) @ X / n
        M = (np.eye(d) - lr * a_hat) @ M @ (np.eye(d) - lr * a_hat) + lr ** 2 / s * (F - a_hat @ M @ a_hat + R)
        e = e - lr * a_hat @ e
    wrong = M - np.outer(e, e)
    mean, sigma = ref[t]
    np.testing.assert_allclose(mean, e + w_star, rtol=1e-10)
    assert np.max(np.abs(wrong - sigma)) > 1e-3 * np.max(np.abs(sigma))
    c = learning_curve("finite_dataset", Schedule(lr, s, steps=t), X=X, y=y, w0=w0, record=[t])
    np.testing.assert_allclose(c.sigma[-1], sigma, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_finite_dataset_constant_schedule_converges_to_finite_dataset(replacement, momentum):
    X, y = tiny_dataset(n=9, d=3, seed=2)
    gamma = 0.05 * np.eye(3)
    lr, s = 0.2, 3
    p = sgdnoise.finite_dataset(X, y, lr, s, replacement=replacement, weight_decay=gamma, momentum=momentum,
                                u=np.zeros(3))
    t = 6000
    c = learning_curve("finite_dataset", Schedule(lr, s, momentum, steps=t), X=X, y=y, replacement=replacement,
                       weight_decay=gamma, u=np.zeros(3), w0=[1.0, -1.0, 2.0], record=[t])
    assert c.moment_time < t / 50
    np.testing.assert_allclose(c.sigma[-1], p.sigma, rtol=0, atol=1e-10 * np.max(np.abs(p.sigma)))
    np.testing.assert_allclose(c.mean[-1], p.mean, rtol=1e-10)
    assert c.train_loss[-1] == pytest.approx(p.train_loss, rel=1e-10)
    assert c.test_loss[-1] == pytest.approx(p.test_loss, rel=1e-10)
    assert c.stationary_train_loss == pytest.approx(p.train_loss, rel=1e-12)
    assert c.settled_at is not None and c.unstable_from is None


@pytest.mark.parametrize("replacement", [True, False])
def test_finite_dataset_curve_against_monte_carlo_sgd_following_the_schedule(replacement):
    """sgdnoise.simulate_schedule on the same dataset and schedule (momentum, a step decay and a
    batch-size change), z-scores of every entry of Sigma_t, the mean and the train loss at early,
    middle and late steps; the curve of a wrong schedule (the batch sizes halved) must fail."""
    X, y = tiny_dataset(n=8, d=2, seed=7)
    base = Schedule.step_decay(0.3, factor=0.3, every=40, steps=100, momentum=0.3,
                               batch_size=np.where(np.arange(100) < 50, 2, 4))
    record = [0, 2, 8, 25, 45, 60, 100]
    w0 = np.array([2.0, -1.5])
    curve = learning_curve("finite_dataset", base, X=X, y=y, replacement=replacement, w0=w0, record=record)
    sim = sgdnoise.simulate_schedule(X=X, y=y, replacement=replacement, schedule=base, record=record, w0=w0,
                                     chains=8000, seed=13)
    assert not sim.diverged and sim.chains_used == 8000
    late = slice(1, None)

    def worst(c):
        zs = []
        for est, se, exact in [(sim.trace, sim.trace_stderr, c.trace), (sim.train_loss, sim.train_loss_stderr, c.train_loss),
                               (sim.mean, sim.mean_stderr, c.mean), (sim.sigma, sim.sigma_stderr, c.sigma)]:
            zs.append(np.max(np.abs((est[late] - exact[late]) / se[late])))
        return max(zs)

    assert worst(curve) < 4.5
    wrong = Schedule(base.lr, np.maximum(base.batch_size // 2, 1), base.momentum)
    assert worst(learning_curve("finite_dataset", wrong, X=X, y=y, replacement=replacement, w0=w0,
                                record=record)) > 6


def test_finite_dataset_curve_refuses_bad_arguments():
    X, y = tiny_dataset()
    with pytest.raises(InvalidArgumentError, match="batch"):
        learning_curve("finite_dataset", Schedule(0.1, 6, steps=3), X=X, y=y, replacement=False)
    with pytest.raises(InvalidArgumentError, match="sigma0"):
        learning_curve("finite_dataset", Schedule(0.1, 1, steps=3), X=X, y=y, sigma0=-np.eye(3))
    c = learning_curve("finite_dataset", Schedule(0.1, 1, steps=3), X=X, y=y)
    assert np.all(np.isnan(c.test_loss)) and np.all(np.isfinite(c.train_loss))


# --- (e) a random start: w0 ~ (w0, sigma0), and the whole Sigma_t ------------------------------------------


def test_random_start_matches_brute_force_with_the_whole_sigma():
    A = np.array([[0.9, 0.3], [0.3, 0.4]])
    noise_var = 0.5
    e0 = np.array([1.5, -0.7])
    sigma0 = np.array([[0.3, -0.1], [-0.1, 0.2]])
    t = 120
    lrs, sizes, momenta = schedule_with_changes(t)
    record = [0, 1, 30, 51, 120]

    def label_noise_c(M, s):
        return (A @ M @ A + np.trace(A @ M) * A + noise_var * A) / s

    d = 2
    # brute_force starts at a point; a random start adds sigma0 to E[e e^T] at t = 0.
    z0 = np.concatenate([e0, np.zeros(d)])
    Z = np.outer(z0, z0)
    Z[:d, :d] += sigma0
    eye = np.eye(d)
    ref = {0: (e0, Z[:d, :d] - np.outer(e0, e0))}
    z = z0
    for step, (lr, s, mu) in enumerate(zip(lrs, sizes, momenta), start=1):
        T = np.block([[eye - lr * A, -lr * mu * eye], [A, mu * eye]])
        b = np.vstack([-lr * eye, eye])
        Z = T @ Z @ T.T + b @ label_noise_c(Z[:d, :d], s) @ b.T
        z = T @ z
        ref[step] = (z[:d].copy(), Z[:d, :d] - np.outer(z[:d], z[:d]))
    c = learning_curve("label_noise", Schedule(lrs, sizes, momenta), A=A, noise_var=noise_var, w0=e0, sigma0=sigma0,
                       record=record)
    assert c.sigma.shape == (len(record), 2, 2)
    for k, step in enumerate(record):
        mean, sigma = ref[step]
        np.testing.assert_allclose(c.mean[k], mean, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(c.sigma[k], sigma, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(c.sigma[0], sigma0, rtol=1e-13)


def curve_moments(c):
    """(E[w_t], E[w_t w_t^T]) of a curve with the whole Sigma_t."""
    return c.mean, c.sigma + np.einsum("ti,tj->tij", c.mean, c.mean)


@pytest.mark.parametrize("model", ["finite_dataset", "l2", "quadratic"])
def test_a_start_distribution_is_the_mixture_of_its_points(model):
    """Starting from w_a or w_b with probability 1/2 each (mean (w_a + w_b)/2, covariance
    (w_a - w_b)(w_a - w_b)^T/4) gives the average of the two point-start moments: the moments at t
    are linear in those of the start."""
    X, y = tiny_dataset(n=6, d=3, seed=9)
    args = {"finite_dataset": dict(X=X, y=y, replacement=False, weight_decay=0.02),
            "l2": dict(A=np.diag([1.0, 0.5, 0.2]), u=[1.0, 0.0, -1.0], weight_decay=[0.1, 0.0, 0.2]),
            "quadratic": dict(hessian=np.diag([1.0, 0.5, 0.2]) + 0.1, noise=np.eye(3) * 0.2)}[model]
    sched = Schedule(np.where(np.arange(50) < 20, 0.3, 0.1), 2, 0.3)
    wa, wb = np.array([1.0, -2.0, 0.5]), np.array([-0.5, 1.0, 2.0])
    ca = learning_curve(model, sched, w0=wa, record=[0, 7, 50], **args)
    cb = learning_curve(model, sched, w0=wb, record=[0, 7, 50], **args)
    mix = learning_curve(model, sched, w0=(wa + wb) / 2, sigma0=np.outer(wa - wb, wa - wb) / 4, record=[0, 7, 50],
                         **args)
    (ma, sa), (mb, sb), (mm, sm) = curve_moments(ca), curve_moments(cb), curve_moments(mix)
    np.testing.assert_allclose(mm, (ma + mb) / 2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sm, (sa + sb) / 2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mix.train_loss, (ca.train_loss + cb.train_loss) / 2, rtol=1e-10)


def test_spectra_take_the_diagonal_of_sigma0_and_report_no_dense_sigma():
    spectrum = np.array([1.0, 0.3])
    sched = Schedule(0.2, 2, steps=30)
    c = learning_curve("label_noise", sched, A=spectrum, noise_var=1.0, sigma0=[0.5, 0.1], record=[0, 30])
    dense = learning_curve("label_noise", sched, A=np.diag(spectrum), noise_var=1.0, sigma0=np.diag([0.5, 0.1]),
                           record=[0, 30])
    assert c.sigma is None and dense.sigma.shape == (2, 2, 2)
    np.testing.assert_allclose(c.sigma_diagonal, dense.sigma_diagonal, rtol=1e-12)
    np.testing.assert_allclose(c.sigma_diagonal[0], [0.5, 0.1])
    with pytest.raises(InvalidArgumentError, match="sigma0"):
        learning_curve("label_noise", sched, A=spectrum, noise_var=1.0, sigma0=[0.5, -0.1])


# --- (f) a general minimum (docs/theory.md §5) ---------------------------------------------------------------


def minimum_case(kind):
    """(model args, H = H0 + Gamma, noise_fn(M, S)) written from Cor 2 (w measured from w*)."""
    rng = np.random.default_rng(12)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    h0 = (q * np.array([1.2, 0.5, 0.1])) @ q.T
    h0 = 0.5 * (h0 + h0.T)
    if kind == "regularized":
        gamma = np.diag([0.2, 0.1, 0.3])                  # need not commute with H0
        w_star = np.array([0.5, -1.0, 0.8])
        gw = gamma @ w_star
        loss = 0.4
        c = 2 * loss * h0 - np.outer(gw, gw)
        return dict(hessian=h0, loss=loss, weight_decay=gamma, w_star=w_star), h0 + gamma, lambda M, s: c / s
    if kind == "non_interpolating":
        return dict(hessian=h0, loss=0.3), h0, lambda M, s: 2 * 0.3 * h0 / s
    return dict(hessian=h0, loss=0.0), h0, lambda M, s: (np.trace(h0 @ M) * h0 - h0 @ M @ h0) / s


@pytest.mark.parametrize("kind", ["regularized", "non_interpolating", "interpolating"])
def test_minimum_curve_matches_brute_force(kind):
    args, H, noise_fn = minimum_case(kind)
    t = 120
    lrs, sizes, momenta = schedule_with_changes(t)
    record = [0, 1, 29, 30, 50, 61, 120]
    e0 = np.array([1.0, -0.5, 0.8])
    ref = brute_force(H, noise_fn, e0, lrs, sizes, momenta, set(record))
    c = learning_curve("minimum", Schedule(lrs, sizes, momenta), w0=e0, record=record, **args)
    constant = args["loss"] + (0.5 * args["w_star"] @ args["weight_decay"] @ args["w_star"] if "w_star" in args else 0)
    for k, step in enumerate(record):
        mean, M = ref[step]
        np.testing.assert_allclose(c.mean[k], mean, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(c.sigma[k], M - np.outer(mean, mean), rtol=1e-9, atol=1e-13)
        assert c.train_loss[k] == pytest.approx(constant + 0.5 * np.trace(H @ M), rel=1e-10)
        assert c.test_loss[k] == pytest.approx(c.train_loss[k], rel=1e-14)


@pytest.mark.parametrize("kind", ["regularized", "non_interpolating", "interpolating"])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_minimum_constant_schedule_converges_to_minimum_fluctuation(kind, momentum):
    args, H, _ = minimum_case(kind)
    lr, s, t = 0.3, 4, 6000
    sigma, got_kind, critical = sgdnoise.minimum_fluctuation(
        args["hessian"], args["loss"], lr, s, args.get("weight_decay", 0.0), args.get("w_star"), momentum)
    assert got_kind == kind
    c = learning_curve("minimum", Schedule(lr, s, momentum, steps=t), w0=[1.0, -0.5, 0.8], record=[t], **args)
    np.testing.assert_allclose(c.sigma[-1], sigma, rtol=0, atol=1e-10 * max(np.max(np.abs(sigma)), 1e-3))
    assert c.stationary_train_loss == pytest.approx(c.train_loss[-1], rel=1e-9)
    if critical is not None:
        bad = learning_curve("minimum", Schedule(np.r_[np.full(5, lr), np.full(5, 1.01 * critical)], s, momentum),
                             w0=[1.0, -0.5, 0.8], **args)
        assert bad.unstable_from == 6


def test_every_critical_learning_rate_model_name_is_a_learning_curve_model():
    from sgdnoise import _lib, dynamics

    assert set(_lib.MODEL) <= set(dynamics._MODELS)


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_finite_dataset_moment_time_is_the_spectral_radius_of_the_enumerated_map(replacement, momentum):
    """moment_time = -1/ln rho with rho the spectral radius of the homogeneous second-moment map of
    (w, m), here the explicit average over every minibatch of T_B (x) T_B (eigenvalues by numpy)."""
    X, y = tiny_dataset()
    n, d = X.shape
    lr, s = 0.3, 2
    eye = np.eye(d)
    op = np.zeros((4 * d * d, 4 * d * d))
    for b, p in batches(n, s, replacement):
        k = X[b].T @ X[b] / s
        T = np.block([[eye - lr * k, -lr * momentum * eye], [k, momentum * eye]])
        op += p * np.kron(T, T)
    rho = np.max(np.abs(np.linalg.eigvals(op)))
    c = learning_curve("finite_dataset", Schedule(lr, s, momentum, steps=2), X=X, y=y, replacement=replacement)
    assert c.moment_time == pytest.approx(-1 / math.log(rho), rel=1e-8)


def test_finite_dataset_unstable_from_and_growth_beyond_the_dataset_critical_learning_rate():
    X, y = tiny_dataset(n=6, d=2, seed=1)
    crit = sgdnoise.critical_learning_rate_dataset(X, 2)
    c = learning_curve("finite_dataset", Schedule(np.r_[np.full(5, 0.5 * crit), np.full(20, 1.2 * crit)], 2), X=X, y=y)
    assert c.unstable_from == 6
    assert c.trace[25] > 100 * c.trace[10] > 100 * c.trace[5]
    assert c.stationary_train_loss is None and c.settled_at is None
