/* The spectral density of a Hessian known only through its product, used as a weighted spectrum
 * by the label-noise model (docs/theory.md section 8), from C.
 *
 * 1. A weighted spectrum with integer weights is the spectrum with each node repeated: nodes
 *    (2, 0.5) with weights (1, 3) give the test loss and critical learning rate of the spectrum
 *    (2, 0.5, 0.5, 0.5), to rounding.
 * 2. sgdnoise_spectral_density of H = diag(1/1, 1/2, ..., 1/100) + 0.5 u u^T (u = 1/sqrt(100)),
 *    given as a callback: its weights sum to 100, its Hutchinson trace lies within a few standard
 *    errors of Tr H = H_100 + 0.5, and its nodes and weights, passed in
 *    SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM, give the critical learning rate that the library computes
 *    from the dense H (by its eigendecomposition) to within a few percent.
 *
 * Build: cc -std=c99 -Iinclude examples/c/weighted_spectrum.c -L.build/release -lsgdnoise -lm
 */
#include <math.h>
#include <stdio.h>

#include "sgdnoise.h"

#define P 100
#define PROBES 20
#define STEPS 10

/* H v for H = diag(1/(i+1)) + 0.5 u u^T, u = (1, ..., 1)/sqrt(d); the context counts the products. */
static int product(void *context, ptrdiff_t d, double const *v, double *out) {
    double mean = 0.0;
    ptrdiff_t i;
    for (i = 0; i < d; i++) {
        mean += v[i] / (double)d;
    }
    for (i = 0; i < d; i++) {
        out[i] = v[i] / (double)(i + 1) + 0.5 * mean;
    }
    ++*(int *)context;
    return 0;
}

static int fail(const char *what) {
    fprintf(stderr, "error: %s: %s\n", what, sgdnoise_last_error_message());
    return 1;
}

int main(void) {
    if (!SGDNOISE_ABI_COMPATIBLE()) {
        fprintf(stderr, "error: libsgdnoise %s cannot serve a program built against this header\n", sgdnoise_version());
        return 1;
    }
    /* 1. Integer weights = repeated nodes. */
    {
        const double weighted[4] = {2.0, 0.5, 1.0, 3.0}; /* nodes, then weights */
        const double repeated[4] = {2.0, 0.5, 0.5, 0.5};
        double sigma_w[2], sigma_r[4], lc_w, lc_r;
        sgdnoise_prediction pw, pr;
        pw.size = pr.size = sizeof(sgdnoise_prediction);
        if (sgdnoise_label_noise(SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM, 2, weighted, 1.0, 0.2, NULL, 4, 0.0, sigma_w,
                                 NULL, &pw) != SGDNOISE_STATUS_OK) {
            return fail("label_noise (weighted)");
        }
        if (sgdnoise_label_noise(SGDNOISE_LAYOUT_DIAGONAL, 4, repeated, 1.0, 0.2, NULL, 4, 0.0, sigma_r, NULL, &pr)
            != SGDNOISE_STATUS_OK) {
            return fail("label_noise (repeated)");
        }
        if (sgdnoise_critical_learning_rate(SGDNOISE_MODEL_LABEL_NOISE, SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM, 2, weighted,
                                            NULL, 4, 0.0, &lc_w) != SGDNOISE_STATUS_OK ||
            sgdnoise_critical_learning_rate(SGDNOISE_MODEL_LABEL_NOISE, SGDNOISE_LAYOUT_DIAGONAL, 4, repeated, NULL, 4,
                                            0.0, &lc_r) != SGDNOISE_STATUS_OK) {
            return fail("critical_learning_rate");
        }
        printf("weighted (2 x1, 0.5 x3): test loss %.15f, lr* %.15f, sigma at the nodes %.12f %.12f\n",
               pw.test_loss, lc_w, sigma_w[0], sigma_w[1]);
        printf("repeated (2, 0.5, 0.5, 0.5): test loss %.15f, lr* %.15f, sigma %.12f %.12f\n",
               pr.test_loss, lc_r, sigma_r[0], sigma_r[1]);
        if (fabs(pw.test_loss - pr.test_loss) > 1e-14 * pr.test_loss || fabs(lc_w - lc_r) > 1e-14 * lc_r ||
            fabs(sigma_w[0] - sigma_r[0]) > 1e-14 * sigma_r[0] || fabs(sigma_w[1] - sigma_r[1]) > 1e-14 * sigma_r[1]) {
            fprintf(stderr, "error: the weighted spectrum differs from the repeated one\n");
            return 1;
        }
        /* A model that needs more than traces refuses the weighted layout. */
        if (sgdnoise_damped_newton(SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM, 2, weighted, 1.0, 0.1, 4, 0.0, NULL, NULL, NULL)
            != SGDNOISE_STATUS_INVALID_ARGUMENT) {
            fprintf(stderr, "error: damped_newton accepted a weighted spectrum\n");
            return 1;
        }
        printf("damped_newton refuses it: %s\n", sgdnoise_last_error_message());
    }
    /* 2. The spectral density of a matrix-free H, fed to the critical learning rate. */
    {
        static double spectrum[2 * PROBES * STEPS]; /* nodes, then (after the count) weights */
        static double dense[P * P];
        double weights[PROBES * STEPS], total = 0.0, trace = 0.5, lc_exact, lc_density;
        int products = 0;
        ptrdiff_t i, j, count;
        sgdnoise_spectral_density_info info;
        info.size = sizeof info;
        for (i = 0; i < P; i++) {
            for (j = 0; j < P; j++) {
                dense[i * P + j] = 0.5 / P + (i == j ? 1.0 / (double)(i + 1) : 0.0);
            }
            trace += 1.0 / (double)(i + 1);
        }
        if (sgdnoise_spectral_density(P, product, &products, PROBES, STEPS, 7, spectrum, weights, &info)
            != SGDNOISE_STATUS_OK) {
            return fail("spectral_density");
        }
        count = (ptrdiff_t)info.nodes;
        for (i = 0; i < count; i++) {
            spectrum[count + i] = weights[i];
            total += weights[i];
        }
        printf("spectral density: %ld nodes from %ld products (callback: %d), weights sum to %.12f\n",
               (long)count, (long)info.products, products, total);
        printf("Hutchinson Tr H = %.6f +- %.6f (exact %.6f)\n", info.trace, info.trace_stderr, trace);
        if (fabs(total - P) > 1e-10 * P || info.products != products ||
            fabs(info.trace - trace) > 5.0 * info.trace_stderr) {
            fprintf(stderr, "error: the density's weights or trace are off\n");
            return 1;
        }
        if (sgdnoise_critical_learning_rate(SGDNOISE_MODEL_LABEL_NOISE, SGDNOISE_LAYOUT_DENSE, P, dense, NULL, 2,
                                            0.0, &lc_exact) != SGDNOISE_STATUS_OK ||
            sgdnoise_critical_learning_rate(SGDNOISE_MODEL_LABEL_NOISE, SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM, count,
                                            spectrum, NULL, 2, 0.0, &lc_density) != SGDNOISE_STATUS_OK) {
            return fail("critical_learning_rate");
        }
        printf("lr* at S = 2: dense H %.6f, spectral density %.6f (%+.2f%%)\n", lc_exact, lc_density,
               100.0 * (lc_density / lc_exact - 1.0));
        if (fabs(lc_density / lc_exact - 1.0) > 0.05) {
            fprintf(stderr, "error: the density's critical learning rate is off by more than 5%%\n");
            return 1;
        }
    }
    return 0;
}
