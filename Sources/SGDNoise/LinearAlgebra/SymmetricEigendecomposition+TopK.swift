import _SGDNoiseBLAS

/// The k largest eigenpairs of a real symmetric matrix: A v_j = λ_j v_j, λ_1 ≥ … ≥ λ_k.
///
/// Conventions, fixed so that results are reproducible across routes and machines:
/// - `values` are in descending order;
/// - `vectors` is D × k, column j the unit eigenvector of `values[j]`;
/// - each eigenvector's sign is chosen so that its entry of largest magnitude (the first such
///   entry on a tie) is positive. Eigenvectors of a repeated eigenvalue are any orthonormal basis of
///   its eigenspace.
public struct TopEigenpairs: Sendable, Equatable {
    /// The k largest eigenvalues, descending.
    public let values: [Double]
    /// D × k, column j the unit eigenvector of `values[j]`.
    public let vectors: Matrix

    /// The number of eigenpairs k.
    public var count: Int { values.count }

    /// Eigenpairs from eigenvectors given as the k rows of `rows` (k × D), in the order of `values`;
    /// the signs are normalised and the rows transposed into columns.
    init(values: [Double], vectorRows rows: Matrix) {
        precondition(rows.rows == values.count)
        let k = rows.rows, d = rows.columns
        var v = Matrix(rows: d, columns: k)
        for j in 0..<k {
            let base = j * d
            var pivot = 0
            var largest = -1.0
            for i in 0..<d where abs(rows.elements[base + i]) > largest {
                largest = abs(rows.elements[base + i])
                pivot = i
            }
            let sign: Double = rows.elements[base + pivot] < 0 ? -1 : 1
            for i in 0..<d { v.elements[i * k + j] = sign * rows.elements[base + i] }
        }
        self.values = values
        self.vectors = v
    }

    /// Eigenpairs from eigenvectors given as the k columns of `columns` (D × k), normalising each
    /// column to unit length and its sign as documented.
    init(values: [Double], unnormalisedColumns columns: Matrix) {
        precondition(columns.columns == values.count)
        let k = columns.columns, d = columns.rows
        var rows = Matrix(rows: k, columns: d)
        for j in 0..<k {
            var norm = 0.0
            for i in 0..<d { norm += columns.elements[i * k + j] * columns.elements[i * k + j] }
            let scale = norm > 0 ? 1 / norm.squareRoot() : 0
            for i in 0..<d { rows.elements[j * d + i] = scale * columns.elements[i * k + j] }
        }
        self.init(values: values, vectorRows: rows)
    }
}

extension Matrix {
    /// The `k` largest eigenvalues (descending) of this symmetric matrix and their eigenvectors as
    /// the rows of a k × n matrix, by LAPACK's `dsyevr` restricted to the index range n−k+1…n
    /// (only the wanted eigenvectors are computed: O(n³) for the reduction to tridiagonal form,
    /// then O(n k) per eigenvector).
    ///
    /// The matrix is assumed symmetric and finite (callers check inputs, or pass results the
    /// library computed); only its upper triangle is read.
    /// - Throws: `numericalFailure` when LAPACK fails, `outOfMemory` when its workspace cannot be
    ///   allocated.
    func largestEigenpairs(_ k: Int, name: String) throws -> (values: [Double], vectorRows: Matrix) {
        let n = rows
        precondition(n == columns && k >= 1 && k <= n)
        var a = elements
        var w = [Double](repeating: 0, count: n)
        var z = [Double](repeating: 0, count: n * k)
        var support = [Int32](repeating: 0, count: 2 * k)
        var found: Int32 = 0
        // Row-major symmetric storage is its own column-major transpose; in column-major order the
        // k eigenvectors come back contiguous, i.e. as the rows of a row-major k × n matrix.
        let info = a.withUnsafeMutableBufferPointer { pa in
            w.withUnsafeMutableBufferPointer { pw in
                z.withUnsafeMutableBufferPointer { pz in
                    support.withUnsafeMutableBufferPointer { ps in
                        sgn_LAPACKE_dsyevr(
                            LAPACK_COL_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "I")),
                            SymmetricEigendecomposition.triangle, blasInt(n), pa.baseAddress, blasInt(n), 0, 0,
                            blasInt(n - k + 1), blasInt(n), 0, &found, pw.baseAddress, pz.baseAddress,
                            blasInt(n), ps.baseAddress)
                    }
                }
            }
        }
        if info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR {
            throw SGDNoiseError.outOfMemory("\(name): not enough memory for the eigensolver (n = \(n))")
        }
        guard info == 0, Int(found) == k else {
            throw SGDNoiseError.numericalFailure(
                "\(name): the symmetric eigensolver dsyevr failed (info = \(info), \(found) of \(k) eigenpairs found)")
        }
        // dsyevr returns ascending order: reverse into descending.
        var values = [Double](repeating: 0, count: k)
        var vectorRows = Matrix(rows: k, columns: n)
        for j in 0..<k {
            let source = k - 1 - j
            values[j] = w[source]
            for i in 0..<n { vectorRows.elements[j * n + i] = z[source * n + i] }
        }
        return (values, vectorRows)
    }

    /// The top-k eigenpairs of this symmetric matrix (checked: square, finite, symmetric within
    /// `Matrix.symmetryTolerance`), with the conventions of `TopEigenpairs`.
    /// - Parameters:
    ///   - k: 1 ≤ k ≤ n.
    ///   - name: the argument's name in error messages.
    /// - Throws: `invalidArgument` (k out of range, non-finite entries), `notSymmetric`,
    ///   `numericalFailure`.
    public func topEigenpairs(_ k: Int, name: String = "matrix") throws -> TopEigenpairs {
        try requireSymmetric(name)
        guard k >= 1, k <= rows else {
            throw SGDNoiseError.invalidArgument("k must be between 1 and the dimension \(rows) of \(name), got \(k)")
        }
        let (values, vectorRows) = try largestEigenpairs(k, name: name)
        return TopEigenpairs(values: values, vectorRows: vectorRows)
    }
}
