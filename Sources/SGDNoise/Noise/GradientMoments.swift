import _CLAPACK

/// The first two moments of a set of per-sample gradients: count N, mean ḡ and the centred
/// scatter matrix Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ (so that M2 − ḡḡᵀ = scatter / N).
///
/// Computed in two passes — the mean, then the scatter of the centred rows — so that a large mean
/// does not cancel digits. The scatter is accumulated by blocks of rows: each block is centred
/// into a cache-sized buffer (converting `Float` to `Double` on the way) and added with one
/// `cblas_dsyrk`, so the cost is that of a single SYRK of the N × D gradient matrix.
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
        let mean = try Self.columnMeans(base, rows: n, columns: d)
        var diag = [Double](repeating: 0, count: d)
        var scatter: Matrix? = nil
        if full {
            var s = Matrix(rows: d, columns: d)
            Self.accumulateCentredScatter(base, rows: n, columns: d, mean: mean, into: &s)
            diag = s.diagonalEntries
            s.fillLowerFromUpper()
            scatter = s
        } else {
            diag.withUnsafeMutableBufferPointer { dg in
                mean.withUnsafeBufferPointer { mu in
                    for i in 0..<n {
                        let row = base + i * d
                        for j in 0..<d {
                            let c = Double(row[j]) - mu[j]
                            dg[j] += c * c
                        }
                    }
                }
            }
        }
        self.count = n
        self.mean = mean
        self.scatter = scatter
        self.scatterDiagonal = diag
    }

    /// The column means, with a check that every entry is finite.
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    static func columnMeans<T: GradientScalar>(_ g: UnsafePointer<T>, rows n: Int, columns d: Int) throws -> [Double] {
        var sum = [Double](repeating: 0, count: d)
        var finite = true
        sum.withUnsafeMutableBufferPointer { s in
            for i in 0..<n {
                let row = g + i * d
                for j in 0..<d { s[j] += Double(row[j]) }
            }
            for j in 0..<d where !s[j].isFinite { finite = false }
        }
        guard finite else {
            throw SGDNoiseError.invalidArgument("grads contains NaN or infinite entries (or entries too large to sum)")
        }
        let inv = 1 / Double(n)
        return sum.map { $0 * inv }
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
                        for i in 0..<rows {
                            let src = g + (start + i) * d
                            let dst = buf.baseAddress! + i * d
                            for j in 0..<d { dst[j] = Double(src[j]) - mu[j] }
                        }
                        cblas_dsyrk(
                            CblasRowMajor, CblasUpper, CblasTrans, blasInt(d), blasInt(rows),
                            1, buf.baseAddress, blasInt(d), 1, s.baseAddress, blasInt(d))
                        start += rows
                    }
                }
            }
        }
    }
}
