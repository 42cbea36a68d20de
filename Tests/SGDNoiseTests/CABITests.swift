import Foundation
import SGDNoise
import SGDNoiseCABI
import Testing
import _SGDNoiseShims

/// The C ABI called from Swift with raw pointers: results, status codes, messages, untouched outputs,
/// the critical learning rate, and thread-local error state.
@Suite("C ABI")
struct CABITests {
    static let sentinel = -12345.678

    static func lastMessage() -> String { String(cString: sgdnoise_last_error_message()!) }

    /// Calls `body` with a pointer to the array, or NULL.
    static func withPointer<T, R>(_ a: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
        guard let a else { return body(nil) }
        return a.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// A 3 × 3 problem: H with eigenvalues 0.5, 1, 2; C SPD.
    static let hessian: [Double] = {
        var rng = SeededGenerator(seed: 61)
        return rng.symmetric(eigenvalues: [0.5, 1, 2]).elements
    }()
    static let noise: [Double] = {
        var rng = SeededGenerator(seed: 62)
        return rng.spd(3, eigenvaluesIn: 0.1, 1).elements
    }()
    static let hMax = 2.0

    static func stationary(
        d: Int = 3, hessian: [Double]? = hessian, noise: [Double]? = noise, lr: Double = 0.5,
        lrMatrix: [Double]? = nil, momentum: Double = 0.5, out: UnsafeMutablePointer<Double>?
    ) -> sgdnoise_status {
        withPointer(hessian) { h in
            withPointer(noise) { c in
                withPointer(lrMatrix) { l in sgdnoise_stationary_covariance(d, h, c, lr, l, momentum, out) }
            }
        }
    }

    /// sgdnoise_stationary_fluctuation with the same defaults as `stationary` (flat_tolerance 0:
    /// the library's default).
    static func fluctuation(
        d: Int = 3, hessian: [Double]? = hessian, noise: [Double]? = noise, lr: Double = 0.5,
        lrMatrix: [Double]? = nil, momentum: Double = 0.5, flatTolerance: Double = 0,
        out: UnsafeMutablePointer<Double>?, eigenvalues: UnsafeMutablePointer<Double>? = nil,
        info: UnsafeMutablePointer<sgdnoise_fluctuation_info>? = nil
    ) -> sgdnoise_status {
        withPointer(hessian) { h in
            withPointer(noise) { c in
                withPointer(lrMatrix) { l in
                    sgdnoise_stationary_fluctuation(d, h, c, lr, l, momentum, flatTolerance, out, eigenvalues, info)
                }
            }
        }
    }

    /// A fluctuation info struct with its size set (and every other field zero).
    static func fluctuationInfo(size: Int = MemoryLayout<sgdnoise_fluctuation_info>.size) -> sgdnoise_fluctuation_info {
        var info = sgdnoise_fluctuation_info()
        info.size = size
        return info
    }

    static let grads: [Double] = NoiseDefinition.randomGradients(samples: 6, dimension: 2, seed: 63).flatMap { $0 }

    static func noiseCall(
        n: Int = 6, d: Int = 2, grads: [Double]? = grads, batch: Int = 2, sampling: CInt = 0, kind: CInt = 0,
        out: UnsafeMutablePointer<Double>?
    ) -> sgdnoise_status {
        withPointer(grads) { sgdnoise_noise_covariance(n, d, $0, batch, sampling, kind, out) }
    }

    static func noiseCallF32(
        n: Int = 6, d: Int = 2, grads: [Float]? = grads.map { Float($0) }, batch: Int = 2, sampling: CInt = 0,
        kind: CInt = 0, out: UnsafeMutablePointer<Double>?
    ) -> sgdnoise_status {
        withPointer(grads) { sgdnoise_noise_covariance_f32(n, d, $0, batch, sampling, kind, out) }
    }

    /// Records a known unstable failure, so that a later call that forgets to record its own
    /// message or to reset the critical rate is caught.
    static func primeWithUnstable() {
        var out = [Double](repeating: 0, count: 9)
        let status = out.withUnsafeMutableBufferPointer { stationary(lr: 10, out: $0.baseAddress) }
        let critical = sgdnoise_last_error_critical_learning_rate()
        #expect(status == .unstable && critical.isFinite, "priming: expected unstable with a finite critical rate, observed \(status), \(critical)")
    }

    // MARK: Success paths

    @Test("sgdnoise_version is the library's semantic version")
    func version() throws {
        let v = String(cString: try #require(sgdnoise_version()))
        #expect(v == SGDNoiseVersion.string, "expected \(SGDNoiseVersion.string), observed \(v)")
        let parts = v.split(separator: ".")
        #expect(parts.count == 3 && parts.allSatisfy { Int($0) != nil }, "expected MAJOR.MINOR.PATCH, observed \(v)")
    }

    @Test("sgdnoise_stationary_covariance solves Theorem 1 (scalar lr and lr · lr_matrix)")
    func stationarySuccess() throws {
        let hm = try Matrix(rows: 3, columns: 3, elements: Self.hessian)
        let cm = try Matrix(rows: 3, columns: 3, elements: Self.noise)
        var rng = SeededGenerator(seed: 64)
        let lambdaShape = rng.spd(3, eigenvaluesIn: 0.3, 1)
        for mu in [0.0, 0.5, 0.9] {
            for (lr, shape) in [(0.9 * 2 * (1 + mu) / Self.hMax, nil as Matrix?), (0.7, lambdaShape)] {
                var out = [Double](repeating: Self.sentinel, count: 9)
                let status = out.withUnsafeMutableBufferPointer {
                    Self.stationary(lr: lr, lrMatrix: shape?.elements, momentum: mu, out: $0.baseAddress)
                }
                #expect(status == .ok && status.rawValue == 0, "μ = \(mu): expected ok, observed \(status): \(Self.lastMessage())")
                let lambda = shape.map { Ref.scale(lr, $0) } ?? Ref.scale(lr, Ref.identity(3))
                let reference = BruteForce.theorem1(hessian: hm, noise: cm, lr: lambda, momentum: mu)
                let observed = try Matrix(rows: 3, columns: 3, elements: out)
                let err = Ref.relativeError(observed, reference.sigma)
                let tol = 2 * reference.budget
                #expect(err <= tol, "μ = \(mu), lr = \(lr): expected \(reference.sigma.elements), observed \(out), error \(err) > \(tol)")
            }
        }
    }

    @Test("sgdnoise_noise_covariance(_f32) match the definition for every kind and sampling")
    func noiseSuccess() throws {
        let rows = (0..<6).map { i in Array(Self.grads[(i * 2)..<(i * 2 + 2)]) }
        let floats = Self.grads.map { Float($0) }
        let widened = (0..<6).map { i in [Double(floats[i * 2]), Double(floats[i * 2 + 1])] }
        for sampling: CInt in [0, 1] {
            for batch in [1, 3, 6] {
                for (precision, data) in [("f64", rows), ("f32", widened)] {
                    let reference = NoiseDefinition.covariance(
                        data, batchSize: batch, sampling: sampling == 0 ? .withReplacement : .withoutReplacement)
                    let label = "\(precision), sampling \(sampling), S = \(batch)"
                    for (kind, count) in [(CInt(0), 4), (1, 2), (2, 1)] {
                        var out = [Double](repeating: Self.sentinel, count: count + 1)
                        let status = out.withUnsafeMutableBufferPointer { o in
                            precision == "f64"
                                ? Self.noiseCall(batch: batch, sampling: sampling, kind: kind, out: o.baseAddress)
                                : Self.noiseCallF32(batch: batch, sampling: sampling, kind: kind, out: o.baseAddress)
                        }
                        #expect(status == .ok, "\(label), kind \(kind): expected ok, observed \(status): \(Self.lastMessage())")
                        #expect(out[count] == Self.sentinel, "\(label), kind \(kind): wrote past \(count) entries")
                        let expected: [Double], bound: [Double]
                        switch kind {
                        case 0: (expected, bound) = (reference.c.elements, reference.bound.elements)
                        case 1: (expected, bound) = (reference.c.diagonalEntries, reference.bound.diagonalEntries)
                        default:
                            let t = reference.c.diagonalEntries.reduce(0, +)
                            (expected, bound) = ([t], [reference.bound.diagonalEntries.reduce(0, +) + 2 * Ref.u * abs(t)])
                        }
                        let worst = NoiseDefinition.worstEntry(observed: Array(out[0..<count]), expected: expected, bound: bound)
                        #expect(
                            worst.excess <= 0,
                            "\(label), kind \(kind): entry \(worst.index): expected \(expected[worst.index]), observed \(out[worst.index]), error \(worst.error)")
                    }
                }
            }
        }
    }

    @Test("sgdnoise_stationary_fluctuation: flat_tolerance 0 is the default; Sigma, eigenvalues and info")
    func fluctuationSuccess() throws {
        var covariance = [Double](repeating: Self.sentinel, count: 9)
        let s1 = covariance.withUnsafeMutableBufferPointer { Self.stationary(out: $0.baseAddress) }
        #expect(s1 == .ok, "stationary_covariance: \(Self.lastMessage())")
        var sigma = [Double](repeating: Self.sentinel, count: 9)
        var eigenvalues = [Double](repeating: Self.sentinel, count: 4)
        var info = Self.fluctuationInfo()
        let s2 = sigma.withUnsafeMutableBufferPointer { o in
            eigenvalues.withUnsafeMutableBufferPointer { e in Self.fluctuation(out: o.baseAddress, eigenvalues: e.baseAddress, info: &info) }
        }
        #expect(s2 == .ok, "stationary_fluctuation: \(Self.lastMessage())")
        #expect(sigma == covariance, "flat_tolerance 0: expected the Sigma of stationary_covariance \(covariance), observed \(sigma)")
        // lr = 0.5 times the Hessian's eigenvalues 0.5, 1, 2, ascending; nothing written past d entries.
        let expected = [0.25, 0.5, 1.0]
        for j in 0..<3 {
            #expect(relativeDifference(eigenvalues[j], expected[j]) <= 1e-13, "eigenvalue \(j): expected \(expected[j]), observed \(eigenvalues[j])")
        }
        #expect(eigenvalues[3] == Self.sentinel, "out_eigenvalues: written past d entries")
        #expect(info.size == MemoryLayout<sgdnoise_fluctuation_info>.size, "info.size changed to \(info.size)")
        #expect(info.flat_directions == 0 && info.flat_direction_noise == 0, "no flat direction expected, observed \(info)")
        let defaultTolerance = 16 * 3 * Double.ulpOfOne
        #expect(info.flat_tolerance == defaultTolerance, "flat_tolerance 0: expected the default 16 d eps = \(defaultTolerance), observed \(info.flat_tolerance)")
        // A given tolerance is reported back as used.
        info = Self.fluctuationInfo()
        let s3 = sigma.withUnsafeMutableBufferPointer { Self.fluctuation(flatTolerance: 1e-6, out: $0.baseAddress, info: &info) }
        #expect(s3 == .ok && info.flat_tolerance == 1e-6, "flat_tolerance 1e-6: status \(s3), info \(info)")
    }

    /// A Hessian at a real minimum whose smallest eigenvalue is round-off below zero (-1e-12) is
    /// not a minimum under the default tolerance (UNSTABLE), and a flat direction under 1e-9: then
    /// Sigma is 0 along it and the noise entering it is reported.
    @Test("sgdnoise_stationary_fluctuation: a round-off negative eigenvalue is flat under a larger flat_tolerance")
    func fluctuationFlatTolerance() throws {
        let hessian: [Double] = [-1e-12, 0, 0, 0, 0.5, 0, 0, 0, 1]
        var sigma = [Double](repeating: Self.sentinel, count: 9)
        var info = Self.fluctuationInfo()
        let strict = sigma.withUnsafeMutableBufferPointer { Self.fluctuation(hessian: hessian, momentum: 0, out: $0.baseAddress, info: &info) }
        #expect(strict == .unstable, "default tolerance: expected unstable, observed \(strict): \(Self.lastMessage())")
        #expect(sigma.allSatisfy { $0 == Self.sentinel } && info.flat_directions == 0, "a failed call wrote its outputs")
        let tolerant = sigma.withUnsafeMutableBufferPointer {
            Self.fluctuation(hessian: hessian, momentum: 0, flatTolerance: 1e-9, out: $0.baseAddress, info: &info)
        }
        #expect(tolerant == .ok, "flat_tolerance 1e-9: expected ok, observed \(tolerant): \(Self.lastMessage())")
        #expect(info.flat_directions == 1 && info.flat_tolerance == 1e-9, "expected one flat direction at tolerance 1e-9, observed \(info)")
        // The noise entering the flat direction e_1, Tr[P L^{1/2} C L^{1/2} P] = lr C_11 (C is SPD, so positive).
        let entering = 0.5 * Self.noise[0]
        #expect(relativeDifference(info.flat_direction_noise, entering) <= 1e-10,
                "flat-direction noise: expected lr C_11 = \(entering), observed \(info.flat_direction_noise)")
        let largest = sigma.map(abs).max() ?? 0
        for j in 0..<3 {
            #expect(abs(sigma[j]) <= 1e-14 * largest && abs(sigma[3 * j]) <= 1e-14 * largest,
                    "Sigma along the flat direction: expected 0, observed row \(Array(sigma[0..<3]))")
        }
        #expect(sigma[4] > 0 && sigma[8] > 0, "Sigma off the flat direction: expected positive diagonal, observed \(sigma)")
    }

    // MARK: Failures

    struct Failure {
        let name: String
        let status: CInt
        let mentions: String
        /// The output buffer's length (0: the case passes NULL for the output).
        let outCount: Int
        let call: (UnsafeMutablePointer<Double>?) -> sgdnoise_status
    }

    static var failures: [Failure] {
        let nonSymmetric: [Double] = { var h = hessian; h[1] += 1e-3; return h }()
        let withNaN: [Double] = { var h = hessian; h[4] = .nan; return h }()
        let indefinite: [Double] = { var rng = SeededGenerator(seed: 65); return rng.symmetric(eigenvalues: [-0.2, 0.5, 1]).elements }()
        let nanGrads: [Double] = { var g = grads; g[5] = .nan; return g }()
        let nanFloats: [Float] = { var g = grads.map { Float($0) }; g[3] = .nan; return g }()
        var list: [Failure] = [
            .init(name: "NULL hessian", status: 1, mentions: "hessian", outCount: 9) { stationary(hessian: nil, out: $0) },
            .init(name: "NULL noise", status: 1, mentions: "noise", outCount: 9) { stationary(noise: nil, out: $0) },
            .init(name: "NULL out_sigma", status: 1, mentions: "out_sigma", outCount: 0) { stationary(out: $0) },
            .init(name: "d = 0", status: 1, mentions: "d must be at least 1", outCount: 9) { stationary(d: 0, out: $0) },
            .init(name: "d = -2", status: 1, mentions: "d must be at least 1", outCount: 9) { stationary(d: -2, out: $0) },
            .init(name: "lr = NaN", status: 1, mentions: "lr", outCount: 9) { stationary(lr: .nan, out: $0) },
            .init(name: "lr = 0", status: 1, mentions: "lr", outCount: 9) { stationary(lr: 0, out: $0) },
            .init(name: "lr = -1", status: 1, mentions: "lr", outCount: 9) { stationary(lr: -1, out: $0) },
            .init(name: "lr = inf", status: 1, mentions: "lr", outCount: 9) { stationary(lr: .infinity, out: $0) },
            .init(name: "momentum = NaN", status: 1, mentions: "momentum", outCount: 9) { stationary(momentum: .nan, out: $0) },
            .init(name: "momentum = 1", status: 1, mentions: "momentum", outCount: 9) { stationary(momentum: 1, out: $0) },
            .init(name: "momentum = -0.5", status: 1, mentions: "momentum", outCount: 9) { stationary(momentum: -0.5, out: $0) },
            .init(name: "NaN in hessian", status: 1, mentions: "hessian", outCount: 9) { stationary(hessian: withNaN, out: $0) },
            .init(name: "NaN in noise", status: 1, mentions: "noise", outCount: 9) { stationary(noise: withNaN, out: $0) },
            .init(name: "NaN in lr_matrix", status: 1, mentions: "lr", outCount: 9) { stationary(lrMatrix: withNaN, out: $0) },
            .init(name: "non-symmetric hessian", status: 2, mentions: "hessian", outCount: 9) { stationary(hessian: nonSymmetric, out: $0) },
            .init(name: "non-symmetric noise", status: 2, mentions: "noise", outCount: 9) { stationary(noise: nonSymmetric, out: $0) },
            .init(name: "indefinite lr_matrix", status: 3, mentions: "positive definite", outCount: 9) {
                stationary(lrMatrix: indefinite, out: $0)
            },
            .init(name: "negative hessian eigenvalue", status: 4, mentions: "negative eigenvalue", outCount: 9) {
                stationary(hessian: indefinite, out: $0)
            },
            .init(name: "flat_tolerance = -1e-3", status: 1, mentions: "flat_tolerance", outCount: 9) {
                fluctuation(flatTolerance: -1e-3, out: $0)
            },
            .init(name: "flat_tolerance = 1", status: 1, mentions: "flat_tolerance", outCount: 9) { fluctuation(flatTolerance: 1, out: $0) },
            .init(name: "flat_tolerance = NaN", status: 1, mentions: "flat_tolerance", outCount: 9) {
                fluctuation(flatTolerance: .nan, out: $0)
            },
            .init(name: "flat_tolerance = inf", status: 1, mentions: "flat_tolerance", outCount: 9) {
                fluctuation(flatTolerance: .infinity, out: $0)
            },
            .init(name: "out_info with .size = 0", status: 1, mentions: "out_info->size", outCount: 9) { out in
                var info = fluctuationInfo(size: 0)
                return fluctuation(out: out, info: &info)
            },
            .init(name: "NULL out_sigma (fluctuation)", status: 1, mentions: "out_sigma", outCount: 0) { fluctuation(out: $0) },
            .init(name: "NaN in hessian (fluctuation)", status: 1, mentions: "hessian", outCount: 9) {
                fluctuation(hessian: withNaN, out: $0)
            },
            .init(name: "NULL grads", status: 1, mentions: "grads", outCount: 4) { noiseCall(grads: nil, out: $0) },
            .init(name: "NULL out", status: 1, mentions: "out", outCount: 0) { noiseCall(out: $0) },
            .init(name: "n = 0", status: 1, mentions: "n must be at least 1", outCount: 4) { noiseCall(n: 0, out: $0) },
            .init(name: "n = -3", status: 1, mentions: "n must be at least 1", outCount: 4) { noiseCall(n: -3, out: $0) },
            .init(name: "d = 0 (noise)", status: 1, mentions: "d must be at least 1", outCount: 4) { noiseCall(d: 0, out: $0) },
            .init(name: "d = -1 (noise)", status: 1, mentions: "d must be at least 1", outCount: 4) { noiseCall(d: -1, out: $0) },
            .init(name: "sampling = 2", status: 1, mentions: "sampling", outCount: 4) { noiseCall(sampling: 2, out: $0) },
            .init(name: "sampling = -1", status: 1, mentions: "sampling", outCount: 4) { noiseCall(sampling: -1, out: $0) },
            .init(name: "kind = 3", status: 1, mentions: "kind", outCount: 4) { noiseCall(kind: 3, out: $0) },
            .init(name: "kind = -1", status: 1, mentions: "kind", outCount: 4) { noiseCall(kind: -1, out: $0) },
            .init(name: "NaN in grads", status: 1, mentions: "grads", outCount: 4) { noiseCall(grads: nanGrads, out: $0) },
            .init(name: "batch_size = 0", status: 1, mentions: "batch_size", outCount: 4) { noiseCall(batch: 0, out: $0) },
            .init(name: "batch_size > n without replacement", status: 1, mentions: "batch_size", outCount: 4) {
                noiseCall(batch: 7, sampling: 1, out: $0)
            },
            .init(name: "f32: NULL grads", status: 1, mentions: "grads", outCount: 4) { noiseCallF32(grads: nil, out: $0) },
            .init(name: "f32: NaN in grads", status: 1, mentions: "grads", outCount: 4) { noiseCallF32(grads: nanFloats, out: $0) },
            .init(name: "f32: n = 0", status: 1, mentions: "n must be at least 1", outCount: 4) { noiseCallF32(n: 0, out: $0) },
            .init(name: "f32: kind = 7", status: 1, mentions: "kind", outCount: 4) { noiseCallF32(kind: 7, out: $0) },
            .init(name: "f32: batch_size = 9 without replacement", status: 1, mentions: "batch_size", outCount: 4) {
                noiseCallF32(batch: 9, sampling: 1, out: $0)
            },
        ]
        // The diagonal and trace kinds validate the same way.
        for kind: CInt in [1, 2] {
            list.append(.init(name: "NaN in grads, kind \(kind)", status: 1, mentions: "grads", outCount: 2) {
                noiseCall(grads: nanGrads, kind: kind, out: $0)
            })
        }
        return list
    }

    @Test("Each failure returns its status, names the argument, leaves the output untouched and resets the critical rate")
    func failures() {
        for failure in Self.failures {
            Self.primeWithUnstable()
            var out = [Double](repeating: Self.sentinel, count: max(failure.outCount, 1))
            let status = out.withUnsafeMutableBufferPointer { failure.outCount == 0 ? failure.call(nil) : failure.call($0.baseAddress) }
            let message = Self.lastMessage()
            #expect(
                status.rawValue == failure.status,
                "\(failure.name): expected status \(failure.status), observed \(status.rawValue) (\(message))")
            #expect(
                message.contains(failure.mentions),
                "\(failure.name): expected the message to mention \"\(failure.mentions)\", observed \"\(message)\"")
            #expect(out.allSatisfy { $0 == Self.sentinel }, "\(failure.name): the output was written: \(out)")
            let critical = sgdnoise_last_error_critical_learning_rate()
            #expect(critical.isNaN, "\(failure.name): expected a NaN critical learning rate, observed \(critical)")
        }
    }

    @Test("An unstable lr returns status 4 with the critical learning rate 2(1+μ)/h_max", arguments: [0.0, 0.5, 0.9])
    func unstableScalar(mu: Double) {
        let critical = 2 * (1 + mu) / Self.hMax
        var out = [Double](repeating: Self.sentinel, count: 9)
        let status = out.withUnsafeMutableBufferPointer { Self.stationary(lr: 1.01 * critical, momentum: mu, out: $0.baseAddress) }
        #expect(status.rawValue == 4, "expected status 4 (unstable), observed \(status.rawValue)")
        #expect(Self.lastMessage().contains("critical learning rate"), "observed message \"\(Self.lastMessage())\"")
        #expect(out.allSatisfy { $0 == Self.sentinel }, "the output was written: \(out)")
        let observed = sgdnoise_last_error_critical_learning_rate()
        let err = relativeDifference(observed, critical)
        #expect(err <= 1e-12, "μ = \(mu): expected \(critical), observed \(observed), error \(err)")
    }

    /// With lr_matrix the learning rate is lr · lr_matrix and stability needs lr · m_max < 2(1+μ),
    /// m_max the largest eigenvalue of lr_matrix^{1/2} H lr_matrix^{1/2}: the critical value of the
    /// caller's `lr` is 2(1+μ)/m_max, whatever lr was passed.
    @Test("With lr_matrix the critical learning rate is in units of lr", arguments: [0.5, 1.0, 2.5])
    func unstableMatrixRate(lrFactor: Double) throws {
        var rng = SeededGenerator(seed: 66)
        let shape = rng.spd(3, eigenvaluesIn: 0.3, 1)
        let hm = try Matrix(rows: 3, columns: 3, elements: Self.hessian)
        let mu = 0.5
        let mMax = Ref.preconditionedEigenvalues(hessian: hm, lr: shape).last!
        let critical = 2 * (1 + mu) / mMax
        // Choose lr_matrix so that lr = lrFactor is 1.3 times beyond the edge.
        let lrMatrix = Ref.scale(1.3 * critical / lrFactor, shape)
        let expected = critical / (1.3 * critical / lrFactor)  // = lrFactor / 1.3
        var out = [Double](repeating: Self.sentinel, count: 9)
        let status = out.withUnsafeMutableBufferPointer {
            Self.stationary(lr: lrFactor, lrMatrix: lrMatrix.elements, momentum: mu, out: $0.baseAddress)
        }
        #expect(status.rawValue == 4, "expected status 4 (unstable), observed \(status.rawValue)")
        let observed = sgdnoise_last_error_critical_learning_rate()
        let err = relativeDifference(observed, expected)
        #expect(err <= 1e-12, "lr = \(lrFactor): expected the critical lr \(expected), observed \(observed), error \(err)")
        #expect(Self.lastMessage().contains("\(observed)"), "the message should state the critical lr: \"\(Self.lastMessage())\"")
        // It is the edge for lr: just below is stable, just above is not.
        var below = [Double](repeating: 0, count: 9)
        let stable = below.withUnsafeMutableBufferPointer {
            Self.stationary(lr: 0.999 * observed, lrMatrix: lrMatrix.elements, momentum: mu, out: $0.baseAddress)
        }
        #expect(stable == .ok, "0.999 × the critical lr should be stable: \(Self.lastMessage())")
        let unstable = below.withUnsafeMutableBufferPointer {
            Self.stationary(lr: 1.001 * observed, lrMatrix: lrMatrix.elements, momentum: mu, out: $0.baseAddress)
        }
        #expect(unstable == .unstable, "1.001 × the critical lr should be unstable")
    }

    /// Two threads fail differently; only after both have failed does each read its last error.
    /// With shared (not thread-local) storage one of them would read the other's message.
    @Test("The last error is thread-local")
    func threadLocalErrors() {
        final class Results: @unchecked Sendable {
            private let lock = NSLock()
            private var values: [Int: (String, Double, sgdnoise_status)] = [:]
            func set(_ k: Int, _ v: (String, Double, sgdnoise_status)) { lock.lock(); values[k] = v; lock.unlock() }
            func get(_ k: Int) -> (String, Double, sgdnoise_status)? { lock.lock(); defer { lock.unlock() }; return values[k] }
        }
        let mu = 0.5
        let critical = 2 * (1 + mu) / Self.hMax
        for round in 0..<20 {
            let results = Results()
            let failed = [DispatchSemaphore(value: 0), DispatchSemaphore(value: 0)]
            let done = DispatchSemaphore(value: 0)
            for k in 0..<2 {
                let thread = Thread {
                    var out = [Double](repeating: 0, count: 9)
                    let status = out.withUnsafeMutableBufferPointer { o in
                        k == 0
                            ? Self.stationary(lr: 1.5 * critical, momentum: mu, out: o.baseAddress)
                            : Self.noiseCall(sampling: 5, out: o.baseAddress)
                    }
                    failed[k].signal()
                    failed[1 - k].wait()  // both threads have failed before either reads
                    results.set(k, (Self.lastMessage(), sgdnoise_last_error_critical_learning_rate(), status))
                    done.signal()
                }
                thread.start()
            }
            done.wait()
            done.wait()
            guard let unstable = results.get(0), let invalid = results.get(1) else {
                Issue.record("round \(round): a thread did not report")
                continue
            }
            #expect(unstable.2 == .unstable && invalid.2 == .invalidArgument, "round \(round): statuses \(unstable.2), \(invalid.2)")
            #expect(unstable.0.contains("critical learning rate"), "round \(round): thread 0 read \"\(unstable.0)\"")
            #expect(relativeDifference(unstable.1, critical) <= 1e-12, "round \(round): thread 0 read critical \(unstable.1), expected \(critical)")
            #expect(invalid.0.contains("sampling"), "round \(round): thread 1 read \"\(invalid.0)\"")
            #expect(invalid.1.isNaN, "round \(round): thread 1 read critical \(invalid.1), expected NaN")
        }
    }
}
