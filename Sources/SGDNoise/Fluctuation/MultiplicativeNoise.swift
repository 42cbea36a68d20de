/// Noise that depends on the fluctuation itself (multiplicative noise), docs/theory.md §4:
///
///     C(Σ) = (1/S) (β₁ MΣM + β₂ Tr[MΣ] M) + C₀.
///
/// Linear regression gives this structure: label noise and input noise have β₁ = β₂ = 1 with
/// M = H [Lemma 1]; L2 regularisation has β₁ = β₂ = 1 with M = A ≠ H = A + Γ [Prop 3]; the
/// high-dimensional limit has β₁ = −1, β₂ = 1 [Prop 4].
public struct MultiplicativeNoise: Sendable, Equatable {
    /// β₁, the weight of MΣM.
    public var beta1: Double
    /// β₂, the weight of Tr[MΣ] M.
    public var beta2: Double
    /// The batch size S ≥ 1.
    public var batchSize: Int

    /// The noise C(Σ) = (1/S)(β₁ MΣM + β₂ Tr[MΣ] M) + C₀ with β₁ = `beta1`, β₂ = `beta2` (both
    /// finite) and S = `batchSize` ≥ 1; the values are checked when the model is solved.
    public init(beta1: Double, beta2: Double, batchSize: Int) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.batchSize = batchSize
    }

    func validate() throws {
        try Validation.batchSize(batchSize)
        guard beta1.isFinite, beta2.isFinite else {
            throw SGDNoiseError.invalidArgument("beta1 and beta2 must be finite")
        }
    }
}

/// The stationary equation with multiplicative noise, in the common eigenbasis of H̃ and M̃
/// (docs/theory.md §4). With m, m′ the eigenvalues of H̃ = PHP and M̃ = PMP and ĉ the diagonal of
/// the rotated Σ-independent noise Ĉ₀:
///
///     e_i = d_ii − β₁ m′_i² / S,      d_ii = (1−μ) m_i (2 − m_i/(1+μ)),
///     T   = Σ_i m′_i² / e_i,          τ = [Σ_i m′_i ĉ_i / e_i] / (1 − β₂ T / S),
///     Y_ii = (ĉ_i + β₂ τ m′_i / S) / e_i,
///
/// and a stationary solution exists iff every e_i > 0 and β₂ T / S < 1 (the off-diagonal
/// denominators d_ij − β₁ m′_i m′_j / S are then positive too whenever β₁ ≥ 0, or M = H and
/// β₁ ≥ −c₁S, because 2(den_ij) − den_ii − den_jj = c₁(m_i − m_j)² + (β₁/S)(m′_i − m′_j)²).
/// Every step is O(D), so this is also the whole solver when the matrices are given by spectra.
///
/// With multiplicities ω_i (a weighted spectrum, docs/theory.md §8) node i stands for ω_i
/// directions with the same m_i, m′_i and ĉ_i: the sums T, τ's numerator, the flat-direction noise
/// and 𝓕(c) weigh their terms by ω_i, and Y_ii is the value on each of those directions.
struct DiagonalStationarySystem {
    let m: [Double]
    let mPrime: [Double]
    /// ω_i, the number of directions node i stands for (nil: one each).
    let weights: [Double]?
    let noise: MultiplicativeNoise
    let momentum: Double
    let c1: Double
    let c2: Double
    let flatTolerance: Double

    /// When set, the Hessian is a covariance given by the user under this name: a negative
    /// eigenvalue is then invalid input, not an instability.
    var covarianceName: String? = nil

    init(m: [Double], mPrime: [Double], weights: [Double]? = nil, noise: MultiplicativeNoise, momentum: Double) throws {
        try noise.validate()
        try Validation.momentum(momentum)
        precondition(m.count == mPrime.count && (weights?.count ?? m.count) == m.count)
        self.m = m
        self.mPrime = mPrime
        self.weights = weights
        self.noise = noise
        self.momentum = momentum
        c1 = (1 + momentum * momentum) / (1 - momentum * momentum)
        c2 = momentum / (1 - momentum * momentum)
        let scale = m.reduce(0) { max($0, abs($1)) }
        let dimension = weights.map { $0.reduce(0, +) } ?? Double(m.count)
        flatTolerance = 16 * max(dimension, 1) * .ulpOfOne * scale
    }

    /// ω_i (1 without multiplicities).
    @inline(__always)
    func weight(_ i: Int) -> Double { weights?[i] ?? 1 }

    var s: Double { Double(noise.batchSize) }

    func isFlat(_ i: Int) -> Bool { abs(m[i]) <= flatTolerance }

    /// d_ij − β₁ m′_i m′_j / S: the denominator of Y_ij.
    @inline(__always)
    func denominator(_ i: Int, _ j: Int) -> Double {
        stationaryDenominator(m[i], m[j], momentum: momentum, c2: c2) - noise.beta1 * mPrime[i] * mPrime[j] / s
    }

    /// The result of `solve`.
    struct Solution {
        /// Y_ii (0 on flat directions).
        var y: [Double]
        /// τ = Tr[M̃X] = Tr[MΣ].
        var tau: Double
        /// T = Σ m′_i²/e_i.
        var coupling: Double
        /// The noise power entering flat directions.
        var flatNoise: Double
    }

    /// Checks existence, then solves for the diagonal of Y given the diagonal ĉ of Ĉ₀.
    /// - Parameter lrScale: factor that turns the critical scale of m into a learning rate, for
    ///   the message and the error's `criticalLearningRate`.
    func solve(baseNoiseDiagonal c: [Double], lrScale: Double) throws -> Solution {
        let n = m.count
        var e = [Double](repeating: 0, count: n)
        var coupling = 0.0
        var numerator = 0.0
        var flatNoise = 0.0
        var unstable = false
        for i in 0..<n {
            if isFlat(i) {
                flatNoise += weight(i) * c[i]
                continue
            }
            let ei = denominator(i, i)
            if !(ei > 0) || !(m[i] > 0) {
                unstable = true
                break
            }
            e[i] = ei
            coupling += weight(i) * mPrime[i] * mPrime[i] / ei
            numerator += weight(i) * mPrime[i] * c[i] / ei
        }
        let gap = 1 - noise.beta2 * coupling / s
        if unstable || !(gap > 0) { throw unstableError(lrScale: lrScale) }
        if noise.beta1 < 0, !offDiagonalImpliedStable { try checkOffDiagonal(lrScale: lrScale) }
        let tau = numerator / gap
        var y = [Double](repeating: 0, count: n)
        for i in 0..<n where !isFlat(i) {
            y[i] = (c[i] + noise.beta2 * tau * mPrime[i] / s) / e[i]
        }
        for i in 0..<n where isFlat(i) { flatNoise += weight(i) * noise.beta2 * tau * mPrime[i] / s }
        return Solution(y: y, tau: tau, coupling: coupling, flatNoise: flatNoise)
    }

    /// Whether positive diagonal denominators imply positive off-diagonal ones (see above).
    var offDiagonalImpliedStable: Bool {
        noise.beta1 >= 0 || (zip(m, mPrime).allSatisfy { $0 == $1 } && c1 + noise.beta1 / s >= 0)
    }

    /// O(D²) check of every off-diagonal denominator (only for β₁ < 0 with M ≠ H).
    func checkOffDiagonal(lrScale: Double) throws {
        for i in 0..<m.count where !isFlat(i) {
            for j in (i + 1)..<m.count where !isFlat(j) && !(denominator(i, j) > 0) {
                throw unstableError(lrScale: lrScale)
            }
        }
    }

    func unstableError(lrScale: Double) -> SGDNoiseError {
        if let mMin = (0..<m.count).filter({ !isFlat($0) }).map({ m[$0] }).min(), mMin < 0 {
            if let name = covarianceName {
                return .invalidArgument("\(name) must be positive semi-definite (a covariance), but it has a negative eigenvalue")
            }
            return .unstable(
                "the (preconditioned) hessian has a negative eigenvalue \(mMin): this is not a minimum, "
                    + "and no learning rate gives a stationary distribution",
                criticalLearningRate: nil)
        }
        let scale = criticalScale()
        let critical = scale.map { $0 * lrScale }
        return .unstable(
            "unstable: no stationary distribution at this learning rate",
            criticalLearningRate: critical)
    }

    /// The largest factor c such that the system with m → c·m, m′ → c·m′ is stable: the critical
    /// learning rate divided by the current one (docs/theory.md §6). nil when no factor is stable.
    ///
    /// Diagonal edges c_i = 2(1−μ) m_i / q_i, q_i = (1−μ) m_i²/(1+μ) + β₁ m′_i²/S, and the root of
    /// F(c) = (β₂/S) Σ c m′_i² / (2(1−μ) m_i − c q_i) = 1 below them (F increases from 0), found by
    /// safeguarded Newton iteration to full precision.
    ///
    /// c is homogeneous of degree −1 in (m, m′), so it is computed on the spectra scaled to a
    /// largest |m_i| of 1: q_i ∝ m_i² then neither overflows (λ = 1e300 would otherwise report a
    /// critical factor of 0) nor underflows.
    func criticalScale() -> Double? {
        let t = m.reduce(0) { max($0, abs($1)) }
        guard t.isFinite, t > 0, t != 1,
              let scaled = try? DiagonalStationarySystem(m: m.map { $0 / t }, mPrime: mPrime.map { $0 / t },
                                                         weights: weights, noise: noise, momentum: momentum)
        else { return unscaledCriticalScale() }
        return scaled.unscaledCriticalScale().map { $0 / t }
    }

    private func unscaledCriticalScale() -> Double? {
        var edge = Double.infinity
        var idx: [Int] = []
        for i in 0..<m.count where !isFlat(i) {
            if m[i] < 0 { return nil }
            idx.append(i)
            let q = (1 - momentum) * m[i] * m[i] / (1 + momentum) + noise.beta1 * mPrime[i] * mPrime[i] / s
            if q > 0 { edge = min(edge, 2 * (1 - momentum) * m[i] / q) }
        }
        if idx.isEmpty { return .infinity }
        guard noise.beta2 > 0 else { return edge }
        // F(c) − 1 and its derivative.
        func f(_ c: Double) -> (Double, Double) {
            var value = 0.0, slope = 0.0
            for i in idx {
                let a = 2 * (1 - momentum) * m[i]
                let q = (1 - momentum) * m[i] * m[i] / (1 + momentum) + noise.beta1 * mPrime[i] * mPrime[i] / s
                let den = a - c * q
                // Past a term's pole (or on it, by rounding) the sum is +∞: no root there.
                if !(den > 0) { return (.infinity, .infinity) }
                let w = weight(i) * mPrime[i] * mPrime[i]
                value += c * w / den
                slope += w * a / (den * den)
            }
            return (noise.beta2 / s * value - 1, noise.beta2 / s * slope)
        }
        var lo = 0.0
        var hi = edge
        if !hi.isFinite {
            // F grows at least linearly: double until F > 1.
            hi = 1
            while f(hi).0 < 0 {
                lo = hi
                hi *= 2
                if hi > 1e300 { return .infinity }
            }
        } else if f(hi * (1 - 1e-15)).0 < 0 {
            return edge  // the root lies beyond the diagonal edge: the edge binds.
        }
        var c = 0.5 * (lo + hi)
        for _ in 0..<200 {
            let (v, d) = f(c)
            if v < 0 { lo = c } else { hi = c }
            var next = c - v / d
            // Converged: a Newton step within rounding of c. Tested before the bracket, which c
            // itself has just become one end of: a step onto that end is not a reason to bisect
            // (bisecting there threw a converged root away and took ~26 more halvings).
            if abs(next - c) <= 2 * .ulpOfOne * c {
                if next >= lo && next <= hi { c = next }
                break
            }
            if !(next > lo && next < hi) || !next.isFinite { next = 0.5 * (lo + hi) }
            if abs(next - c) <= 2 * .ulpOfOne * c || hi - lo <= 2 * .ulpOfOne * hi {
                c = next
                break
            }
            c = next
        }
        return c
    }
}
