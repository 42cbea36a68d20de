"""The fast paths of a model call's argument conversion and result assembly (issue 15) give what the
general paths give: the same pointers, the same arrays, the same results. No timing here; the
speed is measured side by side in `make bench` (the "2×2 call" cases)."""

from __future__ import annotations

import ctypes
import dataclasses

import numpy as np
import pytest

import sgdnoise
from sgdnoise import _arrays, _capi
from sgdnoise.dataset import DatasetPrediction
from sgdnoise.models import Prediction, _prediction


def _read_only(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("array", [np.ones((3, 3)), np.ones(4, dtype=np.float32), _read_only(np.ones(2)),
                                   np.empty(0), np.ones(6)[::2]],
                         ids=["writable", "float32", "read-only", "empty", "strided"])
def test_ptr_is_the_data_pointer(array):
    assert _arrays.ptr(array) == array.ctypes.data


def test_ptr_of_a_struct_and_of_none():
    assert _arrays.ptr(None) is None
    info = _capi.sgdnoise_fluctuation_info()
    assert ctypes.addressof(_arrays.ptr(info)._obj) == ctypes.addressof(info)


@pytest.mark.parametrize("x, expected", [(0.5, True), (3, True), (True, True), (np.float64(1.0), True),
                                         (np.array(2.0), True), ([1.0], False), (np.ones((2, 2)), False)])
def test_is_scalar_is_ndim_zero(x, expected):
    assert _arrays.is_scalar(x) is expected is (np.ndim(x) == 0)


@pytest.mark.parametrize("d", [1, 2, 64, 65])
@pytest.mark.parametrize("value", [0.1, -2.5])
def test_scaled_identity_is_value_times_eye(d, value):
    got = _arrays.scaled_identity(value, d)
    want = value * np.eye(d)
    assert got.tobytes() == want.tobytes() and got.flags.writeable
    got[0, 0] = 7.0  # the cached identity is not the result
    assert _arrays.scaled_identity(value, d).tobytes() == want.tobytes()


@pytest.mark.parametrize("kappa", [0.25, float("nan")], ids=["kappa", "no-kappa"])
@pytest.mark.parametrize("cls", [Prediction, DatasetPrediction])
def test_prediction_builds_what_the_constructor_builds(cls, kappa):
    scalars = _capi.sgdnoise_prediction()
    scalars.train_loss, scalars.test_loss, scalars.kappa = 1.5, 2.5, kappa
    scalars.critical_learning_rate, scalars.coupling_trace, scalars.flat_direction_noise = float("nan"), 0.75, 0.0
    sigma, noise, mean = np.eye(2), 2 * np.eye(2), np.ones(2)
    extra = dict(iterations=3, residual=1e-15, spectral_radius=0.5) if cls is DatasetPrediction else {}
    fast = _prediction(sigma, noise, mean, scalars, cls, **extra)
    slow = cls(sigma=sigma, noise=noise, mean=mean, train_loss=1.5, test_loss=2.5,
               kappa=None if kappa != kappa else kappa, critical_learning_rate=None, coupling_trace=0.75,
               flat_direction_noise=0.0, **extra)
    # Every field set (none left to a class default), each equal to the constructor's.
    assert type(fast) is cls and set(vars(fast)) == {f.name for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        assert np.array_equal(getattr(fast, f.name), getattr(slow, f.name)), f.name
    assert repr(fast) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.train_loss = 0.0  # type: ignore[misc]


def test_a_read_only_or_list_argument_gives_the_same_prediction():
    a = np.array([[1.0, 0.1], [0.1, 0.5]])
    u = np.array([1.0, -0.5])
    base = sgdnoise.l2_regularized(a, u, 0.1, 0.5, 10)
    for args in ((_read_only(a), _read_only(u)), (a.tolist(), u.tolist())):
        p = sgdnoise.l2_regularized(*args, np.float64(0.1), np.float64(0.5), np.int64(10))
        assert isinstance(p, Prediction)
        for f in dataclasses.fields(Prediction):
            assert np.array_equal(getattr(p, f.name), getattr(base, f.name)), f.name
