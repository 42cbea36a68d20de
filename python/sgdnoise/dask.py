r"""Dask adapter: the minibatch noise of per-sample gradients held in a ``dask.array``, computed
where the chunks are (docs/theory.md §2 and §10; docs/state_format.md).

Each chunk of rows becomes a mergeable state on the worker that holds it — a
:class:`~sgdnoise.NoiseAccumulator` (count :math:`n_b`, mean :math:`m_b`, centred scatter
:math:`S_b`) or a :class:`~sgdnoise.NoiseSketch` — and ``dask.array.reduction`` merges the states
along a tree (``chunk``: the state of a block; ``combine``: merge; ``aggregate``: merge into the
final state). The accumulator's merge is the exact pairwise update of Chan, Golub and LeVeque,

.. math::

    n = n_a + n_b,\quad \delta = m_b - m_a,\quad \bar g = m_a + \tfrac{n_b}{n}\delta,\quad
    S = S_a + S_b + \tfrac{n_a n_b}{n}\,\delta\delta^\top ,

so the result equals the one-shot :func:`sgdnoise.noise_covariance` of all the rows up to rounding,
whatever the chunking and the shape of the tree. What travels between workers and back to the
client are the states, as their portable bytes (``pickle`` uses ``to_bytes``: for the accumulator
:math:`32 + 8(2 + D + D(D+1)/2)` bytes whatever the number of rows), never the per-sample rows —
unless the array is chunked along its columns, in which case it is first rechunked to whole rows
(a :class:`dask.array.core.PerformanceWarning` says so).

The functions compute at once, with the current scheduler (a ``dask.distributed.Client`` when one is
active, else dask's default), and return numpy arrays and sgdnoise objects: the expensive part is
the one pass over the rows, which ends in a small state, and everything after it (a covariance for
any batch size or sampling, the noise scales, top eigenpairs) is cheap on the client.
:func:`noise_accumulator` returns that state, to ask several questions of one pass.

Needs ``dask[array]`` (and ``distributed`` for a cluster); ``import sgdnoise`` alone never imports
dask. The workers must be able to import ``sgdnoise`` and load the same ``libsgdnoise.so`` (set
``SGDNOISE_LIBRARY`` in their environment where it is not found by default).

Examples
--------
>>> import numpy as np, dask.array as da, sgdnoise, sgdnoise.dask
>>> g = np.random.default_rng(0).normal(size=(1000, 4))
>>> grads = da.from_array(g, chunks=(130, 4))              # 8 chunks of rows
>>> C = sgdnoise.dask.noise_covariance(grads, batch_size=10)
>>> bool(np.allclose(C, sgdnoise.noise_covariance(g, 10), rtol=1e-12, atol=0))
True
"""

from __future__ import annotations

import ctypes
import functools
import warnings
from typing import Any, Callable, Iterator, Literal, TypeVar, overload

import numpy as np
import numpy.typing as npt

import dask as _dask
import dask.array as _da
from dask.array.core import PerformanceWarning
from dask.sizeof import sizeof as _sizeof

from . import _lib
from ._arrays import as_batch_size
from ._state import MergeableState, as_positive, merged
from .accumulator import NoiseAccumulator
from .errors import InvalidArgumentError
from .noise_scales import NoiseScale
from .noise_scales import noise_scale as _noise_scale
from .simulation import SimulationResult, combine_chains, simulate_chains
from .sketch import NoiseSketch

__all__ = ["noise_accumulator", "noise_covariance", "noise_scale", "noise_sketch", "simulate"]

_State = TypeVar("_State", bound=MergeableState)


@_sizeof.register(MergeableState)
def _state_nbytes(state: MergeableState) -> int:
    """What a state weighs for Dask's memory accounting and transfers: its serialized size."""
    return 0 if state.closed else state._query("state_size")


# ----------------------------------------------------------------------------------------------------
# The reduction (chunk -> state, tree of merges)

def _as_rows(grads: Any) -> Any:
    """``grads`` as a 2-D dask array of real numbers with all its columns in one chunk."""
    x = grads if isinstance(grads, _da.Array) else _da.asarray(grads)
    if x.ndim != 2:
        raise InvalidArgumentError(f"grads must be a 2-D array (N, D) of per-sample gradients, got shape {x.shape}")
    if np.isnan(x.shape[1]) or x.shape[1] < 1:
        raise InvalidArgumentError(f"grads must have a known number D >= 1 of columns, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise InvalidArgumentError(f"grads must hold real numbers, got dtype {x.dtype}")
    if x.numblocks[1] > 1:
        warnings.warn(f"grads is chunked along its columns ({x.numblocks[1]} column chunks); it is rechunked to "
                      "whole rows first, which moves the rows between workers. Chunk it along rows only "
                      "(chunks=(rows, -1)) to avoid that.", PerformanceWarning, stacklevel=3)
        x = x.rechunk({1: -1})
    return x


def _flat(parts: Any) -> Iterator[MergeableState]:
    """The states of a (nested) list of them, as ``reduction(concatenate=False)`` hands them over."""
    if isinstance(parts, (list, tuple)):
        for p in parts:
            yield from _flat(p)
    else:
        yield parts


def _chunk_state(block: np.ndarray, axis: tuple[int, ...], keepdims: bool,
                 factory: Callable[[], MergeableState]) -> MergeableState:
    """``chunk`` of the reduction: the state of one block of rows (float32 stays float32)."""
    state = factory()
    state.update(block)
    return state


def _combine_states(parts: Any, axis: tuple[int, ...], keepdims: bool) -> MergeableState:
    """``combine`` of the reduction: one new state merging its inputs in order (inputs unchanged)."""
    return merged(_flat(parts))


def _aggregate_states(parts: Any, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """``aggregate`` of the reduction: the final merged state, as the 0-d object block of the result."""
    out = np.empty((), dtype=object)
    out[()] = merged(_flat(parts))
    return out


def _as_split_every(split_every: int | None) -> int:
    if split_every is None:
        split_every = _dask.config.get("split_every", None) or 4
    if isinstance(split_every, (bool, np.bool_)) or not isinstance(split_every, (int, np.integer)) \
            or split_every < 2:
        raise InvalidArgumentError(f"split_every must be an integer >= 2, got {split_every!r}")
    return int(split_every)


def _reduce(x: Any, factory: Callable[[], _State], split_every: int | None, name: str) -> _State:
    """The merged state of every row of ``x`` (a checked dask array), by a tree reduction."""
    fan_in = _as_split_every(split_every)
    result = _da.reduction(x, functools.partial(_chunk_state, factory=factory), _aggregate_states,
                           combine=_combine_states, axis=(0, 1), keepdims=False, concatenate=False,
                           split_every={0: fan_in, 1: 1}, dtype=object, meta=np.empty((), dtype=object),
                           name=name)
    return result.compute().item()


# ----------------------------------------------------------------------------------------------------
# The public functions

def noise_accumulator(grads: _da.Array | npt.ArrayLike, *, split_every: int | None = None) -> NoiseAccumulator:
    r"""One :class:`~sgdnoise.NoiseAccumulator` of all the rows of a dask array, by a tree of merges.

    Every chunk of rows is accumulated on its worker (count, mean and centred scatter,
    :math:`S_b = \sum_{i\in b}(g_i - m_b)(g_i - m_b)^\top`), and the states are merged with the
    exact pairwise update :math:`S = S_a + S_b + \tfrac{n_a n_b}{n}\delta\delta^\top` (module
    docstring). From the result, ``covariance(S, replacement, kind)`` for any batch size,
    :func:`sgdnoise.noise_scale`, ``mean`` and ``count`` cost no further pass over the rows.

    Parameters
    ----------
    grads : (N, D) dask.array.Array (or array_like)
        Per-sample gradients, one per row, chunked along the rows (column chunks are joined first,
        with a ``PerformanceWarning``). float32 chunks stay float32 until the C layer, which widens
        them block by block; integers are read as float64. Chunks may be empty.
    split_every : int, optional
        How many states one merge task combines (:math:`\ge 2`); default dask's ``split_every``
        setting, else 4. The tree has :math:`\lceil\log_{\text{split\_every}}(\text{chunks})\rceil`
        levels.

    Returns
    -------
    NoiseAccumulator
        Of ``count`` N (0 when ``grads`` has no rows), on the client.

    Raises
    ------
    InvalidArgumentError
        ``grads`` not 2-D, of unknown or zero width, not real; NaN/Inf entries (raised by the worker
        that meets them); a bad ``split_every``.

    Notes
    -----
    Each worker holds a :math:`D \times D` state per chunk it is merging (at most about
    ``split_every`` per tree level), so chunks of at least D rows keep the states no larger than the
    data. Merges are deterministic: the same chunking and ``split_every`` give the same bytes on the
    same workers (a sketch's last bits also depend on the BLAS threads, one per worker by default).

    Examples
    --------
    >>> import numpy as np, dask.array as da, sgdnoise, sgdnoise.dask
    >>> g = np.random.default_rng(1).normal(size=(500, 3)).astype(np.float32)
    >>> acc = sgdnoise.dask.noise_accumulator(da.from_array(g, chunks=(64, 3)))
    >>> acc.count, bool(np.allclose(acc.mean, g.mean(axis=0, dtype=np.float64), rtol=1e-12))
    (500, True)
    """
    x = _as_rows(grads)
    return _reduce(x, functools.partial(NoiseAccumulator, int(x.shape[1])), split_every, "sgdnoise-accumulator")


@overload
def noise_covariance(grads: _da.Array | npt.ArrayLike, batch_size: int, *, replacement: bool = ...,
                     kind: Literal["full", "diag", "diagonal"] = ...,
                     split_every: int | None = ...) -> npt.NDArray[np.float64]: ...


@overload
def noise_covariance(grads: _da.Array | npt.ArrayLike, batch_size: int, *, replacement: bool = ...,
                     kind: Literal["trace"], split_every: int | None = ...) -> float: ...


@overload
def noise_covariance(grads: _da.Array | npt.ArrayLike, batch_size: int, *, replacement: bool = ...,
                     kind: Literal["full", "diag", "diagonal", "trace"] = ...,
                     split_every: int | None = ...) -> npt.NDArray[np.float64] | float: ...


def noise_covariance(grads: _da.Array | npt.ArrayLike, batch_size: int, *, replacement: bool = True,
                     kind: Literal["full", "diag", "diagonal", "trace"] = "full",
                     split_every: int | None = None) -> npt.NDArray[np.float64] | float:
    r"""The minibatch noise covariance [Prop 1] of per-sample gradients held in a dask array.

    .. math::

        C = \frac fN\, S,\qquad S = \sum_{i=1}^N (g_i - \bar g)(g_i - \bar g)^\top,\qquad
        f = \tfrac1S \text{ (with replacement)},\quad f = \tfrac{N-S}{S(N-1)} \text{ (without)},

    the same matrix as :func:`sgdnoise.noise_covariance` of all the rows, up to rounding:
    :func:`noise_accumulator` (chunk states merged along a tree on the workers), then the
    accumulator's ``covariance`` on the client.

    Parameters
    ----------
    grads : (N, D) dask.array.Array (or array_like)
        Per-sample gradients, chunked along the rows (see :func:`noise_accumulator`).
    batch_size : int
        :math:`S \ge 1` (:math:`S \le N` without replacement).
    replacement : bool, default True
        Whether minibatch indices are drawn with replacement.
    kind : {"full", "diag", "trace"}, default "full"
        The (D, D) matrix, its diagonal or its trace (``"diagonal"`` is accepted for ``"diag"``).
        Every kind reduces the full :math:`D \times D` scatter (:math:`O(ND^2)` flops on the
        workers).
    split_every : int, optional
        Merges per tree node (see :func:`noise_accumulator`).

    Returns
    -------
    C : (D, D) ndarray, (D,) ndarray or float
        numpy, float64.

    Raises
    ------
    InvalidArgumentError
        As :func:`noise_accumulator`; no rows; a batch size out of range; an unknown ``kind``
        (checked before any work is sent).

    Examples
    --------
    >>> import numpy as np, dask.array as da, sgdnoise, sgdnoise.dask
    >>> g = np.random.default_rng(0).normal(size=(1000, 3))
    >>> C = sgdnoise.dask.noise_covariance(da.from_array(g, chunks=(100, 3)), 10, replacement=False)
    >>> f = (1000 - 10) / (10 * 999)
    >>> bool(np.allclose(C, f * np.cov(g.T, bias=True), rtol=1e-12, atol=0))
    True
    """
    if kind not in ("full", "diag", "diagonal", "trace"):
        raise InvalidArgumentError(f'kind must be "full", "diag" (or "diagonal") or "trace", got {kind!r}')
    x = _as_rows(grads)
    s = as_batch_size(batch_size)
    if not np.isnan(x.shape[0]):  # the C layer's checks of S against N, before any work is sent
        sampling = _lib.SAMPLING_WITH_REPLACEMENT if replacement else _lib.SAMPLING_WITHOUT_REPLACEMENT
        _lib.check(_lib.lib.sgdnoise_noise_factor(int(x.shape[0]), s, sampling, ctypes.byref(ctypes.c_double())))
    with noise_accumulator(x, split_every=split_every) as acc:
        return acc.covariance(s, replacement, kind)


def noise_scale(grads: _da.Array | npt.ArrayLike, hessian: npt.ArrayLike | None = None, *,
                hvp: Callable[[npt.NDArray[np.float64]], npt.ArrayLike] | None = None,
                split_every: int | None = None) -> NoiseScale:
    r"""The gradient noise scales of McCandlish et al. (2018) of per-sample gradients held in a dask
    array: :func:`sgdnoise.noise_scale` of :func:`noise_accumulator`.

    .. math::

        B_\text{simple} = \frac{\operatorname{Tr}\Sigma_1}{|G|^2},\qquad
        B_\text{noise} = \frac{\operatorname{Tr}(H\Sigma_1)}{G^\top H G},\qquad
        \Sigma_1 = \frac1N S,\quad G = \bar g .

    Parameters
    ----------
    grads : (N, D) dask.array.Array (or array_like)
        Per-sample gradients, chunked along the rows (see :func:`noise_accumulator`).
    hessian : (D, D) array_like, optional
        A dense symmetric Hessian :math:`H` (gives ``b_noise``); used on the client.
    hvp : callable, optional, keyword-only
        ``hvp(v) -> H v`` instead of ``hessian``; called on the client, on at most D eigenvectors of
        :math:`\Sigma_1` and on :math:`G` (as :func:`sgdnoise.noise_scale` does for an accumulator).
    split_every : int, optional
        Merges per tree node.

    Returns
    -------
    NoiseScale
        The same fields as :func:`sgdnoise.noise_scale` of all the rows, up to rounding.

    Raises
    ------
    InvalidArgumentError
        As :func:`noise_accumulator` and :func:`sgdnoise.noise_scale` (both ``hessian`` and ``hvp``
        is refused before any work is sent).

    Examples
    --------
    >>> import numpy as np, dask.array as da, sgdnoise, sgdnoise.dask
    >>> g = np.random.default_rng(0).normal(size=(2000, 3)) + [1.0, 0.0, 0.5]
    >>> r = sgdnoise.dask.noise_scale(da.from_array(g, chunks=(300, 3)))
    >>> bool(np.isclose(r.b_simple, sgdnoise.noise_scale(g).b_simple, rtol=1e-12))
    True
    """
    if hessian is not None and hvp is not None:
        raise InvalidArgumentError("give either hessian or hvp, not both")
    with noise_accumulator(grads, split_every=split_every) as acc:
        return _noise_scale(acc, hessian, hvp=hvp)


def noise_sketch(grads: _da.Array | npt.ArrayLike, rows: int, *, split_every: int | None = None) -> NoiseSketch:
    r"""One Frequent Directions :class:`~sgdnoise.NoiseSketch` of ``rows`` rows of all the per-sample
    gradients of a dask array: a sketch per chunk on its worker, merged along a tree.

    The guarantee of :class:`~sgdnoise.NoiseSketch` holds for the union: with :math:`\hat C =
    (f/N)B^\top B`,

    .. math::

        0 \preceq C - \hat C \preceq \epsilon I,\qquad \epsilon = \tfrac fN \Delta
        \le \tfrac fN\,\frac{\sum_{i>k}\lambda_i(S)}{\ell + 1 - k}\quad (k \le \ell),

    :math:`\epsilon` = ``error_bound(batch_size)``; the count, the mean and
    :math:`\operatorname{Tr} S` are exact. Memory and traffic are :math:`O(\ell D)` per state, for
    dimensions where a :math:`D \times D` accumulator does not fit.

    Parameters
    ----------
    grads : (N, D) dask.array.Array (or array_like)
        Per-sample gradients, chunked along the rows (see :func:`noise_accumulator`).
    rows : int
        :math:`\ell`, :math:`1 \le \ell \le 4096`.
    split_every : int, optional
        Merges per tree node.

    Returns
    -------
    NoiseSketch
        On the client: ``top_eigen(k, batch_size)``, ``error_bound``, ``trace``, ``mean``, ``count``.

    Raises
    ------
    InvalidArgumentError
        As :func:`noise_accumulator`; ``rows`` out of range (checked before any work is sent).

    Examples
    --------
    >>> import numpy as np, dask.array as da, sgdnoise, sgdnoise.dask
    >>> g = np.random.default_rng(0).normal(size=(3000, 200)) * np.linspace(3, 0.1, 200)
    >>> sk = sgdnoise.dask.noise_sketch(da.from_array(g, chunks=(500, 200)), rows=30)
    >>> top = sk.top_eigen(3, batch_size=32)[0]
    >>> exact = np.linalg.eigvalsh(sgdnoise.noise_covariance(g, 32))[::-1][:3]
    >>> bool(np.all(top <= exact + 1e-12) and np.all(exact <= top + sk.error_bound(32) + 1e-12))
    True
    """
    x = _as_rows(grads)
    d = int(x.shape[1])
    ell = as_positive(rows, "rows")
    NoiseSketch(d, ell).close()  # the range of rows, refused here rather than on every worker
    return _reduce(x, functools.partial(NoiseSketch, d, ell), split_every, "sgdnoise-sketch")


# ----------------------------------------------------------------------------------------------------
# Monte-Carlo chains over the workers

def simulate(*, chains: int, seed: int, steps: int, burn_in: int | None = None, chains_per_task: int = 1,
             **problem: Any) -> SimulationResult:
    r"""Monte-Carlo SGD (:func:`sgdnoise.simulate`) with its chains spread over the Dask workers:
    bit for bit the result of ``sgdnoise.simulate(..., chains=chains, seed=seed)`` in one process.

    The chains are split into tasks of ``chains_per_task`` consecutive chains. Each task runs
    :func:`sgdnoise.simulate_chains` on a worker, on one thread. Chain :math:`c` draws from the random
    stream :math:`c` jumps after the seed's, whoever runs it. The client pools the records in chain
    order with :func:`sgdnoise.combine_chains`. Only the records travel: for each chain, a few
    :math:`D 	imes D` sums and the largest values of its tail series.

    A run that diverges is reported as diverged either way, but the step it reports may differ,
    because which chains still start after one diverges depends on timing.

    Parameters
    ----------
    chains, seed, steps, burn_in
        As in :func:`sgdnoise.simulate`. ``seed`` is required: every task must use the same one.
    chains_per_task : int, default 1
        Chains per task. One task per chain balances the load best; more chains per task mean
        fewer tasks for long runs of many short chains.
    **problem
        :func:`sgdnoise.simulate`'s problem and optimiser arguments (``A`` or ``X`` and ``y``,
        ``lr``, ``batch_size``, ...).

    Examples
    --------
    >>> import numpy as np, sgdnoise, sgdnoise.dask
    >>> kw = dict(A=np.array([1.0, 0.3]), noise_var=1.0, lr=0.5, batch_size=4, steps=2000, seed=5)
    >>> spread = sgdnoise.dask.simulate(chains=4, **kw)
    >>> bool((spread.sigma == sgdnoise.simulate(chains=4, **kw).sigma).all())
    True
    """
    total = as_positive(chains, "chains")
    per_task = as_positive(chains_per_task, "chains_per_task")
    run = dict(chains=total, seed=seed, steps=steps, burn_in=burn_in)
    task = _dask.delayed(simulate_chains, pure=True)
    parts = _dask.compute(*[task(first_chain=first, chain_count=min(per_task, total - first), threads=1, **run, **problem)
                            for first in range(0, total, per_task)])
    return combine_chains(list(parts), **run, **problem)
