import SGDNoise
import Testing

/// The Swift example of README.md, kept compiling and checked against the closed forms it shows.
@Suite struct ReadmeExampleTests {
    @Test func swiftExampleRunsAndAgrees() throws {
        let a = Matrix.diagonal([1.0, 0.5])
        let p = try labelNoise(a: .dense(a), noiseVariance: 1, learningRate: .scalar(1.5), batchSize: 50)
        let sigma = try stationaryCovariance(hessian: a, noise: 0.02 * a, learningRate: .scalar(1.5)).sigma
        // C = (σ²/S)A with σ² = 1, S = 50: Σ = (λσ²/S)(2I − λA)⁻¹ (discrete-Hessian closed form).
        for (i, h) in [1.0, 0.5].enumerated() {
            let expected = 1.5 * 0.02 / (2 - 1.5 * h)
            #expect(abs(sigma[i, i] - expected) <= 1e-14 * expected, "Σ_\(i)\(i): expected \(expected), observed \(sigma[i, i])")
        }
        #expect(p.criticalLearningRate.map { $0 > 1.5 } == true)
        let sim = try simulate(SimulationSpec(
            data: .gaussian(a: a, u: nil, noiseVariance: 1, inputNoise: nil),
            learningRate: .scalar(1.5), batchSize: 50, steps: 100_000, chains: 4, seed: 0))
        for i in 0..<2 {
            let z = (sim.sigma[i, i] - p.sigma.matrix[i, i]) / sim.sigmaStandardError[i, i]
            #expect(abs(z) < 5, "Σ_\(i)\(i): theory \(p.sigma.matrix[i, i]), simulation \(sim.sigma[i, i]) ± \(sim.sigmaStandardError[i, i])")
        }
    }
}
