"""One contract, two faces: the same bad inputs through the Python API and through the raw C ABI
give the same kind of error and the same structured data (the critical learning rate as a value).
Tests/SGDNoiseTests/ContractTests.swift drives the same inputs through the Swift core and C, so
the three faces agree and no face holds a rule the core lacks."""

from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest

import sgdnoise
from sgdnoise import _capi, _lib

# (name, spectrum, noise_var, lr, batch_size, momentum, expected status)
CASES = [
    ("batch size 0", [1, 0.5], 1.0, 0.5, 0, 0.0, _capi.SGDNOISE_STATUS_INVALID_ARGUMENT),
    ("momentum 1", [1, 0.5], 1.0, 0.5, 4, 1.0, _capi.SGDNOISE_STATUS_INVALID_ARGUMENT),
    ("negative momentum", [1, 0.5], 1.0, 0.5, 4, -0.1, _capi.SGDNOISE_STATUS_INVALID_ARGUMENT),
    ("NaN noise variance", [1, 0.5], math.nan, 0.5, 4, 0.0, _capi.SGDNOISE_STATUS_INVALID_ARGUMENT),
    ("zero learning rate", [1, 0.5], 1.0, 0.0, 4, 0.0, _capi.SGDNOISE_STATUS_INVALID_ARGUMENT),
    ("NaN in the spectrum", [1, math.nan], 1.0, 0.5, 4, 0.0, _capi.SGDNOISE_STATUS_INVALID_ARGUMENT),
    ("negative eigenvalue of A", [1, -0.5], 1.0, 0.5, 4, 0.0, _capi.SGDNOISE_STATUS_INVALID_ARGUMENT),
    ("above the critical learning rate", [1, 0.5], 1.0, 1.9, 1, 0.0, _capi.SGDNOISE_STATUS_UNSTABLE),
    ("above it with momentum", [1, 0.5], 1.0, 3.0, 10, 0.5, _capi.SGDNOISE_STATUS_UNSTABLE),
    ("overflowing scale", [1e-300, 1e-300], 1e308, 1e300, 100, 0.0, _capi.SGDNOISE_STATUS_NUMERICAL_FAILURE),
]

EXCEPTION = {
    _capi.SGDNOISE_STATUS_INVALID_ARGUMENT: sgdnoise.InvalidArgumentError,
    _capi.SGDNOISE_STATUS_UNSTABLE: sgdnoise.UnstableError,
    _capi.SGDNOISE_STATUS_NUMERICAL_FAILURE: sgdnoise.NumericalError,
}


def c_label_noise(spectrum, noise_var, lr, batch_size, momentum):
    a = np.asarray(spectrum, dtype=float)
    sigma = np.full(a.size, -7.0)
    status = _lib.lib.sgdnoise_label_noise(_capi.SGDNOISE_LAYOUT_DIAGONAL, a.size, a.ctypes.data, noise_var, lr, None,
                                           batch_size, momentum, sigma.ctypes.data, None, None)
    return status, _lib.lib.sgdnoise_last_error_critical_learning_rate(), sigma


@pytest.mark.parametrize("name, spectrum, noise_var, lr, batch_size, momentum, expected", CASES, ids=[c[0] for c in CASES])
def test_python_and_c_agree(name, spectrum, noise_var, lr, batch_size, momentum, expected):
    status, c_critical, sigma = c_label_noise(spectrum, noise_var, lr, batch_size, momentum)
    assert status == expected
    assert np.all(sigma == -7.0), "outputs must stay untouched on failure"
    with pytest.raises(EXCEPTION[expected]) as info:
        sgdnoise.label_noise(np.asarray(spectrum, dtype=float), noise_var, lr, batch_size, momentum)
    if expected == _capi.SGDNOISE_STATUS_UNSTABLE:
        assert info.value.critical_learning_rate == c_critical
        direct = sgdnoise.critical_learning_rate(np.asarray(spectrum), batch_size, momentum)
        assert info.value.critical_learning_rate == pytest.approx(direct, rel=1e-12)
        assert lr > direct
    else:
        assert math.isnan(c_critical)


def test_matrix_learning_rate_critical_rate_in_callers_units():
    """C's lr * lr_matrix convention: lambda* is reported in units of lr, as a value."""
    h, c, m = np.diag([1.0, 0.5]), np.diag([0.02, 0.01]), np.diag([1.0, 2.0])
    out = np.full(4, -7.0)
    status = _lib.lib.sgdnoise_stationary_covariance(2, h.ctypes.data, c.ctypes.data, 3.0, m.ctypes.data, 0.0,
                                                     out.ctypes.data)
    assert status == _capi.SGDNOISE_STATUS_UNSTABLE
    assert _lib.lib.sgdnoise_last_error_critical_learning_rate() == pytest.approx(2.0, rel=1e-12)
    # Python passes the matrix itself: lambda* is the largest stable multiple of it.
    with pytest.raises(sgdnoise.UnstableError) as info:
        sgdnoise.stationary_covariance(h, c, lr=3.0 * m)
    assert info.value.critical_learning_rate == pytest.approx(2.0 / 3.0, rel=1e-12)


def test_result_struct_of_an_older_smaller_size_is_filled_up_to_its_size():
    """The size-prefixed struct pattern from Python: a caller that knows only the first two fields."""
    class Older(ctypes.Structure):
        _fields_ = [("size", ctypes.c_size_t), ("train_loss", ctypes.c_double), ("test_loss", ctypes.c_double)]

    buffer = (ctypes.c_ubyte * ctypes.sizeof(_capi.sgdnoise_prediction))(*([0xAB] * ctypes.sizeof(_capi.sgdnoise_prediction)))
    older = Older.from_buffer(buffer)
    older.size = ctypes.sizeof(Older)
    a = np.array([1.0, 0.5])
    status = _lib.lib.sgdnoise_label_noise(_capi.SGDNOISE_LAYOUT_DIAGONAL, 2, a.ctypes.data, 1.0, 1.5, None, 50, 0.0,
                                           None, None, ctypes.cast(ctypes.byref(older), ctypes.POINTER(_capi.sgdnoise_prediction)))
    assert status == _capi.SGDNOISE_STATUS_OK
    full = sgdnoise.label_noise(a, 1.0, 1.5, 50)
    assert older.train_loss == full.train_loss and older.test_loss == full.test_loss
    assert all(b == 0xAB for b in bytes(buffer)[ctypes.sizeof(Older):]), "wrote past the caller's size"


def test_wrong_freed_and_foreign_handles_are_invalid_arguments():
    lib = _lib.lib
    acc, sim = ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.sgdnoise_accumulator_create(2, ctypes.byref(acc)) == 0
    a = np.eye(2)
    assert lib.sgdnoise_simulation_create_gaussian(2, a.ctypes.data, None, 1.0, None, ctypes.byref(sim)) == 0
    count = ctypes.c_ssize_t(-1)
    assert lib.sgdnoise_accumulator_count(sim, ctypes.byref(count)) == _capi.SGDNOISE_STATUS_INVALID_ARGUMENT
    assert "sgdnoise_simulation" in lib.sgdnoise_last_error_message().decode()
    foreign = np.zeros(8)
    assert lib.sgdnoise_accumulator_count(foreign.ctypes.data, ctypes.byref(count)) == _capi.SGDNOISE_STATUS_INVALID_ARGUMENT
    lib.sgdnoise_accumulator_free(sim)  # a handle of the other kind: ignored
    assert lib.sgdnoise_simulation_run(sim, 10, 0, 1, 0, 1, _lib.PROGRESS_CALLBACK(), None) == 0
    lib.sgdnoise_accumulator_free(acc)
    lib.sgdnoise_accumulator_free(acc)  # double free: harmless
    assert lib.sgdnoise_accumulator_count(acc, ctypes.byref(count)) == _capi.SGDNOISE_STATUS_INVALID_ARGUMENT
    assert count.value == -1
    lib.sgdnoise_simulation_free(sim)
    assert lib.sgdnoise_simulation_run(sim, 10, 0, 1, 0, 1, _lib.PROGRESS_CALLBACK(), None) == _capi.SGDNOISE_STATUS_INVALID_ARGUMENT


def test_version_and_abi_check():
    lib = _lib.lib
    assert lib.sgdnoise_version().decode() == sgdnoise.__version__
    number = lib.sgdnoise_version_number()
    assert number == _lib.VERSION_NUMBER
    assert lib.sgdnoise_abi_compatible(number) == 1
    assert lib.sgdnoise_abi_compatible(number + 100) == 0          # a newer minor than the library
    assert lib.sgdnoise_abi_compatible(number + 10000) == 0        # another major
    assert lib.sgdnoise_abi_compatible((number // 10000) * 10000) == 1  # an older minor of the same major


# --- One vocabulary (docs/vocabulary.md) -----------------------------------------------------------

def test_sampling_names_are_those_of_c_and_swift():
    """simulate's sampling values are the sgdnoise_sampling / Sampling names in snake case."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 2))
    y = x @ [1.0, -1.0] + 0.1 * rng.standard_normal(12)
    for name in ("with_replacement", "without_replacement", "epoch_shuffling"):
        r = sgdnoise.simulate(X=x, y=y, lr=0.1, batch_size=3, sampling=name, steps=200, seed=1)
        assert np.all(np.isfinite(r.sigma))
    with pytest.raises(sgdnoise.InvalidArgumentError, match="epoch_shuffling"):
        sgdnoise.simulate(X=x, y=y, lr=0.1, batch_size=3, sampling="epoch", steps=10)


def test_noise_kind_diagonal_is_the_c_name_of_diag():
    g = np.random.default_rng(6).standard_normal((20, 3))
    np.testing.assert_array_equal(sgdnoise.noise_covariance(g, 4, kind="diagonal"),
                                  sgdnoise.noise_covariance(g, 4, kind="diag"))
    acc = sgdnoise.NoiseAccumulator(3)
    acc.update(g)
    np.testing.assert_array_equal(acc.covariance(4, kind="diagonal"), acc.covariance(4, kind="diag"))


def test_finite_dataset_fills_the_critical_learning_rate_on_request():
    """finite_dataset(critical_learning_rate=True) carries the dataset's λ*, the edge where the
    same call starts to raise UnstableError (checked on both sides, not against itself)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 3))
    y = x @ [0.5, 1.0, -1.0] + 0.3 * rng.standard_normal(40)
    plain = sgdnoise.finite_dataset(x, y, 0.1, 4)
    assert plain.critical_learning_rate is None and plain.kappa is None
    p = sgdnoise.finite_dataset(x, y, 0.1, 4, critical_learning_rate=True)
    critical = p.critical_learning_rate
    assert critical == sgdnoise.critical_learning_rate_dataset(x, 4)
    np.testing.assert_array_equal(p.sigma, plain.sigma)
    sgdnoise.finite_dataset(x, y, critical * (1 - 1e-4), 4)
    with pytest.raises(sgdnoise.UnstableError):
        sgdnoise.finite_dataset(x, y, critical * (1 + 1e-4), 4)


@pytest.mark.parametrize("bad", [None, 3.0, np.zeros((2, 2, 2))])
def test_a_model_argument_of_the_wrong_rank_says_what_is_accepted(bad):
    with pytest.raises(sgdnoise.InvalidArgumentError, match=r"A must be a \(D, D\) symmetric matrix or a 1-D spectrum"):
        sgdnoise.label_noise(bad, 1.0, 0.1, 2)
