import _SGDNoiseBLAS

/// A streaming accumulator of per-sample gradients: the count N, the mean ḡ and the centred
/// scatter S = Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ, from which the minibatch noise covariance [Prop 1] is
///
///     C = (f / N) · S,   f = 1/S_batch with replacement,  (N − S_batch) / (S_batch (N − 1)) without,
///
/// the same matrix as the one-shot `noiseCovariance(gradients:batchSize:sampling:)` on all the
/// rows seen (equal up to rounding), in O(D²) memory however many gradients pass through.
///
/// Each chunk of rows is reduced to its own count n_b, mean m_b and centred scatter S_b (the
/// blocked SYRK of `GradientMoments`, accumulated straight into S), and combined with the running
/// state by the pairwise update of Chan, Golub and LeVeque:
///
///     n = n_a + n_b,   δ = m_b − m_a,   ḡ = m_a + (n_b / n) δ,
///     S = S_a + S_b + (n_a n_b / n) δ δᵀ.
///
/// `merge(_:)` applies the same formula to two accumulators, so that shards computed anywhere
/// (other processes, other machines) combine exactly, in any order.
///
/// Mathematical properties:
/// - The result does not depend on how the rows were split into chunks or shards, up to rounding:
///   every term is a sum of centred products, so a large mean does not cancel digits.
/// - `Float` chunks are widened to `Double` block by block; all sums are in `Double`.
/// - An update or merge that would produce a non-finite state is rejected before anything changes.
///
/// References: T. F. Chan, G. H. Golub, R. J. LeVeque, "Updating formulae and a pairwise algorithm
/// for computing sample variances", COMPSTAT 1982; docs/theory.md §2.
public struct NoiseAccumulator: Sendable {
    /// The dimension D of the gradients.
    public let dimension: Int
    /// The number of gradients accumulated, N.
    public internal(set) var count: Int = 0
    /// The mean gradient ḡ (zeros while the accumulator is empty).
    public internal(set) var mean: [Double]
    /// The upper triangle of S (the lower triangle stays zero: SYRK and SYR write only the upper).
    var scatterUpper: Matrix

    /// The largest dimension accepted (D² doubles of state).
    public static let maxDimension = Validation.maxDenseDimension

    /// An empty accumulator for gradients of dimension `dimension` (1 ≤ D ≤ 40000).
    /// - Throws: `invalidArgument` for D < 1, `outOfMemory` for D > 40000.
    public init(dimension: Int) throws {
        guard dimension >= 1 else {
            throw SGDNoiseError.invalidArgument("dim must be at least 1, got \(dimension)")
        }
        guard dimension <= Self.maxDimension else {
            throw SGDNoiseError.outOfMemory("dim = \(dimension) exceeds the supported maximum \(Self.maxDimension)")
        }
        self.dimension = dimension
        self.mean = [Double](repeating: 0, count: dimension)
        self.scatterUpper = Matrix(rows: dimension, columns: dimension)
    }

    /// An accumulator holding the rows of `gradients` (N × D).
    public init(gradients: Matrix) throws {
        try self.init(dimension: gradients.columns)
        try update(gradients)
    }

    /// Whether no gradient has been accumulated yet.
    public var isEmpty: Bool { count == 0 }

    /// The centred scatter S = Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ, D × D symmetric.
    public var scatter: Matrix {
        var s = scatterUpper
        s.fillLowerFromUpper()
        return s
    }

    /// The diagonal of S.
    public var scatterDiagonal: [Double] { scatterUpper.diagonalEntries }

    // MARK: Updates

    /// Adds the rows of the N × D row-major chunk `chunk` (`Double` or `Float`). N = 0 does nothing.
    /// - Throws: `invalidArgument` when the buffer is shorter than `rows` × D, for NaN/Inf entries,
    ///   or for entries so large that the scatter would overflow; the state is then unchanged.
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    public mutating func update<T: GradientScalar>(_ chunk: UnsafeBufferPointer<T>, rows n: Int) throws {
        guard n >= 0 else {
            throw SGDNoiseError.invalidArgument("chunk must have a non-negative number of rows, got \(n)")
        }
        if n == 0 { return }
        let d = dimension
        let (entries, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow, chunk.count >= entries, let base = chunk.baseAddress else {
            throw SGDNoiseError.invalidArgument("chunk holds \(chunk.count) entries, fewer than \(n) × \(d)")
        }
        let (chunkMean, squares) = try Self.columnMoments(base, rows: n, columns: d)
        let nA = Double(count), nB = Double(n)
        let weight = nA * nB / (nA + nB)
        let delta = (0..<d).map { chunkMean[$0] - mean[$0] }
        // Σ_i (g_ij − m_bj)² ≤ Σ_i g_ij², so a finite bound on every new diagonal entry (and, by
        // Cauchy–Schwarz on the positive semi-definite terms, on every off-diagonal one).
        try requireFiniteAfterAdding(squares, weight: weight, delta: delta, what: "chunk")

        GradientMoments.accumulateCentredScatter(base, rows: n, columns: d, mean: chunkMean, into: &scatterUpper)
        combine(count: n, delta: delta, weight: weight)
    }

    /// Adds the rows of `chunk` (N × D).
    public mutating func update(_ chunk: Matrix) throws {
        guard chunk.columns == dimension else {
            throw SGDNoiseError.invalidArgument("chunk must have \(dimension) columns, got \(chunk.columns)")
        }
        try chunk.elements.withUnsafeBufferPointer { try update($0, rows: chunk.rows) }
    }

    /// Adds everything `other` has accumulated: afterwards `self` describes the union of both sets
    /// of gradients, exactly as if every row had been passed to one accumulator.
    /// Merging an accumulator with a copy of itself counts each of its gradients twice.
    /// - Throws: `invalidArgument` when the dimensions differ or the merged state would overflow.
    public mutating func merge(_ other: NoiseAccumulator) throws {
        guard other.dimension == dimension else {
            throw SGDNoiseError.invalidArgument(
                "cannot merge an accumulator of dimension \(other.dimension) into one of dimension \(dimension)")
        }
        if other.count == 0 { return }
        if count == 0 {
            self = other
            return
        }
        let d = dimension
        let nA = Double(count), nB = Double(other.count)
        let weight = nA * nB / (nA + nB)
        let delta = (0..<d).map { other.mean[$0] - mean[$0] }
        try requireFiniteAfterAdding(other.scatterUpper.diagonalEntries, weight: weight, delta: delta, what: "merge")
        let total = d * d
        other.scatterUpper.elements.withUnsafeBufferPointer { b in
            scatterUpper.elements.withUnsafeMutableBufferPointer { a in
                sgn_cblas_daxpy(blasInt(total), 1, b.baseAddress, 1, a.baseAddress, 1)
            }
        }
        combine(count: other.count, delta: delta, weight: weight)
    }

    /// The pairwise step shared by `update` and `merge` once S_b is in the scatter:
    /// S += (n_a n_b / n) δδᵀ, ḡ += (n_b / n) δ, N += n_b.
    mutating func combine(count added: Int, delta: [Double], weight: Double) {
        let d = dimension
        if count > 0 {
            delta.withUnsafeBufferPointer { x in
                scatterUpper.elements.withUnsafeMutableBufferPointer { s in
                    sgn_cblas_dsyr(CblasRowMajor, CblasUpper, blasInt(d), weight, x.baseAddress, 1, s.baseAddress, blasInt(d))
                }
            }
        }
        let step = Double(added) / (Double(count) + Double(added))
        for j in 0..<d { mean[j] += step * delta[j] }
        count += added
    }

    /// Throws unless S_jj + bound_j + weight δ_j² is finite for every j.
    func requireFiniteAfterAdding(_ bound: [Double], weight: Double, delta: [Double], what: String) throws {
        for j in 0..<dimension {
            let next = scatterUpper.elements[j * dimension + j] + bound[j] + weight * delta[j] * delta[j]
            guard next.isFinite else {
                throw SGDNoiseError.invalidArgument(
                    "\(what): the scatter of column \(j) would overflow (entries too large); the accumulator is unchanged")
            }
        }
    }

    /// Column means and column sums of squares in one pass, with a finiteness check.
    static func columnMoments<T: GradientScalar>(
        _ g: UnsafePointer<T>, rows n: Int, columns d: Int
    ) throws -> (mean: [Double], squares: [Double]) {
        let (sum, squares) = GradientMoments.columnSums(g, rows: n, columns: d, squares: true)
        if let j = sum.firstIndex(where: { !$0.isFinite }) {
            throw SGDNoiseError.invalidArgument("chunk contains NaN or infinite entries (column \(j)); the accumulator is unchanged")
        }
        if let j = squares.firstIndex(where: { !$0.isFinite }) {
            throw SGDNoiseError.invalidArgument(
                "chunk has entries too large to square in column \(j) (the scatter would overflow); the accumulator is unchanged")
        }
        let inv = 1 / Double(n)
        return (sum.map { $0 * inv }, squares)
    }

    // MARK: Results

    /// The noise factor f / N for the accumulated count, with a clear error when empty.
    func scale(batchSize: Int, sampling: Sampling) throws -> Double {
        guard count >= 1 else {
            throw SGDNoiseError.invalidArgument("the accumulator is empty: update it with at least one gradient first")
        }
        return try sampling.noiseFactor(sampleCount: count, batchSize: batchSize) / Double(count)
    }

    /// The noise covariance C = (f/N) S [Prop 1], D × D, for minibatches of `batchSize` drawn
    /// from the N accumulated samples.
    /// - Parameters:
    ///   - batchSize: S ≥ 1 (S ≤ N without replacement; C = 0 at S = N).
    ///   - sampling: with (default) or without replacement.
    /// - Throws: `invalidArgument` when empty or when the batch size is out of range.
    public func covariance(batchSize: Int, sampling: Sampling = .withReplacement) throws -> Matrix {
        let s = try scale(batchSize: batchSize, sampling: sampling)
        return s * scatter
    }

    /// The diagonal of C, (f/N) S_jj.
    public func covarianceDiagonal(batchSize: Int, sampling: Sampling = .withReplacement) throws -> [Double] {
        let s = try scale(batchSize: batchSize, sampling: sampling)
        return scatterDiagonal.map { s * $0 }
    }

    /// The trace of C, (f/N) Tr S.
    public func covarianceTrace(batchSize: Int, sampling: Sampling = .withReplacement) throws -> Double {
        try covarianceDiagonal(batchSize: batchSize, sampling: sampling).reduce(0, +)
    }
}
