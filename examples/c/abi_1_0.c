/* A program written against the sgdnoise 1.0 C interface, checking the promises that let it keep
 * working with every later 1.x library:
 *   (a) the version macros agree with the library it runs with;
 *   (b) a result struct of an older, smaller size is filled up to that size and not one byte further;
 *   (c) a newer, larger struct (this one followed by fields the library does not know) keeps its
 *       extra fields as the caller set them;
 *   (d) a struct whose .size is not set is refused with a message, and nothing is written;
 *   (e) a handle of the wrong kind, a freed handle, a pointer the library never gave out and NULL
 *       are refused with SGDNOISE_STATUS_INVALID_ARGUMENT and a message, never a crash; freeing
 *       twice is harmless.
 * One line per check; the exit status is nonzero when any check fails. Compiles as C99 and as C++.
 *
 * Build: cc -std=c99 -Iinclude examples/c/abi_1_0.c -L.build/release -lsgdnoise -lm
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sgdnoise.h"

static int checks = 0;
static int failures = 0;

/* Records one check and prints one line for it. */
static void check(int ok, const char *format, ...) {
    va_list args;
    checks++;
    if (!ok) {
        failures++;
    }
    printf("%s ", ok ? "ok  " : "FAIL");
    va_start(args, format);
    vprintf(format, args);
    va_end(args);
    printf("\n");
}

/* A call that must fail with SGDNOISE_STATUS_INVALID_ARGUMENT and leave a message. */
static void check_invalid(const char *what, sgdnoise_status status) {
    const char *message = sgdnoise_last_error_message();
    check(status == SGDNOISE_STATUS_INVALID_ARGUMENT && message != NULL && message[0] != '\0',
          "%s -> status %d (expected %d): \"%s\"", what, (int)status, (int)SGDNOISE_STATUS_INVALID_ARGUMENT,
          message ? message : "(null)");
}

/* ---- Buffers filled with a sentinel byte, to see exactly which bytes the library wrote. */

#define SENTINEL 0xA5
#define BUFFER_BYTES 256

/* Suitably aligned for every result struct. */
typedef union sentinel_buffer {
    unsigned char bytes[BUFFER_BYTES];
    double align_double;
    size_t align_size;
    int64_t align_int64;
} sentinel_buffer;

static void fill(sentinel_buffer *b) {
    memset(b->bytes, SENTINEL, sizeof b->bytes);
}

/* The number of bytes at or after `from` (up to `end`) that are no longer the sentinel. */
static size_t written_between(const unsigned char *bytes, size_t from, size_t end) {
    size_t i, count = 0;
    for (i = from; i < end; i++) {
        if (bytes[i] != SENTINEL) {
            count++;
        }
    }
    return count;
}

/* Bitwise equality of two doubles (NaN == NaN). */
static int same_double(double x, double y) {
    return memcmp(&x, &y, sizeof x) == 0;
}

/* ---- The older and newer versions of the result structs this program defines itself. */

/* sgdnoise_prediction as an earlier version might have had it: its first two fields. */
typedef struct prediction_v0 {
    size_t size;
    double train_loss;
    double test_loss;
} prediction_v0;

/* sgdnoise_simulation_summary truncated after `diverged`. */
typedef struct summary_v0 {
    size_t size;
    double train_loss;
    double test_loss;
    double tail_index;
    int64_t tail_order_statistics;
    int32_t tail_unreliable;
    int32_t diverged;
} summary_v0;

/* sgdnoise_noise_scales truncated after `b_noise`. */
typedef struct noise_scales_v0 {
    size_t size;
    double b_simple;
    double b_noise;
} noise_scales_v0;

/* A later sgdnoise_prediction: the 1.0 struct followed by fields this library does not know. */
typedef struct prediction_v2 {
    sgdnoise_prediction v1;
    double future_double;
    int64_t future_int;
    double future_array[4];
} prediction_v2;

/* A later sgdnoise_simulation_summary. */
typedef struct summary_v2 {
    sgdnoise_simulation_summary v1;
    double future_double;
    int64_t future_int;
} summary_v2;

/* ---- The problems. */

static const double A2[4] = {1.0, 0.0, 0.0, 0.5};
static const double GRADS[6 * 2] = {1, 2, 0, 1, 3, 1, 2, 2, 1, 0, 1, 3};
static const double HESSIAN2[4] = {2.0, 0.5, 0.5, 1.0};

static sgdnoise_status label_noise(sgdnoise_prediction *out, double *sigma) {
    return sgdnoise_label_noise(SGDNOISE_LAYOUT_DENSE, 2, A2, 1.0, 0.5, NULL, 10, 0.0, sigma, NULL, out);
}

/* (a) Versions. */
static void versions(void) {
    char expected[64];
    uint32_t number = sgdnoise_version_number();
    const char *text = sgdnoise_version();
    sprintf(expected, "%d.%d.%d", SGDNOISE_VERSION_MAJOR, SGDNOISE_VERSION_MINOR, SGDNOISE_VERSION_PATCH);
    check(SGDNOISE_VERSION_NUMBER ==
              SGDNOISE_VERSION_MAJOR * 10000 + SGDNOISE_VERSION_MINOR * 100 + SGDNOISE_VERSION_PATCH,
          "SGDNOISE_VERSION_NUMBER %d = MAJOR*10000 + MINOR*100 + PATCH", (int)SGDNOISE_VERSION_NUMBER);
    check(SGDNOISE_VERSION_MAJOR == 1 && SGDNOISE_VERSION_MINOR == 0,
          "header version %d.%d (this program is written against 1.0)", SGDNOISE_VERSION_MAJOR,
          SGDNOISE_VERSION_MINOR);
    check(number == (uint32_t)SGDNOISE_VERSION_NUMBER, "sgdnoise_version_number() %lu == SGDNOISE_VERSION_NUMBER %d",
          (unsigned long)number, (int)SGDNOISE_VERSION_NUMBER);
    check(text != NULL && strcmp(text, expected) == 0, "sgdnoise_version() \"%s\" == \"%s\" from the macros",
          text ? text : "(null)", expected);
    check(SGDNOISE_ABI_COMPATIBLE() == 1, "SGDNOISE_ABI_COMPATIBLE() == 1");
    check(sgdnoise_abi_compatible((uint32_t)SGDNOISE_VERSION_NUMBER) == 1,
          "sgdnoise_abi_compatible(SGDNOISE_VERSION_NUMBER) == 1");
    check(sgdnoise_abi_compatible((uint32_t)(SGDNOISE_VERSION_MAJOR + 1) * 10000u) == 0,
          "a header of the next major version (%d.0.0) is refused", SGDNOISE_VERSION_MAJOR + 1);
    check(sgdnoise_abi_compatible((uint32_t)(SGDNOISE_VERSION_MAJOR - 1) * 10000u + 99u) == 0,
          "a header of the previous major version (%d.0.99) is refused", SGDNOISE_VERSION_MAJOR - 1);
    check(sgdnoise_abi_compatible(number + 100u) == 0,
          "a header of a later minor version (library %lu, header %lu) is refused", (unsigned long)number,
          (unsigned long)(number + 100u));
    check(sgdnoise_abi_compatible(0u) == 0, "header version 0 is refused");
    /* Compatibility is by major and minor version only: a header differing in its patch level
     * alone is served. */
    check(sgdnoise_abi_compatible(number + 1u) == 1, "a header of a later patch level (%lu) is served",
          (unsigned long)(number + 1u));
}

/* (b), (c), (d) for sgdnoise_prediction. */
static void prediction_sizes(void) {
    sgdnoise_prediction full;
    sentinel_buffer buffer;
    prediction_v0 *old_struct = (prediction_v0 *)(void *)buffer.bytes;
    prediction_v2 newer;
    double sigma[4];
    sgdnoise_status status;
    size_t i;

    memset(&full, 0, sizeof full);
    full.size = sizeof full;
    status = label_noise(&full, NULL);
    check(status == SGDNOISE_STATUS_OK && full.size == sizeof full,
          "prediction, full 1.0 struct (%lu bytes): status %d, train_loss %.6g, test_loss %.6g, kappa %.6g, lr* %.6g",
          (unsigned long)sizeof full, (int)status, full.train_loss, full.test_loss, full.kappa,
          full.critical_learning_rate);

    /* (b) the older, smaller struct inside a larger sentinel buffer. */
    fill(&buffer);
    old_struct->size = sizeof(prediction_v0);
    status = label_noise((sgdnoise_prediction *)(void *)old_struct, NULL);
    check(status == SGDNOISE_STATUS_OK, "prediction, older %lu-byte struct: status %d",
          (unsigned long)sizeof(prediction_v0), (int)status);
    check(old_struct->size == sizeof(prediction_v0), "prediction, older struct: .size left as set (%lu)",
          (unsigned long)old_struct->size);
    check(same_double(old_struct->train_loss, full.train_loss) && same_double(old_struct->test_loss, full.test_loss),
          "prediction, older struct: train_loss %.17g, test_loss %.17g equal the full struct's",
          old_struct->train_loss, old_struct->test_loss);
    check(written_between(buffer.bytes, sizeof(prediction_v0), BUFFER_BYTES) == 0,
          "prediction, older struct: no byte written after its %lu bytes (%lu written)",
          (unsigned long)sizeof(prediction_v0),
          (unsigned long)written_between(buffer.bytes, sizeof(prediction_v0), BUFFER_BYTES));

    /* Only the size field itself: nothing to fill, nothing written. */
    fill(&buffer);
    old_struct->size = sizeof(size_t);
    status = label_noise((sgdnoise_prediction *)(void *)old_struct, NULL);
    check(status == SGDNOISE_STATUS_OK && written_between(buffer.bytes, sizeof(size_t), BUFFER_BYTES) == 0,
          "prediction, .size = sizeof(size_t): status %d, %lu bytes written after the size field", (int)status,
          (unsigned long)written_between(buffer.bytes, sizeof(size_t), BUFFER_BYTES));

    /* A size that ends inside a field: never a byte past it. */
    fill(&buffer);
    old_struct->size = sizeof(size_t) + 4;
    status = label_noise((sgdnoise_prediction *)(void *)old_struct, NULL);
    check(status == SGDNOISE_STATUS_OK && written_between(buffer.bytes, sizeof(size_t) + 4, BUFFER_BYTES) == 0,
          "prediction, .size = %lu (inside train_loss): status %d, no byte written past it",
          (unsigned long)(sizeof(size_t) + 4), (int)status);
    /* ... and the field it cuts is left alone: only whole fields are written. */
    check(written_between(buffer.bytes, sizeof(size_t), sizeof(size_t) + 4) == 0,
          "prediction, .size = %lu: the cut field train_loss is not written", (unsigned long)(sizeof(size_t) + 4));

    /* (c) a newer, larger struct: the extra fields stay as the caller set them. */
    memset(&newer, SENTINEL, sizeof newer);
    newer.v1.size = sizeof newer;
    status = label_noise(&newer.v1, NULL);
    check(status == SGDNOISE_STATUS_OK && newer.v1.size == sizeof newer,
          "prediction, newer %lu-byte struct: status %d, .size left as set", (unsigned long)sizeof newer, (int)status);
    check(same_double(newer.v1.train_loss, full.train_loss) && same_double(newer.v1.test_loss, full.test_loss) &&
              same_double(newer.v1.kappa, full.kappa) &&
              same_double(newer.v1.critical_learning_rate, full.critical_learning_rate) &&
              same_double(newer.v1.coupling_trace, full.coupling_trace) &&
              same_double(newer.v1.flat_direction_noise, full.flat_direction_noise),
          "prediction, newer struct: every 1.0 field equals the full struct's");
    check(written_between((const unsigned char *)&newer, sizeof(sgdnoise_prediction), sizeof newer) == 0,
          "prediction, newer struct: the %lu bytes of fields unknown to 1.0 are untouched",
          (unsigned long)(sizeof newer - sizeof(sgdnoise_prediction)));

    /* (d) .size not set: refused, and no output written. */
    for (i = 0; i < 4; i++) {
        sigma[i] = -1.0;
    }
    fill(&buffer);
    old_struct->size = 0;
    check_invalid("prediction, .size = 0", label_noise((sgdnoise_prediction *)(void *)old_struct, sigma));
    check(sigma[0] == -1.0 && sigma[1] == -1.0 && sigma[2] == -1.0 && sigma[3] == -1.0 &&
              written_between(buffer.bytes, sizeof(size_t), BUFFER_BYTES) == 0,
          "prediction, .size = 0: out_sigma and the struct untouched");
    fill(&buffer);
    old_struct->size = (size_t)1 << 40;
    check_invalid("prediction, .size = 2^40 (garbage)", label_noise((sgdnoise_prediction *)(void *)old_struct, sigma));
    check(written_between(buffer.bytes, sizeof(size_t), BUFFER_BYTES) == 0 && sigma[0] == -1.0,
          "prediction, .size = 2^40: nothing written");
}

/* (b), (c), (d) for sgdnoise_simulation_summary. */
static void summary_sizes(void) {
    sgdnoise_simulation *simulation = NULL;
    sgdnoise_simulation_summary full;
    sentinel_buffer buffer;
    summary_v0 *old_struct = (summary_v0 *)(void *)buffer.bytes;
    summary_v2 newer;
    double mean[2] = {-1.0, -1.0};
    sgdnoise_status status;

    if (sgdnoise_simulation_create_gaussian(2, A2, NULL, 1.0, NULL, &simulation) != SGDNOISE_STATUS_OK ||
        sgdnoise_simulation_set_optimizer(simulation, NULL, 0.5, NULL, 10, 0.0) != SGDNOISE_STATUS_OK ||
        sgdnoise_simulation_run(simulation, 4000, 200, 2, 7, 1, NULL, NULL) != SGDNOISE_STATUS_OK) {
        check(0, "summary: set up a simulation: %s", sgdnoise_last_error_message());
        sgdnoise_simulation_free(simulation);
        return;
    }
    memset(&full, 0, sizeof full);
    full.size = sizeof full;
    status = sgdnoise_simulation_result(simulation, NULL, NULL, NULL, NULL, &full);
    check(status == SGDNOISE_STATUS_OK && full.diverged == 0 && full.cancelled == 0 && full.steps_completed == 8000 &&
              full.diverged_at_step == -1,
          "summary, full 1.0 struct (%lu bytes): status %d, train_loss %.6g, tail_index %.4g, diverged %d, "
          "diverged_at_step %ld, cancelled %d, steps_completed %ld",
          (unsigned long)sizeof full, (int)status, full.train_loss, full.tail_index, (int)full.diverged,
          (long)full.diverged_at_step, (int)full.cancelled, (long)full.steps_completed);

    fill(&buffer);
    old_struct->size = sizeof(summary_v0);
    status = sgdnoise_simulation_result(simulation, NULL, NULL, NULL, NULL,
                                        (sgdnoise_simulation_summary *)(void *)old_struct);
    check(status == SGDNOISE_STATUS_OK && old_struct->size == sizeof(summary_v0),
          "summary, older %lu-byte struct: status %d, .size left as set", (unsigned long)sizeof(summary_v0),
          (int)status);
    check(same_double(old_struct->train_loss, full.train_loss) && same_double(old_struct->test_loss, full.test_loss) &&
              same_double(old_struct->tail_index, full.tail_index) &&
              old_struct->tail_order_statistics == full.tail_order_statistics &&
              old_struct->tail_unreliable == full.tail_unreliable && old_struct->diverged == full.diverged,
          "summary, older struct: its six fields equal the full struct's");
    check(written_between(buffer.bytes, sizeof(summary_v0), BUFFER_BYTES) == 0,
          "summary, older struct: no byte written after its %lu bytes", (unsigned long)sizeof(summary_v0));

    memset(&newer, SENTINEL, sizeof newer);
    newer.v1.size = sizeof newer;
    status = sgdnoise_simulation_result(simulation, NULL, NULL, NULL, NULL, &newer.v1);
    check(status == SGDNOISE_STATUS_OK && newer.v1.size == sizeof newer &&
              same_double(newer.v1.train_loss, full.train_loss) && newer.v1.steps_completed == full.steps_completed &&
              newer.v1.cancelled == full.cancelled && newer.v1.diverged_at_step == full.diverged_at_step,
          "summary, newer %lu-byte struct: status %d, 1.0 fields equal the full struct's", (unsigned long)sizeof newer,
          (int)status);
    check(written_between((const unsigned char *)&newer, sizeof(sgdnoise_simulation_summary), sizeof newer) == 0,
          "summary, newer struct: the fields unknown to 1.0 are untouched");

    fill(&buffer);
    old_struct->size = 0;
    check_invalid("summary, .size = 0",
                  sgdnoise_simulation_result(simulation, mean, NULL, NULL, NULL,
                                             (sgdnoise_simulation_summary *)(void *)old_struct));
    check(mean[0] == -1.0 && mean[1] == -1.0 && written_between(buffer.bytes, sizeof(size_t), BUFFER_BYTES) == 0,
          "summary, .size = 0: out_mean and the struct untouched");
    sgdnoise_simulation_free(simulation);
}

/* (b), (d) for sgdnoise_noise_scales, and .size = 0 for the other result structs. */
static void other_structs(void) {
    sgdnoise_noise_scales full;
    sentinel_buffer buffer;
    noise_scales_v0 *scales_v0 = (noise_scales_v0 *)(void *)buffer.bytes;
    sgdnoise_fluctuation_info info;
    sgdnoise_dataset_info dataset_info;
    sgdnoise_comparison comparison;
    double sigma[4] = {-1.0, -1.0, -1.0, -1.0};
    double noise[4] = {0.1, 0.0, 0.0, 0.1};
    double y[6] = {1.0, 0.5, 2.0, 1.5, 0.0, 1.0};
    sgdnoise_status status;

    memset(&full, 0, sizeof full);
    full.size = sizeof full;
    status = sgdnoise_noise_scale(6, 2, GRADS, HESSIAN2, &full);
    check(status == SGDNOISE_STATUS_OK, "noise scales, full 1.0 struct: status %d, b_simple %.6g, b_noise %.6g",
          (int)status, full.b_simple, full.b_noise);
    fill(&buffer);
    scales_v0->size = sizeof(noise_scales_v0);
    status = sgdnoise_noise_scale(6, 2, GRADS, HESSIAN2, (sgdnoise_noise_scales *)(void *)scales_v0);
    check(status == SGDNOISE_STATUS_OK && scales_v0->size == sizeof(noise_scales_v0) &&
              same_double(scales_v0->b_simple, full.b_simple) && same_double(scales_v0->b_noise, full.b_noise),
          "noise scales, older %lu-byte struct: status %d, b_simple and b_noise equal the full struct's",
          (unsigned long)sizeof(noise_scales_v0), (int)status);
    check(written_between(buffer.bytes, sizeof(noise_scales_v0), BUFFER_BYTES) == 0,
          "noise scales, older struct: no byte written after its %lu bytes", (unsigned long)sizeof(noise_scales_v0));
    fill(&buffer);
    scales_v0->size = 0;
    check_invalid("noise scales, .size = 0",
                  sgdnoise_noise_scale(6, 2, GRADS, HESSIAN2, (sgdnoise_noise_scales *)(void *)scales_v0));
    check(written_between(buffer.bytes, sizeof(size_t), BUFFER_BYTES) == 0, "noise scales, .size = 0: nothing written");

    /* The fluctuation info, with the 1.0 flat_tolerance argument (0 = the default 16 d eps). */
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    status = sgdnoise_stationary_fluctuation(2, HESSIAN2, noise, 0.5, NULL, 0.0, 0.0, sigma, NULL, &info);
    check(status == SGDNOISE_STATUS_OK && info.flat_directions == 0 && info.flat_tolerance == 16.0 * 2 * DBL_EPSILON,
          "fluctuation info, flat_tolerance = 0: status %d, flat_directions %ld, tolerance used %.3g (16 d eps)",
          (int)status, (long)info.flat_directions, info.flat_tolerance);
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    status = sgdnoise_stationary_fluctuation(2, HESSIAN2, noise, 0.5, NULL, 0.0, 1e-9, sigma, NULL, &info);
    check(status == SGDNOISE_STATUS_OK && info.flat_tolerance == 1e-9,
          "fluctuation info, flat_tolerance = 1e-9: status %d, tolerance used %.3g", (int)status, info.flat_tolerance);
    check_invalid("stationary_fluctuation, flat_tolerance = -1",
                  sgdnoise_stationary_fluctuation(2, HESSIAN2, noise, 0.5, NULL, 0.0, -1.0, sigma, NULL, &info));
    memset(&info, 0, sizeof info);
    sigma[0] = -1.0;
    check_invalid("fluctuation info, .size = 0",
                  sgdnoise_stationary_fluctuation(2, HESSIAN2, noise, 0.5, NULL, 0.0, 0.0, sigma, NULL, &info));
    check(sigma[0] == -1.0 && info.flat_directions == 0, "fluctuation info, .size = 0: out_sigma untouched");

    memset(&dataset_info, 0, sizeof dataset_info);
    check_invalid("dataset info, .size = 0",
                  sgdnoise_finite_dataset(6, 2, GRADS, y, SGDNOISE_SAMPLING_WITH_REPLACEMENT, NULL, 0.05, NULL, 2, 0.0,
                                          NULL, NULL, sigma, NULL, NULL, NULL, &dataset_info));
    check(sigma[0] == -1.0, "dataset info, .size = 0: out_sigma untouched");
    dataset_info.size = sizeof dataset_info;
    status = sgdnoise_finite_dataset(6, 2, GRADS, y, SGDNOISE_SAMPLING_WITH_REPLACEMENT, NULL, 0.05, NULL, 2, 0.0,
                                     NULL, NULL, sigma, NULL, NULL, NULL, &dataset_info);
    check(status == SGDNOISE_STATUS_OK && dataset_info.iterations >= 1,
          "dataset info, .size set: status %d, %ld iterations, residual %.3g", (int)status,
          (long)dataset_info.iterations, dataset_info.residual);

    memset(&comparison, 0, sizeof comparison);
    check_invalid("comparison, .size = 0", sgdnoise_compare(2, HESSIAN2, A2, 1, &comparison));
    check(comparison.rel_frobenius == 0.0, "comparison, .size = 0: nothing written");
    comparison.size = sizeof comparison;
    status = sgdnoise_compare(2, A2, A2, 1, &comparison);
    check(status == SGDNOISE_STATUS_OK && fabs(comparison.rel_frobenius) < 1e-15 && fabs(comparison.cosine - 1) < 1e-14,
          "comparison, .size set: status %d, P = Q gives rel_frobenius %.3g, cosine %.17g", (int)status,
          comparison.rel_frobenius, comparison.cosine);
}

/* (e) Handles of the wrong kind, freed, foreign and NULL; double free. */
static void handles(void) {
    sgdnoise_simulation *simulation = NULL, *freed_simulation = NULL, *fresh = NULL;
    sgdnoise_accumulator *accumulator = NULL, *freed_accumulator = NULL;
    sgdnoise_simulation_summary summary;
    double foreign[16];
    double row[2] = {1.0, 2.0}, mean[2];
    ptrdiff_t count = -7;
    sgdnoise_status status;

    memset(foreign, 0, sizeof foreign);
    memset(&summary, 0, sizeof summary);
    summary.size = sizeof summary;
    if (sgdnoise_simulation_create_gaussian(2, A2, NULL, 1.0, NULL, &simulation) != SGDNOISE_STATUS_OK ||
        sgdnoise_simulation_create_gaussian(2, A2, NULL, 1.0, NULL, &freed_simulation) != SGDNOISE_STATUS_OK ||
        sgdnoise_accumulator_create(2, &accumulator) != SGDNOISE_STATUS_OK ||
        sgdnoise_accumulator_create(2, &freed_accumulator) != SGDNOISE_STATUS_OK ||
        sgdnoise_accumulator_update(accumulator, 6, GRADS) != SGDNOISE_STATUS_OK) {
        check(0, "handles: create: %s", sgdnoise_last_error_message());
        return;
    }
    check(simulation != NULL && accumulator != NULL && (void *)simulation != (void *)accumulator,
          "handles: two simulations and two accumulators created");

    /* Wrong kind, both ways. */
    check_invalid("simulation passed as accumulator (count)",
                  sgdnoise_accumulator_count((sgdnoise_accumulator *)(void *)simulation, &count));
    check(count == -7, "  ... out_count untouched");
    check_invalid("simulation passed as accumulator (update)",
                  sgdnoise_accumulator_update((sgdnoise_accumulator *)(void *)simulation, 1, row));
    check_invalid("simulation passed as accumulator (merge's other)",
                  sgdnoise_accumulator_merge(accumulator, (sgdnoise_accumulator *)(void *)simulation));
    check_invalid("accumulator passed as simulation (set_optimizer)",
                  sgdnoise_simulation_set_optimizer((sgdnoise_simulation *)(void *)accumulator, NULL, 0.5, NULL, 10, 0));
    check_invalid("accumulator passed as simulation (run)",
                  sgdnoise_simulation_run((sgdnoise_simulation *)(void *)accumulator, 10, 0, 1, 1, 1, NULL, NULL));
    check_invalid("accumulator passed as simulation (result)",
                  sgdnoise_simulation_result((sgdnoise_simulation *)(void *)accumulator, mean, NULL, NULL, NULL,
                                             &summary));
    /* Freeing through the wrong kind is ignored: both handles still work afterwards. */
    sgdnoise_simulation_free((sgdnoise_simulation *)(void *)accumulator);
    sgdnoise_accumulator_free((sgdnoise_accumulator *)(void *)simulation);
    status = sgdnoise_accumulator_count(accumulator, &count);
    check(status == SGDNOISE_STATUS_OK && count == 6,
          "accumulator still live after sgdnoise_simulation_free on it: status %d, count %ld", (int)status, (long)count);
    status = sgdnoise_simulation_set_optimizer(simulation, NULL, 0.5, NULL, 10, 0.0);
    check(status == SGDNOISE_STATUS_OK, "simulation still live after sgdnoise_accumulator_free on it: status %d",
          (int)status);

    /* Freed handles (no handle is created between the free and the calls). */
    sgdnoise_simulation_free(freed_simulation);
    sgdnoise_accumulator_free(freed_accumulator);
    check_invalid("freed simulation (set_optimizer)",
                  sgdnoise_simulation_set_optimizer(freed_simulation, NULL, 0.5, NULL, 10, 0.0));
    check_invalid("freed simulation (run)", sgdnoise_simulation_run(freed_simulation, 10, 0, 1, 1, 1, NULL, NULL));
    check_invalid("freed accumulator (update)", sgdnoise_accumulator_update(freed_accumulator, 1, row));
    check_invalid("freed accumulator (mean)", sgdnoise_accumulator_mean(freed_accumulator, mean));
    /* Double free, and freeing through the other kind after the free: harmless. */
    sgdnoise_simulation_free(freed_simulation);
    sgdnoise_accumulator_free(freed_accumulator);
    sgdnoise_accumulator_free((sgdnoise_accumulator *)(void *)freed_simulation);
    check(1, "double free of a simulation and of an accumulator returned");

    /* Foreign pointers: a stack variable, and a pointer into the middle of a live handle. */
    check_invalid("stack pointer as simulation (run)",
                  sgdnoise_simulation_run((sgdnoise_simulation *)(void *)foreign, 10, 0, 1, 1, 1, NULL, NULL));
    check_invalid("stack pointer as accumulator (count)",
                  sgdnoise_accumulator_count((sgdnoise_accumulator *)(void *)foreign, &count));
    check_invalid("stack pointer as merge's other",
                  sgdnoise_accumulator_merge(accumulator, (sgdnoise_accumulator *)(void *)foreign));
    check_invalid("pointer 8 bytes into a live simulation (set_optimizer)",
                  sgdnoise_simulation_set_optimizer((sgdnoise_simulation *)(void *)((char *)(void *)simulation + 8),
                                                    NULL, 0.5, NULL, 10, 0.0));
    sgdnoise_simulation_free((sgdnoise_simulation *)(void *)foreign);
    sgdnoise_accumulator_free((sgdnoise_accumulator *)(void *)foreign);
    check(foreign[0] == 0.0 && foreign[15] == 0.0, "freeing a stack pointer is ignored and does not write to it");

    /* NULL. */
    check_invalid("NULL simulation (run)", sgdnoise_simulation_run(NULL, 10, 0, 1, 1, 1, NULL, NULL));
    check_invalid("NULL simulation (result)", sgdnoise_simulation_result(NULL, mean, NULL, NULL, NULL, &summary));
    check_invalid("NULL accumulator (count)", sgdnoise_accumulator_count(NULL, &count));
    check_invalid("NULL as merge's other", sgdnoise_accumulator_merge(accumulator, NULL));
    sgdnoise_simulation_free(NULL);
    sgdnoise_accumulator_free(NULL);

    /* After all that the library still works: the live handles and a new one. */
    status = sgdnoise_simulation_run(simulation, 500, 50, 1, 3, 1, NULL, NULL);
    if (status == SGDNOISE_STATUS_OK) {
        status = sgdnoise_simulation_result(simulation, mean, NULL, NULL, NULL, &summary);
    }
    check(status == SGDNOISE_STATUS_OK && summary.steps_completed == 500,
          "the live simulation still runs: status %d, steps_completed %ld", (int)status, (long)summary.steps_completed);
    status = sgdnoise_simulation_create_gaussian(2, A2, NULL, 1.0, NULL, &fresh);
    check(status == SGDNOISE_STATUS_OK && fresh != NULL, "a new simulation can be created: status %d", (int)status);
    sgdnoise_simulation_free(fresh);
    sgdnoise_simulation_free(simulation);
    sgdnoise_accumulator_free(accumulator);
}

int main(void) {
    if (!SGDNOISE_ABI_COMPATIBLE()) {
        fprintf(stderr, "error: libsgdnoise %s cannot serve a program built against header %d.%d.%d\n",
                sgdnoise_version(), SGDNOISE_VERSION_MAJOR, SGDNOISE_VERSION_MINOR, SGDNOISE_VERSION_PATCH);
        return 1;
    }
    printf("sgdnoise %s (header %d.%d.%d)\n", sgdnoise_version(), SGDNOISE_VERSION_MAJOR, SGDNOISE_VERSION_MINOR,
           SGDNOISE_VERSION_PATCH);
    versions();
    prediction_sizes();
    summary_sizes();
    other_structs();
    handles();
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
