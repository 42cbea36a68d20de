/// An estimate of Tr g(H) with its statistical error.
public struct TraceEstimate: Sendable, Equatable {
    /// The estimate: `exactPart` + the mean of `probeEstimates`.
    public let value: Double
    /// The standard error of `value`: s / √probes, s the sample standard deviation of the probe
    /// estimates (∞ with a single probe). The exact part and the quadrature error (negligible once
    /// the steps resolve g) are not included.
    public let standardError: Double
    /// Σ_i g(θ_i) over the deflated eigenpairs (0 without deflation).
    public let exactPart: Double
    /// One estimate of Tr[Π g(H) Π] per probe: ‖z‖² Σ_l τ_l² g(θ_l) (see
    /// `StochasticLanczosQuadrature`).
    public let probeEstimates: [Double]
    /// The Hessian-vector products the estimate used.
    public let productCount: Int
}

/// The mean and its standard error (sample standard deviation over √n; ∞ for one probe):
/// the statistics of every probe-based estimate.
func meanAndStandardError(_ x: [Double]) -> (Double, Double) {
    let n = Double(x.count)
    let mean = x.reduce(0, +) / n
    guard x.count > 1 else { return (mean, .infinity) }
    let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
    return (mean, (variance / n).squareRoot())
}

/// Stochastic Lanczos quadrature (Golub & Meurant; Ubaru, Chen & Saad 2017): the spectral density of
/// a matrix-free Hessian and the traces Tr g(H), from `probes` random vectors and `steps` Lanczos
/// steps each.
///
/// For a probe z (Rademacher: z_i = ±1, so E zzᵀ = I and ‖z‖² = P), `steps` = s steps of the
/// Lanczos recurrence from v_0 = z/‖z‖ (see `LanczosRecurrence`) give T_s = Y Θ Yᵀ, and
///
///     zᵀ g(H) z ≈ ‖z‖² e_1ᵀ g(T_s) e_1 = ‖z‖² Σ_l τ_l² g(θ_l),   τ_l = Y_{0l},
///
/// the s-point Gauss quadrature of the spectral measure of H seen from z, exact for polynomials g of
/// degree < 2s. The recurrence stops early when the Krylov space is invariant, to within
/// β ≤ √ε ‖H v‖ (a neglected coupling β changes e_1ᵀ g(T) e_1 by O(β²), below rounding): the rule
/// is then exact for every g. Hutchinson's identity Tr g(H) = E[zᵀ g(H) z] then gives the estimate
///
///     Tr g(H) ≈ (1/n) Σ_probes ‖z‖² Σ_l τ_l² g(θ_l) = Σ ω_l g(θ_l),   ω_l = ‖z‖² τ_l² / n,
///
/// with a standard error from the spread of the n probe estimates. Its cost is n · s products,
/// independent of P otherwise; its memory (s + 1) vectors of P doubles per probe of a group: the
/// probes advance in groups of `hessian.blockSize` in lockstep, one block product per step for the
/// group (`runInLockstep`; the same rules as one probe at a time, to the bit when the block product
/// gives each row the bits of the single product).
///
/// **Deflation.** With exact eigenpairs (θ_i, q_i) (`Deflation`), the probes are projected,
/// z ← Π z with Π = I − QQᵀ, and kept orthogonal to Q at every step; then
///
///     Tr g(H) = Σ_i g(θ_i) + E[zᵀ Π g(H) Π z],
///
/// the first sum exact (nodes θ_i with weight 1 in `spectrum`). When a few large eigenvalues
/// dominate g(H) this removes most of the variance. The probe weights then sum to ‖Π z‖², whose
/// mean is P − q.
///
/// All the products are taken by `init`; every g is then evaluated from the stored quadrature rules
/// (`spectrum`, `traceEstimate(of:)`) without further products.
public struct StochasticLanczosQuadrature: Sendable {
    /// One Gauss quadrature rule per probe: nodes θ_l and weights ‖z‖² τ_l² (summing to ‖z‖²).
    public struct ProbeRule: Sendable, Equatable {
        /// The Ritz values θ_l of T_s, ascending.
        public let nodes: [Double]
        /// ‖z‖² τ_l², τ_l the first entry of the eigenvector of θ_l.
        public let weights: [Double]

        init(nodes: [Double], weights: [Double]) {
            self.nodes = nodes
            self.weights = weights
        }

        /// The rule of the Lanczos recurrence run from z/‖z‖ (‖z‖² = `normSquared`).
        init(_ lanczos: LanczosRecurrence, normSquared: Double) throws {
            let (theta, y) = try lanczos.tridiagonalEigen()
            let s = theta.count
            self.init(nodes: theta, weights: (0..<s).map { l in normSquared * y[l * s] * y[l * s] })
        }
    }

    /// P.
    public let dimension: Int
    /// The number of probe vectors n.
    public let probes: Int
    /// The largest number of Lanczos steps per probe asked for (a probe takes fewer when its
    /// Krylov space is invariant, and at most P − q).
    public let steps: Int
    /// The quadrature rule of each probe, in the order drawn.
    public let rules: [ProbeRule]
    /// The deflated eigenvalues θ_i (empty without deflation).
    public let deflatedEigenvalues: [Double]
    /// The Hessian-vector products used (Σ over probes of their steps).
    public let productCount: Int

    /// Runs the quadrature.
    /// - Parameters:
    ///   - hessian: the operator.
    ///   - probes: n ≥ 1 Rademacher probes.
    ///   - steps: s ≥ 1 Lanczos steps per probe (capped at P − q).
    ///   - seed: the seed of the probes: equal seeds give equal results.
    ///   - deflation: exact eigenpairs to remove (see above), or nil.
    /// - Throws: `invalidArgument` (n or s < 1, a deflation of another dimension or of all P
    ///   directions), `numericalFailure` (NaN/Inf from the product, `dstev` failing),
    ///   `outOfMemory`, or whatever the product closure throws.
    public init(
        hessian: HessianOperator, probes: Int = 30, steps: Int = 30, seed: UInt64 = 0,
        deflation: Deflation? = nil
    ) throws {
        guard probes >= 1 else { throw SGDNoiseError.invalidArgument("probes must be at least 1, got \(probes)") }
        guard steps >= 1 else { throw SGDNoiseError.invalidArgument("steps must be at least 1, got \(steps)") }
        let p = hessian.dimension
        try deflation?.requireDimension(p)
        let q = deflation?.count ?? 0
        let deflated = try deflation.map { try KrylovBasis(deflating: $0) }
        var rng = Xoshiro256StarStar(seed: seed)
        var rules: [ProbeRule] = []
        var products = 0
        // Groups of `hessian.blockSize` probes advance in lockstep (one block product per step);
        // the signs are drawn probe after probe, as one at a time would draw them.
        try forEachProbeGroup(count: probes, hessian: hessian) { group in
            var running: [QuadratureProbe] = []
            var groupRules = [ProbeRule](repeating: ProbeRule(nodes: [], weights: []), count: group.count)
            for slot in 0..<group.count {
                let basis = try KrylovBasis(dimension: p, capacity: min(steps, p - q) + 1)
                let z = basis.vector(0)
                rng.fillRademacher(z, count: p)
                var normSquared = Double(p)
                if let deflated {
                    basis.orthogonalise(z, against: 0, extra: UnsafePointer(deflated.storage), extraCount: q)
                    let norm = longNorm(z, count: p)
                    normSquared = norm * norm
                    guard norm > 0 else { continue }  // an empty rule
                    scaleInPlace(z, count: p, by: 1 / norm)
                } else {
                    scaleInPlace(z, count: p, by: 1 / Double(p).squareRoot())
                }
                let lanczos = try LanczosRecurrence(
                    hessian: hessian, basis: basis, deflated: deflated, deflatedCount: q,
                    deflatedValues: deflation?.eigenvalues ?? [], stopBelow: Double.ulpOfOne.squareRoot())
                running.append(QuadratureProbe(lanczos: lanczos, steps: steps, slot: slot, normSquared: normSquared))
            }
            try runInLockstep(&running, hessian: hessian)
            for probe in running {
                products += probe.lanczos.products
                groupRules[probe.slot] = try ProbeRule(probe.lanczos, normSquared: probe.normSquared)
            }
            rules += groupRules
        }
        self.dimension = p
        self.probes = probes
        self.steps = steps
        self.rules = rules
        self.deflatedEigenvalues = deflation?.eigenvalues ?? []
        self.productCount = products
    }

    /// The weighted spectrum Σ ω_l δ(θ − θ_l): the deflated eigenvalues with weight 1, then every
    /// probe's nodes with weights ‖z‖² τ_l² / n. Σ ω_l φ(θ_l) = `traceEstimate(of: φ).value`.
    /// Pass it to the O(D) models as `SymmetricOperator.weightedSpectrum(spectrum)` (docs/theory.md
    /// §8); Hutchinson's Tr H with its standard error is `traceEstimate(of: { $0 })`.
    public var spectrum: WeightedSpectrum {
        var nodes = deflatedEigenvalues
        var weights = [Double](repeating: 1, count: deflatedEigenvalues.count)
        let scale = 1 / Double(probes)
        for rule in rules {
            nodes += rule.nodes
            weights += rule.weights.map { $0 * scale }
        }
        return WeightedSpectrum(uncheckedNodes: nodes, weights: weights)
    }

    /// The Hutchinson estimate of Tr g(H) from the stored quadrature rules (no further products):
    /// per probe ‖z‖² Σ_l τ_l² g(θ_l), averaged, plus Σ_i g(θ_i) over the deflated eigenvalues.
    /// - Throws: `numericalFailure` when g is not finite at a node.
    public func traceEstimate(of g: (Double) -> Double) throws -> TraceEstimate {
        let exact = deflatedEigenvalues.reduce(0) { $0 + g($1) }
        let estimates = rules.map { rule in zip(rule.nodes, rule.weights).reduce(0) { $0 + $1.1 * g($1.0) } }
        guard exact.isFinite, estimates.allSatisfy(\.isFinite) else {
            throw SGDNoiseError.numericalFailure("traceEstimate: g is not finite at a node of the quadrature")
        }
        let (mean, standardError) = meanAndStandardError(estimates)
        return TraceEstimate(value: exact + mean, standardError: standardError, exactPart: exact,
                             probeEstimates: estimates, productCount: productCount)
    }
}

/// Tr g(H) by stochastic Lanczos quadrature (see `StochasticLanczosQuadrature`), with its standard
/// error across probes:
///
///     Tr g(H) ≈ Σ_i g(θ_i) + (1/n) Σ_probes ‖Πz‖² Σ_l τ_l² g(θ_l).
///
/// - Parameters:
///   - g: the function (finite on the spectrum of H).
///   - hessian: the operator.
///   - probes: n ≥ 2 (two are needed for a standard error).
///   - steps: s ≥ 1 Lanczos steps per probe.
///   - seed: the seed of the probes.
///   - deflation: exact eigenpairs (θ_i, q_i) to take out of the estimate, or nil.
/// - Throws: as `StochasticLanczosQuadrature.init`, `invalidArgument` for n < 2, and
///   `numericalFailure` when g is not finite at a node.
public func traceEstimate(
    of g: (Double) -> Double, hessian: HessianOperator, probes: Int = 30, steps: Int = 30,
    seed: UInt64 = 0, deflation: Deflation? = nil
) throws -> TraceEstimate {
    guard probes >= 2 else {
        throw SGDNoiseError.invalidArgument("probes must be at least 2 for a standard error, got \(probes)")
    }
    let quadrature = try StochasticLanczosQuadrature(
        hessian: hessian, probes: probes, steps: steps, seed: seed, deflation: deflation)
    return try quadrature.traceEstimate(of: g)
}

/// One quadrature probe: `steps` Lanczos steps from its start vector (fewer at an invariant space).
private struct QuadratureProbe: LockstepProbe {
    var lanczos: LanczosRecurrence
    let steps: Int
    /// Its place in its group of probes.
    let slot: Int
    /// ‖z‖² of the (projected) probe.
    let normSquared: Double

    var running: Bool { lanczos.count < steps && !lanczos.invariant }
    var current: UnsafePointer<Double> { lanczos.current }
    mutating func step(product: UnsafePointer<Double>) throws { try lanczos.step(product: product) }
}

extension KrylovBasis {
    /// A block holding the deflated eigenvectors as its rows.
    convenience init(deflating deflation: Deflation) throws {
        try self.init(dimension: deflation.dimension, capacity: max(deflation.count, 1))
        deflation.eigenvectorRows.elements.withUnsafeBufferPointer { e in
            if deflation.count > 0 {
                storage.update(from: e.baseAddress!, count: deflation.count * deflation.dimension)
            }
        }
    }
}
