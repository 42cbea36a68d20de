import SGDNoise

/// An independent route to the transient moments of SGD with momentum (docs/theory.md §9): the
/// whole (2D+1)² second moment of z = (e, m, 1), stepped by one Kronecker-product matrix.
///
/// With e = w − w*, η the minibatch noise (mean 0, covariance C(e)/S given the past):
///
///     m' = μm + He + η,  e' = e − λm'   ⇔   z' = T z + B η,
///     T = [[I − λH, −λμI, 0], [H, μI, 0], [0, 0, 1]],  B = [−λI; I; 0].
///
/// Z = E[zzᵀ] holds the second moments, the means (last row) and 1 (corner), so every model's
/// noise — affine in E[(e + δ)(e + δ)ᵀ] = J Z Jᵀ with J = [I, 0, δ] — is linear in Z:
///
///     vec Z' = (T ⊗ T) vec Z + (B ⊗ B) vec C,
///     vec C = (1/S)[β₁ (A ⊗ A)(J ⊗ J) + β₂ vec(A) vec(A)ᵀ (J ⊗ J) + vec(C̄₀) e_cornerᵀ] vec Z.
///
/// Nothing here knows an eigenbasis: matrices are dense and generic.
struct BruteForceMoments {
    /// H, the coupling A of the multiplicative noise, δ, C̄₀ (per unit batch), β₁, β₂.
    let hessian: Matrix
    let coupling: Matrix
    let delta: [Double]
    let baseNoise: Matrix
    let beta1: Double
    let beta2: Double
    /// vec Z, row-major, n = 2D + 1.
    var z: [Double]

    var d: Int { hessian.rows }
    var n: Int { 2 * hessian.rows + 1 }

    /// Starts at e₀ (m = 0): Z = z₀z₀ᵀ.
    init(hessian: Matrix, coupling: Matrix, delta: [Double], baseNoise: Matrix, beta1: Double, beta2: Double, e0: [Double]) {
        self.hessian = hessian
        self.coupling = coupling
        self.delta = delta
        self.baseNoise = baseNoise
        self.beta1 = beta1
        self.beta2 = beta2
        let d = hessian.rows
        let z0 = e0 + [Double](repeating: 0, count: d) + [1]
        z = z0.flatMap { a in z0.map { a * $0 } }
    }

    /// A random start: adds Σ₀ to E[e eᵀ] (the start's mean stays e₀).
    mutating func addStartCovariance(_ sigma0: Matrix) {
        for i in 0..<d { for j in 0..<d { z[i * n + j] += sigma0[i, j] } }
    }

    /// The map (e, m) ↦ (e − λ(μm + He), μm + He) of heavy ball on the Hessian `h` (D × D), in the
    /// top-left 2D × 2D block of a `size` × `size` zero matrix.
    static func heavyBall(_ h: Matrix, learningRate lr: Double, momentum mu: Double, size: Int) -> Matrix {
        let d = h.rows
        var t = Ref.zeros(size, size)
        for i in 0..<d {
            for j in 0..<d {
                t[i, j] = (i == j ? 1 : 0) - lr * h[i, j]
                t[d + i, j] = h[i, j]
            }
            t[i, d + i] = -lr * mu
            t[d + i, d + i] = mu
        }
        return t
    }

    /// The (n² × n²) matrix of one step.
    func stepMatrix(learningRate lr: Double, batchSize s: Int, momentum mu: Double) -> Matrix {
        let d = self.d, n = self.n
        var t = Self.heavyBall(hessian, learningRate: lr, momentum: mu, size: n)
        t[2 * d, 2 * d] = 1
        var b = Ref.zeros(n, d)
        for i in 0..<d {
            b[i, i] = -lr
            b[d + i, i] = 1
        }
        var j = Ref.zeros(d, n)
        for i in 0..<d {
            j[i, i] = 1
            j[i, 2 * d] = delta[i]
        }
        let jj = Ref.kron(j, j)
        var vecA = Ref.zeros(d * d, 1)
        for k in 0..<(d * d) { vecA.elements[k] = coupling.elements[k] }
        var corner = Ref.zeros(1, n * n)
        corner.elements[n * n - 1] = 1
        var vecC0 = Ref.zeros(d * d, 1)
        for k in 0..<(d * d) { vecC0.elements[k] = baseNoise.elements[k] }
        let noise = Ref.scale(1 / Double(s), Ref.add(
            Ref.add(Ref.scale(beta1, Ref.mul(Ref.kron(coupling, coupling), jj)),
                    Ref.scale(beta2, Ref.mul(vecA, Ref.transpose(vecA), jj))),
            Ref.mul(vecC0, corner)))
        return Ref.add(Ref.kron(t, t), Ref.mul(Ref.kron(b, b), noise))
    }

    /// One step (the matrix built afresh: it is small).
    mutating func step(learningRate lr: Double, batchSize s: Int, momentum mu: Double) {
        let k = stepMatrix(learningRate: lr, batchSize: s, momentum: mu)
        var next = [Double](repeating: 0, count: z.count)
        for r in 0..<z.count {
            var acc = 0.0
            for c in 0..<z.count { acc += k[r, c] * z[c] }
            next[r] = acc
        }
        z = next
    }

    /// E[e] (the last row of Z).
    var meanError: [Double] { (0..<d).map { z[(2 * d) * n + $0] } }

    /// cov(e) = Z_ee − E[e]E[e]ᵀ.
    var covariance: Matrix {
        let m = meanError
        var s = Ref.zeros(d, d)
        for i in 0..<d { for j in 0..<d { s[i, j] = z[i * n + j] - m[i] * m[j] } }
        return s
    }

    /// E[e eᵀ], E[e mᵀ], E[m mᵀ].
    var blocks: (ee: Matrix, em: Matrix, mm: Matrix) {
        var ee = Ref.zeros(d, d), em = Ref.zeros(d, d), mm = Ref.zeros(d, d)
        for i in 0..<d {
            for j in 0..<d {
                ee[i, j] = z[i * n + j]
                em[i, j] = z[i * n + d + j]
                mm[i, j] = z[(d + i) * n + d + j]
            }
        }
        return (ee, em, mm)
    }
}
