"""The Dask adapter (sgdnoise.dask) on a real dask.distributed LocalCluster of two worker
processes: the noise covariance, the noise scales and the Frequent Directions sketch of a dask array
of per-sample gradients against the single-process routes (the covariance by its definition in
numpy, sgdnoise.noise_covariance / noise_scale / NoiseAccumulator on all the rows in memory), for
uneven, single and many chunks, with and without replacement, float32 and float64; what travels
between the workers (states of the documented size, never rows); and the refusals.

The cluster is started once for the module; its workers are checked to be other processes that
load this checkout's package and library.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
from dask.array.core import PerformanceWarning  # noqa: E402

import sgdnoise  # noqa: E402
import sgdnoise.dask as sd  # noqa: E402
from sgdnoise.errors import InvalidArgumentError  # noqa: E402
from test_sketch import check_guarantee, exact, gradients  # noqa: E402


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes (1 thread each) and its client, the default scheduler
    for the module. Work stealing is off so that no chunk task is moved away from its data (the
    transfer test counts what travels); the workers load the library this process loaded."""
    env = {"SGDNOISE_LIBRARY": sgdnoise._lib.lib._name}
    with dask.config.set({"distributed.scheduler.work-stealing": False}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                           silence_logs=logging.ERROR, env=env)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def definition(g: np.ndarray, batch: int, replacement: bool = True) -> np.ndarray:
    """C = (f/N) Σ (g_i - ḡ)(g_i - ḡ)^T, in float64 numpy (test_sketch.exact)."""
    return exact(g, batch, replacement)[0]


def rows(n: int, d: int, seed: int, dtype=np.float64) -> np.ndarray:
    """Per-sample gradients with a large common mean (cancellation would show) and unequal scales."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * rng.uniform(0.1, 3.0, d) + rng.uniform(-6, 6, d)).astype(dtype)


def uneven(n: int, seed: int) -> tuple[int, ...]:
    """Row chunk sizes summing to n, of very different sizes, with an empty one and a single row."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(2, n - 1), size=6, replace=False))
    sizes = list(np.diff(np.concatenate([[0], cuts, [n]])))
    return tuple(int(s) for s in [1] + sizes[:3] + [0] + sizes[3:-1] + [sizes[-1] - 1])


# --- the cluster -----------------------------------------------------------------------------------

def _whoami() -> tuple[int, str, str]:
    import sgdnoise as s  # noqa: PLC0415 (runs on the worker)
    return os.getpid(), os.path.realpath(s.__file__), os.path.realpath(s._lib.lib._name)


def test_the_workers_are_other_processes_with_this_package_and_library(client):
    found = client.run(_whoami)
    assert len(found) == 2
    pids = {pid for pid, _, _ in found.values()}
    assert len(pids) == 2 and os.getpid() not in pids
    here = (os.path.realpath(sgdnoise.__file__), os.path.realpath(sgdnoise._lib.lib._name))
    assert {(f, lib) for _, f, lib in found.values()} == {here}


# --- the covariance --------------------------------------------------------------------------------

N, D, S = 1000, 7, 16


@pytest.mark.parametrize("chunks, split_every", [
    ("uneven", None),       # very different sizes, an empty chunk, a one-row chunk
    ("one", None),          # a single chunk: chunk + aggregate only
    ("many", 2),            # 50 chunks, a binary tree of 6 levels
    ("many", 7),
], ids=["uneven", "one-chunk", "many-binary", "many-7"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_the_covariance_equals_the_single_process_one(client, chunks, split_every, dtype):
    g = rows(N, D, seed=1, dtype=dtype)
    row_chunks = {"uneven": uneven(N, seed=2), "one": N, "many": 20}[chunks]
    x = da.from_array(g, chunks=(row_chunks, D))
    assert x.dtype == dtype
    for replacement in (True, False):
        C = sd.noise_covariance(x, S, replacement=replacement, split_every=split_every)
        exact = definition(g, S, replacement)
        one_shot = sgdnoise.noise_covariance(g, S, replacement=replacement)
        scale = np.abs(exact).max()
        assert C.shape == (D, D) and C.dtype == np.float64
        np.testing.assert_allclose(C, exact, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(C, one_shot, rtol=0, atol=1e-13 * scale)
    if chunks == "uneven":  # the other kinds (every chunking reduces the same state)
        np.testing.assert_allclose(sd.noise_covariance(x, S, kind="diag"), np.diag(definition(g, S)), rtol=1e-12)
        trace = sd.noise_covariance(x, S, replacement=False, kind="trace")
        assert isinstance(trace, float)
        np.testing.assert_allclose(trace, np.trace(definition(g, S, False)), rtol=1e-12)


def test_the_accumulator_is_that_of_all_rows_and_the_same_bytes_as_the_same_tree_of_merges_in_memory(client):
    """The merged state counts every row, has their mean, and is bit for bit the state of the same
    tree of merges done here (dask groups consecutive chunks by split_every, level by level): the
    workers do nothing else to the data."""
    g = rows(777, 5, seed=3, dtype=np.float32)
    sizes = uneven(777, seed=4)
    acc = sd.noise_accumulator(da.from_array(g, chunks=(sizes, 5)), split_every=3)
    assert acc.count == 777
    np.testing.assert_allclose(acc.mean, g.astype(np.float64).mean(axis=0), rtol=1e-13)
    states = []
    start = 0
    for size in sizes:
        s = sgdnoise.NoiseAccumulator(5)
        s.update(g[start:start + size])
        states.append(s)
        start += size
    while len(states) > 1:
        states = [_merged_in_order(states[i:i + 3]) for i in range(0, len(states), 3)]
    assert acc.to_bytes() == states[0].to_bytes()


def _merged_in_order(states):
    out = states[0].copy()
    for s in states[1:]:
        out.merge(s)
    return out


def test_rows_of_unknown_count_and_numpy_input(client):
    g = rows(600, 4, seed=5)
    x = da.from_array(g, chunks=(75, 4))
    keep = g[:, 0] > g[:, 0].mean()
    picked = x[x[:, 0] > x[:, 0].mean()]  # boolean indexing: row counts unknown until computed
    assert np.isnan(picked.shape[0])
    scale = np.abs(definition(g[keep], 8)).max()
    np.testing.assert_allclose(sd.noise_covariance(picked, 8), definition(g[keep], 8), rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(sd.noise_covariance(g, 8), definition(g, 8), rtol=0,
                               atol=1e-12 * np.abs(definition(g, 8)).max())


def test_column_chunks_are_joined_with_a_warning(client):
    g = rows(400, 9, seed=6)
    x = da.from_array(g, chunks=(50, 4))
    with pytest.warns(PerformanceWarning, match="chunked along its columns"):
        C = sd.noise_covariance(x, 4, replacement=False)
    np.testing.assert_allclose(C, definition(g, 4, False), rtol=0, atol=1e-12 * np.abs(C).max())


def _spy(install: bool) -> list[str]:
    """On a worker: record the C update functions the states call (install), or read and remove."""
    from sgdnoise import _state  # noqa: PLC0415
    cls = _state.MergeableState
    if install:
        calls: list[str] = []
        original = cls._fn

        def spying(self, name):
            if name.startswith("update"):
                calls.append(name)
            return original(self, name)
        cls._fn, cls._spy_calls, cls._spy_original = spying, calls, original
        return []
    calls = cls._spy_calls
    cls._fn = cls._spy_original
    del cls._spy_calls, cls._spy_original
    return list(calls)


def test_float32_chunks_reach_the_c_layer_as_float32(client):
    g32 = rows(300, 6, seed=7, dtype=np.float32)
    client.run(_spy, True)
    try:
        sd.noise_accumulator(da.from_array(g32, chunks=(100, 6)))
        sd.noise_accumulator(da.from_array(g32.astype(np.float64), chunks=(100, 6)))
    finally:
        seen = client.run(_spy, False)
    calls = sorted(c for worker in seen.values() for c in worker)
    assert calls == ["update"] * 3 + ["update_f32"] * 3


def _block(block_id, n, d):
    """Block i of the transfer test's gradients, made where its task runs (deterministic)."""
    return rows(n, d, seed=100 + block_id[0])


def _incoming(dask_worker) -> list[dict]:
    return [dict(entry["keys"]) for entry in dask_worker.transfer_incoming_log]


def test_only_states_travel_between_the_workers(client):
    """Rows made on the workers stay there; the merges move states, each of the documented size."""
    n, d, blocks = 400, 30, 8
    x = da.map_blocks(_block, n=n, d=d, chunks=((n,) * blocks, (d,)), dtype=np.float64)
    x = client.persist(x)
    distributed.wait(x)
    holders = {w for ws in client.who_has(x).values() for w in ws}
    assert len(holders) == 2, "the data must live on both workers for this test"
    before = client.run(_incoming)
    acc = sd.noise_accumulator(x, split_every=2)
    after = client.run(_incoming)
    moved = [entry for w in after for entry in after[w][len(before[w]):]]
    keys = {str(k): nbytes for entry in moved for k, nbytes in entry.items()}
    state_size = 32 + 8 * (2 + d + d * (d + 1) // 2)
    assert keys, "two workers hold the data: at least one state must have travelled"
    assert all("sgdnoise-accumulator" in k for k in keys), keys
    assert set(keys.values()) == {state_size}, keys
    g = np.concatenate([rows(n, d, seed=100 + i) for i in range(blocks)])
    assert acc.count == n * blocks
    np.testing.assert_allclose(acc.covariance(S), definition(g, S), rtol=0,
                               atol=1e-12 * np.abs(definition(g, S)).max())


# --- the noise scales ------------------------------------------------------------------------------

def test_the_noise_scales_equal_the_in_memory_ones(client, spd):
    g = rows(900, 6, seed=8) * 0.3
    x = da.from_array(g, chunks=(111, 6))
    h = spd(6)
    for kwargs in ({}, {"hessian": h}, {"hvp": lambda v: h @ v}):
        got = sd.noise_scale(x, **kwargs)
        want = sgdnoise.noise_scale(g, **kwargs)
        for field in ("b_simple", "b_noise", "trace_sigma", "grad_sq_norm", "trace_hessian_sigma",
                      "grad_hessian_grad"):
            a, b = getattr(got, field), getattr(want, field)
            assert (a is None) == (b is None), field
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=1e-11, err_msg=field)
    # Independently: B_simple = Tr Σ₁ / |G|², B_noise = Tr(HΣ₁) / GᵀHG.
    mean, centred = g.mean(axis=0), g - g.mean(axis=0)
    sigma = centred.T @ centred / g.shape[0]
    r = sd.noise_scale(x, hessian=h)
    np.testing.assert_allclose(r.b_simple, np.trace(sigma) / (mean @ mean), rtol=1e-12)
    np.testing.assert_allclose(r.b_noise, np.trace(h @ sigma) / (mean @ h @ mean), rtol=1e-11)


# --- the sketch ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, d, ell, chunk, dtype", [
    (1500, 120, 14, 200, np.float64),
    (900, 300, 20, 97, np.float32),     # uneven last chunk, float32
    (97, 200, 30, 40, np.float64),      # N < D
])
def test_the_sketch_keeps_its_guarantee_for_the_union(client, n, d, ell, chunk, dtype):
    g = gradients(n, d, seed=n + d, decay=0.8, offset=1.5, dtype=dtype)
    sk = sd.noise_sketch(da.from_array(g, chunks=(chunk, d)), ell, split_every=2)
    assert isinstance(sk, sgdnoise.NoiseSketch) and sk.rows == ell and sk.count == n
    for batch, replacement in [(8, True), (8, False)]:
        check_guarantee(sk, g, batch, replacement)
    # The same tree of merges in this process gives the same sketch, up to rounding (not bit for bit:
    # the workers run OpenBLAS on one thread, this process on several, and the folds use BLAS).
    states = []
    for start in range(0, n, chunk):
        s = sgdnoise.NoiseSketch(d, ell)
        s.update(g[start:start + chunk])
        states.append(s)
    while len(states) > 1:
        states = [_merged_in_order(states[i:i + 2]) for i in range(0, len(states), 2)]
    local = states[0]
    k = min(ell, n - 1)
    (values, vectors), (local_values, local_vectors) = sk.top_eigen(k, 8), local.top_eigen(k, 8)
    np.testing.assert_allclose(values, local_values, rtol=1e-9, atol=1e-11 * values[0])
    np.testing.assert_allclose(sk.error_bound(8), local.error_bound(8), rtol=1e-9, atol=1e-11 * values[0])
    assert sk.count == local.count
    np.testing.assert_allclose(sk.trace(8), local.trace(8), rtol=1e-12)


# --- refusals and edge cases -----------------------------------------------------------------------

def test_refusals(client):
    x = da.from_array(rows(50, 3, seed=9), chunks=(10, 3))
    for bad in (da.ones(5, chunks=2), da.ones((2, 2, 2), chunks=1), da.zeros((5, 0))):
        with pytest.raises(InvalidArgumentError, match="grads"):
            sd.noise_accumulator(bad)
    with pytest.raises(InvalidArgumentError, match="real"):
        sd.noise_accumulator(x.astype(np.complex128))
    for bad in (1, 0, 2.5, True):
        with pytest.raises(InvalidArgumentError, match="split_every"):
            sd.noise_accumulator(x, split_every=bad)
    with pytest.raises(InvalidArgumentError, match="kind"):
        sd.noise_covariance(x, 4, kind="spectrum")
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        sd.noise_covariance(x, 51, replacement=False)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        sd.noise_covariance(x, 0)
    with pytest.raises(InvalidArgumentError, match="either"):
        sd.noise_scale(x, np.eye(3), hvp=lambda v: v)
    with pytest.raises(InvalidArgumentError, match="rows"):
        sd.noise_sketch(x, 0)
    # A NaN met by a worker is raised here, as the library's own error.
    g = rows(50, 3, seed=9)
    g[37, 1] = np.nan
    with pytest.raises(InvalidArgumentError):
        sd.noise_covariance(da.from_array(g, chunks=(10, 3)), 4)


def test_no_rows(client):
    empty = da.zeros((0, 4), chunks=(1, 4))
    acc = sd.noise_accumulator(empty)
    assert acc.count == 0 and acc.dim == 4
    with pytest.raises(InvalidArgumentError):
        sd.noise_covariance(empty, 1)


def test_states_weigh_their_bytes_for_dask():
    from dask.sizeof import sizeof
    acc = sgdnoise.NoiseAccumulator(10)
    sk = sgdnoise.NoiseSketch(10, 3)
    assert sizeof(acc) == len(acc.to_bytes()) and sizeof(sk) == len(sk.to_bytes())
    acc.close()
    assert sizeof(acc) == 0


@pytest.mark.parametrize("chains, per_task", [(5, 1), (6, 4), (3, 3)])
def test_simulate_spreads_the_chains_and_is_bit_identical_to_one_process(client, chains, per_task):
    """Chains run as tasks on the worker processes; the pooled result equals sgdnoise.simulate's
    bit for bit (test_simulation_chains.py checks the building blocks for every kind of data)."""
    kw = dict(A=np.array([[1.0, 0.2], [0.2, 0.5]]), noise_var=1.0, lr=0.4, batch_size=3, momentum=0.2,
              steps=4000, seed=17)
    with distributed.get_task_stream(client) as stream:
        spread = sd.simulate(chains=chains, chains_per_task=per_task, **kw)
    whole = sgdnoise.simulate(chains=chains, **kw)
    for field in ("mean", "sigma", "sigma_stderr", "noise"):
        assert getattr(spread, field).tobytes() == getattr(whole, field).tobytes(), field
    for field in ("train_loss", "test_loss", "steps_completed", "diverged", "tail_order_statistics"):
        assert getattr(spread, field) == getattr(whole, field), field
    assert np.isnan(spread.tail_index) == np.isnan(whole.tail_index)
    assert np.isnan(whole.tail_index) or spread.tail_index == whole.tail_index
    # One task per group of chains, run by the cluster's workers. Failed tasks are left out: the
    # previous case's last call (seed=None, below) raises at its first failed task while its other
    # task may still fail on a worker after this case's task stream has started.
    tasks = [t for t in stream.data if "simulate_chains" in str(t["key"]) and "exception" not in t]
    assert len(tasks) == -(-chains // per_task)
    assert {t["worker"] for t in tasks} <= set(client.scheduler_info()["workers"])
    with pytest.raises(InvalidArgumentError, match="seed is required"):
        sd.simulate(chains=2, **{**kw, "seed": None})
