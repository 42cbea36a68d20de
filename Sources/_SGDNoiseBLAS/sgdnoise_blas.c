#include "sgdnoise_blas.h"
#include "tiny_products.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The ILP64 routines: CBLAS enums and LAPACKE's matrix layout stay `int`, every integer is 64-bit.
typedef int64_t i64;
typedef struct routed_blas {
    void (*daxpy)(i64, double, const double *, i64, double *, i64);
    double (*ddot)(i64, const double *, i64, const double *, i64);
    double (*dnrm2)(i64, const double *, i64);
    void (*dscal)(i64, double, double *, i64);
    void (*dgemv)(int, int, i64, i64, double, const double *, i64, const double *, i64, double, double *, i64);
    void (*dsyr)(int, int, i64, double, const double *, i64, double *, i64);
    void (*dgemm)(int, int, int, i64, i64, i64, double, const double *, i64, const double *, i64, double, double *,
                  i64);
    void (*dsyrk)(int, int, int, i64, i64, double, const double *, i64, double, double *, i64);
    void (*dtrmm)(int, int, int, int, int, i64, i64, double, const double *, i64, double *, i64);
    i64 (*dgesv)(int, i64, i64, double *, i64, i64 *, double *, i64);
    i64 (*dposv)(int, char, i64, i64, double *, i64, double *, i64);
    i64 (*dstev)(int, char, i64, double *, double *, double *, i64);
    i64 (*dsyevd)(int, char, char, i64, double *, i64, double *);
    i64 (*dsyevr)(int, char, char, char, i64, double *, i64, double, double, i64, i64, double, i64 *, double *,
                  double *, i64, i64 *);
    char path[];
} routed_blas;

// NULL: the linked BLAS. A table, once published, is never freed (a call may still be using it).
static _Atomic(const routed_blas *) routed = NULL;

static inline const routed_blas *current(void) { return atomic_load_explicit(&routed, memory_order_acquire); }

void sgn_cblas_daxpy(blasint n, double alpha, const double *x, blasint incx, double *y, blasint incy) {
    const routed_blas *r = current();
    if (r) r->daxpy(n, alpha, x, incx, y, incy);
    else cblas_daxpy(n, alpha, x, incx, y, incy);
}

double sgn_cblas_ddot(blasint n, const double *x, blasint incx, const double *y, blasint incy) {
    const routed_blas *r = current();
    return r ? r->ddot(n, x, incx, y, incy) : cblas_ddot(n, x, incx, y, incy);
}

double sgn_cblas_dnrm2(blasint n, const double *x, blasint incx) {
    const routed_blas *r = current();
    return r ? r->dnrm2(n, x, incx) : cblas_dnrm2(n, x, incx);
}

void sgn_cblas_dscal(blasint n, double alpha, double *x, blasint incx) {
    const routed_blas *r = current();
    if (r) r->dscal(n, alpha, x, incx);
    else cblas_dscal(n, alpha, x, incx);
}

void sgn_cblas_dgemv(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans, blasint m, blasint n, double alpha,
                     const double *a, blasint lda, const double *x, blasint incx, double beta, double *y,
                     blasint incy) {
    if (order == CblasRowMajor && sgn_tiny_dgemv(trans != CblasNoTrans, m, n, alpha, a, lda, x, incx, beta, y, incy))
        return;
    const routed_blas *r = current();
    if (r) r->dgemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
    else cblas_dgemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

void sgn_cblas_dsyr(enum CBLAS_ORDER order, enum CBLAS_UPLO uplo, blasint n, double alpha, const double *x,
                    blasint incx, double *a, blasint lda) {
    const routed_blas *r = current();
    if (r) r->dsyr(order, uplo, n, alpha, x, incx, a, lda);
    else cblas_dsyr(order, uplo, n, alpha, x, incx, a, lda);
}

void sgn_cblas_dgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE transa, enum CBLAS_TRANSPOSE transb, blasint m,
                     blasint n, blasint k, double alpha, const double *a, blasint lda, const double *b, blasint ldb,
                     double beta, double *c, blasint ldc) {
    if (order == CblasRowMajor &&
        sgn_tiny_dgemm(transa != CblasNoTrans, transb != CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc))
        return;
    const routed_blas *r = current();
    if (r) r->dgemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else cblas_dgemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void sgn_cblas_dsyrk(enum CBLAS_ORDER order, enum CBLAS_UPLO uplo, enum CBLAS_TRANSPOSE trans, blasint n, blasint k,
                     double alpha, const double *a, blasint lda, double beta, double *c, blasint ldc) {
    if (order == CblasRowMajor && sgn_tiny_dsyrk(uplo == CblasUpper, trans != CblasNoTrans, n, k, alpha, a, lda, beta, c,
                                                 ldc))
        return;
    const routed_blas *r = current();
    if (r) r->dsyrk(order, uplo, trans, n, k, alpha, a, lda, beta, c, ldc);
    else cblas_dsyrk(order, uplo, trans, n, k, alpha, a, lda, beta, c, ldc);
}

void sgn_cblas_dtrmm(enum CBLAS_ORDER order, enum CBLAS_SIDE side, enum CBLAS_UPLO uplo, enum CBLAS_TRANSPOSE transa,
                     enum CBLAS_DIAG diag, blasint m, blasint n, double alpha, const double *a, blasint lda, double *b,
                     blasint ldb) {
    if (order == CblasRowMajor && sgn_tiny_dtrmm(side == CblasLeft, uplo == CblasUpper, transa != CblasNoTrans,
                                                 diag == CblasUnit, m, n, alpha, a, lda, b, ldb))
        return;
    const routed_blas *r = current();
    if (r) r->dtrmm(order, side, uplo, transa, diag, m, n, alpha, a, lda, b, ldb);
    else cblas_dtrmm(order, side, uplo, transa, diag, m, n, alpha, a, lda, b, ldb);
}

lapack_int sgn_LAPACKE_dgesv(int layout, lapack_int n, lapack_int nrhs, double *a, lapack_int lda, double *b,
                             lapack_int ldb) {
    // The pivots in the routed library's integers (64-bit) or the linked one's (lapack_int): an
    // i64 array is large enough for either. -1010 is LAPACKE's out-of-memory code.
    i64 *ipiv = malloc((n > 0 ? (size_t)n : 1) * sizeof *ipiv);
    if (!ipiv) return -1010;
    const routed_blas *r = current();
    lapack_int info = r ? (lapack_int)r->dgesv(layout, n, nrhs, a, lda, ipiv, b, ldb)
                        : LAPACKE_dgesv(layout, n, nrhs, a, lda, (lapack_int *)ipiv, b, ldb);
    free(ipiv);
    return info;
}

lapack_int sgn_LAPACKE_dposv(int layout, char uplo, lapack_int n, lapack_int nrhs, double *a, lapack_int lda,
                             double *b, lapack_int ldb) {
    const routed_blas *r = current();
    return r ? (lapack_int)r->dposv(layout, uplo, n, nrhs, a, lda, b, ldb)
             : LAPACKE_dposv(layout, uplo, n, nrhs, a, lda, b, ldb);
}

lapack_int sgn_LAPACKE_dstev(int layout, char jobz, lapack_int n, double *d, double *e, double *z, lapack_int ldz) {
    const routed_blas *r = current();
    return r ? (lapack_int)r->dstev(layout, jobz, n, d, e, z, ldz) : LAPACKE_dstev(layout, jobz, n, d, e, z, ldz);
}

lapack_int sgn_LAPACKE_dsyevd(int layout, char jobz, char uplo, lapack_int n, double *a, lapack_int lda,
                              double *w) {
    const routed_blas *r = current();
    return r ? (lapack_int)r->dsyevd(layout, jobz, uplo, n, a, lda, w)
             : LAPACKE_dsyevd(layout, jobz, uplo, n, a, lda, w);
}

lapack_int sgn_LAPACKE_dsyevr(int layout, char jobz, char range, char uplo, lapack_int n, double *a, lapack_int lda,
                              double vl, double vu, lapack_int il, lapack_int iu, double abstol, lapack_int *m,
                              double *w, double *z, lapack_int ldz, lapack_int *isuppz) {
    const routed_blas *r = current();
    if (!r) return LAPACKE_dsyevr(layout, jobz, range, uplo, n, a, lda, vl, vu, il, iu, abstol, m, w, z, ldz, isuppz);
    // isuppz holds 2·max(1, m) integers, m ≤ n: convert through a 64-bit copy.
    size_t count = 2 * (size_t)(n > 1 ? n : 1);
    i64 *support = malloc(count * sizeof *support);
    if (!support) return LAPACK_WORK_MEMORY_ERROR;
    i64 found = 0;
    i64 info = r->dsyevr(layout, jobz, range, uplo, n, a, lda, vl, vu, il, iu, abstol, &found, w, z, ldz, support);
    *m = (lapack_int)found;
    if (isuppz) {
        size_t used = 2 * (size_t)(found > 1 ? found : 1);
        for (size_t i = 0; i < used && i < count; i++) isuppz[i] = (lapack_int)support[i];
    }
    free(support);
    return (lapack_int)info;
}

int sgn_blas_route_ilp64(const char *library, const char *prefix, const char *suffix, char *message,
                         size_t capacity) {
    if (!library) {
        atomic_store_explicit(&routed, NULL, memory_order_release);
        return 0;
    }
    if (!*library) {  // dlopen("") would be the main program
        snprintf(message, capacity, "the library path is empty");
        return -1;
    }
    prefix = prefix ? prefix : "";
    suffix = suffix ? suffix : "";
    // RTLD_LOCAL: the library's symbols stay out of the global scope, where they could bind other
    // objects' references. A library already loaded (numpy's) is found by its file and shared.
    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        snprintf(message, capacity, "cannot load %s: %s", library, why ? why : "unknown error");
        return -1;
    }
    size_t length = strlen(library);
    routed_blas *table = calloc(1, sizeof *table + length + 1);
    if (!table) {
        snprintf(message, capacity, "out of memory");
        dlclose(handle);
        return -1;
    }
    memcpy(table->path, library, length + 1);
    static const char *const names[] = {
        "cblas_daxpy", "cblas_ddot", "cblas_dnrm2", "cblas_dscal", "cblas_dgemv", "cblas_dsyr",
        "cblas_dgemm", "cblas_dsyrk", "cblas_dtrmm", "LAPACKE_dgesv", "LAPACKE_dposv", "LAPACKE_dstev", "LAPACKE_dsyevd",
        "LAPACKE_dsyevr",
    };
    void **slots[] = {
        (void **)&table->daxpy, (void **)&table->ddot, (void **)&table->dnrm2, (void **)&table->dscal,
        (void **)&table->dgemv, (void **)&table->dsyr, (void **)&table->dgemm, (void **)&table->dsyrk,
        (void **)&table->dtrmm,
        (void **)&table->dgesv, (void **)&table->dposv, (void **)&table->dstev, (void **)&table->dsyevd, (void **)&table->dsyevr,
    };
    _Static_assert(sizeof names / sizeof *names == sizeof slots / sizeof *slots, "one slot a routine");
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char symbol[256];
        if ((size_t)snprintf(symbol, sizeof symbol, "%s%s%s", prefix, names[i], suffix) >= sizeof symbol ||
            !(*slots[i] = dlsym(handle, symbol))) {
            snprintf(message, capacity, "%s has no routine %s%s%s", library, prefix, names[i], suffix);
            free(table);
            dlclose(handle);
            return -1;
        }
    }
    atomic_store_explicit(&routed, table, memory_order_release);  // the table and the handle stay
    return 0;
}

const char *sgn_blas_routed_library(void) {
    const routed_blas *r = current();
    return r ? r->path : "";
}
