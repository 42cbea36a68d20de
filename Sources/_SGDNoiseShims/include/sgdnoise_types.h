/* The C types of the public interface that Swift cannot declare with @c: version macros, typed
 * opaque handles, the progress callback and the size-prefixed result structs. scripts/make_header.py
 * copies each block between "@section N" and "@end" into section N of
 * include/sgdnoise.h, so this file is the single source of these declarations: the Swift C layer
 * (Sources/SGDNoiseCABI) compiles against exactly what C callers see.
 */
#ifndef SGDNOISE_TYPES_H
#define SGDNOISE_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* @section 1 */
/* The version of this header. Within one major version no function is removed or changes its
 * signature, no enum value changes its meaning, and result structs only grow at their end;
 * a program built against MAJOR.MINOR runs with any library MAJOR.MINOR' with MINOR' >= MINOR. */
#define SGDNOISE_VERSION_MAJOR 1
#define SGDNOISE_VERSION_MINOR 0
#define SGDNOISE_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, comparable with sgdnoise_version_number(). */
#define SGDNOISE_VERSION_NUMBER \
    (SGDNOISE_VERSION_MAJOR * 10000 + SGDNOISE_VERSION_MINOR * 100 + SGDNOISE_VERSION_PATCH)
/* Nonzero when the library loaded at run time can serve a program compiled against this header
 * (same major version, minor version at least this header's). */
#define SGDNOISE_ABI_COMPATIBLE() sgdnoise_abi_compatible(SGDNOISE_VERSION_NUMBER)
/* @end */

/* @section 8 */
/* A streaming accumulator of per-sample gradients (sgdnoise_accumulator_create). */
typedef struct sgdnoise_accumulator sgdnoise_accumulator;
/* @end */

/* @section 9 */
/* A Monte-Carlo SGD simulation (sgdnoise_simulation_create_gaussian / _dataset). */
typedef struct sgdnoise_simulation sgdnoise_simulation;

/* Progress callback of sgdnoise_simulation_run, called on the thread that called
 * sgdnoise_simulation_run (never concurrently with itself) with the context pointer given there,
 * done = SGD steps completed so far and total = steps in all, both summed over chains, burn-in
 * included. It is called about every 0.1 s while the chains run (not at all during a run shorter
 * than that) and once more at the end -- also after a cancellation -- with the steps actually
 * done (done == total when the run completed). Return 0 to continue, nonzero to cancel: the
 * chains stop within about a step's time, the run returns SGDNOISE_STATUS_OK and the summary
 * reports cancelled = 1 with estimates over the steps completed. The return value of the final
 * call is ignored. The callback must not call sgdnoise_simulation_* on the same handle. */
typedef int (*sgdnoise_progress_callback)(void *context, ptrdiff_t done, ptrdiff_t total);

/* What a simulation measured (sgdnoise_simulation_result). Set .size = sizeof(sgdnoise_simulation_summary)
 * before the call; the library fills the fields that lie wholly within .size and leaves the rest. */
typedef struct sgdnoise_simulation_summary {
    size_t size;
    /* E[L(w)], the regulariser included. */
    double train_loss;
    /* E[(w - u)^T A (w - u)]/2, A the input covariance and u the teacher (NaN for a dataset
     * without a teacher). */
    double test_loss;
    /* Hill estimate of the tail index of |w - w*| (w* the stationary mean); NaN when the chains
     * do not fluctuate (tail_order_statistics = 0, e.g. a dataset of one sample). */
    double tail_index;
    /* The number of order statistics the Hill estimate used. */
    int64_t tail_order_statistics;
    /* 1 when the tail index is <= 4 (sample variances converge slowly or not at all), else 0. */
    int32_t tail_unreliable;
    /* 1 when a chain diverged (the estimates are then NaN), else 0. */
    int32_t diverged;
    /* The step at which the first chain diverged (-1 if none). */
    int64_t diverged_at_step;
    /* 1 when the progress callback cancelled the run, else 0. */
    int32_t cancelled;
    /* Recorded (post burn-in) steps, summed over chains. */
    int64_t steps_completed;
} sgdnoise_simulation_summary;

/* What a scheduled run measured (sgdnoise_simulation_run_schedule). Set
 * .size = sizeof(sgdnoise_scheduled_run_summary) before the call. */
typedef struct sgdnoise_scheduled_run_summary {
    size_t size;
    /* The chains that did not diverge: the estimates average over them. */
    int64_t chains_used;
    /* 1 when a chain diverged (the estimates cover the others, and are NaN when fewer than two
     * remain), else 0. */
    int32_t diverged;
} sgdnoise_scheduled_run_summary;
/* @end */

/* @section 5 */
/* The scalars of a stationary prediction (the model functions). Set .size = sizeof(sgdnoise_prediction)
 * before the call; the library fills the fields that lie wholly within .size and leaves the rest. */
typedef struct sgdnoise_prediction {
    size_t size;
    /* E[L(w)] at stationarity (regulariser and label noise included). */
    double train_loss;
    /* E[(w - u)^T A (w - u)]/2 at stationarity (NaN without a teacher). */
    double test_loss;
    /* The model's kappa (docs/theory.md section 4; NaN where the model defines none). */
    double kappa;
    /* The critical learning rate lr*: the largest lr with a stationary distribution, in the
     * caller's units (the scalar in front of lr_matrix when one is given); NaN when unknown. */
    double critical_learning_rate;
    /* Tr[M Sigma], the trace through which the fluctuation Sigma feeds back into the noise C
     * (M the model's noise-coupling matrix, docs/theory.md section 4). */
    double coupling_trace;
    /* The noise power entering flat directions of the Hessian, where SGD random-walks instead of
     * fluctuating (0 when there are none). */
    double flat_direction_noise;
} sgdnoise_prediction;

/* How the fixed point of sgdnoise_finite_dataset converged. Set .size = sizeof(sgdnoise_dataset_info). */
typedef struct sgdnoise_dataset_info {
    size_t size;
    /* Fixed-point iterations used (1 for D <= 8: the step that checks the direct solve). */
    int64_t iterations;
    /* The final relative fixed-point step. */
    double residual;
    /* Spectral radius of the second-moment map when it was computed (NaN otherwise). */
    double spectral_radius;
} sgdnoise_dataset_info;
/* @end */

/* @section 4 */
/* What sgdnoise_stationary_fluctuation reports about flat directions (docs/theory.md section 3).
 * Set .size = sizeof(sgdnoise_fluctuation_info) before the call. */
typedef struct sgdnoise_fluctuation_info {
    size_t size;
    /* The number of flat directions: eigenvalues m of L^{1/2} H L^{1/2} (L the learning-rate
     * matrix, H the Hessian) at most flat_tolerance * max(m); Sigma is 0 there. */
    int64_t flat_directions;
    /* The noise power entering them, Tr[P L^{1/2} C L^{1/2} P] with P the projector on the flat
     * directions (positive: the parameters random-walk there). */
    double flat_direction_noise;
    /* The relative tolerance below which an eigenvalue counts as flat (16 * d * machine epsilon). */
    double flat_tolerance;
} sgdnoise_fluctuation_info;
/* @end */

/* @section 3 */
/* The gradient noise scales of McCandlish et al. (2018). Sigma_1 is the per-sample gradient
 * covariance (batch size 1, with replacement), G the mean gradient, H the Hessian.
 * Set .size = sizeof(sgdnoise_noise_scales) before the call. */
typedef struct sgdnoise_noise_scales {
    size_t size;
    /* B_simple = Tr(Sigma_1) / |G|^2 (NaN when both are 0: every gradient is zero). */
    double b_simple;
    /* B_noise = Tr(H Sigma_1) / (G^T H G) (NaN without a Hessian). */
    double b_noise;
    /* Tr(Sigma_1). */
    double trace_sigma;
    /* |G|^2. */
    double grad_sq_norm;
    /* Tr(H Sigma_1) (NaN without a Hessian). */
    double trace_hessian_sigma;
    /* G^T H G (NaN without a Hessian). */
    double grad_hessian_grad;
} sgdnoise_noise_scales;
/* @end */

/* @section 3 */
/* How close a covariance estimate P is to a reference Q (sgdnoise_compare).
 * Set .size = sizeof(sgdnoise_comparison) before the call. */
typedef struct sgdnoise_comparison {
    size_t size;
    /* ||P - Q||_F / ||Q||_F. */
    double rel_frobenius;
    /* <P, Q>_F / (||P||_F ||Q||_F) (NaN when P = 0). */
    double cosine;
    /* Tr P / Tr Q. */
    double trace_ratio;
    /* ||U_P^T U_Q||_F^2 / k for the top-k eigenvectors U (NaN when k = 0). */
    double overlap;
} sgdnoise_comparison;
/* @end */

/* @section 11 */
/* A symmetric linear operator given by its product, for a network's Hessian (out = H v) and its
 * noise covariance (out = C v): read the d doubles at v, write all d doubles of out (the buffers
 * never overlap and are valid only during the call), return 0. A nonzero return stops the
 * computation cleanly: the function returns SGDNOISE_STATUS_CANCELLED, leaves its outputs untouched
 * and makes no further call. Called sequentially on the calling thread, with the context pointer
 * given next to the callback; a NaN or an infinity in out is SGDNOISE_STATUS_NUMERICAL_FAILURE. */
typedef int (*sgdnoise_matvec_callback)(void *context, ptrdiff_t d, double const *v, double *out);

/* The block form of sgdnoise_matvec_callback, for several vectors at once (e.g. a vectorised
 * Hessian-vector product, far cheaper per vector than separate calls): read the count rows of d
 * doubles at v (row r at v + r*d), write row r of out = the product of row r, for all count rows
 * (1 <= count <= the block size given next to the callback), return 0. Same contract otherwise:
 * a nonzero return is SGDNOISE_STATUS_CANCELLED, NaN or infinity in out
 * SGDNOISE_STATUS_NUMERICAL_FAILURE, sequential calls on the calling thread. */
typedef int (*sgdnoise_block_matvec_callback)(void *context, ptrdiff_t d, ptrdiff_t count, double const *v, double *out);

/* What sgdnoise_network_fluctuation estimates besides its arrays (docs/theory.md section 8).
 * Standard errors are over the random probes. Set .size = sizeof(sgdnoise_network_summary). */
typedef struct sgdnoise_network_summary {
    size_t size;
    /* The excess training loss 1/2 Tr[H Sigma] = 1/2 Tr[g(Ht) Ct], g(m) = 1/((1-mu)(2 - m/(1+mu))),
     * Ht = L^{1/2} H L^{1/2} and Ct = L^{1/2} C L^{1/2} (L the learning rate): top k exact, the rest
     * from Hutchinson probes. */
    double excess_loss;
    /* Its standard error over the probes. */
    double excess_loss_stderr;
    /* Tr Sigma on the top-k eigendirections of Ht (exact). */
    double top_trace_sigma;
    /* The critical learning rate of a constant noise, lr * 2(1+mu)/m_max (m_max the largest
     * eigenvalue of Ht). */
    double critical_learning_rate_additive;
    /* The critical learning rate of the multiplicative noise of Thm 5, over the whole spectrum (top
     * k exact, the rest by stochastic Lanczos quadrature); NaN when batch_size was 0. */
    double critical_learning_rate_multiplicative;
    /* Its standard error over the probes; NaN when batch_size was 0. */
    double critical_learning_rate_multiplicative_stderr;
    /* Hessian-vector products and noise products used. */
    int64_t hessian_products;
    int64_t noise_products;
    /* The largest residual |Ht q - m q| of the top eigenpairs. */
    double max_residual;
    /* 1 when the top eigenpairs met the tolerance. */
    int64_t top_converged;
    /* 1 when the bottom eigenpairs converged within their budget (four Lanczos subspaces; the
     * whole Krylov space when d <= 200); when 0
     * the bottom values are Ritz values, upper bounds of the smallest eigenvalues (a negative one
     * still proves negative curvature). */
    int64_t bottom_converged;
    /* The steps in which the mean relaxes by a factor e along the slowest top-k direction (the
     * top-k block of Sigma is stationary after a few of these; second moments relax twice as
     * fast). */
    double top_relaxation_steps;
    /* The same along the smallest eigenvalue found at the bottom of the spectrum; INFINITY when
     * it is flat or negative (no stationary state there: the mean drifts). */
    double slowest_relaxation_steps;
    /* The bottom directions that are flat, |m| <= 1e-6 m_max. */
    int64_t flat_directions;
    /* The noise entering them, sum of q^T Ct q / (1-mu)^2: the growth per step of the trace of
     * L^{-1/2} Sigma L^{-1/2} along them (for lr * I, times lr for Tr Sigma), a random walk; 0 when no
     * noise enters them. */
    double flat_diffusion_per_step;
    /* sum over the k bottom eigenvectors of q^T Ct q (one noise product each). */
    double bottom_noise_trace;
} sgdnoise_network_summary;

/* What sgdnoise_mean_drift reports besides its arrays. Set .size = sizeof(sgdnoise_drift_summary). */
typedef struct sgdnoise_drift_summary {
    size_t size;
    /* 1/2 Tr[H Sigma] of the given Sigma: the part of the excess loss that drives this drift. */
    double excess_loss_covered;
    /* 1 when the Krylov part met its tolerance at every step (or none was needed), else 0. */
    int64_t converged;
    /* Hessian-vector products and curvature-gradient products used. */
    int64_t hessian_products;
    int64_t curvature_gradient_products;
} sgdnoise_drift_summary;

/* What sgdnoise_hessian_eigen reports besides its arrays. Set .size = sizeof(sgdnoise_eigen_info). */
typedef struct sgdnoise_eigen_info {
    size_t size;
    /* 1 when every residual is within the tolerance, 0 when the product budget ran out first. */
    int64_t converged;
    /* Hessian-vector products used. */
    int64_t products;
    /* Lanczos restarts. */
    int64_t restarts;
} sgdnoise_eigen_info;

/* What sgdnoise_spectral_density reports besides its arrays. Set
 * .size = sizeof(sgdnoise_spectral_density_info). */
typedef struct sgdnoise_spectral_density_info {
    size_t size;
    /* Nodes (and weights) written: at most probes * steps (a probe takes fewer steps when its
     * Krylov space is invariant, and at most d). */
    int64_t nodes;
    /* Hutchinson's estimate of Tr H: the mean over the probes of z^T H z (each exact from its
     * quadrature rule) = sum of weight_l * node_l. */
    double trace;
    /* Its standard error: the sample standard deviation of the probe estimates over sqrt(probes)
     * (+inf for one probe). */
    double trace_stderr;
    /* Hessian-vector products used. */
    int64_t products;
} sgdnoise_spectral_density_info;
/* @end */

/* @section 12 */
/* The relaxation of a learning curve towards the stationary state of its schedule's last
 * hyperparameters (sgdnoise_learning_curve, sgdnoise_quadratic_learning_curve). Set
 * .size = sizeof(sgdnoise_curve_summary) before the call; the library fills the fields that lie
 * wholly within .size and leaves the rest. */
typedef struct sgdnoise_curve_summary {
    size_t size;
    /* -1/ln rho of the whole (trace-coupled) second-moment map, in updates: the relaxation time
     * of the fluctuation part of the losses (+inf when it does not relax). */
    double moment_time;
    /* -1/ln rho of the mean's map, in updates: the relaxation time of the bias E[w_t] - w*
     * (+inf when it does not relax). */
    double mean_time;
    /* The stationary E[L(w)] of the last hyperparameters; NaN when they are unstable or the last
     * lr is 0 (no stationary state). */
    double stationary_train_loss;
    /* The stationary E[(w - u)^T A (w - u)]/2 of the last hyperparameters; NaN as
     * stationary_train_loss. */
    double stationary_test_loss;
    /* The first update t at or after the schedule's last change from which
     * |L_train(s) - stationary_train_loss| <= tolerance * stationary_train_loss for every
     * s = t..count (-1 when the train loss is still outside at the end or there is no stationary
     * value). */
    int64_t settled_at;
    /* The first update whose (lr, S, mu) lies beyond the critical learning rate lr*(S, mu): from
     * there the second moments grow while it lasts (-1 when every update is stable). */
    int64_t unstable_from;
} sgdnoise_curve_summary;
/* @end */

/* @section 13 */
/* A streaming, mergeable Frequent Directions sketch of the noise (sgdnoise_sketch_create). */
typedef struct sgdnoise_sketch sgdnoise_sketch;
/* @end */

#endif
