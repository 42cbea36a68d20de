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
    CancelledError,
    SGDNoiseError,
    UnstableError,
)
from .dynamics import LearningCurve, Schedule, ScheduledSimulation, learning_curve, simulate_schedule
from .dataset import DatasetPrediction, critical_learning_rate_dataset, finite_dataset
from .fluctuation import StationaryInfo, stationary_covariance
from .minimum import minimum_fluctuation, minimum_noise
from .models import (
    Prediction,
    continuous_time,
    damped_newton,
    discrete_hessian,
    high_dimensional,
    input_noise,
    l2_regularized,
    label_noise,
    natural_gradient,
)
from .noise import noise_covariance
from .accumulator import NoiseAccumulator
from .sketch import NoiseSketch
from .matrix_free import NoiseOperator, noise_operator
from .linearized import linearized_critical_learning_rate, linearized_features
from .network import (HessianEigen, MeanDrift, NetworkFluctuation, hessian_eigen, mean_drift, network_drift,
                      network_fluctuation, relaxation_steps)
from .noise_scales import NoiseScale, critical_batch_view, noise_scale, two_batch_noise_scale
from .spectrum import compare, noise_top_eigen
from .spectral_density import SpectralDensity, WeightedSpectrum, spectral_density
from .simulation import SimulationResult, combine_chains, simulate, simulate_chains
from .stability import (
    critical_learning_rate,
    l2_test_loss_curve,
    label_noise_sweep,
    optimal_weight_decay,
    scaling_law,
    smallest_stable_batch_size,
    stable_weight_decay_interval,
    tail_index,
)

__version__ = _lib.version()
"""The version of the loaded C library (equal to the package version in a consistent install)."""

__all__ = [
    "__version__",
    "noise_covariance",
    "NoiseAccumulator",
    "NoiseSketch",
    "noise_top_eigen",
    "compare",
    "noise_scale",
    "NoiseScale",
    "two_batch_noise_scale",
    "critical_batch_view",
    "noise_operator",
    "NoiseOperator",
    "stationary_covariance",
    "StationaryInfo",
    "Prediction",
    "label_noise",
    "input_noise",
    "l2_regularized",
    "high_dimensional",
    "damped_newton",
    "natural_gradient",
    "continuous_time",
    "discrete_hessian",
    "critical_learning_rate",
    "Schedule",
    "LearningCurve",
    "learning_curve",
    "simulate_schedule",
    "ScheduledSimulation",
    "label_noise_sweep",
    "scaling_law",
    "tail_index",
    "smallest_stable_batch_size",
    "stable_weight_decay_interval",
    "optimal_weight_decay",
    "l2_test_loss_curve",
    "simulate",
    "simulate_chains",
    "combine_chains",
    "minimum_noise",
    "minimum_fluctuation",
    "finite_dataset",
    "critical_learning_rate_dataset",
    "DatasetPrediction",
    "SimulationResult",
    "SGDNoiseError",
    "InvalidArgumentError",
    "NotSymmetricError",
    "NotPositiveDefiniteError",
    "UnstableError",
    "NumericalError",
    "OutOfMemoryError",
    "CancelledError",
    "HessianEigen",
    "MeanDrift",
    "NetworkFluctuation",
    "hessian_eigen",
    "mean_drift",
    "linearized_critical_learning_rate",
    "linearized_features",
    "network_drift",
    "network_fluctuation",
    "relaxation_steps",
    "spectral_density",
    "SpectralDensity",
    "WeightedSpectrum",
]
