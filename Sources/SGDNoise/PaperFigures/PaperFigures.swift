/// The data behind the figures of Ziyin, Liu, Mori, Ueda (ICLR 2022): exact theory, its two
/// approximations and Monte-Carlo SGD, computed once here for every face (docs/theory.md §7). The
/// command line (`sgdnoise-cli reproduce`) prints and writes them; plotting code draws them.
///
/// One type per figure's concept:
/// - `SigmaVersusLearningRate` — Fig. 4a, Σ of 1-d label noise up to λ*;
/// - `StationaryEllipses` — Fig. 4b/4c, the 2-d Σ at a large learning rate;
/// - `SigmaVersusBatchSize` — Fig. 3 (left), Σ versus S;
/// - `TestLossVersusWeightDecay` — Fig. 3 (right), L_test versus γ and γ*;
/// - `TailIndexComparison` — Fig. 2, the power-law tail of the 1-d stationary law.
/// Each takes the paper's parameters by default and a `Simulation` budget (nil: theory only,
/// where the figure allows it).
public enum PaperFigures {}

extension PaperFigures {
    /// How a figure simulates SGD: the budget per simulated point, the seed, and the runner.
    public struct Simulation {
        /// Recorded steps per chain (the burn-in is a tenth of it).
        public var steps: Int
        /// Independent chains per simulated point.
        public var chains: Int
        /// The figure's seed: every simulated point derives its own from it (`seed(group:point:)`).
        public var seed: UInt64
        /// Runs one simulation; the label names the point (e.g. "λ = 0.50 (5/16)") for a progress
        /// display. Default: `simulate(spec)`.
        public var run: (SimulationSpec, String) throws -> SimulationResult

        /// A budget of `steps` recorded steps per chain (burn-in steps / 10) and `chains` chains per
        /// simulated point, the figure's `seed`, and `run` to perform one simulation (default:
        /// `simulate(_:progress:)` without progress reports).
        public init(
            steps: Int, chains: Int, seed: UInt64,
            run: @escaping (SimulationSpec, String) throws -> SimulationResult = { spec, _ in try simulate(spec) }
        ) {
            self.steps = steps
            self.chains = chains
            self.seed = seed
            self.run = run
        }

        /// The seed of simulated point `point` of the figure part `group`: distinct streams,
        /// the same numbers on any machine.
        public func seed(group: Int, point: Int) -> UInt64 {
            seed &* 0x9E37_79B9_7F4A_7C15 &+ (UInt64(group) << 20) &+ UInt64(point)
        }

        /// Online Gaussian linear regression with label noise (teacher 0) on a diagonal A.
        func labelNoise(
            spectrum: [Double], noiseVariance: Double, learningRate: Double, batchSize: Int,
            group: Int, point: Int, label: String
        ) throws -> SimulationResult {
            let spec = SimulationSpec(
                data: .gaussian(a: Matrix.diagonal(spectrum), u: nil, noiseVariance: noiseVariance, inputNoise: nil),
                learningRate: .scalar(learningRate), batchSize: batchSize, steps: steps, chains: chains,
                seed: seed(group: group, point: point))
            return try run(spec, label)
        }
    }
}
