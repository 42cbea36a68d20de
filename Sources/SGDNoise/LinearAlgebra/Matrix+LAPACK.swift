import _SGDNoiseBLAS

extension Matrix {
    /// x = A⁻¹ b for this square matrix, by LU with partial pivoting (`LAPACKE_dgesv`, or
    /// `smallSolve` up to n = `smallSolveSize`); nil when A is exactly singular or the solve fails.
    func solveGeneral(_ b: [Double]) -> [Double]? {
        if rows <= Self.smallSolveSize {
            let (info, x) = smallSolve(b, cholesky: false)
            return info == 0 ? x : nil
        }
        let (info, x) = lapackSolve(b) { n, a, x in
            sgn_LAPACKE_dgesv(LAPACK_ROW_MAJOR, n, 1, a, n, x, 1)
        }
        return info == 0 ? x : nil
    }

    /// x = A⁻¹ b for this symmetric positive-definite matrix, by Cholesky (`LAPACKE_dposv`, or
    /// `smallSolve` up to n = `smallSolveSize`).
    /// - Throws: `notPositiveDefinite` when the factorisation fails.
    func solvePositiveDefinite(_ b: [Double], name: String) throws -> [Double] {
        let (info, x) = rows <= Self.smallSolveSize ? smallSolve(b, cholesky: true) : lapackSolve(b) { n, a, x in
            sgn_LAPACKE_dposv(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), n, 1, a, n, x, n)
        }
        guard info == 0 else {
            if info > 0 {
                throw SGDNoiseError.notPositiveDefinite("\(name) must be positive definite (Cholesky failed at column \(info))")
            }
            throw SGDNoiseError.numericalFailure("\(name): dposv failed (info = \(info))")
        }
        return x
    }

    /// The largest n that `solveGeneral` and `solvePositiveDefinite` solve by `smallSolve`'s loops:
    /// at n = 2 LAPACK's dgesv and dposv took ~3–4k instructions a call, mostly call and workspace
    /// overhead, the loops a few hundred.
    static let smallSolveSize = 16

    /// The unblocked algorithms LAPACK runs at these sizes, on copies of this matrix and of b, with
    /// LAPACK's info: `cholesky`: A = LLᵀ from the entries on and below the diagonal (those dposv
    /// reads of a row-major matrix given as column-major upper), failing at column j + 1 when the
    /// pivot a_jj − Σ L_jk² is not positive (or NaN), as dpotrf; else LU with partial pivoting (the
    /// row of largest |entry|, the first on ties, as idamax), failing at column j + 1 at an exactly
    /// zero pivot, as dgetrf. Then the two triangular solves.
    private func smallSolve(_ b: [Double], cholesky: Bool) -> (Int32, [Double]) {
        precondition(rows == columns && b.count == rows)
        let n = rows
        // LAPACKE's NaN checks first, with its info: the matrix (the triangle dposv reads), then b.
        for i in 0..<n {
            for j in 0..<(cholesky ? i + 1 : n) where elements[i * n + j].isNaN { return (cholesky ? -5 : -4, b) }
        }
        if b.contains(where: \.isNaN) { return (-7, b) }
        var a = elements
        var x = b
        let info: Int32 = a.withUnsafeMutableBufferPointer { a in
            x.withUnsafeMutableBufferPointer { x in
                if cholesky {
                    for j in 0..<n {  // L in the lower triangle, row-major
                        var d = a[j * n + j]
                        for k in 0..<j { d -= a[j * n + k] * a[j * n + k] }
                        guard d > 0 else { return Int32(j + 1) }
                        let l = d.squareRoot()
                        a[j * n + j] = l
                        for i in (j + 1)..<n {
                            var s = a[i * n + j]
                            for k in 0..<j { s -= a[i * n + k] * a[j * n + k] }
                            a[i * n + j] = s / l
                        }
                    }
                    for i in 0..<n {  // L y = b
                        var s = x[i]
                        for k in 0..<i { s -= a[i * n + k] * x[k] }
                        x[i] = s / a[i * n + i]
                    }
                    for i in stride(from: n - 1, through: 0, by: -1) {  // Lᵀ x = y
                        var s = x[i]
                        for k in (i + 1)..<n { s -= a[k * n + i] * x[k] }
                        x[i] = s / a[i * n + i]
                    }
                    return 0
                }
                for j in 0..<n {
                    var pivot = j
                    for i in (j + 1)..<n where abs(a[i * n + j]) > abs(a[pivot * n + j]) { pivot = i }
                    guard a[pivot * n + j] != 0 else { return Int32(j + 1) }
                    if pivot != j {
                        for k in 0..<n { a.swapAt(j * n + k, pivot * n + k) }
                        x.swapAt(j, pivot)
                    }
                    let inverse = 1 / a[j * n + j]
                    for i in (j + 1)..<n {
                        let f = a[i * n + j] * inverse
                        a[i * n + j] = f
                        for k in (j + 1)..<n { a[i * n + k] -= f * a[j * n + k] }
                        x[i] -= f * x[j]
                    }
                }
                for i in stride(from: n - 1, through: 0, by: -1) {
                    var s = x[i]
                    for k in (i + 1)..<n { s -= a[i * n + k] * x[k] }
                    x[i] = s / a[i * n + i]
                }
                return 0
            }
        }
        return (info, x)
    }

    /// LAPACK's `solve(n, A, x)` on copies of this square matrix and of b (x in place of b), and
    /// its info.
    private func lapackSolve(
        _ b: [Double], _ solve: (Int32, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?) -> Int32
    ) -> (Int32, [Double]) {
        precondition(rows == columns && b.count == rows)
        var a = elements
        var x = b
        let info = a.withUnsafeMutableBufferPointer { pa in
            x.withUnsafeMutableBufferPointer { px in solve(blasInt(rows), pa.baseAddress, px.baseAddress) }
        }
        return (info, x)
    }

    /// The eigenvalues (ascending) of this symmetric matrix, without eigenvectors (`dsyevd`, 'N').
    /// n ≤ 2 in closed form (`SymmetricEigendecomposition.small`).
    func symmetricEigenvalues(name: String) throws -> [Double] {
        try requireSymmetric(name)
        if rows <= 2 { return SymmetricEigendecomposition.small(self).values }
        var a = elements
        var w = [Double](repeating: 0, count: rows)
        let n = rows
        let info = a.withUnsafeMutableBufferPointer { pa in
            w.withUnsafeMutableBufferPointer { pw in
                sgn_LAPACKE_dsyevd(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "N")), SymmetricEigendecomposition.triangle,
                                   blasInt(n), pa.baseAddress, blasInt(n), pw.baseAddress)
            }
        }
        guard info == 0 else {
            throw SGDNoiseError.numericalFailure("\(name): the symmetric eigensolver dsyevd failed (info = \(info))")
        }
        return w
    }
}
