/// Damped Newton's method with label noise [Sec 6.4]: the learning rate Λ = λA⁻¹. Then
/// Λ^{1/2}AΛ^{1/2} = λI and the label-noise solution is
///
///     Σ = λσ² / (gS − λD) · A⁻¹,   g = 2(1−μ) − ((1−μ)/(1+μ) + 1/S)λ,
///
/// stable iff gS > λD. Computed by `labelNoise` with that learning-rate matrix;
/// `criticalLearningRate` is the largest stable λ.
public func dampedNewton(
    a: SymmetricOperator, noiseVariance: Double, learningRate: Double, batchSize: Int, momentum: Double = 0
) throws -> Prediction {
    try a.validate("A")
    guard learningRate.isFinite, learningRate > 0 else {
        throw SGDNoiseError.invalidArgument("lr must be a finite positive number, got \(learningRate)")
    }
    let rate = try newtonLearningRate(a: a, scale: learningRate)
    // labelNoise reports the edge as the largest stable multiple c of the matrix λA⁻¹: λ* = cλ.
    let p: Prediction
    do {
        p = try labelNoise(a: a, noiseVariance: noiseVariance, learningRate: rate, batchSize: batchSize, momentum: momentum)
    } catch SGDNoiseError.unstable(_, let c?) {
        throw SGDNoiseError.unstable(
            "unstable: damped Newton needs gS > λD",
            criticalLearningRate: c * learningRate)
    }
    return try Prediction(
        sigma: p.sigma, noise: p.noise, mean: p.mean, trainLoss: p.trainLoss, testLoss: p.testLoss, kappa: p.kappa,
        criticalLearningRate: p.criticalLearningRate.map { $0 * learningRate }, couplingTrace: p.couplingTrace,
        flatDirectionNoise: p.flatDirectionNoise).checkedFinite()
}

/// λ* of damped Newton: the largest λ with gS > λD (the label-noise edge for Λ = λA⁻¹).
func criticalLearningRateDampedNewton(a: SymmetricOperator, batchSize: Int, momentum: Double) throws -> Double {
    try a.validate("A")
    return try criticalLearningRate(of: QuadraticModel(
        hessian: a, coupling: nil, noise: MultiplicativeNoise(beta1: 1, beta2: 1, batchSize: batchSize),
        base: .scaledCoupling(0), learningRate: try newtonLearningRate(a: a, scale: 1),
        momentum: momentum).named("A", covariance: true))
}

/// Newton's learning rate λA⁻¹ (A positive definite), diagonal for a spectrum.
private func newtonLearningRate(a: SymmetricOperator, scale learningRate: Double) throws -> LearningRate {
    switch a {
    case .diagonal(let v):
        guard v.allSatisfy({ $0 > 0 }) else { throw SGDNoiseError.notPositiveDefinite("A must be positive definite for Newton's method") }
        return .diagonal(v.map { learningRate / $0 })
    case .dense(let m):
        let eigen = try SymmetricEigendecomposition(checked: m, name: "A")
        guard let smallest = eigen.values.first, smallest > 0 else {
            throw SGDNoiseError.notPositiveDefinite("A must be positive definite for Newton's method")
        }
        return .matrix(eigen.reconstruct { learningRate / $0 })
    case .weightedSpectrum:
        throw SymmetricOperator.weightsRefused("A")
    }
}

/// Natural-gradient descent without label noise [Sec 6.4]: Λ = (λ/S)C⁻¹ with C the stationary
/// noise itself. The self-consistent solution is Σ = cA⁻¹ with
///
///     c = (λ/2) (1/((1+D)(1+μ)) + 1/((1−μ)S)).
///
/// Derivation (docs/theory.md §4 engine): with Σ = cA⁻¹ the noise is C = (c/S)(1+D)A, so
/// Λ = sA⁻¹ with s = λ/(c(1+D)) and H̃ = sI; a nonzero stationary Σ exists only where the scalar
/// coupling 1 − (1/S)Σ m²/e vanishes, i.e. s(1 + D + (1−μ)S/(1+μ)) = 2(1−μ)S, which gives c.
/// `noise` is C = (c/S)(1+D)A; the losses are ½Tr[AΣ] = ½cD; no critical learning rate exists.
public func naturalGradient(
    a: SymmetricOperator, learningRate: Double, batchSize: Int, momentum: Double = 0
) throws -> Prediction {
    try a.validate("A")
    try Validation.batchSize(batchSize)
    try Validation.momentum(momentum)
    guard learningRate.isFinite, learningRate > 0 else {
        throw SGDNoiseError.invalidArgument("lr must be a finite positive number, got \(learningRate)")
    }
    let d = Double(a.dimension)
    let s = Double(batchSize)
    let c = 0.5 * learningRate * (1 / ((1 + d) * (1 + momentum)) + 1 / ((1 - momentum) * s))
    let sigma: SymmetricOperator
    let noise: SymmetricOperator
    switch a {
    case .diagonal(let v):
        guard v.allSatisfy({ $0 > 0 }) else { throw SGDNoiseError.notPositiveDefinite("A must be positive definite for natural gradient") }
        sigma = .diagonal(v.map { c / $0 })
        noise = .diagonal(v.map { c * (1 + d) / s * $0 })
    case .dense(let m):
        let eigen = try SymmetricEigendecomposition(checked: m, name: "A")
        guard let smallest = eigen.values.first, smallest > 0 else {
            throw SGDNoiseError.notPositiveDefinite("A must be positive definite for natural gradient")
        }
        sigma = .dense(eigen.reconstruct { c / $0 })
        noise = .dense((c * (1 + d) / s) * m)
    case .weightedSpectrum:
        throw SymmetricOperator.weightsRefused("A")
    }
    return try Prediction(
        sigma: sigma, noise: noise, mean: [Double](repeating: 0, count: a.dimension),
        trainLoss: 0.5 * c * d, testLoss: 0.5 * c * d, kappa: nil, criticalLearningRate: nil,
        couplingTrace: c * d, flatDirectionNoise: 0).checkedFinite()
}
