import SGDNoise

/// Random test matrices from a seeded generator, built with plain loops.
extension SeededGenerator {
    mutating func gaussianMatrix(_ rows: Int, _ columns: Int) -> Matrix {
        var m = Ref.zeros(rows, columns)
        for k in m.elements.indices { m.elements[k] = normal() }
        return m
    }

    mutating func uniformArray(_ count: Int, _ a: Double, _ b: Double) -> [Double] {
        (0..<count).map { _ in uniform(a, b) }
    }

    /// A random orthogonal matrix: modified Gram–Schmidt, applied twice, to Gaussian columns.
    mutating func orthogonal(_ n: Int) -> Matrix {
        var q = gaussianMatrix(n, n)
        for j in 0..<n {
            for _ in 0..<2 {
                for k in 0..<j {
                    var dot = 0.0
                    for i in 0..<n { dot += q[i, k] * q[i, j] }
                    for i in 0..<n { q[i, j] -= dot * q[i, k] }
                }
            }
            var norm = 0.0
            for i in 0..<n { norm += q[i, j] * q[i, j] }
            norm = norm.squareRoot()
            for i in 0..<n { q[i, j] /= norm }
        }
        return q
    }

    /// Q diag(eigenvalues) Qᵀ for a random orthogonal Q, exactly symmetric.
    mutating func symmetric(eigenvalues: [Double]) -> Matrix {
        let q = orthogonal(eigenvalues.count)
        return Ref.symmetricFromUpper(Ref.mul(q, Ref.diagonal(eigenvalues), Ref.transpose(q)))
    }

    /// A random SPD matrix with eigenvalues drawn uniformly from [low, high].
    mutating func spd(_ n: Int, eigenvaluesIn low: Double, _ high: Double) -> Matrix {
        symmetric(eigenvalues: uniformArray(n, low, high))
    }
}

/// A random stationary-equation problem: H, C and Λ with stable dynamics by construction.
struct StationaryProblem: CustomStringConvertible {
    let hessian: Matrix
    let noise: Matrix
    /// The learning rate as the library takes it.
    let learningRate: LearningRate
    /// Λ as a matrix (λI for a scalar rate), for the references.
    let lambda: Matrix
    let momentum: Double
    let seed: UInt64

    var dimension: Int { hessian.rows }

    var description: String {
        let kind: String
        switch learningRate {
        case .scalar(let l): kind = "λ = \(l)"
        default: kind = "matrix Λ"
        }
        return "D = \(dimension), μ = \(momentum), \(kind), seed \(seed)"
    }

    /// Eigenvalues of H in [0.1, 1] · 2.5 (both ends attained), C SPD with eigenvalues in [0.01, 1], and a rate
    /// with λ_max(Λ) h_max = `edgeFraction` · 2(1+μ). Since the eigenvalues of Λ^{1/2}HΛ^{1/2}
    /// lie in (0, λ_max(Λ) h_max], the dynamics are stable whenever `edgeFraction` < 1.
    /// A matrix Λ has its own random eigenbasis, so it does not commute with H.
    static func random(
        dimension d: Int, momentum mu: Double, matrixRate: Bool, edgeFraction: Double = 0.9, seed: UInt64
    ) -> StationaryProblem {
        var rng = SeededGenerator(seed: seed)
        // Two of the eigenvalues of H pinned at the ends of [0.1, 1] · 2.5 (condition number 10), so
        // that H is far from a multiple of I and a matrix Λ cannot nearly commute with it.
        var hEigen = rng.uniformArray(d, 0.1, 1).map { $0 * 2.5 }
        hEigen[0] = 2.5
        if d >= 2 { hEigen[1] = 0.25 }
        let h = rng.symmetric(eigenvalues: hEigen)
        let c = rng.spd(d, eigenvaluesIn: 0.01, 1)
        let hMax = hEigen.max()!
        let edge = 2 * (1 + mu)
        if matrixRate {
            // Eigenvalues spread evenly over [0.2, 1] (κ(Λ) = 5), so that Λ is far from a multiple of I.
            let raw = d == 1 ? [1.0] : (0..<d).map { 0.2 + 0.8 * Double($0) / Double(d - 1) }
            let scale = edgeFraction * edge / (raw.max()! * hMax)
            let lambda = rng.symmetric(eigenvalues: raw.map { $0 * scale })
            return StationaryProblem(
                hessian: h, noise: c, learningRate: .matrix(lambda), lambda: lambda, momentum: mu, seed: seed)
        }
        let l = edgeFraction * edge / hMax
        return StationaryProblem(
            hessian: h, noise: c, learningRate: .scalar(l), lambda: Ref.scale(l, Ref.identity(d)),
            momentum: mu, seed: seed)
    }
}
