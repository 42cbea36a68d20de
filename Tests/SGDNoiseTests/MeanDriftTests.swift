import Foundation
@testable import SGDNoise
import Testing

/// `meanDrift` (docs/theory.md §8, "Drift") on a cubic loss L(w) = ½wᵀAw + (1/6)Σ c_abc w_a w_b w_c,
/// whose third derivative is known: H(w) = A + Σ_c c_·· c w_c and ∇(vᵀH(w)v)_c = Σ_ab c_abc v_a v_b.
/// References, each by another route: g = Σ_ab c_abc Σ_ab with the whole Σ = Q S Qᵀ; the mean by a
/// plain loop of the heavy-ball recursion m ← μm + He + ½g, e ← e − λm with dense matrices; ψ_t by
/// its closed form at μ = 0; the relaxation time by the decay of powers of the 2 × 2 map.
@Suite("Mean drift (matrix-free, §8)")
struct MeanDriftTests {
    /// A (P × P) with a separated top, a bulk in (0, 0.3) and one exactly flat direction; c
    /// symmetric in its three indices.
    static func problem(_ p: Int, seed: UInt64) -> (a: Matrix, c: [Double]) {
        var rng = SeededGenerator(seed: seed)
        let a = rng.symmetric(eigenvalues: [4, 2.5, 2, 1.5] + rng.uniformArray(p - 5, 0.01, 0.3) + [0])
        var c = [Double](repeating: 0, count: p * p * p)
        for i in 0..<p {
            for j in i..<p {
                for l in j..<p {
                    let x = rng.uniform(-1, 1)
                    for (a1, b1, c1) in [(i, j, l), (i, l, j), (j, i, l), (j, l, i), (l, i, j), (l, j, i)] {
                        c[(a1 * p + b1) * p + c1] = x
                    }
                }
            }
        }
        return (a, c)
    }

    static func curvatureGradient(_ c: [Double], _ p: Int) -> CurvatureGradient {
        { v, out in
            for l in 0..<p {
                var s = 0.0
                for a in 0..<p {
                    for b in 0..<p { s += c[(a * p + b) * p + l] * v[a] * v[b] }
                }
                out[l] = s
            }
        }
    }

    /// The mean after t steps of the heavy-ball recursion with the constant force ½g, by a loop.
    static func bruteForceMean(_ a: Matrix, _ g: [Double], lr: Double, mu: Double, t: Int) -> [Double] {
        let p = a.rows
        var e = [Double](repeating: 0, count: p), m = e
        for _ in 0..<t {
            for i in 0..<p {
                var he = 0.0
                for j in 0..<p { he += a[i, j] * e[j] }
                m[i] = mu * m[i] + he + 0.5 * g[i]
            }
            for i in 0..<p { e[i] -= lr * m[i] }
        }
        return e
    }

    @Test("g, the mean at several steps and the stationary offsets against the dense loop", arguments: [0.0, 0.7])
    func againstDense(momentum: Double) throws {
        let p = 24, k = 4, lr = 0.1 * (1 - momentum)
        let (a, c) = Self.problem(p, seed: 3)
        let dense = try SymmetricEigendecomposition(a)
        // The top-k eigenpairs (descending) and a positive definite block S on them.
        let top = (0..<k).map { p - 1 - $0 }
        let values = top.map { dense.values[$0] }
        var rows = Matrix(rows: k, columns: p)
        for (r, index) in top.enumerated() { for col in 0..<p { rows[r, col] = dense.eigenvectorRows[index, col] } }
        var rng = SeededGenerator(seed: 9)
        let block = rng.spd(k, eigenvaluesIn: 0.001, 0.01)
        let steps = [0, 1, 7, 60, 400]
        let hessian = try HessianOperator(a)
        let r = try meanDrift(hessian: hessian, curvatureGradient: Self.curvatureGradient(c, p), eigenvalues: values,
                              eigenvectorRows: rows, sigmaBlock: block, learningRate: lr, momentum: momentum, steps: steps)
        // g_c = Σ_ab c_abc Σ_ab with Σ = Qᵀ S Q (rows Q).
        let sigma = Matrix.product(rows.transposed, Matrix.product(block, rows))
        var g = [Double](repeating: 0, count: p)
        for l in 0..<p {
            for i in 0..<p { for j in 0..<p { g[l] += c[(i * p + j) * p + l] * sigma[i, j] } }
        }
        let gScale = g.map(abs).max()!
        for l in 0..<p { #expect(abs(r.curvatureGradient[l] - g[l]) <= 1e-12 * gScale) }
        #expect(r.curvatureGradientProducts == k)
        #expect(r.converged)
        for (row, t) in steps.enumerated() {
            let expected = Self.bruteForceMean(a, g, lr: lr, mu: momentum, t: t)
            let scale = max(expected.map(abs).max()!, 1e-300)
            for l in 0..<p {
                #expect(abs(r.displacements[row, l] - expected[l]) <= 1e-9 * scale,
                        "t = \(t), entry \(l): \(r.displacements[row, l]) vs \(expected[l])")
            }
        }
        // The flat direction drifts linearly: its component at t = 400 is −(λ/2)ψ_400(0) (qᵀg).
        let flat = (0..<p).map { dense.eigenvectorRows[0, $0] }
        let along = zip(flat, (0..<p).map { r.displacements[4, $0] }).reduce(0) { $0 + $1.0 * $1.1 }
        let gFlat = zip(flat, g).reduce(0) { $0 + $1.0 * $1.1 }
        let psi = (0..<400).reduce(0.0) { $0 + (1 - pow(momentum, Double($1 + 1))) / (1 - momentum) }
        #expect(abs(along + 0.5 * lr * psi * gFlat) <= 1e-9 * abs(0.5 * lr * psi * gFlat))
        // Offsets: −½ qᵢᵀg / hᵢ.
        for i in 0..<k {
            let qg = (0..<p).reduce(0.0) { $0 + rows[i, $1] * g[$1] }
            #expect(abs(r.stationaryOffsets[i] + 0.5 * qg / values[i]) <= 1e-12 * gScale)
        }
        // All P eigenpairs given (the dense route): no Krylov products, the same means.
        let whole = try meanDrift(hessian: try HessianOperator(a), curvatureGradient: Self.curvatureGradient(c, p),
                                  eigenvalues: dense.values, eigenvectorRows: dense.eigenvectorRows,
                                  sigmaBlock: Matrix.product(dense.eigenvectorRows, Matrix.product(sigma, dense.eigenvectorRows.transposed)).symmetrized,
                                  learningRate: lr, momentum: momentum, steps: steps)
        #expect(whole.hessianProducts == 0)
        for row in 0..<steps.count {
            let scale = max((0..<p).map { abs(r.displacements[row, $0]) }.max()!, 1e-300)
            for l in 0..<p { #expect(abs(whole.displacements[row, l] - r.displacements[row, l]) <= 1e-9 * scale) }
        }
    }

    @Test("ψ_t: the closed form at μ = 0, the flat limit, the stationary limit")
    func response() {
        for x in [0.3, 0.01, 1.5] {
            for t in [1, 2, 10, 1000] {
                let closed = (1 - pow(1 - x, Double(t))) / x
                #expect(abs(driftResponse(steps: t, curvature: x, momentum: 0) - closed) <= 1e-12 * abs(closed) + 1e-15)
            }
        }
        #expect(driftResponse(steps: 0, curvature: 0.5, momentum: 0.9) == 0)
        #expect(abs(driftResponse(steps: 100, curvature: 0, momentum: 0) - 100) <= 1e-12)
        #expect(abs(driftResponse(steps: 1_000_000, curvature: 0.2, momentum: 0.9) - 5) <= 1e-9)
    }

    @Test("relaxation steps: the decay rate of the mean map's powers")
    func relaxation() {
        for (x, mu) in [(0.1, 0.0), (0.01, 0.9), (0.5, 0.5), (1.9, 0.0), (0.001, 0.0)] {
            // ρ by the decay of the largest |(e, m)| over windows of 200 steps (longer than an
            // oscillation's period) `gap` steps apart (e relaxes as ρⁿ; the gap is short enough
            // for fast modes not to underflow).
            let tau = relaxationSteps(curvature: x, momentum: mu)
            let gap = min(2000, Int(20 * tau) + 200)
            var e = 1.0, m = 0.0
            var peaks = [0.0, 0.0]
            for n in 1...(2 * gap) {
                m = mu * m + x * e
                e -= m
                let size = (e * e + m * m).squareRoot()
                if n > gap - 200 && n <= gap { peaks[0] = max(peaks[0], size) }
                if n > 2 * gap - 200 { peaks[1] = max(peaks[1], size) }
            }
            let rho = exp((log(peaks[1]) - log(peaks[0])) / Double(gap))
            #expect(abs(exp(-1 / tau) - rho) <= 2e-3, "x = \(x), μ = \(mu): τ = \(tau), ρ = \(rho)")
        }
        #expect(relaxationSteps(curvature: 0, momentum: 0) == .infinity)
        #expect(relaxationSteps(curvature: -0.1, momentum: 0.5) == .infinity)
        #expect(relaxationSteps(curvature: 4.5, momentum: 0) == .infinity)
    }
}
