@testable import SGDNoise
import Testing

/// The Frequent Directions sketch (docs/theory.md §10) against the dense covariance built by the
/// definition (`NoiseDefinition`, plain loops): 0 ⪯ C − Ĉ ⪯ (f/N)Δ·I, interlacing of the top
/// eigenvalues, the a-priori bound on Δ, exact count, mean and trace; merges and serialized states.
/// (python/tests/test_sketch.py runs the same checks on many more shapes, up to D = 5000.)
@Suite("Noise sketch")
struct NoiseSketchTests {
    /// Gradients with a decaying noise spectrum (column j scaled by 1/(1 + j)) and a large mean.
    static func gradients(_ n: Int, _ d: Int, seed: UInt64) -> [[Double]] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in (0..<d).map { j in 50 + rng.normal() / Double(1 + j) } }
    }

    static func sketch(_ g: [[Double]], rows: Int, chunks: Int) throws -> NoiseSketch {
        let d = g[0].count
        var s = try NoiseSketch(dimension: d, rows: rows)
        let size = (g.count + chunks - 1) / chunks
        for start in stride(from: 0, to: g.count, by: size) {
            try s.update(Ref.matrix(Array(g[start..<min(start + size, g.count)])))
        }
        return s
    }

    /// Checks every promise against C by the definition; returns (ε, ‖C‖₂).
    @discardableResult
    static func checkGuarantee(_ s: NoiseSketch, _ g: [[Double]], batchSize: Int,
                               sourceLocation: SourceLocation = #_sourceLocation) throws -> (Double, Double) {
        let n = g.count, d = g[0].count
        let (c, entryBound) = NoiseDefinition.covariance(g, batchSize: batchSize, sampling: .withReplacement)
        let lambda = Array(try SymmetricEigendecomposition(c).values.reversed())
        let norm = lambda[0], rounding = 1e-11 * lambda[0]
        let bound = try s.errorBound(batchSize: batchSize)
        let k = min(s.rows, n - 1, d)
        let top = try s.topEigen(k, batchSize: batchSize)
        // Interlacing.
        for i in 0..<k {
            #expect(top.top.values[i] <= lambda[i] + rounding, "λ̂_\(i) above λ_\(i)", sourceLocation: sourceLocation)
            #expect(lambda[i] <= top.top.values[i] + bound + rounding, "λ_\(i) beyond λ̂_\(i) + ε", sourceLocation: sourceLocation)
        }
        // 0 ⪯ C − Ĉ ⪯ εI.
        var cHat = Matrix(rows: d, columns: d)
        for a in 0..<d { for b in 0..<d {
            cHat[a, b] = (0..<k).reduce(0) { $0 + top.top.values[$1] * top.top.vectors[a, $1] * top.top.vectors[b, $1] }
        } }
        let gap = try SymmetricEigendecomposition(Ref.sub(c, cHat).symmetrized).values
        #expect(gap.first! >= -rounding, "C − Ĉ not positive semi-definite: \(gap.first!)", sourceLocation: sourceLocation)
        #expect(gap.last! <= bound + rounding, "‖C − Ĉ‖ = \(gap.last!) above ε = \(bound)", sourceLocation: sourceLocation)
        // Δ ≤ tail_k / (ℓ + 1 − k) for every k ≤ ℓ.
        for kk in 0...min(s.rows, d - 1) {
            let tail = lambda[kk...].reduce(0, +)
            #expect(bound <= tail / Double(s.rows + 1 - kk) * (1 + 1e-12) + rounding, "a-priori bound at k = \(kk)",
                    sourceLocation: sourceLocation)
        }
        // Exact statistics.
        #expect(s.count == n, sourceLocation: sourceLocation)
        let mean = (0..<d).map { j in g.reduce(0) { $0 + $1[j] } / Double(n) }
        for j in 0..<d { #expect(abs(s.mean[j] - mean[j]) <= 1e-12 * 50, sourceLocation: sourceLocation) }
        // The trace to the definition's own worst-case rounding bound (twice: the sketch's pairwise
        // sums carry at most the same), which grows with (mean / spread)².
        let trace = (0..<d).reduce(0) { $0 + c[$1, $1] }
        let traceBound = 2 * (0..<d).reduce(0) { $0 + entryBound[$1, $1] }
        let sketched = try s.covarianceTrace(batchSize: batchSize)
        #expect(abs(sketched - trace) <= traceBound, "Tr C off by \(abs(sketched - trace)), bound \(traceBound)",
                sourceLocation: sourceLocation)
        return (bound, norm)
    }

    @Test("The guarantee holds against the covariance by definition, in every chunking")
    func guarantee() throws {
        for (n, d, rows, chunks) in [(300, 24, 5, 1), (300, 24, 5, 7), (120, 40, 8, 3), (40, 6, 2, 40)] {
            let g = Self.gradients(n, d, seed: UInt64(n + d + chunks))
            let s = try Self.sketch(g, rows: rows, chunks: chunks)
            let (bound, norm) = try Self.checkGuarantee(s, g, batchSize: 4)
            #expect(bound > 0 && bound < norm, "a sketch of \(rows) rows of \(d) directions shrinks, and not everything")
        }
    }

    @Test("ℓ at least the dimension: nothing is shrunk and Ĉ = C")
    func exactWhenRowsCoverTheRank() throws {
        let g = Self.gradients(90, 5, seed: 3)
        let s = try Self.sketch(g, rows: 5, chunks: 4)
        let (bound, norm) = try Self.checkGuarantee(s, g, batchSize: 3)
        #expect(bound <= 1e-14 * norm)
    }

    @Test("Merged shards and imported states keep the guarantee for the union")
    func mergeAndState() throws {
        let g = Self.gradients(240, 16, seed: 8)
        var parts = try [0, 1, 2].map { i in try Self.sketch(Array(g[(80 * i)..<(80 * i + 80)]), rows: 4, chunks: 2) }
        var imported = try parts.map { try NoiseSketch(serialized: try $0.serialized()) }
        try parts[0].merge(parts[1])
        try parts[0].merge(parts[2])
        try imported[0].merge(imported[1])
        try imported[0].merge(imported[2])
        #expect(try imported[0].serialized() == (try parts[0].serialized()))
        try Self.checkGuarantee(parts[0], g, batchSize: 5)
        var bytes = try parts[0].serialized()
        #expect(bytes.count == NoiseSketch.serializedSize(dimension: 16, rows: 4))
        bytes[60] ^= 4
        expectError(.invalidArgument, mentioning: "checksum") { try NoiseSketch(serialized: bytes) }
        expectError(.invalidArgument, mentioning: "noise accumulator") {
            try NoiseSketch(serialized: try NoiseAccumulator(dimension: 16).serialized())
        }
    }

    @Test("Refused chunks leave the sketch unchanged; sizes and k are checked")
    func refusals() throws {
        var s = try NoiseSketch(dimension: 3, rows: 2)
        try s.update(Ref.matrix([[1, 2, 3], [0, 1, 0], [2, 2, 2]]))
        let before = try s.serialized()
        expectError(.invalidArgument, mentioning: "NaN") { try s.update(Ref.matrix([[1, 1, 1], [0, .nan, 0]])) }
        expectError(.invalidArgument, mentioning: "columns") { try s.update(Ref.matrix([[1, 2]])) }
        #expect(try s.serialized() == before)
        expectError(.invalidArgument, mentioning: "exceeds") { try s.topEigen(3, batchSize: 1) }
        expectError(.invalidArgument, mentioning: "rows") { try s.merge(try NoiseSketch(dimension: 3, rows: 3)) }
        expectError(.invalidArgument, mentioning: "empty") { try NoiseSketch(dimension: 3, rows: 2).topEigen(1, batchSize: 1) }
        expectError(.invalidArgument, mentioning: "rows") { try NoiseSketch(dimension: 3, rows: 0) }
        expectError(.outOfMemory, mentioning: "rows") { try NoiseSketch(dimension: 3, rows: 5000) }
    }
}
