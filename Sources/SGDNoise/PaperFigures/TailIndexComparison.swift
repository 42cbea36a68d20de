extension PaperFigures {
    /// Fig. 2: the power-law tail of the stationary law of 1-d label-noise SGD at aλ = 1, per batch
    /// size: the tail indices of the theory (exact Kesten κ, the paper's 2S/(aλ) − S, continuous
    /// time 2S/(aλ) + 1) against Hill estimates — the simulator's (k = √n order statistics) and
    /// a deep one from many samples of the 1-d Kesten sampler, with its Hill plot and survival
    /// function.
    public struct TailIndexComparison {
        /// One batch size.
        public struct Point {
            /// The batch size S.
            public let batchSize: Int
            /// λ*(S) (docs/theory.md §6); every tail index below is 2 exactly at λ = λ*.
            public let criticalLearningRate: Double
            /// The exact tail index β_K for Gaussian inputs: the positive root of
            /// E|1 − (λa/S)χ²_S|^β = 1 (Kesten recursion; an extension, docs/theory.md §6).
            public let kesten: Double
            /// The paper's estimate β = 2S/(aλ) − S [Sec 6.6].
            public let paper: Double
            /// The continuous-time index 2S/(aλ) + 1 [Sec 6.6].
            public let continuousTime: Double
            /// The simulator's run (its `tailIndex` is the Hill estimate with k = √n).
            public let simulation: SimulationResult
            /// The number n of samples of the sampler.
            public let samples: Int
            /// The Hill estimate with k = max(20, n/10⁴), deeper in the tail.
            public let deepHill: Double
            /// The number k of upper order statistics behind `deepHill`, max(20, n/10⁴).
            public let deepOrderStatistics: Int
            /// The Hill plot over k log-spaced from 20 to n/10.
            public let hillPlot: [(orderStatistics: Int, index: Double)]
            /// P(|w| > x) for x log-spaced from the median to the largest sample.
            public let survival: [(x: Double, survival: Double)]
        }

        /// The curvature a > 0, the 1 × 1 Hessian A = a (the paper: 1).
        public let a: Double
        /// The learning rate λ > 0 (the paper: 1, so aλ = 1).
        public let learningRate: Double
        /// The label-noise variance σ² > 0 (the paper: 1); it scales w and leaves the tail index
        /// unchanged.
        public let noiseVariance: Double
        /// One point per batch size, in the order given.
        public let points: [Point]

        /// The paper's figure by default: a = 1, λ = 1, σ² = 1, S = 3, 5, 10, 20. The sampler runs
        /// `simulation.chains` chains of `simulation.steps` steps, keeping every second one.
        public init(
            a: Double = 1, learningRate: Double = 1, noiseVariance: Double = 1, batchSizes: [Int] = [3, 5, 10, 20],
            simulation: Simulation
        ) throws {
            self.a = a
            self.learningRate = learningRate
            self.noiseVariance = noiseVariance
            points = try batchSizes.enumerated().map { k, s in
                let run = try simulation.labelNoise(
                    spectrum: [a], noiseVariance: noiseVariance, learningRate: learningRate, batchSize: s, group: 2,
                    point: k, label: "S = \(s) (\(k + 1)/\(batchSizes.count))")
                let tail = TailSamples(try sampleStationaryTail(
                    a: a, learningRate: learningRate, batchSize: s, noiseVariance: noiseVariance, steps: simulation.steps,
                    chains: simulation.chains, thin: 2, seed: simulation.seed(group: 20, point: k)))
                let n = tail.count
                let deepK = max(20, n / 10_000)
                return Point(
                    batchSize: s, criticalLearningRate: try criticalLearningRate(a: .diagonal([a]), batchSize: s),
                    kesten: try tailIndex(a: a, learningRate: learningRate, batchSize: s, method: .kesten),
                    paper: try tailIndex(a: a, learningRate: learningRate, batchSize: s, method: .paper),
                    continuousTime: try tailIndex(a: a, learningRate: learningRate, batchSize: s, method: .continuousTime),
                    simulation: run, samples: n, deepHill: tail.hillIndex(orderStatistics: deepK), deepOrderStatistics: deepK,
                    hillPlot: tail.hillPlot(smallest: 20, largest: max(20, n / 10), points: 41),
                    survival: tail.survivalCurve(points: 61))
            }
        }
    }
}
