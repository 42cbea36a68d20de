/* Handles and failures from C: the life cycle of a simulation and of a noise accumulator, and the
 * library's answer to bad arguments (a status and a thread-local message, never a crash).
 *
 * Every handle is a typed opaque pointer (sgdnoise_simulation *, sgdnoise_accumulator *) created
 * with its _create function and released with its _free function (free(NULL) is a no-op); nothing
 * the library allocates is left behind, which examples/c/valgrind_check.sh verifies under valgrind.
 * Results with several scalars come back in size-prefixed structs: set .size = sizeof(the struct)
 * first. (examples/c/abi_1_0.c checks the handle and struct-size rules in detail.)
 *
 * Build: cc -std=c99 -Iinclude examples/c/handles_and_errors.c -L.build/release -lsgdnoise -lm
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sgdnoise.h"

static int failures = 0;

/* Reports a call that should have failed with `expected`. */
static void expect_status(const char *what, sgdnoise_status got, sgdnoise_status expected) {
    const char *message = sgdnoise_last_error_message();
    if (got != expected || message == NULL || message[0] == '\0') {
        fprintf(stderr, "error: %s: status %d (expected %d), message \"%s\"\n", what, (int)got, (int)expected,
                message ? message : "(null)");
        failures++;
        return;
    }
    printf("%-34s -> status %d: %s\n", what, (int)got, message);
}

static int simulation(void) {
    double a[4] = {1.0, 0.0, 0.0, 0.5};
    double mean[2], sigma[4];
    sgdnoise_simulation_summary summary;
    sgdnoise_simulation *sim = NULL;
    int round;
    memset(&summary, 0, sizeof summary);
    summary.size = sizeof summary;
    for (round = 0; round < 3; round++) {
        if (sgdnoise_simulation_create_gaussian(2, a, NULL, 1.0, NULL, &sim) != SGDNOISE_STATUS_OK ||
            sgdnoise_simulation_set_optimizer(sim, NULL, 0.5, NULL, 10, 0.0) != SGDNOISE_STATUS_OK ||
            sgdnoise_simulation_run(sim, 20000, 1000, 2, 42, 0, NULL, NULL) != SGDNOISE_STATUS_OK ||
            sgdnoise_simulation_result(sim, mean, sigma, NULL, NULL, &summary) != SGDNOISE_STATUS_OK) {
            fprintf(stderr, "error: simulation: %s\n", sgdnoise_last_error_message());
            sgdnoise_simulation_free(sim);
            return 1;
        }
        sgdnoise_simulation_free(sim);
        sim = NULL;
    }
    /* Label noise, lr = 0.5, S = 10: the exact Sigma [Thm 2] is diag(0.0363, 0.0305). */
    printf("simulated Sigma = [[%.4f, %.4f], [%.4f, %.4f]], diverged = %d, steps = %ld\n", sigma[0], sigma[1],
           sigma[2], sigma[3], (int)summary.diverged, (long)summary.steps_completed);
    if (summary.diverged != 0 || summary.cancelled != 0 || summary.steps_completed != 2 * 20000) {
        fprintf(stderr, "error: summary: diverged %d, cancelled %d, steps_completed %ld (expected 0, 0, 40000)\n",
                (int)summary.diverged, (int)summary.cancelled, (long)summary.steps_completed);
        return 1;
    }
    if (!(sigma[0] > 0.02 && sigma[0] < 0.06)) {
        fprintf(stderr, "error: simulated Sigma_11 = %g is far from the theory (0.0363)\n", sigma[0]);
        return 1;
    }

    /* A handle that has not run has no result; a NULL handle is refused. */
    if (sgdnoise_simulation_create_gaussian(2, a, NULL, 1.0, NULL, &sim) != SGDNOISE_STATUS_OK) {
        return 1;
    }
    expect_status("result before run", sgdnoise_simulation_result(sim, mean, NULL, NULL, NULL, NULL),
                  SGDNOISE_STATUS_INVALID_ARGUMENT);
    expect_status("momentum 1", sgdnoise_simulation_set_optimizer(sim, NULL, 0.5, NULL, 10, 1.0),
                  SGDNOISE_STATUS_INVALID_ARGUMENT);
    expect_status("overflowing step count", sgdnoise_simulation_run(sim, PTRDIFF_MAX, 1, 1, 1, 0, NULL, NULL),
                  SGDNOISE_STATUS_INVALID_ARGUMENT);
    sgdnoise_simulation_free(sim);
    sgdnoise_simulation_free(NULL);
    expect_status("run on a NULL handle", sgdnoise_simulation_run(NULL, 10, 0, 1, 1, 0, NULL, NULL),
                  SGDNOISE_STATUS_INVALID_ARGUMENT);
    return 0;
}

static int accumulator(void) {
    double chunk[6 * 2] = {1, 2, 0, 1, 3, 1, 2, 2, 1, 0, 1, 3};
    double covariance[4], direct[4];
    sgdnoise_accumulator *acc = NULL;
    ptrdiff_t count = 0;
    int i;
    if (sgdnoise_accumulator_create(2, &acc) != SGDNOISE_STATUS_OK ||
        sgdnoise_accumulator_update(acc, 4, chunk) != SGDNOISE_STATUS_OK ||
        sgdnoise_accumulator_update(acc, 2, chunk + 8) != SGDNOISE_STATUS_OK ||
        sgdnoise_accumulator_count(acc, &count) != SGDNOISE_STATUS_OK ||
        sgdnoise_accumulator_covariance(acc, 2, SGDNOISE_SAMPLING_WITH_REPLACEMENT, SGDNOISE_NOISE_KIND_FULL,
                                        covariance) != SGDNOISE_STATUS_OK ||
        sgdnoise_noise_covariance(6, 2, chunk, 2, SGDNOISE_SAMPLING_WITH_REPLACEMENT, SGDNOISE_NOISE_KIND_FULL,
                                  direct) != SGDNOISE_STATUS_OK) {
        fprintf(stderr, "error: accumulator: %s\n", sgdnoise_last_error_message());
        sgdnoise_accumulator_free(acc);
        return 1;
    }
    for (i = 0; i < 4; i++) {
        if (fabs(covariance[i] - direct[i]) > 1e-12 * (1.0 + fabs(direct[i]))) {
            fprintf(stderr, "error: streamed and one-shot noise covariances differ at %d\n", i);
            sgdnoise_accumulator_free(acc);
            return 1;
        }
    }
    printf("accumulated %ld gradients: C = [[%.4f, %.4f], [%.4f, %.4f]]\n", (long)count, covariance[0],
           covariance[1], covariance[2], covariance[3]);
    chunk[0] = NAN;
    expect_status("NaN in a chunk", sgdnoise_accumulator_update(acc, 6, chunk), SGDNOISE_STATUS_INVALID_ARGUMENT);
    sgdnoise_accumulator_free(acc);
    return 0;
}

static int bad_arguments(void) {
    double h[4] = {1.0, 0.3, 0.0, 1.0}, c[4] = {0.1, 0.0, 0.0, 0.1}, out[4] = {0, 0, 0, 0};
    double spd[4] = {1.0, 0.0, 0.0, 0.5};
    expect_status("d = -1", sgdnoise_stationary_covariance(-1, h, c, 0.5, NULL, 0.0, out),
                  SGDNOISE_STATUS_INVALID_ARGUMENT);
    expect_status("d = 10^6 (a dense 8 TB matrix)", sgdnoise_stationary_covariance(1000000, h, c, 0.5, NULL, 0.0, out),
                  SGDNOISE_STATUS_OUT_OF_MEMORY);
    expect_status("non-symmetric hessian", sgdnoise_stationary_covariance(2, h, c, 0.5, NULL, 0.0, out),
                  SGDNOISE_STATUS_NOT_SYMMETRIC);
    expect_status("lr = NaN", sgdnoise_stationary_covariance(2, spd, c, NAN, NULL, 0.0, out),
                  SGDNOISE_STATUS_INVALID_ARGUMENT);
    expect_status("momentum = 1", sgdnoise_stationary_covariance(2, spd, c, 0.5, NULL, 1.0, out),
                  SGDNOISE_STATUS_INVALID_ARGUMENT);
    expect_status("lr = 2 / h_max exactly", sgdnoise_stationary_covariance(2, spd, c, 2.0, NULL, 0.0, out),
                  SGDNOISE_STATUS_UNSTABLE);
    expect_status("n * d overflows",
                  sgdnoise_noise_covariance(PTRDIFF_MAX / 2, 4, h, 1, SGDNOISE_SAMPLING_WITH_REPLACEMENT,
                                            SGDNOISE_NOISE_KIND_FULL, out),
                  SGDNOISE_STATUS_OUT_OF_MEMORY);
    /* An enum value the library does not define (C++ needs the cast; 3 is representable in both enums). */
    expect_status("kind = 3",
                  sgdnoise_noise_covariance(2, 2, h, 1, SGDNOISE_SAMPLING_WITH_REPLACEMENT, (sgdnoise_noise_kind)3, out),
                  SGDNOISE_STATUS_INVALID_ARGUMENT);
    expect_status("sampling = 3",
                  sgdnoise_noise_covariance(2, 2, h, 1, (sgdnoise_sampling)3, SGDNOISE_NOISE_KIND_FULL, out),
                  SGDNOISE_STATUS_INVALID_ARGUMENT);
    /* Epoch shuffling has no closed form: only sgdnoise_simulation_create_dataset accepts it. */
    expect_status("epoch shuffling in a noise formula",
                  sgdnoise_noise_covariance(2, 2, h, 1, SGDNOISE_SAMPLING_EPOCH_SHUFFLING, SGDNOISE_NOISE_KIND_FULL, out),
                  SGDNOISE_STATUS_INVALID_ARGUMENT);
    expect_status("batch_size > n without replacement",
                  sgdnoise_noise_covariance(2, 2, h, 3, SGDNOISE_SAMPLING_WITHOUT_REPLACEMENT, SGDNOISE_NOISE_KIND_FULL,
                                            out),
                  SGDNOISE_STATUS_INVALID_ARGUMENT);
    if (out[0] != 0 || out[1] != 0 || out[2] != 0 || out[3] != 0) {
        fprintf(stderr, "error: a failing call wrote into its output\n");
        return 1;
    }
    return failures != 0;
}

int main(void) {
    if (!SGDNOISE_ABI_COMPATIBLE()) {
        fprintf(stderr, "error: libsgdnoise %s cannot serve a program built against header %d.%d.%d\n",
                sgdnoise_version(), SGDNOISE_VERSION_MAJOR, SGDNOISE_VERSION_MINOR, SGDNOISE_VERSION_PATCH);
        return 1;
    }
    printf("sgdnoise %s\n", sgdnoise_version());
    if (simulation() || accumulator() || bad_arguments() || failures) {
        return 1;
    }
    printf("ok\n");
    return 0;
}
