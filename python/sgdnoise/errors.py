"""The exceptions of sgdnoise, one per status code of the C library."""

from __future__ import annotations

__all__ = [
    "SGDNoiseError",
    "InvalidArgumentError",
    "NotSymmetricError",
    "NotPositiveDefiniteError",
    "UnstableError",
    "NumericalError",
    "OutOfMemoryError",
    "CancelledError",
]


class SGDNoiseError(Exception):
    """Base class of every error raised by sgdnoise."""


class InvalidArgumentError(SGDNoiseError, ValueError):
    """An argument is out of range; the message names it and says what was wrong."""


class NotSymmetricError(InvalidArgumentError):
    """A matrix that must be symmetric is not (relative tolerance 1e-10)."""


class NotPositiveDefiniteError(InvalidArgumentError):
    """A matrix that must be symmetric positive definite (a learning-rate matrix) is not."""


class UnstableError(SGDNoiseError):
    """No stationary distribution exists for these hyperparameters: the fluctuation diverges.

    Attributes
    ----------
    critical_learning_rate : float or None
        The largest stable learning rate (for a matrix learning rate: the largest stable scale of
        it), or None where it is unknown.
    """

    def __init__(self, message: str, critical_learning_rate: float | None = None) -> None:
        super().__init__(message)
        self.critical_learning_rate = critical_learning_rate


class NumericalError(SGDNoiseError):
    """LAPACK did not converge, or a result came out non-finite."""


class OutOfMemoryError(SGDNoiseError, MemoryError):
    """The problem does not fit in memory or in the 32-bit BLAS/LAPACK interface."""


class CancelledError(SGDNoiseError):
    """A callback (a Hessian-vector or noise product) asked to stop or raised: the computation
    stopped cleanly. When a Python callable raised, that exception is re-raised instead, with this
    one as its context."""
