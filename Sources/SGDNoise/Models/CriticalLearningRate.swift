import Dispatch

/// The critical learning rate λ* of linear regression with label noise (docs/theory.md §6): the
/// largest λ with a stationary Σ, the unique root of
///
///     Σ_i λa_i / (2(1−μ) − ((1−μ)/(1+μ) + 1/S) λa_i) = S
///
/// below 2(1−μ)(1+μ)S / (((1−μ)S + 1 + μ) a_max) (the sum increases in λ). Found by safeguarded
/// Newton iteration to full double precision. Input noise has the same λ* with A → A + B.
///
/// - Parameters:
///   - a: A (dense: its eigenvalues are computed; or its spectrum), positive semi-definite.
///   - batchSize: S ≥ 1.  - momentum: μ ∈ [0, 1).
/// - Returns: λ* (+∞ when A = 0).
public func criticalLearningRate(a: SymmetricOperator, batchSize: Int, momentum: Double = 0) throws -> Double {
    try criticalLearningRate(of: QuadraticModel(
        hessian: a, coupling: nil, noise: MultiplicativeNoise(beta1: 1, beta2: 1, batchSize: batchSize),
        base: .scaledCoupling(0), learningRate: .scalar(1), momentum: momentum).named("A", covariance: true))
}

/// λ* of the high-dimensional model [Thm 6] (public as `Model.highDimensional(...).criticalLearningRate`): the root of Σ_i 1/(2/(λâ_i) − 1 + 1/S) = S (with
/// momentum, the engine's edge of docs/theory.md §4 with β₁ = −1, β₂ = 1).
func criticalLearningRateHighDimensional(aHat: SymmetricOperator, batchSize: Int, momentum: Double = 0) throws -> Double {
    try criticalLearningRate(of: QuadraticModel(
        hessian: aHat, coupling: nil, noise: MultiplicativeNoise(beta1: -1, beta2: 1, batchSize: batchSize),
        base: .scaledCoupling(0), learningRate: .scalar(1), momentum: momentum).named("A_hat", covariance: true))
}

/// λ* of L2-regularised regression [Thm 4] (public as `Model.l2Regularized(...).criticalLearningRate`): the edge of the engine with H = A + Γ, M = A
/// (A and Γ must commute).
func criticalLearningRateL2(
    a: SymmetricOperator, weightDecay: SymmetricOperator, batchSize: Int, momentum: Double = 0
) throws -> Double {
    try a.validate("A", weighted: true)
    try weightDecay.validate("weight_decay", size: a.dimension)
    try a.requirePositiveSemidefinite("A")
    return try criticalLearningRate(of: QuadraticModel(
        hessian: a + weightDecay, coupling: a, noise: MultiplicativeNoise(beta1: 1, beta2: 1, batchSize: batchSize),
        base: .scaledCoupling(0), learningRate: .scalar(1), momentum: momentum).named("A + weight_decay", covariance: false))
}

func criticalLearningRate(of model: QuadraticModel) throws -> Double {
    let system = try model.stabilitySystem()
    guard let scale = system.criticalScale() else {
        throw SGDNoiseError.invalidArgument("\(model.hessianName) has a negative eigenvalue: no learning rate is stable")
    }
    return scale
}

/// One point of a hyperparameter sweep of the label-noise model on a spectrum.
public struct SweepPoint: Sendable, Equatable {
    /// κ_μ [Thm 3] (+∞ where unstable).
    public var kappa: Double
    /// L_train = ½(Tr[AΣ] + σ²) (+∞ where unstable).
    public var trainLoss: Double
    /// L_test = ½Tr[AΣ] (+∞ where unstable).
    public var testLoss: Double
    /// λ* for this point's batch size and momentum.
    public var criticalLearningRate: Double
}

/// κ, the losses and λ* of the label-noise model [Thm 2, Thm 3] for many (λ, S, μ) on one
/// spectrum: O(D) per point with no eigendecomposition — Tr[ΛAG_μ⁻¹] = Σ_i λa_i/(2(1−μ) − qλa_i)
/// with q = (1−μ)/(1+μ) + 1/S, κ = T/(1 − T/S), Tr[AΣ] = (σ²/S)κ. Points run on all cores; λ* is
/// computed once per distinct (S, μ).
///
/// With `weights` ω_i (a weighted spectrum, docs/theory.md §8) every sum over the spectrum weighs
/// its terms, T = Σ_i ω_i λa_i/(2(1−μ) − qλa_i), as if a_i were repeated ω_i times.
///
/// - Parameters: `spectrum`: the eigenvalues a_i ≥ 0 of A (or the nodes of a weighted spectrum);
///   `weights`: the multiplicities ω_i ≥ 0 of the nodes (nil: one each); `learningRates`,
///   `batchSizes`, `momenta`: one entry per point (all the same length).
public func labelNoiseSweep(
    spectrum: [Double], weights: [Double]? = nil, noiseVariance: Double, learningRates: [Double], batchSizes: [Int],
    momenta: [Double]
) throws -> [SweepPoint] {
    let operand = try SymmetricOperator.spectrum(spectrum, weights: weights)
    try operand.validate("A", weighted: true)
    try Validation.nonNegative(noiseVariance, name: "noiseVariance")
    let p = learningRates.count
    guard batchSizes.count == p, momenta.count == p else {
        throw SGDNoiseError.invalidArgument("lr, batch_size and momentum must have the same number of points")
    }
    guard spectrum.allSatisfy({ $0 >= 0 }) else {
        throw SGDNoiseError.invalidArgument("A has a negative eigenvalue: no learning rate is stable")
    }
    for k in 0..<p {
        guard learningRates[k].isFinite, learningRates[k] > 0 else {
            throw SGDNoiseError.invalidArgument("lr[\(k)] must be a finite positive number, got \(learningRates[k])")
        }
        try Validation.batchSize(batchSizes[k])
        try Validation.momentum(momenta[k])
    }
    struct Key: Hashable { let s: Int; let mu: Double }
    var critical: [Key: Double] = [:]
    for k in 0..<p where critical[Key(s: batchSizes[k], mu: momenta[k])] == nil {
        critical[Key(s: batchSizes[k], mu: momenta[k])] = try criticalLearningRate(
            a: operand, batchSize: batchSizes[k], momentum: momenta[k])
    }
    let aMax = spectrum.max() ?? 0
    var results = [SweepPoint](repeating: SweepPoint(kappa: 0, trainLoss: 0, testLoss: 0, criticalLearningRate: 0), count: p)
    let workers = max(1, min(p, 64))
    let criticalByKey = critical
    results.withUnsafeMutableBufferPointer { out in
        spectrum.withUnsafeBufferPointer { a in
            let shared = UnsafeShared((out: out.baseAddress!, a: a))
            parallelWorkers(workers) { w in
                let (base, a) = shared.value
                var k = w
                while k < p {
                    let lambda = learningRates[k], mu = momenta[k], s = Double(batchSizes[k])
                    let twoMu = 2 * (1 - mu)
                    let q = (1 - mu) / (1 + mu) + 1 / s
                    var t = 0.0
                    if twoMu - q * lambda * aMax > 0 {
                        // Compensated (Neumaier) summation: the error stays O(ε), not O(Dε),
                        // which matters near λ* where κ = T/(1 − T/S) amplifies it.
                        var compensation = 0.0
                        for i in 0..<a.count {
                            let x = lambda * a[i]
                            let term = (weights?[i] ?? 1) * (x / (twoMu - q * x))
                            let sum = t + term
                            compensation += abs(t) >= abs(term) ? (t - sum) + term : (term - sum) + t
                            t = sum
                        }
                        t += compensation
                    } else {
                        t = .infinity
                    }
                    let lc = criticalByKey[Key(s: batchSizes[k], mu: mu)]!
                    if t < s && lambda < lc {
                        let kappa = t / (1 - t / s)
                        let test = 0.5 * noiseVariance / s * kappa
                        base[k] = SweepPoint(kappa: kappa, trainLoss: test + 0.5 * noiseVariance, testLoss: test, criticalLearningRate: lc)
                    } else {
                        base[k] = SweepPoint(kappa: .infinity, trainLoss: .infinity, testLoss: .infinity, criticalLearningRate: lc)
                    }
                    k += workers
                }
            }
        }
    }
    return results
}

/// One batch size of the λ–S scaling-law view [Sec 6.5].
public struct ScalingLawPoint: Sendable, Equatable {
    /// The batch size S ≥ 1 of this point.
    public var batchSize: Int
    /// λ = k·S.
    public var learningRate: Double
    /// Tr Σ of the exact label-noise theory (+∞ where unstable).
    public var traceSigma: Double
    /// Tr Σ predicted by the λ/S scaling law (continuous time, Σ = λσ²/(2S(1−μ)) I): the same at
    /// every S on the line λ = kS.
    public var traceSigmaScalingLaw: Double
    /// traceSigma / traceSigmaScalingLaw: 1 where the scaling law holds.
    public var ratio: Double
}

/// The λ–S scaling law along λ = kS [Sec 6.5]: Σ depends on λ and S not only through λ/S (the 1/S²
/// term and the λ-only part of G_μ break it), so the exact label-noise Tr Σ drifts away from the
/// λ/S prediction as S (hence λ) grows, and diverges at λ*(S). With `weights` (a weighted spectrum,
/// docs/theory.md §8) Tr Σ = Σ_i ω_i Σ_ii and D = Σ_i ω_i.
public func scalingLaw(
    spectrum: [Double], weights: [Double]? = nil, noiseVariance: Double, ratio k: Double, batchSizes: [Int],
    momentum: Double = 0
) throws -> [ScalingLawPoint] {
    guard k.isFinite, k > 0 else { throw SGDNoiseError.invalidArgument("ratio must be a finite positive number, got \(k)") }
    let operand = try SymmetricOperator.spectrum(spectrum, weights: weights)
    let dimension = weights.map { $0.reduce(0, +) } ?? Double(spectrum.count)
    return try batchSizes.map { s in
        try Validation.batchSize(s)
        let lambda = k * Double(s)
        let law = noiseVariance * k / (2 * (1 - momentum)) * dimension
        var exact = Double.infinity
        do {
            exact = try labelNoise(a: operand, noiseVariance: noiseVariance, learningRate: .scalar(lambda),
                                   batchSize: s, momentum: momentum).sigma.trace
        } catch SGDNoiseError.unstable {
            exact = .infinity
        }
        return ScalingLawPoint(batchSize: s, learningRate: lambda, traceSigma: exact, traceSigmaScalingLaw: law,
                               ratio: exact / law)
    }
}
