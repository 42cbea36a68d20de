import _CLAPACK

/// Products with the centred gradient matrix G_c = G − 1ḡᵀ (N × D) of borrowed row-major
/// gradients, without ever forming G_c, D × D, or a copy of G.
///
/// Every product walks G once, in tiles of a few rows by a few thousand columns: each tile is
/// widened to `Double` and centred (g_ij − ḡ_j) into a small cache-resident buffer, then handed to
/// BLAS (`dgemv` / `dgemm` / `dsyrk`). So `Float` gradients are never rounded further, every sum is
/// accumulated in `Double`, and the centring is exact rather than folded in afterwards (a large
/// mean does not cancel digits). The cost is memory-bound: one read of G per product, like a plain
/// matrix-vector product.
///
/// Parallelism: the D columns are split into a fixed number of ranges, independent of the number
/// of threads, and partial sums are added in a fixed order, so results are bitwise reproducible.
struct CentredGradients<T: GradientScalar> {
    let g: UnsafePointer<T>
    let n: Int
    let d: Int
    let mean: UnsafePointer<Double>

    /// Columns per tile (a tile row of `Float` is 8 KiB: long contiguous reads of G).
    var tileColumns: Int { min(d, 2048) }

    /// Rows per tile: a tile of about 16K doubles (128 KiB) stays in the L2 cache.
    var tileRows: Int { max(1, min(n, (1 << 14) / tileColumns)) }

    /// The fixed split of the columns into ranges of whole tiles for parallel work (1 range for
    /// problems too small to be worth a thread).
    var columnRanges: [Range<Int>] {
        let tiles = (d + tileColumns - 1) / tileColumns
        let parts = n * d < (1 << 18) ? 1 : min(tiles, 16)
        return (0..<parts).map { p in
            let lo = (tiles * p / parts) * tileColumns
            let hi = min(d, (tiles * (p + 1) / parts) * tileColumns)
            return lo..<hi
        }
    }

    /// Writes the centred tile rows r0..<r0+rows, columns c0..<c0+width into `buffer` (row-major,
    /// leading dimension `width`).
    @inline(__always)
    func centre(rows r0: Int, _ rows: Int, columns c0: Int, _ width: Int, into buffer: UnsafeMutablePointer<Double>) {
        let mu = mean + c0
        for i in 0..<rows {
            let src = g + (r0 + i) * d + c0
            let dst = buffer + i * width
            for j in 0..<width { dst[j] = Double(src[j]) - mu[j] }
        }
    }

    /// Y = G_c X: X is D × m row-major, Y is N × m row-major (overwritten).
    func multiply(_ x: UnsafePointer<Double>, columns m: Int, into y: UnsafeMutablePointer<Double>) {
        let ranges = columnRanges
        let partials = UnsafeMutablePointer<Double>.allocate(capacity: ranges.count * n * m)
        partials.initialize(repeating: 0, count: ranges.count * n * m)
        defer { partials.deallocate() }
        let shared = UnsafeShared((self, x, partials))
        parallelWorkers(ranges.count) { part in
            let (me, x, partials) = shared.value
            me.multiplyRange(ranges[part], x, columns: m, into: partials + part * me.n * m)
        }
        y.update(from: partials, count: n * m)
        for part in 1..<max(1, ranges.count) {
            let p = partials + part * n * m
            for k in 0..<(n * m) { y[k] += p[k] }
        }
    }

    private func multiplyRange(_ range: Range<Int>, _ x: UnsafePointer<Double>, columns m: Int, into y: UnsafeMutablePointer<Double>) {
        let width = tileColumns, height = tileRows
        let buffer = UnsafeMutablePointer<Double>.allocate(capacity: width * height)
        defer { buffer.deallocate() }
        var c0 = range.lowerBound
        while c0 < range.upperBound {
            let w = min(width, range.upperBound - c0)
            var r0 = 0
            while r0 < n {
                let h = min(height, n - r0)
                centre(rows: r0, h, columns: c0, w, into: buffer)
                if m == 1 {
                    cblas_dgemv(CblasRowMajor, CblasNoTrans, blasInt(h), blasInt(w), 1, buffer, blasInt(w),
                                x + c0, 1, 1, y + r0, 1)
                } else {
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasInt(h), blasInt(m), blasInt(w), 1,
                                buffer, blasInt(w), x + c0 * m, blasInt(m), 1, y + r0 * m, blasInt(m))
                }
                r0 += h
            }
            c0 += w
        }
    }

    /// W = G_cᵀ U: U is N × m row-major, W is D × m row-major (overwritten).
    func multiplyTransposed(_ u: UnsafePointer<Double>, columns m: Int, into w: UnsafeMutablePointer<Double>) {
        let ranges = columnRanges
        let shared = UnsafeShared((self, u, w))
        parallelWorkers(ranges.count) { part in
            let (me, u, w) = shared.value
            me.multiplyTransposedRange(ranges[part], u, columns: m, into: w)
        }
    }

    private func multiplyTransposedRange(_ range: Range<Int>, _ u: UnsafePointer<Double>, columns m: Int, into out: UnsafeMutablePointer<Double>) {
        let width = tileColumns, height = tileRows
        let buffer = UnsafeMutablePointer<Double>.allocate(capacity: width * height)
        defer { buffer.deallocate() }
        (out + range.lowerBound * m).initialize(repeating: 0, count: range.count * m)
        var c0 = range.lowerBound
        while c0 < range.upperBound {
            let w = min(width, range.upperBound - c0)
            var r0 = 0
            while r0 < n {
                let h = min(height, n - r0)
                centre(rows: r0, h, columns: c0, w, into: buffer)
                if m == 1 {
                    cblas_dgemv(CblasRowMajor, CblasTrans, blasInt(h), blasInt(w), 1, buffer, blasInt(w),
                                u + r0, 1, 1, out + c0, 1)
                } else {
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasInt(w), blasInt(m), blasInt(h), 1,
                                buffer, blasInt(w), u + r0 * m, blasInt(m), 1, out + c0 * m, blasInt(m))
                }
                r0 += h
            }
            c0 += w
        }
    }

    /// The Gram matrix K = G_c G_cᵀ (N × N, symmetric), one SYRK per block of columns (BLAS
    /// threads each SYRK itself).
    func gram() -> Matrix {
        var k = Matrix(rows: n, columns: n)
        let width = max(1, min(d, max(64, (1 << 18) / n)))
        let buffer = UnsafeMutablePointer<Double>.allocate(capacity: n * width)
        defer { buffer.deallocate() }
        k.elements.withUnsafeMutableBufferPointer { out in
            var c0 = 0
            while c0 < d {
                let w = min(width, d - c0)
                centre(rows: 0, n, columns: c0, w, into: buffer)
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, blasInt(n), blasInt(w), 1, buffer, blasInt(w),
                            1, out.baseAddress, blasInt(n))
                c0 += w
            }
        }
        k.fillLowerFromUpper()
        return k
    }
}
