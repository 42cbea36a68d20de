/// The kind of minimum the noise is evaluated at [Cor 2].
public enum MinimumKind: Sendable, Equatable {
    /// Γ ≠ 0: C ≈ (2L₀(w*)/S) H₀ − (1/S) Γw*w*ᵀΓ.
    case regularized
    /// Γ = 0, L₀(w*) > 0: C ≈ (2L₀(w*)/S) H₀ — the Hessian approximation, with its exact scale.
    case nonInterpolating
    /// Γ = 0, L₀(w*) = 0: C ≈ (1/S)(Tr[H₀Σ] I − H₀Σ) H₀ — vanishes with Σ: no noise at an
    /// interpolating minimum, and C ∝ H is wrong there [Prop 2].
    case interpolating
}

/// The SGD noise near a minimum of any differentiable model trained with the MSE loss [Thm 5, Cor 2].
///
/// Near a minimum w* of L_Γ = L₀ + ½wᵀΓw, with Σ = O(1/S) and |L₀ − ℓ_i| = o(L₀),
/// C(w) ≈ (2L₀(w)/S) H₀(w) − (1/S)∇L_Γ∇L_Γᵀ, which at the three kinds of minima gives
///
///     Γ ≠ 0:               C ≈ (2L₀(w*)/S) H₀ − (1/S) Γw*w*ᵀΓ
///     Γ = 0, L₀(w*) > 0:   C ≈ (2L₀(w*)/S) H₀
///     Γ = 0, L₀(w*) = 0:   C ≈ (1/S)(Tr[H₀Σ] I − H₀Σ) H₀
///
/// - Parameters:
///   - hessian: H₀, the Hessian of the unregularised loss at w* (dense, or a spectrum in its eigenbasis).
///   - loss: L₀(w*) ≥ 0, the unregularised training loss at the minimum.
///   - batchSize: S ≥ 1.
///   - weightDecay: Γ (nil or zero: none). With Γ, `wStar` is required.
///   - wStar: w* (in the same basis as `hessian`).
///   - sigma: Σ, required at an interpolating minimum (L₀ = 0, Γ = 0).
///   - flatTolerance: eigenvalues of H₀ with |h| ≤ `flatTolerance` · max|h| are round-off and
///     taken as exact zeros (nil: the library's default 16·D·ε, as in `stationaryCovariance`).
/// - Returns: the kind of minimum and C (same representation as `hessian`; dense when Γ's term is
///   not diagonal).
/// - Throws: `invalidArgument` when the formula's C is not a covariance (an eigenvalue below
///   −`flatTolerance` · max|eigenvalue|). That happens where Thm 5 does not hold: H₀ = H − Γ is
///   indefinite at a regularised minimum of a network, or (Γw*)(Γw*)ᵀ outweighs (2L₀)H₀ in some
///   direction. The message says so; measure C from per-sample gradients there instead.
public func minimumNoise(
    hessian: SymmetricOperator, loss: Double, batchSize: Int, weightDecay: SymmetricOperator? = nil,
    wStar: [Double]? = nil, sigma: SymmetricOperator? = nil, flatTolerance: Double? = nil
) throws -> (kind: MinimumKind, noise: SymmetricOperator) {
    try hessian.validate("hessian")
    let tolerance = try Validation.flatTolerance(flatTolerance, dimension: hessian.dimension)
    let (cleaned, _) = try hessian.zeroingSmallEigenvalues(relativeTolerance: tolerance)
    return try minimumNoiseCovariance(
        hessian: cleaned, loss: loss, batchSize: batchSize, weightDecay: weightDecay, wStar: wStar, sigma: sigma,
        flatTolerance: tolerance)
}

/// `minimumNoise` on a Hessian whose round-off eigenvalues are already zero: C, checked finite
/// and positive semi-definite within `flatTolerance`.
private func minimumNoiseCovariance(
    hessian: SymmetricOperator, loss: Double, batchSize: Int, weightDecay: SymmetricOperator?,
    wStar: [Double]?, sigma: SymmetricOperator?, flatTolerance: Double
) throws -> (kind: MinimumKind, noise: SymmetricOperator) {
    let (kind, noise) = try minimumNoiseUnchecked(
        hessian: hessian, loss: loss, batchSize: batchSize, weightDecay: weightDecay, wStar: wStar, sigma: sigma)
    let checked = try noise.checkedFinite()
    try requireMinimumNoiseIsCovariance(checked, kind: kind, relativeTolerance: flatTolerance)
    return (kind, checked)
}

/// Throws unless C is positive semi-definite within `tol` · max|eigenvalue|, saying which term of
/// Thm 5 makes it fail.
private func requireMinimumNoiseIsCovariance(_ c: SymmetricOperator, kind: MinimumKind, relativeTolerance tol: Double) throws {
    let values = try c.spectrumEntries ?? c.matrix.symmetricEigenvalues(name: "noise")
    let scale = values.reduce(0) { max($0, abs($1)) }
    let negative = values.filter { $0 < -tol * scale }
    guard let lowest = negative.min() else { return }
    let formula: String
    switch kind {
    case .regularized: formula = "(2L0/S) H0 - (1/S)(G w*)(G w*)^T"
    case .nonInterpolating: formula = "(2L0/S) H0"
    case .interpolating: formula = "(1/S)(Tr[H0 Sigma] I - H0 Sigma) H0"
    }
    throw SGDNoiseError.invalidArgument(
        "the noise of Thm 5 at this minimum, C = \(formula), is not a covariance: it has \(negative.count) "
            + "negative eigenvalue(s), the lowest \(lowest) against a largest |eigenvalue| of \(scale). "
            + "Thm 5 does not hold here (the Hessian of the unregularised loss is indefinite, or the "
            + "weight-decay term dominates): measure the noise from per-sample gradients instead")
}

private func minimumNoiseUnchecked(
    hessian: SymmetricOperator, loss: Double, batchSize: Int, weightDecay: SymmetricOperator?,
    wStar: [Double]?, sigma: SymmetricOperator?
) throws -> (kind: MinimumKind, noise: SymmetricOperator) {
    try hessian.validate("hessian", weighted: true)  // weights only from minimumFluctuation
    let d = hessian.dimension
    try Validation.nonNegative(loss, name: "loss")
    try Validation.batchSize(batchSize)
    let s = Double(batchSize)
    let gamma = try weightDecay.flatMap { g -> SymmetricOperator? in
        try g.validate("weight_decay", size: d)
        return g.isZero ? nil : g
    }
    if let gamma {
        try requireNoWeights(hessian)
        guard let w = wStar, w.count == d, w.allSatisfy({ $0.isFinite }) else {
            throw SGDNoiseError.invalidArgument("w_star (\(d) finite entries) is required with a weight decay")
        }
        let gw = gamma.apply(w)
        if case .diagonal(let h) = hessian, gw.filter({ $0 != 0 }).count <= 1 {
            // (Γw)(Γw)ᵀ is diagonal too: C entry by entry, O(D), no D × D matrix.
            return (.regularized, .diagonal((0..<d).map { (2 * loss / s) * h[$0] - (1 / s) * (gw[$0] * gw[$0]) }))
        }
        // C is a dense D × D matrix: refuse what no memory holds instead of trapping in the allocator.
        guard d <= Validation.maxDenseDimension else {
            throw SGDNoiseError.outOfMemory(
                "the noise (2L/S)H − (Γw)(Γw)ᵀ/S is a dense \(d) × \(d) matrix: too large (D ≤ \(Validation.maxDenseDimension))")
        }
        var c = (2 * loss / s) * hessian.matrix - (1 / s) * Matrix.outer(gw, gw)
        c = c.symmetrized
        return (.regularized, .dense(c))
    }
    if loss > 0 {
        if let h = hessian.spectrumEntries { return (.nonInterpolating, hessian.sameSpectrumLayout(h.map { 2 * loss / s * $0 })) }
        return (.nonInterpolating, .dense((2 * loss / s) * hessian.matrix))
    }
    guard let sigma else {
        throw SGDNoiseError.invalidArgument("sigma is required at an interpolating minimum (loss = 0, no weight decay)")
    }
    try sigma.validate("sigma", size: d)
    let trace = hessian.traceProduct(sigma)
    switch (hessian.spectrumEntries, sigma.spectrumEntries) {
    case (let h?, let sg?):
        return (.interpolating, hessian.sameSpectrumLayout((0..<d).map { (trace * h[$0] - h[$0] * sg[$0] * h[$0]) / s }))
    default:
        let h = hessian.matrix
        let hsh = Matrix.product(h, Matrix.product(sigma.matrix, h))
        return (.interpolating, .dense(((trace / s) * h - (1 / s) * hsh).symmetrized))
    }
}

/// The stationary fluctuation that goes with `minimumNoise` [Cor 3]: Theorem 1 with H = H₀ + Γ and
/// the noise of the minimum's kind — Σ-independent at a regularised or non-interpolating minimum,
/// C = (1/S)(Tr[H₀Σ]H₀ − H₀ΣH₀) at an interpolating one (the engine of docs/theory.md §4 with
/// β₁ = −1, β₂ = 1, whose only stationary solution is Σ = 0 on the range of H₀ when it is stable).
/// Flat directions of a singular H₀ are handled by projecting onto its range (docs/theory.md §3).
///
/// A Hessian computed numerically at a minimum is positive semi-definite only up to its own
/// error: eigenvalues with |h| ≤ `flatTolerance` · max|h| are treated as exact zeros (flat); nil
/// is the library's one default, 16·D·ε, as in `stationaryCovariance`. The noise must be a
/// covariance: see `minimumNoise` for when Thm 5's is not, and the error that says so.
///
/// - Returns: Σ and the minimum's kind; `criticalLearningRate` where the model defines one: at an
///   interpolating minimum the edge of its multiplicative noise; at a non-interpolating one the
///   edge of C(Σ) = (1/S)(Tr[H₀Σ]H₀ − H₀ΣH₀) + (2L₀/S)H₀ (docs/theory.md §8: the constant
///   (2L₀/S)H₀ alone would allow learning rates up to 2(1+μ)/h_max, several times too large with
///   momentum, as measured on a real network); nil at a regularised minimum, where H₀ is
///   indefinite and no edge has been shown to hold.
/// - Throws: `unstable` at or past that critical learning rate.
public func minimumFluctuation(
    hessian rawHessian: SymmetricOperator, loss: Double, learningRate: LearningRate, batchSize: Int,
    weightDecay: SymmetricOperator? = nil, wStar: [Double]? = nil, momentum: Double = 0, flatTolerance: Double? = nil
) throws -> (kind: MinimumKind, sigma: SymmetricOperator, criticalLearningRate: Double?) {
    let r = try minimumFluctuationUnchecked(
        hessian: rawHessian, loss: loss, learningRate: learningRate, batchSize: batchSize, weightDecay: weightDecay,
        wStar: wStar, momentum: momentum, flatTolerance: flatTolerance)
    return (r.kind, try r.sigma.checkedFinite(), r.criticalLearningRate)
}

private func minimumFluctuationUnchecked(
    hessian rawHessian: SymmetricOperator, loss: Double, learningRate: LearningRate, batchSize: Int,
    weightDecay: SymmetricOperator?, wStar: [Double]?, momentum: Double, flatTolerance: Double?
) throws -> (kind: MinimumKind, sigma: SymmetricOperator, criticalLearningRate: Double?) {
    try rawHessian.validate("hessian", weighted: true)
    if let weightDecay, !weightDecay.isZero { try requireNoWeights(rawHessian) }
    try rawHessian.requireNodewise(learningRate)
    let tolerance = try Validation.flatTolerance(flatTolerance, dimension: rawHessian.directionCount)
    let (hessian, lowestEigenvalue) = try rawHessian.zeroingSmallEigenvalues(relativeTolerance: tolerance)
    let d = hessian.dimension
    // The diagonal path below uses the rates as given: check them first (a NaN or an infinity
    // would otherwise come back as a NaN Σ or a critical learning rate of +inf).
    switch learningRate {
    case .scalar(let l):
        try Validation.learningRate(l)
    case .diagonal(let v):
        guard v.count == d else { throw SGDNoiseError.invalidArgument("lr must have \(d) diagonal entries, got \(v.count)") }
        guard v.allSatisfy({ $0.isFinite }) else { throw SGDNoiseError.invalidArgument("lr: every diagonal entry must be finite") }
        guard v.allSatisfy({ $0 > 0 }) else { throw SGDNoiseError.notPositiveDefinite("lr: every diagonal entry must be positive") }
    case .matrix:
        break  // the dense path's stationaryCovariance checks it
    }
    let hasDecay = weightDecay.map { !$0.isZero } ?? false
    if !hasDecay && loss == 0 {
        // The multiplicative engine reads H₀ as a covariance: say what is wrong in this call's terms.
        if lowestEigenvalue < 0 {
            throw SGDNoiseError.invalidArgument(
                "hessian has the eigenvalue \(lowestEigenvalue), negative beyond the flat tolerance \(tolerance) times "
                    + "its largest |eigenvalue|: this is not a minimum, or the Hessian's round-off exceeds the "
                    + "tolerance (pass a larger flat tolerance)")
        }
        let p = try highDimensional(aHat: hessian, alpha: 1, noiseVariance: 0, learningRate: learningRate,
                                    batchSize: batchSize, momentum: momentum)
        return (.interpolating, p.sigma, p.criticalLearningRate)
    }
    let (kind, noise) = try minimumNoiseCovariance(hessian: hessian, loss: loss, batchSize: batchSize,
                                                   weightDecay: weightDecay, wStar: wStar, sigma: nil,
                                                   flatTolerance: tolerance)
    var h = hessian
    if hasDecay, let g = weightDecay { h = hessian + g }
    let critical = try minimumCriticalLearningRate(kind: kind, hessian: hessian, learningRate: learningRate,
                                                   batchSize: batchSize, momentum: momentum)
    if let critical {
        let rate: Double
        if case .scalar(let l) = learningRate { rate = l } else { rate = 1 }
        guard rate < critical else {
            throw SGDNoiseError.unstable(
                "unstable: near this minimum the noise grows with the fluctuation (Tr[H0 Sigma] H0 - H0 Sigma H0)/S, "
                    + "and no stationary distribution exists at this learning rate (docs/theory.md section 8)",
                criticalLearningRate: critical)
        }
    }
    switch (h.spectrumEntries, noise.spectrumEntries, learningRate) {
    case (let hv?, let cv?, .scalar), (let hv?, let cv?, .diagonal):
        // Diagonal: the spectral solution entry by entry, Σ_ii = λ_i² c_i / d_ii, flat directions 0.
        let l = { (i: Int) -> Double in
            if case .diagonal(let v) = learningRate { return v[i] }
            if case .scalar(let x) = learningRate { return x }
            return 1
        }
        let system = try DiagonalStationarySystem(
            m: (0..<d).map { l($0) * hv[$0] }, mPrime: [Double](repeating: 0, count: d), weights: h.multiplicities,
            noise: MultiplicativeNoise(beta1: 0, beta2: 0, batchSize: batchSize), momentum: momentum)
        let lrScale: Double
        if case .scalar(let x) = learningRate { lrScale = x } else { lrScale = 1 }
        let solution = try system.solve(baseNoiseDiagonal: (0..<d).map { l($0) * cv[$0] }, lrScale: lrScale)
        return (kind, h.sameSpectrumLayout((0..<d).map { l($0) * solution.y[$0] }), critical)
    default:
        let result = try stationaryCovariance(hessian: h.matrix, noise: noise.matrix, learningRate: learningRate,
                                              momentum: momentum, flatTolerance: tolerance)
        return (kind, .dense(result.sigma), critical)
    }
}

/// The critical learning rate near a minimum without weight decay (docs/theory.md §8): the noise
/// there is C(Σ) = (1/S)(Tr[H₀Σ]H₀ − H₀ΣH₀) + (2L₀/S)H₀ to the order of Thm 5, whose Σ-dependent
/// part makes SGD unstable well below the 2(1+μ)/h_max of a constant noise (measured on a real
/// network: experiments/real_network). Its edge is the high-dimensional model's with Â → H̃ =
/// Λ^{1/2}H₀Λ^{1/2}, in the caller's units. At a regularised minimum H₀ = H − Γ is indefinite and
/// the measured SGD drifts instead: no critical learning rate is claimed there (nil).
private func minimumCriticalLearningRate(
    kind: MinimumKind, hessian: SymmetricOperator, learningRate: LearningRate, batchSize: Int, momentum: Double
) throws -> Double? {
    guard kind == .nonInterpolating else { return nil }
    // H̃ in units where the answer is the caller's: H₀ itself for a scalar λ (λ* in units of λ), the
    // conjugated Λ^{1/2}H₀Λ^{1/2} for a matrix Λ (the largest stable multiple c of Λ).
    let tilde: SymmetricOperator
    switch (hessian.spectrumEntries, learningRate) {
    case (_, .scalar):
        tilde = hessian
    case (let h?, .diagonal(let v)):
        tilde = hessian.sameSpectrumLayout(zip(h, v).map { $0 * $1 })
    default:
        tilde = .dense(try LearningRateTransform(learningRate, dimension: hessian.dimension).conjugate(hessian.matrix))
    }
    return try Model.highDimensional(aHat: tilde, alpha: 1, noiseVariance: 0)
        .criticalLearningRate(batchSize: batchSize, momentum: momentum)
}

extension SymmetricOperator {
    /// Whether every entry is zero (without forming a dense matrix from a spectrum).
    var isZero: Bool {
        if let v = spectrumEntries { return v.allSatisfy { $0 == 0 } }
        return matrix.maxAbs == 0
    }

    /// The operator with its eigenvalues of magnitude ≤ tol · max|λ| set to zero (unchanged when
    /// there are none), and its lowest eigenvalue after that (0 or above unless one is negative
    /// beyond the tolerance).
    func zeroingSmallEigenvalues(relativeTolerance tol: Double) throws -> (SymmetricOperator, lowest: Double) {
        if let v = spectrumEntries {
            let scale = v.reduce(0) { max($0, abs($1)) }
            let cleaned = v.map { abs($0) <= tol * scale ? 0 : $0 }
            return (sameSpectrumLayout(cleaned), cleaned.min() ?? 0)
        }
        let eigen = try SymmetricEigendecomposition(checked: matrix, name: "hessian")
        let scale = eigen.spectralRadius
        let weights = eigen.values.map { abs($0) <= tol * scale ? 0 : $0 }
        let lowest = weights.min() ?? 0
        guard eigen.values.contains(where: { $0 != 0 && abs($0) <= tol * scale }) else { return (self, lowest) }
        return (.dense(eigen.eigenvectorRows.weightedGram(rowWeights: weights)), lowest)
    }
}

/// Throws unless `hessian` is an unweighted operator: w* and Γw* are vectors of parameters, which a
/// node standing for several directions cannot carry.
private func requireNoWeights(_ hessian: SymmetricOperator) throws {
    guard hessian.multiplicities == nil else {
        throw SGDNoiseError.invalidArgument(
            "hessian: a weighted spectrum is not accepted with a weight decay (w* has no value per node); pass the "
                + "Hessian densely or as a 1-D spectrum")
    }
}
