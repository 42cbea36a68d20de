import Foundation
@testable import SGDNoise
import Testing

/// The matrix-free curvature algorithms (Sources/SGDNoise/Curvature) against dense references:
/// thick-restart Lanczos against `SymmetricEigendecomposition`, stochastic Lanczos quadrature
/// against exact traces (by z-scores with its own standard error), the Krylov g(H)v against
/// Q g(Λ) Qᵀ v; the Hessian operator's counting, checking and error propagation.
@Suite("Curvature (matrix-free Hessian)")
struct CurvatureTests {
    // MARK: Test problems

    /// The spectra the Lanczos comparisons run on.
    enum Spectrum: String, CaseIterable, CustomStringConvertible {
        /// Uniform in [−3, 5]: negative and positive eigenvalues, well separated at both ends.
        case mixed
        /// Two tight clusters at the ends (gaps 1e-3 of the scale inside them) around a bulk.
        case clustered
        /// Exactly repeated extreme eigenvalues: 4 (three times) and −2.5 (twice), bulk in (−2, 3).
        case repeated
        /// λ_i = 10 · 0.97^i: a decaying positive spectrum (the shape of a network's Hessian).
        case decaying

        var description: String { rawValue }

        func values(_ p: Int, rng: inout SeededGenerator) -> [Double] {
            switch self {
            case .mixed:
                return rng.uniformArray(p, -3, 5)
            case .clustered:
                let top = (0..<min(12, p / 4)).map { 5 + 1e-3 * Double($0) }
                let bottom = (0..<min(12, p / 4)).map { -4 - 1e-3 * Double($0) }
                return top + bottom + rng.uniformArray(p - top.count - bottom.count, -3, 3)
            case .repeated:
                return [4, 4, 4, -2.5, -2.5] + rng.uniformArray(p - 5, -2, 3)
            case .decaying:
                return (0..<p).map { 10 * pow(0.97, Double($0)) }
            }
        }
    }

    /// H = Q diag(values) Qᵀ with Q the eigenvectors of a random symmetric Gaussian matrix (exactly
    /// symmetric: the upper triangle mirrored).
    static func problem(_ values: [Double], seed: UInt64) throws -> Matrix {
        var rng = SeededGenerator(seed: seed)
        let p = values.count
        let g = rng.gaussianMatrix(p, p)
        let q = try SymmetricEigendecomposition(Ref.symmetricFromUpper(g + g.transposed)).vectors
        var scaled = q
        for i in 0..<p { for j in 0..<p { scaled[i, j] *= values[j] } }
        return Ref.symmetricFromUpper(Matrix.product(scaled, q, transposeB: true))
    }

    static func problem(_ spectrum: Spectrum, dimension p: Int, seed: UInt64) throws -> Matrix {
        var rng = SeededGenerator(seed: seed)
        return try problem(spectrum.values(p, rng: &rng), seed: seed &+ 1)
    }

    /// ‖H q − θ q‖ by plain loops, and a bound on the rounding of that evaluation: each entry of Hq
    /// errs by at most γ_P Σ_j |h_ij q_j| ≤ γ_P ‖h_i‖ (‖q‖ = 1), so the two evaluations of the norm
    /// may differ by 2 γ_{P+2} ‖H‖_F.
    static func residual(_ h: Matrix, _ q: [Double], _ theta: Double) -> (value: Double, rounding: Double) {
        let p = h.rows
        var sum = 0.0
        for i in 0..<p {
            var s = -theta * q[i]
            for j in 0..<p { s += h[i, j] * q[j] }
            sum += s * s
        }
        return (sum.squareRoot(), 2 * Ref.gamma(p + 2) * Ref.frobenius(h))
    }

    static func row(_ m: Matrix, _ i: Int) -> [Double] {
        Array(m.elements[(i * m.columns)..<((i + 1) * m.columns)])
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    // MARK: Lanczos against the dense eigensolver

    struct LanczosCase: CustomStringConvertible, Sendable {
        let p: Int
        let spectrum: Spectrum
        let k: Int
        let which: SpectrumEnd
        /// Partial reorthogonalisation forced (the library uses it from P = 16384 on).
        var partial = false
        var description: String { "P = \(p), \(spectrum), k = \(k), \(which)\(partial ? ", partial" : "")" }
    }

    /// Every size, spectrum, k and end, except the small end of the decaying spectrum: its
    /// eigenvalues accumulate geometrically at 0 (relative gaps ~1e-5 of the spread), where any
    /// Krylov method needs thousands of products (ARPACK too) — the budget test covers that regime.
    static let lanczosCases: [LanczosCase] = [50, 200, 500].flatMap { p in
        Spectrum.allCases.flatMap { s in
            [1, 5, 10].flatMap { k in
                (s == .decaying ? [SpectrumEnd.largest] : [.largest, .smallest, .both]).flatMap {
                    // The partial route on the larger sizes too, held to the same checks.
                    [LanczosCase(p: p, spectrum: s, k: k, which: $0)]
                        + (p >= 200 ? [LanczosCase(p: p, spectrum: s, k: k, which: $0, partial: true)] : [])
                }
            }
        }
    }

    @Test("Lanczos eigenpairs match the dense eigendecomposition", arguments: lanczosCases)
    func lanczosMatchesDense(_ c: LanczosCase) throws {
        let h = try Self.problem(c.spectrum, dimension: c.p, seed: UInt64(c.p) * 31 + UInt64(c.spectrum.rawValue.count))
        let dense = try SymmetricEigendecomposition(h)
        let hessian = try HessianOperator(h)
        let result = try thickRestartEigenpairs(hessian, count: c.k, which: c.which, tolerance: 1e-10, maxSubspace: nil,
                                                maxProducts: nil, seed: 0, verify: true,
                                                partialReorthogonalisation: c.partial)
        #expect(result.converged, "\(c): not converged, residuals \(result.residuals), bound \(result.residualBound)")
        #expect(result.productCount == hessian.productCount)
        let scale = dense.spectralRadius
        let n = c.p
        // The dense indices each returned pair should match.
        var expected: [Int] = []
        if c.which != .smallest { expected += (0..<c.k).map { n - 1 - $0 } }
        if c.which != .largest { expected += Array(0..<c.k) }
        #expect(result.eigenvalues.count == expected.count && result.eigenvectorRows.rows == expected.count)
        #expect(result.eigenvectorRows.columns == n)
        for (i, index) in expected.enumerated() {
            let lambda = dense.values[index]
            let theta = result.eigenvalues[i]
            #expect(abs(theta - lambda) <= 1e-9 * scale,
                    "\(c): eigenvalue \(i): expected \(lambda), observed \(theta), error \(abs(theta - lambda) / scale) relative")
            let q = Self.row(result.eigenvectorRows, i)
            let norm = Self.dot(q, q).squareRoot()
            #expect(abs(norm - 1) <= 1e-12, "\(c): ‖q_\(i)‖ = \(norm)")
            // The eigenspace of λ within 1e-6 of the scale (the repeated eigenvalues share one).
            let space = dense.values.indices.filter { abs(dense.values[$0] - lambda) <= 1e-6 * scale }
            let gap = dense.values.indices.filter { !space.contains($0) }
                .map { abs(dense.values[$0] - lambda) }.min() ?? scale
            if gap >= 1e-3 * scale {
                let captured = space.reduce(0.0) { sum, j in
                    let d = Self.dot(q, Self.row(dense.eigenvectorRows, j))
                    return sum + d * d
                }
                #expect(captured.squareRoot() >= 1 - 1e-8,
                        "\(c): eigenvector \(i) (θ = \(theta)): |projection on its eigenspace| = \(captured.squareRoot())")
            }
            let (r, rounding) = Self.residual(h, q, theta)
            #expect(result.residuals[i] <= result.residualBound,
                    "\(c): residual \(i) = \(result.residuals[i]) above the bound \(result.residualBound)")
            #expect(abs(result.residuals[i] - r) <= rounding,
                    "\(c): residual \(i): reported \(result.residuals[i]), recomputed \(r) (rounding \(rounding))")
        }
        // Orthonormal eigenvectors.
        for i in 0..<expected.count {
            for j in 0..<i {
                let d = Self.dot(Self.row(result.eigenvectorRows, i), Self.row(result.eigenvectorRows, j))
                #expect(abs(d) <= 1e-8, "\(c): q_\(i)·q_\(j) = \(d)")
            }
        }
        // The bound is relative to the largest |Ritz value|, which never exceeds ‖H‖₂.
        #expect(result.residualBound > 0 && result.residualBound <= 1e-10 * scale * (1 + 1e-12))
        let high = c.which == .smallest ? 0 : c.k
        #expect(result.largestRange == 0..<high)
        #expect(result.smallestRange == high..<expected.count)
    }

    @Test("Partial reorthogonalisation at P = 40 000: float64 and float32-rounded products, against the known spectrum and the full route",
          arguments: [false, true])
    func partialReorthogonalisation(_ single: Bool) throws {
        // A diagonal Hessian in a basis Lanczos cannot see: 30 separated top eigenvalues above a bulk
        // in [−1, 1]. The float32 case rounds every product to single precision (relative error
        // ~6e-8), as a float32 network's products do.
        let p = 40_000
        var rng = SeededGenerator(seed: 11)
        var d = (0..<p).map { _ in Double.random(in: -1...1, using: &rng) }
        for i in 0..<30 { d[i] = 6 - 0.15 * Double(i) }
        let sorted = d.sorted(by: >)
        let hessian = try HessianOperator(dimension: p) { v, out in
            for i in 0..<p { out[i] = single ? Double(Float(d[i] * v[i])) : d[i] * v[i] }
        }
        let tolerance = single ? 1e-4 : 1e-9
        var runs: [(result: LanczosEigenpairs, skipped: Int, noise: Double?)] = []
        for partial in [true, false] {
            var solver = try ThickRestartLanczos(hessian: hessian, subspace: 20, high: 10, low: 0,
                                                 tolerance: tolerance, seed: 3, partial: partial)
            let result = try solver.run(budget: 2000, which: .largest, verify: true)
            runs.append((result, solver.skippedReorthogonalisations, solver.orthogonality?.noise))
        }
        let (partial, full) = (runs[0], runs[1])
        #expect(partial.result.converged && full.result.converged)
        // The products' own error (zero, or ~6e-8 relative) is the floor of every comparison.
        let floor = single ? 1e-6 * sorted[0] : 1e-12 * sorted[0]
        for i in 0..<10 {
            #expect(abs(partial.result.eigenvalues[i] - sorted[i]) <= floor,
                    "θ_\(i) = \(partial.result.eigenvalues[i]), expected \(sorted[i])")
            #expect(abs(partial.result.eigenvalues[i] - full.result.eigenvalues[i]) <= floor)
            #expect(partial.result.residuals[i] <= partial.result.residualBound)
        }
        let q = partial.result.eigenvectorRows
        for i in 0..<10 {
            for j in 0...i {
                let dot = Self.dot(Self.row(q, i), Self.row(q, j))
                #expect(abs(dot - (i == j ? 1 : 0)) <= 1e-12, "q_\(i)·q_\(j) = \(dot)")
            }
        }
        // Most steps skip the passes over the basis, and the measured noise level is the
        // products' precision; no more products than the full route, within a cycle's few.
        #expect(partial.skipped * 2 > partial.result.productCount,
                "skipped \(partial.skipped) of \(partial.result.productCount)")
        #expect(full.skipped == 0 && full.noise == nil)
        let noise = try #require(partial.noise)
        if single {
            #expect(noise > 1e-10 && noise < 1e-6, "ν = \(noise)")
        } else {
            #expect(noise < 1e-13, "ν = \(noise)")
        }
        #expect(partial.result.productCount <= full.result.productCount + 6,
                "products: partial \(partial.result.productCount), full \(full.result.productCount)")
    }

    @Test("A basis pool hands a dropped block to the next basis that fits, and frees nothing early")
    func basisPool() throws {
        let pool = KrylovBasisPool()
        try KrylovBasisPool.$current.withValue(pool) {
            var first: KrylovBasis? = try KrylovBasis(dimension: 1000, capacity: 22)
            let storage = first!.storage
            first!.vector(21)[999] = 7
            first = nil  // back to the pool
            let small = try KrylovBasis(dimension: 1000, capacity: 1)  // a workspace: not the 22 rows
            #expect(small.storage != storage && small.capacity == 1)
            let other = try KrylovBasis(dimension: 999, capacity: 20)  // another dimension
            #expect(other.storage != storage)
            let second = try KrylovBasis(dimension: 1000, capacity: 17)  // fits: reused whole
            #expect(second.storage == storage && second.capacity == 22)
            #expect(second.vector(21)[999] == 7)  // its memory, not a fresh block
            try second.reserve(30)  // grows as any basis
            #expect(second.capacity >= 30)
        }
        // Outside a pool's scope a basis owns its block.
        let alone = try KrylovBasis(dimension: 10, capacity: 2)
        #expect(alone.capacity == 2)
    }

    @Test("Lanczos with P ≤ the subspace: exact eigenpairs, repeated eigenvalues included")
    func lanczosSmallDimension() throws {
        // Four distinct eigenvalues in dimension 9: the Krylov space of one vector has dimension 4,
        // the other copies come in through the invariant-subspace continuation.
        let values: [Double] = [3, 3, 3, 1, 1, -2, -2, -2, 0.5]
        let h = try Self.problem(values, seed: 7)
        let dense = try SymmetricEigendecomposition(h)
        for which in [SpectrumEnd.largest, .smallest, .both] {
            let k = which == .both ? 4 : 5
            let result = try lanczosEigenpairs(try HessianOperator(h), count: k, which: which)
            #expect(result.converged)
            var expected: [Double] = []
            if which != .smallest { expected += dense.values.reversed().prefix(k) }
            if which != .largest { expected += dense.values.prefix(k) }
            for (theta, lambda) in zip(result.eigenvalues, expected) {
                #expect(abs(theta - lambda) <= 1e-12 * 3, "\(which): expected \(lambda), observed \(theta)")
            }
            #expect(result.productCount == 9 + result.eigenvalues.count,
                    "\(which): the whole space (9 products) plus one per residual, observed \(result.productCount)")
        }
        // P = 15 ≤ m = 20: the basis spans R^15, 15 products plus one per residual.
        let h15 = try Self.problem(.mixed, dimension: 15, seed: 8)
        let dense15 = try SymmetricEigendecomposition(h15)
        let r15 = try lanczosEigenpairs(try HessianOperator(h15), count: 2, which: .both)
        #expect(r15.converged && r15.productCount == 15 + 4, "P = 15: \(r15.productCount) products")
        let expected15 = [dense15.values[14], dense15.values[13], dense15.values[0], dense15.values[1]]
        for (theta, lambda) in zip(r15.eigenvalues, expected15) { #expect(abs(theta - lambda) <= 1e-12 * 5) }
        // P = 2, k = 1.
        let two = try lanczosEigenpairs(try HessianOperator(try Matrix([[2, 1], [1, 2]])), count: 1)
        #expect(abs(two.eigenvalues[0] - 3) <= 1e-14 && two.converged)
        #expect(abs(abs(two.eigenvectorRows[0, 0]) - 0.5.squareRoot()) <= 1e-14)
    }

    @Test("Equal seeds give equal results, other seeds the same eigenvalues")
    func determinism() throws {
        let h = try Self.problem(.mixed, dimension: 200, seed: 12)
        let hessian = try HessianOperator(h)
        let a = try lanczosEigenpairs(hessian, count: 3, which: .both, seed: 3)
        let b = try lanczosEigenpairs(hessian, count: 3, which: .both, seed: 3)
        let c = try lanczosEigenpairs(hessian, count: 3, which: .both, seed: 4)
        #expect(a.eigenvalues == b.eigenvalues && a.eigenvectorRows == b.eigenvectorRows)
        #expect(a.residuals == b.residuals && a.productCount == b.productCount && a.restarts == b.restarts)
        for (x, y) in zip(a.eigenvalues, c.eigenvalues) { #expect(abs(x - y) <= 1e-9 * 5) }
        let s1 = try StochasticLanczosQuadrature(hessian: hessian, probes: 3, steps: 5, seed: 9)
        let s2 = try StochasticLanczosQuadrature(hessian: hessian, probes: 3, steps: 5, seed: 9)
        let s3 = try StochasticLanczosQuadrature(hessian: hessian, probes: 3, steps: 5, seed: 10)
        #expect(s1.rules == s2.rules && s1.rules != s3.rules)
    }

    @Test("Lanczos on H = 0 and on a multiple of the identity")
    func lanczosDegenerate() throws {
        let zero = try lanczosEigenpairs(try HessianOperator(Matrix(rows: 30, columns: 30)), count: 3)
        #expect(zero.converged && zero.eigenvalues == [0, 0, 0] && zero.residuals == [0, 0, 0])
        let identity = try lanczosEigenpairs(try HessianOperator(2 * Matrix.identity(30)), count: 4, which: .both)
        #expect(identity.converged)
        for theta in identity.eigenvalues { #expect(abs(theta - 2) <= 1e-14) }
    }

    @Test("Lanczos out of budget returns converged = false with honest residuals")
    func lanczosBudget() throws {
        let h = try Self.problem(.clustered, dimension: 200, seed: 3)
        let hessian = try HessianOperator(h)
        let result = try lanczosEigenpairs(hessian, count: 5, tolerance: 1e-12, maxSubspace: 12, maxProducts: 17)
        #expect(!result.converged)
        #expect(result.productCount == 17 && hessian.productCount == 17)
        for i in 0..<5 {
            let (r, rounding) = Self.residual(h, Self.row(result.eigenvectorRows, i), result.eigenvalues[i])
            #expect(abs(result.residuals[i] - r) <= rounding)
        }
        #expect(result.residuals.contains { $0 > result.residualBound })
        // A tolerance below rounding: the estimates pass, the honest residuals cannot.
        let strict = try lanczosEigenpairs(try HessianOperator(try Self.problem(.mixed, dimension: 200, seed: 4)),
                                           count: 2, tolerance: 1e-18)
        #expect(!strict.converged)
    }

    /// The cost in products. On this matrix (exported and run through scipy 1.17's `eigsh` with a
    /// counting LinearOperator, k = 10, which = 'LA', tol = 1e-8, four start vectors) ARPACK used 64
    /// products; this run uses 81 (seeds 0…3: 79–83): about 60 for the iteration, 11 for the
    /// verification cycle and 10 for the explicit residuals, neither of which ARPACK does
    /// (`verify: false` drops both: `lanczosUnverified`). The bound
    /// 120 (1.5 times the measured count, under twice ARPACK's) leaves room for changes of rounding
    /// or seed but fails if restarting or the convergence test regress.
    @Test("The HVP count for k = 10 largest of a 500 × 500 decaying spectrum at tolerance 1e-8")
    func lanczosProductCount() throws {
        let h = try Self.problem(.decaying, dimension: 500, seed: 11)
        let dense = try SymmetricEigendecomposition(h)
        let result = try lanczosEigenpairs(try HessianOperator(h), count: 10, tolerance: 1e-8)
        #expect(result.converged)
        for i in 0..<10 {
            #expect(abs(result.eigenvalues[i] - dense.values[499 - i]) <= 1e-8 * dense.spectralRadius)
        }
        #expect(result.productCount <= 120, "observed \(result.productCount) products")
    }

    /// `verify: false` is ARPACK's contract: stop when the Lanczos estimates converge, return the
    /// Ritz values and the relation's residuals. On the matrix of `lanczosProductCount`, where
    /// scipy's `eigsh` used 64 products, it must use no more, with the same eigenvalues and
    /// residuals that agree with the explicitly recomputed ones (the relation holds to rounding).
    @Test("Unverified Lanczos: ARPACK's contract in no more products than ARPACK, honest residuals")
    func lanczosUnverified() throws {
        let h = try Self.problem(.decaying, dimension: 500, seed: 11)
        let dense = try SymmetricEigendecomposition(h)
        for seed in UInt64(0)..<4 {
            let result = try lanczosEigenpairs(try HessianOperator(h), count: 10, tolerance: 1e-8, seed: seed,
                                               verify: false)
            #expect(result.converged)
            #expect(result.productCount <= 64, "seed \(seed): \(result.productCount) products")
            for i in 0..<10 {
                #expect(abs(result.eigenvalues[i] - dense.values[499 - i]) <= 1e-8 * dense.spectralRadius)
                let (r, rounding) = Self.residual(h, Self.row(result.eigenvectorRows, i), result.eigenvalues[i])
                #expect(result.residuals[i] <= result.residualBound)
                #expect(abs(result.residuals[i] - r) <= rounding + 1e-12 * dense.spectralRadius,
                        "seed \(seed), pair \(i): reported \(result.residuals[i]), recomputed \(r)")
            }
        }
        // Below the relation's rounding level no residual can be claimed.
        let strict = try lanczosEigenpairs(try HessianOperator(h), count: 2, tolerance: 1e-18, verify: false)
        #expect(!strict.converged && strict.residuals.allSatisfy { $0 > strict.residualBound })
    }

    @Test("The long-vector helpers agree with plain loops, and the norm neither overflows nor underflows")
    func longVectorKernels() throws {
        var rng = SeededGenerator(seed: 60)
        let p = 37, rows = 4
        let a = rng.uniformArray(rows * p, -1, 1)
        let x = rng.uniformArray(p, -1, 1)
        let c = rng.uniformArray(rows, -1, 1)
        let close = { (u: Double, v: Double) in abs(u - v) <= 1e-14 * max(1, abs(v)) }
        func dot(_ u: ArraySlice<Double>, _ v: [Double]) -> Double { zip(u, v).reduce(0) { $0 + $1.0 * $1.1 } }
        try a.withUnsafeBufferPointer { pa in
            try x.withUnsafeBufferPointer { px in
                let a0 = pa.baseAddress!, x0 = px.baseAddress!
                #expect(close(longDot(a0, x0, count: p), dot(a[0..<p], x)))
                #expect(close(longNorm(x0, count: p), dot(x[...], x).squareRoot()))
                var projections = [Double](repeating: 0, count: rows)
                projectRows(a0, rows: rows, length: p, x0, into: &projections)
                for r in 0..<rows { #expect(close(projections[r], dot(a[(r * p)..<((r + 1) * p)], x))) }
                var y = x
                c.withUnsafeBufferPointer { pc in
                    subtractRows(a0, rows: rows, length: p, coefficients: pc.baseAddress!, from: &y)
                }
                for i in 0..<p {
                    #expect(close(y[i], x[i] - (0..<rows).reduce(0) { $0 + c[$1] * a[$1 * p + i] }))
                }
                var z = x
                longAxpy(0.7, a0, &z, count: p)
                for i in 0..<p { #expect(close(z[i], x[i] + 0.7 * a[i])) }
                var s = x
                scaleInPlace(&s, count: p, by: -0.3)
                #expect(s == x.map { $0 * -0.3 })  // one rounding per entry: exact
                // Recombination in place over the basis rows.
                let basis = try KrylovBasis(dimension: p, capacity: rows)
                basis.storage.update(from: a0, count: rows * p)
                let coefficients = rng.uniformArray(2 * rows, -1, 1)
                basis.combine(coefficients: coefficients, outputs: 2, from: rows, into: basis.storage)
                for i in 0..<(2 * p) {
                    var expected = 0.0
                    for r in 0..<rows { expected += coefficients[(i / p) * rows + r] * a[r * p + i % p] }
                    #expect(close(basis.storage[i], expected))
                }
            }
        }
        // A NaN entry gives NaN, an infinite one +∞, whatever the others (the scaled fallback).
        for (entries, expected) in [([Double.nan, 0], Double.nan), ([0, .nan], .nan), ([1e200, .nan], .nan),
                                    ([.infinity, .nan], .nan), ([.nan, .infinity], .nan), ([1e200, .infinity], .infinity)] {
            let norm = entries.withUnsafeBufferPointer { longNorm($0.baseAddress!, count: 2) }
            #expect(norm.isNaN == expected.isNaN && (expected.isNaN || norm == expected), "\(entries): \(norm)")
        }
        // ‖x‖ where xᵀx overflows (entries 1e200) or underflows (1e-200): scaled, to rounding.
        for magnitude in [1e200, 1e-200] {
            let big = x.map { $0 * magnitude }
            let expected = dot(x[...], x).squareRoot() * magnitude
            let norm = big.withUnsafeBufferPointer { longNorm($0.baseAddress!, count: p) }
            #expect(abs(norm - expected) <= 1e-14 * expected)
        }
    }

    @Test("The product counter equals the number of closure calls")
    func productCounter() throws {
        let h = try Self.problem(.mixed, dimension: 60, seed: 5)
        var calls = 0
        let hessian = try HessianOperator(dimension: 60) { v, out in
            calls += 1
            for i in 0..<60 {
                var s = 0.0
                for j in 0..<60 { s += h[i, j] * v[j] }
                out[i] = s
            }
        }
        let result = try lanczosEigenpairs(hessian, count: 3, which: .both)
        #expect(calls == hessian.productCount && calls == result.productCount, "calls \(calls), counter \(hessian.productCount)")
        let slq = try StochasticLanczosQuadrature(hessian: hessian, probes: 4, steps: 7)
        #expect(slq.productCount == 28 && calls == hessian.productCount)
        let f = try krylovMatrixFunction({ exp($0 / 5) }, hessian: hessian, vector: [Double](repeating: 1, count: 60))
        #expect(calls == hessian.productCount && f.productCount == f.steps)
        _ = try hessian.apply([Double](repeating: 0.5, count: 60))
        #expect(calls == hessian.productCount)
    }

    /// The Lanczos steps check each product in their first pass over it (`apply(…, checked: false)`):
    /// a NaN or an infinity at any product, in any row of a block, through the preconditioned H̃,
    /// still throws `numericalFailure` naming the entry, the vector of its call and the product,
    /// and an overflowing but finite product is not refused.
    @Test("A NaN/Inf at the n-th product is reported with its entry, vector and product number")
    func deferredProductCheck() throws {
        let p = 30
        for bad in [1, 4, 9] {
            for value in [Double.nan, .infinity, -.infinity] {
                // A fresh operator per run: the product number counts the operator's products.
                func single() throws -> HessianOperator {
                    var calls = 0
                    return try HessianOperator(dimension: p) { v, out in
                        calls += 1
                        for i in 0..<p { out[i] = Double(i + 1) * v[i] }
                        if calls == bad { out[7] = value }
                    }
                }
                let message = "entry 7 of vector 0 is \(value), product \(bad))"
                expectError(.numericalFailure, mentioning: message) { try lanczosEigenpairs(try single(), count: 2) }
                expectError(.numericalFailure, mentioning: message) {
                    try StochasticLanczosQuadrature(hessian: try single(), probes: 3, steps: 5)
                }
                expectError(.numericalFailure, mentioning: message) {
                    try krylovMatrixFunction({ exp($0 / 10) }, hessian: try single(),
                                             vector: (0..<p).map { Double($0 % 7) - 3 })
                }
                let tilde = try HessianOperator(preconditioning: try single(), learningRate: .scalar(0.01))
                expectError(.numericalFailure, mentioning: message) { try lanczosEigenpairs(tilde, count: 2) }
            }
        }
        // A block of three probes: the second row of the second call is bad (product 5).
        var blockCalls = 0
        let block = try HessianOperator(dimension: p, blockSize: 3) { count, v, out in
            blockCalls += 1
            for r in 0..<count { for i in 0..<p { out[r * p + i] = Double(i + 1) * v[r * p + i] } }
            if blockCalls == 2 { out[1 * p + 4] = .nan }
        }
        expectError(.numericalFailure, mentioning: "entry 4 of vector 1 is nan, product 5)") {
            try StochasticLanczosQuadrature(hessian: block, probes: 3, steps: 5)
        }
        // Finite entries whose squares overflow are not refused.
        let huge = try HessianOperator(dimension: p) { v, out in for i in 0..<p { out[i] = 1e200 * Double(i + 1) * v[i] } }
        #expect(throws: Never.self) { try lanczosEigenpairs(huge, count: 2, tolerance: 1e-8) }
        #expect(throws: Never.self) { try StochasticLanczosQuadrature(hessian: huge, probes: 2, steps: 4) }
    }

    struct Cancelled: Error, Equatable {}

    @Test("NaN products throw numericalFailure; the closure's errors propagate; invalid arguments are rejected")
    func operatorErrors() throws {
        let nan = try HessianOperator(dimension: 10) { _, out in
            for i in 0..<10 { out[i] = 0 }
            out[3] = .nan
        }
        expectError(.numericalFailure, mentioning: "NaN/Inf") { try lanczosEigenpairs(nan, count: 2) }
        expectError(.numericalFailure, mentioning: "NaN/Inf") { try StochasticLanczosQuadrature(hessian: nan, probes: 2, steps: 3) }
        expectError(.numericalFailure, mentioning: "NaN/Inf") {
            try krylovMatrixFunction({ $0 }, hessian: nan, vector: [Double](repeating: 1, count: 10))
        }
        let infinite = try HessianOperator(dimension: 4) { v, out in for i in 0..<4 { out[i] = v[i] * .infinity } }
        expectError(.numericalFailure, mentioning: "NaN/Inf") { try infinite.apply([1, 1, 1, 1]) }

        var calls = 0
        let cancelling = try HessianOperator(dimension: 40) { v, out in
            calls += 1
            if calls == 5 { throw Cancelled() }
            for i in 0..<40 { out[i] = Double(i) * v[i] }
        }
        #expect(throws: Cancelled.self) { try lanczosEigenpairs(cancelling, count: 2) }
        #expect(calls == 5 && cancelling.productCount == 5)

        let h = try HessianOperator(Matrix.diagonal([1, 2, 3, 4]))
        expectError(.invalidArgument, mentioning: "dimension") { try HessianOperator(dimension: 0) { _, _ in } }
        expectError(.invalidArgument, mentioning: "P = 1") { try lanczosEigenpairs(try HessianOperator(Matrix.identity(1)), count: 1) }
        expectError(.invalidArgument, mentioning: "k = 4") { try lanczosEigenpairs(h, count: 4) }
        expectError(.invalidArgument, mentioning: "2k = 4") { try lanczosEigenpairs(h, count: 2, which: .both) }
        expectError(.invalidArgument, mentioning: "k must be at least 1") { try lanczosEigenpairs(h, count: 0) }
        expectError(.invalidArgument, mentioning: "tolerance") { try lanczosEigenpairs(h, count: 1, tolerance: 0) }
        expectError(.invalidArgument, mentioning: "tolerance") { try lanczosEigenpairs(h, count: 1, tolerance: .nan) }
        let big = try HessianOperator(Matrix.diagonal((0..<50).map(Double.init)))
        expectError(.invalidArgument, mentioning: "maxSubspace") { try lanczosEigenpairs(big, count: 5, maxSubspace: 5) }
        expectError(.invalidArgument, mentioning: "maxProducts") { try lanczosEigenpairs(big, count: 5, maxProducts: 20) }
        expectError(.invalidArgument, mentioning: "probes") { try StochasticLanczosQuadrature(hessian: h, probes: 0) }
        expectError(.invalidArgument, mentioning: "steps") { try StochasticLanczosQuadrature(hessian: h, steps: 0) }
        expectError(.invalidArgument, mentioning: "probes") { try traceEstimate(of: { $0 }, hessian: h, probes: 1) }
        expectError(.invalidArgument, mentioning: "vector") { try krylovMatrixFunction({ $0 }, hessian: h, vector: [1, 2]) }
        expectError(.invalidArgument, mentioning: "vector") { try krylovMatrixFunction({ $0 }, hessian: h, vector: [1, .nan, 0, 0]) }
        expectError(.invalidArgument, mentioning: "maxSteps") { try krylovMatrixFunction({ $0 }, hessian: h, vector: [1, 0, 0, 0], maxSteps: 0) }
        expectError(.numericalFailure, mentioning: "g is not finite") {
            try krylovMatrixFunction({ _ in .nan }, hessian: h, vector: [1, 1, 1, 1])
        }
        expectError(.notSymmetric, mentioning: "hessian") { try HessianOperator(try Matrix([[1, 2], [3, 4]])) }
        expectError(.invalidArgument, mentioning: "v must have") { try h.apply([1, 2]) }
        expectError(.notPositiveDefinite, mentioning: "learningRate") {
            try HessianOperator(preconditioning: h, learningRate: .diagonal([1, 1, 0, 1]))
        }
        expectError(.invalidArgument, mentioning: "learningRate") { try HessianOperator(preconditioning: h, learningRate: .diagonal([1, 1])) }
        expectError(.invalidArgument, mentioning: "learningRate") { try HessianOperator(preconditioning: h, learningRate: .scalar(-1)) }
        expectError(.invalidArgument, mentioning: "learningRate") {
            try HessianOperator(preconditioning: h, learningRate: .matrix(Matrix.identity(4)))
        }
        let q = try Matrix([[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5]])
        expectError(.invalidArgument, mentioning: "orthonormal") { try Deflation(eigenvalues: [1, 2], eigenvectorRows: q) }
        expectError(.invalidArgument, mentioning: "dimension") {
            try StochasticLanczosQuadrature(hessian: big, deflation: try Deflation(eigenvalues: [1], eigenvectorRows: try Matrix([[1, 0, 0, 0]])))
        }
    }

    @Test("The preconditioned operator: D^{1/2} H D^{1/2} and λH")
    func preconditioned() throws {
        let h = try Self.problem(.mixed, dimension: 40, seed: 9)
        var rng = SeededGenerator(seed: 10)
        let d = rng.uniformArray(40, 0.1, 2)
        let base = try HessianOperator(h)
        let tilde = try HessianOperator(preconditioning: base, learningRate: .diagonal(d))
        var reference = h
        for i in 0..<40 { for j in 0..<40 { reference[i, j] *= (d[i] * d[j]).squareRoot() } }
        let dense = try SymmetricEigendecomposition(Ref.symmetricFromUpper(reference))
        let result = try lanczosEigenpairs(tilde, count: 3, which: .both)
        #expect(result.converged)
        let expected = Array(dense.values.reversed().prefix(3)) + Array(dense.values.prefix(3))
        for (theta, lambda) in zip(result.eigenvalues, expected) {
            #expect(abs(theta - lambda) <= 1e-9 * dense.spectralRadius, "expected \(lambda), observed \(theta)")
        }
        #expect(base.productCount == tilde.productCount)
        let scaled = try HessianOperator(preconditioning: base, learningRate: .scalar(0.25))
        let v = rng.uniformArray(40, -1, 1)
        let hv = try base.apply(v)
        let sv = try scaled.apply(v)
        for i in 0..<40 { #expect(abs(sv[i] - 0.25 * hv[i]) <= 1e-15 * abs(hv[i]) + 1e-300) }
        // The Lanczos steps take λH's products unscaled and fold λ into their coefficients: the
        // eigenpairs (both reorthogonalisation routes) and g(λH)v equal those of the dense λH.
        let mixed = try SymmetricEigendecomposition(h)
        for partial in [false, true] {
            let eigen = try thickRestartEigenpairs(scaled, count: 3, which: .both, tolerance: 1e-10, maxSubspace: nil,
                                                   maxProducts: nil, seed: 0, verify: true,
                                                   partialReorthogonalisation: partial)
            let expected = Array(mixed.values.reversed().prefix(3)) + Array(mixed.values.prefix(3))
            for (theta, lambda) in zip(eigen.eigenvalues, expected) {
                #expect(abs(theta - 0.25 * lambda) <= 1e-9 * mixed.spectralRadius, "expected \(0.25 * lambda), observed \(theta)")
            }
        }
        let g = { (x: Double) in exp(-x) }
        let exact = mixed.reconstruct { g(0.25 * $0) }.apply(v)
        for deflation in [nil, Deflation(try lanczosEigenpairs(scaled, count: 2))] {
            let result = try krylovMatrixFunction(g, hessian: scaled, vector: v, deflation: deflation, maxSteps: 40)
            let error = zip(result.value, exact).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            #expect(error <= 1e-10 * Self.dot(exact, exact).squareRoot(), "deflated: \(deflation != nil): error \(error)")
        }
    }

    // MARK: Stochastic Lanczos quadrature

    /// A spectrum within (0, 1.5) and its matrix.
    static func quadratureProblem(_ p: Int, seed: UInt64) throws -> (h: Matrix, values: [Double]) {
        var rng = SeededGenerator(seed: seed)
        let values = rng.uniformArray(p, 0.01, 1.49)
        return (try problem(values, seed: seed &+ 1), values)
    }

    @Test("The quadrature rules of the Krylov function runs: Gauss rules of (Πz)ᵀH^j(Πz), and the same g(H)z")
    func functionRunRules() throws {
        let p = 120, s = 6
        let (h, _) = try Self.quadratureProblem(p, seed: 54)
        let hessian = try HessianOperator(h)
        let deflation = Deflation(try lanczosEigenpairs(hessian, count: 3))
        var rng = SeededGenerator(seed: 55)
        let zs = (0..<3).map { _ in rng.uniformArray(p, -1, 1) }
        // Πz = 0 (z = 0): an empty rule and no steps.
        let inSpan = [Double](repeating: 0, count: p)
        let g: (Double) -> Double = { 1 / (2 - $0) }
        let (results, rules) = try krylovMatrixFunctionsAndRules(
            [g], hessian: hessian, vectors: zs + [inSpan], deflation: deflation, tolerance: 1e-12, maxSteps: s,
            quadrature: true)
        let plain = try krylovMatrixFunctions([g], hessian: hessian, vectors: zs + [inSpan], deflation: deflation,
                                              maxSteps: s)
        #expect(rules.count == 4 && rules[3].nodes.isEmpty && rules[3].weights.isEmpty)
        for (r, z) in zs.enumerated() {
            // Πz by the dense projector.
            var pz = z
            for i in 0..<3 {
                let q = (0..<p).map { deflation.eigenvectorRows[i, $0] }
                let c = Self.dot(q, z)
                for a in 0..<p { pz[a] -= c * q[a] }
            }
            let rule = rules[r]
            #expect(rule.nodes.count == s && rule.weights.count == s, "probe \(r): \(rule.nodes.count) nodes")
            // Exact for polynomials of degree < 2s: Σ_l w_l θ_l^j = (Πz)ᵀ H^j (Πz).
            var power = pz
            for j in 0..<(2 * s) {
                let expected = Self.dot(pz, power)
                let quadrature = zip(rule.nodes, rule.weights).reduce(0) { $0 + $1.1 * pow($1.0, Double(j)) }
                #expect(abs(quadrature - expected) <= 1e-10 * Self.dot(pz, pz),
                        "probe \(r), moment \(j): \(quadrature) against \(expected)")
                power = h.apply(power)
            }
            // The same g(H)z as without the rules (the runs go on past convergence, to rounding).
            let size = Self.dot(plain[r][0].value, plain[r][0].value).squareRoot()
            let difference = zip(results[r][0].value, plain[r][0].value).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            #expect(difference.squareRoot() <= 1e-12 * size && results[r][0].steps == s)
        }
        #expect(results[3][0].value == plain[3][0].value && results[3][0].steps == 0)
    }

    @Test("SLQ traces of x, x² and 1/(2 − x) lie within 4 standard errors; the standard error falls as 1/√probes")
    func slqTraces() throws {
        let (h, values) = try Self.quadratureProblem(150, seed: 21)
        let hessian = try HessianOperator(h)
        let functions: [(String, (Double) -> Double)] = [("x", { $0 }), ("x²", { $0 * $0 }), ("1/(2 − x)", { 1 / (2 - $0) })]
        let few = try StochasticLanczosQuadrature(hessian: hessian, probes: 16, steps: 20, seed: 1)
        let many = try StochasticLanczosQuadrature(hessian: hessian, probes: 256, steps: 20, seed: 2)
        #expect(few.productCount == 16 * 20 && many.productCount == 256 * 20)
        for (name, g) in functions {
            let exact = values.reduce(0) { $0 + g($1) }
            for slq in [few, many] {
                let estimate = try slq.traceEstimate(of: g)
                #expect(abs(estimate.value - exact) <= 4 * estimate.standardError,
                        "Tr \(name), \(slq.probes) probes: exact \(exact), estimate \(estimate.value) ± \(estimate.standardError)")
                #expect(abs(slq.spectrum.integral(of: g) - estimate.value) <= 1e-12 * abs(exact))
                #expect(estimate.probeEstimates.count == slq.probes && estimate.exactPart == 0)
            }
            let ratio = try few.traceEstimate(of: g).standardError / many.traceEstimate(of: g).standardError
            #expect(ratio >= 2.5 && ratio <= 6.4, "Tr \(name): stderr ratio for 16× the probes \(ratio), expected about 4")
        }
        // Each probe's weights sum to ‖z‖² = P; the spectrum's to P.
        for rule in few.rules {
            #expect(abs(rule.weights.reduce(0, +) - 150) <= 1e-12 * 150)
            #expect(rule.nodes.count == 20 && rule.weights.allSatisfy { $0 >= 0 })
            #expect(rule.nodes.allSatisfy { $0 > 0.01 - 1e-12 && $0 < 1.49 + 1e-12 }, "Ritz values lie in the spectrum's hull")
        }
        #expect(abs(few.spectrum.totalWeight - 150) <= 1e-12 * 150)
        // The free function agrees with the stored quadrature (same seed, same probes).
        let direct = try traceEstimate(of: { 1 / (2 - $0) }, hessian: hessian, probes: 16, steps: 20, seed: 1)
        #expect(direct == (try few.traceEstimate(of: { 1 / (2 - $0) })))
    }

    @Test("SLQ is exact, with fewer steps, on an invariant Krylov space")
    func slqInvariant() throws {
        // Three distinct eigenvalues: every probe's Krylov space has dimension ≤ 3.
        let values = [Double](repeating: 0.2, count: 10) + [Double](repeating: 0.7, count: 15) + [Double](repeating: 1.3, count: 5)
        let h = try Self.problem(values, seed: 30)
        let slq = try StochasticLanczosQuadrature(hessian: try HessianOperator(h), probes: 5, steps: 10)
        for rule in slq.rules {
            #expect(rule.nodes.count == 3, "nodes \(rule.nodes)")
            for (node, target) in zip(rule.nodes, [0.2, 0.7, 1.3]) { #expect(abs(node - target) <= 1e-12) }
        }
        #expect(slq.productCount == 15)
    }

    @Test("Deflated trace: exact part + estimate within 4 standard errors, smaller than without deflation")
    func deflatedTrace() throws {
        var rng = SeededGenerator(seed: 40)
        let values = [60.0, 45, 30, 22, 15] + rng.uniformArray(195, 0, 1)
        let h = try Self.problem(values, seed: 41)
        let hessian = try HessianOperator(h)
        let top = try lanczosEigenpairs(hessian, count: 5)
        #expect(top.converged)
        let deflation = Deflation(top)
        for (name, g) in [("x", { (x: Double) in x }), ("x²", { (x: Double) in x * x })] {
            let exact = values.reduce(0) { $0 + g($1) }
            let plain = try traceEstimate(of: g, hessian: hessian, probes: 30, steps: 15, seed: 5)
            let deflated = try traceEstimate(of: g, hessian: hessian, probes: 30, steps: 15, seed: 5, deflation: deflation)
            #expect(abs(plain.value - exact) <= 4 * plain.standardError, "Tr \(name): \(plain.value) ± \(plain.standardError) vs \(exact)")
            #expect(abs(deflated.value - exact) <= 4 * deflated.standardError,
                    "Tr \(name) deflated: \(deflated.value) ± \(deflated.standardError) vs \(exact)")
            #expect(abs(deflated.exactPart - top.eigenvalues.reduce(0) { $0 + g($1) }) <= 1e-12 * deflated.exactPart)
            #expect(deflated.standardError < 0.2 * plain.standardError,
                    "Tr \(name): deflated stderr \(deflated.standardError), plain \(plain.standardError)")
        }
        // The deflated spectrum holds the exact eigenvalues with weight 1 first.
        let slq = try StochasticLanczosQuadrature(hessian: hessian, probes: 8, steps: 10, deflation: deflation)
        let spectrum = slq.spectrum
        #expect(Array(spectrum.nodes.prefix(5)) == top.eigenvalues && Array(spectrum.weights.prefix(5)) == [1, 1, 1, 1, 1])
        // Every probe stays orthogonal to the deflated vectors: its nodes lie in the bulk [0, 1].
        for rule in slq.rules { #expect(rule.nodes.allSatisfy { $0 > -1e-9 && $0 < 1 + 1e-9 }, "nodes \(rule.nodes)") }
    }

    // MARK: Krylov matrix functions

    @Test("Lanczos and Krylov g(H)v at magnitudes whose squares leave the double range (‖Hv‖ ~ 1e200, 1e-200)")
    func extremeMagnitudes() throws {
        let (h, _) = try Self.quadratureProblem(120, seed: 52)
        let dense = try SymmetricEigendecomposition(h)
        var rng = SeededGenerator(seed: 53)
        let v = rng.uniformArray(120, -1, 1)
        for magnitude in [1e200, 1e-200] {
            let scaled = try Matrix(rows: 120, columns: 120, elements: h.elements.map { $0 * magnitude })
            let hessian = try HessianOperator(scaled)
            let result = try lanczosEigenpairs(hessian, count: 3)
            let converged = result.converged
            #expect(converged, "magnitude \(magnitude): residuals \(result.residuals)")
            for i in 0..<3 {
                let expected = dense.values[119 - i] * magnitude
                #expect(abs(result.eigenvalues[i] - expected) <= 1e-9 * dense.spectralRadius * magnitude,
                        "magnitude \(magnitude), eigenvalue \(i): \(result.eigenvalues[i]) against \(expected)")
            }
            // g(x) = x/m: g(H_m) v = H v, the whole Krylov iteration on vectors of size ~m.
            let f = try krylovMatrixFunction({ $0 / magnitude }, hessian: hessian, vector: v)
            let expected = h.apply(v)
            let size = Self.dot(expected, expected).squareRoot()
            let error = zip(f.value, expected).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() / size
            #expect(error <= 1e-12 && f.steps <= 4, "magnitude \(magnitude): relative error \(error), \(f.steps) steps")
        }
    }

    @Test("Deflation by approximate eigenpairs (residuals ~1e-4): g(H)v and the quadrature rules within O(‖R‖²) of the dense projected operator")
    func approximateDeflation() throws {
        // The recurrences project the deflated rows off lazily and drop a term O(‖R‖²/β) a step
        // (KrylovBasis.swift, LanczosRecurrence.step); the reference is the projected operator
        // ΠHΠ built densely, whose Krylov space the explicit projection computes exactly.
        let p = 300
        let (h, _) = try Self.quadratureProblem(p, seed: 60)
        let dense = try SymmetricEigendecomposition(h)
        var rng = SeededGenerator(seed: 61)
        // The 4 top eigenvectors, each moved by ~1e-4 and made orthonormal again; θ_i their
        // Rayleigh quotients.
        var rows: [[Double]] = (0..<4).map { i in
            zip(Self.row(dense.eigenvectorRows, p - 1 - i), rng.uniformArray(p, -1, 1)).map { $0 + 1e-4 * $1 / 10 }
        }
        for i in 0..<4 {
            for k in 0..<i {
                let d = Self.dot(rows[i], rows[k])
                rows[i] = zip(rows[i], rows[k]).map { $0 - d * $1 }
            }
            let n = Self.dot(rows[i], rows[i]).squareRoot()
            rows[i] = rows[i].map { $0 / n }
        }
        let q = try Matrix(rows: 4, columns: p, elements: rows.flatMap { $0 })
        let theta = rows.map { Self.dot($0, h.apply($0)) }
        let residual = (0..<4).map { i in
            zip(h.apply(rows[i]), rows[i]).map { $0 - theta[i] * $1 }.reduce(0) { $0 + $1 * $1 }.squareRoot()
        }.max()!
        #expect(residual > 1e-6 && residual < 1e-3, "residual \(residual)")
        let deflation = try Deflation(eigenvalues: theta, eigenvectorRows: q)
        // Π = I − QQᵀ and the projected operator ΠHΠ.
        var projector = Matrix.identity(p)
        for a in 0..<p {
            for b in 0..<p { projector[a, b] -= (0..<4).reduce(0) { $0 + rows[$1][a] * rows[$1][b] } }
        }
        let projected = try SymmetricEigendecomposition(
            (projector * h * projector).symmetrized)
        let v = rng.uniformArray(p, -1, 1)
        let pv = projector.apply(v)
        let hessian = try HessianOperator(h)
        for (name, g) in [("1/(2 − x)", { (x: Double) in 1 / (2 - x) }), ("exp(−x)", { (x: Double) in exp(-x) })] {
            // Q g(Θ) Qᵀ v + g(ΠHΠ) Πv (Πv lies in the range of Π, which ΠHΠ keeps).
            let qv = rows.map { Self.dot($0, v) }
            var expected = projected.reconstruct(g).apply(pv)
            for i in 0..<4 {
                for a in 0..<p { expected[a] += g(theta[i]) * qv[i] * rows[i][a] }
            }
            let result = try krylovMatrixFunction(g, hessian: hessian, vector: v, deflation: deflation, maxSteps: 100)
            let size = Self.dot(expected, expected).squareRoot()
            let error = zip(result.value, expected).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() / size
            #expect(error <= 1e-7, "\(name): relative error \(error) (residuals \(residual))")
        }
        // The Gauss rule of the probe's Krylov space: Σ w θʲ = (Πv)ᵀ(ΠHΠ)ʲ(Πv) for j < 2·steps.
        let (_, rules) = try krylovMatrixFunctionsAndRules(
            [{ exp(-$0) }], hessian: hessian, vectors: [v], deflation: deflation, tolerance: 1e-12, maxSteps: 6,
            quadrature: true)
        let rule = try #require(rules.first)
        var power = pv
        let scale = Self.dot(pv, pv)
        for j in 0..<12 {
            let exact = Self.dot(pv, power)
            let gauss = zip(rule.nodes, rule.weights).reduce(0) { $0 + $1.1 * pow($1.0, Double(j)) }
            #expect(abs(gauss - exact) <= 1e-7 * scale, "moment \(j): Gauss \(gauss), exact \(exact)")
            power = projected.reconstruct { $0 }.apply(power)
        }
    }

    @Test("Krylov g(H)v matches Q g(Λ) Qᵀ v to 1e-10, with and without deflation")
    func krylovFunction() throws {
        let (h, _) = try Self.quadratureProblem(300, seed: 50)
        let dense = try SymmetricEigendecomposition(h)
        let hessian = try HessianOperator(h)
        var rng = SeededGenerator(seed: 51)
        let v = rng.uniformArray(300, -1, 1)
        let functions: [(String, (Double) -> Double)] = [
            ("1/(2 − x)", { 1 / (2 - $0) }), ("exp(−x)", { exp(-$0) }), ("x²", { $0 * $0 }),
            ("√x", { $0.squareRoot() }),
        ]
        let top = try lanczosEigenpairs(hessian, count: 4)
        for (name, g) in functions {
            let expected = dense.reconstruct(g).apply(v)
            let size = Self.dot(expected, expected).squareRoot()
            let tolerance = name == "√x" ? 1e-6 : 1e-10
            let maxSteps = name == "√x" ? 300 : 100
            for deflation in [nil, Deflation(top)] {
                let result = try krylovMatrixFunction(g, hessian: hessian, vector: v, deflation: deflation, maxSteps: maxSteps)
                let error = zip(result.value, expected).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() / size
                #expect(error <= tolerance, "\(name), deflated: \(deflation != nil): relative error \(error), \(result.steps) steps")
                #expect(result.converged || name == "√x", "\(name): change \(result.change) after \(result.steps) steps")
                #expect(result.productCount == result.steps)
            }
        }
        // x² needs exactly 3 steps (degree 2 < 3): the estimate stops changing there.
        let square = try krylovMatrixFunction({ $0 * $0 }, hessian: hessian, vector: v)
        #expect(square.steps <= 5, "x²: \(square.steps) steps")
        // A zero vector costs nothing.
        let zero = try krylovMatrixFunction({ $0 }, hessian: hessian, vector: [Double](repeating: 0, count: 300))
        #expect(zero.value == [Double](repeating: 0, count: 300) && zero.productCount == 0)
    }
}
