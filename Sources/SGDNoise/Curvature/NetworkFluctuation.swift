/// The product out ← C v of a noise covariance known only through it (docs/theory.md §2: the
/// noise operator of per-sample gradients, O(N P) per product). Same contract as
/// `HessianOperator.Product`: write all P entries of `out`; throw to stop.
public typealias NoiseProduct = HessianOperator.Product

/// An estimate with its standard error over random probes (docs/theory.md §8).
public struct Estimate: Sendable, Equatable {
    /// The estimate.
    public let value: Double
    /// Its standard error: the probes' sample standard deviation over √probes (0 where the value
    /// is exact).
    public let standardError: Double

    /// An estimate and its standard error.
    public init(value: Double, standardError: Double) {
        self.value = value
        self.standardError = standardError
    }
}

/// The stationary fluctuation of SGD at a minimum of a network, matrix-free (docs/theory.md §8).
///
/// Everything is computed in the coordinates of the preconditioned Hessian H̃ = Λ^{1/2} H Λ^{1/2}
/// (scalar λ: H̃ = λH, same eigenvectors as H), with C̃ = Λ^{1/2} C Λ^{1/2} and
/// X = Λ^{−1/2} Σ Λ^{−1/2}: Theorem 1 is diagonal in H̃'s eigenbasis, q_iᵀ X q_j = q_iᵀ C̃ q_j / d_ij
/// with d_ij = (1−μ)(m_i + m_j − m_i m_j/(1+μ)) + c₂(m_i − m_j)², c₂ = μ/(1−μ²).
public struct NetworkFluctuation: Sendable {
    /// Λ as given (a scalar λ or a diagonal).
    public let learningRate: LearningRate
    /// μ.
    public let momentum: Double
    /// m_1 ≥ … ≥ m_k: the k largest eigenvalues of H̃ (for a scalar rate, λ times H's).
    public let topEigenvalues: [Double]
    /// q_1 … q_k as the rows of a k × P matrix (orthonormal eigenvectors of H̃).
    public let topEigenvectorRows: Matrix
    /// ‖H̃ q_i − m_i q_i‖, computed from the products.
    public let topResiduals: [Double]
    /// Whether every top residual met the tolerance.
    public let topConverged: Bool
    /// The k smallest (algebraic) eigenvalues of H̃, ascending: negative ones are negative
    /// curvature, where no stationary state exists along that direction.
    public let bottomEigenvalues: [Double]
    /// Their residuals.
    public let bottomResiduals: [Double]
    /// Whether the bottom end converged within its budget of products (4 Lanczos subspaces; the
    /// whole Krylov space, exact, when P ≤ 200). When not, the
    /// values are Ritz values: upper bounds of the smallest eigenvalues, so a negative one still
    /// proves negative curvature.
    public let bottomConverged: Bool
    /// The k bottom eigenvectors (rows, k × P), in the order of `bottomEigenvalues`.
    public let bottomEigenvectorRows: Matrix
    /// q_bᵀ C̃ q_b for each bottom eigenvector (exact, one noise product each): the noise entering the
    /// flattest directions found. Along a flat one (|m| ≤ `flatTolerance` · m_1) nothing pulls back,
    /// and X_bb grows by q_bᵀC̃q_b/(1 − μ)² per step (for a scalar rate Σ_bb by λ² q_bᵀCq_b/(1 − μ)²):
    /// a random walk (docs/theory.md §3).
    public let bottomNoise: [Double]
    /// The relative size |m| ≤ flatTolerance · m_1 under which a bottom direction counts as flat.
    public let flatTolerance: Double
    /// Q_kᵀ C̃ Q_k, the noise on the top-k directions (k × k; λ Q_kᵀ C Q_k for a scalar rate).
    public let noiseBlock: Matrix
    /// X_k = Q_kᵀ X Q_k with X_ij = (Q_kᵀ C̃ Q_k)_ij / d_ij: exact for a constant C (Theorem 1,
    /// no further approximation). For a scalar rate the block of Σ itself is λ X_k
    /// (`sigmaBlock`).
    public let fluctuationBlock: Matrix
    /// Excess training loss ½Tr[HΣ] = ½Tr[g(H̃) C̃], g(m) = 1/((1−μ)(2 − m/(1+μ))): the top k
    /// exactly, the rest by Hutchinson probes with Krylov g(H̃)z (deflated). Its standard error is
    /// that of the probes.
    public let excessLoss: Estimate
    /// Tr Σ on the top-k directions, exact: λ Σ_i (X_k)_ii for a scalar rate, Σ_i d_(i) (X_k)_ii
    /// weighted by Λ for a diagonal one (Tr[Λ^{1/2} Q_k X_k Q_kᵀ Λ^{1/2}]).
    public let topTraceSigma: Double
    /// The classical critical learning rate of a constant (additive) noise: the largest stable
    /// multiple of Λ is 2(1+μ)/m_1, in the units of the given rate (λ·2(1+μ)/m_1 for a scalar λ).
    public let criticalLearningRateAdditive: Double
    /// The critical learning rate of the multiplicative noise of Thm 5 near a minimum,
    /// C(Σ) = (1/S)(Tr[HΣ]H − HΣH) + C₀: the largest c with every e_i = d_ii + m_i²/S > 0 and
    /// (1/S) Σ_i (c m_i)²/e_i(c m_i) < 1 (docs/theory.md §8), summed over the whole spectrum (top k
    /// exactly, the rest from stochastic Lanczos quadrature), in the units of the given rate; its
    /// standard error is over the probes. Nil without a batch size.
    public let criticalLearningRateMultiplicative: Estimate?
    /// Hessian-vector products used (H̃ products: one H product each).
    public let hessianProducts: Int
    /// Noise products used.
    public let noiseProducts: Int
    /// The number of probes.
    public let probes: Int

    /// λ X_k, the block Q_kᵀ Σ Q_k of the fluctuation on the top-k Hessian eigenvectors, for a
    /// scalar rate; nil for a diagonal one (the directions are then Λ^{−1/2} q_i).
    public var sigmaBlock: Matrix? {
        guard case .scalar(let lambda) = learningRate else { return nil }
        return lambda * fluctuationBlock
    }

    /// The steps in which the mean relaxes (by a factor e) along the slowest of the top-k
    /// directions, m_k: the block of Σ on them is stationary after a few of these (second moments
    /// relax twice as fast). See `relaxationSteps(curvature:momentum:)`.
    public var topRelaxationSteps: Double {
        relaxationSteps(curvature: topEigenvalues.last ?? 0, momentum: momentum)
    }

    /// The same for the smallest eigenvalue found at the bottom of the spectrum: the slowest
    /// direction of all; infinity when it is flat or negative (no stationary state along it: a run
    /// never becomes stationary as a whole, and its mean drifts there — `meanDrift`).
    public var slowestRelaxationSteps: Double {
        relaxationSteps(curvature: bottomEigenvalues.first ?? 0, momentum: momentum)
    }

    /// The number of bottom directions that are flat (|m| ≤ `flatTolerance` · m_1).
    public var flatCount: Int {
        bottomEigenvalues.filter { abs($0) <= flatTolerance * (topEigenvalues.first ?? 0) }.count
    }

    /// Σ over the flat bottom directions of q_bᵀC̃q_b/(1 − μ)²: the growth per step of the trace of
    /// X on them (for a scalar rate λ, multiply by λ for Tr Σ): how fast SGD random-walks along
    /// the flat directions found. Zero when no noise enters them (e.g. per-sample gradients
    /// orthogonal to a null space of H).
    public var flatDiffusionPerStep: Double {
        let top = topEigenvalues.first ?? 0
        var total = 0.0
        for (m, c) in zip(bottomEigenvalues, bottomNoise) where abs(m) <= flatTolerance * top { total += c }
        return total / ((1 - momentum) * (1 - momentum))
    }

    /// Whether H̃ has an eigenvalue below −`tolerance` · m_1 (negative curvature: not a minimum
    /// along that direction).
    public func hasNegativeCurvature(tolerance: Double = 1e-6) -> Bool {
        (bottomEigenvalues.first ?? 0) < -tolerance * (topEigenvalues.first ?? 0)
    }
}

/// The fluctuation of SGD at a minimum of a network from a Hessian-vector product and a noise
/// product, never forming a P × P matrix (docs/theory.md §8).
///
/// Steps: Lanczos for the k largest and the k smallest eigenpairs of H̃ (residual tolerance
/// `tolerance`); the noise entering the k bottom directions (k noise products); the exact k × k
/// block of Σ from k noise products; the excess loss ½Tr[HΣ] with the
/// top k exactly and `probes` deflated Rademacher probes for the rest (one Krylov g(H̃)z of at most
/// `steps` products and one noise product each); when a batch size is given, the stochastic
/// Lanczos quadrature of the deflated spectrum for the multiplicative critical learning rate, from
/// the same probes and Krylov spaces (each then run to `steps` products: its Gauss rule). Memory
/// O((k + steps) P).
///
/// - Parameters:
///   - hessian: H (its `productCount` advances).
///   - noise: out ← C v, C the noise covariance at the minimum (for the minibatch size used).
///   - learningRate: `.scalar(λ)` or `.diagonal(d)` (a dense matrix has no matrix-free root).
///   - momentum: μ ∈ [0, 1).
///   - k: eigenpairs at each end, 1 ≤ k, 2k < P.
///   - probes: Rademacher probes (≥ 2) for the estimates.
///   - steps: Lanczos steps per probe.
///   - batchSize: S for the multiplicative critical learning rate (nil: not computed).
///   - tolerance: relative residual tolerance of the eigenpairs.
///   - seed: the seed of every random vector: equal seeds give equal results.
/// - Throws: `unstable` when m_1 ≥ 2(1+μ) (with the additive critical learning rate);
///   `invalidArgument`, `notPositiveDefinite`, `numericalFailure` (NaN/Inf from a product), or what
///   a product closure throws.
public func networkFluctuation(
    hessian: HessianOperator, noise: @escaping NoiseProduct, learningRate: LearningRate, momentum: Double = 0,
    k: Int = 10, probes: Int = 30, steps: Int = 40, batchSize: Int? = nil, tolerance: Double = 1e-8,
    seed: UInt64 = 0
) throws -> NetworkFluctuation {
    try networkFluctuation(
        hessian: hessian, noiseOperator: try HessianOperator(dimension: hessian.dimension, product: noise),
        learningRate: learningRate, momentum: momentum, k: k, probes: probes, steps: steps, batchSize: batchSize,
        tolerance: tolerance, seed: seed)
}

/// `networkFluctuation(hessian:noise:…)` with the noise as an operator, so that both products
/// may come in blocks (`HessianOperator(dimension:blockSize:blockProduct:)`): the Hutchinson and
/// quadrature probes advance `hessian.blockSize` at a time in lockstep, one block Hessian product
/// per step for the probes still running (docs/theory.md §8), and the noise products of the
/// top-k block, of the bottom directions and of each group of probes go to `noiseOperator` as
/// blocks. The result equals that of single-vector operators with the same products and seed (to
/// the bit when each row of a block product has the bits of the single product); the products
/// counted are vectors. Memory O((k + blockSize · steps + max(steps, blockSize)) P): the bases, and a batch's noise products.
/// - Throws: as `networkFluctuation(hessian:noise:…)`; `invalidArgument` when the two operators'
///   dimensions differ.
public func networkFluctuation(
    hessian: HessianOperator, noiseOperator: HessianOperator, learningRate: LearningRate, momentum: Double = 0,
    k: Int = 10, probes: Int = 30, steps: Int = 40, batchSize: Int? = nil, tolerance: Double = 1e-8,
    seed: UInt64 = 0
) throws -> NetworkFluctuation {
    // The eigenpair runs and the probes create and drop bases of P-vectors in turn: one pool of
    // their memory for the whole call.
    try KrylovBasisPool.$current.withValue(KrylovBasisPool()) {
        try pooledNetworkFluctuation(
            hessian: hessian, noiseOperator: noiseOperator, learningRate: learningRate, momentum: momentum, k: k,
            probes: probes, steps: steps, batchSize: batchSize, tolerance: tolerance, seed: seed)
    }
}

private func pooledNetworkFluctuation(
    hessian: HessianOperator, noiseOperator: HessianOperator, learningRate: LearningRate, momentum: Double,
    k: Int, probes: Int, steps: Int, batchSize: Int?, tolerance: Double, seed: UInt64
) throws -> NetworkFluctuation {
    let mu = try Validation.momentum(momentum)
    if let s = batchSize { try Validation.batchSize(s) }
    guard probes >= 2 else { throw SGDNoiseError.invalidArgument("probes must be at least 2 for a standard error, got \(probes)") }
    let p = hessian.dimension
    guard noiseOperator.dimension == p else {
        throw SGDNoiseError.invalidArgument(
            "the noise operator has dimension \(noiseOperator.dimension), the Hessian \(p)")
    }
    let startProducts = hessian.productCount
    let startNoiseProducts = noiseOperator.productCount
    let hTilde = try HessianOperator(preconditioning: hessian, learningRate: learningRate)
    let noiseTilde = try HessianOperator(preconditioning: noiseOperator,
                                         learningRate: learningRate)  // C̃ = Λ^{1/2} C Λ^{1/2}, counted and checked

    // 1. The two ends of the spectrum of H̃. The top converges fast (a network's large
    // eigenvalues are few and separated); the bottom is a bulk piled up near zero, often hugely
    // degenerate, where full convergence can take thousands of products. Its Ritz values are
    // upper bounds of the true ones (a negative one proves negative curvature), so it gets a budget
    // of a few subspaces and reports whether it converged.
    let ends = try lanczosEigenpairs(hTilde, count: k, which: .largest, tolerance: tolerance, seed: seed)
    // (A small model, P ≤ 200, gets the whole Krylov space instead: exact in P products.)
    let whole = p <= 200
    let subspace = whole ? p : min(max(2 * k + 1, 20), p)
    let low = try lanczosEigenpairs(hTilde, count: k, which: .smallest, tolerance: tolerance, maxSubspace: subspace,
                                    maxProducts: (whole ? 2 : 4) * subspace + k, seed: seed &+ 2)
    let m = ends.eigenvalues
    let topRows = ends.eigenvectorRows
    let mMax = m[0]
    let scale = learningRate.callerScale
    let additive = mMax > 0 ? scale * 2 * (1 + mu) / mMax : .infinity
    guard mMax < 2 * (1 + mu) else {
        throw SGDNoiseError.unstable(
            "the largest eigenvalue of the preconditioned Hessian is \(mMax), at or above 2(1+momentum) = \(2 * (1 + mu)): "
                + "SGD has no stationary distribution at this learning rate",
            criticalLearningRate: additive)
    }

    // 2. The exact block on the top k: C̃_k = Q_kᵀ C̃ Q_k, X_ij = C̃_ij / d_ij.
    let c2 = mu / (1 - mu * mu)
    // The noise entering the bottom directions (the flattest found), and C̃ on the top k: k noise
    // products each, as blocks.
    KrylovBasisPool.current?.drain()  // the eigenpair runs' bases: not held through the noise products
    let bottomProducts = try noiseTilde.apply(block: low.eigenvectorRows)
    let bottomNoise = (0..<k).map { j in
        low.eigenvectorRows.elements.withUnsafeBufferPointer { qp in
            bottomProducts.elements.withUnsafeBufferPointer { cq in
                longDot(qp.baseAddress! + j * p, cq.baseAddress! + j * p, count: p)
            }
        }
    }

    let topProducts = try noiseTilde.apply(block: topRows)
    var noiseBlock = Matrix(rows: k, columns: k)
    for j in 0..<k {
        var column = [Double](repeating: 0, count: k)
        topRows.elements.withUnsafeBufferPointer { q in
            topProducts.elements.withUnsafeBufferPointer { cq in
                projectRows(q.baseAddress!, rows: k, length: p, cq.baseAddress! + j * p, into: &column)
            }
        }
        for i in 0..<k { noiseBlock[i, j] = column[i] }
    }
    noiseBlock = noiseBlock.symmetrized
    var block = Matrix(rows: k, columns: k)
    for i in 0..<k {
        for j in 0..<k {
            block[i, j] = noiseBlock[i, j] / stationaryDenominator(m[i], m[j], momentum: mu, c2: c2)
        }
    }
    let topTrace: Double
    switch learningRate {
    case .scalar(let lambda):
        topTrace = lambda * (0..<k).reduce(0) { $0 + block[$1, $1] }
    case .diagonal(let d):
        // Tr[D^{1/2} Q X Qᵀ D^{1/2}] = Σ_ij X_ij Σ_a d_a q_ia q_ja.
        var t = 0.0
        for i in 0..<k {
            for j in 0..<k {
                var s = 0.0
                for a in 0..<p { s += d[a] * topRows[i, a] * topRows[j, a] }
                t += block[i, j] * s
            }
        }
        topTrace = t
    case .matrix:
        topTrace = .nan  // refused above by the preconditioning
    }

    // 3. Excess loss ½Tr[g(H̃)C̃]: exact on the top k, deflated probes for the rest.
    let g = { (x: Double) -> Double in 1 / ((1 - mu) * (2 - x / (1 + mu))) }
    let deflation = try Deflation(eigenvalues: m, eigenvectorRows: topRows)
    var exactPart = 0.0
    for i in 0..<k { exactPart += g(m[i]) * noiseBlock[i, i] }
    var generator = Xoshiro256StarStar(seed: seed ^ 0x9E37_79B9_7F4A_7C15)
    var perProbe = [Double]()
    // With a batch size, each probe's Krylov space also gives its quadrature rule for the
    // multiplicative critical learning rate (step 4): run to `steps` steps, one space serves both.
    var rules = [StochasticLanczosQuadrature.ProbeRule]()
    var coefficients = [Double](repeating: 0, count: k)
    // Rademacher probes z projected off the top k (z ← (I − QQᵀ)z once: the probe projects its start
    // vector again, twice, and the noise product needs Πz only to the rounding one pass leaves).
    func draw(_ count: Int, _ generator: inout Xoshiro256StarStar) -> [[Double]] {
        (0..<count).map { _ in
            var z = [Double](repeating: 0, count: p)
            z.withUnsafeMutableBufferPointer { zp in
                generator.fillRademacher(zp.baseAddress!, count: p)
                topRows.elements.withUnsafeBufferPointer { q in
                    projectRows(q.baseAddress!, rows: k, length: p, zp.baseAddress!, into: &coefficients)
                    subtractRows(q.baseAddress!, rows: k, length: p, coefficients: coefficients, from: zp.baseAddress!)
                }
            }
            return z
        }
    }
    // Batches of at most max(steps, blockSize) probes (whole groups of `blockSize`, which advance in
    // lockstep: one block product of H̃ per step for the group's Krylov g(H̃)z still running). Each
    // batch first takes its noise products C̃z, group by group as blocks, and keeps them (batch · P
    // doubles); then its Krylov runs, whose bases share the pool's memory with no noise product in
    // between (a basis held by the pool while a noise product runs would add to that product's
    // own memory). The batch's z are drawn twice from the same generator state: equal vectors,
    // without keeping them.
    let groupSize = hTilde.blockSize
    let batch = max(steps, groupSize) / groupSize * groupSize
    var first = 0
    while first < probes {
        let count = min(batch, probes - first)
        KrylovBasisPool.current?.drain()
        var noiseGenerator = generator
        var noiseProducts = [Matrix]()
        try forEachProbeGroup(count: count, hessian: hTilde) { group in
            let zs = draw(group.count, &noiseGenerator)
            noiseProducts.append(try noiseTilde.apply(block: try Matrix(rows: zs.count, columns: p, elements: zs.flatMap { $0 })))
        }
        var index = 0
        try forEachProbeGroup(count: count, hessian: hTilde) { group in
            let zs = draw(group.count, &generator)
            let (gz, groupRules) = try krylovMatrixFunctionsAndRules(
                [g], hessian: hTilde, vectors: zs, deflation: deflation, tolerance: 1e-12, maxSteps: steps,
                quadrature: batchSize != nil)
            rules += groupRules
            let cz = noiseProducts[index]
            index += 1
            for r in zs.indices {
                perProbe.append(cz.elements.withUnsafeBufferPointer { c in longDot(gz[r][0].value, c.baseAddress! + r * p, count: p) })
            }
        }
        first += count
    }
    let (mean, stderr) = meanAndStandardError(perProbe)
    let excess = Estimate(value: 0.5 * (exactPart + mean), standardError: 0.5 * stderr)

    // 4. The multiplicative critical learning rate over the whole spectrum.
    var multiplicative: Estimate?
    if let s = batchSize {
        let top = m.filter { $0 > 0 }
        let perRule = try rules.map { rule in
            try multiplicativeCriticalScale(top: top, nodes: rule.nodes, weights: rule.weights, batchSize: s, momentum: mu)
        }
        let pooled = try multiplicativeCriticalScale(
            top: top, nodes: rules.flatMap(\.nodes),
            weights: rules.flatMap { $0.weights.map { $0 / Double(probes) } }, batchSize: s, momentum: mu)
        let (_, spread) = meanAndStandardError(perRule)
        multiplicative = Estimate(value: scale * pooled, standardError: scale * spread)
    }

    return NetworkFluctuation(
        learningRate: learningRate, momentum: mu, topEigenvalues: m, topEigenvectorRows: topRows,
        topResiduals: ends.residuals, topConverged: ends.converged, bottomEigenvalues: low.eigenvalues,
        bottomResiduals: low.residuals, bottomConverged: low.converged, bottomEigenvectorRows: low.eigenvectorRows,
        bottomNoise: bottomNoise, flatTolerance: 1e-6, noiseBlock: noiseBlock, fluctuationBlock: block,
        excessLoss: excess, topTraceSigma: topTrace, criticalLearningRateAdditive: additive,
        criticalLearningRateMultiplicative: multiplicative, hessianProducts: hessian.productCount - startProducts,
        noiseProducts: noiseOperator.productCount - startNoiseProducts, probes: probes)
}

/// The largest multiple c of the learning rate with a stationary Σ under the noise of Thm 5
/// (docs/theory.md §8): every e(c m) > 0 and (1/S) Σ_i w_i φ(c m_i) < 1, where
/// e(m) = (1−μ)(2m − m²/(1+μ)) + m²/S and φ(m) = m²/e(m) = m/((1−μ)(2 − m/(1+μ)) + m/S). The sum
/// runs over `top` (weight 1) and the quadrature `nodes` (weights `weights`); nodes ≤ 0 (flat or
/// negative directions, no stationary state there in any case) are left out. φ increases in c,
/// so bisection finds the root to 1e-14 relative.
func multiplicativeCriticalScale(top: [Double], nodes: [Double], weights: [Double], batchSize: Int, momentum mu: Double) throws -> Double {
    let s = Double(batchSize)
    let positive = zip(nodes, weights).filter { $0.0 > 0 && $0.1 > 0 }
    let all = top.map { ($0, 1.0) } + positive
    guard let mMax = all.map(\.0).max(), mMax > 0 else { return .infinity }
    func denominator(_ x: Double) -> Double { (1 - mu) * (2 - x / (1 + mu)) + x / s }
    // The edge where e vanishes at m_max: (1−μ)(2 − x/(1+μ)) + x/S = 0.
    let slope = (1 - mu) / (1 + mu) - 1 / s
    var hi = slope > 0 ? 2 * (1 - mu) / slope / mMax : .infinity
    func excess(_ c: Double) -> Double {
        var total = 0.0
        for (x, w) in all {
            let den = denominator(c * x)
            if den <= 0 { return .infinity }
            total += w * c * x / den
        }
        return total / s - 1
    }
    if !hi.isFinite {
        hi = 1 / mMax
        while excess(hi) < 0 {
            hi *= 2
            guard hi < 1e300 else { return .infinity }
        }
    }
    var lo = 0.0
    for _ in 0..<200 {
        let mid = 0.5 * (lo + hi)
        if excess(mid) < 0 { lo = mid } else { hi = mid }
        if hi - lo <= 1e-14 * hi { break }
    }
    return lo
}

extension LearningRate {
    /// The scale in which a critical multiple c is reported to the caller: λ for a scalar rate
    /// (c·λ is the critical λ), 1 for a diagonal one (c·Λ is the critical preconditioner).
    var callerScale: Double {
        if case .scalar(let l) = self { return l }
        return 1
    }
}
