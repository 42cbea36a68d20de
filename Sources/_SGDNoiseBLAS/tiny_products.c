// Tiny dense products computed in place of a BLAS call.
//
// A BLAS call costs about a thousand instructions of argument checks and kernel dispatch before
// its first flop: more than the whole product of two 2 × 2 matrices, and the small models of the
// library (a 2 × 2 prediction is a few dozen such calls) spent a third of their time there. Below
// SGN_TINY_FLOPS multiply-adds the row-major products are plain loops in double precision, with
// BLAS's semantics (β = 0 never reads the output; only the asked triangle of SYRK is written);
// everything else, and every column-major call, goes to BLAS.
#include "tiny_products.h"

#define A_(i, j) a[(ptrdiff_t)(i) * lda + (j)]
#define B_(i, j) b[(ptrdiff_t)(i) * ldb + (j)]

int sgn_tiny_dgemm(int ta, int tb, blasint m, blasint n, blasint k, double alpha, const double *a, blasint lda,
                   const double *b, blasint ldb, double beta, double *c, blasint ldc) {
    if ((long long)m * n * k > SGN_TINY_FLOPS || m <= 0 || n <= 0 || k <= 0) return 0;
    for (blasint i = 0; i < m; i++) {
        for (blasint j = 0; j < n; j++) {
            double s = 0;
            for (blasint l = 0; l < k; l++) s += (ta ? A_(l, i) : A_(i, l)) * (tb ? B_(j, l) : B_(l, j));
            double *out = &c[(ptrdiff_t)i * ldc + j];
            *out = beta == 0 ? alpha * s : alpha * s + beta * *out;
        }
    }
    return 1;
}

int sgn_tiny_dsyrk(int upper, int trans, blasint n, blasint k, double alpha, const double *a, blasint lda,
                   double beta, double *c, blasint ldc) {
    if ((long long)n * n * k > SGN_TINY_FLOPS || n <= 0 || k <= 0) return 0;
    for (blasint i = 0; i < n; i++) {
        for (blasint j = upper ? i : 0; j < (upper ? n : i + 1); j++) {
            double s = 0;
            for (blasint l = 0; l < k; l++) s += (trans ? A_(l, i) * A_(l, j) : A_(i, l) * A_(j, l));
            double *out = &c[(ptrdiff_t)i * ldc + j];
            *out = beta == 0 ? alpha * s : alpha * s + beta * *out;
        }
    }
    return 1;
}

int sgn_tiny_dtrmm(int left, int upper, int transa, int unit, blasint m, blasint n, double alpha, const double *a,
                   blasint lda, double *b, blasint ldb) {
    const blasint order = left ? m : n;  // A is order × order
    if ((long long)m * n * order > SGN_TINY_FLOPS || m <= 0 || n <= 0) return 0;
    double t[SGN_TINY_FLOPS];  // m·n ≤ m·n·order entries: the product before it overwrites B
    for (blasint i = 0; i < m; i++) {
        for (blasint j = 0; j < n; j++) {
            double s = 0;
            for (blasint l = 0; l < order; l++) {
                // op(A)(r, q) of the triangular A, for B ← op(A) B (left) or B op(A) (right).
                const blasint r = left ? i : l, q = left ? l : j;
                const blasint p = transa ? q : r, w = transa ? r : q;  // the stored entry (p, w)
                if (upper ? w < p : w > p) continue;
                const double entry = unit && p == w ? 1 : A_(p, w);
                s += left ? entry * B_(l, j) : B_(i, l) * entry;
            }
            t[(ptrdiff_t)i * n + j] = alpha * s;
        }
    }
    for (blasint i = 0; i < m; i++) {
        for (blasint j = 0; j < n; j++) B_(i, j) = t[(ptrdiff_t)i * n + j];
    }
    return 1;
}

int sgn_tiny_dgemv(int trans, blasint m, blasint n, double alpha, const double *a, blasint lda, const double *x,
                   blasint incx, double beta, double *y, blasint incy) {
    if ((long long)m * n > SGN_TINY_FLOPS || m <= 0 || n <= 0 || incx != 1 || incy != 1) return 0;
    const blasint rows = trans ? n : m, inner = trans ? m : n;
    for (blasint i = 0; i < rows; i++) {
        double s = 0;
        for (blasint l = 0; l < inner; l++) s += (trans ? A_(l, i) : A_(i, l)) * x[l];
        y[i] = beta == 0 ? alpha * s : alpha * s + beta * y[i];
    }
    return 1;
}
