/// Exact eigenpairs (θ_i, q_i), i = 1…q, of the Hessian, removed from a stochastic estimate and
/// added back exactly.
///
/// With Q = [q_1 … q_q] orthonormal and H q_i = θ_i q_i, the projector Π = I − QQᵀ commutes with H,
/// so for any function g
///
///     Tr g(H) = Σ_i g(θ_i) + Tr[Π g(H) Π],     g(H) v = Q g(Θ) Qᵀ v + g(H) Π v.
///
/// The first terms are exact; only the second is estimated, on the complement of the top
/// eigenvectors, where the spectrum (and the variance of a Hutchinson estimate) is smaller. Typical
/// source: the eigenpairs of `lanczosEigenpairs`, whose residuals ‖Hq − θq‖ bound the error this
/// splitting makes.
public struct Deflation: Sendable {
    /// θ_i, one per row of `eigenvectorRows`.
    public let eigenvalues: [Double]
    /// Qᵀ (q × P): row i is the unit eigenvector q_i of `eigenvalues[i]`.
    public let eigenvectorRows: Matrix

    /// The number q of deflated eigenpairs.
    public var count: Int { eigenvalues.count }
    /// The dimension P.
    public var dimension: Int { eigenvectorRows.columns }

    /// Deflation by the given eigenpairs, checked: finite, one eigenvalue per row, and rows
    /// orthonormal within 1e-8 (|q_iᵀq_j − δ_ij| ≤ 1e-8, an O(q² P) check).
    /// - Throws: `invalidArgument` for shapes, non-finite entries or rows that are not orthonormal.
    public init(eigenvalues: [Double], eigenvectorRows: Matrix) throws {
        guard eigenvalues.count == eigenvectorRows.rows, eigenvectorRows.columns >= 1 else {
            throw SGDNoiseError.invalidArgument(
                "eigenvectorRows must be q × P with q = \(eigenvalues.count) eigenvalues and P ≥ 1, got \(eigenvectorRows.rows) × \(eigenvectorRows.columns)")
        }
        if let i = eigenvalues.firstIndex(where: { !$0.isFinite }) {
            throw SGDNoiseError.invalidArgument("eigenvalues has a non-finite entry \(eigenvalues[i]) at \(i)")
        }
        try eigenvectorRows.requireFinite("eigenvectorRows")
        let q = eigenvalues.count, p = eigenvectorRows.columns
        try eigenvectorRows.elements.withUnsafeBufferPointer { e in
            let base = e.baseAddress!
            for i in 0..<q {
                for j in i..<q {
                    let dot = longDot(base + i * p, base + j * p, count: p)
                    let expected: Double = i == j ? 1 : 0
                    guard abs(dot - expected) <= 1e-8 else {
                        throw SGDNoiseError.invalidArgument(
                            "eigenvectorRows must be orthonormal: rows \(i) and \(j) have the product \(dot)")
                    }
                }
            }
        }
        self.eigenvalues = eigenvalues
        self.eigenvectorRows = eigenvectorRows
    }

    /// Deflation by the eigenpairs a Lanczos run returned (orthonormal by construction).
    public init(_ eigenpairs: LanczosEigenpairs) {
        eigenvalues = eigenpairs.eigenvalues
        eigenvectorRows = eigenpairs.eigenvectorRows
    }

    /// Σ_i g(θ_i), the exact part of Tr g(H).
    public func exactTrace(of g: (Double) -> Double) -> Double {
        eigenvalues.reduce(0) { $0 + g($1) }
    }

    /// Throws unless the deflated vectors have the operator's dimension.
    func requireDimension(_ p: Int) throws {
        guard dimension == p else {
            throw SGDNoiseError.invalidArgument(
                "the deflated eigenvectors have dimension \(dimension), the Hessian \(p)")
        }
        guard count < p else {
            throw SGDNoiseError.invalidArgument(
                "deflating \(count) eigenpairs of a \(p)-dimensional Hessian leaves nothing to estimate")
        }
    }
}
