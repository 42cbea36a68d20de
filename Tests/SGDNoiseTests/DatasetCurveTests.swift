import Foundation
import SGDNoise
import Testing

/// The moments of (w, m) under SGD on a tiny dataset, by enumerating every minibatch: with
/// g_B(w) = mean_{i∈B} x_i(x_iᵀw − y_i) + Γw, the update m' = μm + g_B(w), w' = w − λm' is affine,
/// z' = T_B z + c_B, and B is independent of z, so E[z'] and E[z'z'ᵀ] are exact averages over B.
/// Nothing here uses the theory's F, R or J (docs/theory.md §9).
private struct EnumeratedDataset {
    let x: Matrix
    let y: [Double]
    let gamma: Matrix
    let withReplacement: Bool
    var mean: [Double]
    var second: Matrix

    init(x: Matrix, y: [Double], gamma: Matrix, withReplacement: Bool, w0: [Double], sigma0: Matrix) {
        self.x = x
        self.y = y
        self.gamma = gamma
        self.withReplacement = withReplacement
        let d = x.columns
        mean = w0 + [Double](repeating: 0, count: d)
        second = Ref.zeros(2 * d, 2 * d)
        for i in 0..<(2 * d) { for j in 0..<(2 * d) { second[i, j] = mean[i] * mean[j] } }
        for i in 0..<d { for j in 0..<d { second[i, j] += sigma0[i, j] } }
    }

    /// Every batch of size s: Nˢ ordered draws, or the C(N, s) subsets.
    func batches(_ s: Int) -> [[Int]] {
        let n = x.rows
        var out: [[Int]] = [[]]
        for _ in 0..<s {
            out = out.flatMap { b in (0..<n).compactMap { i in
                withReplacement ? b + [i] : (b.last.map { i > $0 } ?? true) ? b + [i] : nil } }
        }
        return out
    }

    mutating func step(learningRate lr: Double, batchSize s: Int, momentum mu: Double) {
        let d = x.columns
        let all = batches(s)
        let p = 1 / Double(all.count)
        var newMean = [Double](repeating: 0, count: 2 * d)
        var newSecond = Ref.zeros(2 * d, 2 * d)
        for b in all {
            var k = gamma
            var xy = [Double](repeating: 0, count: d)
            for i in b {
                for r in 0..<d {
                    xy[r] += x[i, r] * y[i] / Double(s)
                    for c in 0..<d { k[r, c] += x[i, r] * x[i, c] / Double(s) }
                }
            }
            let t = BruteForceMoments.heavyBall(k, learningRate: lr, momentum: mu, size: 2 * d)
            let c = xy.map { lr * $0 } + xy.map { -$0 }
            let tz = t.apply(mean)
            let tzt = Ref.mul(t, second, Ref.transpose(t))
            for r in 0..<(2 * d) {
                newMean[r] += p * (tz[r] + c[r])
                for q in 0..<(2 * d) {
                    newSecond[r, q] += p * (tzt[r, q] + tz[r] * c[q] + c[r] * tz[q] + c[r] * c[q])
                }
            }
        }
        mean = newMean
        second = newSecond
    }

    var meanW: [Double] { Array(mean[0..<x.columns]) }

    var sigma: Matrix {
        let d = x.columns
        var s = Ref.zeros(d, d)
        for i in 0..<d { for j in 0..<d { s[i, j] = second[i, j] - mean[i] * mean[j] } }
        return s
    }
}

@Suite("Learning curve on a finite dataset (theory §4.1, §9)")
struct DatasetCurveTests {
    private static func data(n: Int, d: Int, seed: UInt64) throws -> (Matrix, [Double]) {
        var rng = SeededGenerator(seed: seed)
        let x = try Matrix(rows: n, columns: d, elements: (0..<(n * d)).map { _ in rng.normal() })
        let teacher = (0..<d).map { _ in rng.normal() }
        let y = (0..<n).map { i in (0..<d).reduce(0) { $0 + x[i, $1] * teacher[$1] } + 0.7 * rng.normal() }
        return (x, y)
    }

    @Test("Every minibatch enumerated (N = 4, D = 3, S = 1 and 2), with a random start far from w*",
          arguments: [(true, 0.0), (true, 0.5), (false, 0.0), (false, 0.5)])
    func enumeration(withReplacement: Bool, momentum mu: Double) throws {
        let (x, y) = try Self.data(n: 4, d: 3, seed: 17)
        let gamma = Ref.diagonal([0.05, 0.0, 0.1])
        let w0 = [1.5, -2.0, 0.7]
        var rng = SeededGenerator(seed: 3)
        let sigma0 = rng.spd(3, eigenvaluesIn: 0.01, 0.2)
        let steps = 40
        let lr = (0..<steps).map { $0 < 15 ? 0.3 : 0.1 }
        let s = (0..<steps).map { $0 < 25 ? 1 : 2 }
        let schedule = try Schedule(learningRates: lr, batchSizes: s, momenta: [Double](repeating: mu, count: steps))
        let record = [0, 1, 3, 14, 15, 16, 25, 26, 40]
        let curve = try learningCurve(
            x: x, y: y, sampling: withReplacement ? .withReplacement : .withoutReplacement, weightDecay: gamma,
            schedule: schedule, record: record, w0: w0, startCovariance: .dense(sigma0))
        var reference = EnumeratedDataset(x: x, y: y, gamma: gamma, withReplacement: withReplacement, w0: w0, sigma0: sigma0)
        var t = 0
        for (k, step) in record.enumerated() {
            while t < step {
                let (l, b, m) = schedule.hyperparameters(atStep: t + 1)
                reference.step(learningRate: l, batchSize: b, momentum: m)
                t += 1
            }
            guard case .dense(let observed) = curve.sigma[k] else {
                Issue.record("Σ should be dense")
                continue
            }
            let expected = reference.sigma
            let scale = expected.elements.map(abs).max()!
            let error = zip(observed.elements, expected.elements).map { abs($0 - $1) }.max()! / scale
            #expect(error < 1e-10, "step \(step): Σ relative error \(error)")
            let meanError = zip(curve.mean[k], reference.meanW).map { abs($0 - $1) }.max()!
            #expect(meanError < 1e-12, "step \(step): mean error \(meanError)")
        }
    }

    @Test("A constant schedule converges to finiteDataset's Σ to 1e-10", arguments: [0.0, 0.6])
    func constantSchedule(momentum mu: Double) throws {
        let (x, y) = try Self.data(n: 12, d: 4, seed: 5)
        for sampling in [Sampling.withReplacement, .withoutReplacement] {
            let p = try finiteDataset(x: x, y: y, learningRate: .scalar(0.15), batchSize: 3, sampling: sampling,
                                      momentum: mu).prediction
            let schedule = try Schedule.constant(learningRate: 0.15, batchSize: 3, momentum: mu, steps: 8000)
            let curve = try learningCurve(x: x, y: y, sampling: sampling, schedule: schedule, record: [8000],
                                          w0: [1, -1, 0.5, 2])
            let expected = p.sigma.matrix
            let observed = curve.sigma[0].matrix
            let scale = expected.elements.map(abs).max()!
            let error = zip(observed.elements, expected.elements).map { abs($0 - $1) }.max()! / scale
            #expect(error < 1e-10, "\(sampling): Σ relative error \(error)")
            #expect(relativeDifference(curve.trainLoss[0], p.trainLoss) < 1e-10)
            #expect(curve.testLoss[0].isNaN)  // no teacher
        }
    }

    @Test("A start covariance Σ₀ on the models: M₀ = Σ₀ + e₀e₀ᵀ against the brute-force recursion")
    func startCovarianceOnModels() throws {
        let d = 3
        var rng = SeededGenerator(seed: 8)
        let a = rng.spd(d, eigenvaluesIn: 0.3, 1.5)
        let sigma0 = rng.spd(d, eigenvaluesIn: 0.05, 0.5)
        let w0 = rng.uniformArray(d, -1, 1)
        let schedule = try Schedule(learningRates: [Double](repeating: 0.3, count: 30), batchSizes: [Int](repeating: 2, count: 30),
                                    momenta: [Double](repeating: 0.4, count: 30))
        let curve = try learningCurve(model: .labelNoise(a: .dense(a), noiseVariance: 0.3), schedule: schedule,
                                      record: [0, 1, 30], w0: w0, startCovariance: .dense(sigma0))
        var reference = BruteForceMoments(hessian: a, coupling: a, delta: [Double](repeating: 0, count: d),
                                          baseNoise: Ref.scale(0.3, a), beta1: 1, beta2: 1, e0: w0)
        reference.addStartCovariance(sigma0)
        #expect(Ref.relativeError(curve.sigma[0].matrix, sigma0) < 1e-13)
        reference.step(learningRate: 0.3, batchSize: 2, momentum: 0.4)
        #expect(Ref.relativeError(curve.sigma[1].matrix, reference.covariance) < 1e-11)
        for _ in 2...30 { reference.step(learningRate: 0.3, batchSize: 2, momentum: 0.4) }
        #expect(Ref.relativeError(curve.sigma[2].matrix, reference.covariance) < 1e-11)
        #expect(throws: SGDNoiseError.self) {
            try learningCurve(model: .labelNoise(a: .dense(a), noiseVariance: 0.3), schedule: schedule,
                              startCovariance: .dense(Ref.scale(-1, sigma0)))
        }
    }
}

@Suite("Learning curve near a general minimum (theory §5, §9)")
struct MinimumCurveTests {
    @Test("Interpolating: the brute-force recursion with C(M) = (Tr[H₀M]H₀ − H₀MH₀)/S; regularised: minimumFluctuation's Σ")
    func minimum() throws {
        let d = 3
        var rng = SeededGenerator(seed: 31)
        let h0 = rng.spd(d, eigenvaluesIn: 0.1, 1.2)
        let w0 = rng.uniformArray(d, -1, 1)
        let schedule = try Schedule.constant(learningRate: 0.3, batchSize: 3, momentum: 0.4, steps: 40)
        let curve = try learningCurve(hessian: .dense(h0), loss: 0, schedule: schedule, record: [40], w0: w0)
        var reference = BruteForceMoments(hessian: h0, coupling: h0, delta: [Double](repeating: 0, count: d),
                                          baseNoise: Ref.zeros(d, d), beta1: -1, beta2: 1, e0: w0)
        for _ in 1...40 { reference.step(learningRate: 0.3, batchSize: 3, momentum: 0.4) }
        #expect(Ref.relativeError(curve.sigma[0].matrix, reference.covariance) < 1e-11)

        let gamma = Ref.diagonal([0.2, 0.1, 0.3])
        let wStar = [0.5, -1.0, 0.8]
        let long = try Schedule.constant(learningRate: 0.3, batchSize: 3, momentum: 0.4, steps: 5000)
        let settled = try learningCurve(hessian: .dense(h0), loss: 0.4, weightDecay: .dense(gamma), wStar: wStar,
                                        schedule: long, record: [5000], w0: w0)
        let f = try minimumFluctuation(hessian: .dense(h0), loss: 0.4, learningRate: .scalar(0.3), batchSize: 3,
                                       weightDecay: .dense(gamma), wStar: wStar, momentum: 0.4)
        #expect(f.kind == .regularized)
        #expect(Ref.relativeError(settled.sigma[0].matrix, f.sigma.matrix) < 1e-10)
    }
}
