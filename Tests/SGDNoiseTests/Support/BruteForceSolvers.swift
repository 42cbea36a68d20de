import SGDNoise

/// Independent routes to the stationary fluctuation, by vectorisation and Gaussian elimination.
///
/// Row-major vectorisation: vec(X)[i·n + j] = X[i, j]. Then vec(A X B) = (A ⊗ Bᵀ) vec(X), so
/// vec(AΣ) = (A ⊗ I) vec Σ, vec(ΣAᵀ) = (I ⊗ A) vec Σ and vec(AΣAᵀ) = (A ⊗ A) vec Σ
/// (`SupportTests` checks these identities on random matrices).
enum BruteForce {
    /// A reference solution with what is needed to budget its error.
    struct Solution {
        /// Σ (the w-block for the augmented system).
        let sigma: Matrix
        /// The full solution (Z for the augmented system; Σ otherwise).
        let full: Matrix
        /// The size n of the linear system that was solved.
        let size: Int
        /// κ₁ of its matrix.
        let condition: Double
        /// Σ_k ‖term_k‖₁ / ‖matrix‖₁ for the terms the matrix is summed from: forming the matrix
        /// perturbs it by about u times this relative to its norm (the terms cancel near the edge
        /// of stability and at high momentum), which the solution inherits times κ₁.
        let amplification: Double

        /// The error budget of this solution (and of any solver of the same equation):
        /// `solveBudget` for the system's size, with the condition number times the amplification.
        var budget: Double { solveBudget(size: size, condition: condition * amplification) }
    }

    /// The terms whose sum is the Theorem 1 operator (see `theorem1Operator`).
    static func theorem1OperatorTerms(hessian h: Matrix, lr lambda: Matrix, momentum mu: Double) -> [Matrix] {
        let d = h.rows
        let id = Ref.identity(d)
        let a = Ref.mul(lambda, h)
        let a2 = Ref.mul(a, a)
        let c1 = (1 + mu * mu) / (1 - mu * mu)
        let c2 = mu / (1 - mu * mu)
        return [
            Ref.scale(1 - mu, Ref.add(Ref.kron(a, id), Ref.kron(id, a))),
            Ref.scale(-c1, Ref.kron(a, a)),
            Ref.scale(c2, Ref.add(Ref.kron(a2, id), Ref.kron(id, a2))),
        ]
    }

    /// Σ_k ‖term_k‖₁ / ‖Σ_k term_k‖₁.
    static func amplification(_ terms: [Matrix]) -> Double {
        let sum = terms.dropFirst().reduce(terms[0]) { Ref.add($0, $1) }
        return terms.reduce(0) { $0 + Ref.norm1($1) } / Ref.norm1(sum)
    }

    /// The error budget of any solution of Theorem 1 for (H, Λ, μ) (the library's included).
    static func theorem1Budget(hessian h: Matrix, lr lambda: Matrix, momentum mu: Double) -> Double {
        let terms = theorem1OperatorTerms(hessian: h, lr: lambda, momentum: mu)
        let op = terms.dropFirst().reduce(terms[0]) { Ref.add($0, $1) }
        return solveBudget(size: h.rows * h.rows, condition: Ref.condition1(op) * amplification(terms))
    }

    /// The matrix of Theorem 1 acting on vec(Σ): with A = ΛH (so Aᵀ = HΛ),
    ///
    ///     L = (1−μ)(A⊗I + I⊗A) − c₁ A⊗A + c₂ (A²⊗I + I⊗A²),
    ///
    /// the Kronecker form of (1−μ)(ΛHΣ + ΣHΛ) − c₁ΛHΣHΛ + c₂(ΛHΛHΣ + ΣHΛHΛ).
    static func theorem1Operator(hessian h: Matrix, lr lambda: Matrix, momentum mu: Double) -> Matrix {
        let terms = theorem1OperatorTerms(hessian: h, lr: lambda, momentum: mu)
        return terms.dropFirst().reduce(terms[0]) { Ref.add($0, $1) }
    }

    /// Σ from Theorem 1 by one dense D² × D² solve: L vec(Σ) = vec(ΛCΛ).
    static func theorem1(hessian h: Matrix, noise c: Matrix, lr lambda: Matrix, momentum mu: Double) -> Solution {
        let d = h.rows
        let terms = theorem1OperatorTerms(hessian: h, lr: lambda, momentum: mu)
        let op = terms.dropFirst().reduce(terms[0]) { Ref.add($0, $1) }
        let rhs = Ref.mul(lambda, c, lambda)
        let lu = Ref.LU(op)
        var sigma = Ref.zeros(d, d)
        sigma.elements = lu.solve(rhs.elements)
        let condition = Ref.norm1(op) * Ref.norm1(lu.inverse())
        return Solution(
            sigma: sigma, full: sigma, size: d * d, condition: condition, amplification: amplification(terms))
    }

    /// The transition of the (w, m) system of SGD with momentum on L(w) = ½ wᵀHw, derived from
    /// docs/theory.md §1 (ĝ_t = ∇L(w_{t−1}) + η_t = H w_{t−1} + η_t; m_t = μ m_{t−1} + ĝ_t;
    /// w_t = w_{t−1} − Λ m_t):
    ///
    ///     m_t = H w_{t−1} + μ m_{t−1} + η_t
    ///     w_t = w_{t−1} − Λ(H w_{t−1} + μ m_{t−1} + η_t) = (I − ΛH) w_{t−1} − μΛ m_{t−1} − Λ η_t
    ///
    /// so z_t = (w_t, m_t) = T z_{t−1} + B η_t with T = [[I − ΛH, −μΛ], [H, μI]] and B = [−Λ; I].
    static func momentumSystem(hessian h: Matrix, lr lambda: Matrix, momentum mu: Double) -> (t: Matrix, b: Matrix) {
        let d = h.rows
        let id = Ref.identity(d)
        let t = Ref.blocks(
            Ref.sub(id, Ref.mul(lambda, h)), Ref.scale(-mu, lambda),
            h, Ref.scale(mu, id))
        var b = Ref.zeros(2 * d, d)
        for i in 0..<d {
            for j in 0..<d { b[i, j] = -lambda[i, j] }
            b[d + i, i] = 1
        }
        return (t, b)
    }

    /// The stationary covariance Z of z_t = T z_{t−1} + B η_t, cov η = C: the Stein equation
    /// Z = T Z Tᵀ + B C Bᵀ, solved as (I − T⊗T) vec Z = vec(BCBᵀ), a (2D)² × (2D)² system.
    /// `sigma` is the w-block Z[0..<D, 0..<D].
    static func augmentedStein(hessian h: Matrix, noise c: Matrix, lr lambda: Matrix, momentum mu: Double) -> Solution {
        let d = h.rows
        let (t, b) = momentumSystem(hessian: h, lr: lambda, momentum: mu)
        let n = 2 * d
        let terms = [Ref.identity(n * n), Ref.scale(-1, Ref.kron(t, t))]
        let op = Ref.add(terms[0], terms[1])
        let rhs = Ref.mul(b, c, Ref.transpose(b))
        let lu = Ref.LU(op)
        var z = Ref.zeros(n, n)
        z.elements = lu.solve(rhs.elements)
        let condition = Ref.norm1(op) * Ref.norm1(lu.inverse())
        return Solution(
            sigma: Ref.block(z, rows: 0..<d, columns: 0..<d), full: z, size: n * n, condition: condition,
            amplification: amplification(terms))
    }

    /// The left side of Theorem 1 for a candidate Σ, by plain loops:
    /// (1−μ)(ΛHΣ + ΣHΛ) − c₁ΛHΣHΛ + c₂(ΛHΛHΣ + ΣHΛHΛ), with each term returned separately so a
    /// caller can bound the rounding of their sum.
    static func theorem1Terms(hessian h: Matrix, lr lambda: Matrix, momentum mu: Double, sigma s: Matrix) -> [Matrix] {
        let c1 = (1 + mu * mu) / (1 - mu * mu)
        let c2 = mu / (1 - mu * mu)
        let hl = Ref.mul(h, lambda)
        let lh = Ref.mul(lambda, h)
        return [
            Ref.scale(1 - mu, Ref.mul(lh, s)),
            Ref.scale(1 - mu, Ref.mul(s, hl)),
            Ref.scale(-c1, Ref.mul(lh, s, hl)),
            Ref.scale(c2, Ref.mul(lh, lh, s)),
            Ref.scale(c2, Ref.mul(s, hl, hl)),
        ]
    }

    /// The residual of Theorem 1, computed here independently of the library:
    /// `relative` = ‖LHS − ΛCΛ‖_F / ‖ΛCΛ‖_F, and `roundingFloor` = u · (Σ_k ‖term_k‖_F + ‖ΛCΛ‖_F) /
    /// ‖ΛCΛ‖_F, the size of the rounding committed by merely evaluating the sum of the terms
    /// (when the terms are much larger than ΛCΛ they cancel, and no Σ can do better than this).
    static func theorem1Residual(
        hessian h: Matrix, noise c: Matrix, lr lambda: Matrix, momentum mu: Double, sigma s: Matrix
    ) -> (relative: Double, roundingFloor: Double) {
        let terms = theorem1Terms(hessian: h, lr: lambda, momentum: mu, sigma: s)
        let rhs = Ref.mul(lambda, c, lambda)
        var lhs = Ref.zeros(h.rows, h.rows)
        for t in terms { lhs = Ref.add(lhs, t) }
        let scale = Ref.frobenius(rhs)
        let magnitude = terms.reduce(scale) { $0 + Ref.frobenius($1) }
        return (Ref.frobenius(Ref.sub(lhs, rhs)) / scale, Ref.u * magnitude / scale)
    }
}
