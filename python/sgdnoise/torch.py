r"""PyTorch adapter: the stationary fluctuation of SGD at a minimum of a PyTorch model (docs/theory.md §8).

A thin layer between a ``torch.nn.Module`` with a loss and the matrix-free core of
:mod:`sgdnoise.network`: it turns ``loss_fn(model(x), y)`` into the two products the core needs —
the Hessian-vector product ``v -> H v`` of the training loss (forward-over-reverse with
:mod:`torch.func`, double backward where forward-mode AD is not implemented) and the noise product
``v -> C v`` of the per-sample gradients (the core's :class:`~sgdnoise.NoiseOperator` on stacked
gradients, or a streaming product that recomputes them chunk by chunk). Every eigenpair, trace
estimate, critical learning rate and noise product is computed by the library's core; this module
only differentiates. Needs ``torch`` (``pip install torch``); ``import sgdnoise`` alone never
imports it. The same contract as :mod:`sgdnoise.jax`, in PyTorch's idiom.

Conventions
-----------
``loss_fn(output, target) -> scalar`` must be the **mean** of per-example losses over the batch
(``reduction="mean"``, the default of ``torch.nn.MSELoss``, ``torch.nn.CrossEntropyLoss``,
``torch.nn.functional.mse_loss``, ...):

.. math::

    L(w) = \frac1N\sum_{i=1}^N \ell_i(w) + \tfrac\gamma2|w|^2,

the loss SGD minimises with batch-**mean** gradients (docs/conventions.md). The Hessian is that of
``loss_fn(model(X), y)`` on the whole dataset, and the per-sample gradient of example i is the
gradient of ``loss_fn`` on the batch made of that example alone, :math:`\nabla\ell_i`. The two
are consistent only for a mean: ``reduction="sum"`` would multiply H by N while leaving the
per-sample gradients unchanged (:func:`analyze` checks this and refuses such a loss).

Weight decay: ``torch.optim.SGD(..., weight_decay=γ)`` adds :math:`\gamma w` to every gradient.
That is the Hessian :math:`\gamma I` of :math:`\tfrac\gamma2|w|^2`, and a term common to all
per-sample gradients, which cancels in the covariance
:math:`C = \frac fN\sum_i (g_i - \bar g)(g_i - \bar g)^\top`. Pass the optimiser's ``weight_decay``
to :func:`hvp` and :func:`analyze` (which add :math:`\gamma v` to :math:`H v`) and leave it out of
``loss_fn``; the per-sample gradients never carry it. A regulariser written into ``loss_fn``
instead is seen by the check of :func:`analyze` as a loss that is not a mean (it is not divided by
the batch) unless it is tiny; prefer ``weight_decay``.

``model`` is called as ``model(x)`` through :func:`torch.func.functional_call` with its parameters
(those with ``requires_grad``) replaced by the point where the products are taken; its buffers are
used as they are. Put it in ``model.eval()`` mode when it has dropout or batch normalisation (the
per-sample gradients are ``vmap``'ed: a batch of one must be a valid input, and nothing random may
happen). The parameters are flattened into a vector of P entries in ``model.named_parameters()``'s
order — that of ``torch.nn.utils.parameters_to_vector(model.parameters())`` when every parameter
requires a gradient — and eigenvectors and ``lr`` diagonals use that order (:func:`flatten`).
``data`` is a pair ``(X, y)`` of tensors or arrays with the same leading axis N (the examples); the
floating ones are cast to the parameters' dtype and moved to their device, integer targets (class
labels) keep their dtype.

Precision: the products are evaluated in the parameters' dtype (use float64 parameters, e.g.
``model.double()``, for a tight comparison with dense routes); float32 per-sample gradients stay
float32 and the core accumulates them in float64. Results are float64 numpy arrays on the CPU.

Examples
--------
>>> import numpy as np, torch, sgdnoise.torch as st
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(64, 3)); y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(64, 1))
>>> model = torch.nn.Linear(3, 1, bias=False, dtype=torch.float64)
>>> _ = model.weight.data.copy_(torch.from_numpy(np.linalg.lstsq(X, y, rcond=None)[0].T))  # the minimum
>>> loss_fn = torch.nn.MSELoss()                 # the MEAN squared error over the batch
>>> H = 2 * X.T @ X / 64                         # this loss's Hessian, for the check only
>>> Hv = st.hvp(model, loss_fn, (X, y))
>>> bool(np.allclose(Hv(np.array([1.0, 0.0, 0.0])), H[:, 0], rtol=1e-10))
True
>>> lr = 0.5 / np.linalg.eigvalsh(H).max()
>>> r = st.analyze(model, loss_fn, (X, y), lr=lr, batch_size=8, k=1, probes=4, steps=2)
>>> bool(np.isclose(r.critical_learning_rate_additive, 4 * lr, rtol=1e-8))
True
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import numpy.typing as npt

import torch as _torch
import torch.distributed as _dist
import torch.func as _func

from ._arrays import as_float64, as_scalar
from ._state import MergeableState, merged
from ._streaming import StreamingNoise, as_chunk, stacked_or_streaming
from .errors import InvalidArgumentError
from .matrix_free import NoiseOperator
from .linearized import linearized_features as _linearized_features
from .network import NetworkFluctuation, network_fluctuation, with_drift

__all__ = ["HessianProduct", "StreamingNoise", "all_reduce_noise", "analyze", "flatten", "hvp", "linearized_features",
           "noise", "per_sample_gradients"]

LossFn = Callable[[Any, Any], Any]
"""``loss_fn(output, target) -> scalar tensor``: the mean loss over the batch."""

DEFAULT_CHUNK = 256

_State = TypeVar("_State", bound=MergeableState)


# ----------------------------------------------------------------------------------------------------
# Parameters and data

def _named_parameters(module: Any) -> list[tuple[str, Any]]:
    if not isinstance(module, _torch.nn.Module):
        raise InvalidArgumentError(f"model must be a torch.nn.Module, got {type(module).__name__}")
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


def flatten(module: _torch.nn.Module) -> tuple[npt.NDArray[np.float64], Callable[[npt.ArrayLike], _torch.nn.Module]]:
    """The module's parameters as one float64 vector, and the function that loads such a vector
    back into the module (in place, in the parameters' own dtypes and devices).

    Parameters
    ----------
    module : torch.nn.Module
        Its parameters with ``requires_grad`` are flattened, in ``named_parameters()``'s order.

    Returns
    -------
    vector : (P,) ndarray
        float64 (also for float32 parameters), on the CPU; the order of
        ``torch.nn.utils.parameters_to_vector(module.parameters())`` when every parameter requires
        a gradient.
    load : callable
        ``load(vector)`` copies a (P,) array_like into the parameters (under ``torch.no_grad``)
        and returns the module.

    Examples
    --------
    >>> import numpy as np, torch, sgdnoise.torch as st
    >>> layer = torch.nn.Linear(3, 2)
    >>> w, load = st.flatten(layer)
    >>> w.shape, w.dtype.name
    ((8,), 'float64')
    >>> load(np.arange(8.0)).bias.tolist(), layer.weight.dtype
    ([6.0, 7.0], torch.float32)
    """
    named = _named_parameters(module)
    if not named:
        vector = np.zeros(0)
    else:
        vector = np.concatenate([p.detach().reshape(-1).to("cpu", _torch.float64).numpy() for _, p in named])
    p_total = vector.shape[0]

    def load(values: npt.ArrayLike) -> _torch.nn.Module:
        v = as_float64(values.detach().cpu() if isinstance(values, _torch.Tensor) else values, "vector", 1)
        if v.shape != (p_total,):
            raise InvalidArgumentError(f"the vector must have shape ({p_total},), got {v.shape}")
        start = 0
        with _torch.no_grad():
            for _, p in named:
                size = p.numel()
                p.copy_(_torch.from_numpy(v[start:start + size]).reshape(p.shape))
                start += size
        return module

    return vector, load


class _Functional:
    """The model as a function of its flattened parameters, at a fixed point (a copy of the
    parameters taken on creation), with the data converted once."""

    def __init__(self, model: Any, loss_fn: LossFn, data: Any) -> None:
        named = _named_parameters(model)
        if not named:
            raise InvalidArgumentError("model must have at least one parameter that requires a gradient")
        dtypes = {p.dtype for _, p in named}
        if not all(d.is_floating_point for d in dtypes):
            raise InvalidArgumentError(f"the parameters must be floating point, got {sorted(map(str, dtypes))}")
        if not callable(loss_fn):
            raise InvalidArgumentError("loss_fn must be a callable loss_fn(output, target) -> scalar")
        self.model, self.loss_fn = model, loss_fn
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.params = {n: p.detach().clone() for n, p in named}
        self.buffers = {n: b.detach() for n, b in model.named_buffers()}
        self.device = named[0][1].device
        param_dtype = _torch.float64 if _torch.float64 in dtypes else next(iter(dtypes))
        self.torch_dtype = param_dtype
        # numpy dtype of the gradients handed to the core: float64, or float32 for lower precisions
        self.dtype = np.dtype(np.float64) if param_dtype == _torch.float64 else np.dtype(np.float32)
        self.dim = int(sum(self.sizes))
        self.x, self.y, self.n = self._as_data(data)

    def _as_tensor(self, a: Any, name: str) -> Any:
        if isinstance(a, _torch.Tensor):
            t = a.detach()
        else:
            array = np.asarray(a)
            if array.dtype == object or np.iscomplexobj(array):
                raise InvalidArgumentError(f"{name} must be a real array or tensor")
            t = _torch.as_tensor(array)
        if t.dtype.is_complex:
            raise InvalidArgumentError(f"{name} must be real")
        t = t.to(self.device, self.torch_dtype) if t.dtype.is_floating_point else t.to(self.device)
        return t

    def _as_data(self, data: Any) -> tuple[Any, Any, int]:
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise InvalidArgumentError("data must be a pair (X, y) of arrays or tensors with the examples along "
                                       "the leading axis")
        x, y = self._as_tensor(data[0], "X"), self._as_tensor(data[1], "y")
        shapes = [tuple(x.shape), tuple(y.shape)]
        if any(len(s) == 0 for s in shapes):
            raise InvalidArgumentError(f"X and y need a leading axis of examples, got shapes {shapes}")
        if shapes[0][0] != shapes[1][0]:
            raise InvalidArgumentError(f"X and y must have the same number of examples (leading axis), "
                                       f"got shapes {shapes}")
        if shapes[0][0] == 0:
            raise InvalidArgumentError("data holds no examples")
        return x, y, int(shapes[0][0])

    def loss(self, params: dict[str, Any], x: Any, y: Any) -> Any:
        out = _func.functional_call(self.model, (params, self.buffers), (x,))
        return self.loss_fn(out, y)

    def single_loss(self, params: dict[str, Any], x: Any, y: Any) -> Any:
        """The loss of one example, as a batch of one."""
        return self.loss(params, x.unsqueeze(0), y.unsqueeze(0))

    def as_dict(self, v: npt.NDArray[np.float64]) -> dict[str, Any]:
        t = _torch.from_numpy(np.array(v, dtype=np.float64))  # a copy: v may be a read-only buffer
        out, start = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            p = self.params[name]
            out[name] = t[start:start + size].reshape(shape).to(p.device, p.dtype)
            start += size
        return out

    def rows(self, grads: dict[str, Any], m: int) -> np.ndarray:
        """(m, P) numpy rows from a dict of (m, *shape) tensors, in the gradients' dtype."""
        cat = _torch.cat([grads[n].detach().reshape(m, -1) for n in self.names], dim=1)
        return np.ascontiguousarray(cat.to("cpu").numpy(), dtype=self.dtype)


def _as_weight_decay(weight_decay: Any) -> float:
    gamma = as_scalar(weight_decay, "weight_decay")
    if not np.isfinite(gamma) or gamma < 0:
        raise InvalidArgumentError(f"weight_decay must be finite and >= 0, got {weight_decay!r}")
    return gamma


# ----------------------------------------------------------------------------------------------------
# The Hessian-vector product

class HessianProduct:
    """``v -> H v + γ v`` for the Hessian of ``loss_fn(model(X), y)`` at the model's parameters
    (see :func:`hvp`).

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
    weight_decay : float
        γ.
    method : str
        ``"forward-over-reverse"`` (``torch.func.jvp`` of ``torch.func.grad``) or
        ``"double-backward"`` (taken when the model has no forward-mode derivative).
    calls : int
        Products evaluated so far (vectors: a block of b counts b).
    """

    def __init__(self, model: Any, loss_fn: LossFn, data: Any, weight_decay: float = 0.0,
                 chunk: int | None = None) -> None:
        self._f = _Functional(model, loss_fn, data)
        self.weight_decay = _as_weight_decay(weight_decay)
        self.samples = self._f.n
        self._chunk = self.samples if chunk is None else as_chunk(chunk, self.samples)
        self.dim = self._f.dim
        self.shape = (self.dim, self.dim)
        self.dtype = np.dtype(np.float64) if self._f.torch_dtype == _torch.float64 else np.dtype(np.float32)
        self.method = "forward-over-reverse"
        self.calls = 0
        self._grad = _func.grad(self._f.loss)
        self._vmap: bool | None = None  # whether torch.func.vmap maps the product (None: not tried)

    def __repr__(self) -> str:
        return f"HessianProduct(P={self.dim}, dtype={self.dtype}, weight_decay={self.weight_decay})"

    def _forward(self, v: dict[str, Any], x: Any, y: Any) -> dict[str, Any]:
        if y.dtype.is_floating_point:
            # A floating target gets a materialised zero tangent: some losses' derivatives
            # (mse_loss) write into the target's tangent, which an implicit ZeroTensor refuses.
            return _func.jvp(lambda p, t: self._grad(p, x, t), (self._f.params, y), (v, _torch.zeros_like(y)))[1]
        return _func.jvp(lambda p: self._grad(p, x, y), (self._f.params,), (v,))[1]

    def _reverse(self, v: dict[str, Any], x: Any, y: Any) -> dict[str, Any]:
        names = self._f.names
        params = {n: self._f.params[n].detach().requires_grad_(True) for n in names}
        with _torch.enable_grad():
            grads = _torch.autograd.grad(self._f.loss(params, x, y), [params[n] for n in names], create_graph=True)
            dot = sum((g * v[n]).sum() for g, n in zip(grads, names))
            hv = _torch.autograd.grad(dot, [params[n] for n in names], allow_unused=True)
        return {n: (h if h is not None else _torch.zeros_like(params[n])) for n, h in zip(names, hv)}

    def _product(self, v: dict[str, Any], x: Any, y: Any) -> dict[str, Any]:
        if self.method == "forward-over-reverse":
            try:
                return self._forward(v, x, y)
            except (NotImplementedError, RuntimeError) as exc:
                if self.calls > 1:
                    raise
                try:  # no forward-mode derivative for some operation: double backward from now on
                    out = self._reverse(v, x, y)
                except Exception as second:
                    raise second from exc
                self.method = "double-backward"
                return out
        return self._reverse(v, x, y)

    def matvec(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """:math:`H v + \\gamma v` for a vector of P entries, float64."""
        x = as_float64(v.detach().cpu() if isinstance(v, _torch.Tensor) else v, "v", 1)
        if x.shape[0] != self.dim:
            raise InvalidArgumentError(f"v must have shape ({self.dim},), got {x.shape}")
        self.calls += 1
        f, n, c = self._f, self.samples, self._chunk
        vd = f.as_dict(x)
        total = np.zeros(self.dim)
        for start in range(0, n, c):
            stop = min(start + c, n)
            hv = self._product(vd, f.x[start:stop], f.y[start:stop])
            part = _torch.cat([hv[name].detach().reshape(-1) for name in f.names]).to("cpu", _torch.float64).numpy()
            total += part if (start == 0 and stop == n) else (stop - start) / n * part
        if self.weight_decay:
            total += self.weight_decay * x
        return total

    __call__ = matvec

    def matmat(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """:math:`H V + \\gamma V` for a block of b vectors as the columns of a (P, b) array, float64:
        the forward-over-reverse product mapped over the columns (``torch.func.vmap``), one pass per
        data chunk for all b. Where vmap cannot map the model (double-backward models, operations
        without a batching rule) the columns go through :meth:`matvec` one by one.
        :func:`sgdnoise.network_fluctuation` uses it to advance its probes in blocks."""
        x = as_float64(v.detach().cpu() if isinstance(v, _torch.Tensor) else v, "v", 2)
        if x.shape[0] != self.dim or x.shape[1] < 1:
            raise InvalidArgumentError(f"v must have shape ({self.dim}, b) with b >= 1, got {x.shape}")
        b = x.shape[1]
        if self.method == "forward-over-reverse" and self._vmap is not False:
            try:
                out = self._mapped(x)
            except (NotImplementedError, RuntimeError):
                if self._vmap:
                    raise
                self._vmap = False  # no batching rule: column by column from now on
            else:
                self._vmap = True
                self.calls += b
                return out
        return np.stack([self.matvec(x[:, j]) for j in range(b)], axis=1)

    def _mapped(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        f, n, c = self._f, self.samples, self._chunk
        b = x.shape[1]
        columns = [f.as_dict(x[:, j]) for j in range(b)]
        vd = {name: _torch.stack([col[name] for col in columns]) for name in f.names}
        total = np.zeros((b, self.dim))
        for start in range(0, n, c):
            stop = min(start + c, n)
            xs, ys = f.x[start:stop], f.y[start:stop]
            hv = _func.vmap(lambda t: self._forward(t, xs, ys))(vd)
            part = _torch.cat([hv[name].detach().reshape(b, -1) for name in f.names], dim=1).to("cpu", _torch.float64)
            part = part.numpy()
            total += part if (start == 0 and stop == n) else (stop - start) / n * part
        if self.weight_decay:
            total += self.weight_decay * x.T
        return total.T.copy()

    def __matmul__(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return self.matvec(v)

    def curvature_gradient(self, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
        r""":math:`\nabla_w (v^\top H(w) v)` at the model's parameters (the third derivative of the
        loss contracted twice with v, by three reverse passes; the weight decay's is zero): the
        input :func:`sgdnoise.mean_drift` needs, float64."""
        x = as_float64(v.detach().cpu() if isinstance(v, _torch.Tensor) else v, "v", 1)
        if x.shape[0] != self.dim:
            raise InvalidArgumentError(f"v must have shape ({self.dim},), got {x.shape}")
        f, n, c = self._f, self.samples, self._chunk
        vd = f.as_dict(x)
        names = f.names
        total = np.zeros(self.dim)
        for start in range(0, n, c):
            stop = min(start + c, n)
            params = {name: f.params[name].detach().requires_grad_(True) for name in names}
            leaves = [params[name] for name in names]
            with _torch.enable_grad():
                grads = _torch.autograd.grad(f.loss(params, f.x[start:stop], f.y[start:stop]), leaves,
                                             create_graph=True)
                hv = _torch.autograd.grad(sum((g * vd[name]).sum() for g, name in zip(grads, names)), leaves,
                                          create_graph=True, allow_unused=True)
                vhv = sum((h * vd[name]).sum() for h, name in zip(hv, names) if h is not None)
                out = _torch.autograd.grad(vhv, leaves, allow_unused=True) if isinstance(vhv, _torch.Tensor) \
                    else [None] * len(names)
            part = _torch.cat([(o if o is not None else _torch.zeros_like(params[name])).detach().reshape(-1)
                               for o, name in zip(out, names)]).to("cpu", _torch.float64).numpy()
            total += part if (start == 0 and stop == n) else (stop - start) / n * part
        return total


def hvp(model: _torch.nn.Module, loss_fn: LossFn, data: Any, *, weight_decay: float = 0.0,
        chunk: int | None = None) -> HessianProduct:
    r"""The Hessian-vector product :math:`v \mapsto (H + \gamma I) v` of the training loss
    :math:`L(w) =` ``loss_fn(model(X), y)`` :math:`+ \tfrac\gamma2|w|^2` at the model's parameters.

    Forward-over-reverse (``torch.func.jvp`` of ``torch.func.grad`` over
    ``torch.func.functional_call``, about the cost of two gradients); double backward
    (``torch.autograd.grad`` with ``create_graph=True``) when some operation of the model has no
    forward-mode derivative. The parameters are copied on creation: later changes to the module do
    not move the point.

    Parameters
    ----------
    model : torch.nn.Module
        At the point (a minimum) where H is taken.
    loss_fn : callable
        ``loss_fn(model(x), y) -> scalar``, the MEAN loss over the batch (``reduction="mean"``;
        see the module's conventions).
    data : (X, y)
        Arrays or tensors with the same leading axis N.
    weight_decay : float
        γ of ``torch.optim.SGD(weight_decay=γ)``: adds :math:`\gamma v` to the product.
    chunk : int, optional
        Examples per batch of the product (default: the whole data as one batch); the chunks'
        products are averaged with weights n_c/N, which is exact for a mean loss.

    Returns
    -------
    HessianProduct
        Callable ``(P,) array_like -> (P,) float64 ndarray`` (also ``.matvec``), vectors in
        :func:`flatten`'s order.

    Examples
    --------
    >>> import numpy as np, torch, sgdnoise.torch as st
    >>> X = np.arange(10.0).reshape(5, 2); y = np.ones((5, 1))
    >>> model = torch.nn.Linear(2, 1, bias=False, dtype=torch.float64)
    >>> h = st.hvp(model, torch.nn.MSELoss(), (X, y), weight_decay=0.5)
    >>> np.allclose(h(np.array([1.0, 0.0])), 2 * X.T @ X[:, 0] / 5 + [0.5, 0.0])
    True
    """
    return HessianProduct(model, loss_fn, data, weight_decay=weight_decay, chunk=chunk)


# ----------------------------------------------------------------------------------------------------
# Per-sample gradients

class _GradientStream:
    """Per-sample gradients in chunks (``torch.func.vmap`` of ``torch.func.grad`` over single
    examples); rows in the gradients' dtype, C-contiguous."""

    def __init__(self, model: Any, loss_fn: LossFn, data: Any, chunk: int) -> None:
        self.f = _Functional(model, loss_fn, data)
        self.n = self.f.n
        self.chunk = as_chunk(chunk, self.n)
        self.dim, self.dtype = self.f.dim, self.f.dtype
        self._block = _func.vmap(_func.grad(self.f.single_loss), in_dims=(None, 0, 0))

    def __iter__(self) -> Iterator[np.ndarray]:
        n, c, f = self.n, self.chunk, self.f
        for start in range(0, n, c):
            stop = min(start + c, n)
            yield f.rows(self._block(f.params, f.x[start:stop], f.y[start:stop]), stop - start)


def per_sample_gradients(model: _torch.nn.Module, loss_fn: LossFn, data: Any,
                         chunk: int = DEFAULT_CHUNK) -> Iterator[np.ndarray]:
    r"""The per-sample gradients :math:`g_i = \nabla_w` ``loss_fn(model(x_i), y_i)``, chunk by chunk.

    ``torch.func.vmap`` of ``torch.func.grad`` over single examples (each a batch of one); only one
    (chunk, P) block exists at a time unless the caller keeps them. No weight decay: its
    :math:`\gamma w`, common to every row, cancels in the noise covariance.

    Parameters
    ----------
    model, loss_fn, data
        As in :func:`hvp`.
    chunk : int
        Examples per block (the last block may be shorter).

    Yields
    ------
    (n_chunk, P) ndarray
        Rows of G in example order, in :func:`flatten`'s parameter order; float64 for float64
        parameters, float32 otherwise (float32 stays float32).

    Examples
    --------
    >>> import numpy as np, torch, sgdnoise.torch as st
    >>> X = np.arange(10.0).reshape(5, 2); y = np.ones((5, 1))
    >>> model = torch.nn.Linear(2, 1)
    >>> [(g.shape, g.dtype.name) for g in st.per_sample_gradients(model, torch.nn.MSELoss(), (X, y), chunk=2)]
    [((2, 3), 'float32'), ((2, 3), 'float32'), ((1, 3), 'float32')]
    """
    stream = _GradientStream(model, loss_fn, data, chunk)  # arguments checked here, not at the first chunk
    return iter(stream)


# ----------------------------------------------------------------------------------------------------
# The linearised network

def linearized_features(model: _torch.nn.Module, loss_fn: LossFn, data: Any, *, chunk: int = DEFAULT_CHUNK,
                        memory_limit_bytes: int = 2**30) -> npt.NDArray[np.float64]:
    r"""The features :math:`x_i = \sqrt{c_i}\, j_i` of the linearised network at the model's parameters
    (docs/theory.md §8, noise model (iii)): :math:`j_i = \nabla_w f(x_i)` the gradient of example i's
    output and :math:`c_i = \partial^2 \ell/\partial f^2` the curvature of ``loss_fn`` in that output
    (1 for ``0.5 * mse_loss``, 2 for ``MSELoss()``), both by ``torch.func`` over single examples.

    For :func:`sgdnoise.linearized_critical_learning_rate`. The model must have one output per
    example (scalar regression or a single logit) and a loss convex in it; the (N, P) float64
    matrix is held in memory (this is for models small enough).

    Parameters
    ----------
    model, loss_fn, data
        As in :func:`hvp`.
    chunk : int
        Examples per ``vmap`` block.
    memory_limit_bytes : int
        Refuse when N·P·8 bytes exceed it.
    """
    f = _Functional(model, loss_fn, data)
    if f.n * f.dim * 8 > memory_limit_bytes:
        raise InvalidArgumentError(f"the linearised network's features need N*P*8 = {f.n * f.dim * 8} bytes, above "
                                   f"memory_limit_bytes = {memory_limit_bytes}")
    c = as_chunk(chunk, f.n)

    def output(params: dict[str, Any], x: Any) -> Any:
        return _func.functional_call(f.model, (params, f.buffers), (x.unsqueeze(0),))

    with _torch.no_grad():
        shape = tuple(output(f.params, f.x[0]).shape)
    if int(np.prod(shape)) != 1:
        raise InvalidArgumentError(f"the linearised network needs one output per example, got output shape {shape} "
                                   "for a batch of one")

    def scalar_output(params: dict[str, Any], x: Any) -> Any:
        return output(params, x).reshape(())

    def example_loss(out: Any, y: Any) -> Any:
        return f.loss_fn(out.reshape(shape), y.unsqueeze(0))

    outputs = _func.vmap(scalar_output, in_dims=(None, 0))
    jacobian = _func.vmap(_func.jacrev(scalar_output), in_dims=(None, 0))
    curvature = _func.vmap(_func.hessian(example_loss), in_dims=(0, 0))
    rows = []
    for start in range(0, f.n, c):
        stop = min(start + c, f.n)
        x, y = f.x[start:stop], f.y[start:stop]
        j = f.rows(jacobian(f.params, x), stop - start).astype(np.float64)
        with _torch.no_grad():
            out = outputs(f.params, x)
        cc = curvature(out, y).reshape(stop - start).detach().cpu().numpy().astype(np.float64)
        rows.append(_linearized_features(j, cc))
    return np.concatenate(rows, axis=0)


# ----------------------------------------------------------------------------------------------------
# The noise product

def noise(model: _torch.nn.Module, loss_fn: LossFn, data: Any, batch_size: int, *, replacement: bool = True,
          chunk: int = DEFAULT_CHUNK, memory_limit_bytes: int = 2**30) -> NoiseOperator | StreamingNoise:
    r"""The minibatch noise covariance [Prop 1] of a PyTorch model at its parameters, as a product
    for :func:`sgdnoise.network_fluctuation`.

    .. math::

        C v = \frac fN\sum_{i=1}^N (g_i - \bar g)\,(g_i - \bar g)^\top v,\qquad
        f = \tfrac1S \text{ (with replacement) or } \tfrac{N-S}{S(N-1)} \text{ (without)},

    :math:`g_i` the per-sample gradients of :func:`per_sample_gradients` (weight decay cancels).
    When G fits, :math:`N P\cdot` itemsize :math:`\le` ``memory_limit_bytes``, the chunks are
    stacked once into G and the result is ``sgdnoise.noise_operator(G, batch_size, replacement)``;
    otherwise a :class:`StreamingNoise` that recomputes the per-sample gradients chunk by chunk
    for every product (memory O(chunk·P), one gradient pass per product).

    Parameters
    ----------
    model, loss_fn, data
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

    Examples
    --------
    >>> import numpy as np, torch, sgdnoise, sgdnoise.torch as st
    >>> X = np.arange(10.0).reshape(5, 2); y = np.ones((5, 1))
    >>> model = torch.nn.Linear(2, 1, dtype=torch.float64)
    >>> c = st.noise(model, torch.nn.MSELoss(), (X, y), 2)
    >>> G = np.concatenate(list(st.per_sample_gradients(model, torch.nn.MSELoss(), (X, y))))
    >>> bool(np.allclose(c.matvec(np.ones(3)), sgdnoise.noise_covariance(G, 2) @ np.ones(3)))
    True
    """
    return stacked_or_streaming(_GradientStream(model, loss_fn, data, chunk), batch_size, replacement,
                                memory_limit_bytes)


# ----------------------------------------------------------------------------------------------------
# The whole prediction

def _check_mean(f: _Functional, chunk: int) -> None:
    """Refuse a loss_fn that is not the mean of its per-example values (``reduction="sum"``, a
    batch-independent regulariser of any size): the Hessian and the per-sample gradients would not
    belong to the same L. Checked on the first min(N, 64) examples (no more than ``chunk`` when
    that is at least 2)."""
    m = min(f.n, max(2, min(chunk, 64)))
    if m < 2:
        return
    x, y = f.x[:m], f.y[:m]
    with _torch.no_grad():
        whole = float(f.loss(f.params, x, y))
        each = _func.vmap(f.single_loss, in_dims=(None, 0, 0))(f.params, x, y).to("cpu", _torch.float64).numpy()
    mean = float(each.mean())
    scale = float(np.abs(each).mean())
    rtol = 1e-3 if f.dtype.itemsize < 8 else 1e-6
    if not np.isfinite(whole) or abs(whole - mean) > rtol * scale + np.finfo(f.dtype).tiny:
        raise InvalidArgumentError(
            f"loss_fn on a batch of the first {m} examples is {whole:.6g} but the mean of its values on those "
            f"examples one by one is {mean:.6g}: loss_fn must be the MEAN of per-example losses over the batch "
            "(reduction='mean'; pass weight decay as weight_decay=, not inside loss_fn)")


def _as_lr(lr: Any, f: _Functional) -> float | npt.NDArray[np.float64]:
    if isinstance(lr, dict):
        unknown = set(lr) - set(f.names)
        missing = set(f.names) - set(lr)
        if unknown or missing:
            raise InvalidArgumentError(f"lr as a dict must name every parameter of model.named_parameters() "
                                       f"exactly (missing {sorted(missing)}, unknown {sorted(unknown)})")
        parts = []
        for name, shape, size in zip(f.names, f.shapes, f.sizes):
            value = lr[name]
            a = np.asarray(value.detach().cpu() if isinstance(value, _torch.Tensor) else value, dtype=np.float64)
            if a.ndim == 0:
                a = np.full(size, float(a))
            elif a.shape != shape:
                raise InvalidArgumentError(f"lr[{name!r}] must be a scalar or of shape {shape}, got {a.shape}")
            parts.append(a.reshape(-1))
        return np.concatenate(parts)
    if isinstance(lr, _torch.Tensor):
        lr = lr.detach().cpu().numpy()
    if np.ndim(lr) == 0:
        return as_scalar(lr, "lr")
    d = np.asarray(lr, dtype=np.float64)
    if d.shape != (f.dim,):
        raise InvalidArgumentError(f"lr must be a scalar, a dict of the parameters' names, or a vector of {f.dim} "
                                   f"entries, got shape {d.shape}")
    return d


def analyze(model: _torch.nn.Module, loss_fn: LossFn, data: Any, *, lr: Any, batch_size: int,
            momentum: float = 0.0, weight_decay: float = 0.0, k: int = 10, probes: int = 30, steps: int = 40,
            replacement: bool = True, seed: int = 0, tol: float | None = None, chunk: int = DEFAULT_CHUNK,
            memory_limit_bytes: int = 2**30, drift_steps: Any = None, linearized: bool = False) -> NetworkFluctuation:
    r"""The stationary fluctuation of ``torch.optim.SGD(model.parameters(), lr, momentum,
    weight_decay)`` with minibatches of ``batch_size`` at a minimum of a PyTorch model,
    matrix-free (docs/theory.md §8): :func:`sgdnoise.network_fluctuation` with this module's
    :func:`hvp` and :func:`noise`.

    This is the generic ``analyze(model, loss, data, lr=..., batch_size=..., momentum=...)`` with
    ``loss = loss_fn`` applied as ``loss_fn(model(X), y)``.

    Parameters
    ----------
    model : torch.nn.Module
        At a minimum (|∇L| small: the prediction is about SGD's fluctuation around it); in
        ``eval()`` mode when it has dropout or batch normalisation.
    loss_fn : callable
        ``loss_fn(output, target) -> scalar``, the MEAN loss over the batch (checked on a few
        examples: ``loss_fn`` on a batch must equal the mean of its values on the examples one by
        one).
    data : (X, y)
        Arrays or tensors with the same leading axis N.
    lr : float, dict, or (P,) array_like
        The learning rate λ, or the diagonal of a preconditioner Λ: a vector in :func:`flatten`'s
        order, or a dict from every name of ``model.named_parameters()`` to a scalar or an array of
        that parameter's shape.
    batch_size : int
        S (the noise's factor, and the multiplicative critical learning rate of Theorem 5).
    momentum : float
        μ (PyTorch's convention, ``dampening=0``, ``nesterov=False``; docs/conventions.md).
    weight_decay : float
        γ of ``torch.optim.SGD``: the Hessian gains γI, the noise is unchanged.
    k, probes, steps : int
        Exact eigenpairs at each end of the spectrum (2k < P), Hutchinson probes, Lanczos steps
        per probe.
    replacement : bool
        Minibatches drawn independently from step to step, with replacement (f = 1/S) or without
        (f = (N−S)/(S(N−1))). Neither is ``DataLoader(shuffle=True)``: its epochs use every example
        once, so the noise summed over an epoch vanishes, and directions whose relaxation time
        1/(λh) is not short compared with an epoch (N/S steps) fluctuate less than predicted —
        measured 1.2–2.6× less in the top directions, and 2–3× less excess loss, at 0.05 of the
        stability edge (experiments/real_network/RESULTS.md, "PyTorch"). For linear regression on
        a dataset, ``sgdnoise.finite_dataset(..., sampling="epoch_shuffling")`` predicts it
        (docs/theory.md §4.2); for networks no prediction covers it yet.
    seed : int
    tol : float, optional
        Relative residual tolerance of the eigenpairs; default 1e-8 for float64 parameters, 1e-4
        for float32 ones (whose products are only accurate to about 1e-7).
    chunk, memory_limit_bytes : int
        As in :func:`noise`.
    drift_steps : int or sequence of int, optional
        Also predict the mean drift :math:`E[w_t - w^*]` at these steps (:func:`sgdnoise.network_drift`
        with :meth:`HessianProduct.curvature_gradient`; scalar learning rate): ``result.drift``.
    linearized : bool
        Also compute the linearised network's exact critical learning rate
        (``result.critical_learning_rate_linearized``; :func:`linearized_features` and
        :func:`sgdnoise.linearized_critical_learning_rate`): one output per example, N·P in memory,
        and a dense §4.1 solve on the range of the features (about a second at N = 442,
        P = 193) — for models small enough.

    Returns
    -------
    NetworkFluctuation
        With ``top_eigenvectors`` in :func:`flatten`'s parameter order; ``.summary()`` reports it.

    Notes
    -----
    For several learning rates, momenta or batch sizes at one minimum, build the products once
    and call the core directly::

        h = sgdnoise.torch.hvp(model, loss_fn, data, weight_decay=wd)
        c = sgdnoise.torch.noise(model, loss_fn, data, batch_size)
        for lr in rates:
            r = sgdnoise.network_fluctuation(h, c, h.dim, lr=lr, batch_size=batch_size)

    Raises
    ------
    InvalidArgumentError
        Bad arguments, or a ``loss_fn`` that is not a mean over the batch.
    UnstableError
        λ at or beyond the stability edge 2(1+μ)/h_max.

    Examples
    --------
    >>> import numpy as np, torch, sgdnoise.torch as st
    >>> X = np.random.default_rng(1).normal(size=(32, 3)); y = np.zeros((32, 1))
    >>> model = torch.nn.Linear(3, 1, bias=False, dtype=torch.float64)
    >>> _ = torch.nn.init.zeros_(model.weight)       # the minimum of the MSE (y = 0)
    >>> r = st.analyze(model, torch.nn.MSELoss(), (X, y), lr=0.1, batch_size=4, weight_decay=0.01, k=1, probes=2)
    >>> bool(np.isclose(r.critical_learning_rate_additive,
    ...                 2 / (np.linalg.eigvalsh(2 * X.T @ X / 32).max() + 0.01), rtol=1e-8))
    True
    """
    h = HessianProduct(model, loss_fn, data, weight_decay=weight_decay)
    rate = _as_lr(lr, h._f)
    _check_mean(h._f, as_chunk(chunk, h.samples))
    c = noise(model, loss_fn, data, batch_size, replacement=replacement, chunk=chunk,
              memory_limit_bytes=memory_limit_bytes)
    if tol is None:
        tol = 1e-4 if h.dtype.itemsize < 8 else 1e-8
    features = None if not linearized else linearized_features(model, loss_fn, data, chunk=chunk,
                                                                   memory_limit_bytes=memory_limit_bytes)
    result = network_fluctuation(h, c, h.dim, lr=rate, momentum=momentum, k=k, probes=probes,
                                 steps=steps, batch_size=batch_size, tol=tol, seed=seed, features=features,
                                 weight_decay=weight_decay, replacement=replacement)
    return with_drift(result, h, drift_steps)


# ----------------------------------------------------------------------------------------------------
# Merging the ranks' noise states (torch.distributed)

def all_reduce_noise(state: _State, group: Any = None) -> _State:
    r"""The merge of every rank's noise state over a ``torch.distributed`` process group, the same
    on every rank: a collective, like ``torch.distributed.all_reduce``.

    Each rank passes the :class:`~sgdnoise.NoiseAccumulator` (or :class:`~sgdnoise.NoiseSketch`) of
    its own shard of per-sample gradients; every rank gets a new state of the same class holding all
    the ranks' gradients, the states merged in rank order :math:`0, 1, \dots, R-1`. For accumulators
    each merge is the exact pairwise update

    .. math::

        n = n_a + n_b,\quad \delta = m_b - m_a,\quad \bar g = m_a + \tfrac{n_b}{n}\delta,\quad
        S = S_a + S_b + \tfrac{n_a n_b}{n}\,\delta\delta^\top ,

    so ``covariance(S)`` equals the one-shot :func:`sgdnoise.noise_covariance` of the rows of all
    ranks up to rounding; for sketches the Frequent Directions guarantee holds for the union.

    Two collectives, no pickle: an ``all_gather`` of four integers per rank (the state's size,
    kind, D and ℓ), so that every rank checks that the states are alike and all raise the same error
    if not (none is left waiting); then an ``all_gather`` of the states' bytes (``to_bytes``,
    docs/state_format.md) as uint8 tensors, whose size depends on the shape alone and so is the same
    on every rank. Each rank restores the R states (``from_bytes`` verifies their checksums) and
    merges them in rank order: the same merges of the same bytes, hence bit-identical results on
    every rank running the same library, CPU kind and BLAS thread count (a sketch's merge goes
    through BLAS, whose last bits depend on them; docs/state_format.md).

    Parameters
    ----------
    state : NoiseAccumulator or NoiseSketch
        This rank's state (possibly empty); unchanged.
    group : torch.distributed.ProcessGroup, optional
        The ranks that merge (default: the whole world). Every rank of the group must call this
        function. With the ``nccl`` backend the bytes travel through the current CUDA device.

    Returns
    -------
    NoiseAccumulator or NoiseSketch
        A new object (the caller closes it, or lets it be collected).

    Raises
    ------
    InvalidArgumentError
        ``torch.distributed`` not initialised; on every rank, when any rank passed something other
        than an open state, or states of different classes or shapes.

    Notes
    -----
    Every rank receives the R states: :math:`R` times the state's size (for an accumulator
    :math:`32 + 8(2 + D + D(D+1)/2)` bytes) per rank.

    Examples
    --------
    A sketch of a script run as ``torchrun --nproc-per-node 2 script.py`` (gradients: this rank's
    (n, D) array of per-sample gradients)::

        import torch.distributed as dist, sgdnoise, sgdnoise.torch
        dist.init_process_group("gloo")
        acc = sgdnoise.NoiseAccumulator(D)
        acc.update(gradients)
        total = sgdnoise.torch.all_reduce_noise(acc)     # the same on every rank
        C = total.covariance(batch_size=32)

    In one process (a world of one rank, for the check):

    >>> import os, tempfile, numpy as np, torch.distributed as dist, sgdnoise, sgdnoise.torch as st
    >>> path = os.path.join(tempfile.mkdtemp(), "rendezvous")
    >>> dist.init_process_group("gloo", init_method=f"file://{path}", rank=0, world_size=1)
    >>> acc = sgdnoise.NoiseAccumulator(3)
    >>> acc.update(np.arange(12.0).reshape(4, 3))
    >>> total = st.all_reduce_noise(acc)
    >>> total.count, total.to_bytes() == acc.to_bytes()
    (4, True)
    >>> dist.destroy_process_group()
    """
    if not (_dist.is_available() and _dist.is_initialized()):
        raise InvalidArgumentError("torch.distributed is not initialised: call torch.distributed.init_process_group "
                                   "first")
    usable = isinstance(state, MergeableState) and not state.closed
    data = state.to_bytes() if usable else b""
    if usable:
        kind = struct.unpack_from("<I", data, 12)[0]  # the state's kind (docs/state_format.md)
        meta = [len(data), kind, state.dim, int(getattr(state, "rows", 0))]
    else:
        meta = [-1, -1, -1, -1]
    device = (_torch.device("cuda", _torch.cuda.current_device()) if _dist.get_backend(group) == "nccl"
              else _torch.device("cpu"))
    ranks = _dist.get_world_size(group)
    mine = _torch.tensor(meta, dtype=_torch.int64, device=device)
    metas = [_torch.empty_like(mine) for _ in range(ranks)]
    _dist.all_gather(metas, mine, group=group)
    table = [tuple(int(v) for v in m.cpu().tolist()) for m in metas]
    bad = [r for r, m in enumerate(table) if m[0] < 0]
    if bad:
        raise InvalidArgumentError(f"all_reduce_noise: rank(s) {bad} of the group passed something other than an "
                                   "open NoiseAccumulator or NoiseSketch")
    if len(set(table)) > 1:
        described = ", ".join(f"rank {r}: kind {m[1]}, D = {m[2]}" + (f", rows = {m[3]}" if m[3] else "")
                              for r, m in enumerate(table))
        raise InvalidArgumentError(f"all_reduce_noise: the ranks' states differ in class or shape ({described})")
    payload = _torch.frombuffer(bytearray(data), dtype=_torch.uint8).to(device)
    parts = [_torch.empty_like(payload) for _ in range(ranks)]
    _dist.all_gather(parts, payload, group=group)
    cls = type(state)
    states = [cls.from_bytes(p.cpu().numpy().tobytes()) for p in parts]
    try:
        return merged(states)
    finally:
        for s in states:
            s.close()
