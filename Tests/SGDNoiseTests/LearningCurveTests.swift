import Foundation
import SGDNoise
import Testing

/// One model of docs/theory.md §4 with what the brute-force moment recursion needs, derived here
/// from the model's definition (not from the library): H, the coupling A of the noise, δ, C̄₀,
/// β₁, β₂, w*, and the train/test losses as functions of (E[w], cov w).
private struct TransientCase: CustomStringConvertible {
    let name: String
    let model: Model
    let hessian: Matrix
    let coupling: Matrix
    let delta: [Double]
    let baseNoise: Matrix
    let beta1: Double
    let beta2: Double
    let wStar: [Double]
    /// (E[w], cov w) ↦ (L_train, L_test).
    let losses: ([Double], Matrix) -> (Double, Double)

    var description: String { name }

    func reference(w0: [Double]) -> BruteForceMoments {
        BruteForceMoments(hessian: hessian, coupling: coupling, delta: delta, baseNoise: baseNoise, beta1: beta1,
                          beta2: beta2, e0: zip(w0, wStar).map { $0 - $1 })
    }

    /// ½ Tr[X (Σ + (m − c)(m − c)ᵀ)] = E[½(w − c)ᵀX(w − c)].
    static func quadraticMean(_ x: Matrix, _ mean: [Double], _ sigma: Matrix, centre c: [Double]) -> Double {
        let d = mean.count
        var s = 0.0
        for i in 0..<d {
            for j in 0..<d {
                s += x[i, j] * (sigma[i, j] + (mean[i] - c[i]) * (mean[j] - c[j]))
            }
        }
        return 0.5 * s
    }

    static func all(dimension d: Int, seed: UInt64) -> [TransientCase] {
        var rng = SeededGenerator(seed: seed)
        let a = rng.spd(d, eigenvaluesIn: 0.3, 1.5)
        let b = rng.spd(d, eigenvaluesIn: 0.05, 0.4)  // does not commute with A
        let u = rng.uniformArray(d, -1, 1)
        let zero = [Double](repeating: 0, count: d)
        let sigma2 = 0.3
        var cases: [TransientCase] = []
        // Label noise: H = A, C(e) = (1/S)(A eeᵀA + eᵀAe A + σ²A); w is measured from u.
        cases.append(TransientCase(
            name: "label noise", model: .labelNoise(a: .dense(a), noiseVariance: sigma2), hessian: a, coupling: a,
            delta: zero, baseNoise: Ref.scale(sigma2, a), beta1: 1, beta2: 1, wStar: zero,
            losses: { m, s in
                let test = quadraticMean(a, m, s, centre: zero)
                return (test + 0.5 * sigma2, test)
            }))
        // Input noise: the model sees x + ξ; H = K = A + B, w* = K⁻¹Au, σ²_eff = σ² + uᵀAu − uᵀAK⁻¹Au.
        let k = Ref.add(a, b)
        let au = a.apply(u)
        let wIn = Ref.solve(k, au)
        let effective = sigma2 + zip(u, au).reduce(0) { $0 + $1.0 * $1.1 } - zip(wIn, au).reduce(0) { $0 + $1.0 * $1.1 }
        cases.append(TransientCase(
            name: "input noise", model: .inputNoise(a: .dense(a), b: .dense(b), u: u, noiseVariance: sigma2),
            hessian: k, coupling: k, delta: zero, baseNoise: Ref.scale(effective, k), beta1: 1, beta2: 1, wStar: wIn,
            losses: { m, s in
                // E[½(x̃ᵀw − y)²] = ½(E[wᵀKw] − 2E[w]ᵀAu + uᵀAu + σ²).
                let kw = quadraticMean(k, m, s, centre: zero)
                let uAu = zip(u, au).reduce(0) { $0 + $1.0 * $1.1 }
                let train = kw - zip(m, au).reduce(0) { $0 + $1.0 * $1.1 } + 0.5 * (uAu + sigma2)
                return (train, quadraticMean(a, m, s, centre: u))
            }))
        // L2: Γ = 0.2I + 0.1A commutes with A; H = A + Γ, coupling A, δ = w* − u, no label noise.
        let gamma = Ref.add(Ref.scale(0.2, Ref.identity(d)), Ref.scale(0.1, a))
        let kl2 = Ref.add(a, gamma)
        let wL2 = Ref.solve(kl2, au)
        cases.append(TransientCase(
            name: "L2", model: .l2Regularized(a: .dense(a), u: u, weightDecay: .dense(gamma)), hessian: kl2,
            coupling: a, delta: zip(wL2, u).map { $0 - $1 }, baseNoise: Ref.zeros(d, d), beta1: 1, beta2: 1,
            wStar: wL2,
            losses: { m, s in
                let test = quadraticMean(a, m, s, centre: u)
                return (test + quadraticMean(gamma, m, s, centre: zero), test)
            }))
        // High-dimensional: C = (1/S)(Tr[ÂM]Â − ÂMÂ) + (σ²/S)(1 − 1/α)Â.
        let alpha = 4.0
        let floor = sigma2 * (1 - 1 / alpha)
        cases.append(TransientCase(
            name: "high-dimensional", model: .highDimensional(aHat: .dense(a), alpha: alpha, noiseVariance: sigma2),
            hessian: a, coupling: a, delta: zero, baseNoise: Ref.scale(floor, a), beta1: -1, beta2: 1, wStar: zero,
            losses: { m, s in
                let test = quadraticMean(a, m, s, centre: zero)
                return (test + 0.5 * floor, test)
            }))
        return cases
    }
}

/// A schedule whose three hyperparameters change at irregular steps (λ = 0 included).
private func irregularSchedule() throws -> Schedule {
    let changes: [(Int, Double, Int, Double)] = [  // (first step, λ, S, μ)
        (1, 0.35, 2, 0.0), (8, 0.5, 5, 0.6), (14, 0.0, 5, 0.6), (17, 0.2, 1, 0.3), (29, 0.6, 3, 0.0),
        (33, 0.25, 8, 0.85), (47, 0.1, 2, 0.5),
    ]
    let steps = 60
    var lr = [Double](), s = [Int](), mu = [Double]()
    for t in 1...steps {
        let c = changes.last { $0.0 <= t }!
        lr.append(c.1)
        s.append(c.2)
        mu.append(c.3)
    }
    return try Schedule(learningRates: lr, batchSizes: s, momenta: mu)
}

@Suite("Learning curve (theory §9)")
struct LearningCurveTests {
    @Test("Dense models against the brute-force (2D+1)² Kronecker recursion, with momentum and irregular schedule changes",
          arguments: [2, 4])
    func bruteForce(dimension d: Int) throws {
        let schedule = try irregularSchedule()
        let record = [0, 5, 7, 8, 13, 16, 17, 30, 33, 46, 60]
        var rng = SeededGenerator(seed: 99)
        let w0 = rng.uniformArray(d, -2, 2)
        for c in TransientCase.all(dimension: d, seed: UInt64(10 + d)) {
            let curve = try learningCurve(model: c.model, schedule: schedule, record: record, w0: w0)
            var reference = c.reference(w0: w0)
            var t = 0
            for (k, step) in record.enumerated() {
                while t < step {
                    let (lr, s, mu) = schedule.hyperparameters(atStep: t + 1)
                    reference.step(learningRate: lr, batchSize: s, momentum: mu)
                    t += 1
                }
                let mean = zip(c.wStar, reference.meanError).map { $0 + $1 }
                let sigma = reference.covariance
                let scale = max(sigma.elements.map(abs).max()!, 1e-3)
                guard case .dense(let observed) = curve.sigma[k] else {
                    Issue.record("\(c): Σ should be dense")
                    continue
                }
                let sigmaError = zip(observed.elements, sigma.elements).map { abs($0 - $1) }.max()! / scale
                let meanError = zip(curve.mean[k], mean).map { abs($0 - $1) }.max()! / max(mean.map(abs).max()!, 1)
                #expect(sigmaError < 1e-11, "\(c), D = \(d), step \(step): Σ relative error \(sigmaError)")
                #expect(meanError < 1e-12, "\(c), D = \(d), step \(step): mean error \(meanError)")
                let (train, test) = c.losses(mean, sigma)
                #expect(relativeDifference(curve.trainLoss[k], train) < 1e-11,
                        "\(c) step \(step): train \(curve.trainLoss[k]) vs \(train)")
                #expect(relativeDifference(curve.testLoss[k], test) < 1e-11,
                        "\(c) step \(step): test \(curve.testLoss[k]) vs \(test)")
                let trace = (0..<d).reduce(0) { $0 + sigma[$1, $1] }
                #expect(abs(curve.trace[k] - trace) <= 1e-11 * max(abs(trace), 1e-3), "\(c) step \(step): trace")
            }
        }
    }

    @Test("A given (H, C) with momentum against the brute-force recursion; spectra against dense")
    func quadraticBruteForce() throws {
        let d = 3
        var rng = SeededGenerator(seed: 5)
        let h = rng.spd(d, eigenvaluesIn: 0.2, 2)
        let c = rng.spd(d, eigenvaluesIn: 0.1, 1)
        let schedule = try irregularSchedule()
        let w0 = rng.uniformArray(d, -1, 1)
        let curve = try learningCurve(hessian: .dense(h), noise: .dense(c), referenceBatchSize: 2, schedule: schedule,
                                      record: [60], w0: w0)
        var reference = BruteForceMoments(
            hessian: h, coupling: Ref.zeros(d, d), delta: [Double](repeating: 0, count: d), baseNoise: Ref.scale(2, c),
            beta1: 0, beta2: 0, e0: w0)
        for t in 1...60 {
            let (lr, s, mu) = schedule.hyperparameters(atStep: t)
            reference.step(learningRate: lr, batchSize: s, momentum: mu)
        }
        guard case .dense(let observed) = curve.sigma[0] else { throw SGDNoiseError.invalidArgument("dense") }
        #expect(Ref.relativeError(observed, reference.covariance) < 1e-11)
        // A diagonal H and C as spectra give the same diagonal as the dense route.
        let hd = [0.3, 1.1, 1.9], cd = [0.5, 0.2, 0.9]
        let spectral = try learningCurve(hessian: .diagonal(hd), noise: .diagonal(cd), schedule: schedule, record: [60], w0: w0)
        let dense = try learningCurve(hessian: .dense(Ref.diagonal(hd)), noise: .dense(Ref.diagonal(cd)),
                                      schedule: schedule, record: [60], w0: w0)
        let sd = spectral.sigma[0].diagonalEntries, dd = dense.sigma[0].diagonalEntries
        #expect(zip(sd, dd).allSatisfy { abs($0 - $1) <= 1e-13 * max(abs($1), 1) }, "\(sd) vs \(dd)")
    }

    @Test("A constant schedule converges to each model's stationary prediction", arguments: [0.0, 0.5])
    func constantScheduleIsStationary(momentum mu: Double) throws {
        let d = 4
        for c in TransientCase.all(dimension: d, seed: 21) {
            let lr = 0.3, s = 4
            let schedule = try Schedule.constant(learningRate: lr, batchSize: s, momentum: mu, steps: 4000)
            let curve = try learningCurve(model: c.model, schedule: schedule, record: [4000])
            let prediction = try c.model.predict(learningRate: .scalar(lr), batchSize: s, momentum: mu)
            let expected = prediction.sigma.matrix, observed = curve.sigma[0].matrix
            let error = zip(observed.elements, expected.elements).map { abs($0 - $1) }.max()! / expected.maxAbsEntry
            #expect(error < 1e-10, "\(c), μ = \(mu): Σ relative error \(error)")
            #expect(relativeDifference(curve.trainLoss[0], prediction.trainLoss) < 1e-10, "\(c) train")
            #expect(relativeDifference(curve.testLoss[0], prediction.testLoss) < 1e-10, "\(c) test")
            #expect(zip(curve.mean[0], prediction.mean).allSatisfy { abs($0 - $1) < 1e-12 })
            #expect(curve.relaxation.stationaryTrainLoss == prediction.trainLoss)
            #expect(curve.relaxation.settledAt != nil && curve.relaxation.settledAt! < 4000)
            #expect(curve.unstableFrom == nil)
        }
        // Spectra: label noise on a spectrum.
        let spectrum = [0.2, 0.7, 1.3, 2.0, 0.05]
        let model = Model.labelNoise(a: .diagonal(spectrum), noiseVariance: 0.5)
        let schedule = try Schedule.constant(learningRate: 0.4, batchSize: 3, momentum: mu, steps: 20_000)
        let curve = try learningCurve(model: model, schedule: schedule, record: [20_000], w0: [1, -1, 0.5, 2, 1])
        let prediction = try model.predict(learningRate: .scalar(0.4), batchSize: 3, momentum: mu)
        let sd = curve.sigma[0].diagonalEntries, pd = prediction.sigma.diagonalEntries
        let error = zip(sd, pd).map { abs($0 - $1) }.max()! / pd.max()!
        #expect(error < 1e-10, "label noise spectrum, μ = \(mu): Σ relative error \(error)")
        // A given (H, C): Theorem 1 for (S_ref/S) C.
        var rng = SeededGenerator(seed: 3)
        let h = rng.spd(3, eigenvaluesIn: 0.2, 2), cNoise = rng.spd(3, eigenvaluesIn: 0.1, 1)
        let quadratic = try learningCurve(
            hessian: .dense(h), noise: .dense(cNoise), referenceBatchSize: 2,
            schedule: Schedule.constant(learningRate: 0.5, batchSize: 4, momentum: mu, steps: 4000), record: [4000])
        let theorem1 = try stationaryCovariance(hessian: h, noise: Ref.scale(0.5, cNoise), learningRate: .scalar(0.5), momentum: mu)
        #expect(Ref.relativeError(quadratic.sigma[0].matrix, theorem1.sigma) < 1e-10)
    }

    @Test("λ_t = 0 leaves the moments of w unchanged (with and without momentum)", arguments: [0.0, 0.7])
    func zeroLearningRate(momentum mu: Double) throws {
        let d = 3
        for c in TransientCase.all(dimension: d, seed: 8) {
            let lr = [Double](repeating: 0.3, count: 10) + [Double](repeating: 0, count: 7) + [0.3, 0.3]
            let schedule = try Schedule(learningRates: lr, batchSizes: [Int](repeating: 2, count: 19),
                                        momenta: [Double](repeating: mu, count: 19))
            let curve = try learningCurve(model: c.model, schedule: schedule, record: [10, 13, 17, 18],
                                          w0: [1, -0.5, 0.25])
            for k in 1...2 {
                #expect(curve.sigma[k] == curve.sigma[0], "\(c): Σ changed with λ = 0")
                #expect(curve.mean[k] == curve.mean[0], "\(c): the mean changed with λ = 0")
            }
            #expect(curve.sigma[3] != curve.sigma[0])
        }
    }

    @Test("A schedule that crosses λ* reports the step; the relaxation rate crosses 1 exactly at λ*",
          arguments: [0.0, 0.5])
    func stabilityEdge(momentum mu: Double) throws {
        let spectrum = [0.1, 0.4, 1.0, 1.7, 2.0]
        let model = Model.labelNoise(a: .diagonal(spectrum), noiseVariance: 1)
        let critical = try model.criticalLearningRate(batchSize: 2, momentum: mu)
        let lr = [Double](repeating: 0.5 * critical, count: 50) + [Double](repeating: 1.05 * critical, count: 20)
        let schedule = try Schedule(learningRates: lr, batchSizes: [Int](repeating: 2, count: 70),
                                    momenta: [Double](repeating: mu, count: 70))
        let curve = try learningCurve(model: model, schedule: schedule, record: [50, 70])
        #expect(curve.unstableFrom == 51)
        #expect(curve.relaxation.momentTime == .infinity)
        #expect(curve.relaxation.stationaryTrainLoss == nil)
        #expect(curve.trace[1] > curve.trace[0])
        for (factor, stable) in [(0.999, true), (1.001, false)] {
            let s = try Schedule.constant(learningRate: factor * critical, batchSize: 2, momentum: mu, steps: 1)
            let r = try learningCurve(model: model, schedule: s, record: [1]).relaxation
            #expect(r.momentTime.isFinite == stable, "λ = \(factor) λ*: moment time \(r.momentTime)")
        }
    }

    @Test("The coupled relaxation rate is the decay rate of the brute-force recursion", arguments: [0.0, 0.4])
    func relaxationRate(momentum mu: Double) throws {
        let d = 3
        let spectrum = [0.3, 0.9, 1.6]
        let (lr, s) = (0.05, 1)
        let model = Model.labelNoise(a: .diagonal(spectrum), noiseVariance: 1)
        let schedule = try Schedule.constant(learningRate: lr, batchSize: s, momentum: mu, steps: 1)
        let time = try learningCurve(model: model, schedule: schedule, record: [1]).relaxation.momentTime
        // Brute force from zero: Tr M_t − Tr M_∞ decays like ρ^t with ρ the dominant rate.
        let a = Ref.diagonal(spectrum)
        var reference = BruteForceMoments(hessian: a, coupling: a, delta: [0, 0, 0], baseNoise: a, beta1: 1, beta2: 1,
                                          e0: [0, 0, 0])
        var traces: [Double] = []
        for _ in 0..<1500 {
            reference.step(learningRate: lr, batchSize: s, momentum: mu)
            traces.append((0..<d).reduce(0) { $0 + reference.covariance[$1, $1] })
        }
        let limit = try model.predict(learningRate: .scalar(lr), batchSize: s, momentum: mu).sigma.trace
        let (t1, t2) = (300, 400)
        let rate = pow((limit - traces[t2 - 1]) / (limit - traces[t1 - 1]), 1 / Double(t2 - t1))
        let expected = exp(-1 / time)
        #expect(abs(rate - expected) < 1e-6, "measured rate \(rate), secular-equation rate \(expected)")
    }

    @Test("Schedule shapes and validation")
    func shapes() throws {
        let step = try Schedule(steps: 7, learningRate: .stepDecay(initial: 1, factor: 0.5, every: 3))
        #expect(step.learningRates == [1, 1, 1, 0.5, 0.5, 0.5, 0.25])
        let miles = try Schedule(steps: 6, learningRate: .milestones(initial: 2, factor: 0.1, at: [2, 4]),
                                 batchSize: .ramp(initial: 4, factor: 2, at: [3]))
        #expect(miles.learningRates.map { ($0 * 1e6).rounded() / 1e6 } == [2, 2, 0.2, 0.2, 0.02, 0.02])
        #expect(miles.batchSizes == [4, 4, 4, 8, 8, 8])
        let warm = try Schedule(steps: 6, learningRate: .warmup(steps: 2, then: .cosine(initial: 1, final: 0)))
        #expect(warm.learningRates[0] == 0.5 && warm.learningRates[1] == 1 && warm.learningRates[2] == 1)
        #expect(abs(warm.learningRates[4] - 0.5) < 1e-15)  // cos(π·2/4) = 0
        let expo = try Schedule(steps: 3, learningRate: .exponential(initial: 1, factor: 0.9), momentum: .constant(0.9))
        #expect(expo.learningRates == [1, 0.9, 0.9 * 0.9] && expo.momenta == [0.9, 0.9, 0.9])
        #expect(expo.lastChange == 3)
        #expect(try Schedule.constant(learningRate: 0.1, batchSize: 2, steps: 5).lastChange == 1)
        #expect(try Schedule(steps: 5, learningRate: .constant(1), batchSize: .rampEvery(initial: 1, factor: 3, every: 2)).batchSizes
                == [1, 1, 3, 3, 9])
        expectError(.invalidArgument, mentioning: "learningRate") { try Schedule.constant(learningRate: -1, batchSize: 1, steps: 3) }
        expectError(.invalidArgument, mentioning: "batchSize") { try Schedule.constant(learningRate: 1, batchSize: 0, steps: 3) }
        expectError(.invalidArgument, mentioning: "momentum") { try Schedule.constant(learningRate: 1, batchSize: 1, momentum: 1, steps: 3) }
        expectError(.invalidArgument, mentioning: "same length") {
            try Schedule(learningRates: [1, 1], batchSizes: [1], momenta: [0, 0])
        }
        expectError(.invalidArgument, mentioning: "at least one step") { try Schedule(learningRates: [], batchSizes: [], momenta: []) }
        expectError(.invalidArgument, mentioning: "warm-up") {
            try Schedule(steps: 3, learningRate: .warmup(steps: 3, then: .constant(1)))
        }
        expectError(.invalidArgument, mentioning: "milestones") {
            try Schedule(steps: 3, learningRate: .milestones(initial: 1, factor: 0.1, at: [2, 1]))
        }
        expectError(.invalidArgument, mentioning: "overflows") {
            try Schedule(steps: 80, learningRate: .constant(1), batchSize: .rampEvery(initial: 2, factor: 2, every: 1))
        }
        let model = Model.labelNoise(a: .diagonal([1, 2]), noiseVariance: 1)
        let s = try Schedule.constant(learningRate: 0.1, batchSize: 1, steps: 5)
        expectError(.invalidArgument, mentioning: "record") { try learningCurve(model: model, schedule: s, record: [3, 2]) }
        expectError(.invalidArgument, mentioning: "record") { try learningCurve(model: model, schedule: s, record: [6]) }
        expectError(.invalidArgument, mentioning: "w0") { try learningCurve(model: model, schedule: s, w0: [1]) }
        expectError(.invalidArgument, mentioning: "not implemented") {
            try learningCurve(model: .dampedNewton(a: .diagonal([1, 2]), noiseVariance: 1), schedule: s)
        }
    }
}

private extension Matrix {
    var maxAbsEntry: Double { elements.map(abs).max() ?? 0 }
}

@Suite("Learning curve against Monte-Carlo SGD with a schedule (theory §9)")
struct LearningCurveMonteCarloTests {
    /// z = (observed − predicted)/SE for every entry the simulation estimates, at each recorded step.
    private func zScores(_ sim: ScheduledSimulationResult, _ curve: LearningCurve, meanOffset: [Double]) -> [(String, Double)] {
        var z: [(String, Double)] = []
        for k in sim.steps.indices {
            let t = sim.steps[k]
            let d = meanOffset.count
            let sigma = curve.sigma[k].matrix
            for i in 0..<d {
                z.append(("t=\(t) mean[\(i)]", (sim.mean[k][i] - curve.mean[k][i] - meanOffset[i]) / sim.meanStandardError[k][i]))
                for j in i..<d {
                    z.append(("t=\(t) Σ[\(i),\(j)]", (sim.sigma[k][i, j] - sigma[i, j]) / sim.sigmaStandardError[k][i, j]))
                }
            }
            z.append(("t=\(t) trace", (sim.trace[k] - curve.trace[k]) / sim.traceStandardError[k]))
            z.append(("t=\(t) train", (sim.trainLoss[k] - curve.trainLoss[k]) / sim.trainLossStandardError[k]))
            z.append(("t=\(t) test", (sim.testLoss[k] - curve.testLoss[k]) / sim.testLossStandardError[k]))
        }
        return z
    }

    @Test("Label noise with momentum, a step decay and a batch-size ramp: early, middle and late t")
    func labelNoiseStepDecay() throws {
        var rng = SeededGenerator(seed: 41)
        let a = rng.symmetric(eigenvalues: [0.5, 1.5])
        let u = [0.7, -0.4]
        let schedule = try Schedule(
            steps: 300, learningRate: .milestones(initial: 0.15, factor: 0.3, at: [100, 200]),
            batchSize: .ramp(initial: 2, factor: 2, at: [150]), momentum: .constant(0.5))
        let w0 = [u[0] + 1, u[1] - 1]
        let record = [10, 120, 300]
        let curve = try learningCurve(model: .labelNoise(a: .dense(a), noiseVariance: 0.5), schedule: schedule,
                                      record: record, w0: [1, -1])  // w measured from the minimum u
        #expect(curve.unstableFrom == nil)
        let spec = SimulationSpec(data: .gaussian(a: a, u: u, noiseVariance: 0.5, inputNoise: nil),
                                  learningRate: .scalar(1), batchSize: 1, steps: 1, chains: 20_000, seed: 7)
        let sim = try simulate(spec, schedule: schedule, record: record, w0: w0)
        #expect(!sim.diverged)
        for (name, z) in zScores(sim, curve, meanOffset: u) {
            #expect(abs(z) < 4.5, "label noise \(name): z = \(z)")
        }
    }

    @Test("L2 (bias enters the noise) without momentum, an exponential decay after a warm-up")
    func l2Warmup() throws {
        let a = Matrix.diagonal([0.4, 1.2])
        let u = [1.0, -0.5]
        let gamma = Matrix.diagonal([0.2, 0.1])
        let schedule = try Schedule(
            steps: 200, learningRate: .warmup(steps: 20, then: .exponential(initial: 0.4, factor: 0.99)),
            batchSize: .constant(1))
        let record = [5, 60, 200]
        let curve = try learningCurve(model: .l2Regularized(a: .dense(a), u: u, weightDecay: .dense(gamma)),
                                      schedule: schedule, record: record, w0: [0, 0])
        let spec = SimulationSpec(data: .gaussian(a: a, u: u, noiseVariance: 0, inputNoise: nil), weightDecay: gamma,
                                  learningRate: .scalar(1), batchSize: 1, steps: 1, chains: 20_000, seed: 11)
        let sim = try simulate(spec, schedule: schedule, record: record, w0: [0, 0])
        #expect(!sim.diverged)
        for (name, z) in zScores(sim, curve, meanOffset: [0, 0]) {
            #expect(abs(z) < 4.5, "L2 \(name): z = \(z)")
        }
    }
}
