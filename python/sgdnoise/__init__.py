"""sgdnoise: the noise and the fluctuation of stochastic gradient descent, exactly.

Predicts the minibatch noise and the stationary fluctuation of SGD (with momentum and matrix
learning rates) and measures them from per-sample gradients, following Ziyin, Liu, Mori, Ueda,
"Strength of Minibatch Noise in SGD", ICLR 2022 (arXiv:2102.05375). A ctypes wrapper over the
Swift library ``libsgdnoise.so``; numpy arrays in and out.
"""

from . import _lib
from .errors import (
    InvalidArgumentError,
    NotPositiveDefiniteError,
    NotSymmetricError,
    NumericalError,
    OutOfMemoryError,
    SGDNoiseError,
    UnstableError,
)
from .fluctuation import stationary_covariance
from .noise import noise_covariance

__version__ = _lib.version()
"""The version of the loaded C library (equal to the package version in a consistent install)."""

__all__ = [
    "__version__",
    "noise_covariance",
    "stationary_covariance",
    "SGDNoiseError",
    "InvalidArgumentError",
    "NotSymmetricError",
    "NotPositiveDefiniteError",
    "UnstableError",
    "NumericalError",
    "OutOfMemoryError",
]
