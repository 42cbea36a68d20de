import SGDNoise

/// Plain-loop dense linear algebra for building references: no BLAS, no LAPACK, nothing shared with
/// the library except the `Matrix` container (row-major `elements`, `subscript`).
enum Ref {
    /// The unit roundoff u = 2⁻⁵³.
    static let u = Double.ulpOfOne / 2

    /// γ_n = n u / (1 − n u), the classic bound on the relative error of an n-term sum of products.
    static func gamma(_ n: Int) -> Double { Double(n) * u / (1 - Double(n) * u) }

    static func zeros(_ rows: Int, _ columns: Int) -> Matrix { Matrix(rows: rows, columns: columns) }

    static func identity(_ n: Int) -> Matrix {
        var m = zeros(n, n)
        for i in 0..<n { m[i, i] = 1 }
        return m
    }

    static func diagonal(_ v: [Double]) -> Matrix {
        var m = zeros(v.count, v.count)
        for i in v.indices { m[i, i] = v[i] }
        return m
    }

    /// A matrix from rows (test inputs; the rows must be of equal length).
    static func matrix(_ rows: [[Double]]) -> Matrix {
        var m = zeros(rows.count, rows.first?.count ?? 0)
        for i in rows.indices {
            precondition(rows[i].count == m.columns)
            for j in rows[i].indices { m[i, j] = rows[i][j] }
        }
        return m
    }

    /// a · b by the triple loop.
    static func mul(_ a: Matrix, _ b: Matrix) -> Matrix {
        precondition(a.columns == b.rows)
        var c = zeros(a.rows, b.columns)
        for i in 0..<a.rows {
            for k in 0..<a.columns {
                let aik = a[i, k]
                if aik == 0 { continue }
                for j in 0..<b.columns { c[i, j] += aik * b[k, j] }
            }
        }
        return c
    }

    /// The product of several matrices, left to right.
    static func mul(_ a: Matrix, _ b: Matrix, _ rest: Matrix...) -> Matrix {
        rest.reduce(mul(a, b)) { mul($0, $1) }
    }

    static func add(_ a: Matrix, _ b: Matrix) -> Matrix {
        precondition(a.rows == b.rows && a.columns == b.columns)
        var c = a
        for k in c.elements.indices { c.elements[k] += b.elements[k] }
        return c
    }

    static func sub(_ a: Matrix, _ b: Matrix) -> Matrix {
        precondition(a.rows == b.rows && a.columns == b.columns)
        var c = a
        for k in c.elements.indices { c.elements[k] -= b.elements[k] }
        return c
    }

    static func scale(_ s: Double, _ a: Matrix) -> Matrix {
        var c = a
        for k in c.elements.indices { c.elements[k] *= s }
        return c
    }

    static func transpose(_ a: Matrix) -> Matrix {
        var t = zeros(a.columns, a.rows)
        for i in 0..<a.rows {
            for j in 0..<a.columns { t[j, i] = a[i, j] }
        }
        return t
    }

    /// Exactly symmetric: the upper triangle copied into the lower one.
    static func symmetricFromUpper(_ a: Matrix) -> Matrix {
        var s = a
        for i in 0..<a.rows {
            for j in 0..<i { s[i, j] = a[j, i] }
        }
        return s
    }

    static func frobenius(_ a: Matrix) -> Double {
        var s = 0.0
        for x in a.elements { s += x * x }
        return s.squareRoot()
    }

    /// The 1-norm: the largest absolute column sum.
    static func norm1(_ a: Matrix) -> Double {
        var best = 0.0
        for j in 0..<a.columns {
            var s = 0.0
            for i in 0..<a.rows { s += abs(a[i, j]) }
            best = max(best, s)
        }
        return best
    }

    /// ‖observed − expected‖_F / ‖expected‖_F (the absolute error when expected is 0).
    static func relativeError(_ observed: Matrix, _ expected: Matrix) -> Double {
        precondition(observed.rows == expected.rows && observed.columns == expected.columns)
        let e = frobenius(sub(observed, expected))
        let n = frobenius(expected)
        return n == 0 ? e : e / n
    }

    /// The Kronecker product a ⊗ b: (a ⊗ b)[i·p + k, j·q + l] = a[i, j] · b[k, l].
    static func kron(_ a: Matrix, _ b: Matrix) -> Matrix {
        var c = zeros(a.rows * b.rows, a.columns * b.columns)
        for i in 0..<a.rows {
            for j in 0..<a.columns {
                let aij = a[i, j]
                if aij == 0 { continue }
                for k in 0..<b.rows {
                    for l in 0..<b.columns { c[i * b.rows + k, j * b.columns + l] = aij * b[k, l] }
                }
            }
        }
        return c
    }

    /// The block of rows r0..<r1 and columns c0..<c1.
    static func block(_ a: Matrix, rows r: Range<Int>, columns c: Range<Int>) -> Matrix {
        var b = zeros(r.count, c.count)
        for i in r {
            for j in c { b[i - r.lowerBound, j - c.lowerBound] = a[i, j] }
        }
        return b
    }

    /// Places the blocks [[a, b], [c, d]] side by side.
    static func blocks(_ a: Matrix, _ b: Matrix, _ c: Matrix, _ d: Matrix) -> Matrix {
        precondition(a.rows == b.rows && c.rows == d.rows && a.columns == c.columns && b.columns == d.columns)
        var m = zeros(a.rows + c.rows, a.columns + b.columns)
        for (blk, r0, c0) in [(a, 0, 0), (b, 0, a.columns), (c, a.rows, 0), (d, a.rows, a.columns)] {
            for i in 0..<blk.rows {
                for j in 0..<blk.columns { m[r0 + i, c0 + j] = blk[i, j] }
            }
        }
        return m
    }

    // MARK: Gaussian elimination with partial pivoting

    /// PA = LU by Gaussian elimination with partial pivoting (row interchanges).
    struct LU {
        let n: Int
        /// L (unit lower, below the diagonal) and U (on and above), row-major.
        private var lu: [Double]
        private var pivot: [Int]

        init(_ a: Matrix) {
            precondition(a.rows == a.columns)
            n = a.rows
            lu = a.elements
            pivot = Array(0..<n)
            let n = self.n
            lu.withUnsafeMutableBufferPointer { m in
                for k in 0..<n {
                    var p = k
                    var best = abs(m[k * n + k])
                    for i in (k + 1)..<max(n, k + 1) where abs(m[i * n + k]) > best {
                        best = abs(m[i * n + k])
                        p = i
                    }
                    precondition(best > 0, "LU: the matrix is singular")
                    if p != k {
                        for j in 0..<n { m.swapAt(k * n + j, p * n + j) }
                        pivot.swapAt(k, p)
                    }
                    let inv = 1 / m[k * n + k]
                    for i in (k + 1)..<max(n, k + 1) {
                        let f = m[i * n + k] * inv
                        m[i * n + k] = f
                        if f == 0 { continue }
                        for j in (k + 1)..<n { m[i * n + j] -= f * m[k * n + j] }
                    }
                }
            }
        }

        /// x with A x = b.
        func solve(_ b: [Double]) -> [Double] {
            precondition(b.count == n)
            var x = pivot.map { b[$0] }
            for i in 0..<n {
                var s = x[i]
                for j in 0..<i { s -= lu[i * n + j] * x[j] }
                x[i] = s
            }
            for i in stride(from: n - 1, through: 0, by: -1) {
                var s = x[i]
                for j in (i + 1)..<n { s -= lu[i * n + j] * x[j] }
                x[i] = s / lu[i * n + i]
            }
            return x
        }

        /// A⁻¹, column by column.
        func inverse() -> Matrix {
            var inv = Ref.zeros(n, n)
            for j in 0..<n {
                var e = [Double](repeating: 0, count: n)
                e[j] = 1
                let x = solve(e)
                for i in 0..<n { inv[i, j] = x[i] }
            }
            return inv
        }
    }

    static func solve(_ a: Matrix, _ b: [Double]) -> [Double] { LU(a).solve(b) }

    static func inverse(_ a: Matrix) -> Matrix { LU(a).inverse() }

    /// κ₁(A) = ‖A‖₁ ‖A⁻¹‖₁.
    static func condition1(_ a: Matrix) -> Double { norm1(a) * norm1(inverse(a)) }

    // MARK: Cyclic Jacobi eigensolver (an eigensolver independent of LAPACK's dsyevd)

    /// The eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix by cyclic Jacobi
    /// rotations; accurate to a few ulps of ‖A‖.
    static func jacobiEigen(_ a0: Matrix) -> (values: [Double], vectors: Matrix) {
        let n = a0.rows
        var a = symmetricFromUpper(a0)
        var v = identity(n)
        for _ in 0..<100 {
            var off = 0.0
            var total = 0.0
            for i in 0..<n {
                for j in 0..<n {
                    total += a[i, j] * a[i, j]
                    if i != j { off += a[i, j] * a[i, j] }
                }
            }
            if off == 0 || off <= 1e-36 * total { break }
            for p in 0..<n {
                for q in (p + 1)..<max(n, p + 1) where a[p, q] != 0 {
                    let theta = (a[q, q] - a[p, p]) / (2 * a[p, q])
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot()
                    let s = t * c
                    for k in 0..<n {  // columns p, q of A J
                        let akp = a[k, p], akq = a[k, q]
                        a[k, p] = c * akp - s * akq
                        a[k, q] = s * akp + c * akq
                    }
                    for k in 0..<n {  // rows p, q of Jᵀ (A J)
                        let apk = a[p, k], aqk = a[q, k]
                        a[p, k] = c * apk - s * aqk
                        a[q, k] = s * apk + c * aqk
                    }
                    a[p, q] = 0
                    a[q, p] = 0
                    for k in 0..<n {
                        let vkp = v[k, p], vkq = v[k, q]
                        v[k, p] = c * vkp - s * vkq
                        v[k, q] = s * vkp + c * vkq
                    }
                }
            }
        }
        let order = (0..<n).sorted { a[$0, $0] < a[$1, $1] }
        var vectors = zeros(n, n)
        for (newColumn, old) in order.enumerated() {
            for k in 0..<n { vectors[k, newColumn] = v[k, old] }
        }
        return (order.map { a[$0, $0] }, vectors)
    }

    /// Q f(diag) Qᵀ from a Jacobi eigendecomposition.
    static func spectralFunction(_ a: Matrix, _ f: (Double) -> Double) -> Matrix {
        let (values, q) = jacobiEigen(a)
        return symmetricFromUpper(mul(q, diagonal(values.map(f)), transpose(q)))
    }

    /// The SPD square root Λ^{1/2} (Jacobi).
    static func spdSqrt(_ a: Matrix) -> Matrix { spectralFunction(a) { $0.squareRoot() } }

    /// The eigenvalues of Λ^{1/2} H Λ^{1/2} (equal to those of ΛH), ascending (Jacobi).
    static func preconditionedEigenvalues(hessian h: Matrix, lr lambda: Matrix) -> [Double] {
        let p = spdSqrt(lambda)
        return jacobiEigen(symmetricFromUpper(mul(p, h, p))).values
    }
}
