import _SGDNoiseBLAS

/// The first two moments of a set of per-sample gradients: count N, mean ḡ and the centred
/// scatter matrix Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ (so that M2 − ḡḡᵀ = scatter / N).
///
/// Computed so that a large mean does not cancel digits: first the mean and the exact centred
/// diagonal (O(ND)); then, when the mean is small against the spread (N ḡ_j² ≤ Σ_i (g_ij − ḡ_j)²
/// for every j) and the gradients are `Double`, one SYRK of the raw gradients with a rank-one
/// correction; otherwise the scatter of the centred rows, accumulated by blocks: each block is
/// centred into a cache-sized buffer (converting `Float` to `Double` on the way) and added with
/// one `cblas_dsyrk`. Either way the cost is about that of a single SYRK of the N × D gradients.
public struct GradientMoments: Sendable {
    /// The number of samples N.
    public internal(set) var count: Int
    /// The mean gradient ḡ (D entries).
    public internal(set) var mean: [Double]
    /// Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ, D × D, symmetric (nil when only the diagonal was computed).
    public internal(set) var scatter: Matrix?
    /// The diagonal of the scatter, Σ_i (g_ij − ḡ_j)².
    public internal(set) var scatterDiagonal: [Double]

    /// The dimension D.
    public var dimension: Int { mean.count }
}

/// The element types gradients may come in.
public protocol GradientScalar: BinaryFloatingPoint, Sendable {}
extension Double: GradientScalar {}
extension Float: GradientScalar {}

extension GradientMoments {
    /// The moments of the N × D row-major gradients in `g`.
    /// - Parameter full: compute the D × D scatter (else only its diagonal, in O(ND)).
    /// - Throws: `invalidArgument` for empty or non-finite input.
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    public init<T: GradientScalar>(
        gradients g: UnsafeBufferPointer<T>, rows n: Int, columns d: Int, full: Bool
    ) throws {
        guard n >= 1, d >= 1 else {
            throw SGDNoiseError.invalidArgument("grads must have at least one row and one column, got \(n) × \(d)")
        }
        guard g.count >= n * d, let base = g.baseAddress else {
            throw SGDNoiseError.invalidArgument("grads holds \(g.count) entries, fewer than \(n) × \(d)")
        }
        let (mean, diag) = try Self.meansAndCentredSquares(base, rows: n, columns: d)
        var scatter: Matrix? = nil
        if full {
            var s = Matrix(rows: d, columns: d)
            if T.self == Double.self, Self.meanIsSmall(mean, diag, n) {
                // One SYRK of the raw gradients and a rank-one correction: GᵀG − N ḡḡᵀ. When every
                // N ḡ_j² ≤ Σ_i (g_ij − ḡ_j)², the cancellation costs at most a factor 2 in the
                // rounding error bound, relative to √(s_ii s_jj); otherwise centre block by block.
                base.withMemoryRebound(to: Double.self, capacity: n * d) { raw in
                    s.elements.withUnsafeMutableBufferPointer { out in
                        sgn_cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasInt(d), blasInt(n), 1, raw, blasInt(d),
                                        0, out.baseAddress, blasInt(d))
                        mean.withUnsafeBufferPointer { mu in
                            sgn_cblas_dsyr(CblasRowMajor, CblasUpper, blasInt(d), -Double(n), mu.baseAddress, 1,
                                           out.baseAddress, blasInt(d))
                        }
                    }
                }
                for j in 0..<d { s.elements[j * d + j] = diag[j] }  // the exact diagonal
            } else {
                Self.accumulateCentredScatter(base, rows: n, columns: d, mean: mean, into: &s)
                for j in 0..<d { s.elements[j * d + j] = diag[j] }
            }
            s.fillLowerFromUpper()
            scatter = s
        }
        self.count = n
        self.mean = mean
        self.scatter = scatter
        self.scatterDiagonal = diag
    }

    /// Whether N ḡ_j² ≤ Σ_i (g_ij − ḡ_j)² for every j (the mean does not dominate the spread).
    static func meanIsSmall(_ mean: [Double], _ centredDiagonal: [Double], _ n: Int) -> Bool {
        zip(mean, centredDiagonal).allSatisfy { Double(n) * $0 * $0 <= $1 }
    }

    /// The column means ḡ_j and centred sums of squares Σ_i (g_ij − ḡ_j)², in two passes (the
    /// exact mean first, so that a large mean does not cancel digits of the squares).
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    static func meansAndCentredSquares<T: GradientScalar>(
        _ g: UnsafePointer<T>, rows n: Int, columns d: Int
    ) throws -> (mean: [Double], squares: [Double]) {
        let mean = try columnMeans(g, rows: n, columns: d)
        var squares = [Double](repeating: 0, count: d)
        squares.withUnsafeMutableBufferPointer { m2 in
            mean.withUnsafeBufferPointer { mu in
                for i in 0..<n {
                    let row = g + i * d
                    for j in 0..<d {
                        let c = Double(row[j]) - mu[j]
                        m2[j] += c * c
                    }
                }
            }
        }
        return (mean, squares)
    }

    /// The column means, with a check that every entry is finite.
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    static func columnMeans<T: GradientScalar>(_ g: UnsafePointer<T>, rows n: Int, columns d: Int) throws -> [Double] {
        let (sum, _) = columnSums(g, rows: n, columns: d, squares: false)
        guard sum.allSatisfy({ $0.isFinite }) else {
            throw SGDNoiseError.invalidArgument("grads contains NaN or infinite entries (or entries too large to sum)")
        }
        let inv = 1 / Double(n)
        return sum.map { $0 * inv }
    }

    /// The column sums Σ_i g_ij and, when `squares` is set, the sums of squares Σ_i g_ij², in one
    /// pass (`Kernels.columnMoments`). Large inputs are split into a fixed number of row ranges
    /// summed in parallel, their partial sums added in range order: the result depends on the
    /// sizes alone, not on the threads.
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    static func columnSums<T: GradientScalar>(
        _ g: UnsafePointer<T>, rows n: Int, columns d: Int, squares: Bool
    ) -> (sum: [Double], squares: [Double]) {
        let parts = n * d < (1 << 18) ? 1 : min(8, n)
        let stride = squares ? 2 * d : d
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: parts * stride)
        partial.initialize(repeating: 0, count: parts * stride)
        defer { partial.deallocate() }
        let shared = UnsafeShared((g, partial))
        parallelWorkers(parts) { p in
            let (g, partial) = shared.value
            let lo = n * p / parts, hi = n * (p + 1) / parts
            let out = partial + p * stride
            Kernels.columnMoments(g + lo * d, rows: hi - lo, columns: d, sum: out, squares: squares ? out + d : nil)
        }
        for p in 1..<parts {
            for k in 0..<stride { partial[k] += partial[p * stride + k] }
        }
        let sum = Array(UnsafeBufferPointer(start: partial, count: d))
        return (sum, squares ? Array(UnsafeBufferPointer(start: partial + d, count: d)) : [])
    }

    /// Adds Σ_i (g_i − mean)(g_i − mean)ᵀ to the upper triangle of `scatter` by blocks of rows.
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    static func accumulateCentredScatter<T: GradientScalar>(
        _ g: UnsafePointer<T>, rows n: Int, columns d: Int, mean: [Double], into scatter: inout Matrix
    ) {
        // About 2 MiB of centred rows per SYRK call: large enough for a full-speed kernel.
        let block = max(16, min(n, (1 << 18) / d))
        var buffer = [Double](repeating: 0, count: block * d)
        buffer.withUnsafeMutableBufferPointer { buf in
            mean.withUnsafeBufferPointer { mu in
                scatter.elements.withUnsafeMutableBufferPointer { s in
                    var start = 0
                    while start < n {
                        let rows = min(block, n - start)
                        Kernels.centreRows(g + start * d, rows: rows, columns: d, mean: mu.baseAddress!,
                                           into: buf.baseAddress!)
                        sgn_cblas_dsyrk(
                            CblasRowMajor, CblasUpper, CblasTrans, blasInt(d), blasInt(rows),
                            1, buf.baseAddress, blasInt(d), 1, s.baseAddress, blasInt(d))
                        start += rows
                    }
                }
            }
        }
    }
}
