/// Linear regression with input noise [App. E.3]: the model sees x + ξ, ξ ~ N(0, B), while the
/// labels y = uᵀx + ε come from the clean x.
///
/// The per-sample noise is C(w) = (1/S)(2L(w)K + ∇L∇Lᵀ) with K = A + B, so the label-noise result
/// holds with A → K and σ² → σ²_eff = σ² + uᵀ(A − AK⁻¹A)u. The stationary mean is w* = K⁻¹Au,
///
///     L_train = ½(Tr[KΣ] + σ²_eff),   L_test = ½(Tr[AΣ] + (w* − u)ᵀA(w* − u)).
///
/// - Parameters:
///   - a: A, the clean-input covariance; `b`: B, the input-noise covariance (both dense, or both
///     spectra in a common eigenbasis).
///   - u: the teacher u (D entries).
///   - noiseVariance: label-noise σ² ≥ 0 (default 0).
///   - learningRate, batchSize, momentum: as in `labelNoise`.
public func inputNoise(
    a: SymmetricOperator, b: SymmetricOperator, u: [Double], learningRate: LearningRate,
    batchSize: Int, noiseVariance: Double = 0, momentum: Double = 0
) throws -> Prediction {
    try a.validate("A")
    let d = a.dimension
    try b.validate("B", size: d)
    try a.requirePositiveSemidefinite("A")
    try b.requirePositiveSemidefinite("B")
    try Validation.nonNegative(noiseVariance, name: "noiseVariance")
    try Validation.batchSize(batchSize)
    guard u.count == d, u.allSatisfy({ $0.isFinite }) else {
        throw SGDNoiseError.invalidArgument("u must have \(d) finite entries, got \(u.count)")
    }
    let k = a + b
    let au = a.apply(u)
    let wStar = try k.solve(au, name: "A + B")
    let delta = zip(wStar, u).map { $0 - $1 }
    let effective = noiseVariance + a.bilinear(u, u) - a.bilinear(u, wStar)  // uᵀAu − uᵀAK⁻¹Au
    let s = Double(batchSize)
    let model = QuadraticModel(
        hessian: k, coupling: nil, noise: MultiplicativeNoise(beta1: 1, beta2: 1, batchSize: batchSize),
        base: .scaledCoupling(max(effective, 0) / s), learningRate: learningRate, momentum: momentum).named("A + B", covariance: true)
    let solution = try model.solve()
    let t = solution.coupling!
    let bias = a.bilinear(delta, delta)
    return try Prediction(
        sigma: solution.sigma, noise: solution.noise, mean: wStar,
        trainLoss: 0.5 * (solution.tau + max(effective, 0)),
        testLoss: 0.5 * (a.traceProduct(solution.sigma) + bias),
        kappa: t / (1 - t / s), criticalLearningRate: solution.criticalLearningRate,
        couplingTrace: solution.tau, flatDirectionNoise: solution.flatNoise).checkedFinite()
}
