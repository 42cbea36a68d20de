/// A symmetric matrix given densely, or by its diagonal (a spectrum in its own eigenbasis).
///
/// Users with a Hessian or data spectrum of millions of entries pass `.diagonal`: then every
/// model of the library runs in O(D) and returns diagonals. `.dense` takes any symmetric matrix.
public enum SymmetricOperator: Sendable, Equatable {
    /// A dense D × D symmetric matrix (checked symmetric to the relative tolerance
    /// `Matrix.symmetryTolerance`, 1e-10, where it is used). Models cost O(D³) with it.
    case dense(Matrix)
    /// The diagonal matrix diag(values): a spectrum, the D eigenvalues of a symmetric matrix in
    /// its own eigenbasis. Every model then costs O(D) and returns diagonals.
    case diagonal([Double])

    /// The dimension D.
    public var dimension: Int {
        switch self {
        case .dense(let m): return m.rows
        case .diagonal(let v): return v.count
        }
    }

    /// Whether this is the `.diagonal` representation.
    public var isDiagonal: Bool {
        if case .diagonal = self { return true }
        return false
    }

    /// The dense matrix (a diagonal one for `.diagonal`).
    public var matrix: Matrix {
        switch self {
        case .dense(let m): return m
        case .diagonal(let v): return Matrix.diagonal(v)
        }
    }

    /// The diagonal entries.
    public var diagonalEntries: [Double] {
        switch self {
        case .dense(let m): return m.diagonalEntries
        case .diagonal(let v): return v
        }
    }

    /// The trace.
    public var trace: Double { diagonalEntries.reduce(0, +) }

    /// The eigenvalues: a spectrum's entries as given, or a matrix's in ascending order (LAPACK).
    /// - Throws: `notSymmetric` or `invalidArgument` for a matrix that is not finite and symmetric.
    public func eigenvalues() throws -> [Double] {
        switch self {
        case .diagonal(let v): return v
        case .dense(let m): return try m.symmetricEigenvalues(name: "A")
        }
    }

    /// Checks finiteness, symmetry and (when given) the dimension.
    func validate(_ name: String, size n: Int? = nil) throws {
        switch self {
        case .dense(let m):
            try m.requireSymmetric(name, size: n)
        case .diagonal(let v):
            guard !v.isEmpty else { throw SGDNoiseError.invalidArgument("\(name) must not be empty") }
            if let n, v.count != n {
                throw SGDNoiseError.invalidArgument("\(name) must have \(n) entries, got \(v.count)")
            }
            if let k = v.firstIndex(where: { !$0.isFinite }) {
                throw SGDNoiseError.invalidArgument("\(name) has a non-finite entry \(v[k]) at \(k)")
            }
        }
    }

    /// Checks that this symmetric operator is positive semi-definite (eigenvalues ≥ −1e-12 of the
    /// largest in magnitude): a covariance. Costs one eigenvalue computation for a dense matrix.
    func requirePositiveSemidefinite(_ name: String) throws {
        let values: [Double]
        switch self {
        case .diagonal(let v): values = v
        case .dense(let m): values = try m.symmetricEigenvalues(name: name)
        }
        try requireCovarianceEigenvalues(values, name)
    }

    /// A + B for operators of the same representation (a diagonal one is densified otherwise).
    static func + (a: SymmetricOperator, b: SymmetricOperator) -> SymmetricOperator {
        switch (a, b) {
        case (.diagonal(let x), .diagonal(let y)): return .diagonal(zip(x, y).map { $0 + $1 })
        default: return .dense(a.matrix + b.matrix)
        }
    }

    /// A · v.
    func apply(_ v: [Double]) -> [Double] {
        switch self {
        case .diagonal(let d): return zip(d, v).map { $0 * $1 }
        case .dense(let m): return m.apply(v)
        }
    }

    /// vᵀ A w.
    func bilinear(_ v: [Double], _ w: [Double]) -> Double {
        zip(v, apply(w)).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// Tr[A X] for a symmetric X of the same dimension (X dense or diagonal).
    func traceProduct(_ x: SymmetricOperator) -> Double {
        switch (self, x) {
        case (.diagonal(let a), _): return zip(a, x.diagonalEntries).reduce(0) { $0 + $1.0 * $1.1 }
        case (_, .diagonal(let b)): return zip(diagonalEntries, b).reduce(0) { $0 + $1.0 * $1.1 }
        case (.dense(let a), .dense(let b)): return zip(a.elements, b.elements).reduce(0) { $0 + $1.0 * $1.1 }
        }
    }

    /// A⁻¹ b for a symmetric positive-definite A (Cholesky), throwing `notPositiveDefinite`.
    func solve(_ b: [Double], name: String) throws -> [Double] {
        switch self {
        case .diagonal(let d):
            guard d.allSatisfy({ $0 > 0 }) else {
                throw SGDNoiseError.notPositiveDefinite("\(name) must be positive definite")
            }
            return zip(b, d).map { $0 / $1 }
        case .dense(let m):
            return try m.solvePositiveDefinite(b, name: name)
        }
    }
}

// MARK: - Compact forms for the simulator

extension SymmetricOperator {
    /// The symmetric `m`, rotated to Qᵀ m Q when `basis` holds the rows of Qᵀ, in its most
    /// compact exact form: `.diagonal` when the off-diagonal part vanishes (relative 1e-13; a
    /// multiple of the identity is a constant diagonal), `.dense` otherwise.
    static func compact(_ m: Matrix, rotatedBy basis: Matrix?) -> SymmetricOperator {
        let r = basis.map { Matrix.product(Matrix.product($0, m), $0, transposeB: true).symmetrized } ?? m
        let n = r.rows
        let scale = max(r.maxAbs, .leastNormalMagnitude)
        var offDiagonal = 0.0
        for i in 0..<n { for j in 0..<n where i != j { offDiagonal = max(offDiagonal, abs(r[i, j])) } }
        return offDiagonal <= 1e-13 * scale ? .diagonal(r.diagonalEntries) : .dense(r)
    }

    /// The entries an `UnsafeView` reads: the diagonal, or the row-major matrix.
    var storedEntries: [Double] {
        switch self {
        case .diagonal(let v): return v
        case .dense(let m): return m.elements
        }
    }

    /// A borrowed view of an operator's entries in memory its owner keeps alive (the simulator's
    /// `ChainArena`), applied in inner loops without reference counting.
    struct UnsafeView {
        let isDiagonal: Bool
        let entries: UnsafePointer<Double>

        /// y = A x for vectors of length `n`.
        @inline(__always)
        func apply<Vector: ChainVector>(_ x: Vector, into y: inout Vector, _ n: Int) {
            if isDiagonal {
                for i in 0..<n { y[i] = entries[i] * x[i] }
                return
            }
            for i in 0..<n {
                var s = 0.0
                let row = entries + i * n
                for j in 0..<n { s += row[j] * x[j] }
                y[i] = s
            }
        }
    }
}

/// Throws unless the eigenvalues are those of a covariance: every one ≥ −1e-12 of the largest in
/// magnitude (rounding of an exactly singular matrix is accepted).
func requireCovarianceEigenvalues(_ values: [Double], _ name: String) throws {
    let scale = values.reduce(0) { max($0, abs($1)) }
    if let lo = values.min(), lo < -1e-12 * scale {
        throw SGDNoiseError.invalidArgument(
            "\(name) must be positive semi-definite (a covariance), but it has the eigenvalue \(lo)")
    }
}
