/// High-dimensional linear regression [Prop 4, Thm 6]: N, D → ∞ with α = N/D, Â the empirical
/// input covariance, label-noise variance σ².
///
///     C = (1/S)(Tr[ÂΣ] I − ÂΣ)Â + max{0, (σ²/S)(1 − 1/α)} Â,
///
/// i.e. H = M = Â, β₁ = −1, β₂ = 1 in the engine of docs/theory.md §4, so that [Thm 6]
///
///     Tr[ÂΣ] = max{0, (λσ²/S)(1 − 1/α) κ̂},  κ̂ = Tr[Ĝ⁻¹Â] / (1 − (λ/S)Tr[Ĝ⁻¹Â]),
///     Ĝ = 2I − λ(1 − 1/S)Â.
///
/// Stability needs Σ_i 1/(2/(λâ_i) − 1 + 1/S) < S: the largest stable λ scales like 2S/(âD).
/// `trainLoss` = ½(Tr[ÂΣ] + max{0, σ²(1 − 1/α)}) (the empirical loss, whose minimum is
/// ½σ²(1 − 1/α)); `testLoss` = ½Tr[ÂΣ] is the excess loss due to the SGD fluctuation only (the
/// estimation error of w* itself is not part of this theory); `kappa` = κ̂ (scalar λ only).
public func highDimensional(
    aHat: SymmetricOperator, alpha: Double, noiseVariance: Double, learningRate: LearningRate,
    batchSize: Int, momentum: Double = 0
) throws -> Prediction {
    guard alpha.isFinite, alpha > 0 else {
        throw SGDNoiseError.invalidArgument("alpha must be a finite positive number, got \(alpha)")
    }
    try Validation.nonNegative(noiseVariance, name: "noiseVariance")
    try Validation.batchSize(batchSize)
    let s = Double(batchSize)
    let floor = max(0, noiseVariance * (1 - 1 / alpha))
    let model = QuadraticModel(
        hessian: aHat, coupling: nil, noise: MultiplicativeNoise(beta1: -1, beta2: 1, batchSize: batchSize),
        base: .scaledCoupling(floor / s), learningRate: learningRate, momentum: momentum).named("A_hat", covariance: true)
    let solution = try model.solve()
    var kappa: Double? = nil
    if case .scalar(let l) = learningRate, let t = solution.coupling { kappa = (t / l) / (1 - t / s) }
    return try Prediction(
        sigma: solution.sigma, noise: solution.noise, mean: [Double](repeating: 0, count: aHat.dimension),
        trainLoss: 0.5 * (solution.tau + floor), testLoss: 0.5 * solution.tau, kappa: kappa,
        criticalLearningRate: solution.criticalLearningRate, couplingTrace: solution.tau,
        flatDirectionNoise: solution.flatNoise).checkedFinite()
}
