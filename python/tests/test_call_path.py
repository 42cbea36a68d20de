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
from sgdnoise.models import Prediction, _frozen


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


def test_frozen_builds_what_the_constructor_builds():
    fields = {f.name: float(k) for k, f in enumerate(dataclasses.fields(DatasetPrediction))}
    fast, slow = _frozen(DatasetPrediction, **fields), DatasetPrediction(**fields)
    assert fast == slow and repr(fast) == repr(slow)
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
