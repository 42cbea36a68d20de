"""noise_covariance against its definition [Prop 1] (docs/theory.md §2), computed with numpy.

    C = f (M2 - g g^T),  g = mean_i g_i,  M2 = (1/N) sum_i g_i g_i^T,
    f = 1/S with replacement, (N - S) / (S (N - 1)) without.

Tolerances are rounding-error bounds of the reference itself: every entry of M2 and g g^T is a sum
of N products, accurate to about N eps max|M2| in the worst case (gamma_N bound for a dot product),
so the two sides may differ by 2 N eps f max|M2|. The test data have a mean of the order of the
spread, so the subtraction M2 - g g^T cancels no more than a digit.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import sgdnoise

EPS = np.finfo(np.float64).eps


def sampling_factor(n: int, s: int, replacement: bool) -> float:
    """f of Prop 1 (0 at S = N without replacement, N = 1 included: C = 0 there)."""
    if replacement:
        return 1.0 / s
    return 0.0 if s == n else (n - s) / (s * (n - 1))


def definition(grads, s: int, replacement: bool) -> tuple[np.ndarray, float]:
    """C by the definition f (M2 - g g^T), in float64, and the worst-case error bound of this
    reference (2 N eps f max|M2|)."""
    g = np.asarray(grads, dtype=np.float64)
    n = g.shape[0]
    mean = g.mean(axis=0)
    m2 = g.T @ g / n
    f = sampling_factor(n, s, replacement)
    return f * (m2 - np.outer(mean, mean)), 2 * n * EPS * f * np.abs(m2).max()


def gradients(rng, n: int, d: int, dtype=np.float64) -> np.ndarray:
    """Correlated per-sample gradients with a mean of the order of their spread."""
    mix = rng.standard_normal((d, d))
    return (rng.standard_normal((n, d)) @ mix + rng.uniform(-1, 1, d)).astype(dtype)


SHAPES = [(1, 1), (7, 1), (1, 4), (50, 3), (5, 20), (1000, 17), (2000, 64)]


@pytest.mark.parametrize("n, d", SHAPES)
@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_full_matches_definition(rng, n, d, replacement, dtype):
    g = gradients(rng, n, d, dtype)
    for s in sorted({1, max(1, n // 3), n}):
        expected, tol = definition(g, s, replacement)  # float32 entries are exact in float64
        got = sgdnoise.noise_covariance(g, s, replacement=replacement)
        assert got.shape == (d, d) and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=0, atol=tol, err_msg=f"S = {s}")


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_diag_and_trace_match_definition(rng, replacement, dtype):
    n, d = 700, 23
    g = gradients(rng, n, d, dtype)
    for s in (1, 10, 699):
        expected, tol = definition(g, s, replacement)
        diag = sgdnoise.noise_covariance(g, s, replacement=replacement, kind="diag")
        trace = sgdnoise.noise_covariance(g, s, replacement=replacement, kind="trace")
        assert diag.shape == (d,) and diag.dtype == np.float64
        assert type(trace) is float
        np.testing.assert_allclose(diag, np.diag(expected), rtol=0, atol=tol)
        assert abs(trace - np.trace(expected)) <= d * tol


@pytest.mark.parametrize("kind", ["full", "diag", "trace"])
@pytest.mark.parametrize("n", [1, 2, 37])
def test_batch_of_all_samples_without_replacement_is_noiseless(rng, kind, n):
    g = gradients(rng, n, 4)
    got = sgdnoise.noise_covariance(g, n, replacement=False, kind=kind)
    assert np.all(np.asarray(got) == 0.0)


def test_single_sample_has_no_noise_with_replacement(rng):
    # N = 1: M2 = g g^T exactly, for every batch size.
    g = gradients(rng, 1, 5)
    for kind in ("full", "diag", "trace"):
        assert np.all(np.asarray(sgdnoise.noise_covariance(g, 3, kind=kind)) == 0.0)


def test_batch_of_one_is_the_same_with_and_without_replacement(rng):
    # f = 1 in both modes at S = 1.
    g = gradients(rng, 300, 6)
    np.testing.assert_array_equal(
        sgdnoise.noise_covariance(g, 1, replacement=True), sgdnoise.noise_covariance(g, 1, replacement=False))


@pytest.mark.parametrize("replacement", [True, False])
def test_definition_by_enumerating_every_minibatch(rng, replacement):
    """The covariance of the minibatch gradient over *all* minibatches, enumerated exactly: checks
    the meaning of C (and the factor f), not only the formula."""
    n, s, d = 6, 3, 3
    g = gradients(rng, n, d)
    if replacement:
        batches = list(itertools.product(range(n), repeat=s))  # N^S equally likely ordered draws
    else:
        batches = list(itertools.combinations(range(n), s))  # C(N, S) equally likely subsets
    means = np.array([g[list(b)].mean(axis=0) for b in batches])
    centred = means - g.mean(axis=0)
    expected = centred.T @ centred / len(batches)
    got = sgdnoise.noise_covariance(g, s, replacement=replacement)
    # Sums of at most N^S = 216 terms of size <= max|M2|: exact to 216 eps relative, say 1e-13.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13 * np.abs(g.T @ g / n).max())


def test_large_mean_does_not_cancel(rng):
    """A mean 1000 times the spread: the naive M2 - g g^T would lose 6 digits. Reference: two-pass
    in extended precision (np.longdouble, 64-bit mantissa on x86-64)."""
    n, d, offset = 1000, 5, 1e3
    g = rng.standard_normal((n, d)) + offset
    gl = g.astype(np.longdouble)
    centred = gl - gl.mean(axis=0)
    expected = np.asarray(centred.T @ centred / (n * 10), dtype=np.float64)
    got = sgdnoise.noise_covariance(g, 10)
    # Centring rounds each g_ij - mean_j with error eps |g_ij| ~ eps * offset * spread-scale,
    # first order in the scatter: 4 eps (max|g| / spread); plus the summation bound 2 N eps.
    tol = (4 * np.abs(g).max() / g.std(axis=0).min() + 2 * n) * EPS * np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol)
    assert (got.diagonal() > 0).all()


def test_full_result_is_exactly_symmetric_and_psd(rng):
    g = gradients(rng, 400, 30)
    c = sgdnoise.noise_covariance(g, 8)
    np.testing.assert_array_equal(c, c.T)
    assert np.linalg.eigvalsh(c).min() >= -30 * EPS * np.abs(c).max()


def test_rank_is_at_most_n_minus_one(rng):
    n, d = 5, 20
    g = gradients(rng, n, d)
    ev = np.linalg.eigvalsh(sgdnoise.noise_covariance(g, 2))
    # Eigenvalue errors of a symmetric eigensolver are ~ d eps |C|; the spectral gap is O(|C|).
    assert np.sum(ev > 1e-10 * ev.max()) == n - 1


def layouts(g: np.ndarray):
    """The same gradients in other memory layouts and Python containers."""
    n, d = g.shape
    big = np.zeros((2 * n, 3 * d), dtype=g.dtype)
    big[::2, ::3] = g
    yield "strided view", big[::2, ::3]
    yield "fortran order", np.asfortranarray(g)
    yield "transposed view", np.ascontiguousarray(g.T).T
    yield "list of lists", g.tolist()
    yield "tuple of tuples", tuple(map(tuple, g.tolist()))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_non_contiguous_and_list_inputs(rng, dtype):
    g = gradients(rng, 301, 9, dtype)
    expected, tol = definition(g, 5, False)
    for label, x in layouts(g):
        for kind, ref in (("full", expected), ("diag", np.diag(expected))):
            got = sgdnoise.noise_covariance(x, 5, replacement=False, kind=kind)
            np.testing.assert_allclose(got, ref, rtol=0, atol=tol, err_msg=f"{label}, {kind}")


def test_reversed_rows_are_the_same_samples(rng):
    g = gradients(rng, 500, 7)
    expected, tol = definition(g, 4, True)
    np.testing.assert_allclose(sgdnoise.noise_covariance(g[::-1], 4), expected, rtol=0, atol=tol)


def test_integer_gradients_and_numpy_integer_batch_size(rng):
    g = rng.integers(-5, 6, size=(200, 4))
    expected, tol = definition(g, 3, True)
    np.testing.assert_allclose(sgdnoise.noise_covariance(g, np.int64(3)), expected, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_input_is_not_modified(rng, dtype):
    g = gradients(rng, 100, 5, dtype)
    before = g.copy()
    sgdnoise.noise_covariance(g, 7)
    sgdnoise.noise_covariance(g, 7, kind="diag")
    np.testing.assert_array_equal(g, before)


def test_float32_path_equals_float64_path_on_the_same_values(rng):
    g32 = gradients(rng, 1500, 12, np.float32)
    got32 = sgdnoise.noise_covariance(g32, 16)
    got64 = sgdnoise.noise_covariance(g32.astype(np.float64), 16)
    _, tol = definition(g32, 16, True)
    np.testing.assert_allclose(got32, got64, rtol=0, atol=tol)
