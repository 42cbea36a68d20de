import _SGDNoiseBLAS

/// The eigendecomposition A = Q diag(values) Qᵀ of a real symmetric matrix.
///
/// Computed by LAPACK's divide-and-conquer driver `dsyevd`, the routine behind `numpy.linalg.eigh`
/// (n ≤ 2: one Jacobi rotation in closed form, `small`). Eigenvalues are in ascending order;
/// eigenvectors are orthonormal.
public struct SymmetricEigendecomposition: Sendable {
    /// The eigenvalues, ascending.
    public let values: [Double]
    /// Qᵀ: row k is the unit eigenvector of `values[k]`. Kept in this layout because it is what
    /// LAPACK returns for a row-major symmetric input, so no transpose is ever made.
    public let eigenvectorRows: Matrix

    /// The eigenvector matrix Q (column k is the eigenvector of `values[k]`).
    public var vectors: Matrix { eigenvectorRows.transposed }

    /// Decomposes the symmetric matrix `a` (checked: square, finite, symmetric within
    /// `Matrix.symmetryTolerance`).
    /// - Parameter name: the argument's name in error messages.
    /// - Throws: `invalidArgument`, `notSymmetric`, `numericalFailure` (no convergence).
    public init(_ a: Matrix, name: String = "matrix") throws {
        try a.requireSymmetric(name)
        try self.init(checked: a, name: name)
    }

    /// Decomposes a matrix already known to be symmetric and finite. LAPACK overwrites its copy
    /// with the eigenvectors: `a`'s own storage when the caller gives `a` up.
    init(checked a: consuming Matrix, name: String) throws {
        let n = a.rows
        guard n <= 40_000 else {
            throw SGDNoiseError.outOfMemory("\(name): dimension \(n) exceeds the eigensolver's limit of 40000")
        }
        if n <= 2 {
            (values, eigenvectorRows) = Self.small(a)
            return
        }
        var work = (consume a).elements
        var w = [Double](repeating: 0, count: n)
        // A row-major symmetric matrix is its own column-major transpose: call LAPACK in column
        // order, so that no layout conversion is made; eigenvectors come back as our rows.
        let info = work.withUnsafeMutableBufferPointer { pa in
            w.withUnsafeMutableBufferPointer { pw in
                sgn_LAPACKE_dsyevd(
                    LAPACK_COL_MAJOR, CChar(UInt8(ascii: "V")), Self.triangle,
                    blasInt(n), pa.baseAddress, blasInt(n), pw.baseAddress)
            }
        }
        if info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR {
            throw SGDNoiseError.outOfMemory("\(name): not enough memory for the eigendecomposition (n = \(n))")
        }
        guard info == 0 else {
            throw SGDNoiseError.numericalFailure("\(name): the symmetric eigensolver dsyevd failed (info = \(info))")
        }
        values = w
        eigenvectorRows = Matrix(uncheckedRows: n, columns: n, elements: work)
    }

    /// The triangle LAPACK reads, in its column-major view of our row-major storage: 'L', i.e. our
    /// upper triangle (row i from column i on). OpenBLAS's dsytrd then runs its lower SYMV kernel:
    /// numpy.linalg.eigh at n = 1500 took 3 % (best of 24 calls) and 6.6 % (median of 24 paired
    /// ratios) less time with UPLO='L' than with 'U' on this project's machine.
    static var triangle: CChar { CChar(UInt8(ascii: "L")) }

    /// n ≤ 2 in closed form, as LAPACK reads the matrix (the off-diagonal entry of row 0): one
    /// Jacobi rotation (Golub & Van Loan, *Matrix Computations*, §8.5.2) diagonalises
    /// [[a, b], [b, c]]: ζ = (c − a)/2b, t = sign(ζ)/(|ζ| + √(1 + ζ²)), cs = 1/√(1 + t²), sn = t·cs,
    /// eigenvalues a − tb and c + tb (backward stable, like `dsyevd`), eigenvectors (cs, −sn) and
    /// (sn, cs). At n = 2 this costs ~0.1k instructions where LAPACK's call took ~5k.
    static func small(_ m: Matrix) -> (values: [Double], vectors: Matrix) {
        guard m.rows == 2 else {
            return (m.elements, Matrix(uncheckedRows: m.rows, columns: m.rows, elements: m.rows == 1 ? [1] : []))
        }
        // Scaled by a power of two to max |entry| in [1, 2) (exact), so that c − a and 2b cannot
        // overflow; the eigenvalues are scaled back (exact unless they leave the double range).
        let largest = max(abs(m.elements[0]), abs(m.elements[1]), abs(m.elements[3]))
        guard largest > 0 else {
            return ([0, 0], Matrix(uncheckedRows: 2, columns: 2, elements: [1, 0, 0, 1]))
        }
        let e = Int(largest.exponent)
        // x · 2^k (scalbn: exact, also across the subnormal range).
        func scaled(_ x: Double, _ k: Int) -> Double { Double(sign: .plus, exponent: k, significand: x) }
        let a = scaled(m.elements[0], -e), b = scaled(m.elements[1], -e), c = scaled(m.elements[3], -e)
        var t = 0.0
        if b != 0 {
            let zeta = (c - a) / (2 * b)
            // Where ζ² overflows t comes out 0 for |t| < 1e-154: a, c are then the eigenvalues to
            // within b²/|c − a|, far below rounding.
            t = (zeta < 0 ? -1.0 : 1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
        }
        let cs = 1 / (1 + t * t).squareRoot(), sn = t * cs
        let (low, high) = (scaled(a - t * b, e), scaled(c + t * b, e))
        return low <= high
            ? ([low, high], Matrix(uncheckedRows: 2, columns: 2, elements: [cs, -sn, sn, cs]))
            : ([high, low], Matrix(uncheckedRows: 2, columns: 2, elements: [sn, cs, cs, -sn]))
    }

    /// The decomposition of c·A: the same eigenvectors, the eigenvalues times c.
    func scaled(by c: Double) -> SymmetricEigendecomposition {
        c == 1 ? self : SymmetricEigendecomposition(values: values.map { c * $0 }, eigenvectorRows: eigenvectorRows)
    }

    /// From parts already computed.
    private init(values: [Double], eigenvectorRows: Matrix) {
        self.values = values
        self.eigenvectorRows = eigenvectorRows
    }

    /// Q diag(f(values)) Qᵀ, as one SYRK when all f(values) share a sign.
    public func reconstruct(_ f: (Double) -> Double) -> Matrix {
        eigenvectorRows.weightedGram(rowWeights: values.map(f))
    }

    /// The largest |eigenvalue| (0 for an empty matrix).
    public var spectralRadius: Double { values.reduce(0) { max($0, abs($1)) } }
}

/// The symmetric positive-definite square root P = Λ^{1/2} of an SPD matrix, with its
/// eigendecomposition kept for reuse.
struct SPDSquareRoot {
    let root: Matrix
    let eigen: SymmetricEigendecomposition

    /// - Throws: `notSymmetric`, `notPositiveDefinite` (an eigenvalue ≤ 0), …
    init(_ lambda: Matrix, name: String) throws {
        eigen = try SymmetricEigendecomposition(lambda, name: name)
        guard let smallest = eigen.values.first, smallest > 0 else {
            throw SGDNoiseError.notPositiveDefinite(
                "\(name) must be positive definite; its smallest eigenvalue is \(eigen.values.first ?? .nan)")
        }
        root = eigen.reconstruct { $0.squareRoot() }
    }
}
