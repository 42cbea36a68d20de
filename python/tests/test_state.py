"""Serialized accumulator states (docs/state_format.md): the bytes decoded by an independent
reader written here from the documented layout, the checksum against the reference xxHash, exact
merges of shards shipped through other processes, and every corrupt or foreign buffer refused."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import struct

import numpy as np
import pytest
import xxhash

import sgdnoise
from sgdnoise.errors import InvalidArgumentError

HEADER = 24


def parse(data: bytes) -> dict:
    """The documented layout, read field by field (independently of the library)."""
    magic, version, kind, length = struct.unpack_from("<8sIIQ", data, 0)
    payload = data[HEADER:HEADER + length]
    (checksum,) = struct.unpack_from("<Q", data, HEADER + length)
    d, n = struct.unpack_from("<QQ", payload, 0)
    words = np.frombuffer(payload, dtype="<f8", offset=16)
    mean, upper = words[:d], words[d:]
    scatter = np.zeros((d, d))
    scatter[np.triu_indices(d)] = upper  # row by row, i <= j
    scatter = scatter + np.triu(scatter, 1).T
    return dict(magic=magic, version=version, kind=kind, length=length, total=len(data), checksum=checksum,
                d=d, n=n, mean=mean, scatter=scatter, upper_size=upper.size)


def reseal(data: bytes | bytearray) -> bytes:
    """The same bytes with a checksum recomputed by the reference xxHash: only content checks remain."""
    body = bytes(data[:-8])
    return body + struct.pack("<Q", xxhash.xxh64(body).intdigest())


def filled(d: int, n: int, seed: int, offset: float = 0.0) -> tuple[sgdnoise.NoiseAccumulator, np.ndarray]:
    g = np.random.default_rng(seed).normal(size=(n, d)) + offset
    acc = sgdnoise.NoiseAccumulator(d)
    acc.update(g)
    return acc, g


@pytest.mark.parametrize("d", [1, 3, 17])
def test_the_bytes_follow_the_documented_layout(d):
    acc, g = filled(d, 40, seed=d, offset=2.5)
    data = acc.to_bytes()
    f = parse(data)
    assert f["magic"] == b"SGDNSTAT" and f["version"] == 1 and f["kind"] == 1
    assert f["total"] == 32 + 8 * (2 + d + d * (d + 1) // 2) == HEADER + f["length"] + 8
    assert f["upper_size"] == d * (d + 1) // 2
    assert f["checksum"] == xxhash.xxh64(data[:-8]).intdigest()
    assert (f["d"], f["n"]) == (d, 40)
    np.testing.assert_array_equal(f["mean"], acc.mean)
    # The scatter the bytes hold is the one behind the covariance: C = (1/S)/N * S_scatter (with
    # replacement), and it matches the definition on the rows.
    np.testing.assert_allclose(f["scatter"] / 7 / 40, acc.covariance(7), rtol=1e-15, atol=0)
    centred = g - g.mean(axis=0)
    np.testing.assert_allclose(f["scatter"], centred.T @ centred, rtol=1e-12, atol=1e-12)


def test_round_trips_are_bit_exact_and_pickle_uses_them():
    acc, _ = filled(6, 25, seed=1, offset=-4.0)
    data = acc.to_bytes()
    for restored in (sgdnoise.NoiseAccumulator.from_bytes(data),
                     sgdnoise.NoiseAccumulator.from_bytes(bytearray(data)),
                     sgdnoise.NoiseAccumulator.from_bytes(memoryview(data)),
                     pickle.loads(pickle.dumps(acc)), copy.copy(acc), copy.deepcopy(acc), acc.copy()):
        assert restored.to_bytes() == data
        assert restored.count == acc.count and restored.dim == acc.dim
    # Copies are independent of the original.
    other = acc.copy()
    other.update(np.ones((3, 6)))
    assert acc.count == 25 and other.count == 28
    empty = sgdnoise.NoiseAccumulator(4)
    assert sgdnoise.NoiseAccumulator.from_bytes(empty.to_bytes()).count == 0
    # float32 chunks leave a float64 state: the same bytes as the float64 rows widened.
    g32 = np.random.default_rng(2).normal(size=(10, 3)).astype(np.float32)
    a32, a64 = sgdnoise.NoiseAccumulator(3), sgdnoise.NoiseAccumulator(3)
    a32.update(g32)
    a64.update(g32.astype(np.float64))
    assert a32.to_bytes() == a64.to_bytes()


def _shard_state(args):
    """A worker process: the state of one shard of rows, as bytes."""
    rows, = args
    acc = sgdnoise.NoiseAccumulator(rows.shape[1])
    acc.update(rows)
    return acc.to_bytes()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shards_from_other_processes_merge_exactly_whatever_the_split(seed):
    rng = np.random.default_rng(seed)
    n, d, batch = 300, 9, 8
    g = rng.normal(size=(n, d)) * rng.uniform(0.1, 3, d) + 5.0  # a large mean: cancellation would show
    cuts = np.sort(rng.choice(np.arange(1, n), size=rng.integers(2, 9), replace=False))
    shards = np.split(g, cuts)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        states = pool.map(_shard_state, [(s,) for s in shards])
    accs = [sgdnoise.NoiseAccumulator.from_bytes(s) for s in states]
    # A tree merge in a random order.
    order = list(rng.permutation(len(accs)))
    while len(order) > 1:
        a, b = order.pop(), order.pop()
        accs[a].merge(accs[b])
        order.insert(0, a)
    total = accs[order[0]]
    assert total.count == n
    one_shot = sgdnoise.noise_covariance(g, batch)
    direct = sgdnoise.NoiseAccumulator(d)
    direct.update(g)
    scale = np.abs(one_shot).max()
    np.testing.assert_allclose(total.covariance(batch), one_shot, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(total.covariance(batch), direct.covariance(batch), rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(total.mean, g.mean(axis=0), rtol=1e-14, atol=0)


def refuses_every_flipped_byte(cls: type, data: bytes) -> None:
    """One flipped bit in every byte (at a position that cycles through the byte) is refused."""
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 1 << (i % 8)
        with pytest.raises(InvalidArgumentError):
            cls.from_bytes(bad)


def resealed_with(data: bytes, offset: int, fmt: str, value) -> bytes:
    """``data`` with one field rewritten and the checksum recomputed: only content checks remain."""
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return reseal(b)


def test_every_bit_flip_truncation_and_foreign_buffer_is_refused():
    acc, _ = filled(3, 12, seed=4)
    data = acc.to_bytes()
    refuses_every_flipped_byte(sgdnoise.NoiseAccumulator, data)
    for bad in (data[:-1], data + b"\0" * 8, data[:31], b"\0" * 64, b"x", pickle.dumps(np.eye(3)),
                np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes()):
        with pytest.raises(InvalidArgumentError):
            sgdnoise.NoiseAccumulator.from_bytes(bad)
    with pytest.raises(InvalidArgumentError, match="empty"):
        sgdnoise.NoiseAccumulator.from_bytes(b"")
    with pytest.raises(InvalidArgumentError, match="bytes-like"):
        sgdnoise.NoiseAccumulator.from_bytes("SGDNSTAT")  # type: ignore[arg-type]


@pytest.mark.parametrize("offset, fmt, value, message", [
    (8, "<I", 2, "format version 2"),           # written by a newer library
    (12, "<I", 2, "noise sketch"),              # another kind of state
    (12, "<I", 7, "unknown kind"),
    (24, "<Q", 0, "dimension"),                 # D = 0
    (24, "<Q", 2, "dimension 2"),               # D that does not fit the payload
    (32, "<Q", 0, "counts no gradient"),        # N = 0 with a nonzero mean and scatter
    (40, "<d", float("nan"), "NaN"),            # a NaN mean entry
    (40 + 8 * 3, "<d", -1.0, "negative diagonal"),  # S_00 < 0
])
def test_states_no_accumulator_holds_are_refused_even_with_a_valid_checksum(offset, fmt, value, message):
    data = filled(3, 12, seed=5)[0].to_bytes()
    with pytest.raises(InvalidArgumentError, match=message):
        sgdnoise.NoiseAccumulator.from_bytes(resealed_with(data, offset, fmt, value))


def test_closed_accumulators_cannot_be_serialized():
    acc, _ = filled(2, 3, seed=6)
    acc.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        acc.to_bytes()
    with pytest.raises(InvalidArgumentError, match="closed"):
        pickle.dumps(acc)
