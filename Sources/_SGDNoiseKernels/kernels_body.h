// The kernels of kernels.c, written once and compiled once per instruction set and gradient type:
// kernels.c includes this file with SGN_T (float or double), SGN_TAG (a name suffix such as
// f32_avx2) and SGN_WIDEN4(p) (four entries at p as a v4d) defined, inside a region whose
// functions get the target's attribute. Vectors are GCC/Clang vector extensions, so that one text
// serves both targets: four doubles are one AVX register or two SSE2 registers, and with
// FP_CONTRACT on, `a + b * c` becomes an FMA where the target has one (and stays a multiply and an
// add where it has not).

#define SGN_CAT_(a, b) a##_##b
#define SGN_CAT(a, b) SGN_CAT_(a, b)
#define SGN_FN(name) SGN_CAT(name, SGN_TAG)
// Entries of a row that lie SGN_PREFETCH_BYTES ahead of the current column.
#define SGN_AHEAD ((ptrdiff_t)(SGN_PREFETCH_BYTES / sizeof(SGN_T)))

static void SGN_FN(centred_dot)(const SGN_T *g, ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo, ptrdiff_t hi,
                                const double *mean, const double *x, double *y) {
    for (ptrdiff_t t0 = lo; t0 < hi; t0 += SGN_KERNELS_TILE_COLUMNS) {
        const ptrdiff_t t1 = hi - t0 < SGN_KERNELS_TILE_COLUMNS ? hi : t0 + SGN_KERNELS_TILE_COLUMNS;
        const ptrdiff_t body = t0 + (t1 - t0) / 8 * 8;
        // Σ_j mean_j x_j over the tile, subtracted from every row's tile sum.
        v4d m0 = {0}, m1 = {0};
        ptrdiff_t j;
        for (j = t0; j < body; j += 8) {
            m0 = m0 + sgn_load4(mean + j) * sgn_load4(x + j);
            m1 = m1 + sgn_load4(mean + j + 4) * sgn_load4(x + j + 4);
        }
        double centring = sgn_sum4(m0 + m1);
        for (; j < t1; j++) centring += mean[j] * x[j];

        ptrdiff_t i = 0;
        for (; i + 4 <= n; i += 4) {  // four rows share each load of x
            const SGN_T *r0 = g + i * d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;
            v4d a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
            for (j = t0; j < body; j += 8) {
                SGN_PREFETCH(r0 + j + SGN_AHEAD);
                SGN_PREFETCH(r1 + j + SGN_AHEAD);
                SGN_PREFETCH(r2 + j + SGN_AHEAD);
                SGN_PREFETCH(r3 + j + SGN_AHEAD);
                const v4d xl = sgn_load4(x + j), xh = sgn_load4(x + j + 4);
                a0 = a0 + SGN_WIDEN4(r0 + j) * xl;
                b0 = b0 + SGN_WIDEN4(r0 + j + 4) * xh;
                a1 = a1 + SGN_WIDEN4(r1 + j) * xl;
                b1 = b1 + SGN_WIDEN4(r1 + j + 4) * xh;
                a2 = a2 + SGN_WIDEN4(r2 + j) * xl;
                b2 = b2 + SGN_WIDEN4(r2 + j + 4) * xh;
                a3 = a3 + SGN_WIDEN4(r3 + j) * xl;
                b3 = b3 + SGN_WIDEN4(r3 + j + 4) * xh;
            }
            double s0 = sgn_sum4(a0 + b0), s1 = sgn_sum4(a1 + b1), s2 = sgn_sum4(a2 + b2), s3 = sgn_sum4(a3 + b3);
            for (; j < t1; j++) {
                const double v = x[j];
                s0 += (double)r0[j] * v;
                s1 += (double)r1[j] * v;
                s2 += (double)r2[j] * v;
                s3 += (double)r3[j] * v;
            }
            y[i] += s0 - centring;
            y[i + 1] += s1 - centring;
            y[i + 2] += s2 - centring;
            y[i + 3] += s3 - centring;
        }
        for (; i < n; i++) {
            const SGN_T *r = g + i * d;
            v4d a = {0}, b = {0};
            for (j = t0; j < body; j += 8) {
                SGN_PREFETCH(r + j + SGN_AHEAD);
                a = a + SGN_WIDEN4(r + j) * sgn_load4(x + j);
                b = b + SGN_WIDEN4(r + j + 4) * sgn_load4(x + j + 4);
            }
            double s = sgn_sum4(a + b);
            for (; j < t1; j++) s += (double)r[j] * x[j];
            y[i] += s - centring;
        }
    }
}

static void SGN_FN(centred_axpy)(const SGN_T *g, ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo, ptrdiff_t hi,
                                 const double *mean, const double *u, double u_sum, double *w) {
    for (ptrdiff_t t0 = lo; t0 < hi; t0 += SGN_KERNELS_TILE_COLUMNS) {
        const ptrdiff_t t1 = hi - t0 < SGN_KERNELS_TILE_COLUMNS ? hi : t0 + SGN_KERNELS_TILE_COLUMNS;
        const ptrdiff_t body = t0 + (t1 - t0) / 4 * 4;
        ptrdiff_t i = 0;
        for (; i + 8 <= n; i += 8) {  // eight rows added into each load of w
            const SGN_T *r0 = g + i * d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;
            const SGN_T *r4 = r3 + d, *r5 = r4 + d, *r6 = r5 + d, *r7 = r6 + d;
            const v4d u0 = sgn_splat4(u[i]), u1 = sgn_splat4(u[i + 1]), u2 = sgn_splat4(u[i + 2]),
                      u3 = sgn_splat4(u[i + 3]), u4 = sgn_splat4(u[i + 4]), u5 = sgn_splat4(u[i + 5]),
                      u6 = sgn_splat4(u[i + 6]), u7 = sgn_splat4(u[i + 7]);
            ptrdiff_t j;
            for (j = t0; j < body; j += 4) {
                SGN_PREFETCH(r0 + j + SGN_AHEAD);
                SGN_PREFETCH(r1 + j + SGN_AHEAD);
                SGN_PREFETCH(r2 + j + SGN_AHEAD);
                SGN_PREFETCH(r3 + j + SGN_AHEAD);
                SGN_PREFETCH(r4 + j + SGN_AHEAD);
                SGN_PREFETCH(r5 + j + SGN_AHEAD);
                SGN_PREFETCH(r6 + j + SGN_AHEAD);
                SGN_PREFETCH(r7 + j + SGN_AHEAD);
                // Two independent chains of four products each.
                v4d a = sgn_load4(w + j), b = {0};
                a = a + SGN_WIDEN4(r0 + j) * u0;
                b = b + SGN_WIDEN4(r1 + j) * u1;
                a = a + SGN_WIDEN4(r2 + j) * u2;
                b = b + SGN_WIDEN4(r3 + j) * u3;
                a = a + SGN_WIDEN4(r4 + j) * u4;
                b = b + SGN_WIDEN4(r5 + j) * u5;
                a = a + SGN_WIDEN4(r6 + j) * u6;
                b = b + SGN_WIDEN4(r7 + j) * u7;
                sgn_store4(w + j, a + b);
            }
            for (; j < t1; j++) {
                double s = 0;
                for (int r = 0; r < 8; r++) s += (double)g[(i + r) * d + j] * u[i + r];
                w[j] += s;
            }
        }
        for (; i < n; i++) {
            const SGN_T *r = g + i * d;
            const double ui = u[i];
            const v4d v = sgn_splat4(ui);
            ptrdiff_t j;
            for (j = t0; j < body; j += 4) {
                SGN_PREFETCH(r + j + SGN_AHEAD);
                sgn_store4(w + j, sgn_load4(w + j) + SGN_WIDEN4(r + j) * v);
            }
            for (; j < t1; j++) w[j] += (double)r[j] * ui;
        }
        for (ptrdiff_t j = t0; j < t1; j++) w[j] -= mean[j] * u_sum;
    }
}

static void SGN_FN(column_moments)(const SGN_T *g, ptrdiff_t n, ptrdiff_t d, double *sum, double *squares) {
    const ptrdiff_t body = d / 4 * 4;
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) {  // four rows per load and store of the sums
        const SGN_T *r0 = g + i * d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;
        ptrdiff_t j;
        for (j = 0; j < body; j += 4) {
            const v4d x0 = SGN_WIDEN4(r0 + j), x1 = SGN_WIDEN4(r1 + j), x2 = SGN_WIDEN4(r2 + j),
                      x3 = SGN_WIDEN4(r3 + j);
            sgn_store4(sum + j, sgn_load4(sum + j) + ((x0 + x1) + (x2 + x3)));
            if (squares)
                sgn_store4(squares + j, sgn_load4(squares + j) + ((x0 * x0 + x1 * x1) + (x2 * x2 + x3 * x3)));
        }
        for (; j < d; j++) {
            const double x0 = r0[j], x1 = r1[j], x2 = r2[j], x3 = r3[j];
            sum[j] += (x0 + x1) + (x2 + x3);
            if (squares) squares[j] += (x0 * x0 + x1 * x1) + (x2 * x2 + x3 * x3);
        }
    }
    for (; i < n; i++) {
        const SGN_T *r = g + i * d;
        for (ptrdiff_t j = 0; j < d; j++) {
            const double x = r[j];
            sum[j] += x;
            if (squares) squares[j] += x * x;
        }
    }
}

static void SGN_FN(centre_rows)(const SGN_T *g, ptrdiff_t n, ptrdiff_t d, const double *mean, double *out) {
    const ptrdiff_t body = d / 4 * 4;
    for (ptrdiff_t i = 0; i < n; i++) {
        const SGN_T *src = g + i * d;
        double *dst = out + i * d;
        ptrdiff_t j;
        for (j = 0; j < body; j += 4) sgn_store4(dst + j, SGN_WIDEN4(src + j) - sgn_load4(mean + j));
        for (; j < d; j++) dst[j] = (double)src[j] - mean[j];
    }
}

#undef SGN_AHEAD
#undef SGN_FN
#undef SGN_CAT
#undef SGN_CAT_
