import _CLAPACK
import _SGDNoiseBLAS
import Testing

/// The tiny products (`Sources/_SGDNoiseBLAS/tiny_products.c`: loops in place of a BLAS call below
/// 512 multiply-adds) against OpenBLAS's own cblas routines on the same arguments, for every flag
/// they honour, leading dimensions larger than the rows, β = 0 on an output full of NaN (BLAS never
/// reads it) and β ≠ 0, and sizes on both sides of the threshold (above it `sgn_` calls BLAS).
@Suite("Tiny dense products against BLAS")
struct TinyProductTests {
    /// Deterministic values in [−1, 1].
    static func values(_ count: Int, seed: Int) -> [Double] {
        (0..<count).map { i in
            let t = Double((i * 7919 + seed * 104_729) % 2003) / 1001.5 - 1
            return t == 0 ? 0.37 : t
        }
    }

    /// Every entry equal to rounding: |x − y| ≤ 1e-14 · scale, with scale the sum of the magnitudes
    /// of the terms (so a wrong term, sign or transpose is caught by orders of magnitude).
    static func agree(_ x: [Double], _ y: [Double], scale: Double) -> Bool {
        x.count == y.count && zip(x, y).allSatisfy { ($0.isNaN && $1.isNaN) || abs($0 - $1) <= 1e-14 * scale }
    }

    static let shapes = [(1, 1, 1), (2, 2, 2), (3, 2, 5), (2, 5, 3), (8, 8, 8), (4, 7, 3), (9, 8, 8), (20, 3, 10)]

    @Test("dgemm: both transposes, β = 0 and β ≠ 0")
    func gemm() {
        for (m, n, k) in Self.shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for beta in [0.0, 0.3] {
                    let lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 1
                    let a = Self.values((ta ? k : m) * lda, seed: m), b = Self.values((tb ? n : k) * ldb, seed: n)
                    let start = beta == 0 ? [Double](repeating: .nan, count: m * ldc) : Self.values(m * ldc, seed: k)
                    var ours = start, theirs = start
                    let (oa, ob) = (ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans)
                    sgn_cblas_dgemm(CblasRowMajor, oa, ob, Int32(m), Int32(n), Int32(k), 0.7, a, Int32(lda), b,
                                    Int32(ldb), beta, &ours, Int32(ldc))
                    cblas_dgemm(CblasRowMajor, oa, ob, Int32(m), Int32(n), Int32(k), 0.7, a, Int32(lda), b, Int32(ldb),
                                beta, &theirs, Int32(ldc))
                    // The padding column of C is left as it was (NaN when β = 0).
                    #expect(Self.agree(ours, theirs, scale: Double(k + 1)), "m \(m) n \(n) k \(k) ta \(ta) tb \(tb) β \(beta)")
                }
            }
        }
    }

    @Test("dsyrk: upper and lower, transposed or not; only that triangle is written")
    func syrk() {
        for (n, _, k) in Self.shapes {
            for upper in [true, false] {
                for trans in [false, true] {
                    for beta in [0.0, 0.3] {
                        let lda = (trans ? n : k) + 1, ldc = n + 2
                        let a = Self.values((trans ? k : n) * lda, seed: n + k)
                        let start = beta == 0 ? [Double](repeating: .nan, count: n * ldc) : Self.values(n * ldc, seed: 3)
                        var ours = start, theirs = start
                        let (u, t) = (upper ? CblasUpper : CblasLower, trans ? CblasTrans : CblasNoTrans)
                        sgn_cblas_dsyrk(CblasRowMajor, u, t, Int32(n), Int32(k), 0.7, a, Int32(lda), beta, &ours, Int32(ldc))
                        cblas_dsyrk(CblasRowMajor, u, t, Int32(n), Int32(k), 0.7, a, Int32(lda), beta, &theirs, Int32(ldc))
                        #expect(Self.agree(ours, theirs, scale: Double(k + 1)), "n \(n) k \(k) upper \(upper) trans \(trans)")
                    }
                }
            }
        }
    }

    @Test("dtrmm: left and right, upper and lower, transposed or not, unit diagonal or not")
    func trmm() {
        for (m, n, _) in Self.shapes {
            for left in [true, false] {
                for upper in [true, false] {
                    for trans in [false, true] {
                        for unit in [false, true] {
                            let order = left ? m : n, lda = order + 1, ldb = n + 1
                            let a = Self.values(order * lda, seed: 5 + order)
                            let b = Self.values(m * ldb, seed: 11)
                            var ours = b, theirs = b
                            let flags = (left ? CblasLeft : CblasRight, upper ? CblasUpper : CblasLower,
                                         trans ? CblasTrans : CblasNoTrans, unit ? CblasUnit : CblasNonUnit)
                            sgn_cblas_dtrmm(CblasRowMajor, flags.0, flags.1, flags.2, flags.3, Int32(m), Int32(n), 0.7, a,
                                            Int32(lda), &ours, Int32(ldb))
                            cblas_dtrmm(CblasRowMajor, flags.0, flags.1, flags.2, flags.3, Int32(m), Int32(n), 0.7, a,
                                        Int32(lda), &theirs, Int32(ldb))
                            #expect(Self.agree(ours, theirs, scale: Double(order + 1)),
                                    "m \(m) n \(n) left \(left) upper \(upper) trans \(trans) unit \(unit)")
                        }
                    }
                }
            }
        }
    }

    @Test("dgemv: transposed or not, β = 0 and β ≠ 0")
    func gemv() {
        for (m, n, _) in Self.shapes + [(17, 31, 1), (40, 20, 1)] {
            for trans in [false, true] {
                for beta in [0.0, 0.3] {
                    let lda = n + 3
                    let a = Self.values(m * lda, seed: m * n), x = Self.values(trans ? m : n, seed: 2)
                    let count = trans ? n : m
                    let start = beta == 0 ? [Double](repeating: .nan, count: count) : Self.values(count, seed: 4)
                    var ours = start, theirs = start
                    let t = trans ? CblasTrans : CblasNoTrans
                    sgn_cblas_dgemv(CblasRowMajor, t, Int32(m), Int32(n), 0.7, a, Int32(lda), x, 1, beta, &ours, 1)
                    cblas_dgemv(CblasRowMajor, t, Int32(m), Int32(n), 0.7, a, Int32(lda), x, 1, beta, &theirs, 1)
                    #expect(Self.agree(ours, theirs, scale: Double(max(m, n) + 1)), "m \(m) n \(n) trans \(trans) β \(beta)")
                }
            }
        }
    }
}
