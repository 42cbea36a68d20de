import SGDNoise
import Testing

/// The noise covariance [Prop 1] against its definition f (M2 − ḡḡᵀ) computed by explicit loops.
@Suite("Noise covariance [Prop 1]")
struct NoiseCovarianceTests {
    static let samplings: [Sampling] = [.withReplacement, .withoutReplacement]

    static func matrix(_ rows: [[Double]]) -> Matrix { Ref.matrix(rows) }

    /// Compares a full matrix with the definition, entry by entry within the rounding bound.
    static func expectMatchesDefinition(
        _ observed: Matrix, _ reference: (c: Matrix, bound: Matrix), _ label: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let worst = NoiseDefinition.worstEntry(
            observed: observed.elements, expected: reference.c.elements, bound: reference.bound.elements)
        #expect(
            worst.excess <= 0,
            "\(label): entry \(worst.index): expected \(reference.c.elements[worst.index]), observed \(observed.elements[worst.index]), error \(worst.error) > bound \(reference.bound.elements[worst.index])",
            sourceLocation: sourceLocation)
    }

    @Test("Full, diagonal and trace match the definition (Double)", arguments: samplings, [1, 7, 49, 50])
    func definitionDouble(sampling: Sampling, batchSize: Int) throws {
        let g = NoiseDefinition.randomGradients(samples: 50, dimension: 5, seed: 11)
        let reference = NoiseDefinition.covariance(g, batchSize: batchSize, sampling: sampling)
        let label = "N = 50, S = \(batchSize), \(sampling)"
        let m = Self.matrix(g)

        let full = try noiseCovariance(gradients: m, batchSize: batchSize, sampling: sampling)
        Self.expectMatchesDefinition(full, reference, label + " (Matrix)")
        #expect(full == full.transposed, "\(label): C is not exactly symmetric")

        let viaBuffer = try m.elements.withUnsafeBufferPointer {
            try noiseCovariance(gradients: $0, rows: 50, columns: 5, batchSize: batchSize, sampling: sampling)
        }
        Self.expectMatchesDefinition(viaBuffer, reference, label + " (buffer)")

        let diagonal = try noiseCovarianceDiagonal(gradients: m, batchSize: batchSize, sampling: sampling)
        let diagonalBuffer = try m.elements.withUnsafeBufferPointer {
            try noiseCovarianceDiagonal(gradients: $0, rows: 50, columns: 5, batchSize: batchSize, sampling: sampling)
        }
        for observed in [diagonal, diagonalBuffer] {
            let worst = NoiseDefinition.worstEntry(
                observed: observed, expected: reference.c.diagonalEntries, bound: reference.bound.diagonalEntries)
            #expect(worst.excess <= 0, "\(label) diagonal: entry \(worst.index), error \(worst.error) over its bound")
        }

        let trace = try noiseCovarianceTrace(gradients: m, batchSize: batchSize, sampling: sampling)
        let expectedTrace = reference.c.diagonalEntries.reduce(0, +)
        let traceBound = reference.bound.diagonalEntries.reduce(0, +) + 5 * Ref.u * abs(expectedTrace)
        #expect(
            abs(trace - expectedTrace) <= traceBound,
            "\(label) trace: expected \(expectedTrace), observed \(trace), error \(abs(trace - expectedTrace)) > \(traceBound)")
    }

    /// Float gradients are compared with the definition evaluated on the same Float values
    /// converted to Double (the library accumulates in Double).
    @Test("Float gradients match the definition on their Double values", arguments: samplings, [1, 5, 30])
    func definitionFloat(sampling: Sampling, batchSize: Int) throws {
        let g = NoiseDefinition.randomGradients(samples: 30, dimension: 4, seed: 12)
        let floats = g.flatMap { $0.map { Float($0) } }
        let widened = (0..<30).map { i in (0..<4).map { Double(floats[i * 4 + $0]) } }
        let reference = NoiseDefinition.covariance(widened, batchSize: batchSize, sampling: sampling)
        let label = "Float, N = 30, S = \(batchSize), \(sampling)"
        let (full, diagonal) = try floats.withUnsafeBufferPointer {
            (
                try noiseCovariance(gradients: $0, rows: 30, columns: 4, batchSize: batchSize, sampling: sampling),
                try noiseCovarianceDiagonal(gradients: $0, rows: 30, columns: 4, batchSize: batchSize, sampling: sampling)
            )
        }
        Self.expectMatchesDefinition(full, reference, label)
        let worst = NoiseDefinition.worstEntry(
            observed: diagonal, expected: reference.c.diagonalEntries, bound: reference.bound.diagonalEntries)
        #expect(worst.excess <= 0, "\(label) diagonal: entry \(worst.index), error \(worst.error) over its bound")
    }

    @Test("S = N without replacement gives exactly 0")
    func fullBatchWithoutReplacement() throws {
        let g = NoiseDefinition.randomGradients(samples: 12, dimension: 3, seed: 13)
        let m = Self.matrix(g)
        let full = try noiseCovariance(gradients: m, batchSize: 12, sampling: .withoutReplacement)
        let diagonal = try noiseCovarianceDiagonal(gradients: m, batchSize: 12, sampling: .withoutReplacement)
        let trace = try noiseCovarianceTrace(gradients: m, batchSize: 12, sampling: .withoutReplacement)
        let floats = m.elements.map { Float($0) }
        let fullFloat = try floats.withUnsafeBufferPointer {
            try noiseCovariance(gradients: $0, rows: 12, columns: 3, batchSize: 12, sampling: .withoutReplacement)
        }
        #expect(full.elements.allSatisfy { $0 == 0 }, "expected 0, observed \(full.elements)")
        #expect(fullFloat.elements.allSatisfy { $0 == 0 }, "expected 0, observed \(fullFloat.elements)")
        #expect(diagonal.allSatisfy { $0 == 0 }, "expected 0, observed \(diagonal)")
        #expect(trace == 0, "expected 0, observed \(trace)")
        // One sample fewer than N is not zero.
        let almost = try noiseCovarianceTrace(gradients: m, batchSize: 11, sampling: .withoutReplacement)
        #expect(almost > 0)
    }

    @Test("N = 1: a single gradient has no noise; S > 1 without replacement is an error")
    func singleSample() throws {
        let m = Self.matrix([[3.5, -1e10, 0.25]])
        for (s, sampling) in [(1, Sampling.withReplacement), (4, .withReplacement), (1, .withoutReplacement)] {
            let c = try noiseCovariance(gradients: m, batchSize: s, sampling: sampling)
            #expect(c.rows == 3 && c.columns == 3)
            #expect(c.elements.allSatisfy { $0 == 0 }, "S = \(s), \(sampling): expected 0, observed \(c.elements)")
            #expect(try noiseCovarianceTrace(gradients: m, batchSize: s, sampling: sampling) == 0)
        }
        expectError(.invalidArgument, mentioning: "batchSize") {
            try noiseCovariance(gradients: m, batchSize: 2, sampling: .withoutReplacement)
        }
    }

    @Test("Invalid batch sizes, non-finite entries and empty input throw invalidArgument")
    func errors() throws {
        let g = NoiseDefinition.randomGradients(samples: 6, dimension: 2, seed: 14)
        let m = Self.matrix(g)
        for s in [0, -1, Int.min] {
            for sampling in Self.samplings {
                expectError(.invalidArgument, mentioning: "batchSize") {
                    try noiseCovariance(gradients: m, batchSize: s, sampling: sampling)
                }
                expectError(.invalidArgument, mentioning: "batchSize") {
                    try noiseCovarianceDiagonal(gradients: m, batchSize: s, sampling: sampling)
                }
            }
        }
        expectError(.invalidArgument, mentioning: "batchSize") {
            try noiseCovariance(gradients: m, batchSize: 7, sampling: .withoutReplacement)
        }
        // With replacement S may exceed N.
        let big = try noiseCovariance(gradients: m, batchSize: 7, sampling: .withReplacement)
        Self.expectMatchesDefinition(big, NoiseDefinition.covariance(g, batchSize: 7, sampling: .withReplacement), "S = 7 > N = 6")

        for bad in [Double.nan, .infinity, -.infinity] {
            var b = m
            b[3, 1] = bad
            expectError(.invalidArgument, mentioning: "grads") { try noiseCovariance(gradients: b, batchSize: 2) }
            expectError(.invalidArgument, mentioning: "grads") { try noiseCovarianceDiagonal(gradients: b, batchSize: 2) }
            expectError(.invalidArgument, mentioning: "grads") { try noiseCovarianceTrace(gradients: b, batchSize: 2) }
            let floats = b.elements.map { Float($0) }
            expectError(.invalidArgument, mentioning: "grads") {
                try floats.withUnsafeBufferPointer { try noiseCovariance(gradients: $0, rows: 6, columns: 2, batchSize: 2) }
            }
        }
        // Entries whose sum overflows are not finite either.
        let huge = Self.matrix([[1.5e308, 0], [1.5e308, 1]])
        expectError(.invalidArgument, mentioning: "grads") { try noiseCovariance(gradients: huge, batchSize: 1) }

        expectError(.invalidArgument, mentioning: "samples") { try noiseCovariance(gradients: Ref.zeros(0, 3), batchSize: 1) }
        expectError(.invalidArgument, mentioning: "grads") { try noiseCovariance(gradients: Ref.zeros(4, 0), batchSize: 1) }
        expectError(.invalidArgument, mentioning: "grads") {
            try [1.0, 2.0, 3.0].withUnsafeBufferPointer { try noiseCovariance(gradients: $0, rows: 2, columns: 2, batchSize: 1) }
        }
    }

    @Test("Sampling.noiseFactor: 1/S and (N − S)/(S(N − 1))")
    func noiseFactor() throws {
        let cases: [(n: Int, s: Int, with: Double, without: Double)] = [
            (10, 3, 1.0 / 3, 7.0 / 27), (10, 1, 1, 1), (10, 10, 0.1, 0), (1, 1, 1, 0), (1000, 999, 1.0 / 999, 1.0 / (999 * 999)),
        ]
        for c in cases {
            let with = try Sampling.withReplacement.noiseFactor(sampleCount: c.n, batchSize: c.s)
            let without = try Sampling.withoutReplacement.noiseFactor(sampleCount: c.n, batchSize: c.s)
            #expect(abs(with - c.with) <= 2 * Ref.u * c.with, "N = \(c.n), S = \(c.s): expected 1/S = \(c.with), observed \(with)")
            #expect(
                abs(without - c.without) <= 4 * Ref.u * c.without,
                "N = \(c.n), S = \(c.s): expected (N−S)/(S(N−1)) = \(c.without), observed \(without)")
        }
        #expect(try Sampling.withReplacement.noiseFactor(sampleCount: 3, batchSize: 5) == 0.2)
        expectError(.invalidArgument, mentioning: "batchSize") { try Sampling.withoutReplacement.noiseFactor(sampleCount: 3, batchSize: 5) }
        expectError(.invalidArgument, mentioning: "batchSize") { try Sampling.withReplacement.noiseFactor(sampleCount: 3, batchSize: 0) }
        expectError(.invalidArgument, mentioning: "samples") { try Sampling.withReplacement.noiseFactor(sampleCount: 0, batchSize: 1) }
    }

    /// Gradients 10⁶ + k/1024 with integers |k| ≤ 1024: every value is exact, and so is the centred
    /// scatter (N Σ k_ij k_ik − Σk_ij Σk_ik)/(N·1024²), computed here in integers. A centred
    /// two-pass evaluation errs by about N·u (the scatter sum) plus δ²/var (δ the rounding of the
    /// mean, ≤ N u 10⁶ / N ≈ 2e−8 here): far below 1e−12. The one-pass M2 − ḡḡᵀ loses about
    /// u·10¹² ≈ 1e−4 to cancellation, which the last check confirms the test would catch.
    @Test("A large mean (10⁶, spread 1) does not cancel digits")
    func largeMean() throws {
        let n = 200, d = 3
        var rng = SeededGenerator(seed: 15)
        let k = (0..<n).map { _ in (0..<d).map { _ in Int.random(in: -1024...1024, using: &rng) } }
        let g = k.map { row in row.map { 1e6 + Double($0) / 1024 } }
        for sampling in Self.samplings {
            let s = 10
            let f = NoiseDefinition.factor(samples: n, batchSize: s, sampling: sampling)
            var exact = Ref.zeros(d, d)
            for a in 0..<d {
                for b in 0..<d {
                    var sumAB = 0, sumA = 0, sumB = 0
                    for row in k {
                        sumAB += row[a] * row[b]
                        sumA += row[a]
                        sumB += row[b]
                    }
                    let numerator = n * sumAB - sumA * sumB  // exact integer: N² × 1024² × (M2 − ḡḡᵀ)
                    exact[a, b] = f * (Double(numerator) / (Double(n * n) * 1024 * 1024))
                }
            }
            let c = try noiseCovariance(gradients: Self.matrix(g), batchSize: s, sampling: sampling)
            let err = Ref.relativeError(c, exact)
            #expect(err <= 1e-12, "\(sampling): expected the exact centred C \(exact.elements), observed \(c.elements), error \(err)")
            let diagonal = try noiseCovarianceDiagonal(gradients: Self.matrix(g), batchSize: s, sampling: sampling)
            let diagErr = Ref.relativeError(Ref.diagonal(diagonal), Ref.diagonal(exact.diagonalEntries))
            #expect(diagErr <= 1e-12, "\(sampling) diagonal: expected \(exact.diagonalEntries), observed \(diagonal), error \(diagErr)")

            let naive = NoiseDefinition.covariance(g, batchSize: s, sampling: sampling).c
            #expect(
                Ref.relativeError(naive, exact) > 1e-9,
                "the one-pass definition should lose digits here, or this test has no power")
        }
    }

    @Test("GradientMoments: count, mean and centred scatter by the definition")
    func gradientMoments() throws {
        let g = NoiseDefinition.randomGradients(samples: 40, dimension: 4, seed: 16)
        let m = Self.matrix(g)
        let (full, diagonalOnly) = try m.elements.withUnsafeBufferPointer {
            (
                try GradientMoments(gradients: $0, rows: 40, columns: 4, full: true),
                try GradientMoments(gradients: $0, rows: 40, columns: 4, full: false)
            )
        }
        // scatter/N = M2 − ḡḡᵀ = C at f = 1 (S = 1 with replacement).
        let reference = NoiseDefinition.covariance(g, batchSize: 1, sampling: .withReplacement)
        #expect(full.count == 40 && full.dimension == 4)
        for j in 0..<4 {
            let mean = g.reduce(0) { $0 + $1[j] } / 40
            let bound = Ref.gamma(41) * g.reduce(0) { $0 + abs($1[j]) } / 40
            #expect(abs(full.mean[j] - mean) <= bound, "mean \(j): expected \(mean), observed \(full.mean[j])")
        }
        let scatter = try #require(full.scatter)
        Self.expectMatchesDefinition(Ref.scale(1.0 / 40, scatter), reference, "scatter / N")
        #expect(diagonalOnly.scatter == nil)
        let worst = NoiseDefinition.worstEntry(
            observed: diagonalOnly.scatterDiagonal.map { $0 / 40 }, expected: reference.c.diagonalEntries,
            bound: reference.bound.diagonalEntries)
        #expect(worst.excess <= 0, "scatter diagonal: entry \(worst.index), error \(worst.error) over its bound")
        #expect(full.scatterDiagonal == scatter.diagonalEntries)
    }
}
