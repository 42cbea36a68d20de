extension PaperFigures {
    /// Fig. 4a: Σ of 1-d label-noise SGD versus the learning rate up to the critical λ*, where the
    /// exact Σ diverges and both approximations stay finite.
    public struct SigmaVersusLearningRate {
        /// One tabulated learning rate.
        public struct Point {
            /// The learning rate λ.
            public let learningRate: Double
            /// Σ three ways at this λ: exact [Thm 2], continuous time [Eq. 7] and discrete time with
            /// Hessian-shaped noise.
            public let sigma: LabelNoiseComparison
            /// The exact (Kesten) tail index of the stationary law at this λ.
            public let tailIndexKesten: Double
            /// The simulation (nil above the simulated range).
            public let simulation: SimulationResult?
        }

        /// One point of the dense theory curve.
        public struct CurvePoint {
            /// The learning rate λ, below λ*.
            public let learningRate: Double
            /// Σ three ways at this λ (as `Point.sigma`).
            public let sigma: LabelNoiseComparison
        }

        /// The curvature a > 0, the 1 × 1 Hessian A = a (the paper: 1).
        public let a: Double
        /// The batch size S ≥ 1 (the paper: 10).
        public let batchSize: Int
        /// The label-noise variance σ² ≥ 0 (the paper: 1).
        public let noiseVariance: Double
        /// λ* of 1-d label noise at this S (docs/theory.md §6): the root of λa = S(2 − (1 + 1/S)λa),
        /// λ* = 2S/(a(S + 2)), where the exact Σ diverges.
        public let criticalLearningRate: Double
        /// The tabulated learning rates, each with the theory and, up to `simulatedUpTo`·λ*, a
        /// simulation.
        public let points: [Point]
        /// The theory at λ*·i/`curvePoints`, i = 1 … `curvePoints` − 1.
        public let curve: [CurvePoint]

        /// The paper's figure by default: a = 1, S = 10, σ² = 1, λ = 0.1 … 1.6, simulated up to
        /// `simulatedUpTo`·λ* (where a sample variance converges), a 200-point curve.
        /// - Parameter simulation: the budget (nil: theory only).
        public init(
            a: Double = 1, batchSize: Int = 10, noiseVariance: Double = 1,
            learningRates: [Double] = (1...16).map { Double($0) / 10 }, simulatedUpTo: Double = 0.9,
            curvePoints: Int = 200, simulation: Simulation?
        ) throws {
            self.a = a
            self.batchSize = batchSize
            self.noiseVariance = noiseVariance
            let critical = try SGDNoise.criticalLearningRate(a: .diagonal([a]), batchSize: batchSize)
            criticalLearningRate = critical
            points = try learningRates.enumerated().map { k, lr in
                var result: SimulationResult? = nil
                if let simulation, lr <= simulatedUpTo * critical {
                    result = try simulation.labelNoise(
                        spectrum: [a], noiseVariance: noiseVariance, learningRate: lr, batchSize: batchSize, group: 4,
                        point: k, label: "λ = \(lr) (\(k + 1)/\(learningRates.count))")
                }
                return Point(
                    learningRate: lr,
                    sigma: try LabelNoiseComparison(spectrum: [a], noiseVariance: noiseVariance, learningRate: lr, batchSize: batchSize),
                    tailIndexKesten: try tailIndex(a: a, learningRate: lr, batchSize: batchSize, method: .kesten),
                    simulation: result)
            }
            curve = try (1..<max(curvePoints, 1)).map { i in
                let lr = critical * Double(i) / Double(curvePoints)
                return CurvePoint(learningRate: lr, sigma: try LabelNoiseComparison(
                    spectrum: [a], noiseVariance: noiseVariance, learningRate: lr, batchSize: batchSize))
            }
        }
    }
}
