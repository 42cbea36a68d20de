@testable import SGDNoise
import Testing

/// A simulation's chains run in parts (`simulateChains`, shipped as bytes) and pooled
/// (`combineChains`) give bit for bit what `simulate` gives in one call.
@Suite("Simulation chains in parts")
struct SimulationChainsTests {
    static func bits(_ r: SimulationResult) -> [UInt64] {
        (r.mean + r.sigma.elements + r.sigmaStandardError.elements + r.noise.elements
            + [r.trainLoss, r.testLoss, r.tailIndex]).map(\.bitPattern) + [UInt64(r.stepsCompleted)]
    }

    @Test("Parts in any split, through bytes, combine to the single run bit for bit")
    func partsCombineExactly() throws {
        let specs = [
            SimulationSpec(data: .gaussian(a: Ref.diagonal([1, 0.4, 0.1]), u: nil, noiseVariance: 1, inputNoise: nil),
                           learningRate: .scalar(0.4), batchSize: 3, momentum: 0.3, steps: 4000, chains: 5, seed: 9),
            SimulationSpec(data: .dataset(x: Ref.matrix([[1, 0.5], [0.2, -1], [0.7, 0.3], [-0.4, 0.9], [1.1, 0.1]]),
                                          y: [1, -0.5, 0.3, 0.8, 1.2], sampling: .withoutReplacement, u: nil),
                           learningRate: .scalar(0.2), batchSize: 2, steps: 3000, chains: 4, seed: 2),
        ]
        for spec in specs {
            let whole = try simulate(spec)
            for split in [[0..<spec.chains], [0..<1, 1..<spec.chains], (0..<spec.chains).map { $0..<($0 + 1) }.reversed()] {
                let parts = try split.map { try SimulationChains(serialized: try simulateChains(spec, chains: $0).serialized()) }
                #expect(Self.bits(try combineChains(spec, parts)) == Self.bits(whole))
            }
            var other = spec
            other.seed += 1
            expectError(.invalidArgument, mentioning: "another simulation") {
                try combineChains(other, [try simulateChains(spec, chains: 0..<spec.chains)])
            }
            expectError(.invalidArgument, mentioning: "in no part") { try combineChains(spec, [try simulateChains(spec, chains: 0..<1)]) }
            expectError(.invalidArgument, mentioning: "nonempty part") { try simulateChains(spec, chains: 0..<(spec.chains + 1)) }
        }
    }
}
