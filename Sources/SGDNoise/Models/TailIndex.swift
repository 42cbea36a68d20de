#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How to compute the tail index of the 1-d stationary distribution.
public enum TailIndexMethod: Sendable, Equatable {
    /// The paper's estimate β = 2S/(aλ) − S [Sec 6.6].
    case paper
    /// The exact index of the Kesten recursion w′ = (1 − (λ/S)aχ²_S)w + noise for Gaussian inputs:
    /// the κ > 0 with E|1 − (λ/S)aχ²_S|^κ = 1 (docs/theory.md §6, extension).
    case kesten
    /// The continuous-time limit 2S/(aλ) + 1.
    case continuousTime
}

/// The tail index of the stationary law of 1-d SGD on linear regression (curvature a, learning
/// rate λ, batch size S): moments of order ≥ index diverge [Sec 6.6].
///
/// For `.kesten`, g(κ) = E|1 − cX|^κ with c = λa/S and X ~ χ²_S is computed by composite
/// 32-point Gauss–Legendre quadrature in the log domain (split at the kink X = 1/c, with X = t²
/// near 0 to absorb the χ² density's singularity), and log g(κ) = 0 is solved by bracketing and
/// bisection–secant to 1e-12 relative. E.g. S = 10, aλ = 1: paper 10, exact ≈ 7.51; both give 2 at λ*.
///
/// - Throws: `unstable` when E log|1 − cX| ≥ 0 (no stationary law at all); `invalidArgument`.
public func tailIndex(a: Double, learningRate: Double, batchSize: Int, method: TailIndexMethod = .kesten) throws -> Double {
    guard a.isFinite, a > 0 else { throw SGDNoiseError.invalidArgument("a must be a finite positive number, got \(a)") }
    guard learningRate.isFinite, learningRate > 0 else {
        throw SGDNoiseError.invalidArgument("lr must be a finite positive number, got \(learningRate)")
    }
    try Validation.batchSize(batchSize)
    let s = Double(batchSize)
    switch method {
    case .paper: return 2 * s / (a * learningRate) - s
    case .continuousTime: return 2 * s / (a * learningRate) + 1
    case .kesten: return try KestenTail(c: learningRate * a / s, batchSize: batchSize).index()
    }
}

/// E|1 − cX|^κ for X ~ χ²_S, in the log domain.
struct KestenTail {
    let c: Double
    let batchSize: Int

    private var halfS: Double { Double(batchSize) / 2 }
    private var logNormaliser: Double { halfS * log(2.0) + lgamma(halfS) }

    /// The quadrature nodes (x, log weight·density part) independent of κ, with log|1 − cx|.
    private func nodes() -> [(logAbs: Double, logBase: Double)] {
        let rule = GaussLegendre.rule32
        var out: [(Double, Double)] = []
        let x0 = 1 / c
        let t0 = x0.squareRoot()
        // Region 1: x = t², t ∈ [0, t0]: dx = 2t dt, density x^{S/2−1}e^{−x/2}/Z.
        let panels = 64
        for p in 0..<panels {
            let lo = t0 * Double(p) / Double(panels), hi = t0 * Double(p + 1) / Double(panels)
            for (node, weight) in rule {
                let t = 0.5 * (lo + hi) + 0.5 * (hi - lo) * node
                let x = t * t
                let logDensity = (halfS - 1) * log(x) - x / 2 - logNormaliser
                out.append((log(abs(1 - c * x)), log(0.5 * (hi - lo) * weight) + log(2 * t) + logDensity))
            }
        }
        // Region 2: x ∈ [x0, x0 + L], panels growing geometrically away from the kink; L reaches
        // far past the χ² bulk and the (cx)^κ tilt (κ ≤ 10⁴ handled).
        let upper = max(x0, Double(batchSize)) * 40 + 4000
        let ratio = 1.08
        var width = min(x0, 1) * 1e-3
        var lo = x0
        while lo < x0 + upper {
            let hi = lo + width
            for (node, weight) in rule {
                let x = 0.5 * (lo + hi) + 0.5 * (hi - lo) * node
                let logDensity = (halfS - 1) * log(x) - x / 2 - logNormaliser
                out.append((log(abs(1 - c * x)), log(0.5 * (hi - lo) * weight) + logDensity))
            }
            lo = hi
            width *= ratio
        }
        return out
    }

    /// log E|1 − cX|^κ for each κ asked, sharing the nodes.
    func logMoment(_ kappa: Double, _ table: [(logAbs: Double, logBase: Double)]) -> Double {
        var maxTerm = -Double.infinity
        for n in table { maxTerm = max(maxTerm, kappa * n.logAbs + n.logBase) }
        var sum = 0.0
        for n in table { sum += exp(kappa * n.logAbs + n.logBase - maxTerm) }
        return maxTerm + log(sum)
    }

    func index() throws -> Double {
        let table = nodes()
        // Slope at 0: E log|1 − cX| < 0 is needed for a stationary law.
        var slope = 0.0
        for n in table { slope += exp(n.logBase) * n.logAbs }
        guard slope < 0 else {
            throw SGDNoiseError.unstable(
                "E log|1 − (λ/S)aχ²_S| = \(slope) ≥ 0: the 1-d SGD iterates have no stationary distribution",
                criticalLearningRate: nil)
        }
        var lo = 0.0
        var hi = 1.0
        while logMoment(hi, table) < 0 {
            lo = hi
            hi *= 2
            if hi > 1e4 { return .infinity }
        }
        var fLo = lo == 0 ? 0 : logMoment(lo, table), fHi = logMoment(hi, table)
        for _ in 0..<200 {
            // Secant step inside the bracket, bisection when it stalls.
            var k = lo == 0 ? 0.5 * (lo + hi) : lo - fLo * (hi - lo) / (fHi - fLo)
            if !(k > lo && k < hi) || (hi - lo) > 0.5 * hi { k = 0.5 * (lo + hi) }
            let f = logMoment(k, table)
            if f < 0 { lo = k; fLo = f } else { hi = k; fHi = f }
            if hi - lo <= 1e-13 * hi { break }
        }
        return 0.5 * (lo + hi)
    }
}

/// Gauss–Legendre rules on [−1, 1], computed once by Newton's method on P_n.
enum GaussLegendre {
    static let rule32: [(Double, Double)] = rule(32)

    static func rule(_ n: Int) -> [(Double, Double)] {
        var out: [(Double, Double)] = []
        for i in 1...n {
            var x = cos(Double.pi * (Double(i) - 0.25) / (Double(n) + 0.5))
            var derivative = 0.0
            for _ in 0..<100 {
                var p0 = 1.0, p1 = x
                for k in 2...n {
                    let p2 = ((2 * Double(k) - 1) * x * p1 - Double(k - 1) * p0) / Double(k)
                    p0 = p1
                    p1 = p2
                }
                derivative = Double(n) * (x * p1 - p0) / (x * x - 1)
                let dx = p1 / derivative
                x -= dx
                if abs(dx) < 1e-16 { break }
            }
            out.append((x, 2 / ((1 - x * x) * derivative * derivative)))
        }
        return out
    }
}
