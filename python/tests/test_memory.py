"""Nothing leaks: 10^5 create/free cycles of every handle type of the header, 10^5 failing calls
and 10^5 calls with freed, wrong-kind and foreign handles leave the resident memory flat, and the
C examples are clean under valgrind. The C functions are called through the header model
(header_model.bind), not through the Python package's bindings.

Resident memory is read from /proc/self/statm after a warm-up (allocator pools, the Swift
runtime's metadata caches and the error messages' thread-local buffer are then in place). A leak of
one 300-byte handle per cycle would show as 30 MB; the budget is 4 MB.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import header_model as hm
from fuzz_harness import BAD_HANDLES, HANDLE_SENTINEL, Harness, library_path

CYCLES = 100_000
BUDGET_MB = 4.0
HEADER = hm.load()
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture(scope="module")
def harness():
    return Harness(HEADER, ctypes.CDLL(library_path()))


def _growth(body, cycles: int, warmup: int = 2_000) -> float:
    body(warmup)
    before = resident_mb()
    body(cycles)
    return resident_mb() - before


def _creator_calls(harness, family):
    """(raw create function, its arguments, the out-slot array) of each creator, valid arguments."""
    calls = []
    for fn in hm.creators(HEADER, family):
        for seed in range(20):
            case = harness.build(fn, harness.valid_plan(fn, seed))
            if harness.call(case) == 0:
                harness.free(case)
                slot = next(iter(case.out_handles.values()))
                calls.append((harness.fns[fn.name], case.args, slot, case))
                break
        else:
            pytest.fail(f"no valid call of {fn.name} found to cycle")
    return calls


@pytest.mark.parametrize("family", sorted(hm.families(HEADER)))
def test_create_free_cycles_do_not_grow_memory(harness, family):
    calls = _creator_calls(harness, family)
    free = harness.fns[hm.destructor(HEADER, family).name]

    def cycle(count):
        for k in range(count):
            create, args, slot, _ = calls[k % len(calls)]
            slot[1] = HANDLE_SENTINEL
            assert create(*args) == 0
            free(int(slot[1]))

    growth = _growth(cycle, CYCLES)
    assert growth < BUDGET_MB, f"{family}: {CYCLES} create/free cycles grew resident memory by {growth:.1f} MB"


@pytest.mark.parametrize("family", sorted(hm.families(HEADER)))
def test_used_handles_are_released(harness, family):
    """Handles that went through every setter and run of their family (simulation results, an
    accumulator's state) are released in full."""
    fn = hm.destructor(HEADER, family)
    plan = harness.valid_plan(fn, 3)
    free = harness.fns[fn.name]

    def cycle(count):
        for _ in range(count):
            address = harness.make_handle(family, plan, prepared=True, skip="")
            assert address is not None
            free(address)

    growth = _growth(cycle, 1_500, warmup=200)
    assert growth < BUDGET_MB, f"{family}: 1500 used handles grew resident memory by {growth:.1f} MB"


def _failing_calls(harness):
    """One failing call of every function that returns a status: its valid call with the first
    size made negative, or else its first pointer NULL."""
    calls = []
    for fn in HEADER.functions.values():
        if fn.returns.base != "sgdnoise_status":
            continue
        case = harness.build(fn, harness.valid_plan(fn, 5))
        kinds = [hm.classify(fn, p) for p in fn.params]
        if hm.SIZE in kinds:
            case.args[kinds.index(hm.SIZE)] = -7
        elif hm.STRING in kinds:  # a text input (a library path): one that names no file
            case.args[kinds.index(hm.STRING)] = b"/nonexistent/libnothing.so"
        else:
            first = next(i for i, k in enumerate(kinds) if k in (hm.INPUT, hm.OUTPUT, hm.HANDLE, hm.OUT_HANDLE,
                                                                   hm.STRUCT_OUTPUT, hm.CODE_OUTPUT))
            case.args[first] = None
        assert harness.call(case) != 0, f"{fn.name}: the failing variant succeeded"
        calls.append((harness.fns[fn.name], case.args, case))
    return calls


def test_failing_calls_do_not_grow_memory(harness):
    calls = _failing_calls(harness)
    message = harness.message

    def fail(count):
        for k in range(count):
            fn, args, _ = calls[k % len(calls)]
            assert fn(*args) != 0
            message()

    growth = _growth(fail, CYCLES)
    assert growth < BUDGET_MB, f"{CYCLES} failing calls grew resident memory by {growth:.1f} MB"
    for _, _, case in calls:
        harness.free(case)


def test_bad_handle_calls_do_not_grow_memory(harness):
    """Every function that takes a handle, called with a freed, a wrong-kind, a foreign and a
    forged handle (the registry lookup and its message), 10^5 calls in all. The freed handles are
    freed after every other handle exists and none is created during the loop, so no address is
    reused (the registry's documented limit)."""
    invalid = HEADER.statuses["SGDNOISE_STATUS_INVALID_ARGUMENT"]
    calls, stale_slots = [], []
    for fn in HEADER.functions.values():
        if fn.returns.base != "sgdnoise_status":
            continue
        for i, p in enumerate(fn.params):
            if hm.classify(fn, p) != hm.HANDLE:
                continue
            for m in [m for m in BAD_HANDLES if m not in ("null", "freed")] + [None]:
                plan = harness.valid_plan(fn, 5)
                plan.mutations = [(p.name, m)] if m else []
                case = harness.build(fn, plan)
                if m is None:
                    stale_slots.append((hm.handle_family(p), i, case))
                calls.append((harness.fns[fn.name], case.args, case))
    stale = {}
    for family in sorted(hm.families(HEADER)):
        stale[family] = harness.make_handle(family, harness.valid_plan(hm.destructor(HEADER, family), 5),
                                            prepared=False, skip="")
    for family, address in stale.items():
        harness.fns[hm.destructor(HEADER, family).name](address)
    for family, i, case in stale_slots:
        case.args[i] = stale[family]
    for fn, args, case in calls:
        assert fn(*args) == invalid, case.description
    assert calls

    def fail(count):
        for k in range(count):
            fn, args, _ = calls[k % len(calls)]
            assert fn(*args) != 0
            harness.message()

    growth = _growth(fail, CYCLES)
    assert growth < BUDGET_MB, f"{CYCLES} calls with bad handles grew resident memory by {growth:.1f} MB"
    for _, _, case in calls:
        harness.free(case)


def test_unstable_and_long_messages_do_not_grow_memory(harness):
    """The UNSTABLE path (its message carries a formatted critical learning rate) and a message
    longer than the thread-local buffer (truncated, never overflowing it)."""
    stationary = harness.fns["sgdnoise_stationary_covariance"]
    unstable, invalid = (HEADER.statuses[f"SGDNOISE_STATUS_{k}"] for k in ("UNSTABLE", "INVALID_ARGUMENT"))
    h = np.diag([1.0, 0.5])
    out = np.empty(4)
    huge_name = -(2**62) - 12345  # a long number in the message

    def fail(count):
        for _ in range(count):
            assert stationary(2, h.ctypes.data, h.ctypes.data, 3.0, None, 0.0, out.ctypes.data) == unstable
            assert stationary(huge_name, None, None, 0.5, None, 0.0, None) == invalid

    growth = _growth(fail, CYCLES // 2)
    assert growth < BUDGET_MB


def test_python_handle_classes_release_their_handles():
    """The Python classes that own a C handle (NoiseAccumulator...): create, use, close, 10^4 times."""
    import sgdnoise

    if not hasattr(sgdnoise, "NoiseAccumulator"):
        pytest.skip("no handle-owning class in this version")
    g = np.random.default_rng(0).standard_normal((16, 3))

    def cycle(count):
        for _ in range(count):
            with sgdnoise.NoiseAccumulator(3) as acc:
                acc.update(g)
                acc.covariance(4)

    growth = _growth(cycle, 10_000, warmup=500)
    assert growth < BUDGET_MB


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_c_examples_are_clean_under_valgrind():
    result = subprocess.run(["bash", str(ROOT / "examples" / "c" / "valgrind_check.sh")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stationary_2x2: valgrind clean" in result.stdout
