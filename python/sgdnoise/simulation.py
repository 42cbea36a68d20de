"""Monte-Carlo SGD on linear regression: the ground truth for every prediction."""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import numpy.typing as npt

from . import _capi, _lib
from ._arrays import as_batch_size, as_dense_or_none, as_float64, as_scalar, as_square, dense_learning_rate
from ._state import as_state_bytes
from .errors import InvalidArgumentError

__all__ = ["simulate", "simulate_chains", "combine_chains", "SimulationResult"]

_lib_ = _lib.lib


@dataclass(frozen=True)
class SimulationResult:
    """What a simulated SGD run measured.

    Attributes
    ----------
    mean : (D,) ndarray
        Stationary mean of :math:`w`.
    sigma, sigma_stderr : (D, D) ndarray
        :math:`\\Sigma = \\operatorname{cov}(w)` and the standard error of each entry (batch
        means over time and across chains).
    noise : (D, D) ndarray
        Measured gradient-noise covariance :math:`E[(\\hat g - \\nabla L)(\\hat g - \\nabla L)^\\top]`.
    train_loss, test_loss : float
        :math:`E[L(w)]` and :math:`E[\\tfrac12(w-u)^\\top A(w-u)]`.
    tail_index : float
        Hill estimate of the tail index of :math:`|w - w^*|`, from ``tail_order_statistics``
        order statistics; ``tail_unreliable`` when it is :math:`\\le 4` (then sample variances
        converge slowly and ``sigma_stderr`` is not to be trusted).
    diverged : bool
        A chain blew up (estimates are NaN); ``diverged_at_step`` says when.
    cancelled : bool
        The progress callback stopped the run; estimates cover ``steps_completed``.
    """

    mean: npt.NDArray[np.float64]
    sigma: npt.NDArray[np.float64]
    sigma_stderr: npt.NDArray[np.float64]
    noise: npt.NDArray[np.float64]
    train_loss: float
    test_loss: float
    tail_index: float
    tail_order_statistics: int
    tail_unreliable: bool
    diverged: bool
    diverged_at_step: int | None
    cancelled: bool
    steps_completed: int




def _in_notebook() -> bool:
    try:
        from IPython import get_ipython  # noqa: PLC0415
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class _Progress:
    """Adapts the user's progress argument to the C callback (and keeps Ctrl-C working)."""

    def __init__(self, progress: Callable[[int, int], object] | bool | None) -> None:
        self.user = progress
        self.bar: Any = None
        self.start = time.monotonic()
        self.interrupted: BaseException | None = None
        self.auto = progress is None and _in_notebook()

    def __call__(self, _context: object, done: int, total: int) -> int:
        try:
            if callable(self.user):
                return 1 if self.user(int(done), int(total)) else 0
            if self.auto and self.bar is None and time.monotonic() - self.start > 1.5:
                try:
                    from tqdm.auto import tqdm  # noqa: PLC0415
                    self.bar = tqdm(total=int(total), unit="step", desc="simulate")
                except ImportError:
                    self.auto = False
            if self.bar is not None:
                self.bar.update(int(done) - self.bar.n)
            return 0
        except KeyboardInterrupt as exc:
            self.interrupted = exc
            return 1
        except Exception as exc:  # an exception in a user callback cancels the run and is re-raised
            self.interrupted = exc
            return 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _seed(seed: object) -> int:
    """The run's seed: the given one (checked), or a random one."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    if not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**64:
        raise InvalidArgumentError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    return int(seed)


def _create(A: npt.ArrayLike | None, X: npt.ArrayLike | None, y: npt.ArrayLike | None, u: npt.ArrayLike | None,
            noise_var: float, input_noise: npt.ArrayLike | None, replacement: bool,
            sampling: str | None) -> tuple[ctypes.c_void_p, int]:
    """A simulation handle for online Gaussian data (A) or a dataset (X, y), and D."""
    if (A is None) == (X is None):
        raise InvalidArgumentError("give either A (online Gaussian data) or X and y (a dataset)")
    handle = ctypes.c_void_p()
    if A is not None:
        a = np.diag(as_float64(A, "A", 1)) if np.ndim(A) == 1 else as_square(A, "A")
        d = a.shape[0]
        uu = None if u is None else as_float64(u, "u", 1)
        b = as_dense_or_none(input_noise, "input_noise", d)
        _lib.check(_lib_.sgdnoise_simulation_create_gaussian(
            d, a.ctypes.data, None if uu is None else uu.ctypes.data, as_scalar(noise_var, "noise_var"),
            None if b is None else b.ctypes.data, ctypes.byref(handle)))
    else:
        if y is None:
            raise InvalidArgumentError("y is required with X")
        assert X is not None  # exactly one of A and X is given (checked above)
        xs = as_float64(X, "X", 2)
        ys = as_float64(y, "y", 1)
        n, d = xs.shape
        if ys.shape[0] != n:
            raise InvalidArgumentError(f"y must have {n} entries (one per row of X), got {ys.shape[0]}")
        code = _lib.sampling_code(replacement, sampling)
        uu = None if u is None else as_float64(u, "u", 1)
        _lib.check(_lib_.sgdnoise_simulation_create_dataset(
            n, d, xs.ctypes.data, ys.ctypes.data, code, None if uu is None else uu.ctypes.data,
            ctypes.byref(handle)))
    return handle, d


def simulate(A: npt.ArrayLike | None = None, *, X: npt.ArrayLike | None = None, y: npt.ArrayLike | None = None,
             u: npt.ArrayLike | None = None, noise_var: float = 0.0, input_noise: npt.ArrayLike | None = None,
             weight_decay: npt.ArrayLike = 0.0, lr: npt.ArrayLike, batch_size: int, momentum: float = 0.0,
             replacement: bool = True,
             sampling: Literal["with_replacement", "without_replacement", "epoch_shuffling"] | None = None,
             steps: int, burn_in: int | None = None, chains: int = 1, seed: int | None = None,
             threads: int | None = None, progress: Callable[[int, int], object] | bool | None = None
             ) -> SimulationResult:
    r"""Monte-Carlo SGD with momentum on linear regression (docs/theory.md §1, §4, §4.1).

    Online Gaussian data (``A`` given): fresh :math:`x \sim N(0, A)` every sample,
    :math:`y = u^\top x + \varepsilon`, :math:`\operatorname{Var}\varepsilon` = ``noise_var``,
    inputs seen with :math:`N(0, B)` noise when ``input_noise`` = :math:`B`. A finite dataset
    (``X``, ``y`` given): minibatches with or without replacement, or by epoch shuffling. Each step
    is :math:`m_t = \mu m_{t-1} + \hat g_t`, :math:`w_t = w_{t-1} - \Lambda m_t` with
    :math:`\hat g` the minibatch-mean gradient plus :math:`\Gamma w`; runs start at the stationary
    mean :math:`w^*`.

    Parameters
    ----------
    A : (D, D) or (D,) array_like, optional
        Input covariance (1-D: its diagonal).
    X, y : (N, D) and (N,) array_like, optional
        A finite dataset (instead of ``A``).
    u : (D,) array_like, optional
        The teacher (default zero); for a dataset it defines ``test_loss`` with :math:`\hat A`.
    noise_var : float
        Label-noise variance (online data).
    input_noise : float or array_like, optional
        Input-noise covariance :math:`B` (online data).
    weight_decay : float or array_like
        :math:`\Gamma` (scalar means :math:`\gamma I`).
    lr : float or array_like
        :math:`\lambda`, or an SPD matrix (1-D: its diagonal).
    batch_size : int
    momentum : float
    replacement : bool
        For a dataset: with or without replacement (``sampling`` overrides it).
    sampling : {"with_replacement", "without_replacement", "epoch_shuffling"}, optional
        For a dataset (the names of ``sgdnoise_sampling`` and Swift's ``Sampling``);
        ``"epoch_shuffling"`` runs through a fresh permutation each epoch (predicted by
        :func:`finite_dataset` with the same ``sampling``, docs/theory.md §4.2).
    steps : int
        Recorded steps per chain.
    burn_in : int, optional
        Discarded steps per chain (default ``steps // 10``).
    chains : int
        Independent chains, run on all cores.
    seed : int, optional
        The same seed gives the same numbers on any machine and thread count (default: random).
    threads : int, optional
        Worker threads (default: all cores).
    progress : callable, bool or None
        ``progress(done, total)`` called about every 0.1 s (return True to cancel); ``False``
        for none; ``None`` shows a progress bar in notebooks for runs longer than 1.5 s.

    Returns
    -------
    SimulationResult
        A run that diverges is reported (``diverged``), not raised.
    """
    problem = dict(X=X, y=y, u=u, noise_var=noise_var, input_noise=input_noise, weight_decay=weight_decay, lr=lr,
                   batch_size=batch_size, momentum=momentum, replacement=replacement, sampling=sampling)
    with _configured(A, **problem) as (handle, d):
        steps_, burn, chains_, seed_ = _run_settings(steps, burn_in, chains, seed)
        adapter = None if progress is False else _Progress(progress)
        callback = _lib.PROGRESS_CALLBACK(adapter) if adapter is not None else _lib.PROGRESS_CALLBACK()
        try:
            _lib.check(_lib_.sgdnoise_simulation_run(handle, steps_, burn, chains_, seed_, _threads(threads), callback, None))
        finally:
            if adapter is not None:
                adapter.close()
        if adapter is not None and adapter.interrupted is not None:
            raise adapter.interrupted
        return _result(handle, d)


@contextlib.contextmanager
def _configured(A: npt.ArrayLike | None = None, *, X: npt.ArrayLike | None = None, y: npt.ArrayLike | None = None,
                u: npt.ArrayLike | None = None, noise_var: float = 0.0, input_noise: npt.ArrayLike | None = None,
                weight_decay: npt.ArrayLike = 0.0, lr: npt.ArrayLike, batch_size: int, momentum: float = 0.0,
                replacement: bool = True, sampling: str | None = None) -> Iterator[tuple[int, int]]:
    """A simulation handle with the problem and the optimiser of ``simulate``'s arguments (freed on exit)."""
    handle, d = _create(A, X, y, u, noise_var, input_noise, replacement, sampling)
    try:
        gamma = as_dense_or_none(weight_decay, "weight_decay", d)
        scale, lr_matrix = dense_learning_rate(lr, d)
        _lib.check(_lib_.sgdnoise_simulation_set_optimizer(
            handle, None if gamma is None else gamma.ctypes.data, scale,
            None if lr_matrix is None else lr_matrix.ctypes.data, as_batch_size(batch_size),
            as_scalar(momentum, "momentum")))
        yield handle, d
    finally:
        _lib_.sgdnoise_simulation_free(handle)


def _run_settings(steps: int, burn_in: int | None, chains: int, seed: int | None) -> tuple[int, int, int, int]:
    steps_ = as_batch_size(steps, "steps")
    burn = steps_ // 10 if burn_in is None else as_batch_size(burn_in, "burn_in")
    return steps_, burn, as_batch_size(chains, "chains"), int(_seed(seed))


def _threads(threads: int | None) -> int:
    return 0 if threads is None else as_batch_size(threads, "threads")


def _result(handle: int, d: int) -> SimulationResult:
    """The last result of a simulation handle."""
    mean, sigma, stderr, noise = np.empty(d), np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
    f = _capi.sgdnoise_simulation_summary()
    _lib.check(_lib_.sgdnoise_simulation_result(handle, mean.ctypes.data, sigma.ctypes.data, stderr.ctypes.data,
                                                noise.ctypes.data, ctypes.byref(f)))
    return SimulationResult(
        mean=mean, sigma=sigma, sigma_stderr=stderr, noise=noise, train_loss=f.train_loss,
        test_loss=f.test_loss, tail_index=f.tail_index, tail_order_statistics=int(f.tail_order_statistics),
        tail_unreliable=bool(f.tail_unreliable), diverged=bool(f.diverged),
        diverged_at_step=None if f.diverged_at_step < 0 else int(f.diverged_at_step),
        cancelled=bool(f.cancelled), steps_completed=int(f.steps_completed))


def simulate_chains(*, first_chain: int, chain_count: int, chains: int, seed: int, steps: int,
                    burn_in: int | None = None, threads: int | None = None, **problem: Any) -> bytes:
    r"""The records of chains ``first_chain`` … ``first_chain + chain_count − 1`` of the run
    :func:`simulate` makes with the same arguments, as bytes to combine with the other chains'
    (:func:`combine_chains`).

    This is how the chains of one simulation run in several processes or on several machines
    (:func:`sgdnoise.dask.simulate` does it on a Dask cluster). Chain :math:`c` always draws from
    the random stream :math:`c` jumps after the seed's, whoever runs it, and every chain uses the
    settings of the whole run. The records carry a fingerprint of the simulation: data, optimiser,
    ``steps``, ``burn_in``, ``chains`` and ``seed``.

    Parameters
    ----------
    first_chain, chain_count : int
        The chains to run, within ``0 … chains − 1``.
    chains, seed, steps, burn_in, threads
        As in :func:`simulate`; ``seed`` is required (every part must use the same one).
    **problem
        :func:`simulate`'s problem and optimiser arguments (``A`` or ``X`` and ``y``, ``u``,
        ``noise_var``, ``input_noise``, ``weight_decay``, ``lr``, ``batch_size``, ``momentum``,
        ``replacement``, ``sampling``).

    Returns
    -------
    bytes
        The records, in the portable state format (docs/state_format.md, kind 3).
    """
    with _configured(**problem) as (handle, _):
        steps_, burn, chains_, seed_ = _run_settings(steps, burn_in, chains, _required_seed(seed))
        _lib.check(_lib_.sgdnoise_simulation_run_chains(
            handle, steps_, burn, chains_, seed_, as_batch_size(first_chain, "first_chain"),
            as_batch_size(chain_count, "chain_count"), _threads(threads), _lib.PROGRESS_CALLBACK(), None))
        size = _lib.c_ptrdiff()
        _lib.check(_lib_.sgdnoise_simulation_chains_size(handle, ctypes.byref(size)))
        out = np.empty(size.value, dtype=np.uint8)
        _lib.check(_lib_.sgdnoise_simulation_export_chains(handle, size.value, out.ctypes.data))
        return out.tobytes()


def combine_chains(parts: Sequence[bytes], *, chains: int, seed: int, steps: int, burn_in: int | None = None,
                   **problem: Any) -> SimulationResult:
    r"""The :class:`SimulationResult` of a simulation from the records of all its chains, computed
    in any number of parts by :func:`simulate_chains`.

    The records are pooled in chain order, so the result is bit for bit that of :func:`simulate`
    with the same arguments. A run that diverges is reported as diverged either way, but the step
    it reports may differ, because which chains still start after one diverges depends on timing.

    Parameters
    ----------
    parts : sequence of bytes
        The outputs of :func:`simulate_chains`. Together they must cover chains ``0 … chains − 1``,
        each exactly once.
    chains, seed, steps, burn_in, **problem
        As given to :func:`simulate_chains`.

    Raises
    ------
    InvalidArgumentError
        A part belongs to another simulation (its fingerprint differs), parts overlap, chains are
        missing, or a part is not intact.
    """
    with _configured(**problem) as (handle, d):
        steps_, burn, chains_, seed_ = _run_settings(steps, burn_in, chains, _required_seed(seed))
        for part in parts:
            raw = as_state_bytes(part, "a part")
            _lib.check(_lib_.sgdnoise_simulation_add_chains(handle, raw.size, raw.ctypes.data))
        _lib.check(_lib_.sgdnoise_simulation_combine(handle, steps_, burn, chains_, seed_))
        return _result(handle, d)


def _required_seed(seed: object) -> int:
    if seed is None:
        raise InvalidArgumentError("seed is required: every part of a simulation must use the same one")
    return _seed(seed)
