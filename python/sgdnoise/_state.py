"""What the two mergeable C handles (the noise accumulator and the noise sketch) share: owning
the handle (``close``, ``with``, freeing when collected), a lock serialising calls from several
threads, and the portable serialized state (``to_bytes``/``from_bytes``, ``pickle``, ``copy``;
docs/state_format.md)."""

from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Callable, Iterable, TypeVar

import numpy as np
import numpy.typing as npt

from . import _lib
from .errors import InvalidArgumentError

_c = _lib.lib
_Self = TypeVar("_Self", bound="MergeableState")


def as_positive(value: object, name: str) -> int:
    """An integer argument that must be at least 1 (``dim``, ``rows``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise InvalidArgumentError(f"{name} must be at least 1, got {value}")
    return int(value)


def as_state_bytes(data: object, name: str = "data") -> npt.NDArray[np.uint8]:
    """Serialized state bytes (bytes, bytearray, memoryview, a uint8 array) as a uint8 array,
    without a copy; an empty buffer is refused."""
    try:
        raw = np.frombuffer(data, dtype=np.uint8)  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{name} must be bytes-like, got {type(data).__name__}: {exc}") from None
    if raw.size == 0:
        raise InvalidArgumentError(f"{name} is empty: not a serialized sgdnoise state")
    return raw


def as_chunk(chunk: npt.ArrayLike, dim: int) -> npt.NDArray[np.float32] | npt.NDArray[np.float64]:
    """A chunk as a C-contiguous (n, dim) float32 or float64 array (float32 kept as float32; a 1-D
    array of ``dim`` entries is one row)."""
    a = np.asarray(chunk)
    dtype = np.float32 if a.dtype == np.float32 else np.float64
    try:
        a = np.ascontiguousarray(a, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"chunk must be a real array: {exc}") from None
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[1] != dim:
        raise InvalidArgumentError(f"chunk must have shape (n, {dim}) (or ({dim},) for one gradient), got {a.shape}")
    return a


class MergeableState:
    """Base of the Python objects over a mergeable C handle ``sgdnoise_<_family>``."""

    _family: str = ""  # the C prefix: sgdnoise_<family>_create, _update, _merge, _export, ...

    def _fn(self, name: str) -> Callable[..., int]:
        return getattr(_c, f"sgdnoise_{self._family}_{name}")

    def _adopt(self, handle: int, dim: int) -> None:
        self._handle: int | None = handle
        self._dim = dim
        self._lock = threading.RLock()
        # The safety net: frees the handle when the object is collected (or at exit) unless close()
        # already did. It holds the address, not the object.
        self._finalizer = weakref.finalize(self, self._fn("free"), handle)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the C state now. Idempotent; every other method raises afterwards."""
        with self._lock:
            self._finalizer()
            self._handle = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._handle is None

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _live(self) -> int:
        handle = self._handle
        if handle is None:
            raise InvalidArgumentError(f"this {type(self).__name__} has been closed; create a new one")
        return handle

    # -- updates --------------------------------------------------------------------------------

    def update(self, chunk: npt.ArrayLike) -> None:
        """Add the rows of ``chunk``.

        Parameters
        ----------
        chunk : (n, D) or (D,) array_like
            Per-sample gradients, one per row (a 1-D array is one gradient). float32 stays float32 in
            memory; anything else is converted to float64. ``n = 0`` does nothing.

        Raises
        ------
        InvalidArgumentError
            Wrong shape, NaN/Inf entries, entries so large that the state would overflow (it is
            then unchanged), or a closed object.
        """
        g = as_chunk(chunk, self._dim)
        with self._lock:
            handle = self._live()
            if g.shape[0] == 0:
                return
            fn = self._fn("update_f32" if g.dtype == np.float32 else "update")
            _lib.check(fn(handle, g.shape[0], g.ctypes.data))

    def merge(self, other: MergeableState) -> None:
        """Add everything ``other`` has seen (``other`` is unchanged).

        Afterwards ``self`` describes the union of both sets of gradients. Merging an object with
        itself counts its gradients twice.

        Raises
        ------
        InvalidArgumentError
            ``other`` is not of the same class, has another shape, or either is closed.
        """
        if not isinstance(other, type(self)):
            raise InvalidArgumentError(f"other must be a {type(self).__name__}, got {type(other).__name__}")
        first, second = sorted((self, other), key=id)  # a fixed lock order: no deadlock
        with first._lock, second._lock:
            _lib.check(self._fn("merge")(self._live(), other._live()))

    # -- queries --------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """The dimension :math:`D`."""
        return self._dim

    def _query(self, name: str) -> int:
        out = _lib.c_ptrdiff()
        with self._lock:
            _lib.check(self._fn(name)(self._live(), ctypes.byref(out)))
        return int(out.value)

    @property
    def count(self) -> int:
        """The number of gradients seen, :math:`N`."""
        return self._query("count")

    @property
    def mean(self) -> npt.NDArray[np.float64]:
        """The mean gradient :math:`\\bar g`, shape (D,) (InvalidArgumentError when empty)."""
        out = np.empty(self._dim)
        with self._lock:
            _lib.check(self._fn("mean")(self._live(), out.ctypes.data))
        return out

    # -- serialisation --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The state as portable bytes (docs/state_format.md).

        Little-endian: a 24-byte header (magic ``b"SGDNSTAT"``, format version, kind, payload
        length), the payload, and an XXH64 checksum of everything before it. The size depends only
        on the shape (never on the count), and nothing about the batch size or the sampling is
        stored. :meth:`from_bytes` restores the state bit for bit in any process, so shards
        shipped between processes or machines merge as the originals would. ``pickle`` and
        ``copy`` use the same bytes.
        """
        size = _lib.c_ptrdiff()
        with self._lock:
            handle = self._live()
            _lib.check(self._fn("state_size")(handle, ctypes.byref(size)))
            out = np.empty(size.value, dtype=np.uint8)
            _lib.check(self._fn("export")(handle, out.ctypes.data))
        return out.tobytes()

    @classmethod
    def from_bytes(cls: type[_Self], data: bytes | bytearray | memoryview) -> _Self:
        """An object restored from :meth:`to_bytes` (of this or any other process).

        Raises
        ------
        InvalidArgumentError
            ``data`` is not an intact state of this class: wrong size, magic, format version or
            kind, a checksum that does not match, or impossible contents.
        """
        raw = as_state_bytes(data)
        family = cls._family
        handle = ctypes.c_void_p()
        _lib.check(getattr(_c, f"sgdnoise_{family}_import")(raw.size, raw.ctypes.data, ctypes.byref(handle)))
        d = _lib.c_ptrdiff()
        try:
            _lib.check(getattr(_c, f"sgdnoise_{family}_dimension")(handle.value, ctypes.byref(d)))
        except BaseException:
            getattr(_c, f"sgdnoise_{family}_free")(handle.value)
            raise
        self = cls.__new__(cls)
        self._adopt(handle.value, int(d.value))
        return self

    def __reduce__(self) -> tuple:
        return (type(self).from_bytes, (self.to_bytes(),))

    def copy(self: _Self) -> _Self:
        """An independent object with the same state."""
        return type(self).from_bytes(self.to_bytes())

    def __copy__(self: _Self) -> _Self:
        return self.copy()

    def __deepcopy__(self: _Self, memo: dict) -> _Self:
        return self.copy()


def merged(states: Iterable[_Self]) -> _Self:
    """A new state holding everything ``states`` have seen: a copy of the first with each next one
    merged into it, in the given order (the inputs are unchanged).

    The one merge of shards that :mod:`sgdnoise.dask` (a tree of these, one per node) and
    :func:`sgdnoise.torch.all_reduce_noise` (the ranks' states, in rank order) share. Merges are
    deterministic, so the same states in the same order give the same bytes in every process.
    """
    items = list(states)
    if not items:
        raise InvalidArgumentError("there is no state to merge")
    out = items[0].copy()
    try:
        for state in items[1:]:
            out.merge(state)
    except BaseException:
        out.close()
        raise
    return out
