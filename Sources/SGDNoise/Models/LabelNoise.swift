/// Linear regression with label noise: the exact stationary fluctuation [Lemma 1, Thm 2, Thm 3].
///
/// Loss ½(wᵀx − y)² with x ~ N(0, A), y = uᵀx + ε, Var ε = σ²; SGD with batch size S, learning rate
/// Λ and momentum μ. The noise is C = (1/S)(AΣA + Tr[AΣ]A) + (σ²/S)A [Lemma 1], and for [Λ, A] = 0
///
///     Σ = (σ²/S)(1 + κ_μ/S) Λ G_μ⁻¹,   G_μ = 2(1−μ)I − ((1−μ)/(1+μ) + 1/S) ΛA,
///     κ_μ = Tr[ΛAG_μ⁻¹] / (1 − Tr[ΛAG_μ⁻¹]/S),
///     L_train = ½(Tr[AΣ] + σ²),   L_test = ½ Tr[AΣ].
///
/// Computed for any SPD Λ (commuting with A or not) through Λ^{1/2}AΛ^{1/2} (docs/theory.md §4).
///
/// - Parameters:
///   - a: A, the input covariance = the Hessian (dense, or its spectrum).
///   - noiseVariance: σ² ≥ 0.
///   - learningRate: λ > 0, Λ SPD, or a positive diagonal.
///   - batchSize: S ≥ 1.
///   - momentum: μ ∈ [0, 1).
/// - Throws: `unstable` beyond the critical learning rate (the error carries λ*).
/// - Complexity: one eigendecomposition and two SYRKs; O(D) for a spectrum.
public func labelNoise(
    a: SymmetricOperator, noiseVariance: Double, learningRate: LearningRate, batchSize: Int,
    momentum: Double = 0
) throws -> Prediction {
    try Validation.nonNegative(noiseVariance, name: "noiseVariance")
    try Validation.batchSize(batchSize)
    let s = Double(batchSize)
    let model = QuadraticModel(
        hessian: a, coupling: nil, noise: MultiplicativeNoise(beta1: 1, beta2: 1, batchSize: batchSize),
        base: .scaledCoupling(noiseVariance / s), learningRate: learningRate, momentum: momentum).named("A", covariance: true)
    let solution = try model.solve()
    let t = solution.coupling!
    return try Prediction(
        sigma: solution.sigma, noise: solution.noise,
        mean: [Double](repeating: 0, count: a.dimension),
        trainLoss: 0.5 * (solution.tau + noiseVariance), testLoss: 0.5 * solution.tau,
        kappa: t / (1 - t / s), criticalLearningRate: solution.criticalLearningRate,
        couplingTrace: solution.tau, flatDirectionNoise: solution.flatNoise).checkedFinite()
}
