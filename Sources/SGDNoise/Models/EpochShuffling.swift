/// What epoch shuffling changes in the stationary state of SGD on a finite dataset
/// (docs/theory.md §4.2): the additive gradient noise of one epoch is correlated, and the mean is
/// offset from w*.
///
/// The indices run through independent random permutations of 0..<N, S at a time (a batch may
/// straddle two epochs). With e = w − w*, K = Â + Γ = Σ_k k_a u_a u_aᵀ, q_a = 1 − λk_a and
/// z_i = x_i r_i − mean(x r) (which sum to zero), one step is e ← e − λ[(A_B − Â)e + Ke + z_B].
///
/// - **Additive part, exact.** Two positions a ≠ b of one permutation carry
///   Cov(z_π(a), z_π(b)) = −R/(N−1); different epochs are independent. Writing
///   z = w + ζ_epoch with white w (covariance N R/(N−1)) and one formal common vector ζ per epoch
///   (covariance −R/(N−1)), the covariance of e_t under e ← Qe − λz_B follows by a recursion of
///   one D × D array per kind of noise over one period of P = N/gcd(N, S) steps (a whole number
///   of epochs and of batches), entrywise in the eigenbasis of K; the periodic stationary state
///   and its average over the P phases follow in closed form.
/// - **Mean offset, to second order in the noise.** The next batch is drawn from what the epoch
///   has not yet used, so E[(A_B − Â)e_t] ≠ 0: with h_t = Σ_{j<t, same epoch} Q^{t−1−j}(n_j/S),
///   E[(A_{B_t} − Â)e_t] = λ n_t/(S(N−1)) · Y h_t in the eigenbasis, Y_ab = (1/N) Σ_i x̃_ia x̃_ib z̃_ib.
/// - **Multiplicative part, approximated as fresh.** (A_B − Â)e is treated as white noise of
///   covariance f[F(M) − ÂMÂ] (f of sampling without replacement, M the phase-averaged second
///   moment): exact for the marginal of one batch, blind to its correlation within an epoch.
///
/// The result is the source B with which the fresh-sampling equation of §4.1,
/// KΣ + ΣK − λKΣK = λ(B + f[F(Σ + M_m) − Â(Σ + M_m)Â]), gives the phase-averaged covariance Σ
/// around the per-phase means. Scalar learning rate, no momentum, S ≤ N.
/// Cost O(P D² + N D²) after the eigendecomposition of K.
struct EpochShuffling {
    /// B (original coordinates): L(Σ̄_additive)/λ², the additive source replacing f R.
    let source: Matrix
    /// m̄ = the average over phases of E[e_t] (original coordinates).
    let meanOffset: [Double]
    /// M_m = the average over phases of E[e_t]E[e_t]ᵀ (original coordinates).
    let meanSecondMoment: Matrix
    /// P = N/gcd(N, S): steps after which the pattern of epochs and batches repeats.
    let period: Int

    /// - Parameters:
    ///   - x: the N × D inputs; `z`: the N × D rows x_i r_i (centred here); `r`: R.
    ///   - eigen: the eigendecomposition of λK (values λk_a ascending, all in (0, 2)).
    ///   - learningRate: λ; `batchSize`: S, 1 ≤ S ≤ N.
    init(x: Matrix, z: Matrix, r: Matrix, eigen: SymmetricEigendecomposition, learningRate lr: Double, batchSize s: Int) {
        let n = x.rows, d = x.columns
        let basis = eigen.eigenvectorRows  // Uᵀ
        let m = eigen.values  // λk_a
        let q = m.map { 1 - $0 }
        let rTilde = Matrix.congruence(basis, r)  // Uᵀ R U
        let xTilde = Matrix.product(x, basis, transposeB: true)  // X U
        var centred = z
        for j in 0..<d {
            var mean = 0.0
            for i in 0..<n { mean += z[i, j] }
            mean /= Double(n)
            for i in 0..<n { centred[i, j] -= mean }
        }
        var xz = Matrix.product(centred, basis, transposeB: true)  // Z U, then X̃ ∘ Z̃
        for k in 0..<(n * d) { xz.elements[k] *= xTilde.elements[k] }
        let y = Matrix.product(xTilde, xz, transposeA: true, scale: 1 / Double(n))  // Y
        // −R/(N−1) within an epoch, and the white part's N/(S(N−1)) R per batch (N = 1: R = 0).
        let c = n > 1 ? 1 / Double(n - 1) : 0
        let white = n > 1 ? Double(n) / (Double(s) * Double(n - 1)) : 0
        let period = n / Self.gcd(n, s)
        let lr2 = lr * lr

        // The recursion from e = 0 at a period's start (an epoch boundary), entrywise in the
        // eigenbasis. Before batch t: W_t (white part), C_t (completed epochs' common parts),
        // h_t (the current epoch's), v_t (mean), G_t(x) = Σ_{j<t} x^j for x = q_a q_b, G_t(q), q^t.
        let dd = d * d
        var w = [Double](repeating: 0, count: dd), common = w, gx = w
        var sumW = w, sumC = w, sumHH = w, sumQV = w, sumVV = w
        var h = [Double](repeating: 0, count: d), v = h, gq = h, sumV = h, yh = h
        var qPower = [Double](repeating: 1, count: d)
        let rt = rTilde.elements, ye = y.elements
        for t in 0..<period {
            for a in 0..<d {
                sumV[a] += v[a]
                for b in 0..<d {
                    let k = a * d + b
                    sumW[k] += w[k]
                    sumC[k] += common[k]
                    sumHH[k] += h[a] * h[b]
                    sumQV[k] += qPower[a] * v[b]
                    sumVV[k] += v[a] * v[b]
                }
            }
            // Batch t: n1 positions in the current epoch, n2 in the next.
            let start = t * s
            let n1 = min(s, (start / n + 1) * n - start), n2 = s - n1
            let completes = (start + n1) % n == 0
            for a in 0..<d {
                var acc = 0.0
                for b in 0..<d { acc += ye[a * d + b] * h[b] }
                yh[a] = acc
            }
            let pull = lr2 * c * Double(n1) / Double(s)
            for a in 0..<d {
                v[a] = q[a] * v[a] - pull * yh[a]
                gq[a] = q[a] * gq[a] + 1
                qPower[a] *= q[a]
                for b in 0..<d {
                    let k = a * d + b, xab = q[a] * q[b]
                    w[k] = xab * w[k] + lr2 * white * rt[k]
                    common[k] *= xab
                    gx[k] = xab * gx[k] + 1
                }
            }
            for a in 0..<d { h[a] = q[a] * h[a] + Double(n1) / Double(s) }
            if completes {
                for a in 0..<d { for b in 0..<d { common[a * d + b] += h[a] * h[b] } }
                for a in 0..<d { h[a] = Double(n2) / Double(s) }
            }
        }
        // The periodic state: Σ₀ = V_P/(1 − x^P), m₀ = v_P/(1 − q^P), with 1 − x^P = (1 − x)G_P(x)
        // and 1 − x = λk_a + λk_b − λ²k_a k_b, accurate for slow modes.
        var sigmaBar = [Double](repeating: 0, count: dd), source = sigmaBar, mm = sigmaBar
        var m0 = [Double](repeating: 0, count: d), mBar = m0
        for a in 0..<d {
            m0[a] = v[a] / (m[a] * gq[a])
            mBar[a] = (gq[a] * m0[a] + sumV[a]) / Double(period)
        }
        for a in 0..<d {
            for b in 0..<d {
                let k = a * d + b
                let oneMinusX = m[a] + m[b] - m[a] * m[b]
                let vP = w[k] - lr2 * c * rt[k] * common[k]  // h_P = 0: a period ends an epoch
                let sigma0 = vP / (oneMinusX * gx[k])
                sigmaBar[k] = (gx[k] * sigma0 + sumW[k] - lr2 * c * rt[k] * (sumC[k] + sumHH[k])) / Double(period)
                source[k] = sigmaBar[k] * oneMinusX / lr2
                mm[k] = (gx[k] * m0[a] * m0[b] + m0[a] * sumQV[k] + m0[b] * sumQV[b * d + a] + sumVV[k]) / Double(period)
            }
        }
        let sourceTilde = Matrix(uncheckedRows: d, columns: d, elements: source)
        let mmTilde = Matrix(uncheckedRows: d, columns: d, elements: mm)
        self.source = Matrix.congruence(basis, sourceTilde.symmetrized, transposeA: true)
        self.meanSecondMoment = Matrix.congruence(basis, mmTilde.symmetrized, transposeA: true)
        self.meanOffset = basis.transposed.apply(mBar)
        self.period = period
    }

    static func gcd(_ a: Int, _ b: Int) -> Int {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }
}
