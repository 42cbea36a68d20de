"""The noise toolkit (docs/theory.md §2) against numpy definitions: the streaming accumulator,
top eigenpairs, comparison metrics, gradient noise scales (McCandlish et al. 2018), the two-batch
estimator, the matrix-free operator, bad input, and the conventions page (docs/conventions.md)
executed as a doctest.

Every expected value comes from numpy on the definitions, never from the library's own output.
Tolerances are rounding bounds:

* covariances: entries of M2 and g g^T are sums of N products, each side accurate to about
  N eps max|M2| (gamma_N bound); two independent evaluations may differ by twice that. The test
  data have a mean of the order of the spread, so no more than a digit cancels.
* eigenpairs: a backward-stable eigensolver on a matrix known to within E has eigenvalue errors
  <= ||E||_2 + c n eps ||C|| (Weyl) and eigenvector angles <= that over the spectral gap
  (Davis-Kahan); we take ||E||_2 <= ||E||_F and c = 64.
* products C v: each entry is a sum over N and D terms; the budget is 4 (N + D) eps times the same
  sum with absolute values.
* statistical tests: z-scores within 5 (a false alarm about once in 3.5 million runs per check).
"""

from __future__ import annotations

import ctypes
import doctest
import gc
import threading
from pathlib import Path

import numpy as np
import pytest

import sgdnoise
from sgdnoise import _capi, _lib

EPS = np.finfo(np.float64).eps
DOCS = Path(__file__).resolve().parents[2] / "docs" / "conventions.md"


def factor(n: int, s: int, replacement: bool) -> float:
    """f of Prop 1."""
    if replacement:
        return 1.0 / s
    return 0.0 if s == n else (n - s) / (s * (n - 1))


def definition(g, s: int, replacement: bool):
    """C = f (M2 - g g^T) in float64 and its rounding bound 2 N eps f max|M2| (plus the centred
    form's own bound, which is smaller)."""
    g = np.asarray(g, dtype=np.float64)
    n = g.shape[0]
    mean = g.mean(axis=0)
    m2 = g.T @ g / n
    f = factor(n, s, replacement)
    return f * (m2 - np.outer(mean, mean)), 2 * n * EPS * f * np.abs(m2).max()


def gradients(rng, n: int, d: int, dtype=np.float64, mean_scale: float = 1.0) -> np.ndarray:
    mix = rng.standard_normal((d, d))
    return (rng.standard_normal((n, d)) @ mix + mean_scale * rng.uniform(-1, 1, d)).astype(dtype)


def random_chunks(rng, n: int):
    """Random split points of range(n) into chunks of at least one row."""
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, rng.integers(1, 8)), replace=False))
    return np.split(np.arange(n), cuts)


# --------------------------------------------------------------------------------------------
# NoiseAccumulator

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("replacement", [True, False])
def test_accumulator_random_chunkings_match_one_shot(rng, dtype, replacement):
    n, d = 300, 7
    g = gradients(rng, n, d, dtype)
    for _ in range(5):
        with sgdnoise.NoiseAccumulator(d) as acc:
            for idx in random_chunks(rng, n):
                acc.update(g[idx])
            assert acc.count == n
            for s in (1, 7, n):
                expected, tol = definition(g, s, replacement)  # float32 entries are exact in float64
                full = acc.covariance(s, replacement=replacement)
                np.testing.assert_allclose(full, expected, rtol=0, atol=2 * tol)
                assert np.array_equal(full, full.T)
                np.testing.assert_allclose(acc.covariance(s, replacement, kind="diag"), np.diag(expected),
                                           rtol=0, atol=2 * tol)
                assert abs(acc.covariance(s, replacement, kind="trace") - np.trace(expected)) <= 2 * d * tol
                oneshot = sgdnoise.noise_covariance(g, s, replacement=replacement)
                np.testing.assert_allclose(full, oneshot, rtol=0, atol=2 * tol)
            g64 = g.astype(np.float64)
            np.testing.assert_allclose(acc.mean, g64.mean(axis=0), rtol=0,
                                       atol=2 * n * EPS * np.abs(g64).max())


def test_accumulator_one_row_at_a_time_and_1d_rows(rng):
    n, d = 25, 4
    g = gradients(rng, n, d)
    acc = sgdnoise.NoiseAccumulator(d)
    for i in range(n):
        acc.update(g[i] if i % 2 else g[i:i + 1])  # (D,) and (1, D) both mean one gradient
    expected, tol = definition(g, 3, True)
    np.testing.assert_allclose(acc.covariance(3), expected, rtol=0, atol=2 * tol)
    acc.update(np.empty((0, d)))  # an empty chunk does nothing
    assert acc.count == n
    acc.close()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_accumulator_merge_shards_in_any_order(rng, dtype):
    n, d = 400, 5
    g = gradients(rng, n, d, dtype)
    shards = []
    for idx in random_chunks(rng, n):
        a = sgdnoise.NoiseAccumulator(d)
        for sub in np.array_split(idx, 2):
            a.update(g[sub])
        shards.append(a)
    order = rng.permutation(len(shards))
    total = sgdnoise.NoiseAccumulator(d)
    empty = sgdnoise.NoiseAccumulator(d)
    total.merge(empty)  # empty into empty
    assert total.count == 0
    for k in order:
        total.merge(shards[k])
        total.merge(empty)  # merging an empty accumulator changes nothing
    assert total.count == n
    for replacement in (True, False):
        expected, tol = definition(g, 9, replacement)
        np.testing.assert_allclose(total.covariance(9, replacement), expected, rtol=0, atol=2 * tol)
    # Into an empty accumulator: an exact copy.
    fresh = sgdnoise.NoiseAccumulator(d)
    fresh.merge(total)
    assert fresh.count == n
    assert np.array_equal(fresh.covariance(9), total.covariance(9))
    # With itself: every gradient counted twice (M2 - g g^T unchanged with replacement).
    total.merge(total)
    assert total.count == 2 * n
    expected, tol = definition(np.vstack([g, g]), 9, True)
    np.testing.assert_allclose(total.covariance(9), expected, rtol=0, atol=2 * tol)
    for a in shards + [total, empty, fresh]:
        a.close()


def test_accumulator_large_mean_no_cancellation():
    """Rows 1e6 + k/1024: exact in float64, and so is the centred scatter (integer arithmetic here).
    The uncentred M2 - g g^T would lose about eps 1e12 ~ 1e-4; Chan's update must not."""
    rng = np.random.default_rng(7)
    k = rng.integers(-1024, 1025, size=(500, 3))
    g = 1e6 + k / 1024
    n = k.shape[0]
    exact = (n * (k.T @ k) - np.outer(k.sum(0), k.sum(0))) / (n * n * 1024.0 ** 2)  # M2 - g g^T
    acc = sgdnoise.NoiseAccumulator(3)
    for idx in random_chunks(rng, n):
        acc.update(g[idx])
    np.testing.assert_allclose(acc.covariance(1), exact, rtol=1e-9, atol=0)


def test_accumulator_bad_input_and_lifecycle(rng):
    d = 3
    acc = sgdnoise.NoiseAccumulator(d)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="empty"):
        acc.covariance(1)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="empty"):
        _ = acc.mean
    acc.update([[1.0, 2, 3], [4, 5, 7]])
    before = acc.covariance(1)
    for bad in (np.nan, np.inf):
        with pytest.raises(sgdnoise.InvalidArgumentError, match="NaN"):
            acc.update([[0.0, bad, 0.0]])
    with pytest.raises(sgdnoise.InvalidArgumentError, match="too large"):
        acc.update([[1e300, 0, 0], [-1e300, 0, 0]])
    with pytest.raises(sgdnoise.InvalidArgumentError, match=r"shape \(n, 3\)"):
        acc.update(np.zeros((2, 4)))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="chunk"):
        acc.update([["a", "b", "c"]])
    assert acc.count == 2 and np.array_equal(acc.covariance(1), before)  # unchanged
    with pytest.raises(sgdnoise.InvalidArgumentError, match="batch_size"):
        acc.covariance(3, replacement=False)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="batch_size"):
        acc.covariance(0)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="kind"):
        acc.covariance(1, kind="eig")
    with pytest.raises(sgdnoise.InvalidArgumentError, match="dimension"):
        acc.merge(sgdnoise.NoiseAccumulator(4))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="NoiseAccumulator"):
        acc.merge(np.zeros((2, 3)))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="dim"):
        sgdnoise.NoiseAccumulator(0)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="dim"):
        sgdnoise.NoiseAccumulator(2.5)
    with pytest.raises(sgdnoise.OutOfMemoryError):
        sgdnoise.NoiseAccumulator(40_001)

    # close(): idempotent, then every use raises a clear error.
    assert "count=2" in repr(acc)
    acc.close()
    acc.close()
    assert acc.closed and "closed" in repr(acc)
    for use in (lambda: acc.update([[1.0, 2, 3]]), lambda: acc.covariance(1), lambda: acc.count,
                lambda: acc.mean, lambda: acc.merge(sgdnoise.NoiseAccumulator(d)),
                lambda: sgdnoise.NoiseAccumulator(d).merge(acc), lambda: sgdnoise.noise_scale(acc)):
        with pytest.raises(sgdnoise.InvalidArgumentError, match="closed"):
            use()
    with sgdnoise.NoiseAccumulator(d) as ctx:
        ctx.update([[1.0, 2, 3]])
    assert ctx.closed


def test_accumulator_finaliser_frees_unclosed_handles():
    acc = sgdnoise.NoiseAccumulator(5)
    acc.update(np.ones((3, 5)))
    finalizer = acc._finalizer
    assert finalizer.alive
    del acc
    gc.collect()
    assert not finalizer.alive


def test_accumulator_concurrent_updates_and_cross_merges(rng):
    """Updates on one accumulator from several threads are serialised; a.merge(b) and b.merge(a)
    at the same time do not deadlock."""
    n, d = 4000, 6
    g = gradients(rng, n, d)
    acc = sgdnoise.NoiseAccumulator(d)
    chunks = np.array_split(g, 40)
    threads = [threading.Thread(target=lambda c=c: acc.update(c)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected, tol = definition(g, 4, True)
    np.testing.assert_allclose(acc.covariance(4), expected, rtol=0, atol=2 * tol)
    a, b = sgdnoise.NoiseAccumulator(d), sgdnoise.NoiseAccumulator(d)
    a.update(g[:10])
    b.update(g[10:20])
    workers = [threading.Thread(target=lambda: [a.merge(b) for _ in range(20)]),
               threading.Thread(target=lambda: [b.merge(a) for _ in range(20)])]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in workers)


# --------------------------------------------------------------------------------------------
# noise_top_eigen

def check_top_eigen(values, vectors, g, s, replacement, k):
    c, tol = definition(g, s, replacement)
    w, v = np.linalg.eigh(c)
    w, v = w[::-1], v[:, ::-1]
    n, d = g.shape
    budget = d * tol + 64 * max(n, d) * EPS * np.linalg.norm(c)
    assert values.shape == (k,) and vectors.shape == (d, k)
    assert np.all(np.diff(values) <= 0)
    np.testing.assert_allclose(values, w[:k], rtol=0, atol=budget)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=0), 1, rtol=0, atol=16 * d * EPS)
    for j in range(k):
        gap = min(w[j - 1] - w[j] if j else np.inf, w[j] - w[j + 1])
        cos = abs(vectors[:, j] @ v[:, j])  # up to sign
        assert 1 - cos <= max((2 * budget / gap) ** 2, 16 * d * EPS), (j, cos, gap)
        assert np.linalg.norm(c @ vectors[:, j] - values[j] * vectors[:, j]) <= 2 * budget
        pivot = np.argmax(np.abs(vectors[:, j]))
        assert vectors[pivot, j] > 0  # the documented sign convention


@pytest.mark.parametrize("n, d, k", [(12, 40, 5), (30, 30, 4), (200, 9, 3), (50, 6, 5)])
@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_top_eigen_matches_dense_eigh(rng, n, d, k, replacement, dtype):
    # A mean ten times the spread: a Gram matrix of uncentred gradients would have a top eigenvalue
    # about N |mean|^2 / spread^2 ~ 100 N times too large, far outside the budget.
    g = gradients(rng, n, d, dtype, mean_scale=10.0)
    values, vectors = sgdnoise.noise_top_eigen(g, 3, k, replacement=replacement)
    check_top_eigen(values, vectors, g.astype(np.float64), 3, replacement, k)


def test_top_eigen_gram_mapping_is_checked(rng):
    """The N < D route against eigenvectors mapped by hand: v = G_c^T u / sqrt(mu) from numpy's
    eigh of the N x N Gram matrix; a mapping through uncentred G, or without the normalisation,
    would give other vectors (checked explicitly here)."""
    n, d = 8, 50
    g = gradients(rng, n, d, mean_scale=5.0)
    values, vectors = sgdnoise.noise_top_eigen(g, 2, 3)
    gc_ = g - g.mean(axis=0)
    mu, u = np.linalg.eigh(gc_ @ gc_.T)
    mu, u = mu[::-1][:3], u[:, ::-1][:, :3]
    mapped = gc_.T @ u / np.sqrt(mu)
    np.testing.assert_allclose(values, mu / (2 * n), rtol=1e-12)
    for j in range(3):
        assert abs(abs(mapped[:, j] @ vectors[:, j]) - 1) < 1e-10
    # The Gram matrix of uncentred gradients points its top eigenvector at the mean instead.
    _, u_raw = np.linalg.eigh(g @ g.T)
    wrong = g.T @ u_raw[:, -1]
    assert abs(wrong @ vectors[:, 0]) / np.linalg.norm(wrong) < 0.9


def test_top_eigen_bad_input(rng):
    g = gradients(rng, 6, 10)
    for k in (0, -1, 6, 11):
        with pytest.raises(sgdnoise.InvalidArgumentError, match="k"):
            sgdnoise.noise_top_eigen(g, 2, k)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="k"):
        sgdnoise.noise_top_eigen(g, 2, 2.0)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="zero"):
        sgdnoise.noise_top_eigen(g, 6, 1, replacement=False)
    rank2 = 3 + rng.standard_normal((9, 2)) @ rng.standard_normal((2, 12))
    sgdnoise.noise_top_eigen(rank2, 2, 2)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="numerical rank"):
        sgdnoise.noise_top_eigen(rank2, 2, 3)
    tall = np.c_[np.arange(20.0), 2 * np.arange(20.0), np.ones(20)]  # rank 1, dense route
    with pytest.raises(sgdnoise.InvalidArgumentError, match="numerical rank"):
        sgdnoise.noise_top_eigen(tall, 2, 2)
    bad = g.copy()
    bad[2, 3] = np.nan
    with pytest.raises(sgdnoise.InvalidArgumentError, match="grads"):
        sgdnoise.noise_top_eigen(bad, 2, 1)


# --------------------------------------------------------------------------------------------
# compare

def test_compare_known_pairs():
    q = np.diag([1.0, 2.0, 3.0])
    r = sgdnoise.compare(q, q, k=2)
    assert r == pytest.approx({"rel_frobenius": 0.0, "cosine": 1.0, "trace_ratio": 1.0, "overlap": 1.0},
                              abs=8 * EPS)
    r = sgdnoise.compare(2 * q, q)
    assert set(r) == {"rel_frobenius", "cosine", "trace_ratio"}
    assert r == pytest.approx({"rel_frobenius": 1.0, "cosine": 1.0, "trace_ratio": 2.0}, abs=8 * EPS)
    p = np.diag([3.0, 2.0, 1.0])
    expected = {"rel_frobenius": np.sqrt(8 / 14), "cosine": 10 / 14, "trace_ratio": 1.0}
    for k, overlap in ((1, 0.0), (2, 0.5), (3, 1.0)):
        assert sgdnoise.compare(p, q, k=k) == pytest.approx({**expected, "overlap": overlap}, abs=16 * EPS)
    # A rank-1 matrix rotated by theta: overlap and cosine cos^2 theta.
    theta = 0.3
    e = np.array([np.cos(theta), np.sin(theta)])
    r = sgdnoise.compare(np.outer(e, e), np.diag([1.0, 0.0]), k=1)
    assert r["overlap"] == pytest.approx(np.cos(theta) ** 2, abs=16 * EPS)
    assert r["cosine"] == pytest.approx(np.cos(theta) ** 2, abs=16 * EPS)
    # Random subspaces of R^D overlap k/D on average.
    rng = np.random.default_rng(3)
    d, k = 40, 4
    overlaps = []
    for _ in range(200):
        a, b = rng.standard_normal((2, d, d))
        overlaps.append(sgdnoise.compare(a @ a.T, b @ b.T, k=k)["overlap"])
    # overlap = (1/k) sum of k^2 squared cosines, each with variance O(1/D^2): standard error below.
    assert abs(np.mean(overlaps) - k / d) < 5 * np.std(overlaps) / np.sqrt(len(overlaps))
    # Scale-invariant, no overflow.
    assert sgdnoise.compare(1e300 * p, 1e300 * q)["cosine"] == pytest.approx(10 / 14, abs=16 * EPS)


def test_compare_against_numpy(rng, spd):
    p, q = spd(8), spd(8)
    r = sgdnoise.compare(p, q, k=3)
    up = np.linalg.eigh(p)[1][:, -3:]
    uq = np.linalg.eigh(q)[1][:, -3:]
    expected = {
        "rel_frobenius": np.linalg.norm(p - q) / np.linalg.norm(q),
        "cosine": np.sum(p * q) / (np.linalg.norm(p) * np.linalg.norm(q)),
        "trace_ratio": np.trace(p) / np.trace(q),
        "overlap": np.linalg.norm(up.T @ uq) ** 2 / 3,
    }
    assert r == pytest.approx(expected, rel=1e-12)


def test_compare_bad_input():
    q = np.diag([1.0, 2.0])
    with pytest.raises(sgdnoise.InvalidArgumentError, match="Q is zero"):
        sgdnoise.compare(q, np.zeros((2, 2)))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="Q must be 2 x 2"):
        sgdnoise.compare(q, np.eye(3))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="k"):
        sgdnoise.compare(q, q, k=3)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="k"):
        sgdnoise.compare(q, q, k=0)
    with pytest.raises(sgdnoise.NotSymmetricError, match="P"):
        sgdnoise.compare(np.array([[1.0, 2.0], [0.0, 1.0]]), q, k=1)
    sgdnoise.compare(np.array([[1.0, 2.0], [0.0, 1.0]]), q)  # any square matrices without k
    with pytest.raises(sgdnoise.InvalidArgumentError, match="P"):
        sgdnoise.compare(np.array([[np.nan, 0.0], [0.0, 1.0]]), q)


# --------------------------------------------------------------------------------------------
# Gradient noise scales

def direct_noise_scale(g, h=None):
    g = np.asarray(g, dtype=np.float64)
    mean = g.mean(axis=0)
    c = g - mean
    sigma = c.T @ c / g.shape[0]
    out = {"trace_sigma": np.trace(sigma), "grad_sq_norm": mean @ mean}
    out["b_simple"] = out["trace_sigma"] / out["grad_sq_norm"]
    if h is not None:
        out["trace_hessian_sigma"] = np.sum(h * sigma)
        out["grad_hessian_grad"] = mean @ h @ mean
        out["b_noise"] = out["trace_hessian_sigma"] / out["grad_hessian_grad"]
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_noise_scale_matches_numpy(rng, spd, dtype):
    n, d = 500, 6
    g = gradients(rng, n, d, dtype)
    h = spd(d)
    tol = 64 * n * EPS
    expected = direct_noise_scale(g)
    r = sgdnoise.noise_scale(g)
    assert r.b_noise is None and r.trace_hessian_sigma is None
    for key in ("b_simple", "trace_sigma", "grad_sq_norm"):
        assert getattr(r, key) == pytest.approx(expected[key], rel=tol), key
    expected = direct_noise_scale(g, h)
    r = sgdnoise.noise_scale(g, h)
    for key, value in expected.items():
        assert getattr(r, key) == pytest.approx(value, rel=tol), key
    # Sigma_1 is the noise covariance at S = 1 with replacement; H = I gives B_noise = B_simple.
    assert r.trace_sigma == pytest.approx(sgdnoise.noise_covariance(g, 1, kind="trace"), rel=tol)
    assert sgdnoise.noise_scale(g, np.eye(d)).b_noise == pytest.approx(r.b_simple, rel=tol)
    # The accumulator gives the same numbers.
    with sgdnoise.NoiseAccumulator(d) as acc:
        for chunk in np.array_split(g, 3):
            acc.update(chunk)
        ra = sgdnoise.noise_scale(acc, h)
    for key, value in expected.items():
        assert getattr(ra, key) == pytest.approx(value, rel=tol), key


@pytest.mark.parametrize("n, d", [(10, 30), (300, 8)])
def test_noise_scale_with_hvp_matches_dense_hessian(rng, spd, n, d):
    """Both hvp routes (N <= D: centred rows; N > D: eigenvectors of Sigma_1) and the accumulator
    route against the dense-Hessian numpy definition."""
    g = gradients(rng, n, d)
    h = spd(d, 0.1, 3.0)
    expected = direct_noise_scale(g, h)
    calls = []

    def hvp(v):
        calls.append(1)
        return h @ v

    r = sgdnoise.noise_scale(g, hvp=hvp)
    assert len(calls) == 1 + min(n, d)  # G^T H G, then one product per centred row or eigenvector
    for key, value in expected.items():
        assert getattr(r, key) == pytest.approx(value, rel=1e-10), key
    with sgdnoise.NoiseAccumulator(d) as acc:
        acc.update(g)
        ra = sgdnoise.noise_scale(acc, hvp=lambda v: h @ v)
    assert ra.b_noise == pytest.approx(expected["b_noise"], rel=1e-10)


def test_noise_scale_bad_input(rng):
    g = gradients(rng, 20, 3)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="not both"):
        sgdnoise.noise_scale(g, np.eye(3), hvp=lambda v: v)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="hvp"):
        sgdnoise.noise_scale(g, hvp=lambda v: v[:2])
    with pytest.raises(sgdnoise.InvalidArgumentError, match="hvp"):
        sgdnoise.noise_scale(g, hvp=lambda v: v * np.nan)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="callable"):
        sgdnoise.noise_scale(g, hvp=3)
    with pytest.raises(sgdnoise.NotSymmetricError, match="hessian"):
        sgdnoise.noise_scale(g, np.triu(np.ones((3, 3))))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="hessian"):
        sgdnoise.noise_scale(g, np.eye(4))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="empty"):
        sgdnoise.noise_scale(sgdnoise.NoiseAccumulator(3))
    assert sgdnoise.noise_scale(g - g.mean(axis=0)).b_simple > 1e10  # G ~ 0: B_simple huge or inf


def test_critical_batch_view():
    b = np.array([1.0, 10, 100, 1000, 0.5])
    np.testing.assert_allclose(sgdnoise.critical_batch_view(100, b), 1 / (1 + 100 / b), rtol=4 * EPS)
    assert sgdnoise.critical_batch_view(100, 100) == pytest.approx(0.5, abs=EPS)
    assert sgdnoise.critical_batch_view(0, [3, 4]).tolist() == [1.0, 1.0]
    assert sgdnoise.critical_batch_view(2.0, np.ones((2, 3))).shape == (2, 3)
    for bad_b, bad_sizes in ((-1, [1]), (np.nan, [1]), (1, [0]), (1, [np.inf]), (1, [])):
        with pytest.raises(sgdnoise.InvalidArgumentError):
            sgdnoise.critical_batch_view(bad_b, bad_sizes)


# --------------------------------------------------------------------------------------------
# The two-batch estimator

def test_two_batch_inverts_expectations_exactly():
    g2, tr = 0.37, 12.5
    r = sgdnoise.two_batch_noise_scale(g2 + tr / 8, g2 + tr / 256, 8, 256)
    assert r.grad_sq_norm == pytest.approx(g2, rel=1e-13)
    assert r.trace_sigma == pytest.approx(tr, rel=1e-13)
    assert r.b_simple == pytest.approx(tr / g2, rel=1e-12)
    assert r.b_noise is None


def test_two_batch_averages_numerator_and_denominator_before_dividing():
    small, big = np.array([3.0, 5.0, 4.5]), np.array([1.0, 1.2])
    r = sgdnoise.two_batch_noise_scale(small, big, 4, 32)
    g2 = (32 * big.mean() - 4 * small.mean()) / 28
    tr = (small.mean() - big.mean()) / (1 / 4 - 1 / 32)
    assert r.grad_sq_norm == pytest.approx(g2, rel=1e-13)
    assert r.trace_sigma == pytest.approx(tr, rel=1e-13)
    assert r.b_simple == pytest.approx(tr / g2, rel=1e-12)
    per_pair = [(small[i] - big[i]) / (1 / 4 - 1 / 32) / ((32 * big[i] - 4 * small[i]) / 28) for i in range(2)]
    assert r.b_simple != pytest.approx(np.mean(per_pair), rel=1e-3)  # not the mean of ratios


def test_two_batch_estimator_is_unbiased_on_synthetic_data():
    """Per-sample gradients of a finite dataset with known |G|^2 and Tr Sigma_1 (computed by numpy
    from the data); batches drawn with replacement. Each repetition gives one unbiased estimate of
    |G|^2 and of Tr Sigma_1; their means over R repetitions must be within 5 standard errors of the
    truth, and B_simple from the averaged numerator and denominator within 5 delta-method errors."""
    rng = np.random.default_rng(20181214)
    n, d, b_small, b_big, reps = 2000, 20, 4, 64, 4000
    data = rng.standard_normal((n, d)) * 2.0 + 0.3
    mean = data.mean(axis=0)
    true_g2 = mean @ mean
    true_tr = np.trace(np.cov(data, rowvar=False, bias=True))
    small = np.array([np.sum(data[rng.integers(0, n, b_small)].mean(axis=0) ** 2) for _ in range(reps)])
    big = np.array([np.sum(data[rng.integers(0, n, b_big)].mean(axis=0) ** 2) for _ in range(reps)])
    est_g2 = (b_big * big - b_small * small) / (b_big - b_small)          # per repetition
    est_tr = (small - big) / (1 / b_small - 1 / b_big)
    r = sgdnoise.two_batch_noise_scale(small, big, b_small, b_big)
    assert r.grad_sq_norm == pytest.approx(est_g2.mean(), rel=1e-10)
    assert r.trace_sigma == pytest.approx(est_tr.mean(), rel=1e-10)
    se_g2 = est_g2.std(ddof=1) / np.sqrt(reps)
    se_tr = est_tr.std(ddof=1) / np.sqrt(reps)
    assert abs(r.grad_sq_norm - true_g2) / se_g2 < 5, (r.grad_sq_norm, true_g2, se_g2)
    assert abs(r.trace_sigma - true_tr) / se_tr < 5, (r.trace_sigma, true_tr, se_tr)
    # Delta method for the ratio of the two means (covariance of the pair included).
    cov = np.cov(np.vstack([est_tr, est_g2])) / reps
    ratio = r.b_simple
    se_b = np.sqrt(cov[0, 0] / r.grad_sq_norm ** 2 + ratio ** 2 * cov[1, 1] / r.grad_sq_norm ** 2
                   - 2 * ratio * cov[0, 1] / r.grad_sq_norm ** 2)
    assert abs(ratio - true_tr / true_g2) / se_b < 5, (ratio, true_tr / true_g2, se_b)


def test_two_batch_bad_input():
    for args in (([], [1.0], 1, 2), ([1.0], [1.0], 2, 2), ([1.0], [1.0], 0, 2), ([-1.0], [1.0], 1, 2),
                 ([np.nan], [1.0], 1, 2), ([1.0], [1.0], 1.5, 2), ([[1.0]], [1.0], 1, 2)):
        with pytest.raises(sgdnoise.InvalidArgumentError):
            sgdnoise.two_batch_noise_scale(*args)


# --------------------------------------------------------------------------------------------
# The matrix-free noise operator

def reference_apply(g, s, replacement, v):
    """C v by its definition in float64 numpy, and a rounding budget covering both it and the
    library's evaluation: with y = G_c v evaluated as sum_j g_ij v_j - sum_j gbar_j v_j and
    G_c^T y as sum_i y_i g_ij - gbar_j sum_i y_i, every sum of K terms errs by at most gamma_K times
    the sum of the absolute terms, here |G|^T(|G||v| + |gbar||v|) + |gbar| 1^T(|G||v| + |gbar||v|)."""
    g = np.asarray(g, dtype=np.float64)
    n, d = g.shape
    f = factor(n, s, replacement)
    mean = g.mean(axis=0)
    c = g - mean
    value = f / n * (c.T @ (c @ v))
    a, av, am = np.abs(g), np.abs(v), np.abs(mean)
    row = a @ av + am @ av
    absolute = a.T @ row + am.reshape((-1,) + (1,) * (v.ndim - 1)) * row.sum(axis=0)
    return value, 4 * (n + d) * EPS * f / n * absolute


@pytest.mark.parametrize("n, d", [(40, 30), (9, 70_001), (64, 5000)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("replacement", [True, False])
def test_operator_products_trace_diagonal(rng, n, d, dtype, replacement):
    g = (rng.standard_normal((n, d)) + 2).astype(dtype)
    op = sgdnoise.noise_operator(g, 3, replacement=replacement)
    assert op.grads is g  # no copy
    assert op.shape == (d, d)
    v = rng.standard_normal(d)
    expected, bound = reference_apply(g, 3, replacement, v)
    got = op.matvec(v)
    assert got.shape == (d,)
    assert np.all(np.abs(got - expected) <= bound)
    np.testing.assert_array_equal(op @ v, got)
    block = rng.standard_normal((d, 3))
    expected, bound = reference_apply(g, 3, replacement, block)
    assert np.all(np.abs(op.matvec(block) - expected) <= bound)
    f = factor(n, 3, replacement)
    g64 = g.astype(np.float64)
    var = ((g64 - g64.mean(axis=0)) ** 2).sum(axis=0)
    diag_bound = f / n * (4 * (n + 4) * EPS * var + 4 * n * (n * EPS * np.abs(g64).max(axis=0)) ** 2)
    assert np.all(np.abs(op.diagonal() - f / n * var) <= diag_bound)
    assert abs(op.trace() - f / n * var.sum()) <= diag_bound.sum() + d * EPS * f / n * var.sum()


def test_operator_restrict_and_top_eigen(rng):
    n, d = 30, 3000
    g = rng.standard_normal((n, d)) + 1
    op = sgdnoise.noise_operator(g, 4, replacement=False)
    q, _ = np.linalg.qr(rng.standard_normal((d, 5)))
    f = factor(n, 4, False)
    mean = g.mean(axis=0)
    y = (g - mean) @ q
    expected = f / n * (y.T @ y)
    # Y = G_c Q errs entrywise by dy <= 4 D eps (|G||Q| + |gbar||Q|); Y^T Y by 2|Y|^T dy + gamma_N |Y|^T|Y|.
    dy = 4 * d * EPS * (np.abs(g) @ np.abs(q) + np.abs(mean) @ np.abs(q))
    bound = 2 * f / n * (2 * np.abs(y).T @ dy + 2 * n * EPS * np.abs(y).T @ np.abs(y))
    got = op.restrict(q)
    assert got.shape == (5, 5) and np.array_equal(got, got.T)
    assert np.all(np.abs(got - expected) <= bound)
    # The compression's eigenvalues interlace C's: below the largest.
    w, v = op.top_eigen(3)
    assert np.linalg.eigvalsh(got).max() <= w[0] * (1 + 1e-12)
    cv, bound = reference_apply(g, 4, False, v)
    assert np.linalg.norm(cv - v * w) <= 64 * d * EPS * w[0]
    # restrict on the top eigenvectors gives diag(w).
    np.testing.assert_allclose(op.restrict(v), np.diag(w), rtol=0, atol=64 * d * EPS * w[0])


def test_operator_as_linear_operator(rng):
    scipy_linalg = pytest.importorskip("scipy.sparse.linalg")
    g = rng.standard_normal((25, 400))
    op = sgdnoise.noise_operator(g, 5)
    w = scipy_linalg.eigsh(op.as_linear_operator(), k=2, which="LA", return_eigenvectors=False)
    c, tol = definition(g, 5, True)
    np.testing.assert_allclose(np.sort(w), np.linalg.eigvalsh(c)[-2:], rtol=1e-9)


def test_operator_bad_input(rng):
    g = rng.standard_normal((10, 20))
    op = sgdnoise.noise_operator(g, 2)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="v"):
        op.matvec(np.ones(19))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="v"):
        op.matvec(np.full(20, np.nan))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="v"):
        op.matvec(np.ones((20, 2, 2)))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="Q"):
        op.restrict(np.ones((19, 2)))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="Q"):
        op.restrict(np.ones(20))
    bad = g.copy()
    bad[0, 0] = np.inf
    with pytest.raises(sgdnoise.InvalidArgumentError, match="grads"):
        sgdnoise.noise_operator(bad, 2)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="batch_size"):
        sgdnoise.noise_operator(g, 11, replacement=False)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="batch_size"):
        sgdnoise.noise_operator(g, 0)
    with pytest.raises(sgdnoise.InvalidArgumentError, match="grads"):
        sgdnoise.noise_operator(np.ones(5), 1)
    # S = N without replacement: C = 0 exactly.
    assert not sgdnoise.noise_operator(g, 10, replacement=False).matvec(np.ones(20)).any()


# --------------------------------------------------------------------------------------------
# The C layer: NULL pointers, sizes, statuses and messages

def message() -> str:
    return _lib.lib.sgdnoise_last_error_message().decode()


def test_c_functions_reject_null_and_bad_sizes():
    c = _lib.lib
    g = np.ones((4, 3))
    out = np.full(9, -7.0)
    assert c.sgdnoise_noise_operator_apply(4, 3, None, None, 1, 0, 1, out.ctypes.data, out.ctypes.data) == 1
    assert "grads" in message()
    assert c.sgdnoise_noise_operator_apply(4, 3, g.ctypes.data, None, 1, 0, 1, None, out.ctypes.data) == 1
    assert "v" in message()
    assert c.sgdnoise_noise_operator_apply(0, 3, g.ctypes.data, None, 1, 0, 1, out.ctypes.data, out.ctypes.data) == 1
    assert c.sgdnoise_noise_operator_apply(4, 3, g.ctypes.data, None, 1, 9, 1, out.ctypes.data, out.ctypes.data) == 1
    assert "sampling" in message()
    assert c.sgdnoise_noise_top_eigen(4, 3, g.ctypes.data, 1, 0, 1, None, None) == 1
    assert "out_values" in message()
    assert c.sgdnoise_compare(3, None, out.ctypes.data, 0, ctypes.byref(_capi.sgdnoise_comparison())) == 1
    assert c.sgdnoise_two_batch_noise_scale(1, None, 1, out.ctypes.data, 1, 2,
                                            ctypes.byref(_capi.sgdnoise_noise_scales())) == 1
    assert c.sgdnoise_critical_batch_view(1.0, 0, out.ctypes.data, out.ctypes.data) == 1
    assert c.sgdnoise_gradient_mean(4, 3, g.ctypes.data, None) == 1
    assert np.all(out == -7.0)  # outputs untouched on failure
    handle = ctypes.c_void_p()
    assert c.sgdnoise_accumulator_create(-3, ctypes.byref(handle)) == 1 and handle.value is None
    assert c.sgdnoise_accumulator_update(None, 1, g.ctypes.data) == 1
    assert "accumulator" in message()
    assert c.sgdnoise_accumulator_merge(None, None) == 1
    count = _lib.c_ptrdiff(-1)
    assert c.sgdnoise_accumulator_count(None, ctypes.byref(count)) == 1 and count.value == -1
    c.sgdnoise_accumulator_free(None)  # ignored


# --------------------------------------------------------------------------------------------
# The conventions page

def test_conventions_page_worked_example_runs():
    assert DOCS.is_file(), DOCS
    result = doctest.testfile(str(DOCS), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 20
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {DOCS}"
