r"""The whole learning curve of SGD under schedules (docs/theory.md §9).

A :class:`Schedule` holds the per-step hyperparameters :math:`\lambda_t, S_t, \mu_t` of the
updates :math:`t = 1\dots T`; :func:`learning_curve` returns the exact first and second moments of
SGD at the steps asked for, the losses and the relaxation towards the stationary state of the last
hyperparameters, computed by the C library (``sgdnoise_learning_curve_from_distribution``,
``sgdnoise_quadratic_learning_curve_from_distribution``, ``sgdnoise_dataset_learning_curve``,
``sgdnoise_minimum_learning_curve``).
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from . import _capi, _lib
from ._arrays import as_batch_size, as_dense_or_none, as_flat_tolerance, as_float64, as_scalar, as_square, ptr
from ._operands import Operand
from .errors import InvalidArgumentError
from .minimum import _decay
from .simulation import _create, _seed

__all__ = ["Schedule", "LearningCurve", "learning_curve", "ScheduledSimulation", "simulate_schedule"]

_lib_ = _lib.lib
_PTRDIFF_MAX = 2**63 - 1

# Model names (those of sgdnoise.critical_learning_rate(model=...), plus the aliases of issue 13)
# -> (C model code, or None for a given (H, C), or _DATASET; the model function's own arguments:
# required, optional).
_DATASET, _MINIMUM = -1, -2
_MODELS: dict[str, tuple[int | None, tuple[str, ...], dict[str, Any]]] = {
    "label_noise": (_capi.SGDNOISE_MODEL_LABEL_NOISE, ("A", "noise_var"), {}),
    "input_noise": (_capi.SGDNOISE_MODEL_INPUT_NOISE, ("A", "B", "u"), {"noise_var": 0.0}),
    "l2_regularized": (_capi.SGDNOISE_MODEL_L2_REGULARIZED, ("A", "u", "weight_decay"), {}),
    "high_dimensional": (_capi.SGDNOISE_MODEL_HIGH_DIMENSIONAL, ("A_hat", "alpha", "noise_var"), {}),
    "quadratic": (None, ("hessian", "noise"), {"reference_batch_size": 1}),
    "finite_dataset": (_DATASET, ("X", "y"), {"replacement": True, "weight_decay": 0.0, "u": None, "A": None}),
    "minimum": (_MINIMUM, ("hessian", "loss"), {"weight_decay": 0.0, "w_star": None, "flat_tolerance": None}),
}
_ALIASES = {"l2": "l2_regularized"}


def _per_step(x: npt.ArrayLike, name: str, dtype: type) -> np.ndarray:
    """A scalar (0-d) or a 1-D per-step array of ``dtype``."""
    if np.iscomplexobj(x):
        raise InvalidArgumentError(f"{name} must be real, got {x!r}")
    try:
        a = np.asarray(x)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number or a 1-D array, got {x!r}") from None
    if a.ndim > 1:
        raise InvalidArgumentError(f"{name} must be a scalar or a 1-D per-step array, got shape {a.shape}")
    if dtype is np.int64:
        integral = a.dtype.kind in "iu" or (a.dtype.kind == "f" and bool(np.all(np.isfinite(a)))
                                             and bool(np.all(a == np.round(a))))
        if not integral or a.dtype.kind == "b":
            raise InvalidArgumentError(f"{name} must hold integers, got {x!r}")
        if a.size and (np.max(a) > _PTRDIFF_MAX or np.min(a) < -_PTRDIFF_MAX):
            raise InvalidArgumentError(f"{name} is out of range")
        return np.array(a, dtype=np.int64)
    if a.dtype.kind not in "iufb" or a.dtype.kind == "b":
        raise InvalidArgumentError(f"{name} must hold real numbers, got {x!r}")
    return np.array(a, dtype=np.float64)


def _steps_argument(steps: object, name: str = "steps") -> int:
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an integer, got {steps!r}")
    if not 1 <= int(steps) <= _PTRDIFF_MAX:
        raise InvalidArgumentError(f"{name} must be at least 1, got {int(steps)}")
    return int(steps)


class Schedule:
    r"""The hyperparameters of SGD step by step: :math:`\lambda_t`, :math:`S_t`, :math:`\mu_t` for
    the updates :math:`t = 1\dots T` (docs/theory.md §9).

    Entry :math:`k` of each array is used by update :math:`k+1`:
    :math:`m_{k+1} = \mu_{k+1} m_k + \hat g_{k+1}`, :math:`w_{k+1} = w_k - \lambda_{k+1} m_{k+1}`
    with :math:`\hat g_{k+1}` the mean gradient of a minibatch of :math:`S_{k+1}` samples at
    :math:`w_k` (PyTorch's momentum convention).

    Parameters
    ----------
    lr : float or (T,) array_like
        :math:`\lambda_t` (each finite and :math:`\ge 0`; 0 leaves :math:`w` unchanged).
    batch_size : int or (T,) array_like of int
        :math:`S_t \ge 1`.
    momentum : float or (T,) array_like, default 0.0
        :math:`\mu_t \in [0, 1)`.
    steps : int, optional
        :math:`T`; required when all three are scalars, else the arrays' common length (a scalar
        is repeated).

    Raises
    ------
    InvalidArgumentError
        For arrays of different lengths, a ``steps`` that disagrees with them, or no length at
        all. The values' ranges are checked by the library when the schedule is used.

    Examples
    --------
    >>> import sgdnoise
    >>> s = sgdnoise.Schedule.step_decay(0.1, factor=0.1, every=2, batch_size=4, steps=5)
    >>> s.lr.round(12).tolist()
    [0.1, 0.1, 0.01, 0.01, 0.001]
    """

    __slots__ = ("_lr", "_batch_size", "_momentum")

    def __init__(self, lr: npt.ArrayLike, batch_size: npt.ArrayLike, momentum: npt.ArrayLike = 0.0, *,
                 steps: int | None = None) -> None:
        arrays = [_per_step(lr, "lr", np.float64), _per_step(batch_size, "batch_size", np.int64),
                  _per_step(momentum, "momentum", np.float64)]
        lengths = {a.shape[0] for a in arrays if a.ndim == 1}
        if len(lengths) > 1:
            raise InvalidArgumentError(
                f"lr, batch_size and momentum must have the same length, got {[a.shape[0] if a.ndim else 'scalar' for a in arrays]}")
        if steps is not None:
            t = _steps_argument(steps)
            if lengths and lengths != {t}:
                raise InvalidArgumentError(f"steps = {t} but the per-step arrays have {lengths.pop()} entries")
        elif lengths:
            t = lengths.pop()
            if t == 0:
                raise InvalidArgumentError("a schedule needs at least one step, got empty arrays")
        else:
            raise InvalidArgumentError("steps is required when lr, batch_size and momentum are all scalars")
        out = []
        for a in arrays:
            a = np.full(t, a[()], dtype=a.dtype) if a.ndim == 0 else a.copy()
            a.flags.writeable = False
            out.append(a)
        self._lr, self._batch_size, self._momentum = out

    @property
    def lr(self) -> npt.NDArray[np.float64]:
        """:math:`\\lambda_t`, (T,) read-only."""
        return self._lr

    @property
    def batch_size(self) -> npt.NDArray[np.int64]:
        """:math:`S_t`, (T,) read-only."""
        return self._batch_size

    @property
    def momentum(self) -> npt.NDArray[np.float64]:
        """:math:`\\mu_t`, (T,) read-only."""
        return self._momentum

    @property
    def steps(self) -> int:
        """The number of updates :math:`T`."""
        return int(self._lr.shape[0])

    def __len__(self) -> int:
        return self.steps

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return bool(np.array_equal(self._lr, other._lr) and np.array_equal(self._batch_size, other._batch_size)
                    and np.array_equal(self._momentum, other._momentum))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Schedule(steps={self.steps}, lr=[{self._lr[0]:g} .. {self._lr[-1]:g}], "
                f"batch_size=[{self._batch_size[0]} .. {self._batch_size[-1]}], "
                f"momentum=[{self._momentum[0]:g} .. {self._momentum[-1]:g}])")

    def _prefix(self, t: int) -> Schedule:
        """The first ``t`` updates; beyond T, the last hyperparameters held."""
        idx = np.minimum(np.arange(t), self.steps - 1)
        return Schedule(self._lr[idx], self._batch_size[idx], self._momentum[idx])

    # -- shapes (the formulas of Swift's Schedule.Shape and Schedule.BatchSizeShape) -------------------

    @classmethod
    def constant(cls, lr: float, batch_size: int = 1, momentum: float = 0.0, *, steps: int) -> Schedule:
        r""":math:`\lambda_t = \lambda`, :math:`S_t = S`, :math:`\mu_t = \mu` for ``steps`` updates."""
        return cls(lr, batch_size, momentum, steps=steps)

    @classmethod
    def step_decay(cls, lr: float, factor: float, every: int, *, steps: int, batch_size: npt.ArrayLike = 1,
                   momentum: npt.ArrayLike = 0.0) -> Schedule:
        r"""A step decay counted in updates (PyTorch's ``StepLR``):
        :math:`\lambda_{k+1} = \lambda_0\gamma^{\lfloor k/n\rfloor}`, :math:`k = 0\dots T-1`,
        :math:`n` = ``every``, :math:`\gamma` = ``factor``."""
        t, n = _steps_argument(steps), _steps_argument(every, "every")
        k = np.arange(t)
        return cls(as_scalar(lr, "lr") * as_scalar(factor, "factor") ** (k // n), batch_size, momentum, steps=t)

    @classmethod
    def milestones(cls, lr: float, factor: float, at: Sequence[int], *, steps: int, batch_size: npt.ArrayLike = 1,
                   momentum: npt.ArrayLike = 0.0) -> Schedule:
        r"""The learning rate multiplied by :math:`\gamma` after each update :math:`m_j` of ``at``
        (PyTorch's ``MultiStepLR`` counted in updates):
        :math:`\lambda_{k+1} = \lambda_0\gamma^{\#\{j: m_j \le k\}}`."""
        t = _steps_argument(steps)
        m = np.asarray(at, dtype=np.int64).ravel()
        if m.size and (np.any(m < 1) or np.any(np.diff(m) <= 0)):
            raise InvalidArgumentError(f"at must list increasing update numbers >= 1, got {list(at)}")
        count = np.searchsorted(m, np.arange(t), side="right")
        return cls(as_scalar(lr, "lr") * as_scalar(factor, "factor") ** count, batch_size, momentum, steps=t)

    @classmethod
    def exponential(cls, lr: float, factor: float, *, steps: int, batch_size: npt.ArrayLike = 1,
                    momentum: npt.ArrayLike = 0.0) -> Schedule:
        r""":math:`\lambda_{k+1} = \lambda_0\gamma^k` (PyTorch's ``ExponentialLR`` per update)."""
        t = _steps_argument(steps)
        return cls(as_scalar(lr, "lr") * as_scalar(factor, "factor") ** np.arange(t, dtype=np.float64), batch_size,
                   momentum, steps=t)

    @classmethod
    def cosine(cls, lr: float, final_lr: float = 0.0, *, steps: int, batch_size: npt.ArrayLike = 1,
               momentum: npt.ArrayLike = 0.0) -> Schedule:
        r"""A half cosine (PyTorch's ``CosineAnnealingLR`` with :math:`T_{max} = T`):
        :math:`\lambda_{k+1} = \lambda_1 + \tfrac12(\lambda_0 - \lambda_1)(1 + \cos(\pi k/T))`."""
        t = _steps_argument(steps)
        v0, v1 = as_scalar(lr, "lr"), as_scalar(final_lr, "final_lr")
        return cls(v1 + 0.5 * (v0 - v1) * (1 + np.cos(np.pi * np.arange(t) / t)), batch_size, momentum, steps=t)

    @classmethod
    def warmup(cls, warmup_steps: int, then: Schedule) -> Schedule:
        r"""A linear warm-up over :math:`W` = ``warmup_steps`` updates followed by ``then``:
        :math:`\lambda_{k+1} = \lambda\,(k+1)/W` for :math:`k < W` (:math:`\lambda` the first
        learning rate of ``then``, whose first batch size and momentum the warm-up uses), then
        ``then``; :math:`T = W + T_{then}`."""
        w = _steps_argument(warmup_steps, "warmup_steps")
        if not isinstance(then, Schedule):
            raise InvalidArgumentError(f"then must be a Schedule, got {type(then).__name__}")
        ramp = then.lr[0] * np.arange(1, w + 1) / w
        return cls(np.concatenate([ramp, then.lr]),
                   np.concatenate([np.full(w, then.batch_size[0]), then.batch_size]),
                   np.concatenate([np.full(w, then.momentum[0]), then.momentum]))

    @classmethod
    def batch_size_ramp(cls, lr: npt.ArrayLike, batch_size: int, factor: int, *, steps: int,
                        at: Sequence[int] | None = None, every: int | None = None,
                        momentum: npt.ArrayLike = 0.0) -> Schedule:
        r"""A batch-size ramp, the counterpart of a step decay of the learning rate by
        :math:`1/f`: :math:`S_{k+1} = S_0 f^{\#\{j: m_j \le k\}}` (the batch size multiplied by the
        integer :math:`f` after each update :math:`m_j` of ``at``), or
        :math:`S_0 f^{\lfloor k/n\rfloor}` with :math:`n` = ``every``."""
        t = _steps_argument(steps)
        if (at is None) == (every is None):
            raise InvalidArgumentError("give exactly one of at (milestones) and every")
        if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, (int, np.integer)) or factor < 1:
            raise InvalidArgumentError(f"factor must be an integer >= 1, got {factor!r}")
        k = np.arange(t)
        if at is not None:
            m = np.asarray(at, dtype=np.int64).ravel()
            if m.size and (np.any(m < 1) or np.any(np.diff(m) <= 0)):
                raise InvalidArgumentError(f"at must list increasing update numbers >= 1, got {list(at)}")
            power = np.searchsorted(m, k, side="right")
        else:
            power = k // _steps_argument(every, "every")
        s0 = int(batch_size)
        sizes = [s0 * int(factor) ** int(p) for p in power]
        if max(sizes) > 2**31 - 1:
            raise InvalidArgumentError(f"batch_size: the ramp overflows ({max(sizes)})")
        return cls(lr, np.array(sizes, dtype=np.int64), momentum, steps=t)


@dataclass(frozen=True)
class LearningCurve:
    r"""The exact learning curve of SGD under a schedule at the recorded steps.

    Attributes
    ----------
    steps : (P,) ndarray of int
        The recorded steps :math:`t` (0 is the start :math:`w_0`; :math:`t` the state after
        update :math:`t`).
    train_loss, test_loss : (P,) ndarray
        :math:`E[L(w_t)]` (the model's ``Prediction.train_loss``: regulariser and label noise
        included; :math:`\tfrac12\operatorname{Tr}[HM_t]` for ``"quadratic"``) and
        :math:`E[\tfrac12(w_t-u)^\top A(w_t-u)]`.
    trace : (P,) ndarray
        :math:`\operatorname{Tr}\Sigma_t`, :math:`\Sigma_t = \operatorname{cov}(w_t)`.
    mean : (P, D) ndarray or None
        :math:`E[w_t]` (for label noise, high-dimensional and quadratic models measured from the
        minimum); None when ``moments=False``.
    sigma_diagonal : (P, D) ndarray or None
        The diagonal of :math:`\Sigma_t`; None when ``moments=False``.
    sigma : (P, D, D) ndarray or None
        The whole :math:`\Sigma_t` for a dense model (matrices given as (D, D), and
        ``"finite_dataset"``); None for spectra (whose recursion keeps only the diagonal) and when
        ``moments=False``.
    mode_times : (D,) ndarray
        :math:`-1/\ln\rho(B_i)` of each mode's second-moment map for the last hyperparameters
        (:math:`\infty` when it does not relax), in the spectrum's order (ascending Hessian
        eigenvalues for a dense model).
    moment_time, mean_time : float
        The relaxation times of the whole coupled second-moment map (the losses' fluctuation
        part) and of the mean (the bias), in updates.
    stationary_train_loss, stationary_test_loss : float or None
        The stationary losses of the last hyperparameters (None when unstable or the last
        learning rate is 0).
    settled_at : int or None
        The first update at or after the schedule's last change from which
        :math:`|L_{train}(s) - L^*| \le \varepsilon |L^*|` until the end (None if never).
    tolerance : float
        :math:`\varepsilon`.
    unstable_from : int or None
        The first update beyond the critical learning rate :math:`\lambda^*(S_t, \mu_t)`, from
        which the second moments grow (None when every update is stable).
    """

    steps: npt.NDArray[np.int64]
    train_loss: npt.NDArray[np.float64]
    test_loss: npt.NDArray[np.float64]
    trace: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64] | None
    sigma_diagonal: npt.NDArray[np.float64] | None
    mode_times: npt.NDArray[np.float64]
    moment_time: float
    mean_time: float
    stationary_train_loss: float | None
    stationary_test_loss: float | None
    settled_at: int | None
    tolerance: float
    unstable_from: int | None
    sigma: npt.NDArray[np.float64] | None = None

    def to_dict(self, moments: bool = False) -> dict[str, npt.NDArray[Any]]:
        """Columns of equal length, one row per recorded step (``pandas.DataFrame(curve.to_dict())``):
        ``step``, ``train_loss``, ``test_loss``, ``trace``, and with ``moments=True`` also
        ``mean_i`` and ``sigma_i`` (the diagonal of :math:`\\Sigma_t`) for each coordinate i."""
        out: dict[str, npt.NDArray[Any]] = {"step": self.steps, "train_loss": self.train_loss,
                                            "test_loss": self.test_loss, "trace": self.trace}
        if moments and self.mean is not None and self.sigma_diagonal is not None:
            for i in range(self.mean.shape[1]):
                out[f"mean_{i}"] = self.mean[:, i]
            for i in range(self.sigma_diagonal.shape[1]):
                out[f"sigma_{i}"] = self.sigma_diagonal[:, i]
        return out


def _optional(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _start(w0: npt.ArrayLike | None, d: int) -> npt.NDArray[np.float64] | None:
    """The start ``w0`` as a (D,) float64 array (None stays None)."""
    start = None if w0 is None else _per_step(w0, "w0", np.float64)
    if start is not None and (start.ndim != 1 or start.shape[0] != d):
        raise InvalidArgumentError(f"w0 must have {d} entries, got shape {start.shape}")
    return start


def _default_record(t: int) -> npt.NDArray[np.int64]:
    """The core's default grid: every step when T <= 100, else 101 evenly spaced steps k T // 100."""
    if t <= 100:
        return np.arange(t + 1, dtype=np.int64)
    grid = np.array([k * t // 100 for k in range(101)], dtype=np.int64)
    grid[-1] = t
    return grid


def learning_curve(model: str, schedule: Schedule, *, steps: int | None = None, record: npt.ArrayLike | None = None,
                   w0: npt.ArrayLike | None = None, sigma0: npt.ArrayLike | None = None, tolerance: float = 0.01,
                   moments: bool = True, **model_args: Any) -> LearningCurve:
    r"""The exact learning curve of SGD on a quadratic model under a schedule (docs/theory.md §9).

    With :math:`e_t = w_t - w^*` the mean follows gradient descent with momentum and, without
    momentum, the (uncentred) second moment :math:`M_t = E[e_te_t^\top]` obeys

    .. math::

        M_{t+1} = (I - \lambda_t H) M_t (I - \lambda_t H) + \lambda_t^2 C_t(M_t),\quad
        C_t(M) = \frac{1}{S_t}\bigl(\beta_1 AVA + \beta_2\operatorname{Tr}[AV]A\bigr) + \frac{\bar C_0}{S_t},

    :math:`V = E[(e+\delta)(e+\delta)^\top]`, with the model's :math:`\beta_1, \beta_2, \bar C_0,
    \delta` (label noise: :math:`\beta_1 = \beta_2 = 1`, :math:`\bar C_0 = \sigma^2 A`; L2:
    :math:`H = A + \Gamma`, :math:`\delta = w^* - u`; input noise: :math:`A \to A + B`; high-dimensional:
    :math:`\beta_1 = -1`; ``"quadratic"``: :math:`C_t = (S_{ref}/S_t)C`). With momentum the state is
    the second moment of :math:`(e_t, m_t)`, a :math:`2D \times 2D` block recursion. Constant
    hyperparameters converge to the stationary predictions of :func:`label_noise` etc.

    ``"finite_dataset"`` (docs/theory.md §4.1, §9): with :math:`\hat A = X^\top X/N`,
    :math:`H = K = \hat A + \Gamma`, :math:`r_i = x_i^\top w^* - y_i`,
    :math:`z_i = x_ir_i - \overline{xr}` and :math:`f_t = 1/S_t` (with replacement) or
    :math:`(N-S_t)/(S_t(N-1))` (without), the noise of step :math:`t` is

    .. math::

        C_t = f_t\bigl[F(M_t) - \hat AM_t\hat A + R + J(\bar e_t) + J(\bar e_t)^\top\bigr],\quad
        F(M) = \tfrac1N\sum_i (x_i^\top Mx_i)\,x_ix_i^\top,\quad R = \tfrac1N\sum_i z_iz_i^\top,\quad
        J(v) = \tfrac1N\sum_i x_i(x_i^\top v)\,z_i^\top,

    (:math:`M_t` uncentred, :math:`\bar e_t = E[w_t] - w^*`; :math:`J` vanishes at stationarity, not in a
    transient), entering :math:`M_{t+1} = (I-\lambda_tK)M_t(I-\lambda_tK) + \lambda_t^2C_t`.
    A constant schedule converges to :func:`finite_dataset`'s :math:`\Sigma`.

    ``"minimum"`` (docs/theory.md §5): :math:`w` measured from :math:`w^*`, :math:`H = H_0 + \Gamma`,
    the noise of :func:`minimum_fluctuation`: the constant
    :math:`C_t = \frac{1}{S_t}(2L_0H_0 - \Gamma w^*w^{*\top}\Gamma)` at a regularised or
    non-interpolating minimum, :math:`C_t(M) = \frac{1}{S_t}(\operatorname{Tr}[H_0M]H_0 - H_0MH_0)` at
    an interpolating one; both losses are :math:`L_\Gamma(w^*) + \tfrac12\operatorname{Tr}[HM_t]`.

    A random start :math:`w_0 \sim (w_0, \Sigma_0)` (``sigma0``) starts the recursion at
    :math:`M_0 = \Sigma_0 + \bar e_0\bar e_0^\top`.

    Parameters
    ----------
    model : {"label_noise", "input_noise", "l2", "l2_regularized", "high_dimensional", "quadratic", "finite_dataset", "minimum"}
        The model, named as in :func:`critical_learning_rate`; ``"quadratic"`` is a given
        Hessian and noise (:func:`stationary_covariance`).
    schedule : Schedule
        :math:`\lambda_t, S_t, \mu_t`.
    steps : int, optional
        The number of updates to run (default ``schedule.steps``): fewer runs the schedule's
        first updates, more holds its last hyperparameters after its end.
    record : array_like of int, optional
        The steps to report, strictly increasing in :math:`0\dots T` (default: every step when
        :math:`T \le 100`, else 101 evenly spaced steps from 0 to :math:`T`).
    w0 : (D,) array_like, optional
        The start, or its mean when ``sigma0`` is given (default 0; for ``label_noise``,
        ``high_dimensional`` and ``quadratic`` :math:`w` is measured from the minimum, so 0 starts
        there).
    sigma0 : (D, D) array_like, optional
        :math:`\Sigma_0`, the covariance of a random start (symmetric positive semi-definite, in
        the layout of the model's matrices: a 1-D diagonal for spectra, whose recursion uses only
        the diagonal); default None, a point start.
    tolerance : float, default 0.01
        :math:`\varepsilon` of ``settled_at``.
    moments : bool, default True
        Whether to return ``mean``, ``sigma_diagonal`` (P × D each) and, for dense models,
        ``sigma`` (P × D × D).
    **model_args
        The model function's own arguments less ``lr``, ``batch_size`` and ``momentum``:
        ``A, noise_var`` (label noise); ``A, B, u, noise_var=0`` (input noise); ``A, u,
        weight_decay`` (L2); ``A_hat, alpha, noise_var`` (high-dimensional); ``hessian, noise,
        reference_batch_size=1`` (quadratic: ``noise`` is :math:`C` measured at batch size
        ``reference_batch_size``); ``X, y, replacement=True, weight_decay=0, u=None, A=None``
        (finite dataset, as :func:`finite_dataset`: every :math:`S_t \le N` without replacement;
        ``test_loss`` is NaN without ``u``); ``hessian, loss, weight_decay=0, w_star=None,
        flat_tolerance=None`` (a general minimum, as :func:`minimum_fluctuation`). Matrices are
        (D, D) or 1-D spectra, as in the model functions (the dataset's are (D, D) or scalars).

    Returns
    -------
    LearningCurve

    Raises
    ------
    InvalidArgumentError
        An unknown model, a missing or unknown model argument, a bad schedule (a negative or
        non-finite learning rate, :math:`S < 1`, :math:`\mu \notin [0, 1)`), bad ``record`` or
        ``w0``. An unstable schedule is not an error: see ``unstable_from``.
    NumericalError
        When the second moments overflow (a long unstable stretch).

    Notes
    -----
    :math:`O(DT)` for spectra, :math:`O(D^2T + D^3)` dense, :math:`O((ND^2 + D^3)T)` for a finite
    dataset (whose ``moment_time`` comes from a power iteration of its second-moment map and whose
    ``mode_times`` are those of each mode's noise-free map).

    Examples
    --------
    >>> import numpy as np, sgdnoise
    >>> s = sgdnoise.Schedule(0.5, batch_size=10, steps=2000)
    >>> c = sgdnoise.learning_curve("label_noise", s, A=[1.0], noise_var=1.0, record=[2000])
    >>> p = sgdnoise.label_noise([1.0], noise_var=1.0, lr=0.5, batch_size=10)
    >>> bool(np.isclose(c.train_loss[-1], p.train_loss, rtol=1e-12))
    True
    """
    if not isinstance(model, str):
        raise InvalidArgumentError(f"model must be a model name, got {model!r}")
    name = _ALIASES.get(model, model)
    if name not in _MODELS:
        raise InvalidArgumentError(f"model must be one of {sorted(set(_MODELS) | set(_ALIASES))}, got {model!r}")
    if not isinstance(schedule, Schedule):
        raise InvalidArgumentError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    code, required, optional = _MODELS[name]
    missing = [k for k in required if k not in model_args]
    unknown = sorted(set(model_args) - set(required) - set(optional))
    if missing or unknown:
        raise InvalidArgumentError(
            f"model {name!r} takes {', '.join(required + tuple(optional))}"
            + (f"; missing {', '.join(missing)}" if missing else "") + (f"; unknown {', '.join(unknown)}" if unknown else ""))
    args = {**optional, **model_args}
    if steps is not None:
        schedule = schedule._prefix(_steps_argument(steps))
    t = schedule.steps
    at = _default_record(t) if record is None else _per_step(record, "record", np.int64)
    if at.ndim != 1 or at.size == 0:
        raise InvalidArgumentError("record must be a non-empty 1-D list of steps")

    p = at.shape[0]
    if code == _DATASET:
        xs = as_float64(args["X"], "X", 2)
        d = xs.shape[1]
        dense = True
    else:
        key = "hessian" if code in (None, _MINIMUM) else ("A_hat" if name == "high_dimensional" else "A")
        op = Operand(args[key], "hessian" if key == "hessian" else "A")
        d, dense = op.dim, not op.diagonal
    start = _start(w0, d)
    if sigma0 is None:
        start_cov = None
    elif code == _DATASET:
        start_cov = as_square(sigma0, "sigma0", d)
    else:
        start_cov = op.like(sigma0, "sigma0")
    train, test, trace = np.empty(p), np.empty(p), np.empty(p)
    mean = np.empty((p, d)) if moments else None
    sigma = (np.empty((p, d, d)) if dense else np.empty((p, d))) if moments else None
    times = np.empty(d)
    summary = _capi.sgdnoise_curve_summary()
    summary.size = ctypes.sizeof(summary)
    tail = (t, ptr(schedule.lr), ptr(schedule.batch_size), ptr(schedule.momentum), p, ptr(at), ptr(start),
            ptr(start_cov), as_scalar(tolerance, "tolerance"), ptr(train), ptr(test), ptr(trace), ptr(mean), ptr(sigma),
            ptr(times), ptr(summary))
    if code == _DATASET:
        ys = as_float64(args["y"], "y", 1)
        replacement = args["replacement"]
        if not isinstance(replacement, (bool, np.bool_)):
            raise InvalidArgumentError(f"replacement must be True or False, got {replacement!r}")
        gamma = as_dense_or_none(args["weight_decay"], "weight_decay", d)
        u = None if args["u"] is None else as_float64(args["u"], "u", 1)
        a = None if args["A"] is None else as_square(args["A"], "A", d)
        _lib.check(_lib_.sgdnoise_dataset_learning_curve(
            xs.shape[0], d, ptr(xs), ptr(ys), 0 if replacement else 1, ptr(gamma), ptr(u), ptr(a), *tail))
    elif code == _MINIMUM:
        w = None if args["w_star"] is None else op.vector(args["w_star"], "w_star")
        _lib.check(_lib_.sgdnoise_minimum_learning_curve(
            op.layout, d, ptr(op.array), as_scalar(args["loss"], "loss"), ptr(_decay(op, args["weight_decay"])), ptr(w),
            as_flat_tolerance(args["flat_tolerance"]), *tail))
    elif code is None:
        noise = op.like(args["noise"], "noise")
        ref = args["reference_batch_size"]
        if isinstance(ref, (bool, np.bool_)) or not isinstance(ref, (int, np.integer)):
            raise InvalidArgumentError(f"reference_batch_size must be an integer, got {ref!r}")
        _lib.check(_lib_.sgdnoise_quadratic_learning_curve_from_distribution(
            op.layout, d, ptr(op.array), ptr(noise), int(ref), *tail))
    else:
        b = op.like(args["B"], "B") if "B" in required else None
        u = op.vector(args["u"], "u") if "u" in required else None
        gamma = op.like(args["weight_decay"], "weight_decay") if "weight_decay" in required else None
        noise_var = as_scalar(args.get("noise_var", 0.0), "noise_var")
        alpha = as_scalar(args.get("alpha", 1.0), "alpha")
        _lib.check(_lib_.sgdnoise_learning_curve_from_distribution(
            code, op.layout, d, ptr(op.array), ptr(b), ptr(u), ptr(gamma), noise_var, alpha, *tail))
    diagonal = None if sigma is None else (np.diagonal(sigma, axis1=1, axis2=2).copy() if dense else sigma)
    return LearningCurve(
        steps=at.copy(), train_loss=train, test_loss=test, trace=trace, mean=mean, sigma_diagonal=diagonal,
        mode_times=times, moment_time=summary.moment_time, mean_time=summary.mean_time,
        stationary_train_loss=_optional(summary.stationary_train_loss),
        stationary_test_loss=_optional(summary.stationary_test_loss),
        settled_at=None if summary.settled_at < 0 else int(summary.settled_at), tolerance=float(tolerance),
        unstable_from=None if summary.unstable_from < 0 else int(summary.unstable_from),
        sigma=sigma if dense else None)


@dataclass(frozen=True)
class ScheduledSimulation:
    r"""What Monte-Carlo SGD following a schedule measured at the recorded steps, across
    independent chains (averages over the chains that did not diverge, with the standard errors
    of those means).

    Attributes
    ----------
    steps : (P,) ndarray of int
        The recorded steps.
    mean, mean_stderr : (P, D) ndarray
        :math:`E[w_t]` and its standard error.
    sigma, sigma_stderr : (P, D, D) ndarray
        :math:`\Sigma_t = \operatorname{cov}(w_t)` across chains and the standard error of each entry.
    trace, trace_stderr : (P,) ndarray
        :math:`\operatorname{Tr}\Sigma_t` and its standard error.
    train_loss, train_loss_stderr : (P,) ndarray
        :math:`E[L(w_t)]` (regulariser included) and its standard error.
    chains_used : int
        The chains that did not diverge.
    diverged : bool
        Whether some chain diverged (the estimates then cover the others).
    """

    steps: npt.NDArray[np.int64]
    mean: npt.NDArray[np.float64]
    mean_stderr: npt.NDArray[np.float64]
    sigma: npt.NDArray[np.float64]
    sigma_stderr: npt.NDArray[np.float64]
    trace: npt.NDArray[np.float64]
    trace_stderr: npt.NDArray[np.float64]
    train_loss: npt.NDArray[np.float64]
    train_loss_stderr: npt.NDArray[np.float64]
    chains_used: int
    diverged: bool


def simulate_schedule(A: npt.ArrayLike | None = None, *, schedule: Schedule, X: npt.ArrayLike | None = None,
                      y: npt.ArrayLike | None = None, u: npt.ArrayLike | None = None, noise_var: float = 0.0,
                      input_noise: npt.ArrayLike | None = None, weight_decay: npt.ArrayLike = 0.0,
                      replacement: bool = True, sampling: str | None = None, record: npt.ArrayLike | None = None,
                      w0: npt.ArrayLike | None = None, chains: int = 1000, seed: int | None = None,
                      threads: int | None = None) -> ScheduledSimulation:
    r"""Monte-Carlo SGD on linear regression following a schedule (docs/theory.md §9).

    ``chains`` independent chains start at :math:`w_0` (:math:`m_0 = 0`) and run the updates
    :math:`t = 1\dots T` with
    :math:`\hat g_t = \frac{1}{S_t}\sum_{i\in B_t}\nabla\ell_i(w_{t-1}) + \Gamma w_{t-1}`,
    :math:`m_t = \mu_t m_{t-1} + \hat g_t`, :math:`w_t = w_{t-1} - \lambda_t m_t`; every chain
    is read at the recorded steps. The data are those of :func:`simulate`.

    Parameters
    ----------
    A, X, y, u, noise_var, input_noise, weight_decay, replacement, sampling
        As in :func:`simulate`.
    schedule : Schedule
        :math:`\lambda_t, S_t, \mu_t`.
    record : array_like of int, optional
        Strictly increasing steps in :math:`0\dots T` (default: as :func:`learning_curve`).
    w0 : (D,) array_like, optional
        The start (default: the data's stationary mean :math:`w^*`, where :func:`simulate` starts).
    chains : int, default 1000
        Independent chains (at least 2).
    seed : int, optional
        The same seed gives the same numbers on any machine and thread count (default: random).
    threads : int, optional
        Worker threads (default: all cores).

    Returns
    -------
    ScheduledSimulation
    """
    if not isinstance(schedule, Schedule):
        raise InvalidArgumentError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    t = schedule.steps
    at = _default_record(t) if record is None else _per_step(record, "record", np.int64)
    if at.ndim != 1 or at.size == 0:
        raise InvalidArgumentError("record must be a non-empty 1-D list of steps")
    seed = _seed(seed)
    handle, d = _create(A, X, y, u, noise_var, input_noise, replacement, sampling)
    try:
        gamma = as_dense_or_none(weight_decay, "weight_decay", d)
        _lib.check(_lib_.sgdnoise_simulation_set_optimizer(handle, ptr(gamma), 1.0, None, 1, 0.0))
        start = _start(w0, d)
        p = at.shape[0]
        mean, mean_se = np.empty((p, d)), np.empty((p, d))
        sigma, sigma_se = np.empty((p, d, d)), np.empty((p, d, d))
        trace, trace_se, train, train_se = np.empty(p), np.empty(p), np.empty(p), np.empty(p)
        summary = _capi.sgdnoise_scheduled_run_summary()
        summary.size = ctypes.sizeof(summary)
        _lib.check(_lib_.sgdnoise_simulation_run_schedule(
            handle, t, ptr(schedule.lr), ptr(schedule.batch_size), ptr(schedule.momentum), p, ptr(at), ptr(start),
            as_batch_size(chains, "chains"), int(seed), 0 if threads is None else as_batch_size(threads, "threads"),
            ptr(mean), ptr(mean_se), ptr(sigma), ptr(sigma_se), ptr(trace), ptr(trace_se), ptr(train), ptr(train_se),
            ptr(summary)))
    finally:
        _lib_.sgdnoise_simulation_free(handle)
    return ScheduledSimulation(
        steps=at.copy(), mean=mean, mean_stderr=mean_se, sigma=sigma, sigma_stderr=sigma_se, trace=trace,
        trace_stderr=trace_se, train_loss=train, train_loss_stderr=train_se, chains_used=int(summary.chains_used),
        diverged=bool(summary.diverged))
