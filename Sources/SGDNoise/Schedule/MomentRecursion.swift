/// The exact moment recursion of SGD with momentum on a `TransientSystem` (docs/theory.md §9).
///
/// State, in the eigenbasis of H: the means ē = E[e], m̄ = E[m] and the second moments
/// P = E[eeᵀ], R = E[emᵀ], Q = E[mmᵀ] (not centred). One update with (λ, S, μ), α_i = 1 − λh_i,
/// and the noise C = C(M)/S of the previous iterate (`TransientSystem`), entry by entry:
///
///     P'_ij = α_iα_j P_ij − λμ(α_i R_ij + α_j R_ji) + λ²μ² Q_ij + λ² C_ij
///     R'_ij = α_i h_j P_ij + μα_i R_ij − λμ h_j R_ji − λμ² Q_ij − λ C_ij
///     Q'_ij = h_i h_j P_ij + μ(h_i R_ij + h_j R_ji) + μ² Q_ij + C_ij
///     ē'_i = α_i ē_i − λμ m̄_i,   m̄'_i = h_i ē_i + μ m̄_i,
///
/// which is m' = μm + ĝ, e' = e − λm' with E[ĝ | e] = He and cov(ĝ | e) = C(e)/S. For spectra only the
/// diagonal i = j is kept: it closes by itself, O(D) per step. Dense systems keep every entry,
/// O(D²) per step. Without momentum in the whole schedule, R and Q are not stored.
struct MomentRecursion {
    let system: TransientSystem
    let d: Int
    let dense: Bool
    let tracksMomentum: Bool
    /// Entries per second-moment block: D (diagonal) or D² (dense).
    let count: Int
    var mean: [Double]
    var momentumMean: [Double]
    var p: [Double]
    var r: [Double]
    var q: [Double]
    /// Scratch for the dense update (the new blocks before the swap).
    private var p2: [Double] = []
    private var r2: [Double] = []
    private var q2: [Double] = []
    /// Σ a_i δ_i², the constant part of τ.
    private let deltaConstant: Double
    /// C̄₀ as a dense row-major array (dense systems only).
    private let denseBaseNoise: [Double]

    /// The recursion started at e₀ (rotated), m = 0, with second moment Σ₀ + e₀e₀ᵀ (`startCovariance`:
    /// Σ₀ as `TransientSystem.startSecondMoment` gives it, nil for a point start).
    init(system: TransientSystem, initialError e0: [Double], startCovariance: [Double]? = nil, tracksMomentum: Bool) {
        self.system = system
        d = system.dimension
        dense = system.isDense
        self.tracksMomentum = tracksMomentum
        count = dense ? d * d : d
        mean = e0
        momentumMean = [Double](repeating: 0, count: d)
        p = [Double](repeating: 0, count: count)
        if dense {
            for i in 0..<d { for j in 0..<d { p[i * d + j] = e0[i] * e0[j] } }
            p2 = p
        } else {
            for i in 0..<d { p[i] = e0[i] * e0[i] }
        }
        if let startCovariance {
            for k in 0..<count { p[k] += startCovariance[k] }
            if dense { p2 = p }
        }
        r = tracksMomentum ? [Double](repeating: 0, count: count) : []
        q = r
        if dense && tracksMomentum { (r2, q2) = (r, q) }
        denseBaseNoise = dense ? system.baseNoise.matrix.elements : []
        deltaConstant = system.delta.map { zip(system.a, $0).reduce(0) { $0 + $1.0 * $1.1 * $1.1 } } ?? 0
    }

    /// τ = Tr[diag(a) V] with V = E[vvᵀ], v = e + δ: the scalar that couples the modes.
    func tau() -> Double {
        var t = deltaConstant
        let a = system.a
        for i in 0..<d {
            var v = p[dense ? i * d + i : i]
            if let delta = system.delta { v += 2 * delta[i] * mean[i] }
            t += a[i] * v
        }
        return t
    }

    /// One update with learning rate λ ≥ 0, batch size S and momentum μ.
    mutating func step(learningRate lr: Double, batchSize: Int, momentum mu: Double) {
        if dense { denseStep(lr, batchSize, mu) } else { diagonalStep(lr, 1 / Double(batchSize), mu) }
    }

    // MARK: Spectra, O(D)

    private mutating func diagonalStep(_ lr: Double, _ invS: Double, _ mu: Double) {
        let tau = tau()
        let (b1, b2, n) = (system.beta1 * invS, system.beta2 * invS * tau, d)
        let lr2 = lr * lr
        guard case .diagonal(let c0) = system.baseNoise else { preconditionFailure("diagonal system with dense noise") }
        let delta = system.delta
        let h = system.h, a = system.a
        h.withUnsafeBufferPointer { h in
        a.withUnsafeBufferPointer { a in
        c0.withUnsafeBufferPointer { c0 in
        mean.withUnsafeMutableBufferPointer { e in
        p.withUnsafeMutableBufferPointer { p in
            if !tracksMomentum {
                // μ ≡ 0: P' = α²P + λ²C, ē' = αē.
                for i in 0..<n {
                    let alpha = 1 - lr * h[i]
                    var v = p[i]
                    if let delta { v += delta[i] * (2 * e[i] + delta[i]) }
                    let c = (b1 * a[i] * a[i]) * v + b2 * a[i] + invS * c0[i]
                    p[i] = alpha * alpha * p[i] + lr2 * c
                    e[i] *= alpha
                }
                return
            }
            momentumMean.withUnsafeMutableBufferPointer { m in
            r.withUnsafeMutableBufferPointer { r in
            q.withUnsafeMutableBufferPointer { q in
                for i in 0..<n {
                    let hi = h[i]
                    let alpha = 1 - lr * hi
                    var v = p[i]
                    if let delta { v += delta[i] * (2 * e[i] + delta[i]) }
                    let c = (b1 * a[i] * a[i]) * v + b2 * a[i] + invS * c0[i]
                    let (pi, ri, qi) = (p[i], r[i], q[i])
                    p[i] = alpha * alpha * pi - 2 * lr * mu * alpha * ri + lr2 * mu * mu * qi + lr2 * c
                    r[i] = alpha * hi * pi + mu * (alpha - lr * hi) * ri - lr * mu * mu * qi - lr * c
                    q[i] = hi * hi * pi + 2 * mu * hi * ri + mu * mu * qi + c
                    let (ei, mi) = (e[i], m[i])
                    e[i] = alpha * ei - lr * mu * mi
                    m[i] = hi * ei + mu * mi
                }
            }
            }
            }
        }
        }
        }
        }
        }
    }

    // MARK: Dense, O(D²)

    /// C of the step's noise, row-major D × D in the eigenbasis: the model's C(M)/S, or a finite
    /// dataset's C_t (`DatasetTransient`).
    private func denseNoise(_ batchSize: Int) -> [Double] {
        let n = d
        if let dataset = system.dataset {
            return dataset.noise(secondMoment: Matrix(uncheckedRows: n, columns: n, elements: p), mean: mean,
                                 batchSize: batchSize).elements
        }
        let invS = 1 / Double(batchSize)
        let tau = tau()
        let a = system.a
        let delta = system.delta ?? [Double](repeating: 0, count: n)
        let e = mean
        var c = denseBaseNoise
        for i in 0..<n {
            for j in 0..<n {
                let k = i * n + j
                let v = p[k] + delta[i] * e[j] + e[i] * delta[j] + delta[i] * delta[j]
                c[k] += system.beta1 * a[i] * a[j] * v
                if i == j { c[k] += system.beta2 * tau * a[i] }
                c[k] *= invS
            }
        }
        return c
    }

    private mutating func denseStep(_ lr: Double, _ batchSize: Int, _ mu: Double) {
        let n = d
        let h = system.h
        let lr2 = lr * lr
        let noise = denseNoise(batchSize)
        for i in 0..<n {
            let alphaI = 1 - lr * h[i]
            for j in 0..<n {
                let k = i * n + j
                let alphaJ = 1 - lr * h[j]
                let c = noise[k]
                if !tracksMomentum {
                    p2[k] = alphaI * alphaJ * p[k] + lr2 * c
                    continue
                }
                let kt = j * n + i
                p2[k] = alphaI * alphaJ * p[k] - lr * mu * (alphaI * r[k] + alphaJ * r[kt]) + lr2 * mu * mu * q[k] + lr2 * c
                r2[k] = alphaI * h[j] * p[k] + mu * alphaI * r[k] - lr * mu * h[j] * r[kt] - lr * mu * mu * q[k] - lr * c
                q2[k] = h[i] * h[j] * p[k] + mu * (h[i] * r[k] + h[j] * r[kt]) + mu * mu * q[k] + c
            }
        }
        swap(&p, &p2)
        if tracksMomentum {
            swap(&r, &r2)
            swap(&q, &q2)
        }
        for i in 0..<n {
            let (ei, mi) = (mean[i], momentumMean[i])
            mean[i] = (1 - lr * h[i]) * ei - lr * mu * mi
            momentumMean[i] = h[i] * ei + mu * mi
        }
    }

    /// Divides the second moments (P, R, Q) by their Euclidean norm and returns that norm (for a
    /// power iteration of the homogeneous map).
    mutating func normalizeSecondMoments() -> Double {
        let norm = (p + r + q).reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard norm > 0, norm.isFinite else { return norm }
        for k in p.indices { p[k] /= norm }
        for k in r.indices { r[k] /= norm }
        for k in q.indices { q[k] /= norm }
        return norm
    }

    // MARK: Read-outs

    /// The diagonal of the second moment M in the eigenbasis.
    var secondMomentDiagonal: [Double] { dense ? (0..<d).map { p[$0 * d + $0] } : p }

    /// L_train = ½ Σ h_i M_ii + trainConstant.
    func trainLoss() -> Double {
        let m = secondMomentDiagonal
        return 0.5 * zip(system.h, m).reduce(0) { $0 + $1.0 * $1.1 } + system.trainConstant
    }

    /// L_test = ½ Tr[T M] + qᵀē + testConstant.
    func testLoss() -> Double {
        var quadratic = 0.0
        if let t = system.testWeights.spectrumEntries {
            quadratic = zip(t, secondMomentDiagonal).reduce(0) { $0 + $1.0 * $1.1 }
        } else if dense {
            quadratic = zip(system.testWeights.matrix.elements, p).reduce(0) { $0 + $1.0 * $1.1 }
        } else {
            quadratic = zip(system.testWeights.diagonalEntries, p).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let linear = system.testLinear.map { zip($0, mean).reduce(0) { $0 + $1.0 * $1.1 } } ?? 0
        return 0.5 * quadratic + linear + system.testConstant
    }

    /// Tr Σ = Σ_i (M_ii − ē_i²) (basis-independent).
    func traceSigma() -> Double {
        zip(secondMomentDiagonal, mean).reduce(0) { $0 + $1.0 - $1.1 * $1.1 }
    }

    /// E[w_t] in the original coordinates: w* + Q ē.
    func meanW() -> [Double] {
        let back = system.basis.map { $0.transposed.apply(mean) } ?? mean
        return zip(system.wStar, back).map { $0 + $1 }
    }

    /// Σ_t = M − ēēᵀ in the original coordinates: its diagonal for spectra, Q(M − ēēᵀ)Qᵀ dense.
    func sigma() -> SymmetricOperator {
        guard dense, let qt = system.basis else {
            return .diagonal(zip(p, mean).map { $0 - $1 * $1 })
        }
        var s = p
        for i in 0..<d { for j in 0..<d { s[i * d + j] -= mean[i] * mean[j] } }
        let rotated = Matrix(uncheckedRows: d, columns: d, elements: s)
        return .dense(Matrix.product(Matrix.product(qt, rotated, transposeA: true), qt).symmetrized)
    }
}
