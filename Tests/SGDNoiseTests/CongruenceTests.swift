@testable import SGDNoise
import Testing

/// `Matrix.congruence`, the symmetric product α a s aᵀ (or α aᵀ s a) of the stationary solver's
/// rotations (plain loops up to n = `congruenceLoopSize`, else one TRMM and one GEMM on s = U + Uᵀ),
/// against the triple loop on the full s.
@Suite("Symmetric congruence")
struct CongruenceTests {
    @Test("α a s aᵀ and α aᵀ s a agree with the triple loop and are exactly symmetric",
          arguments: [1, 2, 7, 8, 9, 64, 129])
    func agreesWithLoops(n: Int) {
        var rng = SeededGenerator(seed: UInt64(700 + n))
        let a = rng.gaussianMatrix(n, n)
        let s = rng.symmetric(eigenvalues: rng.uniformArray(n, -2, 3))
        let alpha = 0.75
        for transposeA in [false, true] {
            let expected = Ref.scale(alpha, transposeA ? Ref.mul(Ref.transpose(a), s, a) : Ref.mul(a, s, Ref.transpose(a)))
            let observed = Matrix.congruence(a, s, transposeA: transposeA, scale: alpha)
            // Each entry is a sum of n² products a_ik s_kl a_jl, computed in two stages of n terms.
            let bound = 4 * Ref.gamma(2 * n) * alpha * Ref.frobenius(a) * Ref.frobenius(a) * Ref.frobenius(s)
            let error = Ref.frobenius(Ref.sub(observed, expected))
            #expect(error <= bound, "n = \(n), transposeA = \(transposeA): error \(error) > \(bound)")
            #expect(observed == Ref.transpose(observed), "n = \(n): the result is not exactly symmetric")
        }
    }

    @Test("Only the upper triangle of s is read, and a shared s is left as it was (loops and BLAS)",
          arguments: [3, 9])
    func readsTheUpperTriangleOnly(n: Int) {
        var rng = SeededGenerator(seed: UInt64(731 + n))
        let a = rng.gaussianMatrix(n, n)
        let s = rng.symmetric(eigenvalues: rng.uniformArray(n, 0.5, 2))
        var scrambled = s
        for i in 0..<n { for j in 0..<i { scrambled[i, j] = 1e6 * Double(i + j) } }  // the lower triangle: noise
        let kept = scrambled
        let fromUpper = Matrix.congruence(a, scrambled)
        #expect(fromUpper == Matrix.congruence(a, s))
        #expect(scrambled == kept, "the caller's s changed")
        #expect(Matrix.congruence(Matrix(rows: 0, columns: 0), Matrix(rows: 0, columns: 0)).rows == 0)
    }

    @Test("The 2 × 2 positivity test's closed form agrees with the eigenvalues", arguments: [
        [2.0, 0.3, 0.3, 1.0], [1.0, 1.0, 1.0, 1.0 + 1e-10], [1.0, 1.0, 1.0, 1.0 + 1e-13], [1.0, 0, 0, -1e-3],
        [-1.0, 0.2, 0.2, -2.0], [1e-300, 0, 0, 1e-300], [1e300, 1e299, 1e299, 1e300], [0.0, 0, 0, 0], [3.0],
        [-3.0], [1.0, .nan, .nan, 1.0], [1.0, 0.5, 0.4, 1.0],
        // Negative semidefinite: hi = t + √(h² + b²) cancels to rounding (a review's counterexample).
        [-0.024081038596206313, 0.15330082249073007, 0.15330082249073007, -0.9759189614037936],
    ])
    func twoByTwoPositivity(entries: [Double]) throws {
        let n = entries.count == 4 ? 2 : 1
        let m = try Matrix(rows: n, columns: n, elements: entries)
        // The definition: symmetric, finite, smallest eigenvalue above 1e-12 of the largest (the
        // test suite's own Jacobi eigenvalues, independent of the library's closed form).
        let expected: Bool
        if entries.allSatisfy(\.isFinite), m == Ref.transpose(m) {
            let values = Ref.jacobiEigen(m).values
            expected = values.last! > 0 && values.first! > 1e-12 * values.last!
        } else {
            expected = false
        }
        #expect(IterativeStationarySolver.isPositiveDefinite(m) == expected, "\(entries)")
    }
}
