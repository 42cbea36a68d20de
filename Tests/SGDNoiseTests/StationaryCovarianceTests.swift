import SGDNoise
import Testing

/// `stationaryCovariance` against independent solutions of Theorem 1: the brute-force
/// vectorised solve, the augmented (w, m) Stein equation, closed forms, and the residual.
@Suite("Stationary covariance [Thm 1]")
struct StationaryCovarianceTests {
    static let momenta = [0.0, 0.5, 0.9]

    /// Two scalar-rate and two matrix-rate problems per (μ, D), stable by construction at 0.9 of the
    /// edge of stability (λ_max(Λ) h_max = 0.9 · 2(1+μ)).
    static func problems(momentum mu: Double, dimension d: Int, edgeFraction: Double = 0.9) -> [StationaryProblem] {
        (0..<4).map { trial in
            StationaryProblem.random(
                dimension: d, momentum: mu, matrixRate: trial >= 2, edgeFraction: edgeFraction,
                seed: UInt64(10_000 * d + 100 * Int((mu * 10).rounded()) + trial))
        }
    }

    /// Requires a matrix rate that genuinely does not commute with H (for D ≥ 2), so that the test
    /// exercises the Λ^{1/2} change of variables and not a simultaneously diagonal case.
    static func requireNonCommuting(_ p: StationaryProblem) throws {
        guard case .matrix = p.learningRate, p.dimension >= 2 else { return }
        let commutator = Ref.sub(Ref.mul(p.lambda, p.hessian), Ref.mul(p.hessian, p.lambda))
        let relative = Ref.frobenius(commutator) / (Ref.frobenius(p.lambda) * Ref.frobenius(p.hessian))
        try #require(relative > 0.01, "\(p): Λ and H nearly commute (‖[Λ, H]‖ / ‖Λ‖‖H‖ = \(relative))")
    }

    @Test("Σ matches the brute-force D² × D² solve of Theorem 1", arguments: momenta, 1...6)
    func bruteForceTheorem1(mu: Double, d: Int) throws {
        for p in Self.problems(momentum: mu, dimension: d) {
            try Self.requireNonCommuting(p)
            let result = try stationaryCovariance(
                hessian: p.hessian, noise: p.noise, learningRate: p.learningRate, momentum: mu)
            let reference = BruteForce.theorem1(hessian: p.hessian, noise: p.noise, lr: p.lambda, momentum: mu)
            let err = Ref.relativeError(result.sigma, reference.sigma)
            let tol = 2 * reference.budget
            #expect(
                err <= tol,
                "\(p): expected brute-force Σ \(reference.sigma.elements), observed \(result.sigma.elements), error \(err) > \(tol) (κ₁ = \(reference.condition), amplification \(reference.amplification))"
            )
            #expect(result.sigma == result.sigma.transposed, "\(p): Σ is not exactly symmetric")
            #expect(result.flatDirections == 0 && result.flatDirectionNoise == 0, "\(p): no flat direction expected")
        }
    }

    @Test("Σ is the w-block of the stationary covariance of the augmented (w, m) system", arguments: momenta, 1...6)
    func augmentedStein(mu: Double, d: Int) throws {
        for p in Self.problems(momentum: mu, dimension: d) {
            try Self.requireNonCommuting(p)
            let result = try stationaryCovariance(
                hessian: p.hessian, noise: p.noise, learningRate: p.learningRate, momentum: mu)
            let stein = BruteForce.augmentedStein(hessian: p.hessian, noise: p.noise, lr: p.lambda, momentum: mu)
            // The library's own error is budgeted by the conditioning of Theorem 1's operator.
            let libraryBudget = BruteForce.theorem1Budget(hessian: p.hessian, lr: p.lambda, momentum: mu)
            let tol = stein.budget + libraryBudget
            let err = Ref.relativeError(result.sigma, stein.sigma)
            #expect(
                err <= tol,
                "\(p): expected the Stein w-block \(stein.sigma.elements), observed \(result.sigma.elements), error \(err) > \(tol) (Stein budget \(stein.budget), Thm 1 budget \(libraryBudget))"
            )
        }
    }

    /// The eigenvalues reported are those of Λ^{1/2}HΛ^{1/2}. Their absolute error is at most of order
    /// D u ‖H‖‖Λ‖ √κ(Λ) (the square root of Λ amplifies perturbations of Λ by √κ(Λ)); we allow 32 times that.
    @Test("The reported eigenvalues are those of Λ^{1/2} H Λ^{1/2} (checked with Jacobi)", arguments: momenta)
    func preconditionedEigenvalues(mu: Double) throws {
        for d in [1, 3, 6] {
            for p in Self.problems(momentum: mu, dimension: d) {
                let result = try stationaryCovariance(
                    hessian: p.hessian, noise: p.noise, learningRate: p.learningRate, momentum: mu)
                let expected = Ref.preconditionedEigenvalues(hessian: p.hessian, lr: p.lambda)
                let lambdaEigen = Ref.jacobiEigen(p.lambda).values
                let conditionLambda = lambdaEigen.last! / lambdaEigen.first!
                let tol = 32 * Double(d) * Ref.u * Ref.frobenius(p.hessian) * Ref.frobenius(p.lambda)
                    * conditionLambda.squareRoot()
                #expect(result.preconditionedHessianEigenvalues.count == d)
                for (e, o) in zip(expected, result.preconditionedHessianEigenvalues) {
                    #expect(abs(e - o) <= tol, "\(p): expected eigenvalue \(e), observed \(o), error \(abs(e - o)) > \(tol)")
                }
            }
        }
    }

    /// Residual of Theorem 1 for the library's Σ, both with `stationaryResidual` and with the
    /// independent plain-loop evaluation. Evaluating the left side rounds each of its terms, so no Σ
    /// can have a residual much below u · Σ‖term‖ / ‖ΛCΛ‖ (`roundingFloor`); the cases here
    /// (half-way to the edge of stability) are required to have that floor at least 16 times below
    /// 1e-12, so that the 1e-12 target is meaningful and not a matter of luck.
    @Test("Theorem 1 residual ≤ 1e-12 (stationaryResidual and an independent evaluation)", arguments: momenta, [1, 2, 4, 6])
    func residual(mu: Double, d: Int) throws {
        for p in Self.problems(momentum: mu, dimension: d, edgeFraction: 0.5) {
            let result = try stationaryCovariance(
                hessian: p.hessian, noise: p.noise, learningRate: p.learningRate, momentum: mu)
            let own = BruteForce.theorem1Residual(
                hessian: p.hessian, noise: p.noise, lr: p.lambda, momentum: mu, sigma: result.sigma)
            try #require(
                16 * own.roundingFloor <= 1e-12,
                "\(p): the terms of Theorem 1 cancel too much for a 1e-12 residual (floor \(own.roundingFloor))")
            let library = stationaryResidual(
                hessian: p.hessian, noise: p.noise, learningRate: p.learningRate, momentum: mu, sigma: result.sigma)
            #expect(library <= 1e-12, "\(p): expected stationaryResidual ≤ 1e-12, observed \(library)")
            #expect(own.relative <= 1e-12, "\(p): expected an independent residual ≤ 1e-12, observed \(own.relative)")
        }
    }

    /// Near the edge of stability with μ = 0.9, the terms of Theorem 1 are hundreds to thousands of
    /// times ΛCΛ (c₁ ≈ c₂ ≈ 5–10 against 1 − μ = 0.1) and cancel: the residual is then bounded by the
    /// rounding floor of its evaluation (times 8·4D for products of D-term sums), which can exceed
    /// 1e-12.
    @Test("Near the edge with μ = 0.9 the residual is at the rounding floor of the equation")
    func residualNearEdge() throws {
        for d in [2, 4, 6] {
            for p in Self.problems(momentum: 0.9, dimension: d, edgeFraction: 0.95) {
                let result = try stationaryCovariance(
                    hessian: p.hessian, noise: p.noise, learningRate: p.learningRate, momentum: 0.9)
                let own = BruteForce.theorem1Residual(
                    hessian: p.hessian, noise: p.noise, lr: p.lambda, momentum: 0.9, sigma: result.sigma)
                let tol = 32 * Double(d) * own.roundingFloor
                let library = stationaryResidual(
                    hessian: p.hessian, noise: p.noise, learningRate: p.learningRate, momentum: 0.9, sigma: result.sigma)
                #expect(library <= tol, "\(p): expected stationaryResidual ≤ \(tol), observed \(library)")
                #expect(own.relative <= tol, "\(p): expected an independent residual ≤ \(tol), observed \(own.relative)")
            }
        }
    }

    /// `stationaryResidual` is not vacuous: a Σ off by a relative 1e-6 has a residual of about 1e-6.
    @Test("stationaryResidual detects a perturbed Σ")
    func residualDetectsErrors() throws {
        for p in Self.problems(momentum: 0.5, dimension: 4) {
            let result = try stationaryCovariance(
                hessian: p.hessian, noise: p.noise, learningRate: p.learningRate, momentum: 0.5)
            let perturbed = Ref.scale(1 + 1e-6, result.sigma)
            let r = stationaryResidual(
                hessian: p.hessian, noise: p.noise, learningRate: p.learningRate, momentum: 0.5, sigma: perturbed)
            // LHS is linear in Σ: LHS((1+ε)Σ) − ΛCΛ = ε ΛCΛ, so the relative residual is ε/(1+ε).
            #expect(abs(r - 1e-6) <= 1e-9, "\(p): expected residual 1e-6 for a 1e-6 perturbation, observed \(r)")
        }
    }

    /// μ = 0, Λ = λI and C = (σ²/S) H (the discrete-time Hessian approximation of Liu et al. 2021,
    /// docs/theory.md §4): λH(2I − λH)Σ = λ²(σ²/S)H, so Σ = λ(σ²/S)(2I − λH)⁻¹.
    @Test("μ = 0 and C ∝ H: Σ = λ(σ²/S)(2I − λH)⁻¹", arguments: [1, 2, 3, 6])
    func closedFormHessianNoise(d: Int) throws {
        var rng = SeededGenerator(seed: UInt64(500 + d))
        let hEigen = rng.uniformArray(d, 0.1, 2.5)
        let h = rng.symmetric(eigenvalues: hEigen)
        let noiseVariance = 0.7, batch = 16.0
        let c = Ref.scale(noiseVariance / batch, h)
        for fraction in [0.2, 0.6, 0.95] {
            let lambda = fraction * 2 / hEigen.max()!
            let g = Ref.sub(Ref.scale(2, Ref.identity(d)), Ref.scale(lambda, h))
            let expected = Ref.scale(lambda * noiseVariance / batch, Ref.inverse(g))
            let result = try stationaryCovariance(hessian: h, noise: c, learningRate: .scalar(lambda))
            let libraryBudget = BruteForce.theorem1Budget(hessian: h, lr: Ref.scale(lambda, Ref.identity(d)), momentum: 0)
            let tol = libraryBudget + solveBudget(size: d, condition: Ref.condition1(g))
            let err = Ref.relativeError(result.sigma, expected)
            #expect(
                err <= tol,
                "D = \(d), λh_max = \(2 * fraction): expected \(expected.elements), observed \(result.sigma.elements), error \(err) > \(tol)"
            )
        }
    }

    /// D = 1: Theorem 1 reads σ [2(1−μ)λh − (c₁ − 2c₂)λ²h²] = λ²c, and
    /// c₁ − 2c₂ = (1 − μ)²/(1 − μ²) = (1−μ)/(1+μ), so
    ///
    ///     σ = λc(1+μ) / ((1−μ) h (2(1+μ) − λh)).
    ///
    /// The library forms d = 2(1−μ)m − c₁m² + 2c₂m² (m = λh), whose terms cancel near the edge: its
    /// rounding error is about u·(2(1−μ)m + c₁m² + 2c₂m²)/d relative; we allow 16 times that plus
    /// 16u for the few operations of the closed form.
    @Test("D = 1 closed form with momentum", arguments: momenta)
    func scalarClosedForm(mu: Double) throws {
        let c1 = (1 + mu * mu) / (1 - mu * mu), c2 = mu / (1 - mu * mu)
        for (h, fraction, c) in [(0.3, 0.1, 1.0), (1.7, 0.5, 0.02), (2.5, 0.9, 3.0), (0.01, 0.99, 1e-4)] {
            let lambda = fraction * 2 * (1 + mu) / h
            let expected = lambda * c * (1 + mu) / ((1 - mu) * h * (2 * (1 + mu) - lambda * h))
            let result = try stationaryCovariance(
                hessian: Ref.matrix([[h]]), noise: Ref.matrix([[c]]), learningRate: .scalar(lambda), momentum: mu)
            let m = lambda * h
            let magnitude = 2 * (1 - mu) * m + c1 * m * m + 2 * c2 * m * m
            let denominator = (1 - mu) * m * (2 - m / (1 + mu))
            let tol = 16 * Ref.u * (magnitude / denominator + 1)
            let err = relativeDifference(result.sigma[0, 0], expected)
            #expect(
                err <= tol,
                "h = \(h), λ = \(lambda), c = \(c), μ = \(mu): expected \(expected), observed \(result.sigma[0, 0]), error \(err) > \(tol)"
            )
            let mErr = relativeDifference(result.preconditionedHessianEigenvalues[0], m)
            #expect(mErr <= 4 * Ref.u, "expected eigenvalue λh = \(m), observed \(result.preconditionedHessianEigenvalues[0])")
        }
    }

    /// A scalar rate and the same rate as the matrix λI describe the same dynamics.
    @Test("Scalar λ and matrix λI agree", arguments: momenta)
    func scalarEqualsMatrixRate(mu: Double) throws {
        for p in Self.problems(momentum: mu, dimension: 5) {
            guard case .scalar(let l) = p.learningRate else { continue }
            let scalar = try stationaryCovariance(hessian: p.hessian, noise: p.noise, learningRate: p.learningRate, momentum: mu)
            let matrix = try stationaryCovariance(
                hessian: p.hessian, noise: p.noise, learningRate: .matrix(Ref.scale(l, Ref.identity(5))), momentum: mu)
            let tol = 2 * BruteForce.theorem1Budget(hessian: p.hessian, lr: p.lambda, momentum: mu)
            let err = Ref.relativeError(matrix.sigma, scalar.sigma)
            #expect(err <= tol, "\(p): expected the scalar-rate Σ, observed error \(err) > \(tol)")
        }
    }
}
