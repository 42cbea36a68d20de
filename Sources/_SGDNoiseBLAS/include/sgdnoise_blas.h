// The BLAS and LAPACK routines the library calls, routed: by default to the OpenBLAS and LAPACKE it
// is linked with (Debian's, 32-bit integers), or, after sgn_blas_route_ilp64, to an OpenBLAS with
// 64-bit integers (ILP64) found at run time: numpy's, so that a Python process runs one BLAS thread
// pool instead of two that slow each other down (each keeps its threads spinning for a while after
// a call). Every sgn_X has the signature of X in <cblas.h>/<lapacke.h>.
// Implementation detail of SGDNoise: no stable API.
#ifndef SGDNOISE_BLAS_H
#define SGDNOISE_BLAS_H

#include <stddef.h>
#include <cblas.h>
#include <lapacke.h>

#define SGN_BLAS_HIDDEN __attribute__((visibility("hidden")))

SGN_BLAS_HIDDEN void sgn_cblas_daxpy(blasint n, double alpha, const double *x, blasint incx, double *y,
                                     blasint incy);
SGN_BLAS_HIDDEN double sgn_cblas_ddot(blasint n, const double *x, blasint incx, const double *y, blasint incy);
SGN_BLAS_HIDDEN double sgn_cblas_dnrm2(blasint n, const double *x, blasint incx);
SGN_BLAS_HIDDEN void sgn_cblas_dscal(blasint n, double alpha, double *x, blasint incx);
SGN_BLAS_HIDDEN void sgn_cblas_dgemv(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans, blasint m, blasint n,
                                     double alpha, const double *a, blasint lda, const double *x, blasint incx,
                                     double beta, double *y, blasint incy);
SGN_BLAS_HIDDEN void sgn_cblas_dsyr(enum CBLAS_ORDER order, enum CBLAS_UPLO uplo, blasint n, double alpha,
                                    const double *x, blasint incx, double *a, blasint lda);
SGN_BLAS_HIDDEN void sgn_cblas_dgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE transa,
                                     enum CBLAS_TRANSPOSE transb, blasint m, blasint n, blasint k, double alpha,
                                     const double *a, blasint lda, const double *b, blasint ldb, double beta,
                                     double *c, blasint ldc);
SGN_BLAS_HIDDEN void sgn_cblas_dsyrk(enum CBLAS_ORDER order, enum CBLAS_UPLO uplo, enum CBLAS_TRANSPOSE trans,
                                     blasint n, blasint k, double alpha, const double *a, blasint lda, double beta,
                                     double *c, blasint ldc);
SGN_BLAS_HIDDEN void sgn_cblas_dtrmm(enum CBLAS_ORDER order, enum CBLAS_SIDE side, enum CBLAS_UPLO uplo,
                                     enum CBLAS_TRANSPOSE transa, enum CBLAS_DIAG diag, blasint m, blasint n,
                                     double alpha, const double *a, blasint lda, double *b, blasint ldb);
/// LAPACKE_dgesv with the pivots held inside (their integer width differs between the two libraries).
SGN_BLAS_HIDDEN lapack_int sgn_LAPACKE_dgesv(int layout, lapack_int n, lapack_int nrhs, double *a, lapack_int lda,
                                             double *b, lapack_int ldb);
SGN_BLAS_HIDDEN lapack_int sgn_LAPACKE_dposv(int layout, char uplo, lapack_int n, lapack_int nrhs, double *a,
                                             lapack_int lda, double *b, lapack_int ldb);
SGN_BLAS_HIDDEN lapack_int sgn_LAPACKE_dstev(int layout, char jobz, lapack_int n, double *d, double *e, double *z,
                                             lapack_int ldz);
SGN_BLAS_HIDDEN lapack_int sgn_LAPACKE_dsyevd(int layout, char jobz, char uplo, lapack_int n, double *a,
                                              lapack_int lda, double *w);
SGN_BLAS_HIDDEN lapack_int sgn_LAPACKE_dsyevr(int layout, char jobz, char range, char uplo, lapack_int n, double *a,
                                              lapack_int lda, double vl, double vu, lapack_int il, lapack_int iu,
                                              double abstol, lapack_int *m, double *w, double *z, lapack_int ldz,
                                              lapack_int *isuppz);

/// Routes every sgn_ routine to the ILP64 OpenBLAS `library` (dlopen'ed; one already loaded in the
/// process is shared, not loaded again), whose symbols are `prefix` + the CBLAS/LAPACKE name +
/// `suffix` (numpy >= 2: "scipy_", "64_"). `library` NULL: back to the linked BLAS. Returns 0, or -1
/// with a message in `message` (the routing unchanged). Calls already running finish on the BLAS
/// they started with; a library once routed to stays loaded.
SGN_BLAS_HIDDEN int sgn_blas_route_ilp64(const char *library, const char *prefix, const char *suffix,
                                         char *message, size_t capacity);

/// The path of the library the routines are routed to, "" for the linked BLAS (never NULL).
SGN_BLAS_HIDDEN const char *sgn_blas_routed_library(void);

#endif
