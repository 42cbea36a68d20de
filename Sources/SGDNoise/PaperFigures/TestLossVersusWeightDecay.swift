extension PaperFigures {
    /// Fig. 3 (right): the test loss of 1-d L2-regularised SGD (no label noise) versus the weight
    /// decay γ, and the optimal γ* [Thm 4, Cor 1], for several (λ, S).
    ///
    /// With no label noise the noise vanishes at w* = u when γ = 0, so γ* = 0 whenever γ = 0 is
    /// stable; past λ*(γ = 0), γ* moves into the stable window of K = a + γ, whose geometric mean
    /// is a√(2/S): negative (Cor 1) for S > 2, positive for S = 1.
    public struct TestLossVersusWeightDecay {
        /// One (λ, S) case to compute.
        public struct Setting: Sendable {
            /// The case's name in tables and progress labels ("paper", "large-lr", …).
            public var label: String
            /// The learning rate λ > 0.
            public var learningRate: Double
            /// The batch size S ≥ 1.
            public var batchSize: Int
            /// Whether to simulate it (false where the whole stable window is heavy-tailed and a
            /// sample variance does not converge).
            public var simulate: Bool
            /// The tabulated weight decays (nil: `interiorPoints` evenly inside the stable window,
            /// and γ = 0, stable or not); γ* is always added. Unstable ones are not simulated.
            public var weightDecays: [Double]?

            /// A case; each argument sets the property of the same name.
            public init(label: String, learningRate: Double, batchSize: Int, simulate: Bool = true, weightDecays: [Double]? = nil) {
                self.label = label
                self.learningRate = learningRate
                self.batchSize = batchSize
                self.simulate = simulate
                self.weightDecays = weightDecays
            }

            /// The paper's λ = 0.5, S = 1 (γ* = 0), a large λ = 1.8 at S = 10 past λ*(γ = 0) (γ* < 0),
            /// and λ = 0.7 at S = 1 (γ* > 0; not simulated: heavy-tailed throughout).
            public static let paper: [Setting] = [
                Setting(label: "paper", learningRate: 0.5, batchSize: 1,
                        weightDecays: [-0.3, -0.2, -0.1, 0, 0.1, 0.2, 0.3, 0.5, 1.0]),
                Setting(label: "large-lr", learningRate: 1.8, batchSize: 10),
                Setting(label: "large-lr-s1", learningRate: 0.7, batchSize: 1, simulate: false),
            ]
        }

        /// One weight decay of a case's table.
        public struct Point {
            /// The weight decay γ (Γ = γ, either sign; unstable outside the stable window).
            public let weightDecay: Double
            /// The exact L_test [Thm 4] (+∞ where unstable).
            public let testLoss: Double
            /// The exact Σ (nil where unstable).
            public let sigma: Double?
            /// ½a(γu/(a + γ))², what noise-free gradient descent would give (the bias alone).
            public let gradientDescentBias: Double
            /// The Monte-Carlo run (nil where unstable or not simulated).
            public let simulation: SimulationResult?
        }

        /// One point of the theory curve.
        public struct CurvePoint {
            /// The weight decay γ.
            public let weightDecay: Double
            /// L_test (+∞ outside the stable window).
            public let testLoss: Double
            /// ½a(γu/(a + γ))², the bias alone (noise-free gradient descent).
            public let gradientDescentBias: Double
        }

        /// A computed case.
        public struct Case {
            /// The (λ, S) case this was computed for.
            public let setting: Setting
            /// λ* at γ = 0.
            public let criticalLearningRateWithoutDecay: Double
            /// γ*, the minimiser of L_test over the stable window [Thm 4, Cor 1]; 0 when γ = 0 is
            /// stable (then L_test(0) = 0 exactly), negative past λ*(γ = 0) for S > 2.
            public let optimalWeightDecay: Double
            /// L_test(γ*) [Thm 4].
            public let optimalTestLoss: Double
            /// The exact stable interval of γ.
            public let stableWindow: (lower: Double, upper: Double)
            /// L_test over the window widened by 5% on each side.
            public let curve: [CurvePoint]
            /// The tabulated weight decays in increasing order (γ* among them), with the theory and,
            /// where stable and simulated, a simulation.
            public let points: [Point]
        }

        /// The curvature a > 0, the 1 × 1 input covariance A = a (the paper: 1).
        public let a: Double
        /// The teacher u (the paper: 1); L_test = ½a E[(w − u)²].
        public let u: Double
        /// One computed case per setting, in the order given.
        public let cases: [Case]

        /// The paper's figure by default: a = 1, u = 1, no label noise.
        /// - Parameters:
        ///   - interiorPoints: simulated γ per case without explicit `weightDecays`.
        ///   - curvePoints: points of each theory curve.
        ///   - simulation: the budget (nil: theory only).
        public init(
            a: Double = 1, u: Double = 1, settings: [Setting] = Setting.paper, interiorPoints: Int = 6,
            curvePoints: Int = 400, simulation: Simulation?
        ) throws {
            self.a = a
            self.u = u
            cases = try settings.enumerated().map { index, setting in
                try Self.computeCase(a: a, u: u, setting: setting, interiorPoints: interiorPoints,
                                     curvePoints: curvePoints, simulation: setting.simulate ? simulation : nil,
                                     seedGroup: 30 + index)
            }
        }

        /// ½a(γu/(a + γ))²: the test loss of noise-free gradient descent at its minimum.
        public static func gradientDescentBias(a: Double, u: Double, weightDecay g: Double) -> Double {
            0.5 * a * (g * u / (a + g)) * (g * u / (a + g))
        }

        private static func computeCase(
            a: Double, u: Double, setting c: Setting, interiorPoints: Int, curvePoints: Int, simulation: Simulation?,
            seedGroup: Int
        ) throws -> Case {
            let spectrum = SymmetricOperator.diagonal([a])
            let critical0 = try criticalLearningRateL2(a: spectrum, weightDecay: .diagonal([0]), batchSize: c.batchSize)
            guard let window = try stableWeightDecayInterval(a: spectrum, u: [u], learningRate: c.learningRate,
                                                             batchSize: c.batchSize) else {
                throw SGDNoiseError.unstable("no weight decay is stable at lr = \(c.learningRate), batch size \(c.batchSize)",
                                             criticalLearningRate: nil)
            }
            var (gammaStar, lossStar) = try optimalWeightDecay(a: spectrum, u: [u], learningRate: c.learningRate,
                                                               batchSize: c.batchSize)
            if abs(gammaStar) < 1e-9 {  // γ = 0 is stable: L_test(0) = 0 exactly (no noise at w* = u)
                gammaStar = 0
                lossStar = try l2TestLossCurve(a: spectrum, u: [u], learningRate: c.learningRate, batchSize: c.batchSize,
                                               weightDecays: [0])[0]
            }
            let pad = 0.05 * (window.upper - window.lower)
            let gammas = (0..<curvePoints).map {
                window.lower - pad + (window.upper - window.lower + 2 * pad) * Double($0) / Double(max(curvePoints - 1, 1))
            }
            let losses = try l2TestLossCurve(a: spectrum, u: [u], learningRate: c.learningRate, batchSize: c.batchSize,
                                             weightDecays: gammas)
            let curve = zip(gammas, losses).map {
                CurvePoint(weightDecay: $0, testLoss: $1, gradientDescentBias: gradientDescentBias(a: a, u: u, weightDecay: $0))
            }
            var grid = c.weightDecays ?? {
                var g = (1...max(interiorPoints, 1)).map {
                    window.lower + (window.upper - window.lower) * Double($0) / Double(interiorPoints + 1)
                }
                g.append(0)
                return g
            }()
            if !grid.contains(where: { abs($0 - gammaStar) < 1e-6 }) { grid.append(gammaStar) }
            grid.sort()
            let points = try grid.enumerated().map { k, g in
                try point(a: a, u: u, setting: c, weightDecay: g, index: k, of: grid.count, simulation: simulation,
                          seedGroup: seedGroup)
            }
            return Case(setting: c, criticalLearningRateWithoutDecay: critical0, optimalWeightDecay: gammaStar,
                        optimalTestLoss: lossStar, stableWindow: window, curve: curve, points: points)
        }

        private static func point(
            a: Double, u: Double, setting c: Setting, weightDecay g: Double, index k: Int, of count: Int,
            simulation: Simulation?, seedGroup: Int
        ) throws -> Point {
            var loss = Double.infinity, sigma: Double? = nil
            if let p = try? l2Regularized(a: .diagonal([a]), u: [u], weightDecay: .diagonal([g]),
                                          learningRate: .scalar(c.learningRate), batchSize: c.batchSize) {
                loss = p.testLoss
                sigma = p.sigma.diagonalEntries[0]
            }
            var result: SimulationResult? = nil
            if let simulation, loss.isFinite {
                let spec = SimulationSpec(
                    data: .gaussian(a: Matrix.diagonal([a]), u: [u], noiseVariance: 0, inputNoise: nil),
                    weightDecay: Matrix.diagonal([g]), learningRate: .scalar(c.learningRate), batchSize: c.batchSize,
                    steps: simulation.steps, chains: simulation.chains, seed: simulation.seed(group: seedGroup, point: k))
                result = try simulation.run(spec, "\(c.label) γ = \(g) (\(k + 1)/\(count))")
            }
            return Point(weightDecay: g, testLoss: loss, sigma: sigma,
                         gradientDescentBias: gradientDescentBias(a: a, u: u, weightDecay: g), simulation: result)
        }
    }
}
