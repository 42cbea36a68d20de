@testable import SGDNoise
import Testing

/// The simulator's exact-in-law minibatch gradient of online Gaussian data (`ExactGaussianGradient`,
/// D + 1 normals and one χ²_S a step) against two independent routes: the analytic first and
/// second moments of Σ_i x_i(x_iᵀδ − ε_i), and the brute-force sum of S per-sample gradients from
/// S·D + S normals, compared also in third and fourth moments along a fixed direction. Every
/// comparison is a z-score from 64 batch means.
@Suite("Simulator: the exact-in-law Gaussian minibatch gradient")
struct ExactGaussianGradientTests {
    static let batches = 64, perBatch = 4_000

    /// Per draw: g_k, g_k g_l (k ≤ l), (t·g)³ and (t·g)⁴ for a fixed unit t.
    static func features(_ g: [Double], _ t: [Double]) -> [Double] {
        let d = g.count
        var f = g
        for k in 0..<d { for l in k..<d { f.append(g[k] * g[l]) } }
        let p = zip(t, g).reduce(0) { $0 + $1.0 * $1.1 }
        f.append(p * p * p)
        f.append(p * p * p * p)
        return f
    }

    /// Batch means of the features of `draw()`'s values: the mean and its standard error per feature.
    static func estimate(_ t: [Double], _ draw: () -> [Double]) -> (mean: [Double], se: [Double]) {
        var batchMeans: [[Double]] = []
        for _ in 0..<batches {
            var sum: [Double] = []
            for _ in 0..<perBatch {
                let f = features(draw(), t)
                if sum.isEmpty { sum = f } else { for k in f.indices { sum[k] += f[k] } }
            }
            batchMeans.append(sum.map { $0 / Double(perBatch) })
        }
        let m = batchMeans[0].count, b = Double(batches)
        let mean = (0..<m).map { k in batchMeans.reduce(0) { $0 + $1[k] } / b }
        let se = (0..<m).map { k in
            (batchMeans.reduce(0) { $0 + ($1[k] - mean[k]) * ($1[k] - mean[k]) } / (b - 1) / b).squareRoot()
        }
        return (mean, se)
    }

    /// Draws of the library's sampler at w = u + δ (A = diag(a), teacher u, label noise σ), divided by `unit`.
    static func exactDraws<Dimension: ChainDimension>(
        _ dimension: Dimension, a: [Double], u: [Double], delta: [Double], sigma: Double, s: Int, unit: Double, seed: UInt64
    ) -> () -> [Double] {
        let arena = ChainArena()
        let d = dimension.count
        let gradient = ExactGaussianGradient(
            sqrtA: dimension.vector(a.map { $0.squareRoot() }, arena), teacher: dimension.vector(u, arena),
            labelNoise: sigma, batchSize: s, dimension: dimension, direction: dimension.zeros(arena),
            normals: dimension.zeros(arena), tables: Ziggurat.shared)
        let w = dimension.vector(zip(u, delta).map { $0 + $1 }, arena)
        var g = dimension.zeros(arena)
        var random = Xoshiro256StarStar(seed: seed)
        return {
            withExtendedLifetime(arena) {
                for i in 0..<d { g[i] = 0 }
                gradient.accumulate(at: w, into: &g, random: &random)
                return (0..<d).map { g[$0] / unit }
            }
        }
    }

    /// Draws of Σ_{i<S} x_i(x_iᵀδ − ε_i), x_i = √a ⊙ z_i, from S·D + S normals.
    static func bruteForceDraws(a: [Double], delta: [Double], sigma: Double, s: Int, seed: UInt64) -> () -> [Double] {
        var random = Xoshiro256StarStar(seed: seed)
        let root = a.map { $0.squareRoot() }
        return {
            var g = [Double](repeating: 0, count: a.count)
            for _ in 0..<s {
                let x = root.map { $0 * random.normal(.shared) }
                let r = zip(x, delta).reduce(0) { $0 + $1.0 * $1.1 } - sigma * random.normal(.shared)
                for k in g.indices { g[k] += x[k] * r }
            }
            return g
        }
    }

    /// E[g] = S aδ and E[ggᵀ] = S[(aδ)(aδ)ᵀ + (δᵀAδ + σ²)A] + S²(aδ)(aδ)ᵀ, as the first features.
    static func analyticMoments(a: [Double], delta: [Double], sigma: Double, s: Int) -> [Double] {
        let d = a.count, sd = Double(s)
        let ad = zip(a, delta).map { $0 * $1 }
        let q = zip(ad, delta).reduce(0) { $0 + $1.0 * $1.1 } + sigma * sigma
        var f = ad.map { sd * $0 }
        for k in 0..<d {
            for l in k..<d {
                f.append(sd * (ad[k] * ad[l] + (k == l ? q * a[k] : 0)) + sd * sd * ad[k] * ad[l])
            }
        }
        return f
    }

    static func check<Dimension: ChainDimension>(
        _ dimension: Dimension, a: [Double], delta: [Double], sigma: Double, s: Int, scale: Double = 1
    ) {
        let d = a.count
        // The teacher scales with δ, or w − u would lose a tiny δ to w's rounding.
        let u = (0..<d).map { (0.25 * Double($0) - 0.3) * scale }
        let t = (0..<d).map { Double($0 + 1) }.map { $0 / (Double(d * (d + 1) * (2 * d + 1)) / 6).squareRoot() }
        // The sampler at (scale·δ, scale·σ), divided by `scale`: the same law as at (δ, σ).
        let exact = estimate(t, exactDraws(dimension, a: a, u: u, delta: delta.map { $0 * scale }, sigma: sigma * scale,
                                           s: s, unit: scale, seed: 21))
        let brute = estimate(t, bruteForceDraws(a: a, delta: delta, sigma: sigma, s: s, seed: 22))
        let twoSample = exact.mean.indices.map { k in
            (exact.mean[k] - brute.mean[k]) / (exact.se[k] * exact.se[k] + brute.se[k] * brute.se[k]).squareRoot()
        }
        let analytic = analyticMoments(a: a, delta: delta, sigma: sigma, s: s)
        let oneSample = analytic.indices.map { k in (exact.mean[k] - analytic[k]) / exact.se[k] }
        #expect(twoSample.allSatisfy { $0.isFinite && abs($0) < 5 }, "exact vs brute force z: \(twoSample)")
        #expect(oneSample.allSatisfy { $0.isFinite && abs($0) < 5 }, "exact vs analytic z: \(oneSample)")
    }

    @Test("D = 2 with label noise, S = 10 (the README's case)")
    func twoDimensions() {
        Self.check(FixedDimension2(), a: [1.0, 0.3], delta: [0.7, -0.4], sigma: 1, s: 10)
    }

    @Test("D = 5 (arena vectors), S = 3")
    func fiveDimensions() {
        Self.check(DynamicDimension(count: 5), a: [1, 0.8, 0.5, 0.3, 0.1], delta: [0.2, -0.5, 0.9, 0.1, -1.2],
                   sigma: 0.5, s: 3)
    }

    @Test("At the teacher (v = 0: the direction e₁ stands in for v̂)")
    func atTheTeacher() {
        Self.check(FixedDimension2(), a: [1.0, 0.3], delta: [0, 0], sigma: 1, s: 10)
    }

    @Test("|v|² below 2⁻¹⁰²⁰ (its reciprocal would overflow): the same law, scaled by 10⁻¹⁶⁰")
    func tinyResidual() {
        Self.check(FixedDimension3(), a: [0.9, 0.4, 0.2], delta: [0.6, 0.3, -0.8], sigma: 0.7, s: 5, scale: 1e-160)
    }

    @Test("|v|² underflowing to 0 without label noise (scale 10⁻¹⁶⁵): still the law of a nonzero v")
    func underflowingResidual() {
        Self.check(FixedDimension2(), a: [1.0, 0.3], delta: [0.7, -0.4], sigma: 0, s: 10, scale: 1e-165)
    }

    @Test("No label noise, S = 1 (χ²₁)")
    func noLabelNoise() {
        Self.check(FixedDimension4(), a: [1, 0.6, 0.4, 0.2], delta: [0.3, -0.2, 0.5, 0.4], sigma: 0, s: 1)
    }
}
