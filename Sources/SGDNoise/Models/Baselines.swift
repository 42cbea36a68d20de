/// The continuous-time approximation with Hessian-shaped noise [Eq. 7]: dropping the O(Λ²) terms of
/// Theorem 1 and taking C ≈ (σ²/S)A gives (1−μ)(ΛAΣ + ΣAΛ) = (σ²/S)ΛAΛ, solved by
///
///     Σ = σ² / (2S(1−μ)) · Λ        (λσ²/2S · I for a scalar λ and μ = 0).
///
/// The curve users compare the exact theory against (the paper's Figure 4); independent of A.
public func continuousTime(
    a: SymmetricOperator, noiseVariance: Double, learningRate: LearningRate, batchSize: Int,
    momentum: Double = 0
) throws -> SymmetricOperator {
    try a.validate("A")
    try Validation.nonNegative(noiseVariance, name: "noiseVariance")
    try Validation.batchSize(batchSize)
    try Validation.momentum(momentum)
    let factor = noiseVariance / (2 * Double(batchSize) * (1 - momentum))
    let d = a.dimension
    switch (learningRate, a) {
    case (.scalar(let l), .diagonal):
        try Validation.learningRate(l)
        return try SymmetricOperator.diagonal([Double](repeating: factor * l, count: d)).checkedFinite()
    case (.diagonal(let l), .diagonal):
        _ = try LearningRateTransform(learningRate, dimension: d)
        return try SymmetricOperator.diagonal(l.map { factor * $0 }).checkedFinite()
    default:
        _ = try LearningRateTransform(learningRate, dimension: d)
        return try SymmetricOperator.dense(factor * learningRate.matrix(dimension: d)).checkedFinite()
    }
}

/// The discrete-time solution with Hessian-shaped noise C = (σ²/S)A (Liu, Ziyin, Ueda 2021):
/// Theorem 1 with a noise that does not depend on Σ, so for a scalar λ and μ = 0
///
///     Σ = (λσ²/S)(2I − λA)⁻¹.
///
/// With momentum and matrix learning rates it is `stationaryCovariance(A, (σ²/S)A, Λ, μ)`.
/// The second baseline of the paper's Figure 4; it misses the Σ-dependent part of the noise.
public func discreteHessian(
    a: SymmetricOperator, noiseVariance: Double, learningRate: LearningRate, batchSize: Int,
    momentum: Double = 0
) throws -> SymmetricOperator {
    try Validation.nonNegative(noiseVariance, name: "noiseVariance")
    try Validation.batchSize(batchSize)
    let model = QuadraticModel(
        hessian: a, coupling: nil, noise: MultiplicativeNoise(beta1: 0, beta2: 0, batchSize: batchSize),
        base: .scaledCoupling(noiseVariance / Double(batchSize)), learningRate: learningRate, momentum: momentum).named("A", covariance: true)
    return try model.solve().sigma.checkedFinite()
}
