r"""JAX adapter: the stationary fluctuation of SGD at a minimum of a JAX model (docs/theory.md §8).

A thin layer between a JAX loss and the matrix-free core of :mod:`sgdnoise.network`: it turns
``loss_fn(params, batch)`` into the two products the core needs — the Hessian-vector product
``v -> H v`` of the training loss (forward-over-reverse, jit-compiled once) and the noise product
``v -> C v`` of the per-sample gradients (the core's :class:`~sgdnoise.NoiseOperator` on stacked
gradients, or a streaming product that recomputes them chunk by chunk). Every eigenpair, trace
estimate, critical learning rate and noise product is computed by the library's core; this module
only differentiates. Needs ``jax`` (``pip install jax``); ``import sgdnoise`` alone never imports
it.

Conventions
-----------
``loss_fn(params, batch) -> scalar`` must be the **mean** of per-example losses over the batch,
plus any regulariser that does not depend on the batch:

.. math::

    L(w) = \frac1N\sum_{i=1}^N \ell_i(w) + R(w),

the loss SGD minimises with batch-**mean** gradients (docs/conventions.md). The Hessian is that of
``loss_fn(params, data)`` on the whole dataset, and the per-sample gradient of example i is the
gradient of ``loss_fn`` on the batch made of that example alone, :math:`\nabla\ell_i + \nabla R`.
The two are consistent only for a mean: a *sum* over the batch would multiply H by N while leaving
the per-sample gradients unchanged (:func:`analyze` checks this and refuses such a loss). A
regulariser inside ``loss_fn`` (weight decay :math:`R = \tfrac\gamma2|w|^2`, or any
:math:`R`) adds the same :math:`\nabla R(w)` (:math:`\Gamma w`) to every per-sample gradient,
which cancels in the covariance :math:`C = \frac fN\sum_i (g_i - \bar g)(g_i - \bar g)^\top`: the
regulariser enters the Hessian and not the noise, as it should (deterministic weight decay).

``params`` is any pytree of arrays (a dict, a list, a flax ``params`` tree, a single array); it is
flattened with :func:`jax.flatten_util.ravel_pytree` into a vector of P entries, in the order
:func:`flatten` gives (eigenvectors and ``lr`` diagonals use that order). ``data`` is a tuple
``(X, y)`` or any pytree of arrays whose leaves share the leading axis N (the examples).

Precision: the products are evaluated in the dtype of ``params`` (enable ``jax_enable_x64`` and use
float64 parameters for a tight comparison with dense routes); float32 per-sample gradients stay
float32 and the core accumulates them in float64.

Examples
--------
>>> import numpy as np, jax.numpy as jnp, sgdnoise.jax as sj
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(64, 3)); y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=64)
>>> def loss_fn(w, batch):                       # the MEAN squared error over the batch
...     x, t = batch
...     return 0.5 * jnp.mean((x @ w - t) ** 2)
>>> w = jnp.asarray(np.linalg.lstsq(X, y, rcond=None)[0])
>>> H = X.T @ X / 64                             # this loss's Hessian, for the check only
>>> Hv = sj.hvp(loss_fn, w, (X, y))
>>> bool(np.allclose(Hv(np.array([1.0, 0.0, 0.0])), H[:, 0], rtol=1e-4))
True
>>> lr = 0.5 / np.linalg.eigvalsh(H).max()
>>> r = sj.analyze(loss_fn, w, (X, y), lr=lr, batch_size=8, k=1, probes=4, steps=2)
>>> bool(np.isclose(r.critical_learning_rate_additive, 4 * lr, rtol=1e-4))
True
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import numpy.typing as npt

import jax as _jax
import jax.numpy as _jnp
from jax.flatten_util import ravel_pytree as _ravel_pytree

from . import _lib
from ._arrays import as_float64, as_scalar
from .errors import InvalidArgumentError
from .matrix_free import NoiseOperator
from .linearized import linearized_features as _linearized_features
from .network import NetworkFluctuation, network_fluctuation, with_drift
from ._streaming import StreamingNoise, as_chunk, stacked_or_streaming

__all__ = ["HessianProduct", "StreamingNoise", "analyze", "flatten", "hvp", "linearized_features", "noise",
           "per_sample_gradients"]

_c = _lib.lib

LossFn = Callable[[Any, Any], Any]
"""``loss_fn(params, batch) -> scalar``: the mean loss over the batch (plus a regulariser)."""

DEFAULT_CHUNK = 256


# ----------------------------------------------------------------------------------------------------
# Parameters and data

def flatten(params: Any) -> tuple[npt.NDArray[np.float64], Callable[[npt.ArrayLike], Any]]:
    """The parameters as one float64 vector, and the function that turns such a vector back into
    a pytree like ``params`` (with the original dtypes).

    Parameters
    ----------
    params : pytree of arrays

    Returns
    -------
    vector : (P,) ndarray
        float64 (also for float32 parameters), in :func:`jax.flatten_util.ravel_pytree`'s order.
    unflatten : callable
        ``(P,) array_like -> pytree`` (jax arrays cast to the parameters' dtype).

    Examples
    --------
    >>> import numpy as np, sgdnoise.jax as sj
    >>> w, unflatten = sj.flatten({"b": np.zeros(2), "W": np.ones((2, 3))})
    >>> w.shape, w.dtype.name
    ((8,), 'float64')
    >>> {k: v.shape for k, v in unflatten(np.arange(8.0)).items()}
    {'W': (2, 3), 'b': (2,)}
    """
    flat, unravel = _ravel_pytree(params)
    dtype, p = flat.dtype, flat.shape[0]

    def unflatten(vector: npt.ArrayLike) -> Any:
        v = np.asarray(vector)
        if v.shape != (p,):
            raise InvalidArgumentError(f"the vector must have shape ({p},), got {v.shape}")
        return unravel(_jnp.asarray(v, dtype=dtype))

    return np.asarray(flat, dtype=np.float64), unflatten


class _Flat:
    """Parameters flattened in their own dtype (the point where every product is taken)."""

    def __init__(self, params: Any) -> None:
        flat, self.unravel = _ravel_pytree(params)
        if flat.ndim != 1 or flat.shape[0] == 0:
            raise InvalidArgumentError("params must hold at least one parameter")
        if not _jnp.issubdtype(flat.dtype, _jnp.floating):
            raise InvalidArgumentError(f"params must be floating point, got {flat.dtype}")
        self.w = flat
        self.dtype = np.dtype(flat.dtype)
        self.dim = int(flat.shape[0])


def _as_data(data: Any) -> tuple[Any, int]:
    """The data as a pytree of jax arrays, and N, the leading axis every leaf shares."""
    leaves, tree = _jax.tree_util.tree_flatten(data)
    if not leaves:
        raise InvalidArgumentError("data must hold at least one array, e.g. (X, y)")
    arrays = [_jnp.asarray(x) for x in leaves]
    shapes = [a.shape for a in arrays]
    if any(len(s) == 0 for s in shapes):
        raise InvalidArgumentError(f"every array in data needs a leading axis of examples, got shapes {shapes}")
    n = shapes[0][0]
    if any(s[0] != n for s in shapes):
        raise InvalidArgumentError(f"every array in data must have the same number of examples (leading axis), "
                                   f"got shapes {shapes}")
    if n == 0:
        raise InvalidArgumentError("data holds no examples")
    return _jax.tree_util.tree_unflatten(tree, arrays), int(n)


# ----------------------------------------------------------------------------------------------------
# The Hessian-vector product

class HessianProduct:
    """``v -> H v`` for the Hessian of ``loss_fn(params, data)`` at ``params`` (see :func:`hvp`).

    Attributes
    ----------
    dim : int
        P.
    shape : (int, int)
        (P, P).
    dtype : numpy.dtype
        The dtype the product is evaluated in (that of the parameters); results are float64.
    samples : int
        N.
    calls : int
        Products evaluated so far (vectors: a block of b counts b).
    """

    def __init__(self, loss_fn: LossFn, params: Any, data: Any) -> None:
        self._flat = _Flat(params)
        self._data, self.samples = _as_data(data)
        unravel = self._flat.unravel

        def gradient(w: Any, batch: Any) -> Any:
            return _jax.grad(lambda u: loss_fn(unravel(u), batch))(w)

        def product(w: Any, v: Any, batch: Any) -> Any:
            return _jax.jvp(lambda u: gradient(u, batch), (w,), (v,))[1]

        def curvature(w: Any, v: Any, batch: Any) -> Any:
            return _jax.grad(lambda u: _jnp.vdot(v, product(u, v, batch)))(w)

        self._product = _jax.jit(product)
        # V (P, b) -> H V: the product mapped over the columns (jax.vmap), compiled once per width.
        self._block = _jax.jit(_jax.vmap(product, in_axes=(None, 1, None), out_axes=1))
        self._curvature = _jax.jit(curvature)
        self.dim = self._flat.dim
        self.shape = (self.dim, self.dim)
        self.dtype = self._flat.dtype
        self.calls = 0

    def __repr__(self) -> str:
        return f"HessianProduct(P={self.dim}, dtype={self.dtype})"

    def matvec(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """:math:`H v` for a vector of P entries, float64."""
        x = as_float64(v, "v", 1)
        if x.shape[0] != self.dim:
            raise InvalidArgumentError(f"v must have shape ({self.dim},), got {x.shape}")
        self.calls += 1
        out = self._product(self._flat.w, _jnp.asarray(x, dtype=self.dtype), self._data)
        return np.asarray(out, dtype=np.float64)

    __call__ = matvec

    def matmat(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """:math:`H V` for a block of b vectors as the columns of a (P, b) array, float64: one call
        of the product mapped over the columns (``jax.vmap``), far cheaper than b calls of
        :meth:`matvec`. :func:`sgdnoise.network_fluctuation` uses it to advance its probes in
        blocks."""
        x = as_float64(v, "v", 2)
        if x.shape[0] != self.dim or x.shape[1] < 1:
            raise InvalidArgumentError(f"v must have shape ({self.dim}, b) with b >= 1, got {x.shape}")
        b = x.shape[1]
        self.calls += b
        # Padded with zero columns to a power of two: one compilation per width 1, 2, 4, ..., not
        # one per block width (the probes still running in lockstep shrink one by one).
        width = 1 << (b - 1).bit_length()
        padded = x if width == b else np.concatenate([x, np.zeros((self.dim, width - b))], axis=1)
        out = self._block(self._flat.w, _jnp.asarray(padded, dtype=self.dtype), self._data)
        return np.asarray(out, dtype=np.float64)[:, :b]

    def __matmul__(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return self.matvec(v)

    def curvature_gradient(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        r""":math:`\nabla_w (v^\top H(w) v)` at ``params`` (the third derivative of the loss contracted
        twice with v, reverse over the forward-over-reverse product): the input
        :func:`sgdnoise.mean_drift` needs, float64."""
        x = as_float64(v, "v", 1)
        if x.shape[0] != self.dim:
            raise InvalidArgumentError(f"v must have shape ({self.dim},), got {x.shape}")
        out = self._curvature(self._flat.w, _jnp.asarray(x, dtype=self.dtype), self._data)
        return np.asarray(out, dtype=np.float64)


def hvp(loss_fn: LossFn, params: Any, data: Any) -> HessianProduct:
    r"""The Hessian-vector product :math:`v \mapsto H v` of the training loss
    :math:`L(w) =` ``loss_fn(w, data)`` at ``params``.

    Forward-over-reverse (``jax.jvp`` of ``jax.grad``, about the cost of two gradients), compiled
    once with ``jax.jit`` and reused for every product; the whole ``data`` is one batch.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params, batch) -> scalar``, the mean loss over the batch plus any regulariser (see
        the module's conventions).
    params : pytree of arrays
        The point (a minimum) where H is taken.
    data : pytree of arrays
        ``(X, y)`` or any pytree whose leaves share the leading axis N.

    Returns
    -------
    HessianProduct
        Callable ``(P,) array_like -> (P,) float64 ndarray`` (also ``.matvec``), vectors in
        :func:`flatten`'s order.
    """
    return HessianProduct(loss_fn, params, data)


# ----------------------------------------------------------------------------------------------------
# Per-sample gradients

class _GradientStream:
    """Per-sample gradients in chunks of a fixed size (one compiled function; the last chunk is
    taken as the last ``chunk`` examples and its already-seen rows dropped, so no shape changes)."""

    def __init__(self, loss_fn: LossFn, params: Any, data: Any, chunk: int) -> None:
        self.flat = _Flat(params)
        self.data, self.n = _as_data(data)
        self.chunk = as_chunk(chunk, self.n)
        unravel, size = self.flat.unravel, self.chunk

        def single(w: Any, example: Any) -> Any:
            batch = _jax.tree_util.tree_map(lambda x: x[None], example)
            return _jax.grad(lambda u: loss_fn(unravel(u), batch))(w)

        def block(w: Any, batch: Any, start: Any) -> Any:
            part = _jax.tree_util.tree_map(lambda x: _jax.lax.dynamic_slice_in_dim(x, start, size, 0), batch)
            return _jax.vmap(single, in_axes=(None, 0))(w, part)

        self._block = _jax.jit(block)
        self.dim, self.dtype = self.flat.dim, self.flat.dtype

    def __iter__(self) -> Iterator[np.ndarray]:
        n, c = self.n, self.chunk
        for start in range(0, n, c):
            first = min(start, n - c)
            g = np.asarray(self._block(self.flat.w, self.data, first))
            yield np.ascontiguousarray(g[start - first:], dtype=self.dtype)


def per_sample_gradients(loss_fn: LossFn, params: Any, data: Any,
                         chunk: int = DEFAULT_CHUNK) -> Iterator[np.ndarray]:
    r"""The per-sample gradients :math:`g_i = \nabla_w` ``loss_fn(params, example_i)``, chunk by chunk.

    ``jax.vmap`` of ``jax.grad`` over single examples (each a batch of one), compiled once; only
    one (chunk, P) block exists at a time unless the caller keeps them.

    Parameters
    ----------
    loss_fn, params, data
        As in :func:`hvp`. With a regulariser inside ``loss_fn`` every row carries its gradient
        (:math:`\nabla\ell_i + \Gamma w`), which cancels in the noise covariance.
    chunk : int
        Examples per block (the last block may be shorter).

    Yields
    ------
    (n_chunk, P) ndarray
        Rows of G in example order, in :func:`flatten`'s parameter order, in the parameters' dtype
        (float32 stays float32).

    Examples
    --------
    >>> import numpy as np, jax.numpy as jnp, sgdnoise.jax as sj
    >>> X = np.arange(10.0).reshape(5, 2); y = np.ones(5)
    >>> loss_fn = lambda w, b: 0.5 * jnp.mean((b[0] @ w - b[1]) ** 2)
    >>> [g.shape for g in sj.per_sample_gradients(loss_fn, jnp.zeros(2), (X, y), chunk=2)]
    [(2, 2), (2, 2), (1, 2)]
    """
    stream = _GradientStream(loss_fn, params, data, chunk)  # arguments checked here, not at the first chunk
    return (np.array(g) for g in stream)  # writable copies (the stream's arrays are read-only views)


# ----------------------------------------------------------------------------------------------------
# The linearised network

OutputFn = Callable[[Any, Any], Any]
"""``apply_fn(params, X) -> outputs``: the model's output for a batch of inputs, one per example."""


def linearized_features(apply_fn: OutputFn, example_loss: Callable[[Any, Any], Any], params: Any, data: Any, *,
                        chunk: int = DEFAULT_CHUNK, memory_limit_bytes: int = 2**30) -> npt.NDArray[np.float64]:
    r"""The features :math:`x_i = \sqrt{c_i}\, j_i` of the linearised network at ``params``
    (docs/theory.md §8, noise model (iii)): :math:`j_i = \nabla_w f(x_i)` the gradient of example i's
    output and :math:`c_i = \partial^2\ell/\partial f^2` the curvature of its loss in that output,
    by ``jax.vmap`` of ``jax.grad`` over single examples.

    For :func:`sgdnoise.linearized_critical_learning_rate`; the (N, P) float64 matrix is held in
    memory (this is for models small enough).

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, X) -> outputs`` for a batch of inputs, one scalar output per example
        (shape (n,) or (n, 1)).
    example_loss : callable
        ``example_loss(outputs, y) -> (n,)`` per-example losses (elementwise, e.g.
        ``lambda f, t: 0.5 * (f - t) ** 2``), convex in the output.
    params : pytree of arrays
    data : (X, y)
        Inputs and targets with the same leading axis N.
    chunk : int
        Examples per ``vmap`` block.
    memory_limit_bytes : int
        Refuse when N·P·8 bytes exceed it.
    """
    if not callable(apply_fn) or not callable(example_loss):
        raise InvalidArgumentError("apply_fn and example_loss must be callables")
    flat = _Flat(params)
    (x, y), n = _as_pair(data)
    if n * flat.dim * 8 > memory_limit_bytes:
        raise InvalidArgumentError(f"the linearised network's features need N*P*8 = {n * flat.dim * 8} bytes, above "
                                   f"memory_limit_bytes = {memory_limit_bytes}")
    unravel = flat.unravel
    shape = _jnp.shape(apply_fn(params, x[:1]))
    if int(np.prod(shape)) != 1:
        raise InvalidArgumentError(f"the linearised network needs one output per example, got output shape {shape} "
                                   "for a batch of one")

    def output(w: Any, xi: Any) -> Any:
        return _jnp.reshape(apply_fn(unravel(w), xi[None]), ())

    def curvature(f: Any, yi: Any) -> Any:
        return _jax.grad(_jax.grad(lambda u: _jnp.reshape(example_loss(_jnp.reshape(u, shape), yi[None]), ())))(f)

    block = _jax.jit(lambda w, xs, ys: (_jax.vmap(_jax.grad(output), in_axes=(None, 0))(w, xs),
                                        _jax.vmap(curvature)(_jax.vmap(output, in_axes=(None, 0))(w, xs), ys)))
    c = as_chunk(chunk, n)
    rows = []
    for start in range(0, n, c):
        j, cc = block(flat.w, x[start:start + c], y[start:start + c])
        rows.append(_linearized_features(np.asarray(j, dtype=np.float64), np.asarray(cc, dtype=np.float64)))
    return np.concatenate(rows, axis=0)


def _as_pair(data: Any) -> tuple[tuple[Any, Any], int]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise InvalidArgumentError("the linearised network needs data = (X, y)")
    return _as_data(tuple(data))


def _weight_decay(loss_fn: LossFn, apply_fn: OutputFn, example_loss: Callable[[Any, Any], Any],
                  hessian: HessianProduct) -> float:
    r"""γ of the regulariser :math:`R(w) = L(w) - \frac1N\sum_i \ell(f(x_i; w), y_i)` inside ``loss_fn``,
    checked to be :math:`\tfrac\gamma2|w|^2 + \text{linear}` by one product of its Hessian with a random
    vector (which also catches an ``example_loss`` that does not match ``loss_fn``); ``hessian`` is
    :func:`hvp` of ``loss_fn`` on data ``(X, y)``, whose point, data and product it reuses."""
    flat = hessian._flat
    x, y = hessian._data
    unravel = flat.unravel

    def regularizer(w: Any) -> Any:
        return loss_fn(unravel(w), (x, y)) - _jnp.mean(example_loss(apply_fn(unravel(w), x), y))

    v = _jnp.asarray(np.random.default_rng(0).standard_normal(flat.dim), dtype=flat.dtype)
    vv = np.asarray(v, dtype=np.float64)
    rv = np.asarray(_jax.jvp(_jax.grad(regularizer), (flat.w,), (v,))[1], dtype=np.float64)
    # R is a difference of two losses: its products carry the rounding of the whole loss's
    hv = hessian.matvec(vv)
    tolerance = (1e-6 if flat.dtype.itemsize >= 8 else 1e-3) * max(np.linalg.norm(hv), np.linalg.norm(rv))
    if np.linalg.norm(rv) <= tolerance:
        return 0.0
    gamma = float(vv @ rv / (vv @ vv))
    if np.linalg.norm(rv - gamma * vv) > tolerance:
        raise InvalidArgumentError("loss_fn minus the mean of example_loss(apply_fn(params, X), y) is not a weight decay "
                                   "(gamma/2)|w|^2: example_loss or apply_fn does not match loss_fn")
    if gamma < 0:
        raise InvalidArgumentError(f"the regulariser inside loss_fn has a negative curvature {gamma:.3g}")
    return gamma


# ----------------------------------------------------------------------------------------------------
# The noise product

def noise(loss_fn: LossFn, params: Any, data: Any, batch_size: int, *, replacement: bool = True,
          chunk: int = DEFAULT_CHUNK, memory_limit_bytes: int = 2**30) -> NoiseOperator | StreamingNoise:
    r"""The minibatch noise covariance [Prop 1] of a JAX model at ``params``, as a product for
    :func:`sgdnoise.network_fluctuation`.

    .. math::

        C v = \frac fN\sum_{i=1}^N (g_i - \bar g)\,(g_i - \bar g)^\top v,\qquad
        f = \tfrac1S \text{ (with replacement) or } \tfrac{N-S}{S(N-1)} \text{ (without)},

    :math:`g_i` the per-sample gradients of :func:`per_sample_gradients` (a regulariser inside
    ``loss_fn`` cancels). When G fits, :math:`N P\cdot` itemsize :math:`\le`
    ``memory_limit_bytes``, the chunks are stacked once into G and the result is
    ``sgdnoise.noise_operator(G, batch_size, replacement)``; otherwise a :class:`StreamingNoise`
    that recomputes the per-sample gradients chunk by chunk for every product (memory O(chunk·P),
    one gradient pass per product).

    Parameters
    ----------
    loss_fn, params, data
        As in :func:`hvp`.
    batch_size : int
        S.
    replacement : bool
    chunk : int
        Examples per vmap'ed block.
    memory_limit_bytes : int
        The largest G (in bytes) that is stacked.

    Returns
    -------
    NoiseOperator or StreamingNoise
        Both have ``matvec`` (a (P,) vector or a (P, m) block), ``diagonal``, ``trace``, ``mean``.
    """
    return stacked_or_streaming(_GradientStream(loss_fn, params, data, chunk), batch_size, replacement,
                                memory_limit_bytes)


# ----------------------------------------------------------------------------------------------------
# The whole prediction

def _check_mean(loss_fn: LossFn, flat: _Flat, data: Any, n: int, chunk: int) -> None:
    """Refuse a loss_fn that is not the mean of its per-example values (a sum, a batch-dependent
    regulariser): the Hessian and the per-sample gradients would not belong to the same L. Checked
    on the first min(N, 64) examples (no more than ``chunk`` when that is at least 2)."""
    m = min(n, max(2, min(chunk, 64)))
    if m < 2:
        return
    params = flat.unravel(flat.w)
    batch = _jax.tree_util.tree_map(lambda x: x[:m], data)

    def single(example: Any) -> Any:
        return loss_fn(params, _jax.tree_util.tree_map(lambda x: x[None], example))

    whole = float(loss_fn(params, batch))
    each = np.asarray(_jax.vmap(single)(batch), dtype=np.float64)
    mean = float(each.mean())
    scale = float(np.abs(each).mean())
    rtol = 1e-3 if flat.dtype.itemsize < 8 else 1e-6
    if not np.isfinite(whole) or abs(whole - mean) > rtol * scale + np.finfo(flat.dtype).tiny:
        raise InvalidArgumentError(
            f"loss_fn on a batch of the first {m} examples is {whole:.6g} but the mean of its values on those "
            f"examples one by one is {mean:.6g}: loss_fn must be the MEAN of per-example losses over the batch "
            "(plus a regulariser that does not depend on the batch)")


def _as_lr(lr: Any, params: Any, dim: int) -> float | npt.NDArray[np.float64]:
    structure = _jax.tree_util.tree_structure(lr)
    if _jax.tree_util.treedef_is_leaf(structure) and np.ndim(lr) == 0:
        return as_scalar(lr, "lr")
    if structure == _jax.tree_util.tree_structure(params):
        return flatten(lr)[0]
    d = np.asarray(lr, dtype=np.float64)
    if d.shape != (dim,):
        raise InvalidArgumentError(f"lr must be a scalar, a pytree like params, or a vector of {dim} entries, "
                                   f"got shape {d.shape}")
    return d


def analyze(loss_fn: LossFn, params: Any, data: Any, *, lr: Any, batch_size: int, momentum: float = 0.0,
            k: int = 10, probes: int = 30, steps: int = 40, replacement: bool = True, seed: int = 0,
            tol: float | None = None, chunk: int = DEFAULT_CHUNK,
            memory_limit_bytes: int = 2**30, drift_steps: Any = None,
            linearized: tuple[OutputFn, Callable[[Any, Any], Any]] | None = None) -> NetworkFluctuation:
    r"""The stationary fluctuation of minibatch SGD at a minimum of a JAX model, matrix-free
    (docs/theory.md §8): :func:`sgdnoise.network_fluctuation` with this module's :func:`hvp` and
    :func:`noise`.

    The generic form ``analyze(model, loss, data, lr=..., batch_size=..., momentum=...)`` reads,
    for JAX, where a model is a function of its parameters,
    ``analyze(loss_fn, params, data, lr=..., batch_size=..., momentum=...)`` with
    ``loss_fn = lambda params, (x, y): jnp.mean(loss(model(params, x), y))`` (+ a regulariser).

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params, batch) -> scalar``, the MEAN loss over the batch plus any regulariser
        (checked on a few examples: ``loss_fn`` on a batch must equal the mean of its values on the
        examples one by one).
    params : pytree of arrays
        A minimum (|∇L| small: the prediction is about SGD's fluctuation around it).
    data : pytree of arrays
        ``(X, y)``, or any pytree whose leaves share the leading axis N.
    lr : float, pytree like ``params``, or (P,) array_like
        The learning rate λ, or the diagonal of a preconditioner Λ.
    batch_size : int
        S (the noise's factor, and the multiplicative critical learning rate of Theorem 5).
    momentum : float
        μ (PyTorch's convention, docs/conventions.md).
    k, probes, steps : int
        Exact eigenpairs at each end of the spectrum (2k < P), Hutchinson probes, Lanczos steps
        per probe.
    replacement : bool
        Minibatches drawn with replacement (f = 1/S) or without.
    seed : int
    tol : float, optional
        Relative residual tolerance of the eigenpairs; default 1e-8 for float64 parameters, 1e-4
        for float32 ones (whose products are only accurate to about 1e-7).
    chunk, memory_limit_bytes : int
        As in :func:`noise`.
    drift_steps : int or sequence of int, optional
        Also predict the mean drift :math:`E[w_t - w^*]` at these steps (:func:`sgdnoise.network_drift`
        with :meth:`HessianProduct.curvature_gradient`; scalar learning rate): ``result.drift``.
    linearized : (apply_fn, example_loss), optional
        Also compute the linearised network's exact critical learning rate
        (``result.critical_learning_rate_linearized``; :func:`linearized_features` and
        :func:`sgdnoise.linearized_critical_learning_rate`) from the model's outputs
        ``apply_fn(params, X)`` (one per example) and ``example_loss(outputs, y)`` (per-example
        losses) with ``loss_fn(params, (X, y)) = mean(example_loss(apply_fn(params, X), y)) +
        (γ/2)|w|²`` — γ is read off ``loss_fn`` and checked. N·P in memory and a dense §4.1 solve
        on the range of the features (about a second at N = 442, P = 193): for models small
        enough.

    Returns
    -------
    NetworkFluctuation
        With ``top_eigenvectors`` in :func:`flatten`'s parameter order; ``.summary()`` reports it.

    Notes
    -----
    Each call builds and compiles its products anew. For several learning rates, momenta or
    batch sizes at one minimum, build them once and call the core directly::

        h = sgdnoise.jax.hvp(loss_fn, params, data)
        c = sgdnoise.jax.noise(loss_fn, params, data, batch_size)
        for lr in rates:
            r = sgdnoise.network_fluctuation(h, c, h.dim, lr=lr, batch_size=batch_size)

    Raises
    ------
    InvalidArgumentError
        Bad arguments, or a ``loss_fn`` that is not a mean over the batch.
    UnstableError
        λ at or beyond the stability edge 2(1+μ)/h_max.
    """
    h = HessianProduct(loss_fn, params, data)
    rate = _as_lr(lr, params, h.dim)
    _check_mean(loss_fn, h._flat, h._data, h.samples, as_chunk(chunk, h.samples))
    c = noise(loss_fn, params, data, batch_size, replacement=replacement, chunk=chunk,
              memory_limit_bytes=memory_limit_bytes)
    if tol is None:
        tol = 1e-4 if h.dtype.itemsize < 8 else 1e-8
    features, gamma = None, 0.0
    if linearized is not None:
        if not isinstance(linearized, (tuple, list)) or len(linearized) != 2:
            raise InvalidArgumentError("linearized must be a pair (apply_fn, example_loss)")
        apply_fn, example_loss = linearized
        features = linearized_features(apply_fn, example_loss, params, data, chunk=chunk,
                                       memory_limit_bytes=memory_limit_bytes)
        gamma = _weight_decay(loss_fn, apply_fn, example_loss, h)
    result = network_fluctuation(h, c, h.dim, lr=rate, momentum=momentum, k=k, probes=probes,
                                 steps=steps, batch_size=batch_size, tol=tol, seed=seed, features=features,
                                 weight_decay=gamma, replacement=replacement)
    return with_drift(result, h, drift_steps)
