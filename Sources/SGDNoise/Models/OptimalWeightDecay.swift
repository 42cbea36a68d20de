/// The test loss of L2-regularised regression as a function of a scalar weight decay γ (Γ = γI),
/// on A's spectrum: the curve of the paper's Figure 3 (right) [Thm 4, Cor 1].
struct WeightDecayCurve {
    let spectrum: [Double]
    let uRotated: [Double]
    let learningRate: Double
    let batchSize: Int
    let momentum: Double

    /// A dense A is diagonalised once; u is rotated into its eigenbasis.
    init(a: SymmetricOperator, u: [Double], learningRate: Double, batchSize: Int, momentum: Double) throws {
        try a.validate("A")
        guard u.count == a.dimension, u.allSatisfy({ $0.isFinite }) else {
            throw SGDNoiseError.invalidArgument("u must have \(a.dimension) finite entries, got \(u.count)")
        }
        guard learningRate.isFinite, learningRate > 0 else {
            throw SGDNoiseError.invalidArgument("lr must be a finite positive number, got \(learningRate)")
        }
        try requireBatchSize(batchSize)
        try SpectralStationarySolver.validateMomentum(momentum)
        switch a {
        case .diagonal(let v):
            spectrum = v
            uRotated = u
        case .dense(let m):
            let eigen = try SymmetricEigendecomposition(checked: m, name: "A")
            spectrum = eigen.values
            uRotated = eigen.eigenvectorRows.apply(u)
        }
        guard spectrum.allSatisfy({ $0 >= 0 }) else {
            throw SGDNoiseError.invalidArgument("A must be positive semi-definite")
        }
        self.learningRate = learningRate
        self.batchSize = batchSize
        self.momentum = momentum
    }

    /// The open interval of γ where K = A + γI is positive definite and λK stays below the
    /// stability edge 2(1+μ) of the deterministic part.
    var candidateInterval: (Double, Double) {
        (-(spectrum.min() ?? 0), 2 * (1 + momentum) / learningRate - (spectrum.max() ?? 0))
    }

    /// L_test(γ), +∞ where no stationary distribution exists.
    func testLoss(_ gamma: Double) -> Double {
        guard gamma.isFinite else { return .infinity }
        let prediction = try? l2Regularized(
            a: .diagonal(spectrum), u: uRotated, weightDecay: .diagonal([Double](repeating: gamma, count: spectrum.count)),
            learningRate: .scalar(learningRate), batchSize: batchSize, momentum: momentum)
        return prediction?.testLoss ?? .infinity
    }
}

/// L_test(γ) of L2-regularised regression for each weight decay γ (Γ = γI, negative values
/// allowed): +∞ where SGD has no stationary distribution or A + γI is not positive definite
/// [Thm 4]. O(D) per γ after one eigendecomposition of a dense A.
public func l2TestLossCurve(
    a: SymmetricOperator, u: [Double], learningRate: Double, batchSize: Int, momentum: Double = 0,
    weightDecays: [Double]
) throws -> [Double] {
    let curve = try WeightDecayCurve(a: a, u: u, learningRate: learningRate, batchSize: batchSize, momentum: momentum)
    return weightDecays.map { curve.testLoss($0) }
}

/// The optimal weight decay γ* = argmin_γ L_test(γ) of L2-regularised regression and its test
/// loss [Thm 4, Cor 1]. At a large learning rate γ* can be negative [Cor 1].
///
/// Robust 1-D minimisation over the stable interval: L_test is evaluated on 257 points across
/// the interval where A + γI is positive definite and λ(A + γI) < 2(1+μ) (+∞ where unstable) to
/// bracket the global minimum, which golden-section search then refines to 1e-12 relative.
///
/// - Throws: `unstable` when no γ gives a stationary distribution at this learning rate.
public func optimalWeightDecay(
    a: SymmetricOperator, u: [Double], learningRate: Double, batchSize: Int, momentum: Double = 0
) throws -> (weightDecay: Double, testLoss: Double) {
    let curve = try WeightDecayCurve(a: a, u: u, learningRate: learningRate, batchSize: batchSize, momentum: momentum)
    let (lo, hi) = curve.candidateInterval
    guard hi > lo else {
        throw SGDNoiseError.unstable(
            "no weight decay makes lr = \(learningRate) stable: lr × (largest − smallest eigenvalue of A) exceeds 2(1+momentum)",
            criticalLearningRate: nil)
    }
    let n = 256
    let grid = (0...n).map { lo + (hi - lo) * (Double($0) + 0.5) / Double(n + 1) }
    let values = grid.map { curve.testLoss($0) }
    guard let best = values.indices.min(by: { values[$0] < values[$1] }), values[best].isFinite else {
        throw SGDNoiseError.unstable("no weight decay gives a stationary distribution at lr = \(learningRate)",
                                     criticalLearningRate: nil)
    }
    var a0 = best > 0 ? grid[best - 1] : lo
    var b0 = best < n ? grid[best + 1] : hi
    let golden = (5.0.squareRoot() - 1) / 2
    var x1 = b0 - golden * (b0 - a0), x2 = a0 + golden * (b0 - a0)
    var f1 = curve.testLoss(x1), f2 = curve.testLoss(x2)
    for _ in 0..<200 {
        if b0 - a0 <= 1e-12 * max(1, abs(a0) + abs(b0)) { break }
        if f1 <= f2 {
            b0 = x2; x2 = x1; f2 = f1
            x1 = b0 - golden * (b0 - a0); f1 = curve.testLoss(x1)
        } else {
            a0 = x1; x1 = x2; f1 = f2
            x2 = a0 + golden * (b0 - a0); f2 = curve.testLoss(x2)
        }
    }
    var gamma = f1 <= f2 ? x1 : x2
    var loss = min(f1, f2)
    if values[best] < loss {
        gamma = grid[best]
        loss = values[best]
    }
    return (gamma, loss)
}
