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
        try Validation.batchSize(batchSize)
        try Validation.momentum(momentum)
        switch a {
        case .diagonal(let v):
            spectrum = v
            uRotated = u
        case .dense(let m):
            let eigen = try SymmetricEigendecomposition(checked: m, name: "A")
            spectrum = eigen.values
            uRotated = eigen.eigenvectorRows.apply(u)
        case .weightedSpectrum:
            throw SymmetricOperator.weightsRefused("A")
        }
        guard spectrum.allSatisfy({ $0 >= 0 }) else {
            throw SGDNoiseError.invalidArgument("A must be positive semi-definite")
        }
        self.learningRate = learningRate
        self.batchSize = batchSize
        self.momentum = momentum
    }

    /// The exact interval of γ where SGD has a stationary distribution, or nil when there is none.
    ///
    /// With m_i = λ(a_i + γ) and m′_i = λa_i, stability needs every
    /// e_i = (1−μ)m_i(2 − m_i/(1+μ)) − m′_i²/S > 0 — a concave quadratic in γ, positive between its
    /// roots — and T(γ) = Σ m′_i²/e_i < S, where T is convex on the intersection of those
    /// intervals (a sum of reciprocals of positive concave functions). So the stable set is an
    /// interval: T's minimiser (golden section) must satisfy T < S, and the ends are the roots of
    /// T = S on either side (bisection), all to ~1e-15 relative.
    var stableInterval: (Double, Double)? {
        let l = learningRate, mu = momentum, s = Double(batchSize)
        var lo = -Double.infinity, hi = Double.infinity
        for a in spectrum {
            // e(m) = −((1−μ)/(1+μ)) m² + 2(1−μ) m − λ²a²/S: roots m = (1+μ)(1 ± √(1 − λ²a²/(S(1−μ²)))).
            let disc = 1 - l * l * a * a / (s * (1 - mu) * (1 + mu))
            guard disc > 0 else { return nil }
            let root = disc.squareRoot()
            lo = max(lo, (1 + mu) * (1 - root) / l - a)
            hi = min(hi, (1 + mu) * (1 + root) / l - a)
        }
        lo = max(lo, -(spectrum.min() ?? 0))  // K = A + γI positive definite
        guard hi > lo else { return nil }
        func t(_ gamma: Double) -> Double {
            var total = 0.0
            for a in spectrum {
                let m = l * (a + gamma), mp = l * a
                let e = (1 - mu) * m * (2 - m / (1 + mu)) - mp * mp / s
                guard e > 0 else { return .infinity }
                total += mp * mp / e
            }
            return total
        }
        // Golden section for T's minimum on (lo, hi).
        let golden = (5.0.squareRoot() - 1) / 2
        var a0 = lo, b0 = hi
        for _ in 0..<200 where b0 - a0 > 1e-15 * max(1, abs(a0) + abs(b0)) {
            let x1 = b0 - golden * (b0 - a0), x2 = a0 + golden * (b0 - a0)
            if t(x1) <= t(x2) { b0 = x2 } else { a0 = x1 }
        }
        let center = 0.5 * (a0 + b0)
        guard t(center) < s else { return nil }
        func edge(_ inside: Double, _ outside: Double) -> Double {
            var good = inside, bad = outside
            for _ in 0..<200 where abs(bad - good) > 1e-15 * max(1, abs(good)) {
                let mid = 0.5 * (good + bad)
                if t(mid) < s { good = mid } else { bad = mid }
            }
            return good
        }
        return (edge(center, lo), edge(center, hi))
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

/// The interval of weight decays γ (Γ = γI) for which L2-regularised SGD has a stationary
/// distribution [Thm 4], computed exactly (see `WeightDecayCurve.stableInterval`); nil when no γ
/// is stable at this learning rate. L_test is finite exactly inside it.
public func stableWeightDecayInterval(
    a: SymmetricOperator, u: [Double], learningRate: Double, batchSize: Int, momentum: Double = 0
) throws -> (lower: Double, upper: Double)? {
    try WeightDecayCurve(a: a, u: u, learningRate: learningRate, batchSize: batchSize, momentum: momentum).stableInterval
}

/// The optimal weight decay γ* = argmin_γ L_test(γ) of L2-regularised regression and its test
/// loss [Thm 4, Cor 1]. At a large learning rate γ* can be negative [Cor 1].
///
/// Robust 1-D minimisation over the stable interval, which is computed exactly first (see
/// `WeightDecayCurve.stableInterval`): L_test is evaluated on 257 interior points to bracket the
/// global minimum, which golden-section search then refines to 1e-12 relative.
///
/// - Throws: `unstable` when no γ gives a stationary distribution at this learning rate.
public func optimalWeightDecay(
    a: SymmetricOperator, u: [Double], learningRate: Double, batchSize: Int, momentum: Double = 0
) throws -> (weightDecay: Double, testLoss: Double) {
    let curve = try WeightDecayCurve(a: a, u: u, learningRate: learningRate, batchSize: batchSize, momentum: momentum)
    guard let (lo, hi) = curve.stableInterval else {
        throw SGDNoiseError.unstable("no weight decay gives a stationary distribution at lr = \(learningRate)",
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
    // γ = 0 exactly (no regularisation) when it is stable and at least as good: without label
    // noise L_test(0) = 0, which the search above can only approach.
    if lo < 0 && hi > 0 {
        let atZero = curve.testLoss(0)
        if atZero <= loss {
            gamma = 0
            loss = atZero
        }
    }
    return (gamma, loss)
}
