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
/// With momentum each mode carries (e, λ·buffer) and every entry above becomes a 2 × 2 block.
/// The multiplicative part then adds Σ_W solving §4.1's equation (Theorem 1 with momentum) for
/// the white noise f[F(Σ̄_add + M_m + Σ_W) − Â(…)Â]. Scalar learning rate, S ≤ N.
/// Cost O(P D² + N D²) after the eigendecomposition of K.
struct EpochShuffling {
    /// Σ̄_add (original coordinates): the covariance of e averaged over the phases, under the
    /// additive noise alone (exact for it).
    let additiveCovariance: Matrix
    /// m̄ = the average over phases of E[e_t] (original coordinates).
    let meanOffset: [Double]
    /// M_m = the average over phases of E[e_t]E[e_t]ᵀ (original coordinates).
    let meanSecondMoment: Matrix

    /// - Parameters:
    ///   - x: the N × D inputs; `z`: the N × D centred rows z_i = x_i r_i − mean(x r); `r`: R.
    ///   - eigen: the eigendecomposition of λK (values m_a = λk_a ascending, all positive).
    ///   - learningRate: λ; `batchSize`: S, 1 ≤ S ≤ N; `momentum`: μ ∈ [0, 1).
    init(x: Matrix, z: Matrix, r: Matrix, eigen: SymmetricEigendecomposition, learningRate lr: Double, batchSize s: Int,
         momentum mu: Double) {
        let n = x.rows, d = x.columns
        let basis = eigen.eigenvectorRows  // Uᵀ
        let m = eigen.values  // λk_a
        let rTilde = Matrix.congruence(basis, r)  // Uᵀ R U
        let xTilde = Matrix.product(x, basis, transposeB: true)  // X U
        var xz = Matrix.product(z, basis, transposeB: true)  // Z U, then X̃ ∘ Z̃
        for k in 0..<(n * d) { xz.elements[k] *= xTilde.elements[k] }
        let y = Matrix.product(xTilde, xz, transposeA: true, scale: 1 / Double(n))  // Y
        // −R/(N−1) within an epoch, and the white part's N/(S(N−1)) R per batch (N = 1: R = 0).
        let c = n > 1 ? 1 / Double(n - 1) : 0
        let white = n > 1 ? Double(n) / (Double(s) * Double(n - 1)) : 0
        let period = n / Self.gcd(n, s)

        // Mode a carries x = (e, p) with p = λ·(momentum buffer): x ← T_a x + β ξ,
        // T_a = [[1 − m_a, −μ], [m_a, μ]], β = (−λ, λ). Per pair (a, b) a 2 × 2 block of Cov(x_a, x_b).
        let modes = m.map { Mode2(t11: 1 - $0, t12: -mu, t21: $0, t22: mu) }
        let beta = Pair2(e: -lr, p: lr)
        let dd = d * d
        // The recursion from x = 0 at a period's start (an epoch boundary). Before batch t: W_t (white
        // part), C_t (completed epochs' common parts), h_t (the current epoch's coefficients), v_t
        // (mean), and Φ_t = T^t per mode.
        var w = [Block2](repeating: .zero, count: dd), common = w
        var h = [Pair2](repeating: .zero, count: d), v = h
        var power = [Mode2](repeating: .identity, count: d)
        // Phase sums of the e-entries: W, C, hhᵀ, v, vvᵀ, and Σ_t (T_a^t)_{ee|ep} v_{t,b,e}.
        var sumW = [Double](repeating: 0, count: dd), sumC = sumW, sumHH = sumW, sumVV = sumW, crossE = sumW, crossP = sumW
        var sumV = [Double](repeating: 0, count: d), yh = sumV
        let rt = rTilde.elements, ye = y.elements
        for t in 0..<period {
            for a in 0..<d {
                sumV[a] += v[a].e
                for b in 0..<d {
                    let k = a * d + b
                    sumW[k] += w[k].ee
                    sumC[k] += common[k].ee
                    sumHH[k] += h[a].e * h[b].e
                    sumVV[k] += v[a].e * v[b].e
                    crossE[k] += power[a].t11 * v[b].e
                    crossP[k] += power[a].t12 * v[b].e
                }
            }
            // Batch t: n1 positions in the current epoch, n2 in the next.
            let start = t * s
            let n1 = min(s, (start / n + 1) * n - start), n2 = s - n1
            let completes = (start + n1) % n == 0
            for a in 0..<d {
                var acc = 0.0
                for b in 0..<d { acc += ye[a * d + b] * h[b].e }
                yh[a] = acc
            }
            // E[(A_B − Â)e_t] = −n1/(S(N−1)) · Y h_t^e enters like the noise, through β.
            let pull = c * Double(n1) / Double(s)
            for a in 0..<d {
                let ta = modes[a]
                v[a] = ta.apply(v[a]) - beta.scaled(pull * yh[a])
                power[a] = ta.times(power[a])
                for b in 0..<d {
                    let k = a * d + b, tb = modes[b]
                    w[k] = Block2.congruence(ta, w[k], tb) + Block2.outer(beta, beta, scale: white * rt[k])
                    common[k] = Block2.congruence(ta, common[k], tb)
                }
            }
            let add = Double(n1) / Double(s)
            for a in 0..<d { h[a] = modes[a].apply(h[a]) + beta.scaled(add) }
            if completes {
                for a in 0..<d { for b in 0..<d { common[a * d + b] = common[a * d + b] + Block2.outer(h[a], h[b], scale: 1) } }
                let next = Double(n2) / Double(s)
                for a in 0..<d { h[a] = beta.scaled(next) }
            }
        }
        // The periodic state: Σ₀ = Φ Σ₀ Φᵀ + V_P and m₀ = Φ m₀ + v_P (h_P = 0: a period ends an epoch).
        // Phase sums: Σ_t T^t Σ₀ T^tᵀ = S with S − T S Tᵀ = V_P, and Σ_t T^t m₀ = (I − T)⁻¹ v_P.
        var sigmaBar = [Double](repeating: 0, count: dd), mm = sigmaBar
        var m0 = [Pair2](repeating: .zero, count: d), mBar = [Double](repeating: 0, count: d)
        for a in 0..<d {
            m0[a] = power[a].identityMinus.solve(v[a])
            mBar[a] = (modes[a].identityMinus.solve(v[a]).e + sumV[a]) / Double(period)
        }
        for a in 0..<d {
            for b in 0..<d {
                let k = a * d + b
                let vP = w[k] - common[k].scaled(c * rt[k])
                let phaseSum = Block2.stein(modes[a], modes[b], source: vP)
                sigmaBar[k] = (phaseSum.ee + sumW[k] - c * rt[k] * (sumC[k] + sumHH[k])) / Double(period)
                // Σ_t m_t m_tᵀ with m_t = T^t m₀ + v_t.
                let outer0 = Block2.outer(m0[a], m0[b], scale: 1)
                let shifted = Block2.congruence(power[a], outer0, power[b])
                let periodic = Block2.stein(modes[a], modes[b], source: outer0 - shifted).ee
                let crossAB = crossE[k] * m0[a].e + crossP[k] * m0[a].p
                let crossBA = crossE[b * d + a] * m0[b].e + crossP[b * d + a] * m0[b].p
                mm[k] = (periodic + crossAB + crossBA + sumVV[k]) / Double(period)
            }
        }
        let sigmaTilde = Matrix(uncheckedRows: d, columns: d, elements: sigmaBar)
        let mmTilde = Matrix(uncheckedRows: d, columns: d, elements: mm)
        self.additiveCovariance = Matrix.congruence(basis, sigmaTilde.symmetrized, transposeA: true)
        self.meanSecondMoment = Matrix.congruence(basis, mmTilde.symmetrized, transposeA: true)
        self.meanOffset = basis.transposed.apply(mBar)
    }

    static func gcd(_ a: Int, _ b: Int) -> Int {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }
}

/// A 2-vector (e, p) of one mode.
struct Pair2 {
    var e: Double, p: Double
    static let zero = Pair2(e: 0, p: 0)
    static func - (x: Pair2, y: Pair2) -> Pair2 { Pair2(e: x.e - y.e, p: x.p - y.p) }
    static func + (x: Pair2, y: Pair2) -> Pair2 { Pair2(e: x.e + y.e, p: x.p + y.p) }
    func scaled(_ c: Double) -> Pair2 { Pair2(e: c * e, p: c * p) }
}

/// A 2 × 2 matrix acting on one mode's (e, p).
struct Mode2 {
    var t11: Double, t12: Double, t21: Double, t22: Double
    static let identity = Mode2(t11: 1, t12: 0, t21: 0, t22: 1)
    func apply(_ x: Pair2) -> Pair2 { Pair2(e: t11 * x.e + t12 * x.p, p: t21 * x.e + t22 * x.p) }
    func times(_ o: Mode2) -> Mode2 {
        Mode2(t11: t11 * o.t11 + t12 * o.t21, t12: t11 * o.t12 + t12 * o.t22,
              t21: t21 * o.t11 + t22 * o.t21, t22: t21 * o.t12 + t22 * o.t22)
    }
    var identityMinus: Mode2 { Mode2(t11: 1 - t11, t12: -t12, t21: -t21, t22: 1 - t22) }
    /// This matrix's inverse applied to x (Cramer's rule).
    func solve(_ x: Pair2) -> Pair2 {
        let det = t11 * t22 - t12 * t21
        return Pair2(e: (t22 * x.e - t12 * x.p) / det, p: (t11 * x.p - t21 * x.e) / det)
    }
}

/// A 2 × 2 block Cov(x_a, x_b) of two modes (rows: a's (e, p), columns: b's).
struct Block2 {
    var ee: Double, ep: Double, pe: Double, pp: Double
    static let zero = Block2(ee: 0, ep: 0, pe: 0, pp: 0)
    static func + (x: Block2, y: Block2) -> Block2 { Block2(ee: x.ee + y.ee, ep: x.ep + y.ep, pe: x.pe + y.pe, pp: x.pp + y.pp) }
    static func - (x: Block2, y: Block2) -> Block2 { Block2(ee: x.ee - y.ee, ep: x.ep - y.ep, pe: x.pe - y.pe, pp: x.pp - y.pp) }
    func scaled(_ c: Double) -> Block2 { Block2(ee: c * ee, ep: c * ep, pe: c * pe, pp: c * pp) }
    static func outer(_ x: Pair2, _ y: Pair2, scale c: Double) -> Block2 {
        Block2(ee: c * x.e * y.e, ep: c * x.e * y.p, pe: c * x.p * y.e, pp: c * x.p * y.p)
    }
    /// T_a B T_bᵀ.
    static func congruence(_ ta: Mode2, _ b: Block2, _ tb: Mode2) -> Block2 {
        // L = T_a B, then L T_bᵀ.
        let l11 = ta.t11 * b.ee + ta.t12 * b.pe, l12 = ta.t11 * b.ep + ta.t12 * b.pp
        let l21 = ta.t21 * b.ee + ta.t22 * b.pe, l22 = ta.t21 * b.ep + ta.t22 * b.pp
        return Block2(ee: l11 * tb.t11 + l12 * tb.t12, ep: l11 * tb.t21 + l12 * tb.t22,
                      pe: l21 * tb.t11 + l22 * tb.t12, pp: l21 * tb.t21 + l22 * tb.t22)
    }
    /// The X with X − T_a X T_bᵀ = source: the 4 × 4 system (I − T_b ⊗ T_a) vec X = vec source,
    /// solved by Gaussian elimination with partial pivoting.
    static func stein(_ ta: Mode2, _ tb: Mode2, source: Block2) -> Block2 {
        let a = [[ta.t11, ta.t12], [ta.t21, ta.t22]], b = [[tb.t11, tb.t12], [tb.t21, tb.t22]]
        // Unknowns X_ij at index 2i + j; (T_a X T_bᵀ)_ij = Σ_kl a_ik X_kl b_jl.
        var mat = [[Double]](repeating: [Double](repeating: 0, count: 5), count: 4)
        let rhs = [source.ee, source.ep, source.pe, source.pp]
        for i in 0..<2 {
            for j in 0..<2 {
                let row = 2 * i + j
                for k in 0..<2 { for l in 0..<2 { mat[row][2 * k + l] -= a[i][k] * b[j][l] } }
                mat[row][row] += 1
                mat[row][4] = rhs[row]
            }
        }
        for col in 0..<4 {
            var pivot = col
            for r in (col + 1)..<4 where abs(mat[r][col]) > abs(mat[pivot][col]) { pivot = r }
            mat.swapAt(col, pivot)
            for r in (col + 1)..<4 {
                let f = mat[r][col] / mat[col][col]
                if f != 0 { for q in col..<5 { mat[r][q] -= f * mat[col][q] } }
            }
        }
        var xs = [Double](repeating: 0, count: 4)
        for r in stride(from: 3, through: 0, by: -1) {
            var acc = mat[r][4]
            for q in (r + 1)..<4 { acc -= mat[r][q] * xs[q] }
            xs[r] = acc / mat[r][r]
        }
        return Block2(ee: xs[0], ep: xs[1], pe: xs[2], pp: xs[3])
    }
}
