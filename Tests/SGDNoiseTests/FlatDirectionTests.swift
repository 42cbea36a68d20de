import SGDNoise
import Testing

/// Singular Hessians (flat directions, docs/theory.md §3): Σ is solved on the range of H and is zero
/// on its null space; the null space and the noise entering it are reported.
@Suite("Stationary covariance: flat directions")
struct FlatDirectionTests {
    /// An orthonormal basis U (D × (D−1)) of the complement of the unit vector v (Gram–Schmidt of the
    /// coordinate vectors, dropping the one most aligned with v).
    static func complementBasis(of v: [Double]) -> Matrix {
        let d = v.count
        let drop = v.indices.max { abs(v[$0]) < abs(v[$1]) }!
        var columns: [[Double]] = [v]
        for k in 0..<d where k != drop {
            var e = [Double](repeating: 0, count: d)
            e[k] = 1
            for _ in 0..<2 {
                for q in columns {
                    let dot = zip(q, e).reduce(0) { $0 + $1.0 * $1.1 }
                    for i in 0..<d { e[i] -= dot * q[i] }
                }
            }
            let norm = e.reduce(0) { $0 + $1 * $1 }.squareRoot()
            columns.append(e.map { $0 / norm })
        }
        var u = Ref.zeros(d, d - 1)
        for j in 1..<d {
            for i in 0..<d { u[i, j - 1] = columns[j][i] }
        }
        return u
    }

    /// A weighted graph Laplacian (integer entries, so H is exactly singular in floating point with
    /// null vector (1, 1, 1, 1)/2), and a random Hessian Q diag(0, …)Qᵀ rounded the way users form it.
    static func singularHessians() -> [(name: String, h: Matrix, v: [Double])] {
        let laplacian = Ref.matrix([
            [5, -1, -1, -3],
            [-1, 3, -2, 0],
            [-1, -2, 4, -1],
            [-3, 0, -1, 4],
        ])
        var rng = SeededGenerator(seed: 2024)
        let q = rng.orthogonal(5)
        let h = Ref.symmetricFromUpper(Ref.mul(q, Ref.diagonal([0, 0.3, 0.8, 1.2, 2.0]), Ref.transpose(q)))
        let v = (0..<5).map { q[$0, 0] }
        return [
            ("graph Laplacian / 4", Ref.scale(0.25, laplacian), [0.5, 0.5, 0.5, 0.5]),
            ("rotated diag(0, 0.3, 0.8, 1.2, 2)", h, v),
        ]
    }

    @Test("Σ is zero on the null space and equals the brute-force solve on the range", arguments: [0.0, 0.5, 0.9])
    func singularHessian(mu: Double) throws {
        for (name, h, v) in Self.singularHessians() {
            let d = h.rows
            var rng = SeededGenerator(seed: UInt64(d) + 40)
            let c = rng.spd(d, eigenvaluesIn: 0.05, 1)
            let hEigen = Ref.jacobiEigen(h).values
            let hMax = hEigen.last!
            // The computed null vector is off by about u·h_max/gap (gap the smallest nonzero
            // eigenvalue), which bounds what leaks into Σv and into the flat noise.
            let spread = hMax / hEigen[1]
            let lambda = 0.8 * 2 * (1 + mu) / hMax
            let result = try stationaryCovariance(hessian: h, noise: c, learningRate: .scalar(lambda), momentum: mu)

            #expect(result.flatDirections == 1, "\(name): expected 1 flat direction, observed \(result.flatDirections)")
            let sigmaNorm = Ref.frobenius(result.sigma)
            var sv = Ref.zeros(d, 1)
            for i in 0..<d { for j in 0..<d { sv[i, 0] += result.sigma[i, j] * v[j] } }
            let leak = Ref.frobenius(sv)
            #expect(leak <= 16 * Double(d) * Ref.u * spread * sigmaNorm, "\(name), μ = \(mu): expected Σv = 0, observed ‖Σv‖ = \(leak)")

            // The documented flat-direction noise is the rotated noise of the solver, Qᵀ(PCP)Q, on the
            // flat eigenvector: with P = √λ I and Q's flat column v it is λ vᵀCv.
            var vcv = 0.0
            for i in 0..<d { for j in 0..<d { vcv += v[i] * c[i, j] * v[j] } }
            let expectedNoise = lambda * vcv
            let noiseTol = 16 * Double(d) * Ref.u * spread * lambda * Ref.frobenius(c)
            #expect(
                abs(result.flatDirectionNoise - expectedNoise) <= noiseTol,
                "\(name), μ = \(mu): expected flat noise λvᵀCv = \(expectedNoise), observed \(result.flatDirectionNoise)")

            // On the range: Σ_r of (UᵀHU, UᵀCU) by brute force, against UᵀΣU.
            let u = Self.complementBasis(of: v)
            let ut = Ref.transpose(u)
            let hr = Ref.symmetricFromUpper(Ref.mul(ut, h, u))
            let cr = Ref.symmetricFromUpper(Ref.mul(ut, c, u))
            let reference = BruteForce.theorem1(
                hessian: hr, noise: cr, lr: Ref.scale(lambda, Ref.identity(d - 1)), momentum: mu)
            let onRange = Ref.mul(ut, result.sigma, u)
            let err = Ref.relativeError(onRange, reference.sigma)
            let tol = 2 * reference.budget
            #expect(
                err <= tol,
                "\(name), μ = \(mu): expected range Σ \(reference.sigma.elements), observed \(onRange.elements), error \(err) > \(tol)"
            )
        }
    }

    @Test("H = 0: every direction is flat, Σ = 0 and the flat noise is λ Tr C")
    func zeroHessian() throws {
        var rng = SeededGenerator(seed: 8)
        let c = rng.spd(3, eigenvaluesIn: 0.1, 1)
        let result = try stationaryCovariance(hessian: Ref.zeros(3, 3), noise: c, learningRate: .scalar(0.4), momentum: 0.5)
        #expect(result.flatDirections == 3)
        #expect(result.sigma.elements.allSatisfy { $0 == 0 }, "expected Σ = 0, observed \(result.sigma.elements)")
        let expected = 0.4 * (c[0, 0] + c[1, 1] + c[2, 2])
        let err = relativeDifference(result.flatDirectionNoise, expected)
        #expect(err <= 16 * Ref.u, "expected λ Tr C = \(expected), observed \(result.flatDirectionNoise), error \(err)")
    }

    /// When C puts no noise on the null space (C = U C_r Uᵀ), nothing random-walks: the flat noise
    /// is zero to rounding and Σ solves the whole equation of Theorem 1.
    @Test("Noise orthogonal to the null space: no flat noise, and Theorem 1 holds everywhere")
    func noiseOnRangeOnly() throws {
        for (name, h, v) in Self.singularHessians() {
            let d = h.rows
            var rng = SeededGenerator(seed: 91)
            let u = Self.complementBasis(of: v)
            let c = Ref.symmetricFromUpper(Ref.mul(u, rng.spd(d - 1, eigenvaluesIn: 0.1, 1), Ref.transpose(u)))
            let hEigen = Ref.jacobiEigen(h).values
            let spread = hEigen.last! / hEigen[1]
            let lambda = 0.5 * 2 / hEigen.last!
            let result = try stationaryCovariance(hessian: h, noise: c, learningRate: .scalar(lambda), momentum: 0.5)
            #expect(result.flatDirections == 1)
            let noiseTol = 16 * Double(d) * Ref.u * spread * lambda * Ref.frobenius(c)
            #expect(abs(result.flatDirectionNoise) <= noiseTol, "\(name): expected no flat noise, observed \(result.flatDirectionNoise)")
            let own = BruteForce.theorem1Residual(
                hessian: h, noise: c, lr: Ref.scale(lambda, Ref.identity(d)), momentum: 0.5, sigma: result.sigma)
            #expect(own.relative <= 1e-12, "\(name): expected a residual ≤ 1e-12, observed \(own.relative)")
        }
    }
}
