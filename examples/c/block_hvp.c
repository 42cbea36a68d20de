/* The block form of the Hessian-vector product callback (sgdnoise_block_matvec_callback) with
 * sgdnoise_network_fluctuation_block, checked against the single-vector form and a closed form:
 *   (a) with block callbacks that apply the single product to each row, every output equals the
 *       single-vector function's, bit for bit, and the products counted are the same vectors in
 *       fewer calls, none larger than block_size;
 *   (b) for a diagonal H and C (Rademacher probes are then exact), the excess loss is
 *       1/2 sum_i lr c_i / (2 - lr h_i) to the Krylov tolerance;
 *   (c) a callback returning nonzero stops with SGDNOISE_STATUS_CANCELLED and no further call, a NaN
 *       is SGDNOISE_STATUS_NUMERICAL_FAILURE, a NULL callback or block_size < 1 is
 *       SGDNOISE_STATUS_INVALID_ARGUMENT; the outputs are left untouched in each case.
 * One line per check; the exit status is nonzero when any check fails. Compiles as C99 and as C++.
 *
 * Build: cc -std=c99 -Iinclude examples/c/block_hvp.c -L.build/release -lsgdnoise -lm
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sgdnoise.h"

enum { D = 40, K = 2, PROBES = 6, STEPS = 20, BLOCK = 4 };
static const double LR = 0.5;

/* The same bits (a field of a struct, without its padding). */
#define SAME(a, b) (memcmp(&(a), &(b), sizeof(a)) == 0)

static int checks = 0;
static int failures = 0;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
    }
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
}

/* The operator's diagonal: H = diag(1.5 (i + 1) / D), C = diag(0.01 (1 + i mod 3)). */
static double h_entry(ptrdiff_t i) { return 1.5 * (double)(i + 1) / D; }
static double c_entry(ptrdiff_t i) { return 0.01 * (double)(1 + i % 3); }

/* What a callback saw, and how it should misbehave. */
typedef struct {
    double (*entry)(ptrdiff_t);
    long calls;
    long vectors;
    long largest;
    long cancel_at; /* return 1 at this call (0: never) */
    int nan;        /* write a NaN into every block of more than one row */
} counter;

static int single(void *context, ptrdiff_t d, double const *v, double *out) {
    counter *c = (counter *)context;
    ptrdiff_t i;
    c->calls++;
    c->vectors++;
    for (i = 0; i < d; i++) {
        out[i] = c->entry(i) * v[i];
    }
    return 0;
}

/* Row r of out = the single product of row r of v. */
static int block(void *context, ptrdiff_t d, ptrdiff_t count, double const *v, double *out) {
    counter *c = (counter *)context;
    ptrdiff_t r, i;
    c->calls++;
    c->vectors += (long)count;
    if (count > c->largest) {
        c->largest = (long)count;
    }
    if (c->cancel_at != 0 && c->calls == c->cancel_at) {
        return 1;
    }
    for (r = 0; r < count; r++) {
        for (i = 0; i < d; i++) {
            out[r * d + i] = c->entry(i) * v[r * d + i];
        }
    }
    if (c->nan && count > 1) {
        out[d + 3] = NAN;
    }
    return 0;
}

typedef struct {
    double top[K];
    double vectors[K * D];
    double bottom[K];
    double fluctuation[K * K];
    sgdnoise_network_summary summary;
} outputs;

static void clear(outputs *o) {
    memset(o, 0x5a, sizeof *o); /* a pattern the library never writes */
    o->summary.size = sizeof o->summary;
}

static sgdnoise_status run_block(counter *h, counter *c, sgdnoise_block_matvec_callback hb,
                                 sgdnoise_block_matvec_callback cb, ptrdiff_t block_size, outputs *o) {
    return sgdnoise_network_fluctuation_block(D, hb, h, cb, c, block_size, LR, NULL, 0.0, K, PROBES, STEPS, 8, 1e-12,
                                              7, o->top, o->vectors, o->bottom, o->fluctuation, &o->summary);
}

int main(void) {
    counter h1 = {h_entry, 0, 0, 0, 0, 0}, c1 = {c_entry, 0, 0, 0, 0, 0};
    counter hb = {h_entry, 0, 0, 0, 0, 0}, cb = {c_entry, 0, 0, 0, 0, 0};
    static outputs one, many, untouched, o;
    double expected = 0.0;
    ptrdiff_t i;
    sgdnoise_status s1, s2;

    clear(&one);
    clear(&many);
    s1 = sgdnoise_network_fluctuation(D, single, &h1, single, &c1, LR, NULL, 0.0, K, PROBES, STEPS, 8, 1e-12, 7,
                                      one.top, one.vectors, one.bottom, one.fluctuation, &one.summary);
    s2 = run_block(&hb, &cb, block, block, BLOCK, &many);
    check(s1 == SGDNOISE_STATUS_OK && s2 == SGDNOISE_STATUS_OK, "(a) both forms succeed");
    check(memcmp(one.top, many.top, sizeof one.top) == 0 && memcmp(one.vectors, many.vectors, sizeof one.vectors) == 0
              && memcmp(one.bottom, many.bottom, sizeof one.bottom) == 0
              && memcmp(one.fluctuation, many.fluctuation, sizeof one.fluctuation) == 0,
          "(a) eigenpairs and fluctuation block bit-identical");
    check(SAME(one.summary.excess_loss, many.summary.excess_loss)
              && SAME(one.summary.excess_loss_stderr, many.summary.excess_loss_stderr)
              && SAME(one.summary.top_trace_sigma, many.summary.top_trace_sigma)
              && SAME(one.summary.critical_learning_rate_multiplicative,
                      many.summary.critical_learning_rate_multiplicative)
              && SAME(one.summary.critical_learning_rate_multiplicative_stderr,
                      many.summary.critical_learning_rate_multiplicative_stderr)
              && SAME(one.summary.max_residual, many.summary.max_residual)
              && SAME(one.summary.bottom_noise_trace, many.summary.bottom_noise_trace)
              && one.summary.hessian_products == many.summary.hessian_products
              && one.summary.noise_products == many.summary.noise_products,
          "(a) summary estimates bit-identical");
    check(hb.vectors == h1.vectors && cb.vectors == c1.vectors
              && many.summary.hessian_products == (int64_t)hb.vectors
              && many.summary.noise_products == (int64_t)cb.vectors,
          "(a) the same products, counted as vectors");
    check(hb.calls < hb.vectors && cb.calls < cb.vectors && hb.largest == BLOCK && cb.largest == BLOCK,
          "(a) in fewer calls, none larger than block_size");

    for (i = 0; i < D; i++) {
        expected += 0.5 * LR * c_entry(i) / (2.0 - LR * h_entry(i));
    }
    check(fabs(many.summary.excess_loss - expected) <= 1e-9 * expected, "(b) excess loss = the closed form");

    clear(&untouched);
    {
        counter hc = {h_entry, 0, 0, 0, 5, 0}, cc = {c_entry, 0, 0, 0, 0, 0};
        clear(&o);
        check(run_block(&hc, &cc, block, block, BLOCK, &o) == SGDNOISE_STATUS_CANCELLED && hc.calls == 5
                  && memcmp(&o, &untouched, sizeof o) == 0,
              "(c) nonzero return: CANCELLED, no further call, outputs untouched");
    }
    {
        counter hn = {h_entry, 0, 0, 0, 0, 1}, cn = {c_entry, 0, 0, 0, 0, 0};
        clear(&o);
        check(run_block(&hn, &cn, block, block, BLOCK, &o) == SGDNOISE_STATUS_NUMERICAL_FAILURE
                  && memcmp(&o, &untouched, sizeof o) == 0,
              "(c) NaN in a block: NUMERICAL_FAILURE, outputs untouched");
    }
    {
        counter hz = {h_entry, 0, 0, 0, 0, 0}, cz = {c_entry, 0, 0, 0, 0, 0};
        clear(&o);
        check(run_block(&hz, &cz, NULL, block, BLOCK, &o) == SGDNOISE_STATUS_INVALID_ARGUMENT
                  && run_block(&hz, &cz, block, NULL, BLOCK, &o) == SGDNOISE_STATUS_INVALID_ARGUMENT
                  && run_block(&hz, &cz, block, block, 0, &o) == SGDNOISE_STATUS_INVALID_ARGUMENT
                  && hz.calls == 0 && memcmp(&o, &untouched, sizeof o) == 0,
              "(c) NULL callback, block_size 0: INVALID_ARGUMENT, no call, outputs untouched");
    }
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
