// The Lanczos steps' fused vector kernels (double only), written once and compiled once per
// instruction set: kernels.c includes this file with SGN_KTAG (a name suffix such as avx2) defined,
// inside a region whose functions get the target's attribute. A Lanczos step over vectors of P
// doubles is memory-bound: these kernels read each vector once where separate dot products,
// AXPYs and matrix-vector products read it several times. Each call covers one column range;
// the Swift callers (LongVectors.swift) run eight fixed ranges on the cores from 2¹⁷ entries on,
// one range below. Columns go in chunks of SGN_KRYLOV_CHUNK: each chunk of w is formed, kept
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

// Adds r_i·x_t to c[i] for the `rows` rows over one chunk (x_t = x + t0, len entries, in L1) and
// returns x_t·x_t.
static inline double SGN_KFN(project_chunk)(const double *xt, ptrdiff_t len, ptrdiff_t rows, const double *r,
                                            ptrdiff_t ld, ptrdiff_t t0, double *c) {
    double s, squares;
    SGN_KCHUNK_DOT(squares, xt, xt, len);
    for (ptrdiff_t i = 0; i < rows; i++) {
        const double *ri = r + i * ld + t0;
        SGN_KCHUNK_DOT(s, ri, xt, len);
        c[i] += s;
    }
    return squares;
}

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
        squares += SGN_KFN(project_chunk)(wt, len, rows, r, ld, t0, c);
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

// c[i] = r_i·x for the `rows` rows r_i = r + i·ld, and *xx = x·x, in one pass over x (each chunk of
// x stays in the L1 cache while the rows stream past it).
static void SGN_KFN(project_rows)(ptrdiff_t n, const double *x, ptrdiff_t rows, const double *r, ptrdiff_t ld,
                                  double *c, double *xx) {
    for (ptrdiff_t i = 0; i < rows; i++) c[i] = 0;
    double squares = 0;
    for (ptrdiff_t t0 = 0; t0 < n; t0 += SGN_KRYLOV_CHUNK) {
        const ptrdiff_t len = n - t0 < SGN_KRYLOV_CHUNK ? n - t0 : SGN_KRYLOV_CHUNK;
        squares += SGN_KFN(project_chunk)(x + t0, len, rows, r, ld, t0, c);
    }
    *xx = squares;
}

// out_o = Σ_{s < from} a[o·from + s] r_s for o < outputs (r_s = r + s·ld, out_o = out + o·ldo), chunk
// by chunk: every output's chunk is formed in `tile` (outputs · SGN_KRYLOV_CHUNK doubles) before any
// is written, so the outputs may be the input rows themselves (a thick restart in place). Four
// outputs share each load of a row.
static void SGN_KFN(combine_rows)(ptrdiff_t n, ptrdiff_t from, const double *r, ptrdiff_t ld, ptrdiff_t outputs,
                                  const double *a, double *out, ptrdiff_t ldo, double *tile) {
    for (ptrdiff_t t0 = 0; t0 < n; t0 += SGN_KRYLOV_CHUNK) {
        const ptrdiff_t len = n - t0 < SGN_KRYLOV_CHUNK ? n - t0 : SGN_KRYLOV_CHUNK;
        const ptrdiff_t body = len / 4 * 4;
        for (ptrdiff_t o = 0; o < outputs; o += 4) {
            const ptrdiff_t group = outputs - o < 4 ? outputs - o : 4;
            double *t[4];
            for (ptrdiff_t g = 0; g < 4; g++) t[g] = tile + (o + (g < group ? g : 0)) * SGN_KRYLOV_CHUNK;
            for (ptrdiff_t g = 0; g < group; g++) memset(t[g], 0, (size_t)len * sizeof(double));
            for (ptrdiff_t s = 0; s < from; s++) {
                const double *rs = r + s * ld + t0;
                // Missing outputs of a short group repeat the first with a zero coefficient.
                const double c0 = a[o * from + s];
                const double c1 = group > 1 ? a[(o + 1) * from + s] : 0;
                const double c2 = group > 2 ? a[(o + 2) * from + s] : 0;
                const double c3 = group > 3 ? a[(o + 3) * from + s] : 0;
                const v4d a0 = sgn_splat4(c0), a1 = sgn_splat4(c1), a2 = sgn_splat4(c2), a3 = sgn_splat4(c3);
                ptrdiff_t q;
                if (group == 4) {
                    for (q = 0; q < body; q += 4) {
                        const v4d x = sgn_load4(rs + q);
                        sgn_store4(t[0] + q, sgn_load4(t[0] + q) + a0 * x);
                        sgn_store4(t[1] + q, sgn_load4(t[1] + q) + a1 * x);
                        sgn_store4(t[2] + q, sgn_load4(t[2] + q) + a2 * x);
                        sgn_store4(t[3] + q, sgn_load4(t[3] + q) + a3 * x);
                    }
                    for (; q < len; q++) {
                        t[0][q] += c0 * rs[q];
                        t[1][q] += c1 * rs[q];
                        t[2][q] += c2 * rs[q];
                        t[3][q] += c3 * rs[q];
                    }
                } else {
                    const double cs[3] = {c0, c1, c2};
                    for (ptrdiff_t g = 0; g < group; g++) {
                        const v4d ag = sgn_splat4(cs[g]);
                        for (q = 0; q < body; q += 4) sgn_store4(t[g] + q, sgn_load4(t[g] + q) + ag * sgn_load4(rs + q));
                        for (; q < len; q++) t[g][q] += cs[g] * rs[q];
                    }
                }
            }
        }
        for (ptrdiff_t o = 0; o < outputs; o++) memcpy(out + o * ldo + t0, tile + o * SGN_KRYLOV_CHUNK, (size_t)len * sizeof(double));
    }
}

#undef SGN_KCHUNK_DOT
