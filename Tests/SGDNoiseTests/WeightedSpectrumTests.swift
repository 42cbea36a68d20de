import Foundation
@testable import SGDNoise
import Testing

/// A weighted spectrum (`SymmetricOperator.weightedSpectrum`, docs/theory.md §8) in the O(D) models,
/// against two independent routes: with integer weights, the plain spectrum with node l repeated ω_l
/// times (the same scalars to rounding, the same value on every copy of a node); with real weights,
/// the closed forms of docs/theory.md §4 and §6 written out here with weighted sums. And the
/// stochastic Lanczos quadrature that produces such spectra: each probe's Gauss rule exact for
/// polynomials of degree < 2s, and Hutchinson's Tr H by z-scores over seeds.
@Suite("Weighted spectra")
struct WeightedSpectrumTests {
    /// Nodes with integer multiplicities, and the spectrum with each node repeated.
    static let nodes = [2.5, 1.0, 0.31, 0.07, 0.0004]
    static let counts = [1.0, 3.0, 2.0, 5.0, 4.0]
    static var repeated: [Double] { zip(nodes, counts).flatMap { [Double](repeating: $0.0, count: Int($0.1)) } }
    static var weighted: SymmetricOperator { .weightedSpectrum(try! WeightedSpectrum(nodes: nodes, weights: counts)) }
    /// The index of each node's first copy in `repeated`.
    static var firstCopy: [Int] { counts.indices.map { l in Int(counts[..<l].reduce(0, +)) } }

    /// The values of a repeated-spectrum result at the nodes; expects every copy of a node equal.
    func atNodes(_ values: [Double], sourceLocation: SourceLocation = #_sourceLocation) -> [Double] {
        for (l, start) in Self.firstCopy.enumerated() {
            for k in start..<(start + Int(Self.counts[l])) {
                #expect(values[k] == values[start], sourceLocation: sourceLocation)
            }
        }
        return Self.firstCopy.map { values[$0] }
    }

    /// |a − b| ≤ tol |b|; equal infinities and two NaNs (a quantity neither defines) agree.
    func expectClose(_ a: Double, _ b: Double, _ tol: Double = 1e-12, sourceLocation: SourceLocation = #_sourceLocation) {
        if a == b || (a.isNaN && b.isNaN) { return }
        #expect(abs(a - b) <= tol * max(abs(b), 1e-300), "\(a) vs \(b)", sourceLocation: sourceLocation)
    }

    func expectClose(_ a: [Double], _ b: [Double], _ tol: Double = 1e-12, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.count == b.count, sourceLocation: sourceLocation)
        for (x, y) in zip(a, b) { expectClose(x, y, tol, sourceLocation: sourceLocation) }
    }

    func expectSamePrediction(_ w: Prediction, _ r: Prediction, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(w.sigma.multiplicities == Self.counts, sourceLocation: sourceLocation)
        expectClose(w.sigma.diagonalEntries, atNodes(r.sigma.diagonalEntries), sourceLocation: sourceLocation)
        expectClose(w.noise.diagonalEntries, atNodes(r.noise.diagonalEntries), sourceLocation: sourceLocation)
        expectClose(w.sigma.trace, r.sigma.trace, sourceLocation: sourceLocation)
        expectClose(w.trainLoss, r.trainLoss, sourceLocation: sourceLocation)
        expectClose(w.testLoss, r.testLoss, sourceLocation: sourceLocation)
        expectClose(w.couplingTrace, r.couplingTrace, sourceLocation: sourceLocation)
        expectClose(w.kappa ?? .nan, r.kappa ?? .nan, sourceLocation: sourceLocation)
        expectClose(w.criticalLearningRate ?? .nan, r.criticalLearningRate ?? .nan, sourceLocation: sourceLocation)
        expectClose(w.flatDirectionNoise, r.flatDirectionNoise, sourceLocation: sourceLocation)
    }

    // MARK: Integer weights = repeated nodes

    @Test("label noise and high-dimensional: integer weights give the repeated spectrum's results",
          arguments: [(0.3, 4, 0.0), (0.2, 2, 0.5), (0.01, 1, 0.9)])
    func integerWeightsModels(lr: Double, s: Int, mu: Double) throws {
        let lrNodes = Self.nodes.indices.map { 0.5 * lr * (1 + 0.3 * Double($0)) }
        let lrRepeated = zip(lrNodes, Self.counts).flatMap { [Double](repeating: $0.0, count: Int($0.1)) }
        for (rate, rateRepeated) in [(LearningRate.scalar(lr), LearningRate.scalar(lr)),
                                     (.diagonal(lrNodes), .diagonal(lrRepeated))] {
            expectSamePrediction(
                try labelNoise(a: Self.weighted, noiseVariance: 0.7, learningRate: rate, batchSize: s, momentum: mu),
                try labelNoise(a: .diagonal(Self.repeated), noiseVariance: 0.7, learningRate: rateRepeated, batchSize: s,
                               momentum: mu))
            expectSamePrediction(
                try highDimensional(aHat: Self.weighted, alpha: 3, noiseVariance: 0.7, learningRate: rate, batchSize: s,
                                    momentum: mu),
                try highDimensional(aHat: .diagonal(Self.repeated), alpha: 3, noiseVariance: 0.7,
                                    learningRate: rateRepeated, batchSize: s, momentum: mu))
        }
    }

    @Test("critical learning rates: integer weights give the repeated spectrum's", arguments: [(1, 0.0), (7, 0.5)])
    func integerWeightsCritical(s: Int, mu: Double) throws {
        let gamma = Self.nodes.indices.map { 0.01 * Double($0) }
        let gammaRepeated = zip(gamma, Self.counts).flatMap { [Double](repeating: $0.0, count: Int($0.1)) }
        let pairs: [(Model, Model)] = [
            (.labelNoise(a: Self.weighted, noiseVariance: 0), .labelNoise(a: .diagonal(Self.repeated), noiseVariance: 0)),
            (.highDimensional(aHat: Self.weighted, alpha: 1, noiseVariance: 0),
             .highDimensional(aHat: .diagonal(Self.repeated), alpha: 1, noiseVariance: 0)),
            (.l2Regularized(a: Self.weighted, u: [Double](repeating: 0, count: 5), weightDecay: .diagonal(gamma)),
             .l2Regularized(a: .diagonal(Self.repeated), u: [Double](repeating: 0, count: 15), weightDecay: .diagonal(gammaRepeated))),
        ]
        for (w, r) in pairs {
            expectClose(try w.criticalLearningRate(batchSize: s, momentum: mu),
                        try r.criticalLearningRate(batchSize: s, momentum: mu))
        }
        #expect(try smallestStableBatchSize(a: Self.weighted, learningRate: 0.5, momentum: mu)
                    == smallestStableBatchSize(a: .diagonal(Self.repeated), learningRate: 0.5, momentum: mu))
    }

    @Test("minimum fluctuation: integer weights give the repeated spectrum's (non-interpolating and interpolating)")
    func integerWeightsMinimum() throws {
        for loss in [0.3, 0.0] {
            for rate in [LearningRate.scalar(0.2), .diagonal(Self.nodes.indices.map { 0.1 + 0.02 * Double($0) })] {
                var rateRepeated = rate
                if case .diagonal(let v) = rate {
                    rateRepeated = .diagonal(zip(v, Self.counts).flatMap { [Double](repeating: $0.0, count: Int($0.1)) })
                }
                let w = try minimumFluctuation(hessian: Self.weighted, loss: loss, learningRate: rate, batchSize: 3,
                                               momentum: 0.3)
                let r = try minimumFluctuation(hessian: .diagonal(Self.repeated), loss: loss, learningRate: rateRepeated,
                                               batchSize: 3, momentum: 0.3)
                #expect(w.kind == r.kind)
                #expect(w.sigma.multiplicities == Self.counts)
                expectClose(w.sigma.diagonalEntries, atNodes(r.sigma.diagonalEntries))
                expectClose(w.criticalLearningRate ?? .nan, r.criticalLearningRate ?? .nan)
            }
        }
        // Past the (weighted) edge: unstable, with the repeated spectrum's λ*.
        let edge = try #require(try minimumFluctuation(hessian: .diagonal(Self.repeated), loss: 0.3,
                                                       learningRate: .scalar(0.1), batchSize: 3).criticalLearningRate)
        let error = thrownError { try minimumFluctuation(hessian: Self.weighted, loss: 0.3, learningRate: .scalar(1.01 * edge),
                                                         batchSize: 3) }
        expectClose(error?.criticalLearningRateIfUnstable ?? .nan, edge)
    }

    @Test("sweeps: integer weights give the repeated spectrum's points")
    func integerWeightsSweeps() throws {
        let lrs = [0.05, 0.2, 0.4, 0.9, 3.0]
        let sizes = [1, 4, 4, 16, 2]
        let momenta = [0.0, 0.0, 0.5, 0.2, 0.0]
        let w = try labelNoiseSweep(spectrum: Self.nodes, weights: Self.counts, noiseVariance: 0.5, learningRates: lrs,
                                    batchSizes: sizes, momenta: momenta)
        let r = try labelNoiseSweep(spectrum: Self.repeated, noiseVariance: 0.5, learningRates: lrs, batchSizes: sizes,
                                    momenta: momenta)
        var unstable = 0
        for (a, b) in zip(w, r) {
            expectClose(a.criticalLearningRate, b.criticalLearningRate)
            if b.kappa.isInfinite { unstable += 1; #expect(a.kappa.isInfinite); continue }
            expectClose(a.kappa, b.kappa)
            expectClose(a.trainLoss, b.trainLoss)
            expectClose(a.testLoss, b.testLoss)
        }
        #expect(unstable >= 1 && unstable < lrs.count)  // both kinds of point are covered
        let lw = try scalingLaw(spectrum: Self.nodes, weights: Self.counts, noiseVariance: 0.5, ratio: 0.02,
                                batchSizes: [1, 8, 64, 4096])
        let lr = try scalingLaw(spectrum: Self.repeated, noiseVariance: 0.5, ratio: 0.02, batchSizes: [1, 8, 64, 4096])
        for (a, b) in zip(lw, lr) {
            expectClose(a.traceSigma, b.traceSigma)
            expectClose(a.traceSigmaScalingLaw, b.traceSigmaScalingLaw)
        }
        #expect(lr.contains { $0.traceSigma.isInfinite } && lr.contains { $0.traceSigma.isFinite })
    }

    // MARK: Real weights against the closed forms

    static let realWeights = [0.37, 2.9, 11.25, 0.004, 6.5]

    @Test("label noise, real weights: the closed form of Thm 3 with weighted traces", arguments: [(0.1, 3, 0.0), (0.05, 10, 0.6)])
    func realWeightsLabelNoise(lr: Double, s: Int, mu: Double) throws {
        let a = try WeightedSpectrum(nodes: Self.nodes, weights: Self.realWeights)
        let sigma2 = 0.8, sd = Double(s)
        let p = try labelNoise(a: .weightedSpectrum(a), noiseVariance: sigma2, learningRate: .scalar(lr), batchSize: s,
                               momentum: mu)
        // G_μ = 2(1−μ) − ((1−μ)/(1+μ) + 1/S) λa,  T = Σ ω λa/g,  κ = T/(1 − T/S).
        let g = Self.nodes.map { 2 * (1 - mu) - ((1 - mu) / (1 + mu) + 1 / sd) * lr * $0 }
        let t = (0..<5).reduce(0) { $0 + a.weights[$1] * lr * a.nodes[$1] / g[$1] }
        let kappa = t / (1 - t / sd)
        expectClose(p.kappa!, kappa, 1e-13)
        expectClose(p.testLoss, sigma2 / (2 * sd) * kappa, 1e-13)
        expectClose(p.trainLoss, sigma2 / (2 * sd) * kappa + sigma2 / 2, 1e-13)
        expectClose(p.sigma.diagonalEntries, g.map { sigma2 / sd * (1 + kappa / sd) * lr / $0 }, 1e-13)
        // Σ and its trace carry the weights: Tr Σ = Σ ω Σ_l.
        expectClose(p.sigma.trace, (0..<5).reduce(0) { $0 + a.weights[$1] * p.sigma.diagonalEntries[$1] }, 1e-15)
        // λ*: the root of Σ ω λa/(2(1−μ) − qλa) = S, below the largest node's pole.
        let critical = try criticalLearningRate(a: .weightedSpectrum(a), batchSize: s, momentum: mu)
        let q = (1 - mu) / (1 + mu) + 1 / sd
        let f = (0..<5).reduce(0) { $0 + a.weights[$1] * critical * a.nodes[$1] / (2 * (1 - mu) - q * critical * a.nodes[$1]) }
        expectClose(f, sd, 1e-12)
        #expect(2 * (1 - mu) - q * critical * Self.nodes.max()! > 0)
        expectClose(p.criticalLearningRate!, critical, 1e-14)
    }

    @Test("high-dimensional, real weights: Thm 6 with weighted traces")
    func realWeightsHighDimensional() throws {
        let a = try WeightedSpectrum(nodes: Self.nodes, weights: Self.realWeights)
        let (lr, s, sigma2, alpha) = (0.03, 20.0, 0.9, 2.5)
        let p = try highDimensional(aHat: .weightedSpectrum(a), alpha: alpha, noiseVariance: sigma2, learningRate: .scalar(lr),
                                    batchSize: Int(s))
        // Ĝ = 2 − λ(1 − 1/S)â, κ̂ = Tr[Ĝ⁻¹Â]/(1 − (λ/S)Tr[Ĝ⁻¹Â]), Tr[ÂΣ] = (λσ²/S)(1 − 1/α)κ̂.
        let trace = (0..<5).reduce(0) { $0 + a.weights[$1] * a.nodes[$1] / (2 - lr * (1 - 1 / s) * a.nodes[$1]) }
        let kappa = trace / (1 - lr / s * trace)
        expectClose(p.kappa!, kappa, 1e-13)
        expectClose(p.couplingTrace, lr * sigma2 / s * (1 - 1 / alpha) * kappa, 1e-13)
    }

    // MARK: Refusals

    @Test("a weighted spectrum is refused where a model has no trace-only form")
    func refusals() throws {
        let w = Self.weighted
        let u = [Double](repeating: 1, count: 5)
        let d5 = SymmetricOperator.diagonal([Double](repeating: 0.1, count: 5))
        expectError(.invalidArgument, mentioning: "weighted spectrum") {
            try inputNoise(a: w, b: d5, u: u, learningRate: .scalar(0.1), batchSize: 2, noiseVariance: 1)
        }
        expectError(.invalidArgument, mentioning: "weighted spectrum") {
            try l2Regularized(a: w, u: u, weightDecay: d5, learningRate: .scalar(0.1), batchSize: 2)
        }
        expectError(.invalidArgument, mentioning: "weighted spectrum") {
            try dampedNewton(a: w, noiseVariance: 1, learningRate: 0.1, batchSize: 2)
        }
        expectError(.invalidArgument, mentioning: "weighted spectrum") {
            try naturalGradient(a: w, learningRate: 0.1, batchSize: 2)
        }
        expectError(.invalidArgument, mentioning: "weighted spectrum") {
            try continuousTime(a: w, noiseVariance: 1, learningRate: .scalar(0.1), batchSize: 2)
        }
        expectError(.invalidArgument, mentioning: "weighted spectrum") {
            try Model.dampedNewton(a: w, noiseVariance: 1).criticalLearningRate(batchSize: 2)
        }
        expectError(.invalidArgument, mentioning: "weighted spectrum") {
            try optimalWeightDecay(a: w, u: u, learningRate: 0.1, batchSize: 2)
        }
        expectError(.invalidArgument, mentioning: "weighted spectrum") {
            try minimumNoise(hessian: w, loss: 0.1, batchSize: 2)
        }
        expectError(.invalidArgument, mentioning: "weight decay") {
            try minimumFluctuation(hessian: w, loss: 0.1, learningRate: .scalar(0.1), batchSize: 2, weightDecay: d5, wStar: u)
        }
        expectError(.invalidArgument, mentioning: "not a matrix") {
            try labelNoise(a: w, noiseVariance: 1, learningRate: .matrix(Matrix.diagonal(u)), batchSize: 2)
        }
        expectError(.invalidArgument, mentioning: "weights") {
            try labelNoise(a: .weightedSpectrum(try WeightedSpectrum(nodes: [1, 2], weights: [0, 0])), noiseVariance: 1,
                           learningRate: .scalar(0.1), batchSize: 2)
        }
        expectError(.invalidArgument, mentioning: "weights") {
            try labelNoiseSweep(spectrum: [1, 2], weights: [1, -1], noiseVariance: 1, learningRates: [0.1], batchSizes: [1],
                                momenta: [0])
        }
    }

    // MARK: Stochastic Lanczos quadrature

    /// A dense symmetric H with the given eigenvalues in a random orthonormal basis.
    static func dense(_ values: [Double], seed: UInt64) throws -> Matrix {
        var rng = SeededGenerator(seed: seed)
        let n = values.count
        let g = try Matrix(rows: n, columns: n, elements: (0..<(n * n)).map { _ in rng.normal() })
        let q = try SymmetricEigendecomposition(checked: Matrix.product(g, g, transposeB: true).symmetrized, name: "g")
        return q.eigenvectorRows.weightedGram(rowWeights: values)
    }

    @Test("each probe's Gauss rule integrates polynomials of degree < 2s exactly: Σ w θ^k = zᵀH^k z")
    func gaussExactness() throws {
        let p = 60, steps = 6, probes = 4
        let values = (0..<p).map { 2 * sin(Double($0)) + 0.5 }
        let h = try Self.dense(values, seed: 3)
        var inputs: [[Double]] = []
        let op = try HessianOperator(dimension: p) { v, out in
            inputs.append(Array(v))
            let r = h.apply(Array(v))
            for i in 0..<p { out[i] = r[i] }
        }
        let slq = try StochasticLanczosQuadrature(hessian: op, probes: probes, steps: steps, seed: 11)
        #expect(slq.productCount == probes * steps && inputs.count == probes * steps)
        let scale = values.map(abs).max()!
        for (k, rule) in slq.rules.enumerated() {
            // The probe: the first vector the recurrence multiplied, z/‖z‖ with z Rademacher.
            let z = inputs[k * steps].map { ($0 * Double(p).squareRoot()).rounded() }
            #expect(z.allSatisfy { abs($0) == 1 })
            var hz = z
            var moments = [Double(p)]  // zᵀH^k z from H^j z products
            for degree in 1..<(2 * steps) {
                if degree % 2 == 1 {
                    let next = h.apply(hz)
                    moments.append(zip(hz, next).reduce(0) { $0 + $1.0 * $1.1 })
                    hz = next
                } else {
                    moments.append(zip(hz, hz).reduce(0) { $0 + $1.0 * $1.1 })
                }
            }
            for degree in 0..<(2 * steps) {
                let quadrature = zip(rule.nodes, rule.weights).reduce(0) { $0 + $1.1 * pow($1.0, Double(degree)) }
                #expect(abs(quadrature - moments[degree]) <= 1e-11 * Double(p) * pow(scale, Double(degree)),
                        "probe \(k), degree \(degree): \(quadrature) vs \(moments[degree])")
            }
            #expect(abs(rule.weights.reduce(0, +) - Double(p)) <= 1e-12 * Double(p))
        }
        let spectrum = slq.spectrum
        #expect(abs(spectrum.totalWeight - Double(p)) <= 1e-12 * Double(p))
    }

    @Test("Hutchinson's Tr H from the quadrature: unbiased, and its standard error matches its spread")
    func hutchinsonZScores() throws {
        let p = 50
        let values = (0..<p).map { 3 * cos(Double($0) * 0.7) + 1 }
        let h = try Self.dense(values, seed: 5)
        let exact = values.reduce(0, +)
        let op = try HessianOperator(h)
        var z: [Double] = []
        for seed in 0..<300 {
            let slq = try StochasticLanczosQuadrature(hessian: op, probes: 8, steps: 3, seed: UInt64(seed))
            let t = try slq.traceEstimate(of: { $0 })
            // The weighted spectrum's first moment is the same estimate.
            #expect(abs(slq.spectrum.integral { $0 } - t.value) <= 1e-12 * Double(p) * 4)
            z.append((t.value - exact) / t.standardError)
        }
        let mean = z.reduce(0, +) / Double(z.count)
        let variance = z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(z.count - 1)
        // Unbiased: the mean z-score is within 4 standard errors of 0 (its sd ≈ 1/√300).
        #expect(abs(mean) < 4 / Double(z.count).squareRoot(), "mean z = \(mean)")
        // Honest standard error: the z-scores have unit variance (Student t with 7 dof: 1.4; wide bounds).
        #expect(variance > 0.8 && variance < 2.2, "var z = \(variance)")
    }
}
