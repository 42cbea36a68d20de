import _SGDNoiseBLAS

/// Dense products through BLAS (OpenBLAS): GEMM and SYRK on row-major matrices.
extension Matrix {
    /// The product op(a) · op(b) · alpha, where op transposes when asked (`cblas_dgemm`).
    public static func product(
        _ a: Matrix, _ b: Matrix, transposeA ta: Bool = false, transposeB tb: Bool = false,
        scale alpha: Double = 1
    ) -> Matrix {
        let m = ta ? a.columns : a.rows
        let k = ta ? a.rows : a.columns
        let kb = tb ? b.columns : b.rows
        let n = tb ? b.rows : b.columns
        precondition(k == kb, "product: inner dimensions \(k) and \(kb) differ")
        if m == 0 || n == 0 || k == 0 { return Matrix(rows: m, columns: n) }
        // β = 0: GEMM writes every entry, so the result needs no zero fill first.
        return Matrix(uninitializedRows: m, columns: n) { pc in
            a.elements.withUnsafeBufferPointer { pa in
                b.elements.withUnsafeBufferPointer { pb in
                    sgn_cblas_dgemm(
                        CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                        blasInt(m), blasInt(n), blasInt(k), alpha,
                        pa.baseAddress, blasInt(a.columns), pb.baseAddress, blasInt(b.columns),
                        0, pc.baseAddress, blasInt(n))
                }
            }
        }
    }

    /// α · a · s · aᵀ (`transposeA`: α · aᵀ · s · a) for a symmetric `s` and a square `a` of its
    /// size, symmetric to the last bit.
    ///
    /// With s = U + Uᵀ, U the upper triangle of s with its diagonal halved, a s aᵀ = R + Rᵀ for
    /// R = (a U) aᵀ: one TRMM (n³ flops) and one GEMM (2n³), where two GEMMs take 4n³. Only the upper
    /// triangle of `s` is read. U is s's storage with the diagonal halved, and R is written over it
    /// (no new n × n buffer when the caller gives s up); W = a U over a copy of a.
    static func congruence(_ a: Matrix, _ s: consuming Matrix, transposeA: Bool = false,
                           scale alpha: Double = 1) -> Matrix {
        let n = s.rows
        precondition(s.columns == n && a.rows == n && a.columns == n, "congruence: shapes do not agree")
        if n == 0 { return s }
        if n <= congruenceLoopSize { return congruenceByLoops(a, s, transposeA: transposeA, scale: alpha) }
        var r = consume s
        var w = a.elements
        r.elements.withUnsafeMutableBufferPointer { pr in
            a.elements.withUnsafeBufferPointer { pa in
                w.withUnsafeMutableBufferPointer { pw in
                    let (u, aa, wa) = (pr.baseAddress!, pa.baseAddress!, pw.baseAddress!)
                    for i in 0..<n { u[i * n + i] *= 0.5 }
                    // W = a U (U a), then R = α W aᵀ (α aᵀ W) over U, no longer read.
                    sgn_cblas_dtrmm(CblasRowMajor, transposeA ? CblasLeft : CblasRight, CblasUpper, CblasNoTrans,
                                    CblasNonUnit, blasInt(n), blasInt(n), 1, u, blasInt(n), wa, blasInt(n))
                    let (left, right) = transposeA ? (aa, UnsafePointer(wa)) : (UnsafePointer(wa), aa)
                    sgn_cblas_dgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
                                    transposeA ? CblasNoTrans : CblasTrans, blasInt(n), blasInt(n), blasInt(n), alpha,
                                    left, blasInt(n), right, blasInt(n), 0, u, blasInt(n))
                }
            }
        }
        r.addTransposeInPlace()
        return r
    }

    /// The largest n whose congruence runs as plain loops (`congruenceByLoops`): at n = 2 the
    /// BLAS route's copy of a, TRMM and GEMM calls took ~1.7k instructions, the loops ~0.2k; the
    /// loops' 3n³ flops against the BLAS route's 3n³ at its call overhead cross near this size.
    static let congruenceLoopSize = 8

    /// `congruence` by loops for small n, in s's storage with T = op(a)·s on the stack: T_il =
    /// Σ_k op(a)_ik s_kl (s's upper triangle read for both halves), then R_ij = α Σ_l T_il op(a)_jl
    /// for j ≥ i, mirrored (symmetric to the last bit).
    static func congruenceByLoops(_ a: Matrix, _ s: consuming Matrix, transposeA: Bool, scale alpha: Double) -> Matrix {
        let n = s.rows
        var r = consume s
        withUnsafeTemporaryAllocation(of: Double.self, capacity: n * n) { t in
            a.elements.withUnsafeBufferPointer { av in
                r.elements.withUnsafeMutableBufferPointer { u in
                    // op(a)_ik: a[i, k], or a[k, i] for aᵀ.
                    let (rowStride, columnStride) = transposeA ? (1, n) : (n, 1)
                    for i in 0..<n {
                        for l in 0..<n {
                            var sum = 0.0
                            for k in 0..<n {
                                let skl = k <= l ? u[k * n + l] : u[l * n + k]
                                sum += av[i * rowStride + k * columnStride] * skl
                            }
                            t[i * n + l] = sum
                        }
                    }
                    for i in 0..<n {
                        for j in i..<n {
                            var sum = 0.0
                            for l in 0..<n { sum += t[i * n + l] * av[j * rowStride + l * columnStride] }
                            u[i * n + j] = alpha * sum
                            u[j * n + i] = alpha * sum
                        }
                    }
                }
            }
        }
        return r
    }

    /// The matrix-vector product self · v (`cblas_dgemv`; by loops up to 256 entries).
    public func apply(_ v: [Double]) -> [Double] {
        precondition(v.count == columns, "apply: vector of \(v.count) entries for \(columns) columns")
        var y = [Double](repeating: 0, count: rows)
        if rows == 0 || columns == 0 { return y }
        if rows * columns <= 256 {
            elements.withUnsafeBufferPointer { a in
                for i in 0..<rows {
                    var sum = 0.0
                    for j in 0..<columns { sum += a[i * columns + j] * v[j] }
                    y[i] = sum
                }
            }
            return y
        }
        elements.withUnsafeBufferPointer { a in
            v.withUnsafeBufferPointer { x in
                y.withUnsafeMutableBufferPointer { out in
                    sgn_cblas_dgemv(CblasRowMajor, CblasNoTrans, blasInt(rows), blasInt(columns), 1,
                                    a.baseAddress, blasInt(columns), x.baseAddress, 1, 0, out.baseAddress, 1)
                }
            }
        }
        return y
    }

    /// Matrix product a · b.
    public static func * (a: Matrix, b: Matrix) -> Matrix { product(a, b) }

    /// The largest rows · columns² that `weightedGram` sums by plain loops.
    static let smallGramWork = 512

    /// The symmetric matrix Σ_k s_k r_k r_kᵀ, with r_k the rows of `self` (`cblas_dsyrk`):
    /// `selfᵀ · diag(weights) · self`, computed with one SYRK on the rows scaled by √|s_k| when all
    /// weights share a sign; by plain loops up to rows · columns² = `smallGramWork`.
    func weightedGram(rowWeights weights: [Double]) -> Matrix {
        precondition(weights.count == rows)
        let n = columns
        if rows * n * n <= Self.smallGramWork {
            // Small: Σ_k s_k r_kj r_kl by loops on the upper triangle, mirrored (SYRK's call and the
            // scaled copy cost more than the arithmetic: ~2k instructions for 8 rows of 2).
            return Matrix(uninitializedRows: n, columns: n) { out in
                elements.withUnsafeBufferPointer { x in
                    for j in 0..<n {
                        for l in j..<n {
                            var sum = 0.0
                            for k in 0..<rows { sum += weights[k] * x[k * n + j] * x[k * n + l] }
                            out[j * n + l] = sum
                            out[l * n + j] = sum
                        }
                    }
                }
            }
        }
        var result = Matrix(rows: n, columns: n)
        if rows == 0 || n == 0 { return result }
        let allNonNegative = weights.allSatisfy { $0 >= 0 }
        let allNonPositive = weights.allSatisfy { $0 <= 0 }
        if allNonNegative || allNonPositive {
            var scaled = elements
            scaled.withUnsafeMutableBufferPointer { s in
                for k in 0..<rows {
                    let f = abs(weights[k]).squareRoot()
                    for j in 0..<n { s[k * n + j] *= f }
                }
            }
            scaled.withUnsafeBufferPointer { s in
                result.elements.withUnsafeMutableBufferPointer { r in
                    sgn_cblas_dsyrk(
                        CblasRowMajor, CblasUpper, CblasTrans, blasInt(n), blasInt(rows),
                        allNonNegative ? 1 : -1, s.baseAddress, blasInt(n), 0, r.baseAddress, blasInt(n))
                }
            }
            result.fillLowerFromUpper()
            return result
        }
        var scaled = elements
        for k in 0..<rows {
            for j in 0..<n { scaled[k * n + j] *= weights[k] }
        }
        let s = Matrix(uncheckedRows: rows, columns: n, elements: scaled)
        return Matrix.product(s, self, transposeA: true).symmetrized
    }
}

/// BLAS/LAPACK integer arguments (32-bit in Debian's OpenBLAS).
@inline(__always)
///
/// Every caller bounds its sizes first (dense dimensions by `Validation.maxDenseDimension`,
/// vector operations of any length use the library's own kernels, `LongVectors.swift`), so the value
/// always fits; a size that does not is a library bug, caught by the assertion in debug builds
/// (release builds clamp rather than wrap, so a bug cannot index outside the buffers).
func blasInt(_ n: Int) -> Int32 {
    assert(n >= 0 && n <= Int(Int32.max), "BLAS size \(n) does not fit 32 bits")
    return Int32(clamping: n)
}

