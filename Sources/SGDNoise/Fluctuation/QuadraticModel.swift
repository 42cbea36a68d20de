/// The Σ-independent part C₀ of a multiplicative noise model.
enum BaseNoise {
    /// C₀ = c · M.
    case scaledCoupling(Double)
    /// C₀ = c · M + v vᵀ.
    case scaledCouplingPlusRankOne(Double, [Double])
}

/// A quadratic loss with multiplicative noise: the engine behind every closed form of
/// docs/theory.md §4.
///
/// Hessian H, coupling matrix M (nil: M = H), noise C(Σ) = (1/S)(β₁MΣM + β₂Tr[MΣ]M) + C₀,
/// learning rate Λ and momentum μ. `solve()` works in the eigenbasis of H̃ = Λ^{1/2}HΛ^{1/2}
/// (`DiagonalStationarySystem`) when M̃ = Λ^{1/2}MΛ^{1/2} commutes with H̃ — always when M = H —
/// at the cost of one eigendecomposition and one or two SYRKs; with spectra (diagonal H, M and Λ)
/// in O(D). When M̃ does not commute with H̃ it falls back to `IterativeStationarySolver`.
struct QuadraticModel {
    var hessian: SymmetricOperator
    var coupling: SymmetricOperator?
    var noise: MultiplicativeNoise
    var base: BaseNoise
    var learningRate: LearningRate
    var momentum: Double
    /// The user's name for H in messages ("A", "A_hat", …).
    var hessianName = "hessian"
    /// Whether H is a covariance (a negative eigenvalue is invalid input rather than instability).
    var hessianIsCovariance = false

    /// What `solve()` returns.
    struct Solution {
        /// Σ (dense, or its diagonal in spectrum mode).
        var sigma: SymmetricOperator
        /// C(Σ), the noise at stationarity (same representation).
        var noise: SymmetricOperator
        /// τ = Tr[MΣ].
        var tau: Double
        /// T = Σ m′²/e (nil on the iterative path).
        var coupling: Double?
        /// The learning rate's scalar factor λ (1 for a matrix).
        var lrScale: Double
        /// The critical learning rate (λ* for a scalar λ, the largest stable multiple for a matrix).
        var criticalLearningRate: Double?
        /// Noise power entering flat directions.
        var flatNoise: Double
    }

    var lrScale: Double {
        if case .scalar(let l) = learningRate { return l }
        return 1
    }

    /// The spectra, the learning-rate diagonal and the multiplicities (nil: one per entry) when
    /// everything is diagonal: H a spectrum (`.diagonal`, or `.weightedSpectrum` whose nodes stand
    /// for ω_l directions each), M a spectrum on the same entries, Λ a scalar or a diagonal.
    private var spectra: (h: [Double], hp: [Double], l: [Double], w: [Double]?)? {
        guard let h = hessian.spectrumEntries else { return nil }
        var hp = h
        if let coupling {
            guard let v = coupling.spectrumEntries else { return nil }
            hp = v
        }
        switch learningRate {
        case .scalar(let l): return (h, hp, [Double](repeating: l, count: h.count), hessian.multiplicities)
        case .diagonal(let l): return (h, hp, l, hessian.multiplicities)
        case .matrix: return nil
        }
    }

    func validate() throws {
        try hessian.validate(hessianName, weighted: true)
        let d = hessian.dimension
        try coupling?.validate("coupling", size: d, weighted: true)
        if let w = hessian.multiplicities ?? coupling?.multiplicities {
            // Weights are read from H: M must be a spectrum on the same nodes, Λ a scalar or a diagonal.
            guard coupling?.isSpectrum ?? true, coupling?.multiplicities.map({ $0 == w }) ?? true,
                  hessian.multiplicities == w else {
                throw SGDNoiseError.invalidArgument(
                    "\(hessianName): a weighted spectrum needs every other operator of the model given on the same nodes with the same weights")
            }
            try hessian.requireNodewise(learningRate)
            guard rankOne == nil else {
                throw SGDNoiseError.invalidArgument("\(hessianName): a weighted spectrum cannot carry a rank-one noise term")
            }
        }
        try noise.validate()
        try Validation.momentum(momentum)
        switch learningRate {
        case .scalar(let l):
            guard l.isFinite, l > 0 else { throw SGDNoiseError.invalidArgument("lr must be a finite positive number, got \(l)") }
        case .diagonal(let v):
            guard v.count == d else { throw SGDNoiseError.invalidArgument("lr must have \(d) diagonal entries, got \(v.count)") }
            guard v.allSatisfy({ $0.isFinite }) else {
                throw SGDNoiseError.invalidArgument("lr: every diagonal entry must be finite")
            }
            guard v.allSatisfy({ $0 > 0 }) else {
                throw SGDNoiseError.notPositiveDefinite("lr: every diagonal entry must be positive")
            }
        case .matrix(let m):
            try m.requireSymmetric("lr", size: d)
        }
        if case .scaledCouplingPlusRankOne(let c, let v) = base {
            guard c.isFinite, v.count == d, v.allSatisfy({ $0.isFinite }) else {
                throw SGDNoiseError.invalidArgument("base noise: non-finite or mis-sized")
            }
        }
    }

    /// This model with H called `name` in messages, and treated as a covariance when `covariance`.
    func named(_ name: String, covariance: Bool) -> QuadraticModel {
        var copy = self
        copy.hessianName = name
        copy.hessianIsCovariance = covariance
        return copy
    }

    private func diagonalSystem(m: [Double], mPrime: [Double], weights: [Double]? = nil) throws -> DiagonalStationarySystem {
        var system = try DiagonalStationarySystem(m: m, mPrime: mPrime, weights: weights, noise: noise, momentum: momentum)
        system.covarianceName = hessianIsCovariance ? hessianName : nil
        return system
    }

    func solve() throws -> Solution {
        try validate()
        if let (h, hp, l, w) = spectra { return try solveSpectra(h: h, hp: hp, l: l, weights: w) }
        return try solveDense()
    }

    private var baseScale: Double {
        switch base {
        case .scaledCoupling(let c), .scaledCouplingPlusRankOne(let c, _): return c
        }
    }

    private var rankOne: [Double]? {
        if case .scaledCouplingPlusRankOne(_, let v) = base { return v }
        return nil
    }

    // MARK: Spectra, O(D)

    private func solveSpectra(h: [Double], hp: [Double], l: [Double], weights: [Double]?) throws -> Solution {
        let n = h.count
        let m = (0..<n).map { l[$0] * h[$0] }
        let mp = (0..<n).map { l[$0] * hp[$0] }
        var c = mp.map { baseScale * $0 }
        if let v = rankOne {
            for i in 0..<n { c[i] += l[i] * v[i] * v[i] }
        }
        let system = try diagonalSystem(m: m, mPrime: mp, weights: weights)
        let solution = try system.solve(baseNoiseDiagonal: c, lrScale: lrScale)
        let sigma = (0..<n).map { l[$0] * solution.y[$0] }
        let s = Double(noise.batchSize)
        let noiseDiagonal = (0..<n).map { i -> Double in
            let c0 = baseScale * hp[i] + (rankOne.map { $0[i] * $0[i] } ?? 0)
            return (noise.beta1 * hp[i] * hp[i] * sigma[i] + noise.beta2 * solution.tau * hp[i]) / s + c0
        }
        return Solution(
            sigma: hessian.sameSpectrumLayout(sigma), noise: hessian.sameSpectrumLayout(noiseDiagonal), tau: solution.tau,
            coupling: solution.coupling, lrScale: lrScale,
            criticalLearningRate: system.criticalScale().map { $0 * lrScale },
            flatNoise: solution.flatNoise)
    }

    // MARK: Dense, one eigendecomposition

    /// H̃'s eigendecomposition and M̃'s eigenvalues in the same basis (dense operators).
    struct DenseEigenbasis {
        let transform: LearningRateTransform
        let eigen: SymmetricEigendecomposition
        let mPrime: [Double]
        /// M̃ when it does not commute with H̃ (then `mPrime` is only its rotated diagonal).
        let nonCommutingCoupling: Matrix?
    }

    func denseEigenbasis() throws -> DenseEigenbasis {
        let d = hessian.dimension
        let transform = try LearningRateTransform(learningRate, dimension: d)
        let eigen = try SymmetricEigendecomposition(checked: transform.conjugate(hessian.matrix), name: hessianName)
        guard let coupling else {
            return DenseEigenbasis(transform: transform, eigen: eigen, mPrime: eigen.values, nonCommutingCoupling: nil)
        }
        let qt = eigen.eigenvectorRows
        let mt = transform.conjugate(coupling.matrix)
        let rotated = Matrix.product(Matrix.product(qt, mt), qt, transposeB: true)
        var offDiagonal = 0.0
        for i in 0..<d { for j in 0..<d where i != j { offDiagonal = max(offDiagonal, abs(rotated[i, j])) } }
        let commuting = offDiagonal <= 1e-10 * max(rotated.maxAbs, .leastNormalMagnitude)
        return DenseEigenbasis(transform: transform, eigen: eigen, mPrime: rotated.diagonalEntries,
                               nonCommutingCoupling: commuting ? nil : mt)
    }

    /// The diagonal system whose `criticalScale()` is the critical learning rate divided by the
    /// learning rate's scalar factor.
    /// - Throws: `invalidArgument` when M̃ and H̃ do not commute (no closed-form edge then).
    func stabilitySystem() throws -> DiagonalStationarySystem {
        try validate()
        if let (h, hp, l, w) = spectra {
            return try diagonalSystem(m: zip(l, h).map { $0 * $1 }, mPrime: zip(l, hp).map { $0 * $1 }, weights: w)
        }
        let basis = try denseEigenbasis()
        guard basis.nonCommutingCoupling == nil else {
            throw SGDNoiseError.invalidArgument(
                "the critical learning rate needs the coupling matrix to commute with the hessian (after preconditioning)")
        }
        return try diagonalSystem(m: basis.eigen.values, mPrime: basis.mPrime)
    }

    private func solveDense() throws -> Solution {
        let d = hessian.dimension
        let basis = try denseEigenbasis()
        let transform = basis.transform
        let eigen = basis.eigen
        if let mt = basis.nonCommutingCoupling {
            return try solveIterative(transform: transform, eigen: eigen, mTilde: mt)
        }
        let qt = eigen.eigenvectorRows
        let m = eigen.values
        let mp = basis.mPrime
        // Rotated base noise: diagonal c_i, plus ṽṽᵀ when there is a rank-one part.
        var c = mp.map { baseScale * $0 }
        var vHat: [Double]? = nil
        if let v = rankOne {
            let pv = transform.apply(v)
            let rotated = qt.apply(pv)
            for i in 0..<d { c[i] += rotated[i] * rotated[i] }
            vHat = rotated
        }
        let system = try diagonalSystem(m: m, mPrime: mp)
        let solution = try system.solve(baseNoiseDiagonal: c, lrScale: lrScale)
        let s = Double(noise.batchSize)
        // Noise in the eigenbasis: (1/S)(β₁ m′_i m′_j Y_ij + β₂ τ m′_i δ_ij) + Ĉ₀_ij.
        let noiseDiagonal = (0..<d).map { i in
            (noise.beta1 * mp[i] * mp[i] * solution.y[i] + noise.beta2 * solution.tau * mp[i]) / s + c[i]
        }
        let x: Matrix
        let cTilde: Matrix
        if let vHat {
            var y = Matrix(rows: d, columns: d)
            var cHat = Matrix(rows: d, columns: d)
            for i in 0..<d {
                for j in 0..<d {
                    if i == j {
                        y[i, i] = solution.y[i]
                        cHat[i, i] = noiseDiagonal[i]
                    } else if !system.isFlat(i) && !system.isFlat(j) {
                        let yij = vHat[i] * vHat[j] / system.denominator(i, j)
                        y[i, j] = yij
                        cHat[i, j] = noise.beta1 * mp[i] * mp[j] * yij / s + vHat[i] * vHat[j]
                    } else {
                        cHat[i, j] = vHat[i] * vHat[j]
                    }
                }
            }
            let spectral = try SpectralStationarySolver(eigen: eigen, momentum: momentum)
            x = spectral.rotateOut(y)
            cTilde = spectral.rotateOut(cHat)
        } else if transform.root == nil {
            // Scalar λ: Σ = λX and C = C̃/λ folded into the SYRK weights (no extra D² passes).
            let l = transform.scalar
            x = qt.weightedGram(rowWeights: solution.y.map { $0 * l })
            cTilde = qt.weightedGram(rowWeights: noiseDiagonal.map { $0 / l })
        } else {
            x = qt.weightedGram(rowWeights: solution.y)
            cTilde = qt.weightedGram(rowWeights: noiseDiagonal)
        }
        let folded = vHat == nil && transform.root == nil
        let sigma = folded ? x : transform.conjugate(x)
        let noiseMatrix = folded ? cTilde : try transform.deconjugate(cTilde)
        guard sigma.isFinite, noiseMatrix.isFinite else {
            throw SGDNoiseError.numericalFailure("the stationary covariance came out non-finite")
        }
        return Solution(
            sigma: .dense(sigma), noise: .dense(noiseMatrix), tau: solution.tau,
            coupling: solution.coupling, lrScale: lrScale,
            criticalLearningRate: system.criticalScale().map { $0 * lrScale },
            flatNoise: solution.flatNoise)
    }

    // MARK: Non-commuting M̃ and H̃: iterative

    private func solveIterative(
        transform: LearningRateTransform, eigen: SymmetricEigendecomposition, mTilde: Matrix
    ) throws -> Solution {
        let spectral = try SpectralStationarySolver(eigen: eigen, momentum: momentum)
        try spectral.requireStable(lrScale: lrScale)
        let s = Double(noise.batchSize)
        let b1 = noise.beta1, b2 = noise.beta2
        let noiseMap: (Matrix) -> Matrix = { x in
            let mxm = Matrix.product(mTilde, Matrix.product(x, mTilde))
            let tau = mTilde.traceProduct(x)
            return ((b1 / s) * mxm + (b2 * tau / s) * mTilde).symmetrized
        }
        var cTilde0 = baseScale * mTilde
        if let v = rankOne {
            let pv = transform.apply(v)
            cTilde0 = cTilde0 + Matrix.outer(pv, pv)
        }
        let solver = IterativeStationarySolver(spectral: spectral, noiseMap: noiseMap)
        let report = try solver.solve(base: cTilde0) {
            .unstable("unstable: the multiplicative noise makes the fluctuation diverge at this learning rate "
                          + "(the stationary iteration's spectral radius is at least 1)",
                      criticalLearningRate: nil)
        }
        let x = report.x
        let sigma = transform.conjugate(x)
        let cTilde = cTilde0 + noiseMap(x)
        let noiseMatrix = try transform.deconjugate(cTilde)
        return Solution(
            sigma: .dense(sigma), noise: .dense(noiseMatrix), tau: mTilde.traceProduct(x),
            coupling: nil, lrScale: lrScale, criticalLearningRate: nil,
            flatNoise: spectral.flatNoise(spectral.rotateIn(cTilde)))
    }
}

extension Matrix {
    /// v wᵀ.
    static func outer(_ v: [Double], _ w: [Double]) -> Matrix {
        var m = Matrix(rows: v.count, columns: w.count)
        for i in v.indices { for j in w.indices { m[i, j] = v[i] * w[j] } }
        return m
    }

    /// Tr[A B] = Σ_ij A_ij B_ji (for symmetric B, the Frobenius inner product).
    func traceProduct(_ b: Matrix) -> Double {
        var s = 0.0
        for i in 0..<rows { for j in 0..<columns { s += self[i, j] * b[j, i] } }
        return s
    }
}
