/// How close a covariance estimate P is to a reference Q (docs/theory.md §2): the numbers used to
/// judge an approximation of the noise (a Hessian approximation, a diagonal, a low-rank sketch…).
///
///     relative Frobenius error  ‖P − Q‖_F / ‖Q‖_F        (0 when equal)
///     cosine similarity         ⟨P, Q⟩_F / (‖P‖_F ‖Q‖_F)  (1 when P ∝ Q with a positive factor)
///     trace ratio               Tr P / Tr Q               (1 when the total noise power agrees)
///     top-k subspace overlap    ‖U_Pᵀ U_Q‖_F² / k         (1 when the top-k eigenspaces coincide,
///                                                          k/D on average for random subspaces)
///
/// with ⟨P, Q⟩_F = Σ_ij P_ij Q_ij and U_P, U_Q the D × k orthonormal top-k eigenvectors.
public struct CovarianceComparison: Sendable, Equatable {
    /// ‖P − Q‖_F / ‖Q‖_F.
    public let relativeFrobenius: Double
    /// ⟨P, Q⟩_F / (‖P‖_F ‖Q‖_F), in [−1, 1]; NaN when P = 0.
    public let cosine: Double
    /// Tr P / Tr Q (±∞ or NaN when Tr Q = 0).
    public let traceRatio: Double
    /// ‖U_Pᵀ U_Q‖_F² / k in [0, 1] (nil when no k was asked for).
    public let subspaceOverlap: Double?
}

/// Compares the covariance estimate `p` with the reference `q` (both D × D).
///
/// Norms and inner products are evaluated on P and Q divided by their largest absolute entry, so no
/// intermediate overflows or underflows; the ratios are unchanged by that scaling.
/// The top-k eigenspaces come from LAPACK `dsyevr` (only the k wanted eigenvectors). When λ_k = λ_{k+1}
/// the top-k eigenspace is not unique and the overlap depends on the basis the solver picks.
///
/// - Parameters:
///   - p: the estimate, square, finite.
///   - q: the reference, same size, finite, not zero.
///   - topK: k for the subspace overlap, 1 ≤ k ≤ D (nil: not computed). Then P and Q must be
///     symmetric (relative tolerance `Matrix.symmetryTolerance`); otherwise any square matrices work.
/// - Throws: `invalidArgument` (shapes, NaN/Inf, Q = 0, k out of range), `notSymmetric`.
public func compareCovariances(_ p: Matrix, _ q: Matrix, topK k: Int? = nil) throws -> CovarianceComparison {
    guard p.rows == p.columns, p.rows >= 1 else {
        throw SGDNoiseError.invalidArgument("P must be a non-empty square matrix, got \(p.rows) × \(p.columns)")
    }
    guard q.rows == p.rows, q.columns == p.columns else {
        throw SGDNoiseError.invalidArgument("Q must have the shape of P, \(p.rows) × \(p.columns), got \(q.rows) × \(q.columns)")
    }
    try p.requireFinite("P")
    try q.requireFinite("Q")
    let qScale = q.maxAbs
    guard qScale > 0 else {
        throw SGDNoiseError.invalidArgument("Q is zero: the relative error and the cosine are undefined")
    }
    let s = 1 / max(p.maxAbs, qScale)
    var pp = 0.0, qq = 0.0, pq = 0.0, dd = 0.0
    for idx in p.elements.indices {
        let a = s * p.elements[idx], b = s * q.elements[idx]
        pp += a * a
        qq += b * b
        pq += a * b
        dd += (a - b) * (a - b)
    }
    var overlap: Double? = nil
    if let k {
        let d = p.rows
        guard k >= 1, k <= d else {
            throw SGDNoiseError.invalidArgument("k must be between 1 and the dimension \(d), got \(k)")
        }
        try p.requireSymmetric("P")
        try q.requireSymmetric("Q")
        let up = try p.largestEigenpairs(k, name: "P").vectorRows  // k × D
        let uq = try q.largestEigenpairs(k, name: "Q").vectorRows
        let cross = Matrix.product(up, uq, transposeB: true)  // U_Pᵀ U_Q, k × k
        overlap = cross.elements.reduce(0) { $0 + $1 * $1 } / Double(k)
    }
    return CovarianceComparison(
        relativeFrobenius: (dd / qq).squareRoot(),
        cosine: pq / (pp.squareRoot() * qq.squareRoot()),
        traceRatio: p.trace / q.trace,
        subspaceOverlap: overlap)
}
