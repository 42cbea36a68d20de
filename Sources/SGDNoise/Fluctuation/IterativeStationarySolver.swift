/// The stationary equation when the noise depends on Σ through an operator that the eigenbasis
/// of H̃ does not diagonalise (docs/theory.md §4.1 and §4 beyond the commuting case):
///
///     L(X) = C̃₀ + N(X),
///
/// with L the Theorem-1 operator in tilde coordinates (inverted exactly by the spectral solve)
/// and N a linear map that sends positive semi-definite matrices to positive semi-definite ones.
/// Solved as the fixed point X ← L⁻¹(C̃₀ + N(X)) with Anderson acceleration. The Picard map
/// T = L⁻¹N preserves the PSD cone, so a stationary Σ exists iff its spectral radius ρ(T) < 1
/// (estimated by power iteration from a PSD start, as Krein–Rutman permits); the iteration is
/// then a contraction and X is the PSD sum Σ_k Tᵏ L⁻¹(C̃₀).
struct IterativeStationarySolver {
    let spectral: SpectralStationarySolver
    let noiseMap: (Matrix) -> Matrix

    /// Diagnostics of a solve.
    struct Report {
        var x: Matrix
        var iterations: Int
        var residual: Double
        var spectralRadius: Double
    }

    /// L⁻¹(r), in r's storage when the caller gives r up (a temporary is moved, not copied).
    func inverse(_ r: consuming Matrix) -> Matrix {
        spectral.rotateOut(spectral.solveRotated(spectral.rotateIn(r)))
    }

    func picard(_ x: Matrix, base: Matrix) -> Matrix {
        inverse(base + noiseMap(x))
    }

    /// ρ(L⁻¹N) by power iteration from a PSD start (at most `iterations` steps).
    func spectralRadius(start: Matrix, iterations: Int = 300) -> Double {
        dominant(start: start, iterations: iterations).radius
    }

    /// ρ(L⁻¹N) and the last iterate of the power iteration (the dominant, PSD direction, of unit
    /// Frobenius norm; `start` itself when ρ = 0), which warm-starts the next estimate of a nearby map.
    func dominant(start: Matrix, iterations: Int = 300) -> (radius: Double, vector: Matrix) {
        var x = start
        var norm = x.frobeniusNorm
        guard norm > 0 else { return (0, start) }
        x = (1 / norm) * x
        var estimate = 0.0
        for k in 0..<iterations {
            let y = inverse(noiseMap(x))
            norm = y.frobeniusNorm
            if norm == 0 { return (0, start) }
            let previous = estimate
            estimate = norm
            x = (1 / norm) * y
            if k > 10 && abs(estimate - previous) <= 1e-10 * estimate { break }
        }
        return (estimate, x)
    }

    /// How stability (ρ(L⁻¹N) < 1) is established.
    enum StabilityCertificate {
        /// Power iteration before solving (robust; costs up to a few hundred operator applications).
        case powerIteration
        /// After solving: a positive-definite base and a positive-definite solution prove ρ < 1
        /// (for a cone-preserving T, (I − T)X = B with B in the cone's interior has a solution in
        /// the cone only if ρ(T) < 1); power iteration only when that test is inconclusive.
        case positivity
    }

    /// Solves to a relative Picard step ‖X_{k+1} − X_k‖_F ≤ tolerance · ‖X‖_F.
    /// - Throws: `unstable` (from `unstable()`) when ρ(L⁻¹N) ≥ 1; `numericalFailure` when the
    ///   iteration does not converge although ρ < 1.
    func solve(base: Matrix, tolerance: Double = 1e-13, maxIterations: Int = 2000,
               certificate: StabilityCertificate = .powerIteration,
               unstable: () -> SGDNoiseError) throws -> Report {
        let x0 = inverse(base)
        let start = x0.frobeniusNorm > 0 ? x0 : Matrix.identity(base.rows)
        var rho = Double.nan
        if certificate == .powerIteration {
            rho = spectralRadius(start: start)
            if !(rho < 1) { throw unstable() }
        }
        var anderson = AndersonAccelerator(memory: 8)
        var x = x0
        var residual = Double.infinity
        // Small D: the fixed point in one linear solve, then the iteration below from it. Its first
        // Picard step is the check, and the answer when within the tolerance (the iteration's
        // answer is one Picard step past its last accepted iterate); else the iteration goes on.
        var direct = false
        if base.rows <= Self.directSolveDimension, let solved = directSolution(x0: x0) { (x, direct) = (solved, true) }
        for k in 1...maxIterations {
            let gx = picard(x, base: base)
            let step = (gx - x).frobeniusNorm
            residual = step / max(gx.frobeniusNorm, .leastNormalMagnitude)
            if !residual.isFinite { break }
            if residual <= tolerance {
                let solution = (direct && k == 1 ? gx : picard(gx, base: base)).symmetrized
                if certificate == .positivity && !(Self.isPositiveDefinite(base) && Self.isPositiveDefinite(solution)) {
                    rho = spectralRadius(start: start)
                    if !(rho < 1) { throw unstable() }
                }
                return Report(x: solution, iterations: k, residual: residual, spectralRadius: rho)
            }
            let next = anderson.next(x: x.elements, gx: gx.elements)
            x = Matrix(uncheckedRows: x.rows, columns: x.columns, elements: next)
        }
        if rho.isNaN { rho = spectralRadius(start: start) }
        if !(rho < 1) { throw unstable() }
        throw SGDNoiseError.numericalFailure(
            "the stationary iteration did not converge in \(maxIterations) steps (relative step \(residual)); "
                + "spectral radius \(rho) is too close to 1")
    }

    /// The largest D whose D(D+1)/2 unknowns are solved directly (`directSolution`): 36 unknowns,
    /// a 36 × 36 LU after 36 applications of T — less than the accelerated iteration's ~10–20
    /// applications costs only while D is this small.
    static let directSolveDimension = 8

    /// X = (I − T)⁻¹ X₀ on symmetric matrices, T = L⁻¹N, by one LU solve of the D(D+1)/2 × D(D+1)/2
    /// matrix of I − T in the basis E_ii, E_ij + E_ji (i < j), whose columns are T applied to the
    /// basis. Nil when that matrix is singular or the result is not finite. Only the solution of
    /// the same equation the iteration solves: its stability certificate is unchanged.
    func directSolution(x0: Matrix) -> Matrix? {
        let d = x0.rows
        var pairs: [(Int, Int)] = []
        pairs.reserveCapacity(d * (d + 1) / 2)
        for i in 0..<d { for j in i..<d { pairs.append((i, j)) } }
        let p = pairs.count
        var system = Matrix.identity(p)
        var basis = Matrix(rows: d, columns: d)
        for (column, (i, j)) in pairs.enumerated() {
            basis[i, j] = 1
            basis[j, i] = 1
            let t = inverse(noiseMap(basis))
            basis[i, j] = 0
            basis[j, i] = 0
            for (row, (k, l)) in pairs.enumerated() { system[row, column] -= t[k, l] }
        }
        guard let z = system.solveGeneral(pairs.map { x0[$0.0, $0.1] }), z.allSatisfy(\.isFinite) else { return nil }
        var x = Matrix(rows: d, columns: d)
        for (value, (i, j)) in zip(z, pairs) {
            x[i, j] = value
            x[j, i] = value
        }
        return x
    }

    /// Whether the smallest eigenvalue of the symmetric `m` exceeds 1e-12 of its largest.
    static func isPositiveDefinite(_ m: Matrix) -> Bool {
        if m.rows <= 2 {
            // Closed form for [[a, b], [b, c]] scaled to max |entry| = 1 (no overflow or underflow
            // in the squares): positive definite needs a, c > 0, and then hi = t + √(h² + b²) with
            // t = (a+c)/2 > 0, h = (a−c)/2 has no cancellation, nor has lo = det/hi (det's rounding
            // is below 1e-15 hi²). Asymmetric or non-finite input is refused, as the eigenvalues' was.
            guard (try? m.requireSymmetric("iterate")) != nil else { return false }
            let scale = m.elements.reduce(0.0) { max($0, abs($1)) }
            guard scale > 0 else { return false }
            let a = m[0, 0] / scale, b = m.rows == 2 ? m[0, 1] / scale : 0, c = m.rows == 2 ? m[1, 1] / scale : a
            guard a > 0, c > 0 else { return false }
            let t = 0.5 * (a + c), h = 0.5 * (a - c)
            let hi = t + (h * h + b * b).squareRoot()
            let lo = m.rows == 2 ? (a * c - b * b) / hi : a
            return lo > 1e-12 * hi
        }
        guard let values = try? m.symmetricEigenvalues(name: "iterate"), let lo = values.first, let hi = values.last else {
            return false
        }
        return hi > 0 && lo > 1e-12 * hi
    }
}
