/// The learning rate of SGD: a scalar λ > 0 (Λ = λI) or a symmetric positive-definite matrix Λ
/// (a preconditioner) [Def 2].
public enum LearningRate: Sendable, Equatable {
    /// Λ = λI.
    case scalar(Double)
    /// Λ symmetric positive definite.
    case matrix(Matrix)
    /// Λ = diag(values), every value positive (a diagonal preconditioner; works with spectra).
    case diagonal([Double])

    /// Λ as a dense matrix of dimension `d`.
    func matrix(dimension d: Int) -> Matrix {
        switch self {
        case .scalar(let l): return l * Matrix.identity(d)
        case .matrix(let m): return m
        case .diagonal(let v): return Matrix.diagonal(v)
        }
    }
}

/// The change of variables of docs/theory.md §3 that turns a matrix learning rate into a scalar
/// one: with P = Λ^{1/2}, H̃ = PHP, C̃ = PCP and Σ = PXP, Theorem 1 for (Λ, H, C, Σ) becomes
/// Theorem 1 for (I, H̃, C̃, X). For a scalar λ, P = √λ I and every product is a multiplication.
struct LearningRateTransform {
    /// P for a matrix learning rate, nil for a scalar one.
    let root: Matrix?
    /// λ for a scalar learning rate (1 for a matrix one).
    let scalar: Double

    init(_ lr: LearningRate, dimension d: Int) throws {
        switch lr {
        case .scalar(let l):
            guard l.isFinite, l > 0 else {
                throw SGDNoiseError.invalidArgument("lr must be a finite positive number, got \(l)")
            }
            root = nil
            scalar = l
        case .matrix(let lambda):
            try lambda.requireSymmetric("lr", size: d)
            root = try SPDSquareRoot(lambda, name: "lr").root
            scalar = 1
        case .diagonal(let v):
            guard v.count == d else {
                throw SGDNoiseError.invalidArgument("lr must have \(d) diagonal entries, got \(v.count)")
            }
            guard v.allSatisfy({ $0.isFinite }) else {
                throw SGDNoiseError.invalidArgument("lr: every diagonal entry must be finite")
            }
            guard v.allSatisfy({ $0 > 0 }) else {
                throw SGDNoiseError.notPositiveDefinite("lr: every diagonal entry must be positive")
            }
            root = Matrix.diagonal(v.map { $0.squareRoot() })
            scalar = 1
        }
    }

    /// P M P for a symmetric M.
    func conjugate(_ m: Matrix) -> Matrix {
        guard let p = root else { return scalar * m }
        return Matrix.congruence(p, m)
    }

    /// P v.
    func apply(_ v: [Double]) -> [Double] {
        guard let p = root else { return v.map { $0 * scalar.squareRoot() } }
        return SymmetricOperator.dense(p).apply(v)
    }

    /// P⁻¹ M P⁻¹ (the way back from tilde coordinates for a noise covariance).
    func deconjugate(_ m: Matrix) throws -> Matrix {
        guard let p = root else { return (1 / scalar) * m }
        let inverse = try SymmetricEigendecomposition(checked: p, name: "lr").reconstruct { 1 / $0 }
        return Matrix.congruence(inverse, m)
    }
}
