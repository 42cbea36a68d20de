/// The exact learning curve of SGD under a schedule (docs/theory.md §9): the first and second
/// moments of w_t at the recorded steps, the losses, and the relaxation towards the stationary
/// state of the last hyperparameters.
public struct LearningCurve: Sendable {
    /// The recorded steps t (0 is the start w₀, t the state after update t).
    public let steps: [Int]
    /// E[w_t] at each recorded step (original coordinates; for label noise, the high-dimensional
    /// model and a given (H, C), w is measured from the minimum). Empty when not asked for.
    public let mean: [[Double]]
    /// Σ_t = cov(w_t) at each recorded step: its diagonal for spectra, dense otherwise. Empty
    /// when not asked for.
    public let sigma: [SymmetricOperator]
    /// Tr Σ_t.
    public let trace: [Double]
    /// L_train(t) = E[L(w_t)], defined as the model's `Prediction.trainLoss` (regulariser
    /// included for L2; ½Tr[HM_t], the excess over the minimum, for a given (H, C)).
    public let trainLoss: [Double]
    /// L_test(t) = E[½(w_t − u)ᵀA(w_t − u)] as in `Prediction.testLoss` (½Tr[HM_t] for (H, C)).
    public let testLoss: [Double]
    /// The relaxation towards the stationary state of the schedule's last hyperparameters.
    public let relaxation: Relaxation
    /// The first update t whose hyperparameters (λ_t, S_t, μ_t) lie beyond the critical learning
    /// rate λ*(S_t, μ_t) of docs/theory.md §6: from there the second moments grow while they last.
    /// nil when every update is stable.
    public let unstableFrom: Int?
}

/// The exact learning curve of a linear-regression model of docs/theory.md §4 trained by SGD
/// with a schedule (docs/theory.md §9).
///
/// With e = w − w* in the eigenbasis of the Hessian, the mean follows gradient descent with
/// momentum, and the second moment M_t = E[e_t e_tᵀ] (not centred: the noise depends on the
/// bias too) follows, with momentum, the recursion of the (e, m) second moments documented at
/// `MomentRecursion`; without momentum it is
///
///     M_{t+1} = (I − λ_t H) M_t (I − λ_t H) + λ_t² C_t(M_t),
///     C_t(M) = (1/S_t)(β₁ AVA + β₂ Tr[AV] A) + C̄₀/S_t,   V = E[(e + δ)(e + δ)ᵀ],
///
/// with the model's β₁, β₂, C̄₀ and δ (label noise: β₁ = β₂ = 1, C̄₀ = σ²A, δ = 0; L2: H = A + Γ,
/// δ = w* − u; input noise: A → A + B, σ² → σ²_eff; high-dimensional: β₁ = −1). For constant
/// hyperparameters the covariance converges to the model's stationary Σ [Thm 1–4, 6].
///
/// - Parameters:
///   - model: label noise, input noise, L2 or high-dimensional (damped Newton and natural
///     gradient are refused); spectra give O(D) per step, dense matrices O(D²) per step after one
///     eigendecomposition (L2 needs [A, Γ] = 0).
///   - schedule: λ_t, S_t, μ_t for t = 1…T (scalar learning rates).
///   - record: the steps in 0…T to report, increasing (nil: 101 evenly spaced steps from 0 to T,
///     or all of them when T ≤ 100).
///   - w0: the start w₀ (nil: w₀ = 0, i.e. e₀ = −w*; for label noise and the high-dimensional
///     model w is measured from the minimum, so w₀ = 0 starts there), or the mean of the start.
///   - startCovariance: Σ₀, the covariance of a random start w₀ ~ (w0, Σ₀) (nil: w₀ is a point),
///     so M₀ = Σ₀ + e₀e₀ᵀ: symmetric PSD, D × D (a spectrum's model takes it in its eigenbasis, and
///     only its diagonal enters the recursion of the diagonal).
///   - tolerance: ε of `Relaxation.settledAt` (default 0.01).
///   - includeSigma, includeMean: whether to store Σ_t and E[w_t] at the recorded steps (a
///     10⁶-entry spectrum costs 8 MB per recorded step).
/// - Throws: `invalidArgument` for a bad record list, w₀, model or an unsupported model;
///   whatever the model's validation throws. An unstable schedule is not an error: see
///   `LearningCurve.unstableFrom`.
/// - Complexity: O(D·T) for spectra, O(D²·T + D³) dense; memory O(D) (O(D²) dense) plus the
///   recorded outputs.
public func learningCurve(
    model: Model, schedule: Schedule, record: [Int]? = nil, w0: [Double]? = nil,
    startCovariance: SymmetricOperator? = nil, tolerance: Double = 0.01, includeSigma: Bool = true,
    includeMean: Bool = true
) throws -> LearningCurve {
    try runLearningCurve(
        system: TransientSystem(model: model), schedule: schedule, record: record, w0: w0,
        startCovariance: startCovariance, tolerance: tolerance, includeSigma: includeSigma, includeMean: includeMean)
}

/// The exact learning curve of SGD on a given quadratic loss ½eᵀHe with a constant
/// (state-independent) noise covariance C (docs/theory.md §3, §9).
///
/// The noise of a step with batch size S_t is (S_ref/S_t) C with S_ref = `referenceBatchSize` (C
/// as measured at the batch size S_ref; pass the per-sample covariance with S_ref = 1). With a
/// constant schedule Σ_t converges to `stationaryCovariance(hessian:noise:learningRate:momentum:)`
/// of (S_ref/S) C [Thm 1]. w is measured from the minimum; both losses are ½Tr[HM_t].
///
/// - Parameters:
///   - hessian: H (dense, or a spectrum with `noise` a diagonal in the same basis).
///   - noise: C (dense, or diagonal).
///   - Others: as in `learningCurve(model:schedule:record:w0:startCovariance:tolerance:includeSigma:includeMean:)`.
/// - Complexity: one eigendecomposition of H, then O(D²) per step (O(D) for spectra).
public func learningCurve(
    hessian: SymmetricOperator, noise: SymmetricOperator, referenceBatchSize: Int = 1, schedule: Schedule,
    record: [Int]? = nil, w0: [Double]? = nil, startCovariance: SymmetricOperator? = nil, tolerance: Double = 0.01,
    includeSigma: Bool = true, includeMean: Bool = true
) throws -> LearningCurve {
    try runLearningCurve(
        system: TransientSystem(hessian: hessian, noise: noise, referenceBatchSize: referenceBatchSize),
        schedule: schedule, record: record, w0: w0, startCovariance: startCovariance, tolerance: tolerance,
        includeSigma: includeSigma, includeMean: includeMean)
}

/// The learning curve of SGD near a general minimum of any differentiable model trained with the
/// MSE loss (docs/theory.md §5 [Thm 5, Cor 2, Cor 3]), with the noise `minimumFluctuation` uses.
///
/// With e = w − w* and H = H₀ + Γ: at a regularised minimum (Γ ≠ 0) and a non-interpolating one
/// (Γ = 0, L₀(w*) > 0) the noise is constant, C_t = (1/S_t)(2L₀(w*)H₀ − Γw*w*ᵀΓ), and
/// M_{t+1} = (I − λ_tH)M_t(I − λ_tH) + λ_t²C_t (momentum: the (e, m) block recursion); at an
/// interpolating one (Γ = 0, L₀(w*) = 0) it is C_t(M) = (1/S_t)(Tr[H₀M]H₀ − H₀MH₀), which vanishes
/// with M. A constant schedule converges to `minimumFluctuation`'s Σ; `unstableFrom` uses its
/// critical learning rate (at a regularised minimum, where it defines none, 2(1 + μ)/h_max of H).
///
/// - Parameters:
///   - hessian: H₀ (dense, or a spectrum: then w*, w₀ and Σ_t are in its eigenbasis).
///   - loss: L₀(w*) ≥ 0.
///   - weightDecay: Γ (nil or zero: none; with Γ, `wStar` is required).
///   - wStar: w*.
///   - flatTolerance: as in `minimumFluctuation` (nil: 16·D·ε).
///   - Others: as in `learningCurve(model:schedule:record:w0:startCovariance:tolerance:includeSigma:includeMean:)`;
///     w (w0, `mean`) is measured from w*, and both losses are L_Γ(w*) + ½Tr[HM_t].
/// - Throws: what `minimumNoise` throws (a C that is not a covariance), `invalidArgument` as above.
public func learningCurve(
    hessian: SymmetricOperator, loss: Double, weightDecay: SymmetricOperator? = nil, wStar: [Double]? = nil,
    flatTolerance: Double? = nil, schedule: Schedule, record: [Int]? = nil, w0: [Double]? = nil,
    startCovariance: SymmetricOperator? = nil, tolerance: Double = 0.01, includeSigma: Bool = true,
    includeMean: Bool = true
) throws -> LearningCurve {
    try runLearningCurve(
        system: TransientSystem(minimumHessian: hessian, loss: loss, weightDecay: weightDecay, wStar: wStar,
                                flatTolerance: flatTolerance),
        schedule: schedule, record: record, w0: w0, startCovariance: startCovariance, tolerance: tolerance,
        includeSigma: includeSigma, includeMean: includeMean)
}

/// The steps to record: `record` checked (increasing, in 0…T), or the default grid.
func recordedSteps(_ record: [Int]?, steps t: Int) throws(SGDNoiseError) -> [Int] {
    guard let record else {
        if t <= 100 { return Array(0...t) }
        var grid = (0...100).map { $0 * t / 100 }
        grid[100] = t
        return grid
    }
    guard !record.isEmpty else { throw .invalidArgument("record must list at least one step") }
    if let k = record.firstIndex(where: { $0 < 0 || $0 > t }) {
        throw .invalidArgument("record: step \(record[k]) lies outside 0…\(t)")
    }
    guard zip(record, record.dropFirst()).allSatisfy({ $0 < $1 }) else {
        throw .invalidArgument("record must be strictly increasing")
    }
    return record
}

/// The first update whose hyperparameters are beyond λ*(S_t, μ_t) (λ* computed once per distinct
/// (S, μ)).
func firstUnstableStep(_ schedule: Schedule, system: TransientSystem) -> Int? {
    struct Key: Hashable { let s: Int; let mu: Double }
    var cache: [Key: Double] = [:]
    for t in 1...schedule.steps {
        let (lr, s, mu) = schedule.hyperparameters(atStep: t)
        if lr == 0 { continue }
        let key = Key(s: s, mu: mu)
        let critical: Double
        if let c = cache[key] {
            critical = c
        } else {
            critical = system.criticalLearningRate(batchSize: s, momentum: mu) ?? 0
            cache[key] = critical
        }
        if lr > critical { return t }
    }
    return nil
}

func runLearningCurve(
    system: TransientSystem, schedule: Schedule, record: [Int]?, w0: [Double]?, startCovariance: SymmetricOperator?,
    tolerance: Double, includeSigma: Bool, includeMean: Bool
) throws -> LearningCurve {
    guard tolerance.isFinite, tolerance > 0 else {
        throw SGDNoiseError.invalidArgument("tolerance must be a finite positive number, got \(tolerance)")
    }
    let steps = try recordedSteps(record, steps: schedule.steps)
    let e0 = try system.initialError(w0)
    var recursion = MomentRecursion(
        system: system, initialError: e0, startCovariance: try system.startSecondMoment(startCovariance),
        tracksMomentum: schedule.momenta.contains { $0 != 0 })
    let last = schedule.hyperparameters(atStep: schedule.steps)
    let stationary = system.stationaryLosses(learningRate: last.learningRate, batchSize: last.batchSize, momentum: last.momentum)
    let lastChange = schedule.lastChange
    var means: [[Double]] = [], sigmas: [SymmetricOperator] = [], traces: [Double] = []
    var train: [Double] = [], test: [Double] = []
    var next = 0
    var settledAt: Int? = nil
    func take(_ t: Int) {
        guard next < steps.count, steps[next] == t else { return }
        next += 1
        if includeMean { means.append(recursion.meanW()) }
        if includeSigma { sigmas.append(recursion.sigma()) }
        traces.append(recursion.traceSigma())
        train.append(recursion.trainLoss())
        test.append(recursion.testLoss())
    }
    take(0)
    for t in 1...schedule.steps {
        let (lr, s, mu) = schedule.hyperparameters(atStep: t)
        recursion.step(learningRate: lr, batchSize: s, momentum: mu)
        if let stationary, t >= lastChange {
            let inside = abs(recursion.trainLoss() - stationary.train) <= tolerance * abs(stationary.train)
            if !inside { settledAt = nil } else if settledAt == nil { settledAt = t }
        }
        take(t)
    }
    let rates = RelaxationRates(system: system, learningRate: last.learningRate, batchSize: last.batchSize,
                                momentum: last.momentum)
    let momentRate = system.dataset == nil ? rates.momentRate
        : datasetMomentRate(system, learningRate: last.learningRate, batchSize: last.batchSize, momentum: last.momentum)
    let relaxation = Relaxation(
        modeTimes: rates.modeRates.map(RelaxationRates.time), momentTime: RelaxationRates.time(momentRate),
        meanTime: RelaxationRates.time(rates.meanRate), stationaryTrainLoss: stationary?.train,
        stationaryTestLoss: stationary?.test, settledAt: settledAt, tolerance: tolerance)
    return LearningCurve(
        steps: steps, mean: means, sigma: sigmas, trace: traces, trainLoss: train, testLoss: test,
        relaxation: relaxation, unstableFrom: firstUnstableStep(schedule, system: system))
}
