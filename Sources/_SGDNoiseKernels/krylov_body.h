// The Lanczos steps' fused vector kernels (double only), written once and compiled once per
// instruction set: kernels.c includes this file with SGN_KTAG (a name suffix such as avx2) defined,
// inside a region whose functions get the target's attribute. A Lanczos step over vectors of P
// doubles is memory-bound: these kernels read each vector once where separate dot products,
// AXPYs and matrix-vector products read it several times, and they run on the calling thread
// (the vectors' few passes gain little from a second core and lose much to a thread hand-off when
// the machine is busy). Columns go in chunks of SGN_KRYLOV_CHUNK: each chunk of w is formed, kept
// in the L1 cache, and projected on every row before the next chunk; every sum is in double, in an
// order fixed by the sizes alone.

#define SGN_KCAT_(a, b) a##_##b
#define SGN_KCAT(a, b) SGN_KCAT_(a, b)
#define SGN_KFN(name) SGN_KCAT(name, SGN_KTAG)

static void SGN_KFN(lanczos_dots)(ptrdiff_t n, const double *h, const double *v, const double *u, double *out) {
    v4d hh0 = {0}, hh1 = {0}, vh0 = {0}, vh1 = {0}, vu0 = {0}, vu1 = {0};
    const ptrdiff_t body = n / 8 * 8;
    ptrdiff_t j;
    if (u) {
        for (j = 0; j < body; j += 8) {
            const v4d h0 = sgn_load4(h + j), h1 = sgn_load4(h + j + 4);
            const v4d v0 = sgn_load4(v + j), v1 = sgn_load4(v + j + 4);
            hh0 = hh0 + h0 * h0;
            hh1 = hh1 + h1 * h1;
            vh0 = vh0 + v0 * h0;
            vh1 = vh1 + v1 * h1;
            vu0 = vu0 + v0 * sgn_load4(u + j);
            vu1 = vu1 + v1 * sgn_load4(u + j + 4);
        }
    } else {
        for (j = 0; j < body; j += 8) {
            const v4d h0 = sgn_load4(h + j), h1 = sgn_load4(h + j + 4);
            hh0 = hh0 + h0 * h0;
            hh1 = hh1 + h1 * h1;
            vh0 = vh0 + sgn_load4(v + j) * h0;
            vh1 = vh1 + sgn_load4(v + j + 4) * h1;
        }
    }
    double shh = sgn_sum4(hh0 + hh1), svh = sgn_sum4(vh0 + vh1), svu = sgn_sum4(vu0 + vu1);
    for (; j < n; j++) {
        shh += h[j] * h[j];
        svh += v[j] * h[j];
        if (u) svu += v[j] * u[j];
    }
    out[0] = shh;
    out[1] = svh;
    out[2] = svu;
}

// Σ_j a[j] b[j] over one chunk (len ≤ SGN_KRYLOV_CHUNK), four accumulators.
#define SGN_KCHUNK_DOT(result, a, b, len)                                                    \
    do {                                                                                     \
        v4d d0_ = {0}, d1_ = {0};                                                            \
        const ptrdiff_t body_ = (len) / 8 * 8;                                               \
        ptrdiff_t q_;                                                                        \
        for (q_ = 0; q_ < body_; q_ += 8) {                                                  \
            d0_ = d0_ + sgn_load4((a) + q_) * sgn_load4((b) + q_);                           \
            d1_ = d1_ + sgn_load4((a) + q_ + 4) * sgn_load4((b) + q_ + 4);                   \
        }                                                                                    \
        double s_ = sgn_sum4(d0_ + d1_);                                                     \
        for (; q_ < (len); q_++) s_ += (a)[q_] * (b)[q_];                                    \
        (result) = s_;                                                                       \
    } while (0)

static void SGN_KFN(combine_project)(ptrdiff_t n, const double *h, ptrdiff_t terms, const double *const *x,
                                     const double *a, ptrdiff_t rows, const double *r, ptrdiff_t ld, double *w,
                                     double *c, double *ww) {
    for (ptrdiff_t i = 0; i < rows; i++) c[i] = 0;
    double squares = 0;
    for (ptrdiff_t t0 = 0; t0 < n; t0 += SGN_KRYLOV_CHUNK) {
        const ptrdiff_t len = n - t0 < SGN_KRYLOV_CHUNK ? n - t0 : SGN_KRYLOV_CHUNK;
        const ptrdiff_t body = len / 4 * 4;
        double *wt = w + t0;
        const double *ht = h + t0;
        ptrdiff_t q;
        if (terms == 0) {
            memcpy(wt, ht, (size_t)len * sizeof(double));
        } else {
            // The first term with the copy of h, the others added into the chunk (in L1).
            const double *x0 = x[0] + t0;
            const v4d a0 = sgn_splat4(-a[0]);
            for (q = 0; q < body; q += 4) sgn_store4(wt + q, sgn_load4(ht + q) + a0 * sgn_load4(x0 + q));
            for (; q < len; q++) wt[q] = ht[q] + (-a[0]) * x0[q];
            for (ptrdiff_t s = 1; s < terms; s++) {
                const double *xs = x[s] + t0;
                const v4d as = sgn_splat4(-a[s]);
                for (q = 0; q < body; q += 4) sgn_store4(wt + q, sgn_load4(wt + q) + as * sgn_load4(xs + q));
                for (; q < len; q++) wt[q] = wt[q] + (-a[s]) * xs[q];
            }
        }
        double s;
        SGN_KCHUNK_DOT(s, wt, wt, len);
        squares += s;
        for (ptrdiff_t i = 0; i < rows; i++) {
            const double *ri = r + i * ld + t0;
            SGN_KCHUNK_DOT(s, ri, wt, len);
            c[i] += s;
        }
    }
    *ww = squares;
}

static void SGN_KFN(subtract_scale)(ptrdiff_t n, const double *w, ptrdiff_t rows, const double *r, ptrdiff_t ld,
                                    const double *c, double scale, double *out) {
    double tile[SGN_KRYLOV_CHUNK];
    const v4d f = sgn_splat4(scale);
    for (ptrdiff_t t0 = 0; t0 < n; t0 += SGN_KRYLOV_CHUNK) {
        const ptrdiff_t len = n - t0 < SGN_KRYLOV_CHUNK ? n - t0 : SGN_KRYLOV_CHUNK;
        const ptrdiff_t body = len / 4 * 4;
        ptrdiff_t q;
        memcpy(tile, w + t0, (size_t)len * sizeof(double));
        for (ptrdiff_t i = 0; i < rows; i++) {
            const double *ri = r + i * ld + t0;
            const v4d ci = sgn_splat4(-c[i]);
            for (q = 0; q < body; q += 4) sgn_store4(tile + q, sgn_load4(tile + q) + ci * sgn_load4(ri + q));
            for (; q < len; q++) tile[q] = tile[q] + (-c[i]) * ri[q];
        }
        double *o = out + t0;
        for (q = 0; q < body; q += 4) sgn_store4(o + q, sgn_load4(tile + q) * f);
        for (; q < len; q++) o[q] = tile[q] * scale;
    }
}

#undef SGN_KCHUNK_DOT
