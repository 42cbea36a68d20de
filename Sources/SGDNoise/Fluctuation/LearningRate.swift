/// The learning rate of SGD: a scalar λ > 0 (Λ = λI) or a symmetric positive-definite matrix Λ
/// (a preconditioner) [Def 2].
public enum LearningRate: Sendable, Equatable {
    case scalar(Double)
    case matrix(Matrix)
}

/// The change of variables of theory.md §3 that turns a matrix learning rate into a scalar one:
/// with P = Λ^{1/2}, H̃ = PHP, C̃ = PCP and Σ = PXP, Theorem 1 for (Λ, H, C, Σ) becomes Theorem 1
/// for (I, H̃, C̃, X). For a scalar λ, P = √λ I and every product is a multiplication.
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
        }
    }

    /// P M P.
    func conjugate(_ m: Matrix) -> Matrix {
        guard let p = root else { return scalar * m }
        return (Matrix.product(p, Matrix.product(m, p))).symmetrized
    }
}
