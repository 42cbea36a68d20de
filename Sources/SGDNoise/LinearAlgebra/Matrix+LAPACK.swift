import _SGDNoiseBLAS

extension Matrix {
    /// x = A⁻¹ b for this square matrix, by LU with partial pivoting (`LAPACKE_dgesv`); nil when
    /// A is exactly singular or the solve fails.
    func solveGeneral(_ b: [Double]) -> [Double]? {
        let (info, x) = lapackSolve(b) { n, a, x in
            sgn_LAPACKE_dgesv(LAPACK_ROW_MAJOR, n, 1, a, n, x, 1)
        }
        return info == 0 ? x : nil
    }

    /// x = A⁻¹ b for this symmetric positive-definite matrix, by Cholesky (`LAPACKE_dposv`).
    /// - Throws: `notPositiveDefinite` when the factorisation fails.
    func solvePositiveDefinite(_ b: [Double], name: String) throws -> [Double] {
        let (info, x) = lapackSolve(b) { n, a, x in
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
    func symmetricEigenvalues(name: String) throws -> [Double] {
        try requireSymmetric(name)
        var a = elements
        var w = [Double](repeating: 0, count: rows)
        let n = rows
        let info = a.withUnsafeMutableBufferPointer { pa in
            w.withUnsafeMutableBufferPointer { pw in
                sgn_LAPACKE_dsyevd(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "U")),
                                   blasInt(n), pa.baseAddress, blasInt(n), pw.baseAddress)
            }
        }
        guard info == 0 else {
            throw SGDNoiseError.numericalFailure("\(name): the symmetric eigensolver dsyevd failed (info = \(info))")
        }
        return w
    }
}
