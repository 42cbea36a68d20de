/// Linear regression with L2 regularisation [Prop 3, Thm 4]: loss ½(w−u)ᵀA(w−u) + ½wᵀΓw without
/// label noise, K = A + Γ, w* = K⁻¹Au.
///
/// The noise is C = (1/S)(AΣA + Tr[AΣ]A) + C₀ with C₀ = (1/S)(AK⁻¹ΓUΓK⁻¹A + Tr[AK⁻¹ΓUΓK⁻¹]A),
/// U = uuᵀ — i.e. H = K, M = A, β₁ = β₂ = 1 in the engine of docs/theory.md §4. Σ comes from the
/// spectral solver (the paper's Eq. 12 is not symmetric in general; the solver reproduces Eq. 11).
/// For [A, Γ] = 0 and a scalar λ the test loss is [Thm 4]
///
///     L_test = (λ/2S)(Tr[AK⁻²Γ²U] κ + r) + ½ Tr[AK⁻²Γ²U],
///     κ = Tr[A²K⁻¹G⁻¹] / (1 − (λ/S)Tr[A²K⁻¹G⁻¹]),  r = Tr[A³K⁻³Γ²G⁻¹U] / (1 − (λ/S)Tr[A²K⁻¹G⁻¹]),
///     G = 2I − λ(K + K⁻¹A²/S).
///
/// `trainLoss` is the regularised objective E[½(w−u)ᵀA(w−u) + ½wᵀΓw]; `testLoss` is
/// E[½(w−u)ᵀA(w−u)]; `kappa` is the κ above (scalar learning rates only). When Λ^{1/2}AΛ^{1/2} and
/// Λ^{1/2}KΛ^{1/2} do not commute, Σ is computed iteratively (`IterativeStationarySolver`) and the
/// critical learning rate is not reported.
///
/// - Parameters:
///   - a: A (dense or spectrum); `u`: the teacher; `weightDecay`: Γ (dense or diagonal; any sign,
///     as long as K = A + Γ is positive definite).
public func l2Regularized(
    a: SymmetricOperator, u: [Double], weightDecay: SymmetricOperator, learningRate: LearningRate,
    batchSize: Int, momentum: Double = 0
) throws -> Prediction {
    try a.validate("A")
    let d = a.dimension
    try weightDecay.validate("weight_decay", size: d)
    try a.requirePositiveSemidefinite("A")
    try Validation.batchSize(batchSize)
    guard u.count == d, u.allSatisfy({ $0.isFinite }) else {
        throw SGDNoiseError.invalidArgument("u must have \(d) finite entries, got \(u.count)")
    }
    let k = a + weightDecay
    let wStar = try k.solve(a.apply(u), name: "A + weight_decay")
    let delta = zip(wStar, u).map { $0 - $1 }  // = −K⁻¹Γu
    let r = a.bilinear(delta, delta)
    let s = Double(batchSize)
    let v = a.apply(delta).map { $0 / s.squareRoot() }
    let model = QuadraticModel(
        hessian: k, coupling: a, noise: MultiplicativeNoise(beta1: 1, beta2: 1, batchSize: batchSize),
        base: .scaledCouplingPlusRankOne(r / s, v), learningRate: learningRate, momentum: momentum).named("A + weight_decay", covariance: false)
    let solution = try model.solve()
    let testLoss = 0.5 * (solution.tau + r)
    let regulariser = 0.5 * (weightDecay.traceProduct(solution.sigma) + weightDecay.bilinear(wStar, wStar))
    var kappa: Double? = nil
    if case .scalar(let l) = learningRate, let t = solution.coupling { kappa = (t / l) / (1 - t / s) }
    return try Prediction(
        sigma: solution.sigma, noise: solution.noise, mean: wStar,
        trainLoss: testLoss + regulariser, testLoss: testLoss, kappa: kappa,
        criticalLearningRate: solution.criticalLearningRate, couplingTrace: solution.tau,
        flatDirectionNoise: solution.flatNoise).checkedFinite()
}
