import Foundation

/// How fast the moments of SGD approach their stationary values under fixed hyperparameters (the
/// last ones of a schedule), and where they go (docs/theory.md §9).
///
/// Mode i (an eigenvector of H, eigenvalue h_i, coupling a_i) carries the second moments
/// (P_i, R_i, Q_i) of (e_i, m_i); with α = 1 − λh and k = β₁a²/S its linearised map is
///
///     B_i = [[α² + λ²k, −2λμα, λ²μ²], [αh − λk, μ(α − λh), −λμ²], [h² + k, 2μh, μ²]],
///
/// and the modes are coupled by the rank-one term (β₂/S) a_i τ (λ², −λ, 1) with τ = Σ a_k P_k. The
/// relaxation time of a rate ρ is −1/ln ρ steps (the e-folding time of the distance to
/// stationarity), ∞ when ρ ≥ 1.
public struct Relaxation: Sendable {
    /// −1/ln ρ(B_i) for each mode, in the eigenbasis order (a spectrum's own order; ascending
    /// eigenvalues of H for a dense model): the relaxation time of mode i's second moments
    /// without the trace coupling.
    public let modeTimes: [Double]
    /// −1/ln ρ of the whole coupled second-moment map (the largest root z > max ρ(B_i) of
    /// (β₂/S) Σ_i a_i² e_Pᵀ(zI − B_i)⁻¹(λ², −λ, 1)ᵀ = 1, or max ρ(B_i) when there is none): the
    /// relaxation time of the losses' fluctuation part.
    public let momentTime: Double
    /// −1/ln of the spectral radius of the mean's map [[α_i, −λμ], [h_i, μ]]: the relaxation
    /// time of the bias E[e_t] (which enters the test loss linearly when w* ≠ u).
    public let meanTime: Double
    /// The stationary train loss for the last hyperparameters (the model's `Prediction.trainLoss`);
    /// nil when they are unstable or the last learning rate is 0.
    public let stationaryTrainLoss: Double?
    /// The stationary test loss for the last hyperparameters (nil as above).
    public let stationaryTestLoss: Double?
    /// The first update t ≥ `Schedule.lastChange` from which |L_train(s) − L*| ≤ ε|L*| for every
    /// s = t…T (ε = `tolerance`); nil when the train loss is still outside at the end or there is
    /// no stationary value.
    public let settledAt: Int?
    /// ε, the relative tolerance of `settledAt`.
    public let tolerance: Double
}

/// The relaxation rates of one set of hyperparameters on a `TransientSystem`.
struct RelaxationRates {
    let modeRates: [Double]
    let momentRate: Double
    let meanRate: Double

    init(system: TransientSystem, learningRate lr: Double, batchSize: Int, momentum mu: Double) {
        let invS = 1 / Double(batchSize)
        let h = system.h, a = system.a
        var modes = [Double](repeating: 0, count: h.count)
        var meanRate = 0.0
        for i in 0..<h.count {
            let b = Self.block(h: h[i], a: a[i], lr: lr, invS: invS, mu: mu, beta1: system.beta1)
            modes[i] = Self.spectralRadius3(b)
            // The mean's 2×2 map: trace α + μ, determinant μ.
            meanRate = max(meanRate, Self.quadraticRootModulus(b: -(1 - lr * h[i] + mu), c: mu))
        }
        modeRates = modes
        self.meanRate = meanRate
        let top = modes.max() ?? 0
        let weight = system.beta2 * invS
        guard weight != 0 else {
            momentRate = top
            return
        }
        // f(z) = (β₂/S) Σ a_i² e_Pᵀ (zI − B_i)⁻¹ g, decreasing for z > max ρ(B_i). Each term is
        // a rational function N_i(z)/det(zI − B_i), quadratic over cubic: its coefficients are
        // computed once, so an evaluation costs a few operations per mode.
        let g = (lr * lr, -lr, 1.0)
        var terms: [(w: Double, n1: Double, n0: Double, c2: Double, c1: Double, c0: Double)] = []
        terms.reserveCapacity(h.count)
        for i in 0..<h.count where a[i] != 0 {
            let b = Self.block(h: h[i], a: a[i], lr: lr, invS: invS, mu: mu, beta1: system.beta1)
            let (c2, c1, c0) = Self.characteristic(b)
            let n1 = -g.0 * (b[4] + b[8]) + b[1] * g.1 + b[2] * g.2
            let n0 = g.0 * (b[4] * b[8] - b[5] * b[7]) + b[1] * (b[5] * g.2 - g.1 * b[8]) + b[2] * (g.1 * b[7] - g.2 * b[4])
            terms.append((a[i] * a[i], n1, n0, c2, c1, c0))
        }
        func f(_ z: Double) -> Double {
            var sum = 0.0
            for t in terms {
                sum += t.w * ((g.0 * z + t.n1) * z + t.n0) / (((z - t.c2) * z + t.c1) * z - t.c0)
            }
            return weight * sum
        }
        var lo = top * (1 + 1e-14) + 1e-300
        if !(f(lo) > 1) {
            momentRate = top
            return
        }
        var hi = max(2 * lo, 1e-300)
        while f(hi) > 1 && hi < 1e300 {
            lo = hi
            hi *= 2
        }
        for _ in 0..<200 {
            let mid = 0.5 * (lo + hi)
            if f(mid) > 1 { lo = mid } else { hi = mid }
            if hi - lo <= 4 * .ulpOfOne * hi { break }
        }
        momentRate = 0.5 * (lo + hi)
    }

    /// B_i as rows (a fixed-size value: no allocation in the loops over modes and bisection steps).
    static func block(h: Double, a: Double, lr: Double, invS: Double, mu: Double, beta1: Double) -> InlineArray<9, Double> {
        let alpha = 1 - lr * h
        let k = beta1 * a * a * invS
        return [alpha * alpha + lr * lr * k, -2 * lr * mu * alpha, lr * lr * mu * mu,
                alpha * h - lr * k, mu * (alpha - lr * h), -lr * mu * mu,
                h * h + k, 2 * mu * h, mu * mu]
    }

    /// det(zI − B) = z³ − c₂z² + c₁z − c₀: (c₂, c₁, c₀) = (tr B, the sum of the principal 2 × 2
    /// minors, det B).
    static func characteristic(_ b: InlineArray<9, Double>) -> (Double, Double, Double) {
        let c2 = b[0] + b[4] + b[8]
        let c1 = b[0] * b[4] - b[1] * b[3] + b[0] * b[8] - b[2] * b[6] + b[4] * b[8] - b[5] * b[7]
        let c0 = b[0] * (b[4] * b[8] - b[5] * b[7]) - b[1] * (b[3] * b[8] - b[5] * b[6]) + b[2] * (b[3] * b[7] - b[4] * b[6])
        return (c2, c1, c0)
    }

    /// The largest modulus of the roots of z² + bz + c.
    static func quadraticRootModulus(b: Double, c: Double) -> Double {
        let disc = b * b - 4 * c
        if disc < 0 { return abs(c).squareRoot() }
        let s = disc.squareRoot()
        return max(abs(-b + s), abs(-b - s)) / 2
    }

    /// The spectral radius of a 3 × 3 matrix: a real root of its characteristic polynomial by
    /// bisection, then the deflated quadratic.
    static func spectralRadius3(_ b: InlineArray<9, Double>) -> Double {
        let (c2, c1, c0) = characteristic(b)
        func p(_ z: Double) -> Double { ((z - c2) * z + c1) * z - c0 }
        var lo = -(1 + max(abs(c2), abs(c1), abs(c0)))
        var hi = -lo
        for _ in 0..<200 {
            let mid = 0.5 * (lo + hi)
            if p(mid) < 0 { lo = mid } else { hi = mid }
            if hi - lo <= 4 * .ulpOfOne * max(abs(hi), abs(lo), .leastNormalMagnitude) { break }
        }
        let x = 0.5 * (lo + hi)
        let bq = x - c2
        return max(abs(x), quadraticRootModulus(b: bq, c: c1 + x * bq))
    }

    /// −1/ln ρ (∞ for ρ ≥ 1, 0 for ρ = 0).
    static func time(_ rate: Double) -> Double {
        if rate >= 1 { return .infinity }
        if rate <= 0 { return 0 }
        return -1 / Foundation.log(rate)
    }
}
