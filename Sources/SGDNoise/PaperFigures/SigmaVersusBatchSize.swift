extension PaperFigures {
    /// Fig. 3 (left): Σ of 1-d label-noise SGD versus the batch size S at a fixed learning rate:
    /// divergent as S falls to the largest unstable batch size, close to the discrete-time Hessian
    /// form at large S, while continuous time stays a factor (2 − λa)/2 below.
    public struct SigmaVersusBatchSize {
        /// One tabulated batch size.
        public struct Point {
            /// The batch size S.
            public let batchSize: Int
            /// λ*(S), the critical learning rate at this batch size (docs/theory.md §6); above the
            /// figure's λ, since only stable batch sizes are tabulated.
            public let criticalLearningRate: Double
            /// Σ three ways at this S: exact [Thm 2], continuous time [Eq. 7] and discrete time with
            /// Hessian-shaped noise.
            public let sigma: LabelNoiseComparison
            /// The exact (Kesten) tail index of the stationary law.
            public let tailIndexKesten: Double
            /// The Monte-Carlo run at this S (nil: theory only).
            public let simulation: SimulationResult?
        }

        /// One point of the theory curve.
        public struct CurvePoint {
            /// The batch size S.
            public let batchSize: Int
            /// Σ three ways at this S (as `Point.sigma`).
            public let sigma: LabelNoiseComparison
        }

        /// The curvature a > 0, the 1 × 1 Hessian A = a (the paper: 1.5).
        public let a: Double
        /// The learning rate λ > 0, the same for every S (the paper: 1).
        public let learningRate: Double
        /// The label-noise variance σ² ≥ 0 (the paper: 1).
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
