import _SGDNoiseBLAS

/// The minibatch noise covariance [Prop 1] as a matrix-free operator, for models too large for a
/// D × D matrix (D = number of parameters):
///
///     C v = (f / N) G_cᵀ (G_c v),   G_c = G − 1ḡᵀ   (N × D centred per-sample gradients),
///
/// f = 1/S with replacement, (N − S) / (S (N − 1)) without. Nothing of size D × D, and no copy of
/// G, is ever made: each product is two passes over G (`apply`) or one (`restrict`), tiles of G
/// being widened to `Double` on the fly (see `CentredGradients`). So `Float` gradients are stored as
/// `Float` and every product and sum is in `Double`; the mean is subtracted tile by tile (at most
/// u·Σ|g_ij v_j| lost to cancellation), never as the global Gᵀ(Gv) − N ḡ(ḡᵀv).
///
/// Precision choice: float32 BLAS (`sgemv`) would read G as fast but round v to `Float` and
/// accumulate in `Float` (relative errors ~1e-7, worse when the mean dominates the spread); the
/// `Double` accumulation here keeps C·v accurate to ~1e-15 at about 1.0–1.1 times the cost of two
/// `sgemv` calls with the AVX2 + FMA kernels (`Kernels`; N = 512, D = 10⁶ on a 2-core Zen 3), and
/// 1.1–1.45 times with the baseline SSE2 ones.
///
/// - `apply(_:)`: C v or C V for a block of vectors, O(N D m).
/// - `trace()`, `diagonal()`: Tr C and diag C, O(N D).
/// - `topEigenpairs(_:)`: the top-k eigenpairs through the N × N Gram matrix (N ≤ D) or the D × D
///   matrix (N > D, when D × D is smaller than the gradients themselves).
/// - `restrict(_:)`: QᵀCQ = (f/N)(G_c Q)ᵀ(G_c Q), k × k, one pass over G: the compression of C
///   onto the span of orthonormal columns Q (any D × k matrix Q is accepted).
///
/// The mean ḡ is computed once, when the operator is created, with a finiteness check of G.
public struct NoiseOperator<Scalar: GradientScalar>: Sendable {
    /// The N × D row-major per-sample gradients (shared with the caller's array, not copied).
    public let gradients: [Scalar]
    /// N, the number of samples.
    public let rows: Int
    /// D, the number of parameters.
    public let columns: Int
    /// The mean gradient ḡ (D entries), accumulated in `Double`.
    public let mean: [Double]
    /// The batch size S.
    public let batchSize: Int
    /// How minibatches are drawn.
    public let sampling: Sampling
    /// The sampling factor f of [Prop 1].
    public let factor: Double

    /// The operator of the N × D row-major `gradients`.
    /// - Parameters:
    ///   - gradients: N × D entries, row i the gradient g_i = ∇ℓ_i(w); finite.
    ///   - batchSize: S ≥ 1 (S ≤ N without replacement).
    ///   - sampling: with (default) or without replacement.
    /// - Throws: `invalidArgument` for sizes < 1, a short array, NaN/Inf, or a batch size out of range.
    public init(gradients: [Scalar], rows n: Int, columns d: Int, batchSize: Int, sampling: Sampling = .withReplacement) throws {
        guard n >= 1, d >= 1 else {
            throw SGDNoiseError.invalidArgument("grads must have at least one row and one column, got \(n) × \(d)")
        }
        let (count, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow, gradients.count == count else {
            throw SGDNoiseError.invalidArgument("grads holds \(gradients.count) entries, not \(n) × \(d)")
        }
        self.factor = try sampling.noiseFactor(sampleCount: n, batchSize: batchSize)
        self.mean = try gradients.withUnsafeBufferPointer { try GradientMoments.columnMeans($0.baseAddress!, rows: n, columns: d) }
        self.gradients = gradients
        self.rows = n
        self.columns = d
        self.batchSize = batchSize
        self.sampling = sampling
    }

    /// The dimension D of the operator.
    public var dimension: Int { columns }

    /// C v for one vector v of D entries.
    /// - Throws: `invalidArgument` for a wrong length or non-finite entries.
    public func apply(_ v: [Double]) throws -> [Double] {
        var out = [Double](repeating: 0, count: columns)
        try gradients.withUnsafeBufferPointer { g in
            try mean.withUnsafeBufferPointer { mu in
                try v.withUnsafeBufferPointer { x in
                    try out.withUnsafeMutableBufferPointer { y in
                        try Self.apply(gradients: g, rows: rows, columns: columns, mean: mu, factor: factor,
                                       vectors: x, count: 1, into: y)
                    }
                }
            }
        }
        return out
    }

    /// C V for a block of m vectors, the columns of the D × m matrix `v`.
    public func apply(_ v: Matrix) throws -> Matrix {
        guard v.rows == columns, v.columns >= 1 else {
            throw SGDNoiseError.invalidArgument("v must be \(columns) × m with m ≥ 1, got \(v.rows) × \(v.columns)")
        }
        var out = Matrix(rows: columns, columns: v.columns)
        try gradients.withUnsafeBufferPointer { g in
            try mean.withUnsafeBufferPointer { mu in
                try v.elements.withUnsafeBufferPointer { x in
                    try out.elements.withUnsafeMutableBufferPointer { y in
                        try Self.apply(gradients: g, rows: rows, columns: columns, mean: mu, factor: factor,
                                       vectors: x, count: v.columns, into: y)
                    }
                }
            }
        }
        return out
    }

    /// The diagonal of C, (f/N) Σ_i (g_ij − ḡ_j)², in O(N D).
    public func diagonal() -> [Double] {
        var diag = [Double](repeating: 0, count: columns)
        gradients.withUnsafeBufferPointer { g in
            mean.withUnsafeBufferPointer { mu in
                diag.withUnsafeMutableBufferPointer { out in
                    CentredGradients(g: g.baseAddress!, n: rows, d: columns, mean: mu.baseAddress!)
                        .columnSumsOfSquares(into: out.baseAddress!)
                }
            }
        }
        let scale = factor / Double(rows)
        return diag.map { scale * $0 }
    }

    /// The trace of C, (f/N) Σ_i |g_i − ḡ|².
    public func trace() -> Double { diagonal().reduce(0, +) }

    /// The k largest eigenpairs of C (see `noiseTopEigenpairs`).
    public func topEigenpairs(_ k: Int) throws -> TopEigenpairs {
        try gradients.withUnsafeBufferPointer {
            try noiseTopEigenpairs(gradients: $0, rows: rows, columns: columns, batchSize: batchSize, sampling: sampling, count: k)
        }
    }

    /// QᵀCQ (k × k, symmetric) for the D × k matrix `q` (orthonormal columns: the compression of C
    /// onto their span).
    public func restrict(_ q: Matrix) throws -> Matrix {
        guard q.rows == columns, q.columns >= 1 else {
            throw SGDNoiseError.invalidArgument("Q must be \(columns) × k with k ≥ 1, got \(q.rows) × \(q.columns)")
        }
        var out = Matrix(rows: q.columns, columns: q.columns)
        try gradients.withUnsafeBufferPointer { g in
            try mean.withUnsafeBufferPointer { mu in
                try q.elements.withUnsafeBufferPointer { x in
                    try out.elements.withUnsafeMutableBufferPointer { y in
                        try Self.restrict(gradients: g, rows: rows, columns: columns, mean: mu, factor: factor,
                                          basis: x, count: q.columns, into: y)
                    }
                }
            }
        }
        return out
    }
}

extension NoiseOperator where Scalar == Double {
    /// The operator of the N × D matrix `gradients`.
    public init(gradients: Matrix, batchSize: Int, sampling: Sampling = .withReplacement) throws {
        try self.init(gradients: gradients.elements, rows: gradients.rows, columns: gradients.columns,
                      batchSize: batchSize, sampling: sampling)
    }
}

// MARK: The kernels on borrowed storage (the C interface's entry points: it holds no state)

extension NoiseOperator {
    /// Runs `body` on a scratch buffer of `count` doubles and copies it into `out` only when every
    /// entry is finite, so that `out` is untouched on failure. A non-finite result is classified
    /// by scanning the gradients, on this failure path only (a given mean spares the scan on
    /// success): a NaN/Inf gradient is `invalidArgument`, an overflow of finite gradients
    /// `numericalFailure`.
    static func writingIfFinite(
        _ count: Int, into out: UnsafeMutableBufferPointer<Double>, gradients g: UnsafePointer<Scalar>, entries: Int,
        _ body: (UnsafeMutablePointer<Double>) throws -> Void
    ) throws {
        guard let ob = out.baseAddress, out.count >= count else {
            throw SGDNoiseError.invalidArgument("out holds \(out.count) entries, fewer than \(count)")
        }
        let scratch = UnsafeMutablePointer<Double>.allocate(capacity: max(count, 1))
        defer { scratch.deallocate() }
        try body(scratch)
        guard UnsafeBufferPointer(start: scratch, count: count).allSatisfy({ $0.isFinite }) else {
            if UnsafeBufferPointer(start: g, count: entries).contains(where: { !$0.isFinite }) {
                throw SGDNoiseError.invalidArgument("grads contains NaN or infinite entries")
            }
            throw SGDNoiseError.numericalFailure("the result overflowed: grads has entries too large to square")
        }
        ob.update(from: scratch, count: count)
    }

    /// Checks the gradients, their mean and the sampling factor; returns the base pointers.
    static func gradientOperands(
        _ g: UnsafeBufferPointer<Scalar>, _ n: Int, _ d: Int, _ mean: UnsafeBufferPointer<Double>, _ f: Double
    ) throws -> (UnsafePointer<Scalar>, UnsafePointer<Double>) {
        guard n >= 1, d >= 1 else {
            throw SGDNoiseError.invalidArgument("grads must have at least one row and one column, got \(n) × \(d)")
        }
        let (count, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow, let gb = g.baseAddress, g.count >= count else {
            throw SGDNoiseError.invalidArgument("grads holds \(g.count) entries, fewer than \(n) × \(d)")
        }
        guard let mb = mean.baseAddress, mean.count >= d else {
            throw SGDNoiseError.invalidArgument("mean holds \(mean.count) entries, fewer than \(d)")
        }
        guard f.isFinite, f >= 0 else {
            throw SGDNoiseError.invalidArgument("the sampling factor must be finite and ≥ 0, got \(f)")
        }
        if let j = (0..<d).first(where: { !mb[$0].isFinite }) {
            throw SGDNoiseError.invalidArgument("mean has a non-finite entry \(mb[j]) at \(j)")
        }
        return (gb, mb)
    }

    /// Checks a D × m row-major block of vectors (m ≥ 1, finite); returns its base pointer.
    static func vectorOperand(_ v: UnsafeBufferPointer<Double>, _ d: Int, _ m: Int, _ name: String) throws -> UnsafePointer<Double> {
        guard m >= 1 else { throw SGDNoiseError.invalidArgument("the number of columns of \(name) must be at least 1, got \(m)") }
        let (count, overflow) = d.multipliedReportingOverflow(by: m)
        guard !overflow, let vb = v.baseAddress, v.count >= count else {
            throw SGDNoiseError.invalidArgument("\(name) holds \(v.count) entries, fewer than \(d) × \(m)")
        }
        if let k = (0..<count).first(where: { !vb[$0].isFinite }) {
            throw SGDNoiseError.invalidArgument("\(name) has a non-finite entry \(vb[k]) at (\(k / m), \(k % m))")
        }
        return vb
    }

    /// out = C V = (f/N) G_cᵀ(G_c V) for the D × m row-major block `vectors`, on borrowed N × D
    /// row-major gradients with their mean ḡ; `out` receives D × m doubles. G is not checked for
    /// finiteness here (the mean, computed by whoever holds G, was).
    /// - Throws: `invalidArgument` for short buffers, m < 1, non-finite v or mean.
    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    @_spi(CABI) public static func apply(
        gradients g: UnsafeBufferPointer<Scalar>, rows n: Int, columns d: Int, mean: UnsafeBufferPointer<Double>,
        factor f: Double, vectors v: UnsafeBufferPointer<Double>, count m: Int, into out: UnsafeMutableBufferPointer<Double>
    ) throws {
        let (gb, mb) = try gradientOperands(g, n, d, mean, f)
        let vb = try vectorOperand(v, d, m, "v")
        try writingIfFinite(d * m, into: out, gradients: gb, entries: n * d) { ob in
            if f == 0 {
                ob.update(repeating: 0, count: d * m)
                return
            }
            let centred = CentredGradients(g: gb, n: n, d: d, mean: mb)
            let y = UnsafeMutablePointer<Double>.allocate(capacity: n * m)
            defer { y.deallocate() }
            centred.multiply(vb, columns: m, into: y)
            centred.multiplyTransposed(y, columns: m, into: ob)
            scaleInPlace(ob, count: d * m, by: f / Double(n))
        }
    }

    /// out = QᵀCQ = (f/N)(G_c Q)ᵀ(G_c Q), k × k symmetric, for the D × k row-major `basis` Q, on
    /// borrowed gradients with their mean (one pass over G).
    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    @_spi(CABI) public static func restrict(
        gradients g: UnsafeBufferPointer<Scalar>, rows n: Int, columns d: Int, mean: UnsafeBufferPointer<Double>,
        factor f: Double, basis q: UnsafeBufferPointer<Double>, count k: Int, into out: UnsafeMutableBufferPointer<Double>
    ) throws {
        let (gb, mb) = try gradientOperands(g, n, d, mean, f)
        let qb = try vectorOperand(q, d, k, "Q")
        try writingIfFinite(k * k, into: out, gradients: gb, entries: n * d) { ob in
            let centred = CentredGradients(g: gb, n: n, d: d, mean: mb)
            let y = UnsafeMutablePointer<Double>.allocate(capacity: n * k)
            defer { y.deallocate() }
            centred.multiply(qb, columns: k, into: y)
            sgn_cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasInt(k), blasInt(n), f / Double(n), y, blasInt(k),
                            0, ob, blasInt(k))
            for i in 0..<k {
                for j in (i + 1)..<k { ob[j * k + i] = ob[i * k + j] }
            }
        }
    }

    /// out = diag C = (f/N) Σ_i (g_ij − ḡ_j)² (D doubles), on borrowed gradients with their mean,
    /// in one pass over G.
    /// - Throws: `invalidArgument` for short buffers or a non-finite mean.
    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    @_spi(CABI) public static func diagonal(
        gradients g: UnsafeBufferPointer<Scalar>, rows n: Int, columns d: Int, mean: UnsafeBufferPointer<Double>,
        factor f: Double, into out: UnsafeMutableBufferPointer<Double>
    ) throws {
        let (gb, mb) = try gradientOperands(g, n, d, mean, f)
        try writingIfFinite(d, into: out, gradients: gb, entries: n * d) { ob in
            CentredGradients(g: gb, n: n, d: d, mean: mb).columnSumsOfSquares(into: ob)
            scaleInPlace(ob, count: d, by: f / Double(n))
        }
    }

    /// The column means ḡ of borrowed N × D row-major gradients, accumulated in `Double`.
    /// - Throws: `invalidArgument` for sizes < 1, a short buffer, or NaN/Inf entries.
    @_specialize(where Scalar == Double)
    @_specialize(where Scalar == Float)
    @_spi(CABI) public static func mean(gradients g: UnsafeBufferPointer<Scalar>, rows n: Int, columns d: Int) throws -> [Double] {
        guard n >= 1, d >= 1 else {
            throw SGDNoiseError.invalidArgument("grads must have at least one row and one column, got \(n) × \(d)")
        }
        let (count, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow, let base = g.baseAddress, g.count >= count else {
            throw SGDNoiseError.invalidArgument("grads holds \(g.count) entries, fewer than \(n) × \(d)")
        }
        return try GradientMoments.columnMeans(base, rows: n, columns: d)
    }
}
