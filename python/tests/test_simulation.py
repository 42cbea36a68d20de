"""Monte-Carlo SGD against the exact predictions (z-scores on batch-means standard errors).

Every comparison runs well inside the stable region (λ ≈ 0.3–0.5 λ*), where the stationary law
has a light enough tail for sample variances to converge; each Σ entry must satisfy |z| < 4.5
(a few dozen entries are checked in all, so a correct library fails with probability ~1e-4), and
the seeds are fixed so the suite is deterministic.
"""

import numpy as np
import pytest

import sgdnoise

Z_MAX = 4.5


def assert_z(sim, sigma, label):
    z = (sim.sigma - sigma) / sim.sigma_stderr
    assert np.all(np.isfinite(z)), f"{label}: non-finite z"
    worst = float(np.max(np.abs(z)))
    assert worst < Z_MAX, f"{label}: max |z| = {worst:.2f}\nsim = {sim.sigma}\n± {sim.sigma_stderr}\ntheory = {sigma}"
    assert not sim.tail_unreliable, f"{label}: tail index {sim.tail_index} flags an unreliable variance"


A2 = np.array([[1.0, 0.3], [0.3, 0.5]])
LR_MATRIX = np.array([[0.8, -0.25], [-0.25, 0.5]])  # SPD, does not commute with A2


def test_label_noise_matrix_lr_momentum():
    assert np.linalg.norm(A2 @ LR_MATRIX - LR_MATRIX @ A2) > 0.1
    p0 = sgdnoise.label_noise(A2, 1.0, LR_MATRIX, 4, momentum=0.5)
    lr = 0.4 * p0.critical_learning_rate * LR_MATRIX
    p = sgdnoise.label_noise(A2, 1.0, lr, 4, momentum=0.5)
    sim = sgdnoise.simulate(A2, noise_var=1.0, lr=lr, batch_size=4, momentum=0.5, steps=300_000, chains=4, seed=11,
                            progress=False)
    assert_z(sim, p.sigma, "label noise, matrix lr, momentum")
    # The measured noise C: relative standard error of an average of n outer products ~ 2/sqrt(n).
    n = sim.steps_completed
    assert np.max(np.abs(sim.noise - p.noise) / np.sqrt(np.outer(np.diag(p.noise), np.diag(p.noise)))) < 10 / np.sqrt(n)


def test_input_noise():
    u = np.array([1.0, -0.5])
    b = np.array([[0.3, 0.05], [0.05, 0.2]])
    lr = 0.4 * sgdnoise.critical_learning_rate(A2 + b, 8)
    p = sgdnoise.input_noise(A2, b, u, lr, 8, noise_var=0.5)
    sim = sgdnoise.simulate(A2, u=u, noise_var=0.5, input_noise=b, lr=lr, batch_size=8, steps=300_000, chains=4,
                            seed=12, progress=False)
    assert_z(sim, p.sigma, "input noise")
    assert np.allclose(sim.mean, p.mean, atol=6 * np.sqrt(np.diag(p.sigma) / sim.steps_completed * 50))


def test_l2_regularized():
    u = np.array([1.0, 2.0])
    gamma = 0.2
    lr = 0.4 * sgdnoise.critical_learning_rate(A2, 2, model="l2_regularized", weight_decay=gamma)
    p = sgdnoise.l2_regularized(A2, u, gamma, lr, 2)
    sim = sgdnoise.simulate(A2, u=u, weight_decay=gamma, lr=lr, batch_size=2, steps=300_000, chains=4, seed=13,
                            progress=False)
    assert_z(sim, p.sigma, "L2")


@pytest.mark.parametrize("replacement", [True, False])
def test_finite_dataset(replacement):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 3)) * [1.0, 0.7, 0.4]
    y = x @ [1.0, -1.0, 0.5] + 0.5 * rng.standard_normal(40)
    lr = 0.4 * sgdnoise.critical_learning_rate_dataset(x, 5, replacement=replacement)
    p = sgdnoise.finite_dataset(x, y, lr, 5, replacement=replacement)
    sim = sgdnoise.simulate(X=x, y=y, lr=lr, batch_size=5, replacement=replacement, steps=300_000, chains=4, seed=14,
                            progress=False)
    assert_z(sim, p.sigma, f"finite dataset, replacement={replacement}")


def test_same_seed_same_numbers_on_any_thread_count():
    kw = dict(noise_var=1.0, lr=0.3, batch_size=4, steps=20_000, chains=5, seed=123, progress=False)
    runs = [sgdnoise.simulate(A2, threads=t, **kw) for t in (1, 2, 3)]
    for r in runs[1:]:
        assert np.array_equal(r.sigma, runs[0].sigma) and np.array_equal(r.mean, runs[0].mean)
        assert np.array_equal(r.sigma_stderr, runs[0].sigma_stderr) and r.tail_index == runs[0].tail_index
    other = sgdnoise.simulate(A2, threads=2, **(kw | {"seed": 124}))
    assert not np.array_equal(other.sigma, runs[0].sigma)


def test_above_critical_lr_variance_is_infinite_and_flagged():
    """Past λ* the second moments diverge, but the iterates need not: the stationary law becomes
    heavy-tailed with tail index below 2 (a Kesten recursion). The simulator must flag it."""
    lc = sgdnoise.critical_learning_rate(A2, 4)
    sim = sgdnoise.simulate(A2, noise_var=1.0, lr=1.5 * lc, batch_size=4, steps=200_000, chains=2, seed=3,
                            progress=False)
    assert sim.tail_unreliable and sim.tail_index < 2.5


def test_divergence_is_reported_not_raised():
    """Far beyond the edge of the deterministic dynamics (λ h_max > 2) the iterates explode: the
    run stops early and says so."""
    h_max = np.linalg.eigvalsh(A2).max()
    sim = sgdnoise.simulate(A2, noise_var=1.0, lr=3.0 / h_max, batch_size=4, steps=2_000_000, chains=2, seed=3,
                            progress=False)
    assert sim.diverged and sim.diverged_at_step is not None and sim.diverged_at_step < 10_000
    assert np.all(np.isnan(sim.sigma))


def test_cancellation_from_progress_callback():
    calls = []

    def progress(done, total):
        calls.append((done, total))
        return True  # stop at the first report

    sim = sgdnoise.simulate(np.ones(8), noise_var=1.0, lr=0.05, batch_size=8, steps=50_000_000, chains=2, seed=1,
                            progress=progress)
    assert sim.cancelled and calls
    assert calls[0][1] == 2 * (50_000_000 + 5_000_000)
    assert sim.steps_completed < 2 * 50_000_000


def test_exception_in_progress_callback_cancels_and_propagates():
    def progress(done, total):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        sgdnoise.simulate(np.ones(8), lr=0.05, batch_size=8, steps=50_000_000, seed=1, progress=progress)


def test_heavy_tail_near_critical_lr_is_flagged():
    """1-d, S = 10: at 0.97 λ* the exact (Kesten) tail index is below 4, so the variance estimate
    is flagged as unreliable; at 0.2 λ* it is far above 4 and not flagged."""
    lc = sgdnoise.critical_learning_rate([1.0], 10)
    assert sgdnoise.tail_index(1.0, 0.97 * lc, 10) < 4 < sgdnoise.tail_index(1.0, 0.2 * lc, 10)
    heavy = sgdnoise.simulate([1.0], noise_var=1.0, lr=0.97 * lc, batch_size=10, steps=400_000, chains=4, seed=2,
                              progress=False)
    light = sgdnoise.simulate([1.0], noise_var=1.0, lr=0.2 * lc, batch_size=10, steps=400_000, chains=4, seed=2,
                              progress=False)
    assert heavy.tail_unreliable and heavy.tail_index < 4
    assert not light.tail_unreliable and light.tail_index > 4


def test_bad_arguments():
    with pytest.raises(sgdnoise.InvalidArgumentError, match="A"):
        sgdnoise.simulate(lr=0.1, batch_size=1, steps=10)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="batch_size"):
        sgdnoise.simulate(X=np.ones((3, 2)), y=np.ones(3), lr=0.1, batch_size=5, replacement=False, steps=10)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="momentum"):
        sgdnoise.simulate(A2, lr=0.1, batch_size=1, momentum=1.0, steps=10)
    with pytest.raises(sgdnoise.NotPositiveDefiniteError):
        sgdnoise.simulate(A2, lr=-LR_MATRIX, batch_size=1, steps=10)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="seed"):
        sgdnoise.simulate(A2, lr=0.1, batch_size=1, steps=10, seed=-1)
