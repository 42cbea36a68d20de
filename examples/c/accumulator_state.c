/* Shipping a noise accumulator's state between processes: two "workers" each accumulate half of the
 * per-sample gradients, export their state to bytes (what would travel over a socket or into a
 * file), and a "coordinator" imports and merges them. The merged noise covariance equals the one of
 * a single accumulator that saw every row, and a corrupted buffer is refused with a message.
 * One line per check; the exit status is nonzero when any check fails. Compiles as C99 and as C++.
 *
 * Build: cc -std=c99 -Iinclude examples/c/accumulator_state.c -L.build/release -lsgdnoise -lm
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgdnoise.h"

#define N 8
#define D 3

static int failures = 0;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) {
        failures++;
    }
}

/* A worker: accumulates `rows` gradients and returns its state as a malloc'ed buffer. */
static uint8_t *worker_state(const double *rows, ptrdiff_t n, ptrdiff_t *out_size) {
    sgdnoise_accumulator *acc = NULL;
    uint8_t *bytes = NULL;
    if (sgdnoise_accumulator_create(D, &acc) == SGDNOISE_STATUS_OK &&
        sgdnoise_accumulator_update(acc, n, rows) == SGDNOISE_STATUS_OK &&
        sgdnoise_accumulator_state_size(acc, out_size) == SGDNOISE_STATUS_OK) {
        bytes = (uint8_t *)malloc((size_t)*out_size);
        if (bytes != NULL && sgdnoise_accumulator_export(acc, bytes) != SGDNOISE_STATUS_OK) {
            free(bytes);
            bytes = NULL;
        }
    }
    sgdnoise_accumulator_free(acc);
    return bytes;
}

int main(void) {
    static const double grads[N * D] = {
        1.0, 2.0, 0.5,   0.3, -1.0, 2.0,   4.0, 0.0, 1.0,   -2.0, 1.5, 0.0,
        0.7, 0.7, 0.7,   3.0, -2.0, 1.0,   -1.0, 0.2, 2.5,  0.0, 1.0, -1.5,
    };
    ptrdiff_t size_a = 0, size_b = 0, count = 0;
    uint8_t *a = worker_state(grads, 5, &size_a);          /* rows 0..4 */
    uint8_t *b = worker_state(grads + 5 * D, 3, &size_b);  /* rows 5..7 */
    sgdnoise_accumulator *merged = NULL, *single = NULL, *refused = NULL;
    double c_merged[D * D], c_single[D * D], worst = 0.0;
    int i;

    check(a != NULL && b != NULL && size_a == size_b && size_a == 32 + 8 * (2 + D + D * (D + 1) / 2),
          "two workers exported their states (32 + 8 (2 + d + d(d+1)/2) bytes each)");
    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return 1;
    }
    check(memcmp(a, "SGDNSTAT", 8) == 0, "a state starts with the magic bytes SGDNSTAT");

    /* The coordinator: import the first state, merge the second into it. */
    if (sgdnoise_accumulator_import(size_a, a, &merged) == SGDNOISE_STATUS_OK) {
        sgdnoise_accumulator *other = NULL;
        if (sgdnoise_accumulator_import(size_b, b, &other) == SGDNOISE_STATUS_OK) {
            check(sgdnoise_accumulator_merge(merged, other) == SGDNOISE_STATUS_OK, "imported states merge");
        }
        sgdnoise_accumulator_free(other);
    }
    sgdnoise_accumulator_create(D, &single);
    sgdnoise_accumulator_update(single, N, grads);
    if (sgdnoise_accumulator_count(merged, &count) == SGDNOISE_STATUS_OK &&
        sgdnoise_accumulator_covariance(merged, 4, SGDNOISE_SAMPLING_WITH_REPLACEMENT, SGDNOISE_NOISE_KIND_FULL,
                                        c_merged) == SGDNOISE_STATUS_OK &&
        sgdnoise_accumulator_covariance(single, 4, SGDNOISE_SAMPLING_WITH_REPLACEMENT, SGDNOISE_NOISE_KIND_FULL,
                                        c_single) == SGDNOISE_STATUS_OK) {
        for (i = 0; i < D * D; i++) {
            worst = fmax(worst, fabs(c_merged[i] - c_single[i]));
        }
        printf("     merged count %ld, C[0][0] = %.6f, largest difference from one accumulator %.2e\n", (long)count,
               c_merged[0], worst);
        check(count == N && worst <= 1e-14, "the merged covariance equals that of one accumulator of all rows");
    } else {
        check(0, sgdnoise_last_error_message());
    }

    /* A corrupted buffer (one flipped bit) is refused, and nothing is created. */
    a[40] ^= 1;
    check(sgdnoise_accumulator_import(size_a, a, &refused) == SGDNOISE_STATUS_INVALID_ARGUMENT && refused == NULL,
          "a corrupted state is refused");
    printf("     message: %s\n", sgdnoise_last_error_message());

    sgdnoise_accumulator_free(merged);
    sgdnoise_accumulator_free(single);
    free(a);
    free(b);
    return failures == 0 ? 0 : 1;
}
