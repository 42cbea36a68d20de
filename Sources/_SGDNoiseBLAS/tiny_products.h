// Tiny row-major products without a BLAS call (tiny_products.c): each returns 1 when it computed
// the product, 0 when the caller must call BLAS (too large, empty, or strided vectors).
#ifndef SGDNOISE_TINY_PRODUCTS_H
#define SGDNOISE_TINY_PRODUCTS_H

#include <stddef.h>
#include "sgdnoise_blas.h"

// Multiply-adds up to which a product is a plain loop (8 × 8 × 8).
#define SGN_TINY_FLOPS 512

SGN_BLAS_HIDDEN int sgn_tiny_dgemm(int ta, int tb, blasint m, blasint n, blasint k, double alpha, const double *a,
                                   blasint lda, const double *b, blasint ldb, double beta, double *c, blasint ldc);
SGN_BLAS_HIDDEN int sgn_tiny_dsyrk(int upper, int trans, blasint n, blasint k, double alpha, const double *a,
                                   blasint lda, double beta, double *c, blasint ldc);
SGN_BLAS_HIDDEN int sgn_tiny_dtrmm(int left, int upper, int transa, int unit, blasint m, blasint n, double alpha,
                                   const double *a, blasint lda, double *b, blasint ldb);
SGN_BLAS_HIDDEN int sgn_tiny_dgemv(int trans, blasint m, blasint n, double alpha, const double *a, blasint lda,
                                   const double *x, blasint incx, double beta, double *y, blasint incy);

#endif
