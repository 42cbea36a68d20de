/// A symmetric linear map in a simulation's working basis, stored as compactly as it allows.
enum WorkingOperator: Sendable {
    case zero
    case scalar(Double)
    case diagonal([Double])
    case dense(Matrix)

    /// The representation of the symmetric `m` rotated by Qᵀ (rows of `basis`): diagonal when the
    /// off-diagonal part vanishes (relative 1e-13), dense otherwise.
    static func rotated(_ m: Matrix, basis: Matrix?) -> WorkingOperator {
        let r = basis.map { Matrix.product(Matrix.product($0, m), $0, transposeB: true).symmetrized } ?? m
        let n = r.rows
        let scale = max(r.maxAbs, .leastNormalMagnitude)
        var offDiagonal = 0.0
        for i in 0..<n { for j in 0..<n where i != j { offDiagonal = max(offDiagonal, abs(r[i, j])) } }
        if offDiagonal <= 1e-13 * scale {
            let diag = r.diagonalEntries
            if let first = diag.first, diag.allSatisfy({ $0 == first }) { return first == 0 ? .zero : .scalar(first) }
            return .diagonal(diag)
        }
        return .dense(r)
    }

    var isZero: Bool {
        if case .zero = self { return true }
        return false
    }
}
