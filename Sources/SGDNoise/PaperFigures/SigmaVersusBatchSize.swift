extension PaperFigures {
    /// Fig. 3 (left): Σ of 1-d label-noise SGD versus the batch size S at a fixed learning rate:
    /// divergent as S falls to the largest unstable batch size, close to the discrete-time Hessian
    /// form at large S, while continuous time stays a factor (2 − λa)/2 below.
    public struct SigmaVersusBatchSize {
        /// One tabulated batch size.
        public struct Point {
            public let batchSize: Int
            public let criticalLearningRate: Double
            public let sigma: LabelNoiseComparison
            /// The exact (Kesten) tail index of the stationary law.
            public let tailIndexKesten: Double
            public let simulation: SimulationResult?
        }

        /// One point of the theory curve.
        public struct CurvePoint {
            public let batchSize: Int
            public let sigma: LabelNoiseComparison
        }

        public let a: Double
        public let learningRate: Double
        public let noiseVariance: Double
        /// The smallest S with λ < λ*(S).
        public let smallestStableBatchSize: Int
        /// The tabulated batch sizes at or above `smallestStableBatchSize`.
        public let points: [Point]
        /// Every S from `smallestStableBatchSize` to `curveUpTo`.
        public let curve: [CurvePoint]

        /// The paper's figure by default: a = 1.5, λ = 1, σ² = 1.
        /// - Parameter simulation: the budget (nil: theory only).
        public init(
            a: Double = 1.5, learningRate: Double = 1, noiseVariance: Double = 1,
            batchSizes: [Int] = [8, 10, 12, 16, 20, 24, 32, 50, 100, 200], curveUpTo: Int = 256, simulation: Simulation?
        ) throws {
            self.a = a
            self.learningRate = learningRate
            self.noiseVariance = noiseVariance
            let smallest = try SGDNoise.smallestStableBatchSize(a: .diagonal([a]), learningRate: learningRate)
            smallestStableBatchSize = smallest
            let stable = batchSizes.filter { $0 >= smallest }
            points = try stable.enumerated().map { k, s in
                let result = try simulation?.labelNoise(
                    spectrum: [a], noiseVariance: noiseVariance, learningRate: learningRate, batchSize: s, group: 3,
                    point: k, label: "S = \(s) (\(k + 1)/\(stable.count))")
                return Point(
                    batchSize: s, criticalLearningRate: try criticalLearningRate(a: .diagonal([a]), batchSize: s),
                    sigma: try LabelNoiseComparison(spectrum: [a], noiseVariance: noiseVariance, learningRate: learningRate, batchSize: s),
                    tailIndexKesten: try tailIndex(a: a, learningRate: learningRate, batchSize: s, method: .kesten),
                    simulation: result)
            }
            curve = try (smallest...max(smallest, curveUpTo)).map { s in
                CurvePoint(batchSize: s, sigma: try LabelNoiseComparison(
                    spectrum: [a], noiseVariance: noiseVariance, learningRate: learningRate, batchSize: s))
            }
        }
    }
}
