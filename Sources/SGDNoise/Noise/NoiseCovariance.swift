/// What part of the noise covariance to compute.
public enum NoiseCovarianceKind: Sendable, Equatable {
    /// The full D × D matrix: one SYRK, O(N D²).
    case full
    /// Only the diagonal: O(N D).
    case diagonal
    /// Only the trace: O(N D).
    case trace
}

/// The minibatch noise covariance C of SGD at the point where the per-sample gradients were taken
/// [Prop 1]:
///
///     with replacement:     C = (1/S) (M2 − ḡḡᵀ)
///     without replacement:  C = (N − S) / (S (N − 1)) · (M2 − ḡḡᵀ)
///
/// with ḡ = (1/N) Σ g_i and M2 = (1/N) Σ g_i g_iᵀ. This is cov(ĝ − ∇L) for the minibatch gradient
/// ĝ = (1/S) Σ_{i∈B} g_i of a loss L = (1/N) Σ ℓ_i (per-sample losses, batch *mean*).
///
/// - Parameters:
///   - gradients: N × D, row i the gradient g_i = ∇ℓ_i(w) (N ≥ 1, finite).
///   - batchSize: S ≥ 1 (S ≤ N without replacement; C = 0 at S = N).
///   - sampling: with (default) or without replacement.
/// - Returns: C, D × D symmetric positive semi-definite.
/// - Complexity: one SYRK of the centred gradients, O(N D²).
public func noiseCovariance(
    gradients: Matrix, batchSize: Int, sampling: Sampling = .withReplacement
) throws -> Matrix {
    try gradients.elements.withUnsafeBufferPointer {
        try noiseCovariance(
            gradients: $0, rows: gradients.rows, columns: gradients.columns,
            batchSize: batchSize, sampling: sampling)
    }
}

/// `noiseCovariance(gradients:batchSize:sampling:)` on a row-major N × D buffer of `Double` or
/// `Float` (converted to `Double` block by block; nothing of size N × D is copied).
@_specialize(where T == Double)
@_specialize(where T == Float)
public func noiseCovariance<T: GradientScalar>(
    gradients: UnsafeBufferPointer<T>, rows n: Int, columns d: Int,
    batchSize: Int, sampling: Sampling = .withReplacement
) throws -> Matrix {
    let f = try sampling.noiseFactor(sampleCount: n, batchSize: batchSize)
    let moments = try GradientMoments(gradients: gradients, rows: n, columns: d, full: true)
    let c = (f / Double(n)) * moments.scatter!
    guard c.isFinite else {
        throw SGDNoiseError.numericalFailure("the noise covariance overflowed: grads has entries too large to square")
    }
    return c
}

/// The diagonal of the noise covariance [Prop 1], C_jj = f · (1/N) Σ_i (g_ij − ḡ_j)², in O(N D).
/// Parameters as in `noiseCovariance(gradients:batchSize:sampling:)`.
@_specialize(where T == Double)
@_specialize(where T == Float)
public func noiseCovarianceDiagonal<T: GradientScalar>(
    gradients: UnsafeBufferPointer<T>, rows n: Int, columns d: Int,
    batchSize: Int, sampling: Sampling = .withReplacement
) throws -> [Double] {
    let f = try sampling.noiseFactor(sampleCount: n, batchSize: batchSize)
    let moments = try GradientMoments(gradients: gradients, rows: n, columns: d, full: false)
    let scale = f / Double(n)
    let diagonal = moments.scatterDiagonal.map { scale * $0 }
    guard diagonal.allSatisfy({ $0.isFinite }) else {
        throw SGDNoiseError.numericalFailure("the noise covariance overflowed: grads has entries too large to square")
    }
    return diagonal
}

/// The diagonal of the noise covariance of `gradients` (an N × D matrix).
public func noiseCovarianceDiagonal(
    gradients: Matrix, batchSize: Int, sampling: Sampling = .withReplacement
) throws -> [Double] {
    try gradients.elements.withUnsafeBufferPointer {
        try noiseCovarianceDiagonal(
            gradients: $0, rows: gradients.rows, columns: gradients.columns,
            batchSize: batchSize, sampling: sampling)
    }
}

/// The trace of the noise covariance, Tr C = f · (1/N) Σ_i |g_i − ḡ|², in O(N D): the total
/// gradient-noise power, the numerator of the simple noise scale.
public func noiseCovarianceTrace(
    gradients: Matrix, batchSize: Int, sampling: Sampling = .withReplacement
) throws -> Double {
    try noiseCovarianceDiagonal(gradients: gradients, batchSize: batchSize, sampling: sampling).reduce(0, +)
}
