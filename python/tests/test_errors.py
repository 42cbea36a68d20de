"""Bad input through Python: the right exception class of api.md's hierarchy, a message that names
the argument, nothing written to the caller's buffers, and a process that survives; errors are
thread-local when many threads call at once."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import sgdnoise
from sgdnoise import (
    InvalidArgumentError,
    NotPositiveDefiniteError,
    NotSymmetricError,
    NumericalError,
    OutOfMemoryError,
    SGDNoiseError,
    UnstableError,
)

PYTHON_DIR = Path(sgdnoise.__file__).resolve().parent.parent
REL = 1e-12  # critical learning rate: one division by the largest eigenvalue of a symmetric matrix


def expect(exc_class, match_all, fn, *args, **kwargs) -> BaseException:
    """Call ``fn``, require ``exc_class`` (exactly that class or a subclass) and every string of
    ``match_all`` in the message; return the exception."""
    with pytest.raises(exc_class) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    for word in match_all:
        assert word in message, f"{word!r} not in message {message!r}"
    return info.value


def test_exception_hierarchy():
    assert issubclass(InvalidArgumentError, SGDNoiseError) and issubclass(InvalidArgumentError, ValueError)
    for cls in (NotSymmetricError, NotPositiveDefiniteError):
        assert issubclass(cls, InvalidArgumentError) and issubclass(cls, ValueError)
    for cls in (UnstableError, NumericalError, OutOfMemoryError):
        assert issubclass(cls, SGDNoiseError)
    assert UnstableError("m").critical_learning_rate is None
    assert UnstableError("m", 1.5).critical_learning_rate == 1.5


# --- stationary_covariance ----------------------------------------------------------------------

H2 = np.array([[1.0, 0.2], [0.2, 0.5]])
C2 = np.array([[0.3, 0.1], [0.1, 0.2]])


def with_entry(a, i, j, value):
    b = np.array(a, dtype=np.float64)
    b[i, j] = value
    return b


STATIONARY_BAD = [
    # (label, kwargs, exception class, words in the message)
    ("hessian 1-D", dict(hessian=np.ones(2)), InvalidArgumentError, ["hessian", "2-dimensional"]),
    ("hessian 3-D", dict(hessian=np.ones((2, 2, 2))), InvalidArgumentError, ["hessian"]),
    ("hessian not square", dict(hessian=np.ones((2, 3))), InvalidArgumentError, ["hessian", "square"]),
    ("hessian empty", dict(hessian=np.ones((0, 0))), InvalidArgumentError, ["hessian"]),
    ("hessian not numeric", dict(hessian=[["a", "b"], ["c", "d"]]), InvalidArgumentError, ["hessian"]),
    ("hessian ragged", dict(hessian=[[1.0, 0.0], [0.0]]), InvalidArgumentError, ["hessian"]),
    ("noise wrong size", dict(noise=np.eye(3)), InvalidArgumentError, ["noise", "2 x 2"]),
    ("noise 1-D", dict(noise=np.ones(2)), InvalidArgumentError, ["noise"]),
    ("lr matrix wrong size", dict(lr=np.eye(3)), InvalidArgumentError, ["lr", "2 x 2"]),
    ("lr vector", dict(lr=np.ones(2)), InvalidArgumentError, ["lr"]),
    ("hessian NaN", dict(hessian=with_entry(H2, 0, 1, np.nan)), InvalidArgumentError, ["hessian", "nan"]),
    ("hessian Inf", dict(hessian=with_entry(H2, 1, 1, np.inf)), InvalidArgumentError, ["hessian", "inf"]),
    ("noise NaN", dict(noise=with_entry(C2, 1, 0, np.nan)), InvalidArgumentError, ["noise", "nan"]),
    ("noise -Inf", dict(noise=with_entry(C2, 0, 0, -np.inf)), InvalidArgumentError, ["noise", "inf"]),
    ("lr matrix NaN", dict(lr=with_entry(np.eye(2), 1, 1, np.nan)), InvalidArgumentError, ["lr"]),
    ("lr NaN", dict(lr=np.nan), InvalidArgumentError, ["lr", "nan"]),
    ("lr Inf", dict(lr=np.inf), InvalidArgumentError, ["lr", "inf"]),
    ("lr zero", dict(lr=0.0), InvalidArgumentError, ["lr", "positive"]),
    ("lr negative", dict(lr=-0.1), InvalidArgumentError, ["lr", "positive"]),
    ("momentum NaN", dict(momentum=np.nan), InvalidArgumentError, ["momentum"]),
    ("momentum Inf", dict(momentum=np.inf), InvalidArgumentError, ["momentum"]),
    ("momentum 1", dict(momentum=1.0), InvalidArgumentError, ["momentum", "[0, 1)"]),
    ("momentum above 1", dict(momentum=1.5), InvalidArgumentError, ["momentum", "[0, 1)"]),
    ("momentum negative", dict(momentum=-0.1), InvalidArgumentError, ["momentum", "[0, 1)"]),
    ("momentum tiny negative", dict(momentum=-1e-300), InvalidArgumentError, ["momentum"]),
    ("hessian not symmetric", dict(hessian=with_entry(H2, 0, 1, 0.3)), NotSymmetricError, ["hessian", "symmetric"]),
    ("noise not symmetric", dict(noise=with_entry(C2, 1, 0, 0.0)), NotSymmetricError, ["noise", "symmetric"]),
    ("lr matrix not symmetric", dict(lr=[[1.0, 0.1], [0.0, 1.0]]), NotSymmetricError, ["lr", "symmetric"]),
    ("lr matrix indefinite", dict(lr=[[0.5, 0.0], [0.0, -0.1]]), NotPositiveDefiniteError, ["lr", "positive definite"]),
    ("lr matrix singular", dict(lr=[[0.5, 0.5], [0.5, 0.5]]), NotPositiveDefiniteError, ["lr", "positive definite"]),
    ("lr matrix zero", dict(lr=np.zeros((2, 2))), NotPositiveDefiniteError, ["lr"]),
]


@pytest.mark.parametrize("label, kwargs, cls, words", STATIONARY_BAD, ids=[c[0] for c in STATIONARY_BAD])
def test_stationary_covariance_bad_input(label, kwargs, cls, words):
    args = dict(hessian=H2, noise=C2, lr=0.5, momentum=0.0) | kwargs
    err = expect(cls, words, sgdnoise.stationary_covariance, **args)
    if issubclass(cls, InvalidArgumentError):
        assert isinstance(err, ValueError)
    # The process survived and the library still works.
    assert np.isfinite(sgdnoise.stationary_covariance(H2, C2, 0.5)).all()


def test_symmetry_tolerance_is_relative_1e_10():
    """Documented: |a_ij - a_ji| <= 1e-10 max|a| passes (and is not symmetrised); beyond fails."""
    h = np.array([[1.0, 0.2], [0.2 + 1e-12, 0.5]])
    assert np.isfinite(sgdnoise.stationary_covariance(h, C2, 0.5)).all()
    expect(NotSymmetricError, ["hessian"], sgdnoise.stationary_covariance,
           np.array([[1.0, 0.2], [0.2 + 1e-8, 0.5]]), C2, 0.5)


@pytest.mark.parametrize("mu", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("excess", [1.0 + 1e-9, 1.5, 10.0])
def test_unstable_scalar_lr_reports_critical_learning_rate(mu, excess, spd):
    h, c = spd(5, 0.1, 2.0), spd(5)
    critical = 2 * (1 + mu) / np.linalg.eigvalsh(h).max()
    err = expect(UnstableError, ["critical learning rate"], sgdnoise.stationary_covariance,
                 h, c, excess * critical, momentum=mu)
    assert not isinstance(err, ValueError)
    assert err.critical_learning_rate is not None
    assert abs(err.critical_learning_rate - critical) <= REL * critical
    assert repr(err.critical_learning_rate) in str(err), "the message states the same number"
    # Just below the edge it is stable.
    assert np.isfinite(sgdnoise.stationary_covariance(h, c, (1 - 1e-9) * critical, momentum=mu)).all()


def test_unstable_exactly_at_the_edge():
    # lr * h_max = 2 (1 + mu) exactly in binary: at the edge there is no stationary law.
    for mu, lr in ((0.0, 2.0), (0.5, 3.0)):
        err = expect(UnstableError, [], sgdnoise.stationary_covariance, [[1.0]], [[1.0]], lr, momentum=mu)
        assert err.critical_learning_rate == lr


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_unstable_matrix_lr_reports_critical_scale(mu, spd):
    """For a matrix Lambda, critical_learning_rate is the largest stable scale of it (errors.py):
    2 (1 + mu) / rho(Lambda H), rho(Lambda H) = lambda_max(Lambda^1/2 H Lambda^1/2)."""
    h, c, lam = spd(4, 0.1, 1.0), spd(4), spd(4, 0.2, 1.0)
    w, v = np.linalg.eigh(lam)
    root = (v * np.sqrt(w)) @ v.T
    rho = np.linalg.eigvalsh(root @ h @ root).max()
    lam = lam * (1.3 * 2 * (1 + mu) / rho)  # 1.3 times the critical scale
    err = expect(UnstableError, ["critical learning rate"], sgdnoise.stationary_covariance,
                 h, c, lam, momentum=mu)
    assert abs(err.critical_learning_rate - 1 / 1.3) <= REL / 1.3


@pytest.mark.parametrize("lr", [0.5, "matrix"])
def test_negative_eigenvalue_hessian_has_no_critical_learning_rate(lr, spd, orthogonal):
    q = orthogonal(3)
    h = (q * np.array([-0.2, 0.5, 1.0])) @ q.T
    h = 0.5 * (h + h.T)
    lr = spd(3) if lr == "matrix" else lr
    err = expect(UnstableError, ["hessian", "negative eigenvalue"], sgdnoise.stationary_covariance,
                 h, np.eye(3), lr)
    assert err.critical_learning_rate is None


# --- noise_covariance ---------------------------------------------------------------------------

G = np.arange(30, dtype=np.float64).reshape(10, 3) % 7


NOISE_BAD = [
    ("grads 1-D", dict(grads=np.ones(5)), InvalidArgumentError, ["grads", "(N, D)"]),
    ("grads 3-D", dict(grads=np.ones((2, 2, 2))), InvalidArgumentError, ["grads"]),
    ("grads no rows", dict(grads=np.ones((0, 3))), InvalidArgumentError, ["grads", "non-empty"]),
    ("grads no columns", dict(grads=np.ones((3, 0))), InvalidArgumentError, ["grads", "non-empty"]),
    ("grads not numeric", dict(grads=[["a"]]), InvalidArgumentError, ["grads"]),
    ("grads NaN", dict(grads=with_entry(G, 4, 1, np.nan)), InvalidArgumentError, ["grads", "NaN"]),
    ("grads Inf", dict(grads=with_entry(G, 9, 2, np.inf)), InvalidArgumentError, ["grads"]),
    ("grads f32 NaN", dict(grads=with_entry(G, 0, 0, np.nan).astype(np.float32)), InvalidArgumentError, ["grads"]),
    ("grads f32 -Inf", dict(grads=with_entry(G, 0, 0, -np.inf).astype(np.float32)), InvalidArgumentError, ["grads"]),
    ("grads sum overflows", dict(grads=np.full((3, 2), 1e308)), InvalidArgumentError, ["grads"]),
    ("batch_size zero", dict(batch_size=0), InvalidArgumentError, ["batch_size", "at least 1"]),
    ("batch_size negative", dict(batch_size=-3), InvalidArgumentError, ["batch_size"]),
    ("batch_size float", dict(batch_size=2.0), InvalidArgumentError, ["batch_size", "integer"]),
    ("batch_size bool", dict(batch_size=True), InvalidArgumentError, ["batch_size", "integer"]),
    ("batch_size None", dict(batch_size=None), InvalidArgumentError, ["batch_size"]),
    ("S > N without replacement", dict(batch_size=11, replacement=False), InvalidArgumentError,
     ["batch_size", "11", "10"]),
    ("kind unknown", dict(kind="upper"), InvalidArgumentError, ["kind", "upper"]),
    ("kind None", dict(kind=None), InvalidArgumentError, ["kind"]),
    ("kind unhashable", dict(kind=["full"]), InvalidArgumentError, ["kind"]),
    ("kind wrong case", dict(kind="Full"), InvalidArgumentError, ["kind"]),
]


@pytest.mark.parametrize("label, kwargs, cls, words", NOISE_BAD, ids=[c[0] for c in NOISE_BAD])
def test_noise_covariance_bad_input(label, kwargs, cls, words):
    args = dict(grads=G, batch_size=2) | kwargs
    grads, s = args.pop("grads"), args.pop("batch_size")
    err = expect(cls, words, sgdnoise.noise_covariance, grads, s, **args)
    assert isinstance(err, ValueError)
    assert np.isfinite(sgdnoise.noise_covariance(G, 2)).all()


def test_batch_larger_than_n_is_fine_with_replacement():
    np.testing.assert_allclose(sgdnoise.noise_covariance(G, 11) * 11, sgdnoise.noise_covariance(G, 1),
                               rtol=1e-15, atol=0)


# --- regression tests for bugs found while writing these tests (all fixed) --------------------

def test_batch_size_beyond_ptrdiff_is_rejected():
    expect(InvalidArgumentError, ["batch_size"], sgdnoise.noise_covariance, G, 2**64 + 5)


@pytest.mark.parametrize("kwargs, word", [(dict(lr="fast"), "lr"), (dict(momentum="x"), "momentum"),
                                          (dict(momentum=None), "momentum")])
def test_non_numeric_scalars_are_invalid_arguments(kwargs, word):
    args = dict(hessian=H2, noise=C2, lr=0.5) | kwargs
    with pytest.raises(InvalidArgumentError, match=word):
        sgdnoise.stationary_covariance(**args)


def test_ragged_grads_are_an_invalid_argument():
    expect(InvalidArgumentError, ["grads"], sgdnoise.noise_covariance, [[1.0, 2.0], [3.0]], 1)


@pytest.mark.parametrize("which", ["hessian", "grads"])
def test_complex_input_is_rejected(which):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        with pytest.raises(InvalidArgumentError, match=which):
            if which == "hessian":
                sgdnoise.stationary_covariance(H2 + 1j, C2, 0.5)
            else:
                sgdnoise.noise_covariance(G + 1j, 2)


def test_overflowing_noise_is_a_numerical_error():
    with pytest.raises(NumericalError):
        sgdnoise.noise_covariance(np.array([[1e200, 0.0], [-1e200, 0.0]]), 1)


# --- outputs untouched, raw C calls that must not crash ----------------------------------------

def test_outputs_untouched_on_failure():
    lib = sgdnoise._lib.lib
    out = np.full((2, 2), 12345.0)
    h = np.ascontiguousarray(H2)
    c = np.ascontiguousarray(C2)
    status = lib.sgdnoise_stationary_covariance(2, h.ctypes.data, c.ctypes.data, 100.0, None, 0.0,
                                                out.ctypes.data)
    assert status == sgdnoise._lib.UNSTABLE
    assert np.all(out == 12345.0)
    g = np.ascontiguousarray(G)
    status = lib.sgdnoise_noise_covariance(10, 3, g.ctypes.data, 11, 1, 0, out.ctypes.data)
    assert status == sgdnoise._lib.INVALID_ARGUMENT
    assert np.all(out == 12345.0)


RAW_C_CALLS = r"""
import ctypes, math, numpy as np
import sgdnoise
from sgdnoise import _lib
lib = _lib.lib
out = np.zeros(16); g = np.ones((4, 2)); h = np.eye(2)
calls = {
    "noise NULL grads": lambda: lib.sgdnoise_noise_covariance(4, 2, None, 1, 0, 0, out.ctypes.data),
    "noise NULL out": lambda: lib.sgdnoise_noise_covariance(4, 2, g.ctypes.data, 1, 0, 0, None),
    "noise n = 0": lambda: lib.sgdnoise_noise_covariance(0, 2, g.ctypes.data, 1, 0, 0, out.ctypes.data),
    "noise n < 0": lambda: lib.sgdnoise_noise_covariance(-4, 2, g.ctypes.data, 1, 0, 0, out.ctypes.data),
    "noise d < 0": lambda: lib.sgdnoise_noise_covariance(4, -2, g.ctypes.data, 1, 0, 0, out.ctypes.data),
    "noise n*d overflows": lambda: lib.sgdnoise_noise_covariance(2**62, 2**10, g.ctypes.data, 1, 0, 0, out.ctypes.data),
    "noise sampling 7": lambda: lib.sgdnoise_noise_covariance(4, 2, g.ctypes.data, 1, 7, 0, out.ctypes.data),
    "noise kind -1": lambda: lib.sgdnoise_noise_covariance(4, 2, g.ctypes.data, 1, 0, -1, out.ctypes.data),
    "noise f32 NULL": lambda: lib.sgdnoise_noise_covariance_f32(4, 2, None, 1, 0, 0, out.ctypes.data),
    "stationary NULL hessian": lambda: lib.sgdnoise_stationary_covariance(2, None, h.ctypes.data, 0.5, None, 0.0, out.ctypes.data),
    "stationary NULL noise": lambda: lib.sgdnoise_stationary_covariance(2, h.ctypes.data, None, 0.5, None, 0.0, out.ctypes.data),
    "stationary NULL out": lambda: lib.sgdnoise_stationary_covariance(2, h.ctypes.data, h.ctypes.data, 0.5, None, 0.0, None),
    "stationary d = 0": lambda: lib.sgdnoise_stationary_covariance(0, h.ctypes.data, h.ctypes.data, 0.5, None, 0.0, out.ctypes.data),
    "stationary d < 0": lambda: lib.sgdnoise_stationary_covariance(-2, h.ctypes.data, h.ctypes.data, 0.5, None, 0.0, out.ctypes.data),
    "stationary d huge": lambda: lib.sgdnoise_stationary_covariance(2**40, h.ctypes.data, h.ctypes.data, 0.5, None, 0.0, out.ctypes.data),
    "stationary lr NaN": lambda: lib.sgdnoise_stationary_covariance(2, h.ctypes.data, h.ctypes.data, math.nan, None, 0.0, out.ctypes.data),
    "stationary lr*matrix": lambda: lib.sgdnoise_stationary_covariance(2, h.ctypes.data, h.ctypes.data, -1.0, h.ctypes.data, 0.0, out.ctypes.data),
}
for name, call in calls.items():
    status = call()
    message = lib.sgdnoise_last_error_message().decode()
    assert status != 0 and message, (name, status, message)
    print(f"{name}: {status}: {message}")
assert lib.sgdnoise_stationary_covariance(2, h.ctypes.data, h.ctypes.data, 0.5, None, 0.0, out.ctypes.data) == 0
print("survived")
"""


def test_raw_c_calls_with_null_pointers_and_bad_sizes_do_not_crash():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PYTHON_DIR), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", RAW_C_CALLS], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("survived")
    assert "must not be NULL" in proc.stdout


# --- thread safety ------------------------------------------------------------------------------

def thread_tasks(rng):
    """(name, thunk) pairs: successful and failing calls of both functions, each failing call with
    a message of its own."""
    tasks = []
    for k in range(6):
        g = rng.standard_normal((600, 30)) + k
        g32 = g.astype(np.float32)
        tasks.append((f"noise {k}", lambda g=g, k=k: sgdnoise.noise_covariance(g, k + 1, replacement=bool(k % 2))))
        tasks.append((f"noise32 {k}", lambda g=g32, k=k: sgdnoise.noise_covariance(g, k + 2, kind="diag")))
        q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
        h = (q * rng.uniform(0.1, 1.0, 30)) @ q.T
        h = 0.5 * (h + h.T)
        c = np.cov(rng.standard_normal((30, 100)))
        mu = (0.0, 0.5, 0.9)[k % 3]
        tasks.append((f"stationary {k}", lambda h=h, c=c, mu=mu: sgdnoise.stationary_covariance(h, c, 0.8, mu)))
        lam = q.T @ np.diag(rng.uniform(0.3, 1.0, 30)) @ q  # rho(lam h) <= 1: stable
        lam = 0.5 * (lam + lam.T)
        tasks.append((f"stationary-matrix {k}", lambda h=h, c=c, lam=lam: sgdnoise.stationary_covariance(h, c, lam, 0.3)))
        # Failing calls, each with its own message.
        tasks.append((f"unstable {k}", lambda h=h, c=c, k=k: sgdnoise.stationary_covariance(h, c, 10.0 + k)))
        tasks.append((f"too-big batch {k}", lambda g=g, k=k: sgdnoise.noise_covariance(g[: 100 + k], 200 + k, replacement=False)))
        tasks.append((f"nan {k}", lambda h=h, c=c, k=k: sgdnoise.stationary_covariance(with_entry(h, k, k + 1, np.nan), c, 0.5)))
        tasks.append((f"momentum {k}", lambda h=h, c=c, k=k: sgdnoise.stationary_covariance(h, c, 0.5, momentum=1.0 + k)))
    return tasks


def run(thunk):
    """The result, or (exception class, message, critical_learning_rate)."""
    try:
        return thunk()
    except SGDNoiseError as exc:
        return (type(exc), str(exc), getattr(exc, "critical_learning_rate", None))


def test_threads_get_serial_results_and_their_own_errors(rng):
    tasks = thread_tasks(rng)
    serial = {name: run(thunk) for name, thunk in tasks}
    # The failing calls really fail, with distinct messages.
    messages = [v[1] for v in serial.values() if isinstance(v, tuple)]
    assert len(messages) == 24 and len(set(messages)) == 24
    order = [tasks[i] for i in rng.permutation(np.repeat(np.arange(len(tasks)), 4))]
    start = threading.Barrier(8)

    def worker(item):
        name, thunk = item
        return name, run(thunk)

    def first(item):
        start.wait()  # all eight threads begin together
        return worker(item)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(first, order[:8])) + list(pool.map(worker, order[8:]))
    assert len(results) == len(order)
    for name, got in results:
        want = serial[name]
        if isinstance(want, tuple):
            assert got == want, f"{name}: {got} != {want}"
        else:
            # Same data, same code path: identical up to the order of BLAS's floating-point sums,
            # which may depend on how many BLAS threads were free.
            scale = np.abs(want).max()
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * scale, err_msg=name)


def test_error_message_is_per_thread():
    """A failure on one thread does not change the message another thread reads."""
    lib = sgdnoise._lib.lib
    here = threading.Event()
    there = threading.Event()
    seen = {}

    def other():
        lib.sgdnoise_noise_covariance(0, 1, None, 1, 0, 0, None)  # fails: "grads must not be NULL"
        there.set()
        here.wait(10)
        seen["other"] = lib.sgdnoise_last_error_message().decode()

    t = threading.Thread(target=other)
    t.start()
    there.wait(10)
    with pytest.raises(UnstableError):
        sgdnoise.stationary_covariance([[1.0]], [[1.0]], 5.0)
    mine = lib.sgdnoise_last_error_message().decode()
    here.set()
    t.join()
    assert "critical learning rate" in mine
    assert "NULL" in seen["other"] and "critical" not in seen["other"]
    assert not math.isnan(lib.sgdnoise_last_error_critical_learning_rate())
