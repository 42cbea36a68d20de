"""Loading libsgdnoise.so and declaring its C functions (the raw bindings).

The library is looked up, in order: the path in the environment variable ``SGDNOISE_LIBRARY``;
the copy bundled inside this package (a wheel from ``pip install ./python``); the release build of
a source checkout (``.build/release/libsgdnoise.so`` next to ``python/``). Each function is declared
once, with its C prototype beside it; the Pythonic layer calls them through :func:`check`.
"""

from __future__ import annotations

import ctypes
import math
import os
from ctypes import c_char_p, c_double, c_int, c_void_p
from pathlib import Path

from . import errors

_HERE = Path(__file__).resolve().parent
_ENV = "SGDNOISE_LIBRARY"

c_ptrdiff = ctypes.c_ssize_t  # ptrdiff_t

# Status codes (enum sgdnoise_status in include/sgdnoise.h).
OK = 0
INVALID_ARGUMENT = 1
NOT_SYMMETRIC = 2
NOT_POSITIVE_DEFINITE = 3
UNSTABLE = 4
NUMERICAL_FAILURE = 5
OUT_OF_MEMORY = 6

# enum sgdnoise_sampling and enum sgdnoise_noise_kind.
SAMPLING_WITH_REPLACEMENT = 0
SAMPLING_WITHOUT_REPLACEMENT = 1
NOISE_KIND = {"full": 0, "diag": 1, "trace": 2}

# enum sgdnoise_layout, sgdnoise_prediction_field, sgdnoise_model, sgdnoise_tail_method.
LAYOUT_DENSE = 0
LAYOUT_DIAGONAL = 1
PREDICTION_FIELDS = ("train_loss", "test_loss", "kappa", "critical_learning_rate", "coupling_trace",
                     "flat_direction_noise")
MODEL = {"label_noise": 0, "high_dimensional": 1, "l2_regularized": 2}
TAIL_METHOD = {"paper": 0, "kesten": 1, "continuous_time": 2}


def _candidates() -> list[Path]:
    env = os.environ.get(_ENV)
    if env:
        return [Path(env)]
    return [_HERE / "libsgdnoise.so", _HERE.parent.parent / ".build" / "release" / "libsgdnoise.so"]


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        if path.is_file():
            try:
                return ctypes.CDLL(str(path))
            except OSError as exc:
                raise ImportError(f"sgdnoise: could not load {path}: {exc}") from exc
        tried.append(str(path))
    raise ImportError(
        "sgdnoise: libsgdnoise.so not found (looked at: " + ", ".join(tried) + "). "
        "Build it with `make build` in the source checkout, install the package with "
        f"`pip install ./python`, or set {_ENV} to its path."
    )


lib = _load()


def _declare(name: str, restype, argtypes) -> None:
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = argtypes


# const char *sgdnoise_version(void);
_declare("sgdnoise_version", c_char_p, [])
# const char *sgdnoise_last_error_message(void);
_declare("sgdnoise_last_error_message", c_char_p, [])
# double sgdnoise_last_error_critical_learning_rate(void);
_declare("sgdnoise_last_error_critical_learning_rate", c_double, [])
# sgdnoise_status sgdnoise_noise_covariance(ptrdiff_t n, ptrdiff_t d, const double *grads,
#     ptrdiff_t batch_size, int sampling, int kind, double *out);
_declare("sgdnoise_noise_covariance", c_int, [c_ptrdiff, c_ptrdiff, c_void_p, c_ptrdiff, c_int, c_int, c_void_p])
# sgdnoise_status sgdnoise_noise_covariance_f32(ptrdiff_t n, ptrdiff_t d, const float *grads,
#     ptrdiff_t batch_size, int sampling, int kind, double *out);
_declare("sgdnoise_noise_covariance_f32", c_int, [c_ptrdiff, c_ptrdiff, c_void_p, c_ptrdiff, c_int, c_int, c_void_p])
# sgdnoise_status sgdnoise_stationary_covariance(ptrdiff_t d, const double *hessian,
#     const double *noise, double lr, const double *lr_matrix, double momentum, double *out_sigma);
_declare("sgdnoise_stationary_covariance", c_int, [c_ptrdiff, c_void_p, c_void_p, c_double, c_void_p, c_double, c_void_p])

P = c_void_p  # every array argument: a numpy array's data pointer, or None for NULL
# sgdnoise_status sgdnoise_label_noise(int layout, ptrdiff_t d, const double *A, double noise_var,
#     double lr, const double *lr_matrix, ptrdiff_t batch_size, double momentum,
#     double *out_sigma, double *out_noise, double *out_scalars);
_declare("sgdnoise_label_noise", c_int, [c_int, c_ptrdiff, P, c_double, c_double, P, c_ptrdiff, c_double, P, P, P])
# sgdnoise_status sgdnoise_input_noise(int layout, ptrdiff_t d, const double *A, const double *B,
#     const double *u, double noise_var, double lr, const double *lr_matrix, ptrdiff_t batch_size,
#     double momentum, double *out_sigma, double *out_noise, double *out_mean, double *out_scalars);
_declare("sgdnoise_input_noise", c_int, [c_int, c_ptrdiff, P, P, P, c_double, c_double, P, c_ptrdiff, c_double, P, P, P, P])
# sgdnoise_status sgdnoise_l2_regularized(int layout, ptrdiff_t d, const double *A, const double *u,
#     const double *weight_decay, double lr, const double *lr_matrix, ptrdiff_t batch_size,
#     double momentum, double *out_sigma, double *out_noise, double *out_mean, double *out_scalars);
_declare("sgdnoise_l2_regularized", c_int, [c_int, c_ptrdiff, P, P, P, c_double, P, c_ptrdiff, c_double, P, P, P, P])
# sgdnoise_status sgdnoise_high_dimensional(int layout, ptrdiff_t d, const double *A_hat, double alpha,
#     double noise_var, double lr, const double *lr_matrix, ptrdiff_t batch_size, double momentum,
#     double *out_sigma, double *out_noise, double *out_scalars);
_declare("sgdnoise_high_dimensional", c_int, [c_int, c_ptrdiff, P, c_double, c_double, c_double, P, c_ptrdiff, c_double, P, P, P])
# sgdnoise_status sgdnoise_damped_newton(int layout, ptrdiff_t d, const double *A, double noise_var,
#     double lr, ptrdiff_t batch_size, double momentum, double *out_sigma, double *out_noise,
#     double *out_scalars);
_declare("sgdnoise_damped_newton", c_int, [c_int, c_ptrdiff, P, c_double, c_double, c_ptrdiff, c_double, P, P, P])
# sgdnoise_status sgdnoise_natural_gradient(int layout, ptrdiff_t d, const double *A, double lr,
#     ptrdiff_t batch_size, double momentum, double *out_sigma, double *out_noise, double *out_scalars);
_declare("sgdnoise_natural_gradient", c_int, [c_int, c_ptrdiff, P, c_double, c_ptrdiff, c_double, P, P, P])
# sgdnoise_status sgdnoise_continuous_time(int layout, ptrdiff_t d, const double *A, double noise_var,
#     double lr, const double *lr_matrix, ptrdiff_t batch_size, double momentum, double *out_sigma);
_declare("sgdnoise_continuous_time", c_int, [c_int, c_ptrdiff, P, c_double, c_double, P, c_ptrdiff, c_double, P])
# sgdnoise_status sgdnoise_discrete_hessian(int layout, ptrdiff_t d, const double *A, double noise_var,
#     double lr, const double *lr_matrix, ptrdiff_t batch_size, double momentum, double *out_sigma);
_declare("sgdnoise_discrete_hessian", c_int, [c_int, c_ptrdiff, P, c_double, c_double, P, c_ptrdiff, c_double, P])
# sgdnoise_status sgdnoise_critical_learning_rate(int model, int layout, ptrdiff_t d, const double *A,
#     const double *weight_decay, ptrdiff_t batch_size, double momentum, double *out);
_declare("sgdnoise_critical_learning_rate", c_int, [c_int, c_int, c_ptrdiff, P, P, c_ptrdiff, c_double, P])
# sgdnoise_status sgdnoise_label_noise_sweep(ptrdiff_t n, const double *spectrum, double noise_var,
#     ptrdiff_t points, const double *lrs, const ptrdiff_t *batch_sizes, const double *momenta,
#     double *out_kappa, double *out_train_loss, double *out_test_loss, double *out_critical);
_declare("sgdnoise_label_noise_sweep", c_int, [c_ptrdiff, P, c_double, c_ptrdiff, P, P, P, P, P, P, P])
# sgdnoise_status sgdnoise_scaling_law(ptrdiff_t n, const double *spectrum, double noise_var,
#     double ratio, ptrdiff_t count, const ptrdiff_t *batch_sizes, double momentum,
#     double *out_trace_sigma, double *out_trace_sigma_law);
_declare("sgdnoise_scaling_law", c_int, [c_ptrdiff, P, c_double, c_double, c_ptrdiff, P, c_double, P, P])
# sgdnoise_status sgdnoise_tail_index(double a, double lr, ptrdiff_t batch_size, int method, double *out);
_declare("sgdnoise_tail_index", c_int, [c_double, c_double, c_ptrdiff, c_int, P])
# sgdnoise_status sgdnoise_optimal_weight_decay(int layout, ptrdiff_t d, const double *A, const double *u,
#     double lr, ptrdiff_t batch_size, double momentum, double *out_gamma, double *out_test_loss);
_declare("sgdnoise_optimal_weight_decay", c_int, [c_int, c_ptrdiff, P, P, c_double, c_ptrdiff, c_double, P, P])
# sgdnoise_status sgdnoise_l2_test_loss_curve(int layout, ptrdiff_t d, const double *A, const double *u,
#     double lr, ptrdiff_t batch_size, double momentum, ptrdiff_t count, const double *weight_decays,
#     double *out);
_declare("sgdnoise_l2_test_loss_curve", c_int, [c_int, c_ptrdiff, P, P, c_double, c_ptrdiff, c_double, c_ptrdiff, P, P])

# int (*sgdnoise_progress_callback)(void *context, ptrdiff_t done, ptrdiff_t total);
PROGRESS_CALLBACK = ctypes.CFUNCTYPE(c_int, c_void_p, c_ptrdiff, c_ptrdiff)
SIMULATION_FIELDS = ("train_loss", "test_loss", "tail_index", "tail_order_statistics", "tail_unreliable",
                     "diverged", "diverged_at_step", "cancelled", "steps_completed")
# sgdnoise_status sgdnoise_simulation_create_gaussian(ptrdiff_t d, const double *A, const double *u,
#     double noise_var, const double *input_noise, void **out_simulation);
_declare("sgdnoise_simulation_create_gaussian", c_int, [c_ptrdiff, P, P, c_double, P, ctypes.POINTER(c_void_p)])
# sgdnoise_status sgdnoise_simulation_create_dataset(ptrdiff_t n, ptrdiff_t d, const double *X,
#     const double *y, int sampling, const double *u, void **out_simulation);
_declare("sgdnoise_simulation_create_dataset", c_int, [c_ptrdiff, c_ptrdiff, P, P, c_int, P, ctypes.POINTER(c_void_p)])
# sgdnoise_status sgdnoise_simulation_set_optimizer(void *simulation, const double *weight_decay,
#     double lr, const double *lr_matrix, ptrdiff_t batch_size, double momentum);
_declare("sgdnoise_simulation_set_optimizer", c_int, [c_void_p, P, c_double, P, c_ptrdiff, c_double])
# sgdnoise_status sgdnoise_simulation_run(void *simulation, ptrdiff_t steps, ptrdiff_t burn_in,
#     ptrdiff_t chains, uint64_t seed, ptrdiff_t threads, sgdnoise_progress_callback progress, void *context);
_declare("sgdnoise_simulation_run", c_int, [c_void_p, c_ptrdiff, c_ptrdiff, c_ptrdiff, ctypes.c_uint64, c_ptrdiff,
                                            PROGRESS_CALLBACK, c_void_p])
# sgdnoise_status sgdnoise_simulation_result(void *simulation, double *out_mean, double *out_sigma,
#     double *out_sigma_stderr, double *out_noise, double *out_scalars);
_declare("sgdnoise_simulation_result", c_int, [c_void_p, P, P, P, P, P])
# void sgdnoise_simulation_free(void *simulation);
_declare("sgdnoise_simulation_free", None, [c_void_p])

DATASET_FIELDS = ("iterations", "residual", "spectral_radius")
# sgdnoise_status sgdnoise_finite_dataset(ptrdiff_t n, ptrdiff_t d, const double *X, const double *y,
#     int sampling, const double *weight_decay, double lr, const double *lr_matrix, ptrdiff_t batch_size,
#     double momentum, const double *u, const double *A, double *out_sigma, double *out_noise,
#     double *out_mean, double *out_scalars, double *out_info);
_declare("sgdnoise_finite_dataset", c_int, [c_ptrdiff, c_ptrdiff, P, P, c_int, P, c_double, P, c_ptrdiff, c_double,
                                            P, P, P, P, P, P, P])
# sgdnoise_status sgdnoise_critical_learning_rate_dataset(ptrdiff_t n, ptrdiff_t d, const double *X,
#     int sampling, const double *weight_decay, const double *lr_matrix, ptrdiff_t batch_size,
#     double momentum, double *out);
_declare("sgdnoise_critical_learning_rate_dataset", c_int, [c_ptrdiff, c_ptrdiff, P, c_int, P, P, c_ptrdiff, c_double, P])

MINIMUM_KINDS = ("regularized", "non_interpolating", "interpolating")
# sgdnoise_status sgdnoise_minimum_noise(int layout, ptrdiff_t d, const double *hessian, double loss,
#     ptrdiff_t batch_size, const double *weight_decay, const double *w_star, const double *sigma,
#     double *out_noise, int *out_kind);
_declare("sgdnoise_minimum_noise", c_int, [c_int, c_ptrdiff, P, c_double, c_ptrdiff, P, P, P, P, ctypes.POINTER(c_int)])
# sgdnoise_status sgdnoise_minimum_fluctuation(int layout, ptrdiff_t d, const double *hessian, double loss,
#     double lr, const double *lr_matrix, ptrdiff_t batch_size, const double *weight_decay,
#     const double *w_star, double momentum, double *out_sigma, int *out_kind, double *out_critical);
_declare("sgdnoise_minimum_fluctuation", c_int, [c_int, c_ptrdiff, P, c_double, c_double, P, c_ptrdiff, P, P, c_double,
                                                 P, ctypes.POINTER(c_int), P])

# sgdnoise_status sgdnoise_stationary_fluctuation(ptrdiff_t d, const double *hessian, const double *noise,
#     double lr, const double *lr_matrix, double momentum, double *out_sigma, double *out_eigenvalues,
#     double *out_info);
_declare("sgdnoise_stationary_fluctuation", c_int, [c_ptrdiff, P, P, c_double, P, c_double, P, P, P])

_EXCEPTIONS = {
    INVALID_ARGUMENT: errors.InvalidArgumentError,
    NOT_SYMMETRIC: errors.NotSymmetricError,
    NOT_POSITIVE_DEFINITE: errors.NotPositiveDefiniteError,
    NUMERICAL_FAILURE: errors.NumericalError,
    OUT_OF_MEMORY: errors.OutOfMemoryError,
}


def raise_for(status: int) -> None:
    """Raise the exception of a failed call (reads this thread's last error)."""
    message = lib.sgdnoise_last_error_message().decode("utf-8", "replace")
    if status == UNSTABLE:
        critical = lib.sgdnoise_last_error_critical_learning_rate()
        raise errors.UnstableError(message, None if math.isnan(critical) else critical)
    raise _EXCEPTIONS.get(status, errors.SGDNoiseError)(message or f"sgdnoise: status {status}")


def check(status: int) -> None:
    """Raise unless ``status`` is OK."""
    if status != OK:
        raise_for(status)


def version() -> str:
    """The C library's version string."""
    return lib.sgdnoise_version().decode()


# --- Noise toolkit: streaming accumulator, top eigenpairs, comparison, noise scales, matrix-free
# operator (Sources/SGDNoiseCABI/Accumulator.swift and NoiseAnalysis.swift). ---

# enum sgdnoise_noise_scale_field and enum sgdnoise_compare_field: the out_scalars layouts.
NOISE_SCALE_FIELDS = ("b_simple", "b_noise", "trace_sigma", "grad_sq_norm", "trace_hessian_sigma",
                      "grad_hessian_grad")
COMPARE_FIELDS = ("rel_frobenius", "cosine", "trace_ratio", "overlap")

# sgdnoise_status sgdnoise_accumulator_create(ptrdiff_t d, void **out_accumulator);
_declare("sgdnoise_accumulator_create", c_int, [c_ptrdiff, ctypes.POINTER(c_void_p)])
# sgdnoise_status sgdnoise_accumulator_update(void *accumulator, ptrdiff_t n, const double *chunk);
_declare("sgdnoise_accumulator_update", c_int, [c_void_p, c_ptrdiff, P])
# sgdnoise_status sgdnoise_accumulator_update_f32(void *accumulator, ptrdiff_t n, const float *chunk);
_declare("sgdnoise_accumulator_update_f32", c_int, [c_void_p, c_ptrdiff, P])
# sgdnoise_status sgdnoise_accumulator_merge(void *accumulator, const void *other);
_declare("sgdnoise_accumulator_merge", c_int, [c_void_p, c_void_p])
# sgdnoise_status sgdnoise_accumulator_count(const void *accumulator, ptrdiff_t *out_count);
_declare("sgdnoise_accumulator_count", c_int, [c_void_p, ctypes.POINTER(c_ptrdiff)])
# sgdnoise_status sgdnoise_accumulator_dimension(const void *accumulator, ptrdiff_t *out_d);
_declare("sgdnoise_accumulator_dimension", c_int, [c_void_p, ctypes.POINTER(c_ptrdiff)])
# sgdnoise_status sgdnoise_accumulator_mean(const void *accumulator, double *out_mean);
_declare("sgdnoise_accumulator_mean", c_int, [c_void_p, P])
# sgdnoise_status sgdnoise_accumulator_covariance(const void *accumulator, ptrdiff_t batch_size,
#     int sampling, int kind, double *out);
_declare("sgdnoise_accumulator_covariance", c_int, [c_void_p, c_ptrdiff, c_int, c_int, P])
# sgdnoise_status sgdnoise_accumulator_noise_scale(const void *accumulator, const double *hessian,
#     double *out_scalars);
_declare("sgdnoise_accumulator_noise_scale", c_int, [c_void_p, P, P])
# void sgdnoise_accumulator_free(void *accumulator);
_declare("sgdnoise_accumulator_free", None, [c_void_p])
# sgdnoise_status sgdnoise_noise_scale(ptrdiff_t n, ptrdiff_t d, const double *grads,
#     const double *hessian, double *out_scalars);   (and _f32 with const float *grads)
_declare("sgdnoise_noise_scale", c_int, [c_ptrdiff, c_ptrdiff, P, P, P])
_declare("sgdnoise_noise_scale_f32", c_int, [c_ptrdiff, c_ptrdiff, P, P, P])
# sgdnoise_status sgdnoise_two_batch_noise_scale(ptrdiff_t n_small, const double *small_sq_norms,
#     ptrdiff_t n_big, const double *big_sq_norms, ptrdiff_t small_batch, ptrdiff_t big_batch,
#     double *out_scalars);
_declare("sgdnoise_two_batch_noise_scale", c_int, [c_ptrdiff, P, c_ptrdiff, P, c_ptrdiff, c_ptrdiff, P])
# sgdnoise_status sgdnoise_critical_batch_view(double b_noise, ptrdiff_t count,
#     const double *batch_sizes, double *out);
_declare("sgdnoise_critical_batch_view", c_int, [c_double, c_ptrdiff, P, P])
# sgdnoise_status sgdnoise_compare(ptrdiff_t d, const double *p, const double *q, ptrdiff_t k,
#     double *out_scalars);
_declare("sgdnoise_compare", c_int, [c_ptrdiff, P, P, c_ptrdiff, P])
# sgdnoise_status sgdnoise_noise_top_eigen(ptrdiff_t n, ptrdiff_t d, const double *grads,
#     ptrdiff_t batch_size, int sampling, ptrdiff_t k, double *out_values, double *out_vectors);
#     (and _f32 with const float *grads)
_declare("sgdnoise_noise_top_eigen", c_int, [c_ptrdiff, c_ptrdiff, P, c_ptrdiff, c_int, c_ptrdiff, P, P])
_declare("sgdnoise_noise_top_eigen_f32", c_int, [c_ptrdiff, c_ptrdiff, P, c_ptrdiff, c_int, c_ptrdiff, P, P])
# sgdnoise_status sgdnoise_gradient_mean(ptrdiff_t n, ptrdiff_t d, const double *grads,
#     double *out_mean);   (and _f32 with const float *grads)
_declare("sgdnoise_gradient_mean", c_int, [c_ptrdiff, c_ptrdiff, P, P])
_declare("sgdnoise_gradient_mean_f32", c_int, [c_ptrdiff, c_ptrdiff, P, P])
# sgdnoise_status sgdnoise_noise_factor(ptrdiff_t n, ptrdiff_t batch_size, int sampling,
#     double *out_factor);
_declare("sgdnoise_noise_factor", c_int, [c_ptrdiff, c_ptrdiff, c_int, ctypes.POINTER(c_double)])
# sgdnoise_status sgdnoise_noise_operator_apply(ptrdiff_t n, ptrdiff_t d, const double *grads,
#     const double *mean, ptrdiff_t batch_size, int sampling, ptrdiff_t m, const double *v,
#     double *out);   (and _f32 with const float *grads)
_declare("sgdnoise_noise_operator_apply", c_int, [c_ptrdiff, c_ptrdiff, P, P, c_ptrdiff, c_int, c_ptrdiff, P, P])
_declare("sgdnoise_noise_operator_apply_f32", c_int, [c_ptrdiff, c_ptrdiff, P, P, c_ptrdiff, c_int, c_ptrdiff, P, P])
# sgdnoise_status sgdnoise_noise_operator_diagonal(ptrdiff_t n, ptrdiff_t d, const double *grads,
#     const double *mean, ptrdiff_t batch_size, int sampling, double *out);   (and _f32)
_declare("sgdnoise_noise_operator_diagonal", c_int, [c_ptrdiff, c_ptrdiff, P, P, c_ptrdiff, c_int, P])
_declare("sgdnoise_noise_operator_diagonal_f32", c_int, [c_ptrdiff, c_ptrdiff, P, P, c_ptrdiff, c_int, P])
# sgdnoise_status sgdnoise_noise_operator_restrict(ptrdiff_t n, ptrdiff_t d, const double *grads,
#     const double *mean, ptrdiff_t batch_size, int sampling, ptrdiff_t k, const double *q,
#     double *out);   (and _f32 with const float *grads)
_declare("sgdnoise_noise_operator_restrict", c_int, [c_ptrdiff, c_ptrdiff, P, P, c_ptrdiff, c_int, c_ptrdiff, P, P])
_declare("sgdnoise_noise_operator_restrict_f32", c_int, [c_ptrdiff, c_ptrdiff, P, P, c_ptrdiff, c_int, c_ptrdiff, P, P])
