import Foundation
@testable import SGDNoise
import Testing

/// `networkFluctuation` (docs/theory.md §8) against the dense route: the exact block of Σ against
/// `stationaryCovariance`'s Σ projected on the same eigenvectors, the excess loss by z-score
/// against ½Tr[HΣ], the critical learning rates against 2(1+μ)/h_max and the high-dimensional
/// model's edge (the same multiplicative noise solved by the engine's safeguarded Newton).
@Suite("Network fluctuation (matrix-free, §8)")
struct NetworkFluctuationTests {
    /// H with a separated top and a bulk in [0, 1); C a positive definite noise.
    static func problem(_ p: Int, seed: UInt64) -> (Matrix, Matrix) {
        var rng = SeededGenerator(seed: seed)
        let h = rng.symmetric(eigenvalues: [5, 3, 2.5, 2] + rng.uniformArray(p - 4, 0, 1))
        let c = rng.spd(p, eigenvaluesIn: 0.01, 0.2)
        return (h, c)
    }

    static func matvec(_ m: Matrix) -> NoiseProduct {
        { v, out in
            let n = m.rows
            for i in 0..<n {
                var s = 0.0
                for j in 0..<n { s += m.elements[i * n + j] * v[j] }
                out[i] = s
            }
        }
    }

    @Test("block exact, excess loss and critical rates against the dense route", arguments: [0.0, 0.6])
    func againstDense(momentum: Double) throws {
        let p = 50, k = 4, s = 8, lr = 0.15
        let (h, c) = Self.problem(p, seed: 11)
        let r = try networkFluctuation(hessian: try HessianOperator(h), noise: Self.matvec(c), learningRate: .scalar(lr),
                                       momentum: momentum, k: k, probes: 40, steps: 30, batchSize: s,
                                       tolerance: 1e-12, seed: 5)
        // The block is exact given exact eigenvectors; its error follows the residuals (≲ residual / gap).
        #expect(r.topConverged && (r.topResiduals.max() ?? 1) <= 1e-12 * r.topEigenvalues[0])
        let sigma = try stationaryCovariance(hessian: h, noise: c, learningRate: .scalar(lr), momentum: momentum).sigma
        let q = r.topEigenvectorRows
        let block = Matrix.product(q, Matrix.product(sigma, q.transposed))
        let got = try #require(r.sigmaBlock)
        #expect((got - block).maxAbs <= 1e-11 * block.maxAbs)
        let exact = 0.5 * SymmetricOperator.dense(h).traceProduct(.dense(sigma))
        #expect(abs(r.excessLoss.value - exact) < 4 * r.excessLoss.standardError)
        #expect(r.excessLoss.standardError < 0.05 * exact)
        #expect(abs(r.criticalLearningRateAdditive - 2 * (1 + momentum) / 5) <= 1e-9)
        let dense = try Model.highDimensional(aHat: .dense(h), alpha: 1, noiseVariance: 0)
            .criticalLearningRate(batchSize: s, momentum: momentum)
        let m = try #require(r.criticalLearningRateMultiplicative)
        #expect(abs(m.value - dense) < 4 * m.standardError, "multiplicative \(m.value) ± \(m.standardError) vs \(dense)")
        #expect(r.noiseProducts == 2 * k + 40)
    }

    /// A Hessian with a 3-dimensional null space: the flat bottom directions are found, and the
    /// noise entering them is Tr[P₀ C̃ P₀] (basis-independent), against the dense projector; zero
    /// when the noise lives off the null space.
    @Test("the noise entering the flat directions against the dense null-space projector", arguments: [0.0, 0.5])
    func flatDirections(momentum: Double) throws {
        let p = 30, k = 4, lr = 0.1
        var rng = SeededGenerator(seed: 21)
        let q = rng.orthogonal(p)
        let values = [0.0, 0.0, 0.0] + rng.uniformArray(p - 6, 0.2, 1) + [5, 3, 2.5]
        let h = Matrix.product(q.transposed, Matrix.product(Matrix.diagonal(values), q)).symmetrized
        let c = rng.spd(p, eigenvaluesIn: 0.01, 0.2)
        var projector = Matrix(rows: p, columns: p)  // P₀ = Σ over the null rows of q
        for i in 0..<3 { for a in 0..<p { for b in 0..<p { projector[a, b] += q[i, a] * q[i, b] } } }
        let entering = SymmetricOperator.dense(projector).traceProduct(.dense(c))  // Tr[P₀ C]
        let r = try networkFluctuation(hessian: try HessianOperator(h), noise: Self.matvec(c), learningRate: .scalar(lr),
                                       momentum: momentum, k: k, probes: 4, steps: 10, tolerance: 1e-12, seed: 1)
        #expect(r.flatCount == 3)
        let expected = lr * entering / ((1 - momentum) * (1 - momentum))
        #expect(abs(r.flatDiffusionPerStep - expected) <= 1e-9 * expected, "\(r.flatDiffusionPerStep) vs \(expected)")
        // Noise off the null space: (I − P₀) C (I − P₀) enters no flat direction.
        let off = Matrix.identity(p) - projector
        let quiet = Matrix.product(off, Matrix.product(c, off)).symmetrized
        let s = try networkFluctuation(hessian: try HessianOperator(h), noise: Self.matvec(quiet), learningRate: .scalar(lr),
                                       momentum: momentum, k: k, probes: 4, steps: 10, tolerance: 1e-12, seed: 1)
        #expect(s.flatCount == 3 && abs(s.flatDiffusionPerStep) <= 1e-12 * expected)
    }

    @Test("past 2(1+μ)/h_max: unstable with the additive critical learning rate")
    func unstable() throws {
        let (h, c) = Self.problem(30, seed: 2)
        #expect(throws: SGDNoiseError.self) {
            try networkFluctuation(hessian: try HessianOperator(h), noise: Self.matvec(c), learningRate: .scalar(0.45), k: 2)
        }
        do {
            _ = try networkFluctuation(hessian: try HessianOperator(h), noise: Self.matvec(c), learningRate: .scalar(0.45), k: 2)
        } catch let error as SGDNoiseError {
            #expect(abs((error.criticalLearningRate ?? 0) - 0.4) < 1e-9)
        }
    }

    @Test("a noise product that throws stops the computation with its error")
    func throwingNoise() throws {
        let (h, _) = Self.problem(30, seed: 3)
        #expect(throws: SGDNoiseError.cancelled("stop")) {
            try networkFluctuation(hessian: try HessianOperator(h), noise: { _, _ in throw SGDNoiseError.cancelled("stop") },
                                   learningRate: .scalar(0.1), k: 2)
        }
    }
}
