/* The stationary fluctuation of SGD in the paper's 2-d example, from C.
 *
 * Hessian H with eigenvalues 1 and 0.5 (rotated by 30 degrees so that it is not diagonal),
 * learning rate 1.5, batch size 50 and label-noise variance 1, with the noise approximated by
 * C = (sigma^2/S) H. Theorem 1 then has the closed form Sigma = (lr sigma^2/S)(2I - lr H)^{-1},
 * which this program checks against the library's general solver. It then asks for a learning
 * rate above the critical one, and prints the library's diagnosis.
 *
 * Build: cc -std=c99 -Iinclude examples/c/stationary_2x2.c -L.build/release -lsgdnoise -lm
 */
#include <math.h>
#include <stdio.h>

#include "sgdnoise.h"

int main(void) {
    /* Before anything else: the library loaded must serve a program built against this header. */
    if (!SGDNOISE_ABI_COMPATIBLE()) {
        fprintf(stderr, "error: libsgdnoise %s cannot serve a program built against header %d.%d.%d\n",
                sgdnoise_version(), SGDNOISE_VERSION_MAJOR, SGDNOISE_VERSION_MINOR, SGDNOISE_VERSION_PATCH);
        return 1;
    }
    const double pi = 3.14159265358979323846;
    const double c = cos(pi / 6.0), s = sin(pi / 6.0);
    const double h1 = 1.0, h2 = 0.5, lr = 1.5, batch = 50.0, noise_var = 1.0;
    /* H = R diag(h1, h2) R^T, R the rotation by 30 degrees. */
    double hessian[4] = {
        c * c * h1 + s * s * h2, c * s * (h1 - h2),
        c * s * (h1 - h2),       s * s * h1 + c * c * h2,
    };
    double noise[4], sigma[4], expected[4];
    int i;
    for (i = 0; i < 4; i++) {
        noise[i] = noise_var / batch * hessian[i];
    }
    /* Closed form: R diag(lr sigma^2 / (S (2 - lr h))) R^T. */
    {
        const double e1 = lr * noise_var / (batch * (2.0 - lr * h1));
        const double e2 = lr * noise_var / (batch * (2.0 - lr * h2));
        expected[0] = c * c * e1 + s * s * e2;
        expected[1] = expected[2] = c * s * (e1 - e2);
        expected[3] = s * s * e1 + c * c * e2;
    }

    printf("sgdnoise %s\n", sgdnoise_version());
    if (sgdnoise_stationary_covariance(2, hessian, noise, lr, NULL, 0.0, sigma) != SGDNOISE_STATUS_OK) {
        fprintf(stderr, "error: %s\n", sgdnoise_last_error_message());
        return 1;
    }
    printf("Sigma    = [[%.12f, %.12f], [%.12f, %.12f]]\n", sigma[0], sigma[1], sigma[2], sigma[3]);
    printf("expected = [[%.12f, %.12f], [%.12f, %.12f]]\n",
           expected[0], expected[1], expected[2], expected[3]);
    for (i = 0; i < 4; i++) {
        if (fabs(sigma[i] - expected[i]) > 1e-14) {
            fprintf(stderr, "error: entry %d differs from the closed form by %g\n", i,
                    fabs(sigma[i] - expected[i]));
            return 1;
        }
    }

    /* Above the critical learning rate 2/h_max = 2 there is no stationary distribution. */
    {
        sgdnoise_status status = sgdnoise_stationary_covariance(2, hessian, noise, 2.5, NULL, 0.0, sigma);
        if (status != SGDNOISE_STATUS_UNSTABLE) {
            fprintf(stderr, "error: lr = 2.5 should be unstable, got status %d\n", (int)status);
            return 1;
        }
        printf("lr = 2.5: %s\n", sgdnoise_last_error_message());
        if (fabs(sgdnoise_last_error_critical_learning_rate() - 2.0) > 1e-12) {
            fprintf(stderr, "error: critical learning rate %.17g, expected 2\n",
                    sgdnoise_last_error_critical_learning_rate());
            return 1;
        }
    }
    /* A NULL pointer is reported, not dereferenced. */
    if (sgdnoise_stationary_covariance(2, NULL, noise, lr, NULL, 0.0, sigma) != SGDNOISE_STATUS_INVALID_ARGUMENT) {
        fprintf(stderr, "error: NULL hessian accepted\n");
        return 1;
    }
    printf("NULL hessian: %s\n", sgdnoise_last_error_message());
    printf("ok\n");
    return 0;
}
