extension PaperFigures {
    /// Fig. 4b/4c: the 2-d stationary fluctuation Σ with Hessian eigenvalues 1 and 0.5 at a large
    /// learning rate: its size and shape, exact against the approximations and simulation
    /// (continuous time predicts an isotropic Σ).
    public struct StationaryEllipses {
        /// One learning rate.
        public struct Case {
            /// The learning rate λ, below λ*.
            public let learningRate: Double
            /// The diagonal of Σ three ways (Σ is diagonal for a diagonal A): exact [Thm 2],
            /// continuous time [Eq. 7] and discrete time with Hessian-shaped noise.
            public let sigma: LabelNoiseComparison
            /// The Monte-Carlo run; its `sigma` is the whole simulated Σ, off-diagonal entries included.
            public let simulation: SimulationResult
        }

        /// The Hessian eigenvalues, A = diag(spectrum) (the paper: 1 and 0.5).
        public let spectrum: [Double]
        /// The batch size S ≥ 1 (the paper: 50 in Fig. 4b, 10 in Fig. 4c).
        public let batchSize: Int
        /// The label-noise variance σ² ≥ 0 (the paper: 1).
        public let noiseVariance: Double
        /// λ* of label noise for this spectrum and S (docs/theory.md §6).
        public let criticalLearningRate: Double
        /// One case per learning rate, in the order given.
        public let cases: [Case]

        /// The figure for A = diag(`spectrum`), batch size S and label-noise variance σ², one case
        /// (theory and simulation) per learning rate.
        ///
        /// - Parameters:
        ///   - learningRates: one case each (the paper: 1.5; Fig. 4c adds 1.0, well inside the
        ///     stable region).
        ///   - seedGroup: separates the seeds of figures that share a `Simulation`.
        public init(
            spectrum: [Double] = [1, 0.5], batchSize: Int, noiseVariance: Double = 1, learningRates: [Double],
            simulation: Simulation, seedGroup: Int
        ) throws {
            self.spectrum = spectrum
            self.batchSize = batchSize
            self.noiseVariance = noiseVariance
            criticalLearningRate = try SGDNoise.criticalLearningRate(a: .diagonal(spectrum), batchSize: batchSize)
            cases = try learningRates.enumerated().map { k, lr in
                Case(learningRate: lr,
                     sigma: try LabelNoiseComparison(spectrum: spectrum, noiseVariance: noiseVariance, learningRate: lr,
                                                     batchSize: batchSize),
                     simulation: try simulation.labelNoise(
                        spectrum: spectrum, noiseVariance: noiseVariance, learningRate: lr, batchSize: batchSize,
                        group: seedGroup, point: k, label: "λ = \(lr)"))
            }
        }

        /// The paper's Fig. 4b: S = 50, λ = 1.5.
        public static func paperFigure4b(simulation: Simulation) throws -> StationaryEllipses {
            try StationaryEllipses(batchSize: 50, learningRates: [1.5], simulation: simulation, seedGroup: 5)
        }

        /// The paper's Fig. 4c: S = 10, λ = 1.5, plus λ = 1.0.
        public static func paperFigure4c(simulation: Simulation) throws -> StationaryEllipses {
            try StationaryEllipses(batchSize: 10, learningRates: [1.5, 1.0], simulation: simulation, seedGroup: 6)
        }
    }
}
