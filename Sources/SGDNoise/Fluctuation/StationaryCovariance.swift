/// The stationary fluctuation of SGD near a quadratic minimum, with what was learnt solving for it.
public struct StationaryFluctuation: Sendable {
    /// Σ = lim cov(w_t), D × D symmetric.
    public let sigma: Matrix
    /// The eigenvalues m_i of Λ^{1/2} H Λ^{1/2} (ascending): stability needs 0 < m_i < 2(1+μ).
    public let preconditionedHessianEigenvalues: [Double]
    /// The number of flat directions (zero eigenvalues of H), on which Σ is not determined and is
    /// reported as 0.
    public let flatDirections: Int
    /// The noise power entering the flat directions (Σ of the diagonal of the rotated noise over
    /// them). Positive means the parameters random-walk along them: no stationary law exists there.
    public let flatDirectionNoise: Double
    /// The relative tolerance used: an eigenvalue m with |m| ≤ flatTolerance · max|m| is flat.
    public let flatTolerance: Double
}

/// The stationary fluctuation Σ of SGD with momentum and a (matrix) learning rate on a quadratic
/// loss with Hessian H and noise covariance C: the solution of [Thm 1]
///
///     (1−μ)(ΛHΣ + ΣHΛ) − c₁ ΛHΣHΛ + c₂ (ΛHΛHΣ + ΣHΛHΛ) = Λ C Λ,
///     c₁ = (1+μ²)/(1−μ²),  c₂ = μ/(1−μ²),
///
/// the generalised (discrete) Lyapunov equation; at μ = 0 it is Σ − (I−ΛH) Σ (I−ΛH)ᵀ = ΛCΛ.
///
/// Solved by the spectral path of docs/theory.md §3: Λ^{1/2} (one eigendecomposition when Λ is a
/// matrix), one eigendecomposition of H̃ = Λ^{1/2} H Λ^{1/2}, and four matrix products.
///
/// - Parameters:
///   - hessian: H, D × D symmetric (checked).
///   - noise: C, D × D symmetric (checked).
///   - learningRate: λ > 0, or Λ symmetric positive definite.
///   - momentum: μ ∈ [0, 1).
///   - flatTolerance: eigenvalues m of Λ^{1/2}HΛ^{1/2} with |m| ≤ flatTolerance · max|m| are flat
///     (nil: 16·D·ε, `Validation.defaultFlatTolerance`). A Hessian computed at a real minimum has
///     round-off eigenvalues of either sign (−1e−11 next to 10): raise it (1e−9, say) to treat them
///     as flat instead of getting `unstable` for a negative eigenvalue.
/// - Throws: `unstable` when some eigenvalue m of Λ^{1/2}HΛ^{1/2} is negative or ≥ 2(1+μ) (the
///   error carries the critical learning rate λ·2(1+μ)/m_max when one exists); `invalidArgument`,
///   `notSymmetric`, `notPositiveDefinite` for bad input.
/// - Note: zero eigenvalues of H (flat directions) are handled as docs/theory.md §3 says: Σ is
///   solved on the range of H̃ and `flatDirections`/`flatDirectionNoise` report the null space.
/// - Complexity: O(D³): one symmetric eigendecomposition (two for a matrix Λ) and, for a scalar λ,
///   two symmetric congruences, each one TRMM and one GEMM (3D³ flops; two more for a matrix Λ).
public func stationaryCovariance(
    hessian: consuming Matrix, noise: consuming Matrix, learningRate: LearningRate, momentum: Double = 0,
    flatTolerance: Double? = nil
) throws -> StationaryFluctuation {
    try hessian.requireSymmetric("hessian")
    let d = hessian.rows
    try noise.requireSymmetric("noise", size: d)
    try Validation.momentum(momentum)
    let transform = try LearningRateTransform(learningRate, dimension: d)
    let solver: SpectralStationarySolver
    let cHat: Matrix
    if transform.root == nil {
        // Λ = λI: H̃ = λH has H's eigenvectors and λ times its eigenvalues, C̃ = λC and Σ = λX, so λ
        // goes into the eigenvalues and the two rotations' factors (no scaled copies of H, C, X).
        let lambda = transform.scalar
        // H and C given up (when the caller gives them up): LAPACK works in H's storage, and the
        // first rotation writes over C's; this keeps the peak at about 4 D² doubles.
        let eigen = try SymmetricEigendecomposition(checked: consume hessian, name: "hessian")
        solver = try SpectralStationarySolver(eigen: eigen.scaled(by: lambda), momentum: momentum,
                                              flatTolerance: flatTolerance)
        try solver.requireStable(lrScale: lambda)
        cHat = solver.rotateIn(consume noise, scale: lambda)
    } else {
        solver = try SpectralStationarySolver(
            preconditionedHessian: transform.conjugate(hessian), momentum: momentum, flatTolerance: flatTolerance)
        try solver.requireStable(lrScale: transform.scalar)
        cHat = solver.rotateIn(transform.conjugate(noise))
    }
    let flatNoise = solver.flatNoise(cHat)
    let y = solver.solveRotated(consume cHat)
    let sigma = transform.root == nil ? solver.rotateOut(y, scale: transform.scalar)
        : transform.conjugate(solver.rotateOut(y))
    guard sigma.isFinite else {
        throw SGDNoiseError.numericalFailure("the stationary covariance came out non-finite")
    }
    return StationaryFluctuation(
        sigma: sigma,
        preconditionedHessianEigenvalues: solver.m,
        flatDirections: solver.isFlat.filter { $0 }.count,
        flatDirectionNoise: flatNoise,
        flatTolerance: solver.flatTolerance)
}

/// The relative residual of Theorem 1 for a candidate Σ:
/// ‖LHS(Σ) − ΛCΛ‖_F / max(‖ΛCΛ‖_F, ‖LHS(Σ)‖_F), computed directly with matrix products
/// (independent of the spectral solver, for checking it).
public func stationaryResidual(
    hessian h: Matrix, noise c: Matrix, learningRate: LearningRate, momentum mu: Double, sigma s: Matrix
) -> Double {
    let lambda = learningRate.matrix(dimension: h.rows)
    let c1 = (1 + mu * mu) / (1 - mu * mu)
    let c2 = mu / (1 - mu * mu)
    let lh = lambda * h
    let lhs1 = lh * s
    let lhs = (1 - mu) * (lhs1 + lhs1.transposed) - c1 * (lh * s * lh.transposed)
        + c2 * (lh * lh * s + (lh * lh * s).transposed)
    let rhs = lambda * c * lambda
    let scale = max(rhs.frobeniusNorm, lhs.frobeniusNorm, .leastNormalMagnitude)
    return (lhs - rhs).frobeniusNorm / scale
}
