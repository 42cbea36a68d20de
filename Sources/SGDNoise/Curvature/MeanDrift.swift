#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The product out ← ∇_w (vᵀ H(w) v) at the minimum: the third derivative of the loss contracted
/// twice with v (forward-over-reverse differentiation of the Hessian-vector product). Same contract
/// as `HessianOperator.Product`: write all P entries of `out`; throw to stop.
public typealias CurvatureGradient = HessianOperator.Product

/// The mean of SGD's iterates moved by its own fluctuation (docs/theory.md §8, "Drift").
///
/// At second order in w − w* the mean of the iterates follows the gradient of
/// L(w) + ½Tr[H(w)Σ] with Σ held fixed: a constant force f = ½ g, g = ∇_w Tr[H(w)Σ] at w*, drives
/// the mean dynamics of SGD with momentum, m_{t+1} = μ m_t + H e_t + f, e_{t+1} = e_t − λ m_{t+1},
/// from e_0 = m_0 = 0. In each eigendirection of H (curvature h, x = λh)
///
///     E[e_t] = −(λ/2) ψ_t(x) g,   ψ_t(x) = (1 − (1 − x)^t)/x at μ = 0,
///
/// (with momentum ψ_t is the same response of the heavy-ball recursion, computed exactly by powers
/// of its 3 × 3 affine map). In stiff directions (x t ≫ 1) ψ_t → 1/x: the stationary offset
/// −½ H⁻¹ g; in flat ones (x t ≪ 1) ψ_t ≈ t/(1 − μ): a drift of −(λ/(2(1 − μ))) g per step that
/// never stops. ψ_t is smooth (a polynomial of degree t − 1), so the Krylov method applies it to
/// the part of g outside the given eigenvectors; on them it is applied exactly.
public struct MeanDrift: Sendable {
    /// λ (scalar learning rate).
    public let learningRate: Double
    /// μ.
    public let momentum: Double
    /// g = ∇_w Tr[H(w) Σ] at w* with Σ = Q S Qᵀ held fixed (P entries): Σ_l s_l ∇(u_lᵀ H u_l) over
    /// the eigenvectors u_l of Σ.
    public let curvatureGradient: [Double]
    /// ½ Tr[H Σ] = ½ Σ_i h_i S_ii for the given Σ: the part of the excess loss that drives this
    /// drift (compare with the whole ½Tr[HΣ] of `NetworkFluctuation.excessLoss`).
    public let excessLossCovered: Double
    /// The steps t at which the mean is given.
    public let steps: [Int]
    /// E[w_t − w*] (rows: one per step, P entries each).
    public let displacements: Matrix
    /// Qᵀ E[w_t − w*] (rows: one per step, k entries each): the mean on the given eigenvectors.
    public let eigenvectorDisplacements: Matrix
    /// −½ (q_iᵀ g) / h_i, the stationary (t → ∞) offset along each given eigenvector; NaN where
    /// h_i ≤ 0 (no stationary state along it).
    public let stationaryOffsets: [Double]
    /// Whether the Krylov part converged to its tolerance at every step (true when none was needed).
    public let converged: Bool
    /// The Hessian-vector products used.
    public let hessianProducts: Int
    /// The curvature-gradient products used (one per eigenvector of Σ).
    public let curvatureGradientProducts: Int

    /// ‖E[w_t − w*]‖ for each step.
    public var displacementNorms: [Double] {
        (0..<displacements.rows).map { r in
            var s = 0.0
            for c in 0..<displacements.columns { s += displacements[r, c] * displacements[r, c] }
            return s.squareRoot()
        }
    }
}

/// ψ_t(x) of `MeanDrift`: the displacement after t steps of the heavy-ball mean recursion
/// M ← μM + x e + 1, e ← e − M (unit force, unit learning rate) from (0, 0), with the sign
/// turned: E[e_t] = −ψ_t(x). Exact, by repeated squaring of the affine map's 3 × 3 matrix
/// (O(log t)). ψ_t(0) = Σ_{s<t} (1 − μ^{s+1})/(1 − μ) ≈ t/(1 − μ); ψ_t(x) → 1/x for a stable x > 0.
public func driftResponse(steps t: Int, curvature x: Double, momentum mu: Double) -> Double {
    // The map on (M, e, 1): rows [μ, x, 1], [−μ, 1 − x, −1], [0, 0, 1].
    var base: [Double] = [mu, x, 1, -mu, 1 - x, -1, 0, 0, 1]
    var result: [Double] = [1, 0, 0, 0, 1, 0, 0, 0, 1]
    func multiply(_ a: [Double], _ b: [Double]) -> [Double] {
        var c = [Double](repeating: 0, count: 9)
        for i in 0..<3 {
            for j in 0..<3 { c[i * 3 + j] = a[i * 3] * b[j] + a[i * 3 + 1] * b[3 + j] + a[i * 3 + 2] * b[6 + j] }
        }
        return c
    }
    var n = t
    while n > 0 {
        if n & 1 == 1 { result = multiply(result, base) }
        n >>= 1
        if n > 0 { base = multiply(base, base) }
    }
    return -result[5]  // e_t = (A^t)[1, 2] applied to (0, 0, 1)
}

/// The number of steps in which the mean (first moment) of SGD with momentum relaxes by a factor
/// e along a direction of curvature x = λh: −1/ln ρ with ρ the spectral radius of the linear part
/// [[μ, x], [−μ, 1 − x]] of the mean recursion (the roots of z² − (1 + μ − x) z + μ); infinity
/// where ρ ≥ 1 (a flat, negative or unstable direction never relaxes). Second moments relax twice
/// as fast.
public func relaxationSteps(curvature x: Double, momentum mu: Double) -> Double {
    let b = 1 + mu - x
    let disc = b * b - 4 * mu
    let rho = disc >= 0 ? max(abs(0.5 * (b + disc.squareRoot())), abs(0.5 * (b - disc.squareRoot()))) : mu.squareRoot()
    guard rho < 1 else { return .infinity }
    guard rho > 0 else { return 0 }
    return -1 / log(rho)
}

/// The mean displacement E[w_t − w*] of SGD driven by its own fluctuation (see `MeanDrift`), from a
/// Hessian-vector product and a curvature gradient, for Σ given on eigenvectors of H:
/// Σ = Q S Qᵀ with Q's rows the eigenvectors q_i (H q_i = h_i q_i) and S (k × k) the block of Σ on
/// them — the exact top-k block of `networkFluctuation` (λ X_k), or the whole dense Σ with all P
/// eigenvectors for a small model.
///
/// Steps: S = U diag(s) Uᵀ; g = Σ_l s_l ∇(u_lᵀ H(w) u_l) with u_l = Qᵀ U e_l (k curvature-gradient
/// products); then for each t, E[e_t] = −(λ/2) ψ_t(λH) g: exactly on span Q, by one shared Krylov
/// basis of at most `krylovSteps` Hessian-vector products on the rest (none when Q spans R^P).
///
/// Validity: second order in w − w*, Σ at its stationary value from the start (the top directions
/// reach it within their relaxation time, `relaxationSteps`), and only the given block of Σ drives
/// the drift (`excessLossCovered` against the whole ½Tr[HΣ] says how much of it that is).
///
/// - Parameters:
///   - hessian: H at w*.
///   - curvatureGradient: out ← ∇_w(vᵀH(w)v) at w*.
///   - eigenvalues: h_i (finite), one per row of `eigenvectorRows`.
///   - eigenvectorRows: k × P, orthonormal rows (1 ≤ k ≤ P).
///   - sigmaBlock: S = QᵀΣQ, k × k symmetric.
///   - learningRate: λ > 0.
///   - momentum: μ ∈ [0, 1).
///   - steps: the steps t ≥ 0 (at least one).
///   - krylovSteps: the largest Krylov dimension for the part outside span Q.
///   - tolerance: the Krylov tolerance (relative change).
/// - Throws: `invalidArgument`, `numericalFailure` (NaN/Inf from a product), or what a product
///   closure throws.
public func meanDrift(
    hessian: HessianOperator, curvatureGradient: @escaping CurvatureGradient, eigenvalues: [Double],
    eigenvectorRows: Matrix, sigmaBlock: Matrix, learningRate lambda: Double, momentum: Double = 0,
    steps: [Int], krylovSteps: Int = 60, tolerance: Double = 1e-10
) throws -> MeanDrift {
    let p = hessian.dimension
    let k = eigenvalues.count
    _ = try Validation.learningRate(lambda, name: "learningRate")
    let mu = try Validation.momentum(momentum)
    guard k >= 1, eigenvectorRows.rows == k, eigenvectorRows.columns == p else {
        throw SGDNoiseError.invalidArgument(
            "eigenvectorRows must be k × P = \(k) × \(p) with k ≥ 1, got \(eigenvectorRows.rows) × \(eigenvectorRows.columns)")
    }
    guard sigmaBlock.rows == k, sigmaBlock.columns == k else {
        throw SGDNoiseError.invalidArgument("sigmaBlock must be k × k = \(k) × \(k), got \(sigmaBlock.rows) × \(sigmaBlock.columns)")
    }
    try sigmaBlock.requireFinite("sigmaBlock")
    try sigmaBlock.requireSymmetric("sigmaBlock")
    guard !steps.isEmpty, steps.allSatisfy({ $0 >= 0 }) else {
        throw SGDNoiseError.invalidArgument("steps must be a non-empty list of steps t ≥ 0")
    }
    guard krylovSteps >= 1 else { throw SGDNoiseError.invalidArgument("krylovSteps must be at least 1, got \(krylovSteps)") }
    let deflation = try Deflation(eigenvalues: eigenvalues, eigenvectorRows: eigenvectorRows)
    let gradientOperator = try HessianOperator(dimension: p, product: curvatureGradient)  // counted and checked
    let startProducts = hessian.productCount

    // g = Σ_l s_l ∇(u_lᵀ H u_l), u_l = Qᵀ U e_l.
    let block = try SymmetricEigendecomposition(sigmaBlock)
    var g = [Double](repeating: 0, count: p)
    var u = [Double](repeating: 0, count: p)
    // out ← Qᵀ c (a combination of the eigenvector rows): x ← x − Qᵀ(−c) from x = 0, one GEMV.
    func combineRows(_ c: [Double], into out: UnsafeMutablePointer<Double>) {
        out.initialize(repeating: 0, count: p)
        eigenvectorRows.elements.withUnsafeBufferPointer { q in
            subtractRows(q.baseAddress!, rows: k, length: p, coefficients: c.map { -$0 }, from: out)
        }
    }
    for l in 0..<k where block.values[l] != 0 {
        u.withUnsafeMutableBufferPointer { combineRows((0..<k).map { block.eigenvectorRows[l, $0] }, into: $0.baseAddress!) }
        let gradient = try gradientOperator.apply(u)
        for c in 0..<p { g[c] += block.values[l] * gradient[c] }
    }
    var covered = 0.0
    for i in 0..<k { covered += 0.5 * eigenvalues[i] * sigmaBlock[i, i] }

    // E[e_t] = −(λ/2) ψ_t(λH) g.
    let functions: [(Double) -> Double] = steps.map { t in { h in -0.5 * lambda * driftResponse(steps: t, curvature: lambda * h, momentum: mu) } }
    var displacements = Matrix(rows: steps.count, columns: p)
    var converged = true
    if k < p {
        let results = try krylovMatrixFunctions(functions, hessian: hessian, vector: g, deflation: deflation,
                                                tolerance: tolerance, maxSteps: krylovSteps)
        for (r, result) in results.enumerated() {
            for c in 0..<p { displacements[r, c] = result.value[c] }
            converged = converged && result.converged
        }
    } else {
        // Q spans R^P: exact, Q ψ(Θ) Qᵀ g.
        var coefficients = [Double](repeating: 0, count: k)
        eigenvectorRows.elements.withUnsafeBufferPointer { q in
            projectRows(q.baseAddress!, rows: k, length: p, g, into: &coefficients)
        }
        displacements.elements.withUnsafeMutableBufferPointer { out in
            for (r, f) in functions.enumerated() {
                combineRows((0..<k).map { f(eigenvalues[$0]) * coefficients[$0] }, into: out.baseAddress! + r * p)
            }
        }
    }
    try displacements.requireFinite("the mean displacement")
    var onEigenvectors = Matrix(rows: steps.count, columns: k)
    for r in 0..<steps.count {
        var column = [Double](repeating: 0, count: k)
        eigenvectorRows.elements.withUnsafeBufferPointer { q in
            displacements.elements.withUnsafeBufferPointer { d in
                projectRows(q.baseAddress!, rows: k, length: p, d.baseAddress! + r * p, into: &column)
            }
        }
        for i in 0..<k { onEigenvectors[r, i] = column[i] }
    }
    var projections = [Double](repeating: 0, count: k)
    eigenvectorRows.elements.withUnsafeBufferPointer { q in
        projectRows(q.baseAddress!, rows: k, length: p, g, into: &projections)
    }
    let offsets = (0..<k).map { eigenvalues[$0] > 0 ? -0.5 * projections[$0] / eigenvalues[$0] : .nan }
    return MeanDrift(
        learningRate: lambda, momentum: mu, curvatureGradient: g, excessLossCovered: covered, steps: steps,
        displacements: displacements, eigenvectorDisplacements: onEigenvectors, stationaryOffsets: offsets,
        converged: converged, hessianProducts: hessian.productCount - startProducts,
        curvatureGradientProducts: gradientOperator.productCount)
}
