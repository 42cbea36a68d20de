// The memory-bound kernels of SGDNoise's noise operator and accumulator, in C so that they can be
// compiled twice: for the baseline x86-64 target (SSE2) and for AVX2 + FMA, chosen once at run time
// (see kernels.c for the dispatch rule and SGDNOISE_KERNELS). Every sum is in double; float rows
// are widened to double as they are loaded.
// Implementation detail of SGDNoise: no stable API, no symbol exported from libsgdnoise.so.
#ifndef SGDNOISE_KERNELS_H
#define SGDNOISE_KERNELS_H

#include <stddef.h>

#define SGN_KERNELS_HIDDEN __attribute__((visibility("hidden")))

/// Columns per tile of the one-vector kernels: 32768 columns of a float row are 128 KiB of
/// contiguous memory (long enough for the hardware prefetchers), and the matching 256 KiB of the
/// double vector stay in the L2 cache while every row passes over them. Column ranges handed to
/// the kernels by parallel callers are whole tiles, so that the result does not depend on them.
#ifndef SGN_KERNELS_TILE_COLUMNS
#define SGN_KERNELS_TILE_COLUMNS 32768
#endif

/// Columns per chunk of the long-vector kernels: 8192 doubles (64 KiB) of w stay in the L2 cache
/// while every row is projected on them, and each row is read in runs of 64 KiB, long enough for
/// the hardware prefetchers. Measured on this project's 2-core AMD EPYC machine (projections on 18
/// rows of 10⁶ doubles, two threads): 26 GB/s against 18 GB/s with 512-column (4 KiB) chunks
/// that stayed in L1; 4096 and 16384 columns did about as well as 8192.
#ifndef SGN_KRYLOV_CHUNK
#define SGN_KRYLOV_CHUNK 8192
#endif

/// One implementation of every kernel. Row-major N × D gradients `g` (leading dimension d), the
/// column mean `mean` (D doubles).
typedef struct sgn_kernels {
    /// The name of the implementation: "baseline" or "avx2".
    const char *name;
    /// y_i += Σ_{j ∈ [lo, hi)} (g_ij − mean_j) x_j for every row i < n (G_c x over a column range),
    /// tile by tile: the centring Σ_j mean_j x_j is subtracted once per tile and row.
    void (*centred_dot_f32)(const float *g, ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo, ptrdiff_t hi,
                            const double *mean, const double *x, double *y);
    void (*centred_dot_f64)(const double *g, ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo, ptrdiff_t hi,
                            const double *mean, const double *x, double *y);
    /// w_j += Σ_{i < n} u_i (g_ij − mean_j) for j ∈ [lo, hi) (G_cᵀu over a column range), with
    /// u_sum = Σ_i u_i: eight rows are added into each load of w, then mean_j u_sum subtracted.
    void (*centred_axpy_f32)(const float *g, ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo, ptrdiff_t hi,
                             const double *mean, const double *u, double u_sum, double *w);
    void (*centred_axpy_f64)(const double *g, ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo, ptrdiff_t hi,
                             const double *mean, const double *u, double u_sum, double *w);
    /// sum_j += Σ_{i < n} g_ij and, unless `squares` is NULL, squares_j += Σ_i g_ij² (j < d).
    void (*column_moments_f32)(const float *g, ptrdiff_t n, ptrdiff_t d, double *sum, double *squares);
    void (*column_moments_f64)(const double *g, ptrdiff_t n, ptrdiff_t d, double *sum, double *squares);
    /// out_ij = g_ij − mean_j for i < n, j < d (out row-major with leading dimension d).
    void (*centre_rows_f32)(const float *g, ptrdiff_t n, ptrdiff_t d, const double *mean, double *out);
    void (*centre_rows_f64)(const double *g, ptrdiff_t n, ptrdiff_t d, const double *mean, double *out);

    // The Lanczos steps' fused kernels (vectors of n doubles; see krylov_body.h).
    /// out[0] = h·h, out[1] = v·h, out[2] = v·u (0 when u is NULL), in one pass.
    void (*lanczos_dots)(ptrdiff_t n, const double *h, const double *v, const double *u, double *out);
    /// w = h − Σ_{s < terms} a[s] x[s]; c[i] = r_i·w for the `rows` rows r_i = r + i·ld; *ww = w·w:
    /// one pass over h, the x[s] and the rows (w must overlap none of them).
    void (*combine_project)(ptrdiff_t n, const double *h, ptrdiff_t terms, const double *const *x, const double *a,
                            ptrdiff_t rows, const double *r, ptrdiff_t ld, double *w, double *c, double *ww);
    /// out = (w − Σ_{i < rows} c[i] r_i) · scale with r_i = r + i·ld, in one pass (out may be w).
    void (*subtract_scale)(ptrdiff_t n, const double *w, ptrdiff_t rows, const double *r, ptrdiff_t ld,
                           const double *c, double scale, double *out);
    /// c[i] = r_i·x for the `rows` rows r_i = r + i·ld, and *xx = x·x, in one pass over x.
    void (*project_rows)(ptrdiff_t n, const double *x, ptrdiff_t rows, const double *r, ptrdiff_t ld, double *c,
                         double *xx);
    /// out_o = Σ_{s < from} a[o·from + s] r_s (r_s = r + s·ld) into out + o·ldo for o < outputs; `tile`
    /// holds outputs · min(n, SGN_KRYLOV_CHUNK) doubles of workspace. The outputs may be the input rows.
    void (*combine_rows)(ptrdiff_t n, ptrdiff_t from, const double *r, ptrdiff_t ld, ptrdiff_t outputs,
                         const double *a, double *out, ptrdiff_t ldo, double *tile);
} sgn_kernels;

/// The implementation in use, chosen once per process (see kernels.c).
SGN_KERNELS_HIDDEN const sgn_kernels *sgn_kernels_active(void);
/// The baseline implementation (any x86-64, or any other architecture).
SGN_KERNELS_HIDDEN const sgn_kernels *sgn_kernels_baseline(void);
/// The AVX2 + FMA implementation, or NULL where the processor (or the operating system) lacks it.
SGN_KERNELS_HIDDEN const sgn_kernels *sgn_kernels_avx2(void);

#endif
