import SGDNoise
import Testing

/// Stability and input validation of `stationaryCovariance`: every bad input throws its own error
/// case, with a message naming the argument, and `unstable` carries the critical learning rate.
@Suite("Stationary covariance: stability and validation")
struct StationaryValidationTests {
    /// A 4 × 4 Hessian with known eigenvalues 0.3, 0.7, 1.1, 1.6 and a noise covariance.
    static func hessianAndNoise(seed: UInt64 = 1) -> (h: Matrix, c: Matrix, hMax: Double) {
        var rng = SeededGenerator(seed: seed)
        let h = rng.symmetric(eigenvalues: [0.3, 0.7, 1.1, 1.6])
        return (h, rng.spd(4, eigenvaluesIn: 0.1, 1), 1.6)
    }

    @Test("λ above 2(1+μ)/h_max throws unstable with criticalLearningRate = 2(1+μ)/h_max", arguments: [0.0, 0.5, 0.9])
    func unstableScalarRate(mu: Double) throws {
        let (h, c, hMax) = Self.hessianAndNoise()
        let critical = 2 * (1 + mu) / hMax
        for factor in [1.0001, 1.5, 10] {
            let error = expectError(.unstable, mentioning: "critical learning rate") {
                try stationaryCovariance(hessian: h, noise: c, learningRate: .scalar(factor * critical), momentum: mu)
            }
            let observed = try #require(error?.criticalLearningRateIfUnstable, "unstable must carry the critical rate")
            let err = relativeDifference(observed, critical)
            #expect(err <= 1e-12, "μ = \(mu), λ = \(factor)·λ*: expected λ* = \(critical), observed \(observed), error \(err)")
        }
        // Just below the edge a stationary Σ exists, with a positive diagonal.
        let below = try stationaryCovariance(hessian: h, noise: c, learningRate: .scalar(0.9999 * critical), momentum: mu)
        #expect(below.sigma.isFinite && below.sigma.diagonalEntries.allSatisfy { $0 > 0 }, "expected a stable Σ below λ*")
    }

    /// With a matrix rate Λ the critical value is the largest stable scale s of sΛ:
    /// s* = 2(1+μ)/m_max, m_max the largest eigenvalue of Λ^{1/2}HΛ^{1/2} (here from Jacobi).
    @Test("A matrix rate beyond the edge reports the critical scale 2(1+μ)/m_max", arguments: [0.0, 0.5, 0.9])
    func unstableMatrixRate(mu: Double) throws {
        let (h, c, _) = Self.hessianAndNoise()
        var rng = SeededGenerator(seed: 77)
        let base = rng.spd(4, eigenvaluesIn: 0.2, 1)
        let mMaxBase = Ref.preconditionedEigenvalues(hessian: h, lr: base).last!
        let lambda = Ref.scale(1.2 * 2 * (1 + mu) / mMaxBase, base)
        let mMax = Ref.preconditionedEigenvalues(hessian: h, lr: lambda).last!
        let expected = 2 * (1 + mu) / mMax
        let error = expectError(.unstable, mentioning: "critical") {
            try stationaryCovariance(hessian: h, noise: c, learningRate: .matrix(lambda), momentum: mu)
        }
        let observed = try #require(error?.criticalLearningRateIfUnstable)
        let err = relativeDifference(observed, expected)
        #expect(err <= 1e-12, "μ = \(mu): expected s* = \(expected), observed \(observed), error \(err)")
        // The reported scale is the edge: slightly below it is stable, slightly above it is not.
        _ = try stationaryCovariance(
            hessian: h, noise: c, learningRate: .matrix(Ref.scale(0.999 * observed, lambda)), momentum: mu)
        expectError(.unstable, mentioning: "critical") {
            try stationaryCovariance(hessian: h, noise: c, learningRate: .matrix(Ref.scale(1.001 * observed, lambda)), momentum: mu)
        }
    }

    @Test("A negative Hessian eigenvalue throws unstable with no critical rate")
    func negativeEigenvalue() throws {
        var rng = SeededGenerator(seed: 9)
        let h = rng.symmetric(eigenvalues: [-0.3, 0.5, 1.0])
        let c = rng.spd(3, eigenvaluesIn: 0.1, 1)
        let rates: [LearningRate] = [.scalar(0.1), .scalar(0.5), .scalar(100), .matrix(rng.spd(3, eigenvaluesIn: 0.1, 0.5))]
        for rate in rates {
            for mu in [0.0, 0.9] {
                let error = expectError(.unstable, mentioning: "negative eigenvalue") {
                    try stationaryCovariance(hessian: h, noise: c, learningRate: rate, momentum: mu)
                }
                if let error {
                    #expect(
                        error.criticalLearningRateIfUnstable == nil,
                        "\(rate), μ = \(mu): expected no critical rate, observed \(String(describing: error.criticalLearningRateIfUnstable))")
                }
            }
        }
    }

    @Test("Non-symmetric H, C or Λ throws notSymmetric; within the 1e-10 tolerance it is accepted")
    func notSymmetric() throws {
        let (h, c, _) = Self.hessianAndNoise()
        func skewed(_ m: Matrix, by relative: Double) -> Matrix {
            var s = m
            s[0, 2] += relative * m.maxAbs
            return s
        }
        expectError(.notSymmetric, mentioning: "hessian") {
            try stationaryCovariance(hessian: skewed(h, by: 1e-6), noise: c, learningRate: .scalar(0.5))
        }
        expectError(.notSymmetric, mentioning: "noise") {
            try stationaryCovariance(hessian: h, noise: skewed(c, by: 1e-6), learningRate: .scalar(0.5))
        }
        expectError(.notSymmetric, mentioning: "lr") {
            try stationaryCovariance(hessian: h, noise: c, learningRate: .matrix(skewed(Ref.scale(0.5, Ref.identity(4)), by: 1e-6)))
        }
        // An asymmetry of 1e-12 relative is below the documented tolerance: accepted.
        let nearly = try stationaryCovariance(hessian: skewed(h, by: 1e-12), noise: skewed(c, by: 1e-12), learningRate: .scalar(0.5))
        #expect(nearly.sigma.isFinite)
    }

    @Test("A learning-rate matrix that is not positive definite throws notPositiveDefinite")
    func notPositiveDefinite() throws {
        let (h, c, _) = Self.hessianAndNoise()
        var rng = SeededGenerator(seed: 3)
        let indefinite = rng.symmetric(eigenvalues: [-0.1, 0.2, 0.5, 1.0])
        let singular = Ref.diagonal([0, 0.2, 0.5, 1.0])
        let negative = Ref.scale(-0.5, Ref.identity(4))
        for lambda in [indefinite, singular, negative] {
            expectError(.notPositiveDefinite, mentioning: "positive definite") {
                try stationaryCovariance(hessian: h, noise: c, learningRate: .matrix(lambda))
            }
        }
    }

    @Test("Momentum outside [0, 1) or not finite throws invalidArgument", arguments: [1.0, 1.5, -0.1, -1e-300, .nan, .infinity])
    func invalidMomentum(mu: Double) {
        let (h, c, _) = Self.hessianAndNoise()
        expectError(.invalidArgument, mentioning: "momentum") {
            try stationaryCovariance(hessian: h, noise: c, learningRate: .scalar(0.1), momentum: mu)
        }
    }

    @Test("A scalar rate that is not finite and positive throws invalidArgument", arguments: [0.0, -0.5, .nan, .infinity])
    func invalidScalarRate(lambda: Double) {
        let (h, c, _) = Self.hessianAndNoise()
        expectError(.invalidArgument, mentioning: "lr") {
            try stationaryCovariance(hessian: h, noise: c, learningRate: .scalar(lambda))
        }
    }

    @Test("NaN or infinite entries throw invalidArgument naming the matrix")
    func nonFiniteEntries() {
        let (h, c, _) = Self.hessianAndNoise()
        for bad in [Double.nan, .infinity, -.infinity] {
            var hBad = h
            hBad[1, 1] = bad
            var cBad = c
            cBad[2, 3] = bad
            cBad[3, 2] = bad
            var lBad = Ref.scale(0.3, Ref.identity(4))
            lBad[0, 0] = bad
            expectError(.invalidArgument, mentioning: "hessian") {
                try stationaryCovariance(hessian: hBad, noise: c, learningRate: .scalar(0.1))
            }
            expectError(.invalidArgument, mentioning: "noise") {
                try stationaryCovariance(hessian: h, noise: cBad, learningRate: .scalar(0.1))
            }
            expectError(.invalidArgument, mentioning: "lr") {
                try stationaryCovariance(hessian: h, noise: c, learningRate: .matrix(lBad))
            }
        }
    }

    @Test("Shape errors throw invalidArgument naming the matrix")
    func shapes() {
        let (h, c, _) = Self.hessianAndNoise()
        let c3 = Ref.identity(3)
        let rectangular = Ref.zeros(3, 4)
        let empty = Ref.zeros(0, 0)
        expectError(.invalidArgument, mentioning: "noise") {
            try stationaryCovariance(hessian: h, noise: c3, learningRate: .scalar(0.1))
        }
        expectError(.invalidArgument, mentioning: "hessian") {
            try stationaryCovariance(hessian: rectangular, noise: c, learningRate: .scalar(0.1))
        }
        expectError(.invalidArgument, mentioning: "hessian") {
            try stationaryCovariance(hessian: empty, noise: empty, learningRate: .scalar(0.1))
        }
        expectError(.invalidArgument, mentioning: "lr") {
            try stationaryCovariance(hessian: h, noise: c, learningRate: .matrix(Ref.identity(3)))
        }
    }
}
