"""sgdnoise.torch.all_reduce_noise on a real torch.distributed group: two local processes
(torch.multiprocessing.spawn) with the gloo backend, rendezvous through a file. Each rank
accumulates its own shard of per-sample gradients (an accumulator and a Frequent Directions sketch);
after the all-reduce both ranks hold the same bytes, and the result is that of all the rows in one
process: the covariance by its definition in numpy and sgdnoise's own single-process accumulator
(within rounding), the sketch's guarantee against the dense covariance, and the sketch merged here
in rank order. Mismatched or missing states raise the same error on every rank (none hangs)."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

import sgdnoise  # noqa: E402
import sgdnoise.torch as st  # noqa: E402
from sgdnoise.errors import InvalidArgumentError  # noqa: E402
from test_sketch import check_guarantee, exact, gradients  # noqa: E402

WORLD = 2
N, D, ELL, S = 1100, 40, 12, 16
CUT = 397  # rank 0 holds rows [0, CUT), rank 1 the rest: unequal shards


def all_rows(dtype=np.float64) -> np.ndarray:
    """The gradients of every rank (each rank makes them and keeps its shard)."""
    return gradients(N, D, seed=21, decay=0.7, offset=-2.5, dtype=dtype)


def shard(rank: int, dtype=np.float64) -> np.ndarray:
    g = all_rows(dtype)
    return g[:CUT] if rank == 0 else g[CUT:]


def _attempt(fn):
    """The result of fn(), or the message of the InvalidArgumentError it raised."""
    try:
        return ("ok", fn())
    except InvalidArgumentError as exc:
        return ("error", str(exc))


def _rank_main(rank: int, folder: str) -> None:
    """One rank: accumulate the shard, all-reduce, and write what the parent checks."""
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORLD)
    try:
        out = {"pid": os.getpid()}
        for dtype in (np.float64, np.float32):
            acc = sgdnoise.NoiseAccumulator(D)
            acc.update(shard(rank, dtype))
            before = acc.to_bytes()
            total = st.all_reduce_noise(acc)
            out[f"acc-{np.dtype(dtype).name}"] = total.to_bytes()
            out[f"unchanged-{np.dtype(dtype).name}"] = acc.to_bytes() == before
        sk = sgdnoise.NoiseSketch(D, ELL)
        for piece in np.array_split(shard(rank), 3):
            sk.update(piece)
        out["sketch"] = st.all_reduce_noise(sk).to_bytes()
        # A subgroup (here: both ranks, created explicitly) and a rank that saw nothing.
        group = dist.new_group([0, 1])
        empty_or_not = sgdnoise.NoiseAccumulator(D)
        if rank == 1:
            empty_or_not.update(shard(1))
        out["subgroup-with-empty"] = st.all_reduce_noise(empty_or_not, group=group).to_bytes()
        # Mismatches: every rank raises, and the next collective still works.
        out["dim-mismatch"] = _attempt(lambda: st.all_reduce_noise(sgdnoise.NoiseAccumulator(3 + rank)))
        out["class-mismatch"] = _attempt(lambda: st.all_reduce_noise(
            sgdnoise.NoiseAccumulator(5) if rank == 0 else sgdnoise.NoiseSketch(5, 2)))
        closed = sgdnoise.NoiseAccumulator(2)
        if rank == 1:
            closed.close()
        out["closed"] = _attempt(lambda: st.all_reduce_noise(closed))
        out["not-a-state"] = _attempt(lambda: st.all_reduce_noise(np.eye(2) if rank == 0 else closed))
        out["after"] = st.all_reduce_noise(acc).count
        (Path(folder) / f"rank{rank}.pkl").write_bytes(pickle.dumps(out))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gloo")
    mp.spawn(_rank_main, args=(str(folder),), nprocs=WORLD, join=True)
    return [pickle.loads((folder / f"rank{r}.pkl").read_bytes()) for r in range(WORLD)]


def definition(g: np.ndarray, batch: int, replacement: bool = True) -> np.ndarray:
    """C = (f/N) Σ (g_i - ḡ)(g_i - ḡ)^T, in float64 numpy (test_sketch.exact)."""
    return exact(g, batch, replacement)[0]


def test_the_ranks_are_other_processes(ranks):
    pids = {r["pid"] for r in ranks}
    assert len(pids) == WORLD and os.getpid() not in pids


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_rank_holds_the_accumulator_of_all_rows(ranks, dtype):
    assert ranks[0][f"acc-{dtype}"] == ranks[1][f"acc-{dtype}"]  # bit-identical across ranks
    assert all(r[f"unchanged-{dtype}"] for r in ranks)  # the input state is left as it was
    total = sgdnoise.NoiseAccumulator.from_bytes(ranks[0][f"acc-{dtype}"])
    g = all_rows(np.dtype(dtype).type)
    single = sgdnoise.NoiseAccumulator(D)
    single.update(g)
    assert total.count == N
    np.testing.assert_allclose(total.mean, g.astype(np.float64).mean(axis=0), rtol=1e-13, atol=1e-14)
    for replacement in (True, False):
        exact = definition(g, S, replacement)
        scale = np.abs(exact).max()
        np.testing.assert_allclose(total.covariance(S, replacement), exact, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(total.covariance(S, replacement), single.covariance(S, replacement), rtol=0,
                                   atol=1e-13 * scale)


def test_every_rank_holds_the_sketch_of_all_rows(ranks):
    assert ranks[0]["sketch"] == ranks[1]["sketch"]
    total = sgdnoise.NoiseSketch.from_bytes(ranks[0]["sketch"])
    assert total.count == N and total.rows == ELL
    g = all_rows()
    check_guarantee(total, g, S)
    check_guarantee(total, g, S, replacement=False)
    # The same merge (rank 0's sketch, then rank 1's) done here: the same sketch up to rounding.
    local = []
    for rank in range(WORLD):
        sk = sgdnoise.NoiseSketch(D, ELL)
        for piece in np.array_split(shard(rank), 3):
            sk.update(piece)
        local.append(sk)
    local[0].merge(local[1])
    values, local_values = total.top_eigen(ELL, S)[0], local[0].top_eigen(ELL, S)[0]
    np.testing.assert_allclose(values, local_values, rtol=1e-9, atol=1e-11 * values[0])
    np.testing.assert_allclose(total.error_bound(S), local[0].error_bound(S), rtol=1e-9, atol=1e-11 * values[0])


def test_a_subgroup_and_a_rank_without_rows(ranks):
    assert ranks[0]["subgroup-with-empty"] == ranks[1]["subgroup-with-empty"]
    total = sgdnoise.NoiseAccumulator.from_bytes(ranks[0]["subgroup-with-empty"])
    g = shard(1)
    assert total.count == g.shape[0]
    exact = definition(g, S)
    np.testing.assert_allclose(total.covariance(S), exact, rtol=0, atol=1e-12 * np.abs(exact).max())


@pytest.mark.parametrize("case, message", [
    ("dim-mismatch", "differ in class or shape"),
    ("class-mismatch", "differ in class or shape"),
    ("closed", r"rank\(s\) \[1\]"),
    ("not-a-state", r"rank\(s\) \[0, 1\]"),
])
def test_mismatches_raise_on_every_rank(ranks, case, message):
    for r in ranks:
        status, text = r[case]
        assert status == "error" and re.search(message, text), text
    assert ranks[0][case] == ranks[1][case]  # the same message everywhere


def test_the_group_still_works_after_a_refusal(ranks):
    # After the four refusals, both ranks all-reduced the float32 accumulator again: all N rows.
    assert [r["after"] for r in ranks] == [N, N]


def test_without_an_initialised_group():
    assert not dist.is_initialized()
    with pytest.raises(InvalidArgumentError, match="not initialised"):
        st.all_reduce_noise(sgdnoise.NoiseAccumulator(2))
