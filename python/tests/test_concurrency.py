"""Many threads at once: every function gives the same bytes as when called alone, and every thread
sees its own last error.

ctypes releases the GIL for the duration of each C call, so the threads here really run the
library concurrently (on every core, and on top of the library's own worker threads for sweeps
and simulations). Results are compared bit for bit: the library promises determinism (a
simulation's numbers depend on its seed only), and OpenBLAS computes the same bits whether it is
entered from one thread or many. The C functions are called through the header model
(header_model.bind on the library), not the Python package's bindings; only
test_python_api_concurrently_matches_serial uses the package.
"""

from __future__ import annotations

import ctypes
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import header_model as hm
from fuzz_harness import Harness, library_path

THREADS = 12
HEADER = hm.load()
STATUS = {name[len("SGDNOISE_STATUS_"):]: code for name, code in HEADER.statuses.items()}
C = Harness(HEADER, ctypes.CDLL(library_path())).fns   # the header's functions, bound from the header


@pytest.fixture(scope="module")
def harness():
    return Harness(HEADER, ctypes.CDLL(library_path()))


def _calls(harness):
    """Three valid calls of every function of the header that takes arguments."""
    return [(fn, harness.valid_plan(fn, seed)) for fn in HEADER.functions.values() if fn.params
            for seed in (11, 12, 13)]


def _run(harness, fn, plan):
    case = harness.build(fn, plan)
    try:
        return harness.outcome(case, harness.call(case))
    finally:
        harness.free(case)


def test_every_function_concurrently_matches_serial(harness):
    """All the header's functions (models, noise, stationary solver, sweeps, dataset solver,
    simulation and accumulator handles) from 12 threads at once, each thread in its own order."""
    calls = _calls(harness)
    serial = [_run(harness, fn, plan) for fn, plan in calls]
    assert sum(1 for status, _, _ in serial if status == 0) >= len(calls) // 2  # mostly successful calls
    mismatches = []

    def worker(k):
        order = np.random.default_rng(k).permutation(len(calls))
        for i in order:
            fn, plan = calls[i]
            got = _run(harness, fn, plan)
            if got != serial[i]:
                mismatches.append((k, fn.name, plan.seed, got[0], serial[i][0]))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    assert not mismatches, f"{len(mismatches)} concurrent calls differ from serial ones, e.g. {mismatches[:5]}"


def _python_jobs():
    """Calls of the Python API, one of each kind (fixed inputs)."""
    import sgdnoise  # noqa: PLC0415 - only this test needs the package

    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    a = (q * [0.2, 0.5, 0.8, 1.0]) @ q.T
    a = 0.5 * (a + a.T)
    c = 0.05 * a
    u = rng.standard_normal(4)
    grads = rng.standard_normal((50, 4))
    x, y = rng.standard_normal((30, 3)), rng.standard_normal(30)
    spectrum = rng.uniform(0.1, 1.0, 200)
    return {
        "noise_covariance": lambda: sgdnoise.noise_covariance(grads, 8),
        "noise_covariance_without": lambda: sgdnoise.noise_covariance(grads, 8, replacement=False, kind="diag"),
        "stationary_covariance": lambda: sgdnoise.stationary_covariance(a, c, 0.5, momentum=0.5),
        "label_noise": lambda: sgdnoise.label_noise(a, 1.0, 0.3, 4),
        "label_noise_spectrum": lambda: sgdnoise.label_noise(spectrum, 1.0, 0.002, 4, momentum=0.9),
        "input_noise": lambda: sgdnoise.input_noise(a, 0.1 * a, u, 0.2, 4, noise_var=0.5),
        "l2_regularized": lambda: sgdnoise.l2_regularized(a, u, 0.1, 0.3, 4),
        "high_dimensional": lambda: sgdnoise.high_dimensional(a, 2.0, 1.0, 0.2, 4),
        "critical_learning_rate": lambda: sgdnoise.critical_learning_rate(a, 4, momentum=0.3),
        "label_noise_sweep": lambda: sgdnoise.label_noise_sweep(spectrum, 1.0, np.linspace(0.001, 0.02, 64), 4),
        "scaling_law": lambda: sgdnoise.scaling_law(spectrum, 1.0, 0.001, [1, 2, 4, 8]),
        "tail_index": lambda: sgdnoise.tail_index(1.0, 0.5, 4),
        "finite_dataset": lambda: sgdnoise.finite_dataset(x, y, 0.1, 5),
        "finite_dataset_without": lambda: sgdnoise.finite_dataset(x, y, 0.1, 5, replacement=False, momentum=0.5),
        "critical_learning_rate_dataset": lambda: sgdnoise.critical_learning_rate_dataset(x, 5),
        "simulate": lambda: sgdnoise.simulate(a, noise_var=1.0, lr=0.3, batch_size=4, steps=2000, chains=2, seed=7,
                                              progress=False),
        "simulate_dataset": lambda: sgdnoise.simulate(X=x, y=y, lr=0.1, batch_size=5, replacement=False, steps=2000,
                                                      seed=8, progress=False),
    }


def _flatten(value):
    """A result as a tuple of numpy arrays (dataclasses field by field)."""
    if hasattr(value, "__dataclass_fields__"):
        return tuple(np.asarray(getattr(value, f), dtype=float) if not isinstance(getattr(value, f), (bool, type(None)))
                     else getattr(value, f) for f in value.__dataclass_fields__)
    if isinstance(value, tuple):
        return tuple(_flatten(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _flatten(v)) for k, v in sorted(value.items()))
    return np.asarray(value, dtype=float)


def _same(x, y) -> bool:
    if isinstance(x, tuple):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    if isinstance(x, np.ndarray):
        return x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
    return x == y


def test_python_api_concurrently_matches_serial():
    jobs = _python_jobs()
    serial = {name: _flatten(job()) for name, job in jobs.items()}
    names = list(jobs) * 6
    np.random.default_rng(1).shuffle(names)
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda name: (name, _flatten(jobs[name]())), names))
    wrong = [name for name, value in results if not _same(value, serial[name])]
    assert not wrong, f"concurrent results differ from serial ones for {sorted(set(wrong))}"


def test_last_error_is_per_thread():
    """Each thread fails in its own way, waits until every other thread has failed too, and still
    reads its own message and critical learning rate (raw C calls)."""
    rounds = 40
    barrier = threading.Barrier(THREADS)
    hessian = np.diag([1.0, 0.5])
    noise = 0.02 * hessian
    out = np.empty((THREADS, 4))
    problems = []

    def worker(k):
        for r in range(rounds):
            if (k + r) % 2:
                status = C["sgdnoise_stationary_covariance"](-(k + 1), hessian.ctypes.data, noise.ctypes.data, 0.5, None,
                                                             0.0, out[k].ctypes.data)
                expected, fragment, critical = STATUS["INVALID_ARGUMENT"], f"{-(k + 1)}", math.nan
            else:
                lr = 2.5 + k  # unstable: the critical learning rate 2/h_max = 2 is the same for all
                status = C["sgdnoise_stationary_covariance"](2, hessian.ctypes.data, noise.ctypes.data, lr, None, 0.0,
                                                             out[k].ctypes.data)
                expected, fragment, critical = STATUS["UNSTABLE"], "critical learning rate", 2.0
            barrier.wait()
            message = C["sgdnoise_last_error_message"]().decode()
            got_critical = C["sgdnoise_last_error_critical_learning_rate"]()
            if status != expected or fragment not in message:
                problems.append((k, r, status, message))
            if not (math.isnan(critical) and math.isnan(got_critical)) and abs(got_critical - critical) > 1e-12:
                problems.append((k, r, "critical", got_critical))
            barrier.wait()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not problems, problems[:5]


def test_a_new_thread_starts_with_no_error():
    C["sgdnoise_stationary_covariance"](-1, None, None, 0.5, None, 0.0, None)  # fail on this thread
    seen = []
    t = threading.Thread(target=lambda: seen.append((C["sgdnoise_last_error_message"](),
                                                     C["sgdnoise_last_error_critical_learning_rate"]())))
    t.start()
    t.join()
    assert seen[0][0] == b"" and math.isnan(seen[0][1])


def test_one_handle_per_thread_many_threads():
    """Each thread owns its simulation handle (the documented rule: a handle is not shared) while
    all run at once; the numbers equal a run alone."""
    a = np.diag([1.0, 0.5])
    no_progress = hm.ctype_of(HEADER.callbacks["sgdnoise_progress_callback"])()  # NULL
    summary_type = HEADER.structs["sgdnoise_simulation_summary"].ctype

    def run(seed):
        h = ctypes.c_void_p()
        assert C["sgdnoise_simulation_create_gaussian"](2, a.ctypes.data, None, 1.0, None, ctypes.byref(h)) == 0
        try:
            assert C["sgdnoise_simulation_set_optimizer"](h, None, 0.3, None, 4, 0.2) == 0
            assert C["sgdnoise_simulation_run"](h, 3000, 100, 2, seed, 0, no_progress, None) == 0
            sigma = np.empty(4)
            summary = summary_type(size=ctypes.sizeof(summary_type))
            assert C["sgdnoise_simulation_result"](h, None, sigma.ctypes.data, None, None, ctypes.addressof(summary)) == 0
            assert summary.steps_completed == 2 * 3000 and not summary.diverged and not summary.cancelled
            return sigma, tuple(repr(getattr(summary, name)) for name, _ in summary_type._fields_)  # not the padding
        finally:
            C["sgdnoise_simulation_free"](h)

    alone = {seed: run(seed) for seed in range(4)}
    with ThreadPoolExecutor(THREADS) as pool:
        together = list(pool.map(run, [s % 4 for s in range(3 * THREADS)]))
    for k, (sigma, summary) in enumerate(together):
        assert np.array_equal(sigma, alone[k % 4][0])
        assert summary == alone[k % 4][1]
