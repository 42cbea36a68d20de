import SGDNoise
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The algorithms that have one home in the core: the Hill estimator and the 1-d tail sampler,
/// the model dispatch, the figure data and the sampling modes. Expected values come from closed
/// forms, not from the library.
@Suite("One home per algorithm")
struct OneHomeTests {
    // MARK: Tails

    @Test("Hill estimator: exact on a Pareto quantile grid; √n order statistics; NaN below 100 samples")
    func hillOnPareto() {
        // The quantiles x_i = ((i + ½)/n)^(−1/α) of a Pareto(α) law: a deterministic sample whose
        // Hill estimate converges to α.
        let alpha = 3.0, n = 40_000
        let samples = (0..<n).map { pow((Double($0) + 0.5) / Double(n), -1 / alpha) }
        let tail = TailSamples(samples.reversed() + [0, -1, .nan])
        #expect(tail.count == n)
        #expect(abs(tail.hillIndex(orderStatistics: 400) - alpha) < 0.02 * alpha)
        let (index, k) = hillTailIndex(samples)
        #expect(k == 200)
        #expect(index == tail.hillIndex(orderStatistics: 200))
        #expect(hillTailIndex(Array(samples.prefix(99))).orderStatistics == 0)
        #expect(tail.hillIndex(orderStatistics: 1).isNaN && tail.hillIndex(orderStatistics: n).isNaN)
        #expect(TailSamples([Double](repeating: 2, count: 200)).hillIndex(orderStatistics: 10) == .infinity)
    }

    @Test("Hill plot and survival function")
    func hillPlotAndSurvival() {
        let tail = TailSamples((1...1000).map(Double.init))
        #expect(tail.survival(at: 900) == 0.1)
        #expect(tail.survival(at: 0) == 1)
        let curve = tail.survivalCurve(points: 11)
        #expect(curve.count == 11 && curve.first!.x == 500 && curve.last!.x == 1000 && curve.last!.survival == 0)
        #expect(zip(curve, curve.dropFirst()).allSatisfy { $0.survival >= $1.survival })
        let plot = tail.hillPlot(smallest: 10, largest: 100, points: 5)
        #expect(plot.map(\.orderStatistics) == [10, 18, 32, 56, 100])
        #expect(plot.allSatisfy { $0.index == tail.hillIndex(orderStatistics: $0.orderStatistics) })
    }

    @Test("Kesten sampler: E[w²] is the exact Σ of 1-d label noise [Thm 2]; reproducible; validated")
    func kestenSampler() throws {
        let a = 1.0, lr = 0.5, s = 20, variance = 2.0
        let samples = try sampleStationaryTail(a: a, learningRate: lr, batchSize: s, noiseVariance: variance,
                                               steps: 200_000, chains: 4, seed: 3)
        #expect(samples.count == 800_000)
        #expect(samples == (try sampleStationaryTail(a: a, learningRate: lr, batchSize: s, noiseVariance: variance,
                                                     steps: 200_000, chains: 4, seed: 3)))
        let second = samples.reduce(0) { $0 + $1 * $1 } / Double(samples.count)
        // Σ = (σ²/S)(1 + κ/S)λ/g, g = 2 − (1 + 1/S)λa, κ = t/(1 − t/S), t = λa/g.
        let g = 2 - (1 + 1 / Double(s)) * lr * a, t = lr * a / g, kappa = t / (1 - t / Double(s))
        let sigma = variance / Double(s) * (1 + kappa / Double(s)) * lr / g
        #expect(abs(second - sigma) < 0.03 * sigma, "E[w²] = \(second), Σ = \(sigma)")
        let thinned = try sampleStationaryTail(a: a, learningRate: lr, batchSize: s, noiseVariance: variance,
                                               steps: 1000, chains: 2, thin: 3, seed: 1)
        #expect(thinned.count == 2 * 333)
        expectError(.invalidArgument, mentioning: "thin") {
            try sampleStationaryTail(a: 1, learningRate: 1, batchSize: 1, noiseVariance: 1, steps: 10, chains: 1, thin: 0, seed: 0)
        }
        expectError(.invalidArgument, mentioning: "batchSize") {
            try sampleStationaryTail(a: 1, learningRate: 1, batchSize: -4, noiseVariance: 1, steps: 10, chains: 1, seed: 0)
        }
    }

    // MARK: Models

    @Test("Model.predict dispatches to each model's function")
    func modelDispatch() throws {
        let a = SymmetricOperator.diagonal([1, 0.5])
        let lr = LearningRate.scalar(0.5)
        let cases: [(Model, Prediction)] = [
            (.labelNoise(a: a, noiseVariance: 2), try labelNoise(a: a, noiseVariance: 2, learningRate: lr, batchSize: 4)),
            (.inputNoise(a: a, b: .diagonal([0.1, 0.2]), u: [1, 2], noiseVariance: 0.5),
             try inputNoise(a: a, b: .diagonal([0.1, 0.2]), u: [1, 2], learningRate: lr, batchSize: 4, noiseVariance: 0.5)),
            (.l2Regularized(a: a, u: [1, 1], weightDecay: .diagonal([0.1, 0.1])),
             try l2Regularized(a: a, u: [1, 1], weightDecay: .diagonal([0.1, 0.1]), learningRate: lr, batchSize: 4)),
            (.highDimensional(aHat: a, alpha: 2, noiseVariance: 1),
             try highDimensional(aHat: a, alpha: 2, noiseVariance: 1, learningRate: lr, batchSize: 4)),
            (.dampedNewton(a: a, noiseVariance: 1), try dampedNewton(a: a, noiseVariance: 1, learningRate: 0.5, batchSize: 4)),
            (.naturalGradient(a: a), try naturalGradient(a: a, learningRate: 0.5, batchSize: 4)),
        ]
        #expect(cases.map(\.0.kind) == Model.Kind.allCases)
        for (model, expected) in cases {
            let p = try model.predict(learningRate: lr, batchSize: 4)
            #expect(p.sigma == expected.sigma && p.mean == expected.mean && p.testLoss == expected.testLoss, "\(model.kind)")
        }
        expectError(.invalidArgument, mentioning: "scalar") {
            try Model.dampedNewton(a: a, noiseVariance: 1).predict(learningRate: .diagonal([0.5, 0.5]), batchSize: 4)
        }
    }

    @Test("Model.criticalLearningRate: each model's edge")
    func modelCriticalLearningRate() throws {
        let a = SymmetricOperator.diagonal([1, 0.5])
        #expect(try Model.labelNoise(a: a, noiseVariance: 1).criticalLearningRate(batchSize: 10)
                == criticalLearningRate(a: a, batchSize: 10))
        #expect(try Model.inputNoise(a: a, b: .diagonal([0.5, 0.5]), u: [1, 1], noiseVariance: 0)
                    .criticalLearningRate(batchSize: 10) == criticalLearningRate(a: .diagonal([1.5, 1]), batchSize: 10))
        // Damped Newton: gS = λD with g = 2 − (1 + 1/S)λ gives λ* = 2S/(S + 1 + D) = 20/13.
        let newton = try Model.dampedNewton(a: a, noiseVariance: 1).criticalLearningRate(batchSize: 10)
        #expect(abs(newton - 20.0 / 13) < 1e-12)
        #expect(try Model.naturalGradient(a: a).criticalLearningRate(batchSize: 10) == .infinity)
        #expect(Model.Kind.l2Regularized.arguments == [.u, .weightDecay])
    }

    @Test("smallestStableBatchSize: λ*(S) = 2S/(a(S + 2)) > λ; unstable past the GD edge")
    func smallestStableBatch() throws {
        // a = 1.5, λ = 1: 2S/(1.5(S + 2)) > 1 ⇔ S > 6.
        #expect(try smallestStableBatchSize(a: .diagonal([1.5]), learningRate: 1) == 7)
        #expect(try smallestStableBatchSize(a: .diagonal([1]), learningRate: 0.1) == 1)
        expectError(.unstable, mentioning: "every batch size") {
            try smallestStableBatchSize(a: .diagonal([1]), learningRate: 2)
        }
    }

    @Test("stableWeightDecayInterval bounds the finite test losses")
    func weightDecayWindow() throws {
        let a = SymmetricOperator.diagonal([1])
        let window = try #require(try stableWeightDecayInterval(a: a, u: [1], learningRate: 1.8, batchSize: 10))
        let inside = try l2TestLossCurve(a: a, u: [1], learningRate: 1.8, batchSize: 10,
                                         weightDecays: [window.lower + 1e-6, window.upper - 1e-6])
        let outside = try l2TestLossCurve(a: a, u: [1], learningRate: 1.8, batchSize: 10,
                                          weightDecays: [window.lower - 1e-6, window.upper + 1e-6])
        #expect(inside.allSatisfy(\.isFinite) && outside.allSatisfy { $0 == .infinity })
        #expect(window.upper < 0)  // Cor 1: only negative weight decays are stable here
    }

    // MARK: Figures

    @Test("PaperFigures: theory-only data of Figs. 4a and 3 match the closed forms")
    func figureData() throws {
        let fig4a = try PaperFigures.SigmaVersusLearningRate(simulation: nil)
        #expect(abs(fig4a.criticalLearningRate - 20.0 / 12) < 1e-12)
        #expect(fig4a.points.count == 16 && fig4a.curve.count == 199 && fig4a.points.allSatisfy { $0.simulation == nil })
        for p in fig4a.points {
            let lr = p.learningRate
            #expect(abs(p.sigma.continuousTime[0] - lr / 20) < 1e-15)
            #expect(abs(p.sigma.discreteHessian[0] - lr / (10 * (2 - lr))) < 1e-12 * p.sigma.discreteHessian[0])
        }
        let fig3 = try PaperFigures.SigmaVersusBatchSize(simulation: nil)
        #expect(fig3.smallestStableBatchSize == 7 && fig3.curve.first?.batchSize == 7 && fig3.curve.last?.batchSize == 256)
        let decay = try PaperFigures.TestLossVersusWeightDecay(simulation: nil)
        #expect(decay.cases.map(\.optimalWeightDecay).map { $0 == 0 ? 0 : ($0 < 0 ? -1 : 1) } == [0, -1, 1])
        #expect(decay.cases[0].optimalTestLoss == 0)
    }

    @Test("PaperFigures.Simulation: per-point seeds and the runner")
    func figureSimulation() throws {
        var labels: [String] = []
        let budget = PaperFigures.Simulation(steps: 2000, chains: 1, seed: 5) { spec, label in
            labels.append(label)
            return try simulate(spec)
        }
        #expect(budget.seed(group: 4, point: 1) != budget.seed(group: 4, point: 2))
        let figure = try PaperFigures.StationaryEllipses.paperFigure4c(simulation: budget)
        #expect(labels.count == 2 && figure.cases.count == 2 && figure.batchSize == 10)
        #expect(figure.cases.allSatisfy { !$0.simulation.diverged && $0.simulation.sigma.rows == 2 })
    }

    // MARK: Sampling

    @Test("Sampling: one type for the closed forms and the simulator; epoch shuffling has no closed form")
    func samplingModes() throws {
        expectError(.invalidArgument, mentioning: "epoch shuffling") {
            try Sampling.epochShuffling.noiseFactor(sampleCount: 10, batchSize: 2)
        }
        let x = try Matrix([[1, 0], [0, 1], [1, 1], [2, -1]])
        let spec = SimulationSpec(data: .dataset(x: x, y: [1, 0, 1, 2], sampling: .epochShuffling, u: nil),
                                  learningRate: .scalar(0.1), batchSize: 6, steps: 1000, seed: 1)
        #expect(!(try simulate(spec)).diverged)  // an epoch-shuffled batch may exceed N
        let without = SimulationSpec(data: .dataset(x: x, y: [1, 0, 1, 2], sampling: .withoutReplacement, u: nil),
                                     learningRate: .scalar(0.1), batchSize: 6, steps: 1000, seed: 1)
        expectError(.invalidArgument, mentioning: "batchSize 6 exceeds") { try simulate(without) }
    }
}
