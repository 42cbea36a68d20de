#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SGDNoise
import SGDNoiseCABI
import _SGDNoiseShims
import Testing

/// The noise toolkit of docs/theory.md §2 against independent references built with plain loops
/// (`NoiseDefinition`, `Ref`): the streaming accumulator, the top eigenpairs (Gram and dense
/// routes), the comparison metrics, the gradient noise scales and the matrix-free operator; then the
/// C interface (handles, NULLs, sizes, untouched outputs).
///
/// Error budgets. The covariance references carry the entrywise worst-case rounding bound of
/// `NoiseDefinition.covariance` (γ_{N+2} times the sums of absolute products, for both the reference
/// and any summation order of the library). Eigenpairs: a backward-stable eigensolver applied to a
/// matrix known to within E has eigenvalue errors ≤ ‖E‖₂ + c·n·u·‖C‖ (Weyl) and eigenvector errors
/// ≤ that over the spectral gap (Davis–Kahan); we allow 64·max(N, D)·u·‖C‖_F for the first term.
@Suite("Noise toolkit")
struct NoiseToolkitTests {
    static let samplings: [Sampling] = [.withReplacement, .withoutReplacement]

    static func flat(_ g: [[Double]]) -> [Double] { g.flatMap { $0 } }

    /// Expects |observed − expected| ≤ bound entrywise, printing the worst entry.
    static func expectWithin(
        _ observed: [Double], _ expected: [Double], _ bound: [Double], _ label: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(observed.count == expected.count, "\(label): \(observed.count) entries, expected \(expected.count)",
                sourceLocation: sourceLocation)
        let worst = NoiseDefinition.worstEntry(observed: observed, expected: expected, bound: bound)
        #expect(
            worst.excess <= 0,
            "\(label): entry \(worst.index): expected \(expected[worst.index]), observed \(observed[worst.index]), error \(worst.error) > bound \(bound[worst.index])",
            sourceLocation: sourceLocation)
    }

    /// Random chunk sizes (≥ 1) summing to n.
    static func randomChunks(_ n: Int, _ rng: inout SeededGenerator) -> [Int] {
        var sizes: [Int] = []
        var left = n
        while left > 0 {
            let s = min(left, 1 + rng.index(max(1, n / 3)))
            sizes.append(s)
            left -= s
        }
        return sizes
    }

    // MARK: Accumulator

    @Test("Accumulator over random chunkings matches the definition and the one-shot (Double)", arguments: [11, 12, 13])
    func accumulatorDouble(seed: UInt64) throws {
        let n = 97, d = 6
        let g = NoiseDefinition.randomGradients(samples: n, dimension: d, seed: seed)
        let values = Self.flat(g)
        var rng = SeededGenerator(seed: seed + 100)
        var acc = try NoiseAccumulator(dimension: d)
        var start = 0
        for size in Self.randomChunks(n, &rng) {
            try values[(start * d)..<((start + size) * d)].withUnsafeBufferPointer { try acc.update($0, rows: size) }
            start += size
        }
        #expect(acc.count == n)
        for sampling in Self.samplings {
            for s in [1, 5, n] {
                let reference = NoiseDefinition.covariance(g, batchSize: s, sampling: sampling)
                let label = "seed \(seed), S = \(s), \(sampling)"
                let full = try acc.covariance(batchSize: s, sampling: sampling)
                Self.expectWithin(full.elements, reference.c.elements, reference.bound.elements, label + " full")
                #expect(full == full.transposed, "\(label): not exactly symmetric")
                let oneShot = try noiseCovariance(gradients: Ref.matrix(g), batchSize: s, sampling: sampling)
                Self.expectWithin(full.elements, oneShot.elements, reference.bound.elements.map { 2 * $0 }, label + " vs one-shot")
                let diag = try acc.covarianceDiagonal(batchSize: s, sampling: sampling)
                Self.expectWithin(diag, reference.c.diagonalEntries, reference.bound.diagonalEntries, label + " diag")
                let trace = try acc.covarianceTrace(batchSize: s, sampling: sampling)
                let traceBound = reference.bound.diagonalEntries.reduce(0, +) + Double(d) * Ref.u * abs(reference.c.trace)
                #expect(abs(trace - reference.c.trace) <= traceBound, "\(label) trace: expected \(reference.c.trace), observed \(trace)")
            }
        }
        // The mean, against a plain loop (error ≤ γ_N Σ|g| / N).
        for j in 0..<d {
            let exact = g.reduce(0) { $0 + $1[j] } / Double(n)
            let bound = Ref.gamma(n + 2) * g.reduce(0) { $0 + abs($1[j]) } / Double(n) * 2
            #expect(abs(acc.mean[j] - exact) <= bound, "mean[\(j)]: expected \(exact), observed \(acc.mean[j])")
        }
    }

    @Test("Float chunks, one row at a time, match the definition on their Double values")
    func accumulatorFloatRowByRow() throws {
        let n = 40, d = 5
        let g = NoiseDefinition.randomGradients(samples: n, dimension: d, seed: 21)
        let floats = Self.flat(g).map { Float($0) }
        let widened = (0..<n).map { i in (0..<d).map { Double(floats[i * d + $0]) } }
        var acc = try NoiseAccumulator(dimension: d)
        for i in 0..<n {
            try floats[(i * d)..<((i + 1) * d)].withUnsafeBufferPointer { try acc.update($0, rows: 1) }
        }
        for sampling in Self.samplings {
            let reference = NoiseDefinition.covariance(widened, batchSize: 3, sampling: sampling)
            let full = try acc.covariance(batchSize: 3, sampling: sampling)
            Self.expectWithin(full.elements, reference.c.elements, reference.bound.elements, "row by row, \(sampling)")
        }
    }

    @Test("Merging shards in any order, and merging with empty accumulators, is exact")
    func accumulatorMerge() throws {
        let n = 120, d = 4
        let g = NoiseDefinition.randomGradients(samples: n, dimension: d, seed: 31)
        let values = Self.flat(g)
        var rng = SeededGenerator(seed: 32)
        var shards: [NoiseAccumulator] = []
        var start = 0
        for size in Self.randomChunks(n, &rng) {
            var shard = try NoiseAccumulator(dimension: d)
            try values[(start * d)..<((start + size) * d)].withUnsafeBufferPointer { try shard.update($0, rows: size) }
            shards.append(shard)
            start += size
        }
        shards.shuffle(using: &rng)
        var total = try NoiseAccumulator(dimension: d)
        let empty = try NoiseAccumulator(dimension: d)
        try total.merge(empty)  // empty into empty
        #expect(total.count == 0)
        for shard in shards {
            try total.merge(shard)
            try total.merge(empty)  // merging an empty accumulator changes nothing
        }
        var fromEmpty = try NoiseAccumulator(dimension: d)
        try fromEmpty.merge(total)  // into an empty accumulator: an exact copy
        #expect(fromEmpty.count == n && fromEmpty.mean == total.mean && fromEmpty.scatter == total.scatter)
        for sampling in Self.samplings {
            let reference = NoiseDefinition.covariance(g, batchSize: 7, sampling: sampling)
            Self.expectWithin(try total.covariance(batchSize: 7, sampling: sampling).elements, reference.c.elements,
                              reference.bound.elements, "merged shards, \(sampling)")
        }
        // Merging with a copy of itself counts every gradient twice: M2 − ḡḡᵀ is unchanged.
        var doubled = total
        try doubled.merge(total)
        #expect(doubled.count == 2 * n)
        let reference = NoiseDefinition.covariance(g + g, batchSize: 7, sampling: .withReplacement)
        Self.expectWithin(try doubled.covariance(batchSize: 7).elements, reference.c.elements, reference.bound.elements, "self-merge")
    }

    @Test("A rejected chunk leaves the accumulator unchanged; empty and mismatched accumulators throw")
    func accumulatorErrors() throws {
        let d = 3
        var acc = try NoiseAccumulator(dimension: d)
        expectError(.invalidArgument, mentioning: "empty") { try acc.covariance(batchSize: 1) }
        expectError(.invalidArgument, mentioning: "empty") { try acc.noiseScale() }
        try acc.update(Ref.matrix([[1, 2, 3], [4, 5, 7]]))
        let before = acc
        for bad in [Double.nan, .infinity] {
            expectError(.invalidArgument, mentioning: "NaN") { try acc.update(Ref.matrix([[0, bad, 0]])) }
        }
        expectError(.invalidArgument, mentioning: "too large") { try acc.update(Ref.matrix([[1e300, 0, 0], [-1e300, 0, 0]])) }
        expectError(.invalidArgument, mentioning: "columns") { try acc.update(Ref.matrix([[1, 2]])) }
        expectError(.invalidArgument, mentioning: "fewer") {
            try [1.0, 2.0].withUnsafeBufferPointer { try acc.update($0, rows: 1) }
        }
        #expect(acc.count == before.count && acc.mean == before.mean && acc.scatter == before.scatter)
        try [Double]().withUnsafeBufferPointer { try acc.update($0, rows: 0) }  // zero rows: nothing happens
        #expect(acc.count == 2)
        expectError(.invalidArgument, mentioning: "dimension") { try acc.merge(try NoiseAccumulator(dimension: 4)) }
        expectError(.invalidArgument, mentioning: "batchSize") { try acc.covariance(batchSize: 3, sampling: .withoutReplacement) }
        expectError(.invalidArgument, mentioning: "dim") { try NoiseAccumulator(dimension: 0) }
        expectError(.outOfMemory, mentioning: "dim") { try NoiseAccumulator(dimension: 40_001) }
    }

    // MARK: Top eigenpairs

    /// The dense reference: C by the definition, eigenpairs by Jacobi rotations.
    static func referenceEigen(_ g: [[Double]], batchSize s: Int, sampling: Sampling) -> (values: [Double], vectors: Matrix, c: Matrix) {
        let c = NoiseDefinition.covariance(g, batchSize: s, sampling: sampling).c
        let (values, vectors) = Ref.jacobiEigen(c)
        return (Array(values.reversed()), Ref.matrix((0..<c.rows).map { i in (0..<c.rows).map { vectors[i, c.rows - 1 - $0] } }), c)
    }

    static func checkTopEigen(_ observed: TopEigenpairs, _ g: [[Double]], batchSize s: Int, sampling: Sampling, k: Int, _ label: String) {
        let n = g.count, d = g[0].count
        let ref = referenceEigen(g, batchSize: s, sampling: sampling)
        // ‖E‖₂ ≤ ‖E‖_F for the reference's own rounding E (bounded entrywise by NoiseDefinition), plus
        // the backward error of a stable eigensolver on the library's side.
        let referenceError = Ref.frobenius(NoiseDefinition.covariance(g, batchSize: s, sampling: sampling).bound)
        let budget = referenceError + 64 * Double(max(n, d)) * Ref.u * Ref.frobenius(ref.c)
        #expect(observed.values.count == k && observed.vectors.rows == d && observed.vectors.columns == k, "\(label): shapes")
        for j in 0..<k {
            #expect(abs(observed.values[j] - ref.values[j]) <= budget,
                    "\(label): eigenvalue \(j): expected \(ref.values[j]), observed \(observed.values[j]), budget \(budget)")
            let gap = min(j > 0 ? ref.values[j - 1] - ref.values[j] : .infinity, ref.values[j] - ref.values[j + 1])
            var dot = 0.0, norm = 0.0, residual = 0.0
            for i in 0..<d {
                dot += observed.vectors[i, j] * ref.vectors[i, j]
                norm += observed.vectors[i, j] * observed.vectors[i, j]
                var cv = 0.0
                for l in 0..<d { cv += ref.c[i, l] * observed.vectors[l, j] }
                residual += (cv - observed.values[j] * observed.vectors[i, j]) * (cv - observed.values[j] * observed.vectors[i, j])
            }
            #expect(abs(norm - 1) <= 16 * Double(d) * Ref.u, "\(label): vector \(j) has norm² \(norm)")
            // Up to sign: 1 − |cos θ| ≤ sin²θ ≤ (budget / gap)².
            let sinBound = 2 * budget / gap
            #expect(1 - abs(dot) <= max(sinBound * sinBound, 16 * Double(d) * Ref.u),
                    "\(label): vector \(j): |cos| = \(abs(dot)), gap \(gap), budget \(budget)")
            #expect(residual.squareRoot() <= 2 * budget, "\(label): ‖Cv − λv‖ = \(residual.squareRoot()) > \(2 * budget)")
            // The documented sign: the largest-magnitude entry is positive.
            let column = (0..<d).map { observed.vectors[$0, j] }
            let pivot = column.indices.max { abs(column[$0]) < abs(column[$1]) }!
            #expect(column[pivot] > 0, "\(label): vector \(j) not sign-normalised")
        }
    }

    @Test("Top-k eigenpairs: Gram route (N < D) and dense route (N > D) against Jacobi on the definition",
          arguments: [(9, 24, 4), (24, 24, 5), (60, 7, 3), (30, 5, 4)])
    func topEigen(n: Int, d: Int, k: Int) throws {
        // A mean 100 times the spread: an uncentred Gram matrix would have a top eigenvalue ~10⁴ times
        // too large, so a route that forgot to centre fails the eigenvalue check by far.
        var g = NoiseDefinition.randomGradients(samples: n, dimension: d, seed: UInt64(n * 100 + d))
        for i in 0..<n { for j in 0..<d { g[i][j] += 100 * Double(j % 3 + 1) } }
        for sampling in Self.samplings {
            let pairs = try noiseTopEigenpairs(gradients: Ref.matrix(g), batchSize: 3, sampling: sampling, count: k)
            Self.checkTopEigen(pairs, g, batchSize: 3, sampling: sampling, k: k, "N = \(n), D = \(d), \(sampling)")
            let floats = Self.flat(g).map { Float($0) }
            let widened = (0..<n).map { i in (0..<d).map { Double(floats[i * d + $0]) } }
            let fp = try floats.withUnsafeBufferPointer {
                try noiseTopEigenpairs(gradients: $0, rows: n, columns: d, batchSize: 3, sampling: sampling, count: k)
            }
            Self.checkTopEigen(fp, widened, batchSize: 3, sampling: sampling, k: k, "Float N = \(n), D = \(d), \(sampling)")
        }
    }

    @Test("Top-k: k out of range, beyond the numerical rank, and C = 0 throw")
    func topEigenErrors() throws {
        let g = Ref.matrix(NoiseDefinition.randomGradients(samples: 5, dimension: 10, seed: 41))
        expectError(.invalidArgument, mentioning: "k must be at least 1") { try noiseTopEigenpairs(gradients: g, batchSize: 2, count: 0) }
        expectError(.invalidArgument, mentioning: "min(N - 1, D) = 4") { try noiseTopEigenpairs(gradients: g, batchSize: 2, count: 5) }
        expectError(.invalidArgument, mentioning: "zero") {
            try noiseTopEigenpairs(gradients: g, batchSize: 5, sampling: .withoutReplacement, count: 1)
        }
        // Rank 2: rows a + x_i u + y_i v.
        var rank2 = Ref.zeros(8, 10)
        var rng = SeededGenerator(seed: 42)
        let u = rng.uniformArray(10, -1, 1), v = rng.uniformArray(10, -1, 1)
        for i in 0..<8 {
            let x = rng.normal(), y = rng.normal()
            for j in 0..<10 { rank2[i, j] = 3 + x * u[j] + y * v[j] }
        }
        _ = try noiseTopEigenpairs(gradients: rank2, batchSize: 2, count: 2)
        expectError(.invalidArgument, mentioning: "numerical rank") { try noiseTopEigenpairs(gradients: rank2, batchSize: 2, count: 3) }
        let tall = Ref.matrix((0..<12).map { i in [Double(i), 2 * Double(i), 1] })  // rank 1, dense route
        expectError(.invalidArgument, mentioning: "numerical rank") { try noiseTopEigenpairs(gradients: tall, batchSize: 2, count: 2) }
    }

    // MARK: Comparison

    @Test("compare on known pairs")
    func comparison() throws {
        let q = Ref.diagonal([1, 2, 3])
        let same = try compareCovariances(q, q, topK: 2)
        #expect(same.relativeFrobenius == 0 && abs(same.cosine - 1) <= 4 * Ref.u && same.traceRatio == 1)
        #expect(abs(same.subspaceOverlap! - 1) <= 8 * Ref.u)
        let double = try compareCovariances(Ref.scale(2, q), q)
        #expect(abs(double.relativeFrobenius - 1) <= 4 * Ref.u && abs(double.cosine - 1) <= 4 * Ref.u && double.traceRatio == 2)
        #expect(double.subspaceOverlap == nil)
        // diag(3, 2, 1) vs diag(1, 2, 3): ‖(2, 0, −2)‖/‖(1, 2, 3)‖ = √(8/14), cosine 10/14; the top
        // eigenvectors are e1 and e3 (overlap 0); the top-2 spaces share e2 (overlap 1/2).
        let reversed = Ref.diagonal([3, 2, 1])
        let r1 = try compareCovariances(reversed, q, topK: 1)
        #expect(abs(r1.relativeFrobenius - (8.0 / 14).squareRoot()) <= 8 * Ref.u)
        #expect(abs(r1.cosine - 10.0 / 14) <= 8 * Ref.u && r1.traceRatio == 1)
        #expect(abs(r1.subspaceOverlap!) <= 8 * Ref.u)
        #expect(abs(try compareCovariances(reversed, q, topK: 2).subspaceOverlap! - 0.5) <= 8 * Ref.u)
        #expect(abs(try compareCovariances(reversed, q, topK: 3).subspaceOverlap! - 1) <= 8 * Ref.u)
        // A rotation by θ of a rank-1 matrix: overlap cos²θ.
        let theta = 0.3
        let a = Ref.matrix([[1, 0], [0, 0]])
        let b = Ref.matrix([[cos(theta) * cos(theta), cos(theta) * sin(theta)], [cos(theta) * sin(theta), sin(theta) * sin(theta)]])
        let rot = try compareCovariances(b, a, topK: 1)
        #expect(abs(rot.subspaceOverlap! - cos(theta) * cos(theta)) <= 16 * Ref.u)
        #expect(abs(rot.cosine - cos(theta) * cos(theta)) <= 16 * Ref.u)
        // Huge entries do not overflow (the metrics are scale-invariant).
        let big = try compareCovariances(Ref.scale(1e300, reversed), Ref.scale(1e300, q))
        #expect(abs(big.cosine - 10.0 / 14) <= 8 * Ref.u)

        expectError(.invalidArgument, mentioning: "Q is zero") { try compareCovariances(q, Ref.zeros(3, 3)) }
        expectError(.invalidArgument, mentioning: "shape") { try compareCovariances(q, Ref.identity(2)) }
        expectError(.invalidArgument, mentioning: "k must be") { try compareCovariances(q, q, topK: 4) }
        expectError(.notSymmetric, mentioning: "P") { try compareCovariances(Ref.matrix([[1, 2], [0, 1]]), Ref.identity(2), topK: 1) }
        var nan = q
        nan[0, 1] = .nan
        expectError(.invalidArgument, mentioning: "P") { try compareCovariances(nan, q) }
    }

    // MARK: Noise scales

    @Test("Noise scales against direct loops; accumulator and array agree")
    func noiseScales() throws {
        let n = 50, d = 4
        let g = NoiseDefinition.randomGradients(samples: n, dimension: d, seed: 51)
        var rng = SeededGenerator(seed: 52)
        let h = rng.spd(d, eigenvaluesIn: 0.1, 2)
        var mean = [Double](repeating: 0, count: d)
        for row in g { for j in 0..<d { mean[j] += row[j] / Double(n) } }
        var trace = 0.0, traceH = 0.0
        for row in g {
            let c = (0..<d).map { row[$0] - mean[$0] }
            for j in 0..<d {
                trace += c[j] * c[j] / Double(n)
                for l in 0..<d { traceH += c[j] * h[j, l] * c[l] / Double(n) }
            }
        }
        let gradSq = mean.reduce(0) { $0 + $1 * $1 }
        var ghg = 0.0
        for j in 0..<d { for l in 0..<d { ghg += mean[j] * h[j, l] * mean[l] } }
        let tol = 64 * Double(n) * Ref.u  // relative: sums of N products of well-scaled terms

        let plain = try gradientNoiseScale(gradients: Ref.matrix(g))
        #expect(abs(plain.traceSigma - trace) <= tol * trace && abs(plain.gradSquaredNorm - gradSq) <= tol * gradSq)
        #expect(abs(plain.bSimple - trace / gradSq) <= 2 * tol * trace / gradSq, "B_simple: expected \(trace / gradSq), observed \(plain.bSimple)")
        #expect(plain.bNoise == nil)
        let withH = try gradientNoiseScale(gradients: Ref.matrix(g), hessian: h)
        #expect(abs(withH.traceHessianSigma! - traceH) <= tol * traceH && abs(withH.gradHessianGrad! - ghg) <= tol * ghg)
        #expect(abs(withH.bNoise! - traceH / ghg) <= 2 * tol * traceH / ghg, "B_noise: expected \(traceH / ghg), observed \(withH.bNoise!)")
        // With H = I, B_noise = B_simple.
        let identity = try gradientNoiseScale(gradients: Ref.matrix(g), hessian: Ref.identity(d))
        #expect(abs(identity.bNoise! - identity.bSimple) <= 2 * tol * identity.bSimple)
        // Σ₁ is the noise covariance at S = 1 with replacement.
        #expect(abs(plain.traceSigma - (try noiseCovarianceTrace(gradients: Ref.matrix(g), batchSize: 1))) <= tol * trace)

        var acc = try NoiseAccumulator(dimension: d)
        try acc.update(Ref.matrix(Array(g[0..<20])))
        try acc.update(Ref.matrix(Array(g[20...])))
        let fromAcc = try acc.noiseScale(hessian: h)
        #expect(abs(fromAcc.bSimple - withH.bSimple) <= 2 * tol * withH.bSimple)
        #expect(abs(fromAcc.bNoise! - withH.bNoise!) <= 2 * tol * withH.bNoise!)

        expectError(.notSymmetric, mentioning: "hessian") {
            try gradientNoiseScale(gradients: Ref.matrix(g), hessian: Ref.add(Ref.identity(d), Ref.matrix([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])))
        }
        expectError(.invalidArgument, mentioning: "hessian") { try gradientNoiseScale(gradients: Ref.matrix(g), hessian: Ref.identity(3)) }
    }

    @Test("Critical batch view: 1/(1 + B_noise/B)")
    func criticalBatch() throws {
        let r = try criticalBatchView(bNoise: 100, batchSizes: [1, 100, 1e4, 0.5])
        let expected = [1.0 / 101, 0.5, 1 / 1.01, 1.0 / 201]
        for (o, e) in zip(r, expected) { #expect(abs(o - e) <= 4 * Ref.u * e, "expected \(e), observed \(o)") }
        #expect(try criticalBatchView(bNoise: 0, batchSizes: [3]) == [1])
        expectError(.invalidArgument, mentioning: "batch_sizes") { try criticalBatchView(bNoise: 1, batchSizes: [0]) }
        expectError(.invalidArgument, mentioning: "b_noise") { try criticalBatchView(bNoise: -1, batchSizes: [1]) }
        expectError(.invalidArgument, mentioning: "b_noise") { try criticalBatchView(bNoise: .nan, batchSizes: [1]) }
    }

    /// Fed the exact expectations E|G_B|² = |G|² + Tr Σ₁ / B, the estimator returns |G|² and Tr Σ₁.
    @Test("Two-batch estimator inverts the expectations exactly; averages before dividing")
    func twoBatch() throws {
        let gradSq = 0.37, trace = 12.5
        let expected = { (b: Double) in gradSq + trace / b }
        let r = try twoBatchNoiseScale(smallBatchSquaredNorms: [expected(8)], bigBatchSquaredNorms: [expected(256)], smallBatch: 8, bigBatch: 256)
        #expect(abs(r.gradSquaredNorm - gradSq) <= 1e3 * Ref.u * gradSq, "|G|²: expected \(gradSq), observed \(r.gradSquaredNorm)")
        #expect(abs(r.traceSigma - trace) <= 1e3 * Ref.u * trace, "Tr Σ: expected \(trace), observed \(r.traceSigma)")
        // Measurements are averaged before the division: ±ε around the expectation cancel.
        let avg = try twoBatchNoiseScale(
            smallBatchSquaredNorms: [expected(8) - 0.5, expected(8) + 0.5], bigBatchSquaredNorms: [expected(256) * 0.9, expected(256) * 1.1, expected(256)],
            smallBatch: 8, bigBatch: 256)
        #expect(abs(avg.bSimple - trace / gradSq) <= 1e4 * Ref.u * trace / gradSq)
        expectError(.invalidArgument, mentioning: "big_batch") { try twoBatchNoiseScale(smallBatchSquaredNorms: [1], bigBatchSquaredNorms: [1], smallBatch: 4, bigBatch: 4) }
        expectError(.invalidArgument, mentioning: "small_batch") { try twoBatchNoiseScale(smallBatchSquaredNorms: [1], bigBatchSquaredNorms: [1], smallBatch: 0, bigBatch: 4) }
        expectError(.invalidArgument, mentioning: "at least one") { try twoBatchNoiseScale(smallBatchSquaredNorms: [], bigBatchSquaredNorms: [1], smallBatch: 1, bigBatch: 4) }
        expectError(.invalidArgument, mentioning: "small_sq_norm") { try twoBatchNoiseScale(smallBatchSquaredNorms: [-1], bigBatchSquaredNorms: [1], smallBatch: 1, bigBatch: 4) }
    }

    // MARK: Matrix-free operator

    /// C V by loops: (f/N) Σ_i c_i (c_iᵀ V), with c_i = g_i − ḡ; and the absolute-value version for
    /// the error bound (γ_{N+D+2} times it, twice for the two sums).
    static func referenceApply(_ g: [Double], n: Int, d: Int, f: Double, _ v: [Double], m: Int) -> (value: [Double], bound: [Double]) {
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += g[i * d + j] } }
        for j in 0..<d { mean[j] /= Double(n) }
        var out = [Double](repeating: 0, count: d * m), abs = out
        for i in 0..<n {
            let c = (0..<d).map { g[i * d + $0] - mean[$0] }
            for col in 0..<m {
                var dot = 0.0, absDot = 0.0
                for j in 0..<d { dot += c[j] * v[j * m + col]; absDot += Swift.abs(c[j] * v[j * m + col]) }
                for j in 0..<d {
                    out[j * m + col] += f / Double(n) * c[j] * dot
                    abs[j * m + col] += f / Double(n) * Swift.abs(c[j]) * absDot
                }
            }
        }
        // The centring itself errs by ~u|g| per entry; |g| ≤ |c| + |ḡ| folds into a larger γ.
        let gamma = 4 * Ref.gamma(n + d + 4)
        var gAbs = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { gAbs[j] = max(gAbs[j], Swift.abs(g[i * d + j])) } }
        let scaleBound = abs.indices.map { gamma * abs[$0] }
        let gAbsSum = gAbs.reduce(0, +), vMax = v.reduce(0) { max($0, Swift.abs($1)) }
        let centring = (0..<(d * m)).map { k in 8 * Ref.u * f * gAbs[k / m] * gAbsSum * vMax }
        return (out, zip(scaleBound, centring).map { $0 + $1 })
    }

    @Test("Matrix-free C·v, C·V, trace, diagonal, restrict and top-k against loops",
          arguments: [(40, 30, false), (64, 5000, true), (7, 3, false), (9, 70_001, true), (13, 66_003, false)])
    func noiseOperator(n: Int, d: Int, float: Bool) throws {
        var rng = SeededGenerator(seed: UInt64(n + d))
        var g = (0..<(n * d)).map { _ in rng.normal() + 2 }
        if float { g = g.map { Double(Float($0)) } }
        for sampling in Self.samplings {
            let s = 3
            let f = NoiseDefinition.factor(samples: n, batchSize: s, sampling: sampling)
            let v1 = rng.uniformArray(d, -1, 1)
            let v3 = rng.uniformArray(d * 3, -1, 1)
            let ref1 = Self.referenceApply(g, n: n, d: d, f: f, v1, m: 1)
            let ref3 = Self.referenceApply(g, n: n, d: d, f: f, v3, m: 3)
            let label = "N = \(n), D = \(d), \(float ? "Float" : "Double"), \(sampling)"
            let block = try Matrix(rows: d, columns: 3, elements: v3)
            let results: ([Double], Matrix, [Double], Double)
            if float {
                let op = try NoiseOperator<Float>(gradients: g.map { Float($0) }, rows: n, columns: d, batchSize: s, sampling: sampling)
                results = (try op.apply(v1), try op.apply(block), op.diagonal(), op.trace())
            } else {
                let op = try NoiseOperator<Double>(gradients: g, rows: n, columns: d, batchSize: s, sampling: sampling)
                results = (try op.apply(v1), try op.apply(block), op.diagonal(), op.trace())
            }
            let (got1, got3, diag, tr) = results
            Self.expectWithin(got1, ref1.value, ref1.bound, label + " C·v")
            Self.expectWithin(got3.elements, ref3.value, ref3.bound, label + " C·V")
            // diag C = (f/N) Σ (g_ij − ḡ_j)² by loops; the two-pass sum errs by γ_{N+4} Σ c² plus the
            // effect of the mean's rounding δ (≤ γ_N max|g|): N δ² (Σ_i c_ij = 0 up to rounding).
            do {
                var worst = 0.0
                for j in 0..<d {
                    var mu = 0.0, big = 0.0
                    for i in 0..<n { mu += g[i * d + j]; big = max(big, abs(g[i * d + j])) }
                    mu /= Double(n)
                    var ss = 0.0
                    for i in 0..<n { ss += (g[i * d + j] - mu) * (g[i * d + j] - mu) }
                    let delta = Ref.gamma(n + 2) * big
                    let bound = f / Double(n) * (4 * Ref.gamma(n + 4) * ss + 4 * Double(n) * delta * delta + 2 * Ref.u * ss)
                    worst = max(worst, abs(diag[j] - f / Double(n) * ss) - bound)
                }
                #expect(worst <= 0, "\(label) diagonal: an entry exceeds its error bound by \(worst)")
            }
            if d <= 40 {
                let rows = (0..<n).map { i in Array(g[(i * d)..<((i + 1) * d)]) }
                let reference = NoiseDefinition.covariance(rows, batchSize: s, sampling: sampling)
                Self.expectWithin(diag, reference.c.diagonalEntries, reference.bound.diagonalEntries, label + " diag")
                let traceBound = reference.bound.diagonalEntries.reduce(0, +) + Double(d) * Ref.u * reference.c.trace
                #expect(abs(tr - reference.c.trace) <= traceBound, "\(label) trace: expected \(reference.c.trace), observed \(tr)")
            }
        }
    }

    @Test("restrict(Q) = QᵀCQ and top-k through the operator")
    func operatorRestrictAndTopK() throws {
        let n = 30, d = 3000
        var rng = SeededGenerator(seed: 61)
        let g = (0..<(n * d)).map { _ in rng.normal() + 1 }
        let op = try NoiseOperator<Double>(gradients: g, rows: n, columns: d, batchSize: 4, sampling: .withoutReplacement)
        let f = NoiseDefinition.factor(samples: n, batchSize: 4, sampling: .withoutReplacement)
        let k = 3
        let q = rng.gaussianMatrix(d, k)
        let restricted = try op.restrict(q)
        // QᵀCQ = Qᵀ (C Q): the second factor by the loop reference.
        let cq = Self.referenceApply(g, n: n, d: d, f: f, q.elements, m: k)
        for a in 0..<k {
            for b in 0..<k {
                var value = 0.0, bound = 0.0
                for j in 0..<d {
                    value += q[j, a] * cq.value[j * k + b]
                    bound += abs(q[j, a]) * (cq.bound[j * k + b] + Ref.gamma(d) * abs(cq.value[j * k + b]))
                }
                #expect(abs(restricted[a, b] - value) <= 2 * bound, "QᵀCQ[\(a), \(b)]: expected \(value), observed \(restricted[a, b])")
            }
        }
        #expect(restricted == restricted.transposed)
        // Top-k through the operator: C v = λ v by the loop reference, within the Weyl budget.
        let pairs = try op.topEigenpairs(2)
        for j in 0..<2 {
            let v = (0..<d).map { pairs.vectors[$0, j] }
            let cv = Self.referenceApply(g, n: n, d: d, f: f, v, m: 1).value
            let residual = zip(cv, v).reduce(0) { $0 + ($1.0 - pairs.values[j] * $1.1) * ($1.0 - pairs.values[j] * $1.1) }.squareRoot()
            #expect(residual <= 64 * Double(d) * Ref.u * pairs.values[0], "‖Cv − λv‖ = \(residual) for λ = \(pairs.values[j])")
        }
        expectError(.invalidArgument, mentioning: "Q must be") { try op.restrict(Ref.zeros(5, 2)) }
        expectError(.invalidArgument, mentioning: "v") { try op.apply([Double](repeating: .nan, count: d)) }
        expectError(.invalidArgument, mentioning: "fewer") { try op.apply([1, 2]) }
        expectError(.invalidArgument, mentioning: "grads") {
            try NoiseOperator<Double>(gradients: [1, .nan, 3, 4], rows: 2, columns: 2, batchSize: 1)
        }
    }

    // MARK: C interface

    static func message() -> String { String(cString: sgdnoise_last_error_message()!) }

    static func noiseScales() -> sgdnoise_noise_scales {
        var s = sgdnoise_noise_scales()
        s.size = MemoryLayout<sgdnoise_noise_scales>.size
        return s
    }

    @Test("C accumulator: lifecycle, results equal the one-shot C function, bad handles and arguments")
    func cAccumulator() throws {
        let n = 30, d = 3
        let g = Self.flat(NoiseDefinition.randomGradients(samples: n, dimension: d, seed: 71))
        var handle: OpaquePointer? = nil
        #expect(sgdnoise_accumulator_create(d, &handle) == .ok && handle != nil)
        var other: OpaquePointer? = nil
        #expect(sgdnoise_accumulator_create(d, &other) == .ok)
        defer { sgdnoise_accumulator_free(handle); sgdnoise_accumulator_free(other) }
        g.withUnsafeBufferPointer { p in
            #expect(sgdnoise_accumulator_update(handle, 10, p.baseAddress) == .ok)
            let floats = g[(10 * d)...].map { Float($0) }
            floats.withUnsafeBufferPointer { #expect(sgdnoise_accumulator_update_f32(other, 20, $0.baseAddress) == .ok) }
        }
        #expect(sgdnoise_accumulator_merge(handle, other) == .ok)
        var count = -1, dim = -1
        #expect(sgdnoise_accumulator_count(handle, &count) == .ok && count == n)
        #expect(sgdnoise_accumulator_dimension(handle, &dim) == .ok && dim == d)
        var cov = [Double](repeating: 0, count: d * d), oneShot = cov
        #expect(sgdnoise_accumulator_covariance(handle, 4, 1, 0, &cov) == .ok)
        // The rows 10..<30 went in as Float: compare with the one-shot on the same values.
        let mixed = Array(g[0..<(10 * d)]) + g[(10 * d)...].map { Double(Float($0)) }
        mixed.withUnsafeBufferPointer { #expect(sgdnoise_noise_covariance(n, d, $0.baseAddress, 4, 1, 0, &oneShot) == .ok) }
        let reference = NoiseDefinition.covariance((0..<n).map { Array(mixed[($0 * d)..<(($0 + 1) * d)]) }, batchSize: 4, sampling: .withoutReplacement)
        Self.expectWithin(cov, oneShot, reference.bound.elements.map { 2 * $0 }, "C accumulator vs one-shot")
        var trace = 0.0
        #expect(sgdnoise_accumulator_covariance(handle, 4, 1, 2, &trace) == .ok)
        var mean = [Double](repeating: 0, count: d)
        #expect(sgdnoise_accumulator_mean(handle, &mean) == .ok)
        var scales = Self.noiseScales()
        #expect(sgdnoise_accumulator_noise_scale(handle, nil, &scales) == .ok)
        #expect(scales.b_noise.isNaN && scales.trace_sigma > 0 && scales.grad_sq_norm > 0)

        // Failures: status, message, untouched output.
        let sentinel = -12345.678
        var out = [Double](repeating: sentinel, count: d * d)
        #expect(sgdnoise_accumulator_covariance(nil, 1, 0, 0, &out) == .invalidArgument && Self.message().contains("accumulator"))
        #expect(sgdnoise_accumulator_covariance(handle, 1, 0, 7, &out) == .invalidArgument && Self.message().contains("kind"))
        #expect(sgdnoise_accumulator_covariance(handle, 1, 5, 0, &out) == .invalidArgument && Self.message().contains("sampling"))
        #expect(sgdnoise_accumulator_covariance(handle, 0, 0, 0, &out) == .invalidArgument && Self.message().contains("batch_size"))
        #expect(out.allSatisfy { $0 == sentinel })
        #expect(sgdnoise_accumulator_covariance(handle, 1, 0, 0, nil) == .invalidArgument)
        #expect(sgdnoise_accumulator_update(handle, 1, nil) == .invalidArgument && Self.message().contains("chunk"))
        #expect(sgdnoise_accumulator_update(handle, 0, g) == .invalidArgument && Self.message().contains("n"))
        let bad = [1.0, .nan, 3.0]
        #expect(sgdnoise_accumulator_update(handle, 1, bad) == .invalidArgument && Self.message().contains("NaN"))
        #expect(sgdnoise_accumulator_count(handle, &count) == .ok && count == n)
        #expect(sgdnoise_accumulator_merge(handle, nil) == .invalidArgument && Self.message().contains("other"))
        #expect(sgdnoise_accumulator_create(0, &other) == .invalidArgument)
        #expect(sgdnoise_accumulator_create(3, nil) == .invalidArgument)
        var empty: OpaquePointer? = nil
        #expect(sgdnoise_accumulator_create(d, &empty) == .ok)
        #expect(sgdnoise_accumulator_mean(empty, &mean) == .invalidArgument && Self.message().contains("empty"))
        var wide: OpaquePointer? = nil
        #expect(sgdnoise_accumulator_create(d + 1, &wide) == .ok)
        #expect(sgdnoise_accumulator_merge(handle, wide) == .invalidArgument && Self.message().contains("dimension"))
        #expect(sgdnoise_accumulator_merge(handle, empty) == .ok)
        #expect(sgdnoise_accumulator_merge(handle, handle) == .ok)  // self-merge: no deadlock
        #expect(sgdnoise_accumulator_count(handle, &count) == .ok && count == 2 * n)
        sgdnoise_accumulator_free(empty)
        sgdnoise_accumulator_free(wide)
        sgdnoise_accumulator_free(nil)
    }

    @Test("C noise toolkit functions: results and argument checks")
    func cToolkit() throws {
        let n = 6, d = 9
        let g = Self.flat(NoiseDefinition.randomGradients(samples: n, dimension: d, seed: 81))
        let sentinel = -12345.678
        var values = [Double](repeating: sentinel, count: 2), vectors = [Double](repeating: sentinel, count: d * 2)
        #expect(sgdnoise_noise_top_eigen(n, d, g, 2, 0, 2, &values, &vectors) == .ok)
        let swift = try noiseTopEigenpairs(gradients: try Matrix(rows: n, columns: d, elements: g), batchSize: 2, count: 2)
        #expect(values == swift.values && vectors == swift.vectors.elements)
        values = [sentinel, sentinel]
        #expect(sgdnoise_noise_top_eigen(n, d, g, 2, 0, 6, &values, nil) == .invalidArgument && Self.message().contains("k = 6"))
        #expect(sgdnoise_noise_top_eigen(n, d, nil, 2, 0, 1, &values, nil) == .invalidArgument && Self.message().contains("grads"))
        #expect(values == [sentinel, sentinel])

        var mean = [Double](repeating: 0, count: d)
        #expect(sgdnoise_gradient_mean(n, d, g, &mean) == .ok)
        let v = (0..<d).map { Double($0) - 4 }
        var out = [Double](repeating: sentinel, count: d), outNoMean = out
        #expect(sgdnoise_noise_operator_apply(n, d, g, mean, 2, 0, 1, v, &out) == .ok)
        #expect(sgdnoise_noise_operator_apply(n, d, g, nil, 2, 0, 1, v, &outNoMean) == .ok)
        #expect(out == outNoMean)
        let ref = Self.referenceApply(g, n: n, d: d, f: 0.5, v, m: 1)
        Self.expectWithin(out, ref.value, ref.bound, "C apply")
        let floats = g.map { Float($0) }
        #expect(sgdnoise_noise_operator_apply_f32(n, d, floats, nil, 2, 0, 1, v, &out) == .ok)
        var restricted = [Double](repeating: sentinel, count: 1)
        #expect(sgdnoise_noise_operator_restrict(n, d, g, mean, 2, 0, 1, v, &restricted) == .ok)
        let vCv = zip(v, ref.value).reduce(0) { $0 + $1.0 * $1.1 }
        #expect(abs(restricted[0] - vCv) <= 1e-12 * abs(vCv))
        var factor = 0.0
        #expect(sgdnoise_noise_factor(10, 3, 1, &factor) == .ok && factor == 7.0 / 27)
        #expect(sgdnoise_noise_factor(10, 11, 1, &factor) == .invalidArgument)
        out = [Double](repeating: sentinel, count: d)
        #expect(sgdnoise_noise_operator_apply(n, d, g, mean, 2, 0, 0, v, &out) == .invalidArgument && Self.message().contains("m"))
        #expect(sgdnoise_noise_operator_apply(n, d, g, mean, 2, 0, 1, nil, &out) == .invalidArgument && Self.message().contains("v"))
        let nanMean = [Double](repeating: .nan, count: d)
        #expect(sgdnoise_noise_operator_apply(n, d, g, nanMean, 2, 0, 1, v, &out) == .invalidArgument && Self.message().contains("mean"))
        #expect(out.allSatisfy { $0 == sentinel })

        var scales = Self.noiseScales()
        #expect(sgdnoise_noise_scale(n, d, g, nil, &scales) == .ok && scales.b_noise.isNaN)
        #expect(sgdnoise_two_batch_noise_scale(1, [2.0], 1, [1.0], 2, 4, &scales) == .ok)
        // |G|² = (4·1 − 2·2)/2 = 0, Tr Σ = (2 − 1)·8/2 = 4.
        #expect(scales.grad_sq_norm == 0 && scales.trace_sigma == 4 && scales.b_simple == .infinity)
        var view = [Double](repeating: 0, count: 2)
        #expect(sgdnoise_critical_batch_view(10, 2, [10, 30], &view) == .ok)
        #expect(abs(view[0] - 0.5) <= 4 * Ref.u && abs(view[1] - 0.75) <= 4 * Ref.u, "expected [0.5, 0.75], observed \(view)")
        var cmp = sgdnoise_comparison()
        cmp.size = MemoryLayout<sgdnoise_comparison>.size
        let eye = [1.0, 0, 0, 1]
        #expect(sgdnoise_compare(2, eye, eye, 0, &cmp) == .ok && cmp.rel_frobenius == 0 && cmp.trace_ratio == 1 && cmp.overlap.isNaN)
        #expect(sgdnoise_compare(2, eye, [0, 0, 0, 0], 1, &cmp) == .invalidArgument && Self.message().contains("Q is zero"))
        #expect(sgdnoise_compare(2, eye, eye, -1, &cmp) == .invalidArgument)
    }
}
