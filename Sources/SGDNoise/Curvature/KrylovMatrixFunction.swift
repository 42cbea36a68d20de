/// The result of `krylovMatrixFunction`: g(H) v and how it was obtained.
public struct KrylovFunctionResult: Sendable, Equatable {
    /// g(H) v (P entries).
    public let value: [Double]
    /// m, the Lanczos steps taken (the dimension of the Krylov space).
    public let steps: Int
    /// The last relative change ‖f_m − f_{m−1}‖ / ‖f_m‖ of the Krylov estimate (0 when the Krylov
    /// space became invariant, where the estimate is exact).
    public let change: Double
    /// Whether `change` fell to the tolerance (or the Krylov space became invariant).
    public let converged: Bool
    /// The Hessian-vector products used (one per step).
    public let productCount: Int
}

/// g(H) v for a matrix-free Hessian by the Lanczos method (Gallopoulos & Saad 1992; Higham,
/// *Functions of Matrices*, ch. 13):
///
///     g(H) v ≈ f_m = ‖v‖ V_m g(T_m) e_1 = ‖v‖ V_m Y g(Θ) Yᵀ e_1,
///
/// with V_m the Lanczos basis of span{v, Hv, …, H^{m−1}v} (the plain recurrence, see
/// `LanczosRecurrence`) and
/// T_m = Y Θ Yᵀ tridiagonal (V_mᵀ H V_m in exact arithmetic). The result is exact for polynomials
/// g of degree < m, and for every g once the Krylov space is invariant. With V_m orthonormal (to the
/// accuracy that matters here) the change between
/// successive estimates is ‖f_m − f_{m−1}‖ = ‖y_m − (y_{m−1}, 0)‖ for the coefficient vectors
/// y_m = ‖v‖ g(T_m) e_1, computed without touching P-vectors; the iteration stops when it falls to
/// `tolerance` · ‖y_m‖. Used for traces Tr[g(H) C] = E_z[(g(H) z)ᵀ C z] over probes z.
///
/// **Deflation.** With exact eigenpairs (θ_i, q_i), v is split as v = QQᵀv + Πv (Π = I − QQᵀ) and
///
///     g(H) v = Q g(Θ) Qᵀ v + g(H) Π v,
///
/// the first term exact and the Krylov method run on Πv, orthogonal to Q at every step, where the
/// spectrum lacks the deflated eigenvalues (faster convergence when they are outliers of g).
///
/// Memory: m + 2 vectors of P doubles (the basis grows as needed).
///
/// - Parameters:
///   - g: the function, finite on the spectrum of H.
///   - hessian: the operator.
///   - vector: v, P finite entries.
///   - deflation: exact eigenpairs to split off, or nil.
///   - tolerance: the relative change that stops the iteration, in (0, 1); default 1e-12.
///   - maxSteps: the largest Krylov dimension m ≥ 1 (capped at P − q); default 100. Not converged by
///     then: the last estimate is returned with `converged == false`.
/// - Throws: `invalidArgument` (v's length or entries, tolerance, maxSteps, a deflation of another
///   dimension), `numericalFailure` (NaN/Inf from the product or from g at a Ritz value,
///   `dstev` failing), `outOfMemory`, or whatever the product closure throws.
public func krylovMatrixFunction(
    _ g: (Double) -> Double, hessian: HessianOperator, vector v: [Double],
    deflation: Deflation? = nil, tolerance: Double = 1e-12, maxSteps: Int = 100
) throws -> KrylovFunctionResult {
    try withoutActuallyEscaping(g) { g in
        try krylovMatrixFunctions([g], hessian: hessian, vector: v, deflation: deflation, tolerance: tolerance,
                                  maxSteps: maxSteps)[0]
    }
}

/// g_f(H) v for several functions g_f from one Krylov basis (the products are shared): as
/// `krylovMatrixFunction`, stopping when every estimate's change has fallen to `tolerance`.
/// Each result reports its own change and the shared steps and products.
func krylovMatrixFunctions(
    _ functions: [(Double) -> Double], hessian: HessianOperator, vector v: [Double],
    deflation: Deflation? = nil, tolerance: Double = 1e-12, maxSteps: Int = 100
) throws -> [KrylovFunctionResult] {
    try krylovMatrixFunctions(functions, hessian: hessian, vectors: [v], deflation: deflation, tolerance: tolerance,
                              maxSteps: maxSteps)[0]
}

/// g_f(H) v_i for several vectors v_i at once: as `krylovMatrixFunctions` for each vector, the
/// vectors advancing in lockstep with one block product per step for those still running
/// (`runInLockstep`; all of `vectors` form one group: the caller sizes it, its memory is that of
/// one Krylov basis per vector). The results, one list per vector, equal those of one vector at a
/// time (to the bit when the block product gives each row the bits of the single product).
func krylovMatrixFunctions(
    _ functions: [(Double) -> Double], hessian: HessianOperator, vectors: [[Double]],
    deflation: Deflation? = nil, tolerance: Double = 1e-12, maxSteps: Int = 100
) throws -> [[KrylovFunctionResult]] {
    try krylovMatrixFunctionsAndRules(functions, hessian: hessian, vectors: vectors, deflation: deflation,
                                      tolerance: tolerance, maxSteps: maxSteps, quadrature: false).results
}

/// As `krylovMatrixFunctions` for several vectors; with `quadrature`, every Krylov run goes on to
/// `maxSteps` steps (unless its space becomes invariant, judged at β ≤ ε‖Hv‖ as for g(H)v, where
/// `StochasticLanczosQuadrature` stops at √ε) after its estimates have converged (the estimates
/// then move at rounding level; `converged` reports the last step's change), and
/// each vector's Gauss quadrature rule of vᵀψ(H)v comes with it: the Ritz values θ_l of its T_m
/// as nodes, ‖Πv‖²τ_l² (τ_l = Y[0, l]) as weights, as `StochasticLanczosQuadrature` forms them —
/// so that one Krylov space per probe serves both a trace estimator and the spectral density
/// (an empty rule when Πv = 0).
func krylovMatrixFunctionsAndRules(
    _ functions: [(Double) -> Double], hessian: HessianOperator, vectors: [[Double]],
    deflation: Deflation?, tolerance: Double, maxSteps: Int, quadrature: Bool
) throws -> (results: [[KrylovFunctionResult]], rules: [StochasticLanczosQuadrature.ProbeRule]) {
    let p = hessian.dimension
    for v in vectors {
        guard v.count == p else {
            throw SGDNoiseError.invalidArgument("vector must have \(p) entries, got \(v.count)")
        }
        if let i = v.firstIndex(where: { !$0.isFinite }) {
            throw SGDNoiseError.invalidArgument("vector has a non-finite entry \(v[i]) at \(i)")
        }
    }
    guard tolerance.isFinite, tolerance > 0, tolerance < 1 else {
        throw SGDNoiseError.invalidArgument("tolerance must lie in (0, 1), got \(tolerance)")
    }
    guard maxSteps >= 1 else { throw SGDNoiseError.invalidArgument("maxSteps must be at least 1, got \(maxSteps)") }
    try deflation?.requireDimension(p)
    guard functions.count >= 1 else { return (vectors.map { _ in [] }, []) }
    let deflated = try deflation.map { try KrylovBasis(deflating: $0) }
    var probes = try vectors.map {
        try KrylovFunctionProbe(functions, hessian: hessian, vector: $0, deflation: deflation, deflated: deflated,
                                tolerance: tolerance, maxSteps: maxSteps, runToLimit: quadrature)
    }
    try runInLockstep(&probes, hessian: hessian)
    let rules = quadrature ? try probes.map { try $0.rule() } : []
    return (probes.map { $0.results() }, rules)
}

/// The Krylov iteration of `krylovMatrixFunctions` for one vector v: the exact deflated parts at
/// creation, then one Lanczos step per `step` until every function's estimate has converged (or
/// the space is invariant, or the steps run out), then `results`.
private struct KrylovFunctionProbe: LockstepProbe {
    let functions: [(Double) -> Double]
    let tolerance: Double
    let limit: Int
    /// Whether to take all `limit` steps even after the estimates have converged (for a quadrature rule).
    let runToLimit: Bool
    /// ‖Πv‖.
    let norm: Double
    /// The exact parts Q g_f(Θ) Qᵀ v.
    let values: [[Double]]
    /// The recurrence on Πv/‖Πv‖ (nil when Πv = 0: no Krylov part).
    var lanczos: LanczosRecurrence?
    /// y_m per function.
    var coefficients: [[Double]]
    var changes: [Double]
    var converged = false
    var finished = false

    init(
        _ functions: [(Double) -> Double], hessian: HessianOperator, vector v: [Double], deflation: Deflation?,
        deflated: KrylovBasis?, tolerance: Double, maxSteps: Int, runToLimit: Bool = false
    ) throws {
        let p = hessian.dimension
        let q = deflation?.count ?? 0
        let n = functions.count
        self.functions = functions
        self.tolerance = tolerance
        limit = min(maxSteps, p - q)
        self.runToLimit = runToLimit
        coefficients = [[Double]](repeating: [], count: n)
        changes = [Double](repeating: .infinity, count: n)

        // The exact parts Q g(Θ) Qᵀ v.
        var values = [[Double]](repeating: [Double](repeating: 0, count: p), count: n)
        if let deflation, let deflated, q > 0 {
            var c = [Double](repeating: 0, count: q)
            v.withUnsafeBufferPointer { x in
                c.withUnsafeMutableBufferPointer { cp in
                    projectRows(deflated.storage, rows: q, length: p, x.baseAddress!, into: cp.baseAddress!)
                }
            }
            for f in 0..<n {
                let gTheta = deflation.eigenvalues.map(functions[f])
                guard gTheta.allSatisfy(\.isFinite) else {
                    throw SGDNoiseError.numericalFailure("krylovMatrixFunction: g is not finite at a deflated eigenvalue")
                }
                let minus = (0..<q).map { -gTheta[$0] * c[$0] }  // out − Qᵀ(−g(Θ)c), one pass
                values[f].withUnsafeMutableBufferPointer { out in
                    subtractRows(deflated.storage, rows: q, length: p, coefficients: minus, from: out.baseAddress!)
                }
            }
        }
        self.values = values

        // The Krylov part on Πv.
        let basis = try KrylovBasis(dimension: p, capacity: min(limit, 32) + 2)
        let start = basis.vector(0)
        v.withUnsafeBufferPointer { start.update(from: $0.baseAddress!, count: p) }
        if let deflated {
            basis.orthogonalise(start, against: 0, extra: UnsafePointer(deflated.storage), extraCount: q)
        }
        norm = limit > 0 ? longNorm(start, count: p) : 0
        guard norm > 0 else {
            finished = true
            converged = true
            changes = changes.map { _ in 0 }
            return
        }
        scaleInPlace(start, count: p, by: 1 / norm)
        lanczos = try LanczosRecurrence(
            hessian: hessian, basis: basis, deflated: deflated, deflatedCount: q,
            deflatedValues: deflation?.eigenvalues ?? [], stopBelow: Double.ulpOfOne)
    }

    var running: Bool { !finished }
    var current: UnsafePointer<Double> { lanczos!.current }

    /// One Lanczos step, the new estimates y_m and the stopping test.
    mutating func step(product: UnsafePointer<Double>) throws {
        try lanczos!.step(product: product)
        let (theta, y) = try lanczos!.tridiagonalEigen()
        let m = theta.count
        for f in 0..<functions.count {
            // y_m = ‖v‖ Σ_l g(θ_l) τ_l Y[:, l], τ_l = Y[0, l].
            var current = [Double](repeating: 0, count: m)
            for l in 0..<m {
                let gl = functions[f](theta[l])
                guard gl.isFinite else {
                    throw SGDNoiseError.numericalFailure(
                        "krylovMatrixFunction: g is not finite at the Ritz value \(theta[l])")
                }
                let factor = norm * gl * y[l * m]
                for i in 0..<m { current[i] += factor * y[l * m + i] }
            }
            let size = current.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let previous = coefficients[f]
            var difference = 0.0
            for i in 0..<m {
                let d = current[i] - (i < previous.count ? previous[i] : 0)
                difference += d * d
            }
            difference = difference.squareRoot()
            changes[f] = size > 0 ? difference / size : (difference == 0 ? 0 : .infinity)
            coefficients[f] = current
        }
        if lanczos!.invariant {
            changes = changes.map { _ in 0 }
            converged = true
            finished = true
        } else if m >= 2 && changes.allSatisfy({ $0 <= tolerance }) && (!runToLimit || m >= limit) {
            converged = true
            finished = true
        } else if m >= limit {
            finished = true
        }
    }

    /// The Gauss quadrature rule of vᵀψ(H)v on the Krylov part: nodes θ_l, weights ‖Πv‖²τ_l².
    func rule() throws -> StochasticLanczosQuadrature.ProbeRule {
        guard let lanczos else { return StochasticLanczosQuadrature.ProbeRule(nodes: [], weights: []) }
        return try StochasticLanczosQuadrature.ProbeRule(lanczos, normSquared: norm * norm)
    }

    /// g_f(H) v = the exact part + V_m y_m, all functions in one pass over the basis.
    func results() -> [KrylovFunctionResult] {
        guard let lanczos else {
            return values.map { KrylovFunctionResult(value: $0, steps: 0, change: 0, converged: true, productCount: 0) }
        }
        let n = functions.count
        let p = lanczos.basis.dimension
        let m = coefficients[0].count
        var krylovPart = [Double](repeating: 0, count: n * p)
        krylovPart.withUnsafeMutableBufferPointer { out in
            lanczos.combine(coefficients: coefficients.flatMap { $0 }, outputs: n, from: m, into: out.baseAddress!)
        }
        return (0..<n).map { f in
            var value = values[f]
            value.withUnsafeMutableBufferPointer { out in
                krylovPart.withUnsafeBufferPointer { longAxpy(1, $0.baseAddress! + f * p, out.baseAddress!, count: p) }
            }
            return KrylovFunctionResult(value: value, steps: m, change: changes[f],
                                        converged: converged || changes[f] <= tolerance, productCount: lanczos.products)
        }
    }
}
