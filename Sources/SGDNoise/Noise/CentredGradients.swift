import _SGDNoiseBLAS

/// Products with the centred gradient matrix G_c = G − 1ḡᵀ (N × D) of borrowed row-major
/// gradients, without ever forming G_c, D × D, or a copy of G.
///
/// Every product walks G once, in tiles of 32768 columns (128 KiB of contiguous `Float` per row, long
/// enough for the hardware prefetchers; the matching entries of the vector stay in the L2 cache):
/// - one vector (`m == 1`, the matrix-free C·v): the C kernels of `Kernels` (AVX2 + FMA where the
///   processor has them, else baseline SSE2; chosen at run time) widen entries of G to `Double` as
///   they load them and accumulate in `Double`, four (G_c x) or eight (G_cᵀu) rows per sweep so
///   that each load of the vector serves several rows. The centring is applied per tile:
///   Σ_j (g_ij − ḡ_j) x_j = Σ_j g_ij x_j − Σ_j ḡ_j x_j over each tile's columns, and
///   Σ_i u_i (g_ij − ḡ_j) = Σ_i u_i g_ij − ḡ_j Σ_i u_i, both sides summed in `Double`, so the
///   cancellation costs at most u·Σ|g_ij x_j| — not the ε_float · |ḡ|² of a float32 BLAS product.
///   The D columns are split into a fixed number of ranges, one per task, with partial sums added
///   in a fixed order: the result does not depend on the number of threads. No BLAS call runs
///   inside the parallel loop (a threaded BLAS called from several threads at once would contend
///   for its own thread pool).
/// - the diagonal Σ_i (g_ij − ḡ_j)²: centred entry by entry (the uncentred Σg² − Nḡ² would cancel).
/// - a block of vectors (`m > 1`) and the Gram matrix: each tile is widened and centred into a
///   buffer and handed to BLAS `dgemm`/`dsyrk` (which thread themselves), serially over the tiles.
///
/// So `Float` gradients are never rounded further and every sum is in `Double`. The cost of the
/// one-vector products is memory-bound: one read of G per product, like a matrix-vector product.
struct CentredGradients<T: GradientScalar> {
    let g: UnsafePointer<T>
    let n: Int
    let d: Int
    let mean: UnsafePointer<Double>

    /// Columns per tile of the one-vector kernels (`SGN_KERNELS_TILE_COLUMNS`).
    static var tileColumns: Int { Kernels.tileColumns }

    /// Columns per tile of the BLAS paths (a tile of `tileRows` × 2048 doubles, 1 MiB, is converted
    /// and centred into a buffer before each `dgemm`).
    static var blasTileColumns: Int { 2048 }

    /// The fixed split of the columns into ranges of whole tiles for parallel work (one range for
    /// problems too small to be worth a thread).
    var columnRanges: [Range<Int>] {
        let width = Self.tileColumns
        let tiles = (d + width - 1) / width
        let parts = n * d < (1 << 18) ? 1 : min(tiles, 16)
        return (0..<parts).map { p in
            let lo = (tiles * p / parts) * width
            let hi = min(d, (tiles * (p + 1) / parts) * width)
            return lo..<hi
        }
    }

    /// Four consecutive entries of G at `p`, as `Double`.
    @inline(__always)
    static func widen4(_ p: UnsafePointer<T>) -> SIMD4<Double> {
        if T.self == Float.self {
            let f = UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
            return SIMD4<Double>(Double(f[0]), Double(f[1]), Double(f[2]), Double(f[3]))
        }
        return UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Double>.self)
    }

    @inline(__always)
    static func load4(_ p: UnsafePointer<Double>) -> SIMD4<Double> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Double>.self)
    }

    @inline(__always)
    static func store4(_ v: SIMD4<Double>, _ p: UnsafeMutablePointer<Double>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Double>.self)
    }

    // MARK: Y = G_c X

    /// Y = G_c X: X is D × m row-major, Y is N × m row-major (overwritten).
    func multiply(_ x: UnsafePointer<Double>, columns m: Int, into y: UnsafeMutablePointer<Double>) {
        if m > 1 {
            y.initialize(repeating: 0, count: n * m)
            multiplyTiles(x, columns: m, into: y)
            return
        }
        let ranges = columnRanges
        let partials = UnsafeMutablePointer<Double>.allocate(capacity: ranges.count * n)
        partials.initialize(repeating: 0, count: ranges.count * n)
        defer { partials.deallocate() }
        let shared = UnsafeShared((self, x, partials))
        parallelWorkers(ranges.count) { part in
            let (me, x, partials) = shared.value
            me.dotRange(ranges[part], x, into: partials + part * me.n)
        }
        y.update(from: partials, count: n)
        for part in 1..<max(1, ranges.count) {
            let p = partials + part * n
            for i in 0..<n { y[i] += p[i] }
        }
    }

    /// y_i += Σ_{j ∈ range} (g_ij − ḡ_j) x_j for every row i (four rows per sweep).
    func dotRange(_ range: Range<Int>, _ x: UnsafePointer<Double>, into y: UnsafeMutablePointer<Double>) {
        Kernels.centredDot(g, rows: n, columns: d, range: range, mean: mean, x: x, into: y)
    }

    // MARK: W = G_cᵀ U

    /// W = G_cᵀ U: U is N × m row-major, W is D × m row-major (overwritten).
    func multiplyTransposed(_ u: UnsafePointer<Double>, columns m: Int, into w: UnsafeMutablePointer<Double>) {
        if m > 1 {
            w.initialize(repeating: 0, count: d * m)
            multiplyTransposedTiles(u, columns: m, into: w)
            return
        }
        let ranges = columnRanges
        let shared = UnsafeShared((self, u, w))
        parallelWorkers(ranges.count) { part in
            let (me, u, w) = shared.value
            me.axpyRange(ranges[part], u, into: w)
        }
    }

    /// w_j = Σ_i u_i (g_ij − ḡ_j) for j in `range` (overwritten; eight rows per sweep).
    func axpyRange(_ range: Range<Int>, _ u: UnsafePointer<Double>, into w: UnsafeMutablePointer<Double>) {
        (w + range.lowerBound).update(repeating: 0, count: range.count)
        Kernels.centredAxpy(g, rows: n, columns: d, range: range, mean: mean, u: u, into: w)
    }

    // MARK: Column sums of squares

    /// out_j = Σ_i (g_ij − ḡ_j)² for every column j (overwritten): the diagonal of G_cᵀG_c.
    func columnSumsOfSquares(into out: UnsafeMutablePointer<Double>) {
        let ranges = columnRanges
        let shared = UnsafeShared((self, out))
        parallelWorkers(ranges.count) { part in
            let (me, out) = shared.value
            me.squaresRange(ranges[part], into: out)
        }
    }

    func squaresRange(_ range: Range<Int>, into out: UnsafeMutablePointer<Double>) {
        var t0 = range.lowerBound
        while t0 < range.upperBound {
            let t1 = min(range.upperBound, t0 + Self.tileColumns)
            let body = t0 + (t1 - t0) / 4 * 4
            (out + t0).update(repeating: 0, count: t1 - t0)
            var i = 0
            while i + 4 <= n {
                let r0 = g + i * d, r1 = r0 + d, r2 = r1 + d, r3 = r2 + d
                var j = t0
                while j < body {
                    let mu = Self.load4(mean + j)
                    var a = Self.load4(out + j), b = SIMD4<Double>()
                    let c0 = Self.widen4(r0 + j) - mu
                    a += c0 * c0
                    let c1 = Self.widen4(r1 + j) - mu
                    b += c1 * c1
                    let c2 = Self.widen4(r2 + j) - mu
                    a += c2 * c2
                    let c3 = Self.widen4(r3 + j) - mu
                    b += c3 * c3
                    Self.store4(a + b, out + j)
                    j &+= 4
                }
                while j < t1 {
                    let mu = mean[j]
                    let c0 = Double(r0[j]) - mu, c1 = Double(r1[j]) - mu, c2 = Double(r2[j]) - mu, c3 = Double(r3[j]) - mu
                    out[j] += (c0 * c0 + c1 * c1) + (c2 * c2 + c3 * c3)
                    j += 1
                }
                i += 4
            }
            while i < n {
                let r = g + i * d
                for j in t0..<t1 {
                    let c = Double(r[j]) - mean[j]
                    out[j] += c * c
                }
                i += 1
            }
            t0 = t1
        }
    }

    // MARK: Blocks of vectors and the Gram matrix (BLAS on centred tiles)

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

    /// Rows per tile for the BLAS paths: a tile of about 128K doubles (1 MiB).
    var tileRows: Int { max(1, min(n, (1 << 17) / min(d, Self.blasTileColumns))) }

    /// Calls `body(tile, r0, h, c0, w)` for every tile of centred gradients, rows r0..<r0+h and
    /// columns c0..<c0+w, the tile row-major with leading dimension w.
    private func forEachCentredTile(_ body: (UnsafeMutablePointer<Double>, Int, Int, Int, Int) -> Void) {
        let height = tileRows
        let buffer = UnsafeMutablePointer<Double>.allocate(capacity: Self.blasTileColumns * height)
        defer { buffer.deallocate() }
        var c0 = 0
        while c0 < d {
            let w = min(Self.blasTileColumns, d - c0)
            var r0 = 0
            while r0 < n {
                let h = min(height, n - r0)
                centre(rows: r0, h, columns: c0, w, into: buffer)
                body(buffer, r0, h, c0, w)
                r0 += h
            }
            c0 += w
        }
    }

    /// Y += G_c X by tiles and `dgemm` (m > 1).
    func multiplyTiles(_ x: UnsafePointer<Double>, columns m: Int, into y: UnsafeMutablePointer<Double>) {
        forEachCentredTile { tile, r0, h, c0, w in
            sgn_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasInt(h), blasInt(m), blasInt(w), 1,
                            tile, blasInt(w), x + c0 * m, blasInt(m), 1, y + r0 * m, blasInt(m))
        }
    }

    /// W += G_cᵀ U by tiles and `dgemm` (m > 1).
    func multiplyTransposedTiles(_ u: UnsafePointer<Double>, columns m: Int, into out: UnsafeMutablePointer<Double>) {
        forEachCentredTile { tile, r0, h, c0, w in
            sgn_cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasInt(w), blasInt(m), blasInt(h), 1,
                            tile, blasInt(w), u + r0 * m, blasInt(m), 1, out + c0 * m, blasInt(m))
        }
    }

    /// The Gram matrix K = G_c G_cᵀ (N × N, symmetric), one SYRK per block of centred columns (BLAS
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
                sgn_cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, blasInt(n), blasInt(w), 1, buffer, blasInt(w),
                                1, out.baseAddress, blasInt(n))
                c0 += w
            }
        }
        k.fillLowerFromUpper()
        return k
    }
}
