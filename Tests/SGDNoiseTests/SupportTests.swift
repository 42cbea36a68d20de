import SGDNoise
import Testing

/// Checks of the test-only references themselves: a wrong reference would make every comparison
/// against it meaningless.
@Suite("Test support")
struct SupportTests {
    @Test("The seeded generator is reproducible and its normals have unit variance")
    func generator() {
        var a = SeededGenerator(seed: 42)
        var b = SeededGenerator(seed: 42)
        var c = SeededGenerator(seed: 43)
        let xa = (0..<8).map { _ in a.next() }
        #expect(xa == (0..<8).map { _ in b.next() })
        #expect(xa != (0..<8).map { _ in c.next() })
        // 10⁵ normals: sample mean within 5 standard errors (1/√n) of 0, variance within 5 of 1
        // (the standard error of a normal sample variance is √(2/n)).
        let n = 100_000
        var s1 = 0.0, s2 = 0.0
        for _ in 0..<n {
            let x = a.normal()
            s1 += x
            s2 += x * x
        }
        let mean = s1 / Double(n)
        let variance = s2 / Double(n) - mean * mean
        #expect(abs(mean) < 5 / Double(n).squareRoot(), "expected mean 0, observed \(mean)")
        #expect(
            abs(variance - 1) < 5 * (2 / Double(n)).squareRoot(), "expected variance 1, observed \(variance)")
    }

    @Test("Kronecker forms equal the matrix expressions on random matrices", arguments: [1, 2, 3, 5])
    func kroneckerIdentities(d: Int) {
        var rng = SeededGenerator(seed: UInt64(100 + d))
        let a = rng.gaussianMatrix(d, d)
        let x = rng.gaussianMatrix(d, d)
        let b = rng.gaussianMatrix(d, d)
        func apply(_ op: Matrix, _ x: Matrix) -> Matrix {
            var out = Ref.zeros(x.rows, x.columns)
            for i in 0..<op.rows {
                var s = 0.0
                for k in 0..<op.columns { s += op[i, k] * x.elements[k] }
                out.elements[i] = s
            }
            return out
        }
        let tol = 16 * Double(d) * Ref.u
        let cases: [(String, Matrix, Matrix)] = [
            ("A X B", Ref.kron(a, Ref.transpose(b)), Ref.mul(a, x, b)),
            ("A X", Ref.kron(a, Ref.identity(d)), Ref.mul(a, x)),
            ("X Aᵀ", Ref.kron(Ref.identity(d), a), Ref.mul(x, Ref.transpose(a))),
            ("A X Aᵀ", Ref.kron(a, a), Ref.mul(a, x, Ref.transpose(a))),
        ]
        for (name, op, expected) in cases {
            let err = Ref.relativeError(apply(op, x), expected)
            #expect(err <= tol, "\(name): expected the direct product, observed error \(err) > \(tol)")
        }
    }

    @Test("Gaussian elimination solves and inverts", arguments: [1, 4, 36, 144])
    func gaussianElimination(n: Int) {
        var rng = SeededGenerator(seed: UInt64(7 * n))
        var a = rng.gaussianMatrix(n, n)
        for i in 0..<n { a[i, i] += Double(n).squareRoot() }  // keep it well conditioned
        let x = (0..<n).map { _ in rng.normal() }
        var b = [Double](repeating: 0, count: n)
        for i in 0..<n { for k in 0..<n { b[i] += a[i, k] * x[k] } }
        let lu = Ref.LU(a)
        let solved = lu.solve(b)
        let kappa = Ref.norm1(a) * Ref.norm1(lu.inverse())
        var err = 0.0, norm = 0.0
        for i in 0..<n {
            err = max(err, abs(solved[i] - x[i]))
            norm = max(norm, abs(x[i]))
        }
        let tol = solveBudget(size: n, condition: kappa)
        #expect(err / norm <= tol, "expected x, observed error \(err / norm) > \(tol) (κ₁ = \(kappa))")
        let residual = Ref.relativeError(Ref.mul(a, lu.inverse()), Ref.identity(n))
        #expect(residual <= tol, "A·A⁻¹: expected I, observed error \(residual) > \(tol)")
    }

    @Test("The Jacobi eigensolver recovers known eigenvalues and an orthonormal basis", arguments: [1, 2, 5, 6])
    func jacobi(d: Int) {
        var rng = SeededGenerator(seed: UInt64(300 + d))
        let values = rng.uniformArray(d, -2, 3).sorted()
        let a = rng.symmetric(eigenvalues: values)
        let (computed, q) = Ref.jacobiEigen(a)
        let tol = 32 * Double(d) * Ref.u * values.map(abs).max()!
        for (e, o) in zip(values, computed) {
            #expect(abs(e - o) <= tol, "expected eigenvalue \(e), observed \(o), error \(abs(e - o)) > \(tol)")
        }
        let orth = Ref.relativeError(Ref.mul(Ref.transpose(q), q), Ref.identity(d))
        #expect(orth <= 32 * Double(d) * Ref.u, "QᵀQ: expected I, observed error \(orth)")
        let recon = Ref.relativeError(Ref.mul(q, Ref.diagonal(computed), Ref.transpose(q)), a)
        #expect(recon <= 32 * Double(d) * Ref.u, "Q diag Qᵀ: expected A, observed error \(recon)")
    }

    /// The transition T and input B of `BruteForce.momentumSystem` reproduce one step of the
    /// recursion of docs/theory.md §1 written out literally.
    @Test("The augmented (w, m) system is one step of SGD with momentum", arguments: [0.0, 0.5, 0.9])
    func momentumSystemStep(mu: Double) {
        let d = 4
        var rng = SeededGenerator(seed: 55)
        let h = rng.spd(d, eigenvaluesIn: 0.1, 2)
        let lambda = rng.spd(d, eigenvaluesIn: 0.1, 1)
        let w = rng.gaussianMatrix(d, 1)
        let m = rng.gaussianMatrix(d, 1)
        let eta = rng.gaussianMatrix(d, 1)
        // ĝ_t = ∇L(w_{t−1}) + η_t with L = ½wᵀHw; m_t = μ m_{t−1} + ĝ_t; w_t = w_{t−1} − Λ m_t.
        let g = Ref.add(Ref.mul(h, w), eta)
        let mNext = Ref.add(Ref.scale(mu, m), g)
        let wNext = Ref.sub(w, Ref.mul(lambda, mNext))
        let (t, b) = BruteForce.momentumSystem(hessian: h, lr: lambda, momentum: mu)
        var z = Ref.zeros(2 * d, 1)
        for i in 0..<d {
            z[i, 0] = w[i, 0]
            z[d + i, 0] = m[i, 0]
        }
        let zNext = Ref.add(Ref.mul(t, z), Ref.mul(b, eta))
        let errW = Ref.relativeError(Ref.block(zNext, rows: 0..<d, columns: 0..<1), wNext)
        let errM = Ref.relativeError(Ref.block(zNext, rows: d..<(2 * d), columns: 0..<1), mNext)
        #expect(errW <= 64 * Ref.u && errM <= 64 * Ref.u, "expected one SGD step, observed errors w \(errW), m \(errM)")
    }
}
