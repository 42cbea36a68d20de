"""Chains of one simulation run in parts (simulate_chains) and combined (combine_chains): bit for bit
the result of simulate() with the same arguments, whatever the split and wherever the parts ran
(other processes); parts of another simulation, overlapping, missing or corrupt parts are refused."""

from __future__ import annotations

import dataclasses
import multiprocessing

import numpy as np
import pytest

import sgdnoise
from sgdnoise.errors import InvalidArgumentError
from test_state import refuses_every_flipped_byte

RNG = np.random.default_rng(5)
X = RNG.standard_normal((40, 3))
Y = X @ np.array([0.5, -1.0, 0.2]) + 0.3 * RNG.standard_normal(40)

PROBLEMS = {
    "spectrum": dict(A=np.array([1.0, 0.5, 0.2]), noise_var=1.0, lr=0.3, batch_size=4),
    "dense, momentum, weight decay": dict(A=np.array([[1.0, 0.3], [0.3, 0.6]]), u=np.array([1.0, -1.0]),
                                          noise_var=0.5, lr=0.2, batch_size=2, momentum=0.6, weight_decay=0.05),
    "matrix lr, input noise": dict(A=np.eye(2), noise_var=0.2, input_noise=0.1 * np.eye(2),
                                   lr=np.array([[0.3, 0.05], [0.05, 0.2]]), batch_size=3),
    "dataset with replacement": dict(X=X, y=Y, lr=0.1, batch_size=5),
    "dataset without replacement": dict(X=X, y=Y, lr=0.1, batch_size=5, replacement=False),
    "dataset by epoch shuffling": dict(X=X, y=Y, lr=0.1, batch_size=8, sampling="epoch_shuffling"),
    "D = 6": dict(A=np.linspace(0.2, 1.0, 6), noise_var=1.0, lr=0.5, batch_size=8),
}


def assert_identical(a: sgdnoise.SimulationResult, b: sgdnoise.SimulationResult) -> None:
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert x.tobytes() == y.tobytes(), field.name
        elif isinstance(x, float) and np.isnan(x):
            assert np.isnan(y), field.name
        else:
            assert x == y, field.name


def random_split(chains: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    cuts = sorted(rng.choice(np.arange(1, chains), size=rng.integers(0, chains), replace=False)) if chains > 1 else []
    edges = [0, *cuts, chains]
    parts = [(int(a), int(b - a)) for a, b in zip(edges[:-1], edges[1:])]
    rng.shuffle(parts)
    return parts


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_parts_combine_to_the_single_run_bit_for_bit(name):
    problem = PROBLEMS[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    chains, steps, seed = 6, 3000, 11
    whole = sgdnoise.simulate(steps=steps, chains=chains, seed=seed, **problem)
    assert not whole.diverged
    for _ in range(2):
        parts = [sgdnoise.simulate_chains(first_chain=first, chain_count=count, chains=chains, seed=seed,
                                          steps=steps, threads=1, **problem)
                 for first, count in random_split(chains, rng)]
        assert_identical(sgdnoise.combine_chains(parts, chains=chains, seed=seed, steps=steps, **problem), whole)


def _part(args):
    first, count = args
    return sgdnoise.simulate_chains(first_chain=first, chain_count=count, chains=4, seed=3, steps=5000,
                                    **PROBLEMS["spectrum"])


def test_parts_from_other_processes_combine_bit_for_bit():
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        parts = pool.map(_part, [(0, 1), (1, 2), (3, 1)])
    whole = sgdnoise.simulate(steps=5000, chains=4, seed=3, **PROBLEMS["spectrum"])
    assert_identical(sgdnoise.combine_chains(parts, chains=4, seed=3, steps=5000, **PROBLEMS["spectrum"]), whole)


def test_parts_of_another_simulation_overlapping_or_missing_are_refused():
    problem = PROBLEMS["spectrum"]
    run = dict(chains=3, seed=1, steps=500)
    parts = [sgdnoise.simulate_chains(first_chain=c, chain_count=1, **run, **problem) for c in range(3)]
    with pytest.raises(InvalidArgumentError, match="chain 2 of 3 is in no part"):
        sgdnoise.combine_chains(parts[:2], **run, **problem)
    with pytest.raises(InvalidArgumentError, match="chain 1 is in two parts"):
        sgdnoise.combine_chains(parts + parts[1:2], **run, **problem)
    for change in (dict(seed=2), dict(steps=501), dict(burn_in=7)):
        with pytest.raises(InvalidArgumentError, match="another simulation"):
            sgdnoise.combine_chains(parts, **{**run, **change}, **problem)
    for change in (dict(lr=0.31), dict(batch_size=5), dict(noise_var=1.5), dict(momentum=0.1)):
        with pytest.raises(InvalidArgumentError, match="another simulation"):
            sgdnoise.combine_chains(parts, **run, **{**problem, **change})
    with pytest.raises(InvalidArgumentError, match="another simulation"):  # same chains, more in all
        sgdnoise.combine_chains(parts + [sgdnoise.simulate_chains(first_chain=3, chain_count=1, **{**run, "chains": 4},
                                                                  **problem)], **{**run, "chains": 4}, **problem)
    refuses_every_flipped_byte(_Combiner(parts, run, problem), parts[1])
    with pytest.raises(InvalidArgumentError, match="first_chain"):
        sgdnoise.simulate_chains(first_chain=3, chain_count=1, **run, **problem)
    with pytest.raises(InvalidArgumentError, match="seed is required"):
        sgdnoise.simulate_chains(first_chain=0, chain_count=1, chains=1, seed=None, steps=10, **problem)


class _Combiner:
    """``from_bytes(part)``: combine with a corrupted middle part (for refuses_every_flipped_byte)."""

    def __init__(self, parts, run, problem):
        self.parts, self.run, self.problem = parts, run, problem

    def from_bytes(self, corrupt):
        return sgdnoise.combine_chains([self.parts[0], bytes(corrupt), self.parts[2]], **self.run, **self.problem)
