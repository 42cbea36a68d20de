@_spi(CABI) import SGDNoise
import SGDNoiseCABI
import Testing

/// One contract, two faces: the same bad inputs through the Swift core and through the C ABI give
/// the same kind of error and the same structured data (the critical learning rate as a value),
/// so the C layer holds no rule the core lacks. python/tests/test_contract.py drives the same
/// inputs through Python and C.
@Suite("Contract: Swift and C agree")
struct ContractTests {
    /// The C status of a core error.
    static func status(_ error: SGDNoiseError) -> sgdnoise_status {
        switch error {
        case .invalidArgument: return .invalidArgument
        case .notSymmetric: return .notSymmetric
        case .notPositiveDefinite: return .notPositiveDefinite
        case .unstable: return .unstable
        case .numericalFailure: return .numericalFailure
        case .outOfMemory: return .outOfMemory
        case .cancelled: return .cancelled
        }
    }

    /// The error the Swift core throws for `body` (nil when it succeeds).
    static func swiftError(_ body: () throws -> Void) -> SGDNoiseError? {
        do {
            try body()
            return nil
        } catch let e as SGDNoiseError {
            return e
        } catch {
            Issue.record("not an SGDNoiseError: \(error)")
            return nil
        }
    }

    /// A label-noise call on a spectrum through both faces.
    static func labelNoiseBoth(
        spectrum: [Double], noiseVariance: Double, lr: Double, batchSize: Int, momentum: Double
    ) -> (swift: SGDNoiseError?, c: sgdnoise_status, cCritical: Double) {
        let swift = swiftError {
            _ = try labelNoise(a: .diagonal(spectrum), noiseVariance: noiseVariance, learningRate: .scalar(lr),
                               batchSize: batchSize, momentum: momentum)
        }
        var sigma = [Double](repeating: 0, count: spectrum.count)
        let c = spectrum.withUnsafeBufferPointer { a in
            sgdnoise_label_noise(sgdnoise_layout.diagonal.rawValue, spectrum.count, a.baseAddress, noiseVariance, lr, nil,
                                 batchSize, momentum, &sigma, nil, nil)
        }
        return (swift, c, sgdnoise_last_error_critical_learning_rate())
    }

    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let spectrum: [Double]
        let noiseVariance: Double
        let lr: Double
        let batchSize: Int
        let momentum: Double
        let expectedCode: CInt
        var expected: sgdnoise_status { sgdnoise_status(rawValue: expectedCode)! }
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "batch size 0", spectrum: [1, 0.5], noiseVariance: 1, lr: 0.5, batchSize: 0, momentum: 0, expectedCode: sgdnoise_status.invalidArgument.rawValue),
        Case(name: "momentum 1", spectrum: [1, 0.5], noiseVariance: 1, lr: 0.5, batchSize: 4, momentum: 1, expectedCode: sgdnoise_status.invalidArgument.rawValue),
        Case(name: "negative momentum", spectrum: [1, 0.5], noiseVariance: 1, lr: 0.5, batchSize: 4, momentum: -0.1, expectedCode: sgdnoise_status.invalidArgument.rawValue),
        Case(name: "NaN noise variance", spectrum: [1, 0.5], noiseVariance: .nan, lr: 0.5, batchSize: 4, momentum: 0, expectedCode: sgdnoise_status.invalidArgument.rawValue),
        Case(name: "zero learning rate", spectrum: [1, 0.5], noiseVariance: 1, lr: 0, batchSize: 4, momentum: 0, expectedCode: sgdnoise_status.invalidArgument.rawValue),
        Case(name: "NaN in the spectrum", spectrum: [1, .nan], noiseVariance: 1, lr: 0.5, batchSize: 4, momentum: 0, expectedCode: sgdnoise_status.invalidArgument.rawValue),
        Case(name: "negative eigenvalue of A", spectrum: [1, -0.5], noiseVariance: 1, lr: 0.5, batchSize: 4, momentum: 0, expectedCode: sgdnoise_status.invalidArgument.rawValue),
        Case(name: "above the critical learning rate", spectrum: [1, 0.5], noiseVariance: 1, lr: 1.9, batchSize: 1, momentum: 0, expectedCode: sgdnoise_status.unstable.rawValue),
        Case(name: "above it with momentum", spectrum: [1, 0.5], noiseVariance: 1, lr: 3.0, batchSize: 10, momentum: 0.5, expectedCode: sgdnoise_status.unstable.rawValue),
        // The spectrum path used to return a non-finite Sigma to Swift callers (the check lived in C).
        Case(name: "overflowing scale", spectrum: [1e-300, 1e-300], noiseVariance: 1e308, lr: 1e300, batchSize: 100, momentum: 0, expectedCode: sgdnoise_status.numericalFailure.rawValue),
    ]

    @Test("the same kind of error and the same critical learning rate", arguments: cases)
    func sameError(_ c: Case) throws {
        let r = Self.labelNoiseBoth(spectrum: c.spectrum, noiseVariance: c.noiseVariance, lr: c.lr,
                                    batchSize: c.batchSize, momentum: c.momentum)
        let swift = try #require(r.swift, "Swift accepted \(c.name)")
        #expect(Self.status(swift) == c.expected, "Swift: \(swift)")
        #expect(r.c == c.expected, "C: \(r.c)")
        if c.expected == .unstable {
            let critical = try #require(swift.criticalLearningRate)
            #expect(critical == r.cCritical)
            // And it is the model's own critical learning rate, computed by a third route.
            let direct = try criticalLearningRate(a: .diagonal(c.spectrum), batchSize: c.batchSize, momentum: c.momentum)
            #expect(abs(critical - direct) <= 1e-12 * direct)
            #expect(c.lr > direct)
        } else {
            #expect(swift.criticalLearningRate == nil)
            #expect(r.cCritical.isNaN)
        }
    }

    /// A matrix learning rate: the core reports λ* as the largest stable multiple c of the matrix
    /// it was given; C, whose rate is lr · lr_matrix, reports lr · c — as a value, not parsed.
    @Test("critical learning rate of a matrix learning rate, in each face's units")
    func matrixLearningRateUnits() throws {
        let h: [Double] = [1, 0, 0, 0.5], noise: [Double] = [0.02, 0, 0, 0.01], m: [Double] = [1, 0, 0, 2]
        let lr = 3.0
        let swift = try #require(Self.swiftError {
            _ = try stationaryCovariance(hessian: Matrix(rows: 2, columns: 2, elements: h),
                                         noise: Matrix(rows: 2, columns: 2, elements: noise),
                                         learningRate: .matrix(Matrix(rows: 2, columns: 2, elements: m.map { lr * $0 })))
        })
        let scale = try #require(swift.criticalLearningRate)
        var out = [Double](repeating: 0, count: 4)
        let status = sgdnoise_stationary_covariance(2, h, noise, lr, m, 0, &out)
        #expect(status == .unstable)
        let cCritical = sgdnoise_last_error_critical_learning_rate()
        #expect(abs(cCritical - lr * scale) <= 1e-14 * cCritical)
        // Theorem 1's edge: lr · max eig(M^{1/2} H M^{1/2}) = 2, here max(1·1, 2·0.5) = 1.
        #expect(abs(cCritical - 2) <= 1e-12)
        #expect(out == [0, 0, 0, 0])
    }

    /// NaN gradients with a given mean: classified by the core (invalid argument), in Swift and C.
    @Test("NaN gradients are an invalid argument in both faces")
    func nanGradients() throws {
        let grads: [Double] = [1, 2, .nan, 4, 5, 6]
        let mean: [Double] = [3, 4]
        let v: [Double] = [1, 0]
        var swiftOut = [Double](repeating: -1, count: 2)
        let swift = Self.swiftError {
            try grads.withUnsafeBufferPointer { g in
                try mean.withUnsafeBufferPointer { mb in
                    try v.withUnsafeBufferPointer { vb in
                        try swiftOut.withUnsafeMutableBufferPointer { ob in
                            try NoiseOperator<Double>.apply(gradients: g, rows: 3, columns: 2, mean: mb, factor: 1,
                                                           vectors: vb, count: 1, into: ob)
                        }
                    }
                }
            }
        }
        #expect(swift.map(Self.status) == .invalidArgument)
        #expect(swiftOut == [-1, -1])
        var out = [Double](repeating: -1, count: 2)
        #expect(sgdnoise_noise_operator_apply(3, 2, grads, mean, 1, 0, 1, v, &out) == .invalidArgument)
        #expect(out == [-1, -1])
    }
}
