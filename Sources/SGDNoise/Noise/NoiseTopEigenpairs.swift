/// The k largest eigenpairs of the minibatch noise covariance C = (f/N) G_cᵀG_c [Prop 1] of N × D
/// per-sample gradients, without forming C when N ≤ D.
///
/// Two routes, whichever matrix is smaller:
/// - **N ≤ D (Gram route).** C's nonzero spectrum is that of the N × N matrix (f/N) K,
///   K = G_c G_cᵀ: if K u = μ u with μ > 0 and ‖u‖ = 1, then v = G_cᵀu / √μ is a unit vector with
///   C v = (f/N) μ v (since G_cᵀ G_c G_cᵀ u = μ G_cᵀ u and ‖G_cᵀu‖² = uᵀKu = μ). K is built by
///   blocks of centred columns with SYRK, its top-k eigenpairs come from LAPACK `dsyevr`, and the
///   eigenvectors are mapped back through G_cᵀ in one pass over G and normalised.
///   Cost O(N² D + N³), memory O(N² + N k + D k).
/// - **N > D (dense route).** C itself (one SYRK, O(N D²)), then `dsyevr` for the top k: O(D³).
///
/// Conventions (`TopEigenpairs`): eigenvalues descending; D × k unit eigenvectors as columns, each
/// signed so that its largest-magnitude entry is positive.
///
/// - Parameters:
///   - gradients: N × D row-major, `Double` or `Float` (widened block by block), finite.
///   - batchSize: S ≥ 1 (S ≤ N without replacement).
///   - sampling: with (default) or without replacement.
///   - k: 1 ≤ k ≤ rank C. C has rank at most min(N − 1, D); eigenvalues at or below
///     max(N, D) · ε · λ_max count as zero (their eigenvectors are not determined by the data), and a
///     k beyond the numerical rank is rejected, in both routes alike.
/// - Throws: `invalidArgument` (sizes, NaN/Inf, batch size, k out of range or beyond the numerical
///   rank, C = 0 at S = N without replacement), `outOfMemory` (min(N, D) > 40000),
///   `numericalFailure`.
@_specialize(where T == Double)
@_specialize(where T == Float)
public func noiseTopEigenpairs<T: GradientScalar>(
    gradients: UnsafeBufferPointer<T>, rows n: Int, columns d: Int, batchSize: Int,
    sampling: Sampling = .withReplacement, count k: Int
) throws -> TopEigenpairs {
    guard n >= 1, d >= 1 else {
        throw SGDNoiseError.invalidArgument("grads must have at least one row and one column, got \(n) × \(d)")
    }
    let (entries, overflow) = n.multipliedReportingOverflow(by: d)
    guard !overflow, let base = gradients.baseAddress, gradients.count >= entries else {
        throw SGDNoiseError.invalidArgument("grads holds \(gradients.count) entries, fewer than \(n) × \(d)")
    }
    let f = try sampling.noiseFactor(sampleCount: n, batchSize: batchSize)
    let bound = min(n - 1, d)
    guard k >= 1 else { throw SGDNoiseError.invalidArgument("k must be at least 1, got \(k)") }
    guard k <= bound else {
        throw SGDNoiseError.invalidArgument(
            "k = \(k) exceeds min(N - 1, D) = \(bound), the largest rank the noise covariance of \(n) samples in dimension \(d) can have")
    }
    guard f > 0 else {
        throw SGDNoiseError.invalidArgument(
            "the noise covariance is zero (batch_size = N = \(n) without replacement): it has no nonzero eigenpairs")
    }
    let small = min(n, d)
    guard small <= SymmetricEigendecomposition.maxTopDimension else {
        throw SGDNoiseError.outOfMemory(
            "min(N, D) = \(small) exceeds the eigensolver's limit of \(SymmetricEigendecomposition.maxTopDimension)")
    }
    let scale = f / Double(n)
    if n <= d {
        let mean = try GradientMoments.columnMeans(base, rows: n, columns: d)
        return try mean.withUnsafeBufferPointer { mu in
            let centred = CentredGradients(g: base, n: n, d: d, mean: mu.baseAddress!)
            let gram = centred.gram()
            let (mu2, uRows) = try gram.largestEigenpairs(k, name: "the Gram matrix of the centred gradients")
            try requireNumericalRank(mu2, k: k, n: n, d: d)
            var v = Matrix(rows: d, columns: k)
            let u = uRows.transposed  // N × k
            u.elements.withUnsafeBufferPointer { pu in
                v.elements.withUnsafeMutableBufferPointer { pv in
                    centred.multiplyTransposed(pu.baseAddress!, columns: k, into: pv.baseAddress!)
                }
            }
            return TopEigenpairs(values: mu2.map { scale * $0 }, unnormalisedColumns: v)
        }
    }
    let c = try noiseCovariance(gradients: gradients, rows: n, columns: d, batchSize: batchSize, sampling: sampling)
    let (values, rows) = try c.largestEigenpairs(k, name: "the noise covariance")
    try requireNumericalRank(values, k: k, n: n, d: d)
    return TopEigenpairs(values: values, vectorRows: rows)
}

/// `noiseTopEigenpairs` of the N × D matrix `gradients`.
public func noiseTopEigenpairs(
    gradients: Matrix, batchSize: Int, sampling: Sampling = .withReplacement, count k: Int
) throws -> TopEigenpairs {
    try gradients.elements.withUnsafeBufferPointer {
        try noiseTopEigenpairs(gradients: $0, rows: gradients.rows, columns: gradients.columns,
                               batchSize: batchSize, sampling: sampling, count: k)
    }
}

extension SymmetricEigendecomposition {
    /// The largest matrix side the top-k eigensolvers accept (the Gram or covariance matrix).
    public static let maxTopDimension = Validation.maxDenseDimension
}

/// Throws unless the k-th largest eigenvalue is above the numerical-rank threshold
/// max(N, D) · ε · λ_max (descending `values`).
func requireNumericalRank(_ values: [Double], k: Int, n: Int, d: Int) throws {
    let top = values.first ?? 0
    let threshold = Double(max(n, d)) * Double.ulpOfOne * top
    let rank = top > 0 ? values.prefix(while: { $0 > threshold }).count : 0
    guard rank >= k else {
        throw SGDNoiseError.invalidArgument(
            "k = \(k) exceeds the numerical rank of the noise covariance (only \(rank) of its top \(k) eigenvalues exceed \(threshold) = max(N, D) * eps * lambda_max)")
    }
}
