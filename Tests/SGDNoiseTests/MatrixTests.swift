@testable import SGDNoise
import Testing

/// The `Matrix` value type and `SymmetricEigendecomposition`, against plain loops and Jacobi.
@Suite("Matrix and eigendecomposition")
struct MatrixTests {
    @Test("Initialisers, identity and diagonal")
    func construction() throws {
        let a = try Matrix(rows: 2, columns: 3, elements: [1, 2, 3, 4, 5, 6])
        #expect(a.rows == 2 && a.columns == 3 && a[1, 0] == 4 && a[0, 2] == 3)
        #expect(try Matrix([[1, 2, 3], [4, 5, 6]]) == a)
        expectError(.invalidArgument, mentioning: "entries") { try Matrix(rows: 2, columns: 2, elements: [1, 2, 3]) }
        expectError(.invalidArgument, mentioning: "rows") { try Matrix([[1, 2], [3]]) }
        #expect(Matrix.identity(3) == Ref.identity(3))
        #expect(Matrix.diagonal([2, -1]) == Ref.diagonal([2, -1]))
        #expect(Matrix.identity(0).rows == 0)
    }

    @Test("Products, sums, scaling, transpose and norm match plain loops")
    func arithmetic() throws {
        var rng = SeededGenerator(seed: 81)
        let a = rng.gaussianMatrix(4, 3)
        let b = rng.gaussianMatrix(3, 5)
        let c = rng.gaussianMatrix(4, 3)
        // A 3-term dot product errs by at most γ₃ Σ|a||b| ≤ γ₃ ‖a‖_F ‖b‖_F per entry.
        let productErr = Ref.frobenius(Ref.sub(a * b, Ref.mul(a, b)))
        let productTol = 2 * Ref.gamma(3) * Ref.frobenius(a) * Ref.frobenius(b) * 5
        #expect(productErr <= productTol, "a·b: expected the loop product, observed error \(productErr) > \(productTol)")
        #expect(a + c == Ref.add(a, c))
        #expect(a - c == Ref.sub(a, c))
        #expect(2.5 * a == Ref.scale(2.5, a))
        #expect(a.transposed == Ref.transpose(a))
        #expect(a.transposed.transposed == a)
        let normErr = relativeDifference(a.frobeniusNorm, Ref.frobenius(a))
        #expect(normErr <= Ref.gamma(12), "‖a‖_F: expected \(Ref.frobenius(a)), observed \(a.frobeniusNorm)")
        let t = try Matrix([[1, 2], [3, 4]])
        #expect(t.trace == 5 && t.diagonalEntries == [1, 4] && t.frobeniusNorm == 30.0.squareRoot())
    }

    @Test("SymmetricEigendecomposition agrees with Jacobi and reconstructs A", arguments: [1, 2, 5, 6])
    func eigendecomposition(d: Int) throws {
        var rng = SeededGenerator(seed: UInt64(90 + d))
        let a = rng.symmetric(eigenvalues: rng.uniformArray(d, -3, 3))
        let e = try SymmetricEigendecomposition(a)
        let (values, _) = Ref.jacobiEigen(a)
        let scale = values.map(abs).max()!
        let tol = 32 * Double(d) * Ref.u * scale
        for (x, y) in zip(values, e.values) {
            #expect(abs(x - y) <= tol, "expected eigenvalue \(x), observed \(y), error \(abs(x - y)) > \(tol)")
        }
        #expect(e.values == e.values.sorted(), "eigenvalues must be ascending")
        let q = e.vectors
        let orth = Ref.relativeError(Ref.mul(Ref.transpose(q), q), Ref.identity(d))
        #expect(orth <= 32 * Double(d) * Ref.u, "QᵀQ: expected I, observed error \(orth)")
        let recon = Ref.relativeError(Ref.mul(q, Ref.diagonal(e.values), Ref.transpose(q)), a)
        #expect(recon <= 32 * Double(d) * Ref.u, "Q diag Qᵀ: expected A, observed error \(recon)")
        let viaReconstruct = Ref.relativeError(e.reconstruct { $0 }, a)
        #expect(viaReconstruct <= 32 * Double(d) * Ref.u, "reconstruct: expected A, observed error \(viaReconstruct)")
        #expect(e.spectralRadius == scale || abs(e.spectralRadius - scale) <= tol)
    }

    @Test("SymmetricEigendecomposition rejects non-symmetric and non-finite input")
    func eigendecompositionErrors() throws {
        expectError(.notSymmetric, mentioning: "A") { try SymmetricEigendecomposition(try Matrix([[1, 2], [3, 4]]), name: "A") }
        expectError(.invalidArgument, mentioning: "A") { try SymmetricEigendecomposition(try Matrix([[1, .nan], [.nan, 4]]), name: "A") }
        expectError(.invalidArgument, mentioning: "A") { try SymmetricEigendecomposition(Ref.zeros(2, 3), name: "A") }
    }

    @Test("n ≤ 2 in closed form: backward stable (residuals and orthonormality within a few ε‖A‖), values as Jacobi's",
          arguments: [
              [2.0, 0.3, 0.3, 1.0], [1.0, 0.3, 0.3, 2.0], [1.0, 0, 0, 1.0], [3.0, 0, 0, -1.0], [-1.0, 0, 0, 3.0],
              [1.0, 2.0, 2.0, 1.0], [1.0, 1e-300, 1e-300, 2.0], [1e-300, 1e-310, 1e-310, 3e-300],
              [-1e308, 1.0, 1.0, 1e308], [1e300, 1e299, 1e299, -1e300], [1.0, 1.0, 1.0, 1.0 + 1e-15], [0.0, 0, 0, 0],
              [0.0, 1e308, 1e308, 1e308], [-1e308, 1e308, 1e308, 1e308], [-1e308, 1e307, 1e307, 1e307],
              [1e-310, 3e-310, 3e-310, -2e-310],
              [5.0], [-2.5],
          ])
    func smallClosedForm(entries: [Double]) throws {
        let n = entries.count == 4 ? 2 : 1
        let a = try Matrix(rows: n, columns: n, elements: entries)
        let e = try SymmetricEigendecomposition(a)
        let norm = entries.reduce(0.0) { max($0, abs($1)) }
        // Relative rounding, plus the absolute rounding of the subnormal range (entries near 1e-310).
        let bound = 8 * Double.ulpOfOne * norm + 4 * Double.leastNonzeroMagnitude
        #expect(e.values == e.values.sorted(), "\(entries): not ascending")
        for k in 0..<n {
            let q = (0..<n).map { e.eigenvectorRows[k, $0] }
            #expect(abs(q.reduce(0) { $0 + $1 * $1 } - 1) <= 4 * Double.ulpOfOne, "\(entries): q_\(k) not a unit vector")
            for i in 0..<n {
                // (A q − λq)_i / 2, halved term by term so that 1e308-size entries do not overflow.
                let aq = (0..<n).reduce(0.0) { $0 + a[i, $1] / 2 * q[$1] }
                let residual = abs(aq - e.values[k] / 2 * q[i]) * 2
                #expect(residual <= bound, "\(entries): residual \(residual) > \(bound)")
            }
        }
        if n == 2 {
            let dot = e.eigenvectorRows[0, 0] * e.eigenvectorRows[1, 0] + e.eigenvectorRows[0, 1] * e.eigenvectorRows[1, 1]
            #expect(abs(dot) <= 4 * Double.ulpOfOne, "\(entries): eigenvectors not orthogonal")
            if norm > 0 {  // the reference on A scaled by a power of two to norm ~1 (exact), scaled back
                let p = Int(norm.exponent)
                let unit = try Matrix(rows: 2, columns: 2, elements: entries.map { Double(sign: .plus, exponent: -p, significand: $0) })
                let reference = Ref.jacobiEigen(unit).values.map { Double(sign: .plus, exponent: p, significand: $0) }
                for k in 0..<2 { #expect(abs(e.values[k] - reference[k]) <= bound, "\(entries): \(e.values) vs \(reference)") }
            }
        }
    }

    @Test("Small solves (loops up to n = 16, LAPACK beyond): backward stable, singular and indefinite matrices refused as LAPACK does",
          arguments: [1, 2, 3, 8, 16, 17])
    func smallSolves(n: Int) throws {
        var rng = SeededGenerator(seed: UInt64(940 + n))
        let spd = rng.symmetric(eigenvalues: rng.uniformArray(n, 0.1, 3))
        let general = rng.gaussianMatrix(n, n)
        let b = rng.uniformArray(n, -1, 1)
        for (matrix, cholesky) in [(spd, true), (general, false)] {
            let x = cholesky ? try matrix.solvePositiveDefinite(b, name: "A") : try #require(matrix.solveGeneral(b))
            // Backward error: ‖b − A x‖ within a few n ε ‖A‖ ‖x‖ (Higham, Thm 9.4 and 10.3, growth small here).
            let norm = Ref.frobenius(matrix)
            let xNorm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
            var residual = 0.0
            for i in 0..<n {
                var s = b[i]
                for j in 0..<n { s -= matrix[i, j] * x[j] }
                residual += s * s
            }
            #expect(residual.squareRoot() <= 8 * Double(n) * Double.ulpOfOne * norm * xNorm,
                    "n = \(n), cholesky = \(cholesky): residual \(residual.squareRoot())")
        }
        // Exactly singular: a repeated row, which the loops' first elimination step zeroes exactly
        // (LAPACK's blocked order at n = 17 leaves rounding there instead, and solves).
        var singular = general
        for j in 0..<n { singular[n - 1, j] = n > 1 ? singular[0, j] : 0 }
        if n <= Matrix.smallSolveSize { #expect(singular.solveGeneral(b) == nil, "n = \(n): a singular matrix solved") }
        // Indefinite at column n: the leading (n−1) × (n−1) block positive definite, the whole not.
        var indefinite = spd
        indefinite[n - 1, n - 1] = -1
        #expect(throws: SGDNoiseError.self) { try indefinite.solvePositiveDefinite(b, name: "A") }
        do {
            _ = try indefinite.solvePositiveDefinite(b, name: "A")
        } catch SGDNoiseError.notPositiveDefinite(let message) {
            #expect(message.contains("column \(n)"), "n = \(n): \(message)")
        }
        var nan = spd
        nan[0, 0] = .nan
        #expect(throws: SGDNoiseError.self) { try nan.solvePositiveDefinite(b, name: "A") }
    }

    @Test("weightedGram: Xᵀ diag(s) X by loops (rows · D² ≤ 512) and by SYRK/GEMM beyond, every sign pattern of s",
          arguments: [(8, 2), (2, 8), (128, 2), (9, 8), (40, 12)])
    func weightedGram(rows: Int, columns: Int) throws {
        var rng = SeededGenerator(seed: UInt64(960 + rows * 31 + columns))
        let x = rng.gaussianMatrix(rows, columns)
        let magnitudes = rng.uniformArray(rows, 0.1, 2)
        for pattern in ["positive", "negative", "mixed"] {
            let w = magnitudes.enumerated().map { k, m in
                pattern == "positive" ? m : pattern == "negative" ? -m : (k % 2 == 0 ? m : -m)
            }
            let observed = x.weightedGram(rowWeights: w)
            var bound = 0.0
            for j in 0..<columns {
                for l in 0..<columns {
                    var expected = 0.0, scale = 0.0
                    for k in 0..<rows {
                        expected += w[k] * x[k, j] * x[k, l]
                        scale += abs(w[k] * x[k, j] * x[k, l])
                    }
                    bound = 4 * Double(rows) * Double.ulpOfOne * scale
                    #expect(abs(observed[j, l] - expected) <= bound,
                            "\(rows) × \(columns), \(pattern): entry (\(j), \(l)) \(observed[j, l]) vs \(expected)")
                }
            }
            #expect(observed == Ref.transpose(observed), "\(rows) × \(columns), \(pattern): not exactly symmetric")
        }
    }
}
