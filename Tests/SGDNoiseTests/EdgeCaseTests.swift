import Dispatch
import Foundation
import SGDNoise
import SGDNoiseCABI
import _SGDNoiseShims
import Synchronization
import Testing

/// Numerical edge cases with defined, documented behaviour (README, "Guarantees"): D = 1, flat
/// and rank-deficient Hessians, S = N without replacement, momentum 0.999, learning rates exactly
/// at λ*, spectra spanning 1e−12 to 1e6, and dimensions beyond what memory holds.
@Suite("Edge cases")
struct EdgeCaseTests {
    static let eps = Double.ulpOfOne

    // MARK: D = 1

    /// Theorem 1 for D = 1: (1−μ)·2λhΣ − (c₁ − 2c₂)λ²h²Σ = λ²C with c₁ − 2c₂ = (1−μ)/(1+μ), so
    /// Σ = λC / ((1−μ) h (2 − λh/(1+μ))).
    @Test("D = 1: the stationary Σ is the scalar closed form", arguments: [0.0, 0.5, 0.9, 0.999])
    func oneDimensionalStationary(momentum mu: Double) throws {
        for (h, c, lr) in [(1.0, 0.3, 0.7), (1e-3, 2.0, 1.0), (250.0, 1e-4, 0.005)] {
            let expected = lr * c / ((1 - mu) * h * (2 - lr * h / (1 + mu)))
            let sigma = try stationaryCovariance(
                hessian: Matrix.diagonal([h]), noise: Matrix.diagonal([c]), learningRate: .scalar(lr), momentum: mu
            ).sigma[0, 0]
            #expect(relativeDifference(sigma, expected) <= 16 * Self.eps / (1 - mu),
                    "h \(h), C \(c), lr \(lr), mu \(mu): expected \(expected), observed \(sigma)")
        }
    }

    /// λ* of label noise for D = 1: λa/(2(1−μ) − qλa) = S, q = (1−μ)/(1+μ) + 1/S, so
    /// λ* = 2S(1−μ) / (a (2 + S(1−μ)/(1+μ))).
    @Test("D = 1: the label-noise critical learning rate is the scalar closed form")
    func oneDimensionalCriticalLearningRate() throws {
        for (a, s, mu) in [(1.0, 1, 0.0), (0.5, 10, 0.0), (2.0, 7, 0.9), (1.0, 1000, 0.999)] {
            let expected = 2 * Double(s) * (1 - mu) / (a * (2 + Double(s) * (1 - mu) / (1 + mu)))
            for op in [SymmetricOperator.diagonal([a]), .dense(Matrix.diagonal([a]))] {
                let observed = try criticalLearningRate(a: op, batchSize: s, momentum: mu)
                #expect(relativeDifference(observed, expected) <= 64 * Self.eps,
                        "a \(a), S \(s), mu \(mu): expected \(expected), observed \(observed)")
            }
        }
    }

    @Test("D = 1: the noise covariance of scalar gradients is f times their variance")
    func oneDimensionalNoise() throws {
        let g: [Double] = [1, 2, 4, 8]
        let mean = g.reduce(0, +) / 4
        let variance = g.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4
        let with = try noiseCovariance(gradients: Matrix(rows: 4, columns: 1, elements: g), batchSize: 2)
        let without = try noiseCovariance(gradients: Matrix(rows: 4, columns: 1, elements: g), batchSize: 2,
                                          sampling: .withoutReplacement)
        #expect(relativeDifference(with[0, 0], variance / 2) <= 4 * Self.eps)
        #expect(relativeDifference(without[0, 0], variance * 2 / (2 * 3)) <= 4 * Self.eps)
    }

    // MARK: Flat directions

    @Test("Singular H: Σ is zero on the null space and the noise entering it is reported")
    func singularHessian() throws {
        let h = Matrix.diagonal([1, 0, 0.5])
        let c = Matrix.diagonal([0.2, 0.3, 0.1])
        let r = try stationaryCovariance(hessian: h, noise: c, learningRate: .scalar(0.5))
        #expect(r.flatDirections == 1)
        // Reported in the preconditioned coordinates: Tr over the null space of Λ^{1/2}CΛ^{1/2} = λ·C₁₁.
        #expect(relativeDifference(r.flatDirectionNoise, 0.5 * 0.3) <= 4 * Self.eps)
        #expect(r.sigma[1, 1] == 0 && r.sigma[0, 1] == 0 && r.sigma[1, 2] == 0)
        #expect(relativeDifference(r.sigma[0, 0], 0.5 * 0.2 / (1 * (2 - 0.5))) <= 8 * Self.eps)
        #expect(r.sigma.isFinite)
    }

    @Test("Rank-deficient H = v vᵀ (D = 3, rank 1): two flat directions, a finite Σ on the third")
    func rankDeficientHessian() throws {
        let v: [Double] = [1, 2, 2].map { $0 / 3 }
        var h = Matrix(rows: 3, columns: 3)
        for i in 0..<3 { for j in 0..<3 { h[i, j] = 1.5 * v[i] * v[j] } }
        let r = try stationaryCovariance(hessian: h, noise: 0.1 * Matrix.identity(3), learningRate: .scalar(0.4),
                                         momentum: 0.5)
        #expect(r.flatDirections == 2)
        #expect(relativeDifference(r.flatDirectionNoise, 0.4 * 0.2) <= 64 * Self.eps)
        // Along v: the D = 1 closed form with h = 1.5, C = 0.1.
        var along = 0.0
        for i in 0..<3 { for j in 0..<3 { along += v[i] * r.sigma[i, j] * v[j] } }
        let expected = 0.4 * 0.1 / (0.5 * 1.5 * (2 - 0.4 * 1.5 / 1.5))
        #expect(relativeDifference(along, expected) <= 1e-13, "expected \(expected), observed \(along)")
        #expect(r.sigma.isFinite)
    }

    @Test("Label noise with a zero eigenvalue in the spectrum: Σ is zero there, the rest is finite")
    func labelNoiseFlatSpectrum() throws {
        let p = try labelNoise(a: .diagonal([1, 0, 0.5]), noiseVariance: 1, learningRate: .scalar(0.5), batchSize: 4)
        guard case .diagonal(let sigma) = p.sigma else { Issue.record("expected a diagonal Σ"); return }
        #expect(sigma[1] == 0)
        #expect(sigma.allSatisfy { $0.isFinite } && sigma[0] > 0 && sigma[2] > 0)
        #expect(p.trainLoss.isFinite && p.testLoss.isFinite)
    }

    // MARK: S = N without replacement

    @Test("S = N without replacement: the minibatch is the whole dataset, the noise is exactly zero")
    func fullBatchWithoutReplacement() throws {
        var rng = SeededGenerator(seed: 71)
        let x = rng.gaussianMatrix(6, 3)
        let c = try noiseCovariance(gradients: x, batchSize: 6, sampling: .withoutReplacement)
        #expect(c.elements.allSatisfy { $0 == 0 })
        let y = rng.uniformArray(6, -1, 1)
        let p = try finiteDataset(x: x, y: y, learningRate: .scalar(0.05), batchSize: 6, sampling: .withoutReplacement)
        guard case .dense(let sigma) = p.prediction.sigma, case .dense(let noise) = p.prediction.noise else {
            Issue.record("expected dense results"); return
        }
        #expect(sigma.elements.allSatisfy { $0 == 0 }, "Σ of full-batch gradient descent: \(sigma)")
        #expect(noise.elements.allSatisfy { $0 == 0 })
    }

    @Test("N = S = 1: one sample has no minibatch noise, with or without replacement (no 0/0)")
    func singleSample() throws {
        let x = try Matrix(rows: 1, columns: 1, elements: [2])
        for sampling in [Sampling.withReplacement, .withoutReplacement] {
            #expect(try noiseCovariance(gradients: x, batchSize: 1, sampling: sampling)[0, 0] == 0)
            let p = try finiteDataset(x: x, y: [1], learningRate: .scalar(0.1), batchSize: 1, sampling: sampling)
            #expect(p.prediction.sigma == .dense(Matrix.diagonal([0])))
        }
    }

    // MARK: High momentum

    @Test("μ = 0.999: Σ agrees with a brute-force Kronecker solve of Theorem 1")
    func highMomentum() throws {
        var rng = SeededGenerator(seed: 72)
        let h = rng.symmetric(eigenvalues: [0.05, 0.4, 1])
        let c = rng.spd(3, eigenvaluesIn: 0.1, 1)
        let mu = 0.999
        let r = try stationaryCovariance(hessian: h, noise: c, learningRate: .scalar(0.5), momentum: mu)
        let reference = BruteForce.theorem1(hessian: h, noise: c, lr: Ref.scale(0.5, Ref.identity(3)), momentum: mu)
        let error = Ref.relativeError(r.sigma, reference.sigma)
        #expect(error <= 2 * reference.budget, "relative error \(error), budget \(reference.budget)")
        #expect(r.sigma.isFinite)
    }

    // MARK: The edge of stability

    /// Just below the edge Σ grows like 1/(edge − λ): 1e−9 below it is finite; one ulp below, Σ may
    /// exceed the doubles, and then the call fails with numericalFailure (never a non-finite Σ).
    @Test("λ exactly at 2(1+μ)/h_max is unstable, and reports that critical learning rate")
    func atTheClassicalEdge() throws {
        for mu in [0.0, 0.5] {
            let edge = 2 * (1 + mu) / 4  // h_max = 4: exact in binary
            let error = expectError(.unstable, mentioning: "critical learning rate") {
                try stationaryCovariance(hessian: Matrix.diagonal([4, 1]), noise: Matrix.identity(2),
                                         learningRate: .scalar(edge), momentum: mu)
            }
            #expect(error?.criticalLearningRateIfUnstable == edge)
            let below = try stationaryCovariance(hessian: Matrix.diagonal([4, 1]), noise: Matrix.identity(2),
                                                 learningRate: .scalar(edge * (1 - 1e-9)), momentum: mu)
            #expect(below.sigma.isFinite && below.sigma[0, 0] > 1e6)
            do {
                let ulp = try stationaryCovariance(hessian: Matrix.diagonal([4, 1]), noise: Matrix.identity(2),
                                                   learningRate: .scalar(edge.nextDown), momentum: mu)
                #expect(ulp.sigma.isFinite && ulp.sigma[0, 0] > 1e12)
            } catch let error as SGDNoiseError {
                #expect(ErrorKind(error) == .numericalFailure || ErrorKind(error) == .unstable, "\(error)")
            }
        }
    }

    @Test("λ exactly at the label-noise λ* is unstable; one ulp below it is stable, with a huge Σ")
    func atTheCriticalLearningRate() throws {
        for (spectrum, s, mu) in [([1.0, 0.5], 4, 0.0), ([2.0, 1.0, 0.1], 10, 0.9), ([1.0], 1, 0.0)] {
            let critical = try criticalLearningRate(a: .diagonal(spectrum), batchSize: s, momentum: mu)
            let error = expectError(.unstable, mentioning: "critical learning rate") {
                try labelNoise(a: .diagonal(spectrum), noiseVariance: 1, learningRate: .scalar(critical),
                               batchSize: s, momentum: mu)
            }
            if let reported = error?.criticalLearningRateIfUnstable {
                #expect(relativeDifference(reported, critical) <= 4 * Self.eps)
            }
            let below = try labelNoise(a: .diagonal(spectrum), noiseVariance: 1,
                                       learningRate: .scalar(critical * (1 - 1e-9)), batchSize: s, momentum: mu)
            #expect(below.testLoss.isFinite && below.testLoss > 1e3, "L_test just below λ*: \(below.testLoss)")
        }
    }

    @Test("An absurd learning rate (1e300) reports the true λ*, not 0 (no overflow in the edge search)")
    func absurdLearningRate() throws {
        let critical = try criticalLearningRate(a: .diagonal([0.6]), batchSize: 1)
        let error = thrownError {
            try labelNoise(a: .diagonal([0.6]), noiseVariance: 0, learningRate: .scalar(1e300), batchSize: 1)
        }
        let reported = try #require(error?.criticalLearningRateIfUnstable)
        #expect(relativeDifference(reported, critical) <= 64 * Self.eps)
    }

    // MARK: Wide spectra

    /// Eigenvalues 1e−12 … 1e6 (κ = 1e18, beyond double precision). The documented rule: a
    /// direction with λh_i ≤ 16·D·ε·max_j λh_j is flat (its relaxation time exceeds 10^13 steps and,
    /// for a dense H, its eigenvalue is below the eigensolver's resolution): Σ is 0 there and its
    /// noise is reported. Every other direction matches the closed form λC/(h(2 − λh)).
    @Test("Spectrum from 1e-12 to 1e6: resolved directions exact, unresolved ones flat, nothing non-finite")
    func wideSpectrum() throws {
        let d = 8
        let h = (0..<d).map { pow(10, -12 + 18 * Double($0) / Double(d - 1)) }
        let lr = 1e-6
        let threshold = 16 * Double(d) * Self.eps * h.max()! * lr
        let flat = h.filter { lr * $0 <= threshold }.count
        #expect(flat == 2)
        // Diagonal H: exact inputs, so the resolved directions are exact to rounding.
        let diagonal = try stationaryCovariance(hessian: Matrix.diagonal(h), noise: Matrix.identity(d), learningRate: .scalar(lr))
        #expect(diagonal.flatDirections == flat)
        #expect(relativeDifference(diagonal.flatDirectionNoise, lr * Double(flat)) <= 4 * Self.eps)
        for i in 0..<d {
            let expected = lr * h[i] <= threshold ? 0 : lr / (h[i] * (2 - lr * h[i]))
            let observed = diagonal.sigma[i, i]
            #expect(expected == 0 ? observed == 0 : relativeDifference(observed, expected) <= 64 * Self.eps,
                    "h = \(h[i]): expected \(expected), observed \(observed)")
        }
        // A rotated H: the eigensolver resolves h_i to about ε·h_max absolutely, so direction i is
        // accurate to about ε·h_max/h_i relatively.
        var rng = SeededGenerator(seed: 73)
        let q = rng.orthogonal(d)
        let dense = Ref.symmetricFromUpper(Ref.mul(q, Matrix.diagonal(h), Ref.transpose(q)))
        let c = Ref.symmetricFromUpper(Ref.mul(q, Matrix.diagonal(h), Ref.transpose(q)))
        let r = try stationaryCovariance(hessian: dense, noise: c, learningRate: .scalar(lr))
        #expect(r.sigma.isFinite)
        let rotated = Ref.mul(Ref.transpose(q), r.sigma, q)
        for i in 0..<d where lr * h[i] > 1e3 * threshold {
            let expected = lr * h[i] / (h[i] * (2 - lr * h[i]))
            let budget = 64 * Double(d) * Self.eps * h.max()! / h[i]
            #expect(relativeDifference(rotated[i, i], expected) <= budget,
                    "h = \(h[i]): expected \(expected), observed \(rotated[i, i]), budget \(budget)")
        }
    }

    // MARK: Dimensions beyond memory

    @Test("d = 10^6 for a dense matrix returns OUT_OF_MEMORY and leaves the output untouched")
    func denseMillion() {
        var h = [1.0], out = [-7.0, -7.0]
        let status = h.withUnsafeMutableBufferPointer { hp in
            out.withUnsafeMutableBufferPointer { op in
                sgdnoise_stationary_covariance(1_000_000, hp.baseAddress, hp.baseAddress, 0.5, nil, 0, op.baseAddress)
            }
        }
        #expect(status == .outOfMemory)
        #expect(out == [-7, -7])
        #expect(String(cString: sgdnoise_last_error_message()!).contains("1000000"))
        #expect(h.withUnsafeBufferPointer { labelNoiseDense(1_000_000, $0.baseAddress) } == .outOfMemory)
        #expect(h.withUnsafeBufferPointer { continuousTimeDense(1_000_000, $0.baseAddress) } == .outOfMemory)
    }

    /// The smallest dense d whose 8 d × d matrices of doubles exceed this machine's memory.
    static let beyondMemory: Int = {
        let memory = Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE)))
        return Int((memory / 64).squareRoot()) + 16
    }()

    /// The dense limit of this machine (below the 32-bit LAPACK limit of 40000 on machines with less
    /// than about 100 GB of memory).
    @Test("A dense d beyond this machine's memory returns OUT_OF_MEMORY naming the limit",
          .enabled(if: EdgeCaseTests.beyondMemory <= 40_000))
    func denseBeyondPhysicalMemory() throws {
        let d = Self.beyondMemory
        var one = [1.0]
        let status = one.withUnsafeMutableBufferPointer {
            sgdnoise_stationary_covariance(d, $0.baseAddress, $0.baseAddress, 0.5, nil, 0, $0.baseAddress)
        }
        #expect(status == .outOfMemory)
        #expect(String(cString: sgdnoise_last_error_message()!).contains("more than this machine's"))
        #expect(one == [1.0])
    }

    @Test("d = 10^6 as a spectrum (diagonal layout) is an O(D) computation that succeeds")
    func diagonalMillion() throws {
        let d = 1_000_000
        let a = (0..<d).map { 0.1 + 0.9 * Double($0) / Double(d) }
        var sigma = [Double](repeating: .nan, count: d)
        var scalars = sgdnoise_prediction()
        scalars.size = MemoryLayout<sgdnoise_prediction>.size
        let status = a.withUnsafeBufferPointer { ap in
            sigma.withUnsafeMutableBufferPointer { sp in
                sgdnoise_label_noise(1, d, ap.baseAddress, 1, 1e-7, nil, 10, 0.9, sp.baseAddress, nil, &scalars)
            }
        }
        #expect(status == .ok, "\(String(cString: sgdnoise_last_error_message()!))")
        #expect(sigma.allSatisfy { $0.isFinite && $0 > 0 })
    }

    @Test("n × d past 2^63, and chains × steps past 2^63, fail cleanly")
    func overflowingProducts() {
        var g = [1.0, 2.0], out = [-7.0, -7.0]
        let status = g.withUnsafeBufferPointer { gp in
            out.withUnsafeMutableBufferPointer { sgdnoise_noise_covariance(Int.max / 2, 4, gp.baseAddress, 1, 0, 2, $0.baseAddress) }
        }
        #expect(status == .outOfMemory && out == [-7, -7])
        let a = [1.0]
        var handle: OpaquePointer? = nil
        #expect(a.withUnsafeBufferPointer { sgdnoise_simulation_create_gaussian(1, $0.baseAddress, nil, 1, nil, &handle) } == .ok)
        defer { sgdnoise_simulation_free(handle) }
        #expect(sgdnoise_simulation_run(handle, Int.max, 1, 1, 0, 0, nil, nil) == .invalidArgument)
        #expect(sgdnoise_simulation_run(handle, 1 << 40, 0, 1 << 30, 0, 0, nil, nil) == .invalidArgument)
        #expect(sgdnoise_simulation_run(handle, 10, 0, 1 << 40, 0, 0, nil, nil) == .outOfMemory)
    }
}

/// Work for the thread sanitizer (`make sanitize`): the simulator's worker threads with a progress
/// callback, the sweep's concurrentPerform, and many threads failing at once through the C ABI.
@Suite("Edge cases: concurrency")
struct ConcurrencyEdgeCaseTests {
    @Test("A simulation on 4 worker threads with progress reports equals the one-thread run")
    func simulationThreads() throws {
        let a = Matrix.diagonal([1, 0.5, 0.25])
        func run(_ threads: Int, progress: ((Int, Int) -> Bool)?) throws -> SimulationResult {
            try simulate(SimulationSpec(data: .gaussian(a: a, u: nil, noiseVariance: 1, inputNoise: nil),
                                        learningRate: .scalar(0.5), batchSize: 4, momentum: 0.3, steps: 20_000,
                                        chains: 4, seed: 9, threads: threads), progress: progress)
        }
        let calls = Synchronization.Atomic<Int>(0)
        let many = try run(4) { _, _ in calls.add(1, ordering: .relaxed); return false }
        let one = try run(1, progress: nil)
        #expect(many.sigma == one.sigma && many.mean == one.mean)
        #expect(calls.load(ordering: .relaxed) >= 1)
    }

    @Test("16 threads fail at once through the C ABI, each reading its own message")
    func threadLocalErrors() {
        let wrong = Synchronization.Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 16) { k in
            for round in 0..<50 {
                let d = -(k * 100 + round + 1)
                var scratch = [0.0]
                let status = scratch.withUnsafeMutableBufferPointer {
                    sgdnoise_stationary_covariance(d, $0.baseAddress, $0.baseAddress, 0.5, nil, 0, $0.baseAddress)
                }
                let spectrum = [1.0, 0.5, 0.25]
                var kappa = [Double](repeating: 0, count: 2)
                let lrs = [0.1, 0.2], sizes = [2, 4], momenta = [0.0, 0.5]
                _ = spectrum.withUnsafeBufferPointer { sp in
                    kappa.withUnsafeMutableBufferPointer { kp in
                        sgdnoise_label_noise_sweep(3, sp.baseAddress, 1, 2, lrs, sizes, momenta, kp.baseAddress, nil, nil, nil)
                    }
                }
                let message = String(cString: sgdnoise_last_error_message()!)
                if status != .invalidArgument || !message.contains("\(d)") {
                    if wrong.add(1, ordering: .relaxed).oldValue == 0 { print("unexpected: \(status) \(message)") }
                }
            }
        }
        #expect(wrong.load(ordering: .relaxed) == 0)
    }
}

/// sgdnoise_continuous_time on a dense d x d A (the other arguments valid).
private func continuousTimeDense(_ d: Int, _ a: UnsafePointer<Double>?) -> sgdnoise_status {
    var out = [0.0]
    return out.withUnsafeMutableBufferPointer { sgdnoise_continuous_time(0, d, a, 1, 0.5, nil, 1, 0, $0.baseAddress) }
}

/// sgdnoise_label_noise on a dense d x d A (the other arguments valid).
private func labelNoiseDense(_ d: Int, _ a: UnsafePointer<Double>?) -> sgdnoise_status {
    var out = [0.0]
    return out.withUnsafeMutableBufferPointer { sgdnoise_label_noise(0, d, a, 1, 0.5, nil, 1, 0, $0.baseAddress, nil, nil) }
}
