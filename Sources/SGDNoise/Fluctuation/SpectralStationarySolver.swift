/// d_ij = (1−μ)(m_i + m_j) − c₁ m_i m_j + c₂ (m_i² + m_j²), computed without cancellation as
/// (1−μ)(m_i + m_j − m_i m_j/(1+μ)) + c₂(m_i − m_j)².
@inline(__always)
func stationaryDenominator(_ mi: Double, _ mj: Double, momentum mu: Double, c2: Double) -> Double {
    let diff = mi - mj
    return (1 - mu) * (mi + mj - mi * mj / (1 + mu)) + c2 * diff * diff
}

/// The spectral solution of the stationary equation [Thm 1] in the eigenbasis of H̃
/// (docs/theory.md §3).
///
/// With H̃ = Q diag(m) Qᵀ, the equation
///
///     (1−μ)(H̃X + XH̃) − c₁ H̃XH̃ + c₂ (H̃²X + XH̃²) = C̃,   c₁ = (1+μ²)/(1−μ²),  c₂ = μ/(1−μ²)
///
/// decouples entry by entry: Y = QᵀXQ has Y_ij = Ĉ_ij / d_ij with Ĉ = QᵀC̃Q and
/// d_ij = (1−μ)(m_i + m_j) − c₁ m_i m_j + c₂ (m_i² + m_j²).
/// The dynamics are stable iff 0 < m_i < 2(1+μ) for every i. Eigenvalues with
/// |m_i| ≤ `flatTolerance` are flat directions: the solution is taken on the range of H̃ (Y_ij = 0
/// when i or j is flat) and the noise entering the flat space is reported.
struct SpectralStationarySolver {
    let momentum: Double
    let c2: Double
    /// Eigenvalues m of H̃ (ascending) and Qᵀ.
    let eigen: SymmetricEigendecomposition
    /// Whether each eigenvalue is flat (treated as zero).
    let isFlat: [Bool]

    var m: [Double] { eigen.values }

    /// The relative tolerance actually used: |m| ≤ tolerance · max|m| is flat.
    let flatTolerance: Double

    /// Validates μ and decomposes H̃.
    init(preconditionedHessian hTilde: Matrix, momentum mu: Double, flatTolerance: Double? = nil) throws {
        try self.init(eigen: SymmetricEigendecomposition(checked: hTilde, name: "hessian"), momentum: mu,
                      flatTolerance: flatTolerance)
    }

    /// Validates μ and uses an existing eigendecomposition of H̃.
    init(eigen: SymmetricEigendecomposition, momentum mu: Double, flatTolerance: Double? = nil) throws {
        try Validation.momentum(mu)
        momentum = mu
        c2 = mu / (1 - mu * mu)
        self.eigen = eigen
        let scale = eigen.spectralRadius
        let relative = try Validation.flatTolerance(flatTolerance, dimension: eigen.values.count)
        self.flatTolerance = relative
        isFlat = eigen.values.map { abs($0) <= relative * scale }
    }

    /// d_ij of docs/theory.md §3, evaluated as (1−μ)(m_i + m_j − m_i m_j/(1+μ)) + c₂(m_i − m_j)²
    /// (equal, since c₁ − 2c₂ = (1−μ)/(1+μ)): no cancellation between terms of size m²/(1−μ)
    /// at high momentum, every term non-negative where the dynamics are stable.
    @inline(__always)
    func denominator(_ mi: Double, _ mj: Double) -> Double {
        stationaryDenominator(mi, mj, momentum: momentum, c2: c2)
    }

    /// The upper edge 2(1+μ) of the stable interval of each m_i.
    var stabilityEdge: Double { 2 * (1 + momentum) }

    /// Throws `unstable` unless every non-flat m_i lies in (0, 2(1+μ)).
    /// - Parameter lrScale: the learning rate's scalar factor, to report λ* = λ·2(1+μ)/m_max.
    func requireStable(lrScale: Double) throws {
        var smallest: Double? = nil  // the least non-flat m_i (a loop: no temporary arrays)
        for (mi, flat) in zip(m, isFlat) where !flat { smallest = min(smallest ?? mi, mi) }
        guard let mMin = smallest else { return }
        if mMin <= 0 {
            throw SGDNoiseError.unstable(
                "the (preconditioned) hessian has a negative eigenvalue \(mMin): this is not a minimum, "
                    + "and no learning rate gives a stationary distribution",
                criticalLearningRate: nil)
        }
        let mMax = m.last!
        if !(mMax < stabilityEdge) {
            let critical = lrScale * stabilityEdge / mMax
            throw SGDNoiseError.unstable(
                "unstable: lr times the largest hessian eigenvalue is \(mMax), at or above 2(1+momentum) = "
                    + "\(stabilityEdge)",
                criticalLearningRate: critical)
        }
    }

    /// Ĉ = α Qᵀ C̃ Q for a symmetric C̃ (its upper triangle is read; the result is symmetric and
    /// takes C̃'s storage when the caller gives C̃ up).
    func rotateIn(_ cTilde: consuming Matrix, scale alpha: Double = 1) -> Matrix {
        Matrix.congruence(eigen.eigenvectorRows, consume cTilde, scale: alpha)
    }

    /// X = α Q Y Qᵀ for a symmetric Y (its upper triangle is read; the result is symmetric and
    /// takes Y's storage when the caller gives Y up).
    func rotateOut(_ y: consuming Matrix, scale alpha: Double = 1) -> Matrix {
        Matrix.congruence(eigen.eigenvectorRows, consume y, transposeA: true, scale: alpha)
    }

    /// Y_ij = Ĉ_ij / d_ij on the range of H̃; 0 where i or j is flat; in place in Ĉ's storage, and
    /// on the upper triangle j ≥ i only — all that `rotateOut` reads (the lower one keeps Ĉ).
    func solveRotated(_ cHat: consuming Matrix) -> Matrix {
        let n = m.count
        var y = consume cHat
        let anyFlat = isFlat.contains(true)
        m.withUnsafeBufferPointer { mv in
            isFlat.withUnsafeBufferPointer { flat in
                y.elements.withUnsafeMutableBufferPointer { yv in
                    for i in 0..<n {
                        let (mi, row) = (mv[i], i * n)
                        if !anyFlat {  // no test in the loop: it vectorises
                            for j in i..<n { yv[row + j] /= denominator(mi, mv[j]) }
                        } else if flat[i] {
                            for j in i..<n { yv[row + j] = 0 }
                        } else {
                            for j in i..<n { yv[row + j] = flat[j] ? 0 : yv[row + j] / denominator(mi, mv[j]) }
                        }
                    }
                }
            }
        }
        return y
    }

    /// Σ_{i flat} Ĉ_ii: the noise power driving a random walk along flat directions.
    func flatNoise(_ cHat: Matrix) -> Double {
        var total = 0.0
        for i in 0..<m.count where isFlat[i] { total += cHat[i, i] }
        return total
    }
}
