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

    func inverse(_ r: Matrix) -> Matrix {
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
        for k in 1...maxIterations {
            let gx = picard(x, base: base)
            let step = (gx - x).frobeniusNorm
            residual = step / max(gx.frobeniusNorm, .leastNormalMagnitude)
            if !residual.isFinite { break }
            if residual <= tolerance {
                let solution = picard(gx, base: base).symmetrized
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

    /// Whether the smallest eigenvalue of the symmetric `m` exceeds 1e-12 of its largest.
    static func isPositiveDefinite(_ m: Matrix) -> Bool {
        guard let values = try? m.symmetricEigenvalues(name: "iterate"), let lo = values.first, let hi = values.last else {
            return false
        }
        return hi > 0 && lo > 1e-12 * hi
    }
}
