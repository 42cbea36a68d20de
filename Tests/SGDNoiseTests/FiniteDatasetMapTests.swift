@testable import SGDNoise
import Testing

/// The finite dataset's multiplicative-noise map f[F(M) − ÂMÂ], F(M) = (1/N) Σ_i (x_iᵀMx_i) x_i x_iᵀ,
/// Â = XᵀX/N (docs/theory.md §4.1): the loop route (small N·D²) and the BLAS route, each against
/// the definition summed term by term, on both sides of the switch between them.
@Suite("Finite dataset: the multiplicative-noise map by loops and by BLAS")
struct FiniteDatasetMapTests {
    @Test("Both routes equal the definition to rounding", arguments: [(8, 2), (5, 7), (40, 3), (1, 1), (64, 2)])
    func routesAgree(shape: (n: Int, d: Int)) throws {
        let (n, d) = shape
        var rng = SeededGenerator(seed: UInt64(97 * n + d))
        let x = try Matrix(rows: n, columns: d, elements: rng.uniformArray(n * d, -2, 2))
        let m = rng.symmetric(eigenvalues: rng.uniformArray(d, -1, 2))
        var aHat = Matrix(rows: d, columns: d)
        for i in 0..<n { for j in 0..<d { for k in 0..<d { aHat[j, k] += x[i, j] * x[i, k] / Double(n) } } }
        let factor = 0.37
        var expected = Matrix(rows: d, columns: d)
        for i in 0..<n {
            var q = 0.0
            for j in 0..<d { for k in 0..<d { q += x[i, j] * m[j, k] * x[i, k] } }
            for j in 0..<d { for k in 0..<d { expected[j, k] += factor * q * x[i, j] * x[i, k] / Double(n) } }
        }
        for j in 0..<d {
            for k in 0..<d {
                var s = 0.0
                for a in 0..<d { for b in 0..<d { s += aHat[j, a] * m[a, b] * aHat[b, k] } }
                expected[j, k] -= factor * s
            }
        }
        let size = expected.elements.reduce(0) { max($0, abs($1)) }
        for (name, route) in [("loops", FiniteDatasetProblem.multiplicativeNoiseByLoops),
                              ("BLAS", FiniteDatasetProblem.multiplicativeNoiseByBLAS)] {
            let result = route(x, aHat, m, factor)
            let error = zip(result.elements, expected.elements).reduce(0) { max($0, abs($1.0 - $1.1)) }
            #expect(error <= 1e-13 * max(size, 1), "\(name), N = \(n), D = \(d): error \(error)")
            for j in 0..<d { for k in 0..<d { #expect(result[j, k] == result[k, j], "\(name): not symmetric") } }
        }
    }
}
