// The Lanczos steps' fused vector kernels (double only), written once and compiled once per
// instruction set: kernels.c includes this file with SGN_KTAG (a name suffix such as avx2) defined,
// inside a region whose functions get the target's attribute. A Lanczos step over vectors of P
// doubles is memory-bound: these kernels read each vector once where separate dot products,
// AXPYs and matrix-vector products read it several times. Each call covers one column range;
// the Swift callers (LongVectors.swift) run eight fixed ranges on the cores from 2¹⁷ entries on,
// one range below. Columns go in chunks of SGN_KRYLOV_CHUNK: each chunk of w is formed, kept
// in the L2 cache, and projected on every row before the next chunk; every sum is in double, in an
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

// Adds r_i·x_t to c[i] for the `rows` rows over one chunk (x_t = x + t0, len entries, in cache) and
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
            // The first term with the copy of h, the others added into the chunk (in cache).
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
    if (rows == 0) {  // a plain scaling: straight from w to out (which may be w), no tile
        const ptrdiff_t body = n / 4 * 4;
        ptrdiff_t q;
        for (q = 0; q < body; q += 4) sgn_store4(out + q, sgn_load4(w + q) * f);
        for (; q < n; q++) out[q] = w[q] * scale;
        return;
    }
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
// x stays in the cache while the rows stream past it).
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
// by chunk: every output's chunk is formed in `tile` (outputs · min(n, SGN_KRYLOV_CHUNK) doubles)
// before any is written, so the outputs may be the input rows themselves (a thick restart in place). The
// arithmetic (outputs · from multiply-adds per column) is the bound, not memory: each sub-block of
// SGN_COMBINE_BLOCK columns of the `from` rows stays in the L2 cache while groups of four outputs
// sweep it, eight columns at a time in eight registers, each row's load shared by four outputs.
#ifndef SGN_COMBINE_BLOCK
#define SGN_COMBINE_BLOCK 512
#endif
static void SGN_KFN(combine_rows)(ptrdiff_t n, ptrdiff_t from, const double *r, ptrdiff_t ld, ptrdiff_t outputs,
                                  const double *a, double *out, ptrdiff_t ldo, double *tile) {
    const ptrdiff_t stride = n < SGN_KRYLOV_CHUNK ? n : SGN_KRYLOV_CHUNK;  // of the tile's rows
    for (ptrdiff_t t0 = 0; t0 < n; t0 += SGN_KRYLOV_CHUNK) {
        const ptrdiff_t len = n - t0 < SGN_KRYLOV_CHUNK ? n - t0 : SGN_KRYLOV_CHUNK;
        for (ptrdiff_t b0 = 0; b0 < len; b0 += SGN_COMBINE_BLOCK) {
            const ptrdiff_t blen = len - b0 < SGN_COMBINE_BLOCK ? len - b0 : SGN_COMBINE_BLOCK;
            const ptrdiff_t body = blen / 8 * 8;
            const double *rb = r + t0 + b0;  // row s of the sub-block at rb + s·ld
            ptrdiff_t o = 0;
            for (; o + 4 <= outputs; o += 4) {
                const double *a0 = a + o * from, *a1 = a0 + from, *a2 = a1 + from, *a3 = a2 + from;
                double *u0 = tile + o * stride + b0, *u1 = u0 + stride;
                double *u2 = u1 + stride, *u3 = u2 + stride;
                ptrdiff_t q = 0;
                for (; q < body; q += 8) {
                    v4d p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0}, q0 = {0}, q1 = {0}, q2 = {0}, q3 = {0};
                    for (ptrdiff_t t = 0; t < from; t++) {
                        const double *x = rb + t * ld + q;
                        const v4d x0 = sgn_load4(x), x1 = sgn_load4(x + 4);
                        const v4d c0 = sgn_splat4(a0[t]), c1 = sgn_splat4(a1[t]);
                        const v4d c2 = sgn_splat4(a2[t]), c3 = sgn_splat4(a3[t]);
                        p0 = p0 + c0 * x0;
                        q0 = q0 + c0 * x1;
                        p1 = p1 + c1 * x0;
                        q1 = q1 + c1 * x1;
                        p2 = p2 + c2 * x0;
                        q2 = q2 + c2 * x1;
                        p3 = p3 + c3 * x0;
                        q3 = q3 + c3 * x1;
                    }
                    sgn_store4(u0 + q, p0);
                    sgn_store4(u0 + q + 4, q0);
                    sgn_store4(u1 + q, p1);
                    sgn_store4(u1 + q + 4, q1);
                    sgn_store4(u2 + q, p2);
                    sgn_store4(u2 + q + 4, q2);
                    sgn_store4(u3 + q, p3);
                    sgn_store4(u3 + q + 4, q3);
                }
                for (; q < blen; q++) {
                    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                    for (ptrdiff_t t = 0; t < from; t++) {
                        const double x = rb[t * ld + q];
                        s0 += a0[t] * x;
                        s1 += a1[t] * x;
                        s2 += a2[t] * x;
                        s3 += a3[t] * x;
                    }
                    u0[q] = s0;
                    u1[q] = s1;
                    u2[q] = s2;
                    u3[q] = s3;
                }
            }
            for (; o < outputs; o++) {  // the last outputs, one at a time
                const double *ao = a + o * from;
                double *uo = tile + o * stride + b0;
                ptrdiff_t q = 0;
                for (; q < body; q += 8) {
                    v4d p0 = {0}, q0 = {0};
                    for (ptrdiff_t t = 0; t < from; t++) {
                        const double *x = rb + t * ld + q;
                        const v4d c0 = sgn_splat4(ao[t]);
                        p0 = p0 + c0 * sgn_load4(x);
                        q0 = q0 + c0 * sgn_load4(x + 4);
                    }
                    sgn_store4(uo + q, p0);
                    sgn_store4(uo + q + 4, q0);
                }
                for (; q < blen; q++) {
                    double s0 = 0;
                    for (ptrdiff_t t = 0; t < from; t++) s0 += ao[t] * rb[t * ld + q];
                    uo[q] = s0;
                }
            }
        }
        for (ptrdiff_t o = 0; o < outputs; o++) memcpy(out + o * ldo + t0, tile + o * stride, (size_t)len * sizeof(double));
    }
}

#undef SGN_KCHUNK_DOT
