"""The Frequent Directions sketch of the noise (docs/theory.md §10) against the dense covariance:
the guarantee 0 ⪯ C − Ĉ ⪯ εI with ε = (f/N)Δ, the a-priori bound Δ ≤ tail_k/(ℓ + 1 − k) for every k,
eigenvalue interlacing, exact count/mean/trace, merges (also of shards from other processes),
exactness when ℓ covers the rank, serialization and refusals. Every check runs on every case; the
only allowances are for floating-point rounding (a few hundred ulps of ‖C‖)."""

from __future__ import annotations

import multiprocessing
import pickle
import struct

import numpy as np
import pytest
import scipy.linalg
import xxhash

import sgdnoise
from sgdnoise.errors import InvalidArgumentError
from test_state import refuses_every_flipped_byte, resealed_with

ROUNDING = 1e-11  # relative to ‖C‖₂: the allowance for floating-point rounding in the checks below


def gradients(n: int, d: int, seed: int, decay: float = 1.0, offset: float = 0.0, dtype=np.float64) -> np.ndarray:
    """Per-sample gradients with a power-law noise spectrum (scales ∝ (1 + j)^-decay) in a random basis."""
    rng = np.random.default_rng(seed)
    scales = 1.0 / (1.0 + np.arange(d)) ** decay
    g = rng.standard_normal((n, d)) * scales
    if d <= 400:
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        g = g @ q.T
    return (g + offset).astype(dtype)


def sketch_of(g: np.ndarray, rows: int, pieces: int = 5) -> sgdnoise.NoiseSketch:
    sk = sgdnoise.NoiseSketch(g.shape[1], rows)
    for chunk in np.array_split(g, pieces):
        sk.update(chunk)
    return sk


def exact(g: np.ndarray, batch: int, replacement: bool = True) -> tuple[np.ndarray, float]:
    """C by its definition (centred Gram, float64) and f/N."""
    g = g.astype(np.float64)
    n = g.shape[0]
    c = g - g.mean(axis=0)
    f = 1 / batch if replacement else (n - batch) / (batch * (n - 1))
    return f / n * (c.T @ c), f / n


def extreme_eigenvalues(a: np.ndarray, top: int) -> np.ndarray:
    """The ``top`` largest eigenvalues of a symmetric matrix, descending (LAPACK dsyevr on a subset)."""
    n = a.shape[0]
    top = min(top, n)
    return scipy.linalg.eigh(a, eigvals_only=True, subset_by_index=[n - top, n - 1])[::-1]


def check_guarantee(sk: sgdnoise.NoiseSketch, g: np.ndarray, batch: int, replacement: bool = True) -> dict:
    """Every promise of the sketch, against the dense C (the data are of full rank min(N - 1, D)).

    When D > N everything is checked in an orthonormal basis Q of the centred rows' span, which holds
    C's range and (as the centred rows and the fold's mean corrections span it) the sketch's rows:
    C and Ĉ vanish on its complement, so their extreme eigenvalues are those of QᵀCQ and QᵀĈQ."""
    g64 = g.astype(np.float64)
    n, d = g.shape
    centred = g64 - g64.mean(axis=0)
    f = 1 / batch if replacement else (n - batch) / (batch * (n - 1))
    q = np.linalg.qr(centred.T)[0] if d > n else np.eye(d)
    cq = centred @ q
    C = f / n * (cq.T @ cq)
    ell = sk.rows
    lam = extreme_eigenvalues(C, ell + 1)
    norm = lam[0]
    eps = sk.error_bound(batch, replacement)
    k = min(ell, n - 1, d)
    values, vectors = sk.top_eigen(k, batch, replacement)
    vq = q.T @ vectors
    np.testing.assert_allclose(np.linalg.norm(vq, axis=0), 1, rtol=1e-10)  # inside the span
    # Eigenvalue interlacing: λ_i(Ĉ) ≤ λ_i(C) ≤ λ_i(Ĉ) + ε.
    assert np.all(values <= lam[:k] + ROUNDING * norm), (values - lam[:k]).max()
    assert np.all(lam[:k] <= values + eps + ROUNDING * norm), (lam[:k] - values - eps).max()
    # Ĉ from all its nonzero eigenpairs: 0 ⪯ C − Ĉ ⪯ εI.
    c_hat = (vq * values) @ vq.T
    gap_max = extreme_eigenvalues(C - c_hat, 1)[0]
    gap_min = -extreme_eigenvalues(c_hat - C, 1)[0]
    assert gap_min >= -ROUNDING * norm, gap_min / norm
    assert gap_max <= eps + ROUNDING * norm, (gap_max, eps)
    # The a-priori bound: Δ ≤ Σ_{i>k} λ_i(S) / (ℓ + 1 − k) for every k ≤ ℓ (in units of C: times f/N).
    trace = np.trace(C)
    for kk in range(min(ell, len(lam) - 1) + 1):
        tail = trace - lam[:kk].sum()
        assert eps <= tail / (ell + 1 - kk) * (1 + 1e-12) + ROUNDING * norm, kk
    # Exact statistics.
    assert sk.count == n
    np.testing.assert_allclose(sk.mean, g64.mean(axis=0), rtol=1e-12, atol=1e-12 * np.abs(g64).max())
    np.testing.assert_allclose(sk.trace(batch, replacement), trace, rtol=1e-11)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=0), 1, rtol=1e-12)
    return dict(eps=eps, values=values, lam=lam, norm=norm)


@pytest.mark.parametrize("n, d, rows, decay, pieces", [
    (400, 60, 8, 1.0, 3),
    (1000, 150, 20, 0.5, 7),       # slow decay: large shrinkage
    (600, 300, 16, 2.0, 1),        # fast decay: tiny bound
    (97, 200, 30, 1.0, 4),         # N < D
    (2000, 40, 10, 0.0, 9),        # flat spectrum: the worst case for any sketch
    (50, 10, 3, 1.0, 50),          # one row at a time
])
def test_the_guarantee_holds_against_the_dense_covariance(n, d, rows, decay, pieces):
    g = gradients(n, d, seed=n + d, decay=decay)
    sk = sketch_of(g, rows, pieces)
    for batch, replacement in [(8, True), (8, False), (1, True)]:
        check_guarantee(sk, g, batch, replacement)


def test_the_guarantee_at_p_5000():
    g = gradients(1500, 5000, seed=7, decay=1.0, dtype=np.float32)
    sk = sketch_of(g, 48, pieces=6)
    r = check_guarantee(sk, g, 16)
    # On a 1/j² spectrum the sketch is sharp: the top eigenvalue to well within the bound.
    assert r["eps"] < 0.05 * r["lam"][0]


def test_a_large_mean_costs_no_accuracy():
    """Rows are centred fold by fold (pairwise update): an offset of 1e4 changes nothing but rounding."""
    g = gradients(800, 100, seed=3)
    plain = check_guarantee(sketch_of(g, 12), g, 4)
    shifted = check_guarantee(sketch_of(g + 1e4, 12), g + 1e4, 4)
    np.testing.assert_allclose(shifted["values"], plain["values"], rtol=1e-6)
    np.testing.assert_allclose(shifted["eps"], plain["eps"], rtol=1e-6, atol=1e-9 * plain["norm"])


def test_the_sketch_is_exact_when_its_rows_cover_the_rank():
    g = gradients(500, 12, seed=5)
    sk = sketch_of(g, 12, pieces=4)  # ℓ = D: nothing is ever shrunk
    C, _ = exact(g, 10)
    assert sk.error_bound(10) <= 1e-14 * np.abs(C).max()  # δ = λ_13 of rank-12 stacks: rounding only
    values, vectors = sk.top_eigen(12, 10)
    np.testing.assert_allclose((vectors * values) @ vectors.T, C, rtol=0, atol=1e-12 * np.abs(C).max())


def test_float32_chunks_give_the_widened_float64_result():
    g = gradients(300, 50, seed=9, dtype=np.float32)
    a = sketch_of(g, 10)
    b = sketch_of(g.astype(np.float64), 10)
    assert a.to_bytes() == b.to_bytes()


def test_merged_shards_keep_the_guarantee_for_the_union():
    g = gradients(1500, 120, seed=11, decay=0.8, offset=2.0)
    shards = [sketch_of(part, 14, pieces=2) for part in np.array_split(g, 5)]
    total = shards[0]
    for s in shards[1:]:
        total.merge(s)
    r = check_guarantee(total, g, 8)
    # The shrinkages add: the union's bound is at least each shard's own.
    assert r["eps"] > 0


def _shard_bytes(args):
    rows, ell = args
    sk = sgdnoise.NoiseSketch(rows.shape[1], ell)
    sk.update(rows)
    return sk.to_bytes()


def test_shards_from_other_processes_merge_with_the_guarantee():
    g = gradients(1200, 80, seed=12, decay=1.0, offset=-3.0)
    parts = np.array_split(g, 4)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        states = pool.map(_shard_bytes, [(p, 10) for p in parts])
    sketches = [sgdnoise.NoiseSketch.from_bytes(s) for s in states]
    local = [sgdnoise.NoiseSketch.from_bytes(_shard_bytes((p, 10))) for p in parts]
    # A tree merge, and the same merges done on local copies.
    sketches[0].merge(sketches[1])
    sketches[2].merge(sketches[3])
    sketches[0].merge(sketches[2])
    local[0].merge(local[1])
    local[2].merge(local[3])
    local[0].merge(local[2])
    # The same merges of the same shards, up to rounding: OpenBLAS may split a product's sums
    # differently with another thread count, so bytes can differ between processes.
    for batch in (8, 32):
        np.testing.assert_allclose(sketches[0].top_eigen(10, batch)[0], local[0].top_eigen(10, batch)[0], rtol=1e-10)
        assert sketches[0].error_bound(batch) == pytest.approx(local[0].error_bound(batch), rel=1e-9)
    check_guarantee(sketches[0], g, 8)


def test_the_state_follows_the_documented_layout_and_round_trips():
    g = gradients(200, 30, seed=13)
    sk = sketch_of(g, 6)
    data = sk.to_bytes()
    magic, version, kind, length = struct.unpack_from("<8sIIQ", data, 0)
    assert (magic, version, kind) == (b"SGDNSTAT", 1, 2)
    assert len(data) == 32 + 8 * (6 + 30 + 6 + 6 * 30) == 24 + length + 8
    assert struct.unpack_from("<Q", data, 24 + length)[0] == xxhash.xxh64(data[:-8]).intdigest()
    d, ell, n, live = struct.unpack_from("<QQQQ", data, 24)
    shrink, trace_s = struct.unpack_from("<dd", data, 56)
    assert (d, ell, n, live) == (30, 6, 200, 6)
    words = np.frombuffer(data, dtype="<f8", offset=72, count=30 + 6 + 180)
    mean, squares, rows = words[:30], words[30:36], words[36:].reshape(6, 30)
    np.testing.assert_array_equal(mean, sk.mean)
    np.testing.assert_allclose(np.sum(rows ** 2, axis=1), squares, rtol=1e-10)
    c, scale = exact(g, 5)
    np.testing.assert_allclose(trace_s * scale, np.trace(c), rtol=1e-12)
    assert shrink * scale == pytest.approx(sk.error_bound(5), rel=1e-15)
    for restored in (sgdnoise.NoiseSketch.from_bytes(data), pickle.loads(pickle.dumps(sk)), sk.copy()):
        assert restored.to_bytes() == data
        assert restored.rows == 6 and restored.dim == 30


def test_corrupt_and_foreign_states_are_refused():
    sk = sketch_of(gradients(100, 8, seed=14), 3)
    data = sk.to_bytes()
    refuses_every_flipped_byte(sgdnoise.NoiseSketch, data)
    with pytest.raises(InvalidArgumentError, match="noise accumulator"):
        sgdnoise.NoiseSketch.from_bytes(sgdnoise.NoiseAccumulator(8).to_bytes())
    with pytest.raises(InvalidArgumentError, match="noise sketch"):
        sgdnoise.NoiseAccumulator.from_bytes(data)

    for offset, fmt, value, message in [
        (32, "<Q", 5000, "number of rows"),            # ℓ beyond 4096
        (32, "<Q", 4, "does not have the size"),       # ℓ that does not fit the payload
        (48, "<Q", 4, "number of nonzero rows"),       # r > ℓ
        (56, "<d", -1.0, "negative"),                  # Δ < 0
        (72 + 8 * 8, "<d", -2.0, "row norms"),         # a negative squared norm
        (40, "<Q", 0, "counts no gradient"),           # N = 0 with a nonzero sketch
    ]:
        with pytest.raises(InvalidArgumentError, match=message):
            sgdnoise.NoiseSketch.from_bytes(resealed_with(data, offset, fmt, value))


def test_refusals_leave_the_sketch_unchanged():
    g = gradients(60, 5, seed=15)
    sk = sketch_of(g, 2)
    before = sk.to_bytes()
    bad = np.ones((7, 5))
    bad[3, 2] = np.nan
    with pytest.raises(InvalidArgumentError, match="NaN"):
        sk.update(bad)
    with pytest.raises(InvalidArgumentError, match="too large"):
        sk.update(np.full((2, 5), 1e160))
    with pytest.raises(InvalidArgumentError, match="shape"):
        sk.update(np.ones((2, 4)))
    assert sk.to_bytes() == before
    with pytest.raises(InvalidArgumentError, match="exceeds"):
        sk.top_eigen(3, 4)          # only ℓ = 2 rows
    with pytest.raises(InvalidArgumentError, match="rows"):
        sk.merge(sgdnoise.NoiseSketch(5, 3))
    with pytest.raises(InvalidArgumentError, match="empty"):
        sgdnoise.NoiseSketch(5, 2).top_eigen(1, 4)
    with pytest.raises(InvalidArgumentError, match="rows"):
        sgdnoise.NoiseSketch(5, 0)
    with pytest.raises(sgdnoise.OutOfMemoryError, match="rows"):
        sgdnoise.NoiseSketch(5, 5000)
