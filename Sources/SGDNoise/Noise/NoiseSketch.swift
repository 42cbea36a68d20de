import _SGDNoiseBLAS

/// A streaming, mergeable Frequent Directions sketch of the minibatch noise for dimensions where a
/// D × D covariance does not fit (docs/theory.md §10): ℓ rows of D numbers stand for the centred
/// scatter S = Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ, with a guarantee
///
///     0 ⪯ S − BᵀB ⪯ Δ·I,     Δ ≤ ‖A − A_k‖_F² / (ℓ + 1 − k)  for every k ≤ ℓ,
///
/// where A is any matrix with AᵀA = S (its squared singular values are S's eigenvalues, so the
/// bound is the tail mass of S's spectrum beyond the k-th) and Δ, the total shrinkage, is known
/// exactly. The noise covariance C = (f/N) S [Prop 1] is approximated by Ĉ = (f/N) BᵀB, so
///
///     λ_i(Ĉ) ≤ λ_i(C) ≤ λ_i(Ĉ) + (f/N) Δ   for every i,    ‖C − Ĉ‖₂ ≤ (f/N) Δ,
///
/// and the top eigenpairs of Ĉ come from an ℓ × ℓ problem. Memory: about 3.5 ℓD doubles.
///
/// How. Rows arrive into a buffer of b = ⌈3ℓ/2⌉ rows. When it is full, its n_b rows are centred on
/// their own mean m_b and stacked under B with one more row √(N n_b / (N + n_b)) (m_b − ḡ): the
/// Gram matrix of that stack is exactly the increment of the Chan–Golub–LeVeque update of S (the
/// same one the exact `NoiseAccumulator` uses). The stack's small Gram matrix M (BBᵀ is diagonal:
/// B's rows are orthogonal) is diagonalised, every squared singular value is reduced by the
/// (ℓ+1)-th largest one, δ, and the top ℓ become the new rows: B′ = diag(√(λ_i − δ)/√λ_i) U_ℓᵀ
/// [B; X_c; d]. Δ grows by δ. Two sketches merge by the same step on [B₁; B₂; d] (Δ = Δ₁ + Δ₂ + δ),
/// so shards computed anywhere combine with the same guarantee. Cost: about (b + 4ℓ + 2ℓ²/b) D
/// ≈ 6.8 ℓD flops per gradient, in BLAS (one SYRK and two GEMMs per fold).
///
/// References: E. Liberty, "Simple and deterministic matrix sketching", KDD 2013; M. Ghashami,
/// E. Liberty, J. M. Phillips, D. P. Woodruff, "Frequent Directions: simple and deterministic
/// matrix sketching", SIAM J. Comput. 2016 (mergeability); T. F. Chan, G. H. Golub, R. J. LeVeque,
/// COMPSTAT 1982 (the pairwise update).
public struct NoiseSketch: Sendable {
    /// The dimension D of the gradients.
    public let dimension: Int
    /// ℓ, the number of rows the sketch keeps.
    public let rows: Int
    /// The number of gradients seen, N.
    public internal(set) var count: Int = 0
    /// Rows waiting in the buffer (seen, counted in `count`, not yet folded into B).
    var pending = 0
    /// The number of rows already folded into B (`count` − `pending`).
    var folded = 0
    /// The mean of the folded rows.
    var foldedMean: [Double]
    /// The vector subtracted from rows as they are buffered: the folded mean (the first row seen
    /// while nothing is folded), so that the buffer holds rows of the size of the spread, not of
    /// the mean, and centring them costs no pass over the buffer (see `foldBuffer`).
    var pivot: [Double]
    /// The live rows of B (rows 0..<used of `stack`), orthogonal; their squared norms are `squares`.
    var used = 0
    var squares: [Double]
    /// Δ, the total shrinkage: ‖S − BᵀB‖₂ ≤ Δ.
    public internal(set) var shrinkage: Double = 0
    /// Tr S of the folded rows, exact (Chan's update of the trace).
    var foldedTrace: Double = 0
    /// B's rows, then the buffer, then one row for the mean correction, then room for B′: (2ℓ + b + 1) × D. A class,
    /// so that copies of the sketch share it until one of them changes (copy on write).
    var storage: Storage

    /// The buffer's capacity b = ⌈3ℓ/2⌉ (minimises the flops per gradient, b + 4ℓ + 2ℓ²/b).
    var capacity: Int { rows + (rows + 1) / 2 }

    /// The largest ℓ accepted.
    public static let maxRows = 4096

    final class Storage: @unchecked Sendable {
        var values: [Double]
        init(count: Int) { values = [Double](repeating: 0, count: count) }
        init(copying other: Storage) { values = other.values }
    }

    /// An empty sketch of `rows` = ℓ rows for gradients of dimension `dimension` = D.
    /// - Throws: `invalidArgument` for D < 1 or ℓ < 1, `outOfMemory` when ℓ > 4096 or (2ℓ + b + 1) D
    ///   doubles exceed 2⁴⁰.
    public init(dimension: Int, rows: Int) throws {
        guard dimension >= 1 else { throw SGDNoiseError.invalidArgument("dim must be at least 1, got \(dimension)") }
        guard rows >= 1 else { throw SGDNoiseError.invalidArgument("rows must be at least 1, got \(rows)") }
        guard rows <= Self.maxRows else {
            throw SGDNoiseError.outOfMemory("rows = \(rows) exceeds the supported maximum \(Self.maxRows)")
        }
        // B (ℓ rows), the buffer (b rows), the correction row, and ℓ rows for B′ while it is formed.
        let stackRows = rows + (rows + (rows + 1) / 2) + 1 + rows
        let (total, overflow) = stackRows.multipliedReportingOverflow(by: dimension)
        guard !overflow, total <= 1 << 40 else {
            throw SGDNoiseError.outOfMemory("a sketch of \(rows) rows of dimension \(dimension) does not fit in memory")
        }
        self.dimension = dimension
        self.rows = rows
        foldedMean = [Double](repeating: 0, count: dimension)
        pivot = foldedMean
        squares = []
        storage = Storage(count: total)
    }

    /// Whether no gradient has been seen.
    public var isEmpty: Bool { count == 0 }

    mutating func uniqueStorage() {
        if !isKnownUniquelyReferenced(&storage) { storage = Storage(copying: storage) }
    }

    // MARK: Updates

    /// Adds the rows of the N × D row-major chunk (`Double` or `Float`, widened to `Double`).
    /// - Throws: `invalidArgument` for a short buffer, NaN/Inf entries or entries so large that
    ///   their squares overflow; the sketch is then unchanged.
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    public mutating func update<T: GradientScalar>(_ chunk: UnsafeBufferPointer<T>, rows n: Int) throws {
        guard n >= 0 else { throw SGDNoiseError.invalidArgument("chunk must have a non-negative number of rows, got \(n)") }
        if n == 0 { return }
        let d = dimension
        let (entries, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow, chunk.count >= entries, let base = chunk.baseAddress else {
            throw SGDNoiseError.invalidArgument("chunk holds \(chunk.count) entries, fewer than \(n) × \(d)")
        }
        // All checks before any change: the chunk may span several folds.
        guard Self.sumOfSquares(base, count: entries) < 1e300 else {
            if (0..<entries).contains(where: { !Double(base[$0]).isFinite }) {
                throw SGDNoiseError.invalidArgument("chunk contains NaN or infinite entries; the sketch is unchanged")
            }
            throw SGDNoiseError.invalidArgument("chunk has entries too large to square (the sketch would overflow); the sketch is unchanged")
        }
        uniqueStorage()
        var row = 0
        while row < n {
            if pending == 0 && folded == 0 {
                pivot = (0..<d).map { Double(base[row * d + $0]) }
            }
            let take = min(capacity - pending, n - row)
            storage.values.withUnsafeMutableBufferPointer { s in
                pivot.withUnsafeBufferPointer { shift in
                    var target = s.baseAddress! + (used + pending) * d
                    var source = base + row * d
                    for _ in 0..<take {
                        for j in 0..<d { target[j] = Double(source[j]) - shift[j] }
                        target += d
                        source += d
                    }
                }
            }
            pending += take
            count += take
            row += take
            if pending == capacity { try foldBuffer() }
        }
    }

    /// Σ x² in double precision, NaN or +inf when an entry is not finite or the sum overflows
    /// (eight independent partial sums, so that the loop vectorises).
    static func sumOfSquares<T: GradientScalar>(_ x: UnsafePointer<T>, count n: Int) -> Double {
        var partial = SIMD8<Double>()
        var i = 0
        while i + 8 <= n {
            var v = SIMD8<Double>()
            for k in 0..<8 { v[k] = Double(x[i + k]) }
            partial += v * v
            i += 8
        }
        var total = partial.sum()
        while i < n {
            let v = Double(x[i])
            total += v * v
            i += 1
        }
        return total
    }

    /// Adds the rows of `chunk` (N × D).
    public mutating func update(_ chunk: Matrix) throws {
        guard chunk.columns == dimension else {
            throw SGDNoiseError.invalidArgument("chunk must have \(dimension) columns, got \(chunk.columns)")
        }
        try chunk.elements.withUnsafeBufferPointer { try update($0, rows: chunk.rows) }
    }

    /// Folds the rows still in the buffer into B (nothing when the buffer is empty). Results and
    /// exports call it; the guarantee holds whatever the folding schedule.
    public mutating func flush() throws {
        if pending > 0 {
            uniqueStorage()
            try foldBuffer()
        }
    }

    /// Folds the p buffered rows y_i = x_i − c (c the pivot) into B without a pass to centre them.
    ///
    /// With K = YYᵀ (one SYRK), the cross products BYᵀ (one GEMM), k̄ = K1/p and κ = 1ᵀK1/p², the
    /// batch's own mean is m_b = c + m′ with m′ = Yᵀ1/p, and its centred rows z_i = y_i − m′ have
    /// ZZᵀ = K − k̄1ᵀ − 1k̄ᵀ + κ11ᵀ, BZᵀ = BYᵀ − (BYᵀ1/p)1ᵀ. Once rows have been folded, c = ḡ, so
    /// the correction row √w (m_b − ḡ) = √w m′ has products √w (k̄ − κ1) with Z and w κ with itself.
    /// The Gram matrix of [B; Z; d] is thus exact from K and BYᵀ, and the new rows
    /// T [B; Z; d] = T_B B + T_Z Y + (√w t_d − T_Z 1) m′ᵀ come from one GEMM over [B; Y; m′]
    /// (m′ by one GEMV). Every number is of the size of the spread, never of the mean.
    mutating func foldBuffer() throws {
        let d = dimension, p = pending, r = used
        let withCorrection = folded > 0
        let nA = Double(folded), weight = nA * Double(p) / (nA + Double(p))
        let inv = 1 / Double(p)
        // The stored stack: [B (r rows); Y (p rows); m′ (1 row)]; the virtual one [B; Z; d].
        let m = r + p + (withCorrection ? 1 : 0)
        var gram = [Double](repeating: 0, count: m * m)
        var meanShift = [Double](repeating: 0, count: d)
        var traceIncrement = 0.0
        try storage.values.withUnsafeMutableBufferPointer { s in
            let base = s.baseAddress!, y = base + r * d
            var k = [Double](repeating: 0, count: p * p)
            var cross = [Double](repeating: 0, count: r * p)
            sgn_cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, blasInt(p), blasInt(d), 1, y, blasInt(d), 0, &k, blasInt(p))
            for i in 0..<p { for j in 0..<i { k[i * p + j] = k[j * p + i] } }
            if r > 0 {
                sgn_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasInt(r), blasInt(p), blasInt(d), 1,
                                base, blasInt(d), y, blasInt(d), 0, &cross, blasInt(p))
            }
            // m′ = Yᵀ1/p, written as the row after Y.
            let ones = [Double](repeating: inv, count: p)
            sgn_cblas_dgemv(CblasRowMajor, CblasTrans, blasInt(p), blasInt(d), 1, y, blasInt(d), ones, 1, 0, y + p * d, 1)
            meanShift = Array(UnsafeBufferPointer(start: y + p * d, count: d))
            let kbar = (0..<p).map { i in (0..<p).reduce(0) { $0 + k[i * p + $1] } * inv }
            let kappa = kbar.reduce(0, +) * inv
            let bbar = (0..<r).map { i in (0..<p).reduce(0) { $0 + cross[i * p + $1] } * inv }
            for i in 0..<r { gram[i * m + i] = squares[i] }
            for i in 0..<r { for j in 0..<p {
                gram[i * m + r + j] = cross[i * p + j] - bbar[i]
                gram[(r + j) * m + i] = gram[i * m + r + j]
            } }
            for i in 0..<p { for j in 0..<p { gram[(r + i) * m + r + j] = k[i * p + j] - kbar[i] - kbar[j] + kappa } }
            traceIncrement = (0..<p).reduce(0) { $0 + gram[(r + $1) * m + r + $1] }
            if withCorrection {
                let c = r + p, sw = weight.squareRoot()
                for i in 0..<r { gram[i * m + c] = sw * bbar[i]; gram[c * m + i] = sw * bbar[i] }
                for j in 0..<p { gram[(r + j) * m + c] = sw * (kbar[j] - kappa); gram[c * m + r + j] = sw * (kbar[j] - kappa) }
                gram[c * m + c] = weight * kappa
                traceIncrement += weight * kappa
            }
            guard (0..<m).allSatisfy({ gram[$0 * m + $0].isFinite }) else {
                throw SGDNoiseError.invalidArgument("the sketch would overflow (entries too large)")
            }
        }
        let (t, keep) = try shrink(gram: gram, order: m)
        // Coefficients on the stored stack [B; Y; m′]: T_B, T_Z, and √w t_d − T_Z 1 (or −T_Z 1).
        var coefficients = [Double](repeating: 0, count: keep * (r + p + 1))
        for i in 0..<keep {
            let row = i * (r + p + 1)
            var sumZ = 0.0
            for j in 0..<(r + p) { coefficients[row + j] = t[i * m + j] }
            for j in r..<(r + p) { sumZ += t[i * m + j] }
            coefficients[row + r + p] = (withCorrection ? weight.squareRoot() * t[i * m + r + p] : 0) - sumZ
        }
        replaceRows(coefficients, keep: keep, stackRows: r + p + 1)
        foldedTrace += traceIncrement
        // ḡ′ = ḡ + (p/N′)(m_b − ḡ) = c + (p/N′) m′ once rows are folded; m_b = c + m′ for the first batch.
        let step = withCorrection ? Double(p) / (nA + Double(p)) : 1
        for j in 0..<d { foldedMean[j] = pivot[j] + step * meanShift[j] }
        pivot = foldedMean
        folded += p
        pending = 0
    }

    /// Merges everything `other` has seen: afterwards `self` sketches the union of both sets of
    /// gradients with Δ = Δ_self + Δ_other + δ (the guarantee still holds).
    /// - Throws: `invalidArgument` when the dimensions or the row counts differ.
    public mutating func merge(_ other: NoiseSketch) throws {
        guard other.dimension == dimension, other.rows == rows else {
            throw SGDNoiseError.invalidArgument(
                "cannot merge a sketch of dimension \(other.dimension) with \(other.rows) rows into one of dimension \(dimension) with \(rows) rows")
        }
        var o = other
        try o.flush()
        if o.count == 0 { return }
        try flush()
        uniqueStorage()
        let d = dimension, r = o.used
        o.storage.values.withUnsafeBufferPointer { src in
            storage.values.withUnsafeMutableBufferPointer { dst in
                (dst.baseAddress! + used * d).update(from: src.baseAddress!, count: r * d)
            }
        }
        count += o.count
        try absorb(rowCount: r, sampleCount: o.count, mean: o.foldedMean, trace: o.foldedTrace, shrinkage: o.shrinkage)
    }

    /// The merge's fold: rows [used, used + p) of the stack hold another sketch's rows, a factor of
    /// the centred scatter of its `sampleCount` samples of mean `mean`, trace `trace` and shrinkage
    /// `added`. Appends the correction row √w (mean − ḡ), diagonalises the stack's Gram matrix and
    /// keeps the top ℓ shrunk directions (Δ = Δ_self + Δ_other + δ).
    mutating func absorb(rowCount p: Int, sampleCount nB: Int, mean mB: [Double], trace: Double, shrinkage added: Double) throws {
        let d = dimension, r = used
        let nA = Double(folded), weight = nA * Double(nB) / (nA + Double(nB))
        let delta = (0..<d).map { mB[$0] - foldedMean[$0] }
        let m = r + p + (folded > 0 ? 1 : 0), q = m - r  // q: the other's rows and the correction row
        var gram = [Double](repeating: 0, count: m * m)
        try storage.values.withUnsafeMutableBufferPointer { s in
            let base = s.baseAddress!, newRows = base + r * d
            if folded > 0 {
                let scale = weight.squareRoot()
                for j in 0..<d { newRows[p * d + j] = scale * delta[j] }
            }
            // M = [[diag(squares), B Nᵀ], [N Bᵀ, N Nᵀ]], N the new rows (B's rows are orthogonal).
            for i in 0..<r { gram[i * m + i] = squares[i] }
            gram.withUnsafeMutableBufferPointer { g in
                sgn_cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, blasInt(q), blasInt(d), 1, newRows, blasInt(d),
                                0, g.baseAddress! + r * m + r, blasInt(m))
                if r > 0 {
                    sgn_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasInt(r), blasInt(q), blasInt(d), 1,
                                    base, blasInt(d), newRows, blasInt(d), 0, g.baseAddress! + r, blasInt(m))
                }
            }
            for i in 0..<m { for j in 0..<i { gram[i * m + j] = gram[j * m + i] } }
            guard (0..<m).allSatisfy({ gram[$0 * m + $0].isFinite }) else {
                throw SGDNoiseError.invalidArgument("the sketch would overflow (entries too large)")
            }
        }
        let (t, keep) = try shrink(gram: gram, order: m)
        replaceRows(t, keep: keep, stackRows: m)
        shrinkage += added
        foldedTrace += trace + weight * delta.reduce(0) { $0 + $1 * $1 }
        let total = folded + nB
        let step = Double(nB) / Double(total)
        for j in 0..<d { foldedMean[j] += step * delta[j] }
        pivot = foldedMean
        folded = total
        pending = 0
    }

    /// The shrinking step on the m × m Gram matrix of a stack: its eigenvalues λ (descending),
    /// δ = λ_{ℓ+1} (0 when m ≤ ℓ), and T (keep × m) with rows √((λ_i − δ)/λ_i) u_iᵀ for the kept
    /// directions (λ_i − δ above rounding): the new rows are T times the stack. Adds δ to Δ and
    /// records the new squared norms λ_i − δ.
    mutating func shrink(gram: [Double], order m: Int) throws -> (t: [Double], keep: Int) {
        let eig = try SymmetricEigendecomposition(checked: Matrix(uncheckedRows: m, columns: m, elements: gram),
                                                  name: "the sketch's Gram matrix")
        let lambda = Array(eig.values.reversed()).map { max($0, 0) }
        let delta = m > rows ? lambda[rows] : 0
        let floor = lambda[0] * Double(m) * Double.ulpOfOne
        let kept = (0..<min(rows, m)).filter { lambda[$0] - delta > floor && lambda[$0] > 0 }
        var t = [Double](repeating: 0, count: kept.count * m)
        eig.eigenvectorRows.elements.withUnsafeBufferPointer { u in
            for (row, i) in kept.enumerated() {
                let source = m - 1 - i  // ascending storage
                let factor = ((lambda[i] - delta) / lambda[i]).squareRoot()
                for j in 0..<m { t[row * m + j] = factor * u[source * m + j] }
            }
        }
        squares = kept.map { lambda[$0] - delta }
        shrinkage += delta
        return (t, kept.count)
    }

    /// B′ = C · stack[0..<stackRows] (C: keep × stackRows), formed past the stack and copied into
    /// B's rows; `used` becomes keep.
    mutating func replaceRows(_ coefficients: [Double], keep: Int, stackRows: Int) {
        let d = dimension
        storage.values.withUnsafeMutableBufferPointer { s in
            let base = s.baseAddress!, spare = base + (rows + capacity + 1) * d
            if keep > 0 {
                sgn_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasInt(keep), blasInt(d), blasInt(stackRows), 1,
                                coefficients, blasInt(stackRows), base, blasInt(d), 0, spare, blasInt(d))
                base.update(from: spare, count: keep * d)
            }
        }
        used = keep
    }

    // MARK: Results

    /// The mean gradient ḡ of every row seen (zeros while empty).
    public var mean: [Double] {
        guard pending > 0 else { return foldedMean }
        // Buffered rows are stored as x − c: ḡ = (N_f ḡ_f + p c + Σ y) / N.
        let d = dimension
        var sum = (0..<d).map { foldedMean[$0] * Double(folded) + pivot[$0] * Double(pending) }
        storage.values.withUnsafeBufferPointer { s in
            let y = s.baseAddress! + used * d
            for i in 0..<pending { for j in 0..<d { sum[j] += y[i * d + j] } }
        }
        return sum.map { $0 / Double(count) }
    }

    /// The noise factor f / N for the count seen, with a clear error when empty.
    func scale(batchSize: Int, sampling: Sampling) throws -> Double {
        guard count >= 1 else {
            throw SGDNoiseError.invalidArgument("the sketch is empty: update it with at least one gradient first")
        }
        return try sampling.noiseFactor(sampleCount: count, batchSize: batchSize) / Double(count)
    }

    /// The guaranteed bound on ‖C − Ĉ‖₂, (f/N) Δ, which also bounds how far each eigenvalue of C
    /// lies above the sketched one. Buffered rows are folded first (on a copy).
    public func errorBound(batchSize: Int, sampling: Sampling = .withReplacement) throws -> Double {
        var s = self
        try s.flush()
        return try s.scale(batchSize: batchSize, sampling: sampling) * s.shrinkage
    }

    /// The exact trace of C, (f/N) Tr S (the sketch keeps Tr S exactly, by the pairwise update).
    public func covarianceTrace(batchSize: Int, sampling: Sampling = .withReplacement) throws -> Double {
        var s = self
        try s.flush()
        return try s.scale(batchSize: batchSize, sampling: sampling) * s.foldedTrace
    }

    /// The k largest eigenpairs of Ĉ = (f/N) BᵀB with the bound (f/N) Δ:
    /// λ_i(Ĉ) ≤ λ_i(C) ≤ λ_i(Ĉ) + bound. Buffered rows are folded first (on a copy).
    /// - Parameter k: 0 ≤ k ≤ the number of nonzero directions the sketch holds (at most ℓ); k = 0
    ///   gives the bound alone.
    /// - Throws: `invalidArgument` when empty, for a batch size out of range, or when k exceeds the
    ///   number of nonzero directions the sketch holds.
    public func topEigen(_ k: Int, batchSize: Int, sampling: Sampling = .withReplacement) throws -> SketchedEigenpairs {
        var s = self
        try s.flush()
        return try s.flushedTopEigen(k, batchSize: batchSize, sampling: sampling)
    }

    /// `topEigen` of a sketch whose buffer is empty.
    func flushedTopEigen(_ k: Int, batchSize: Int, sampling: Sampling) throws -> SketchedEigenpairs {
        let f = try scale(batchSize: batchSize, sampling: sampling)
        guard k >= 0 else { throw SGDNoiseError.invalidArgument("k must not be negative, got \(k)") }
        guard k <= used else {
            throw SGDNoiseError.invalidArgument(
                "k = \(k) exceeds the \(used) nonzero directions the sketch holds (rows = \(rows), \(count) gradients)")
        }
        let d = dimension, r = used
        if k == 0 {
            return SketchedEigenpairs(top: TopEigenpairs(values: [], unnormalisedColumns: Matrix(rows: d, columns: 0)),
                                      errorBound: f * shrinkage)
        }
        // The r × r Gram matrix of B's rows (diagonal up to rounding), then v_i = Bᵀu_i / √λ_i.
        var gram = [Double](repeating: 0, count: r * r)
        storage.values.withUnsafeBufferPointer { s in
            sgn_cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, blasInt(r), blasInt(d), 1, s.baseAddress, blasInt(d),
                            0, &gram, blasInt(r))
        }
        for i in 0..<r { for j in 0..<i { gram[i * r + j] = gram[j * r + i] } }
        let eig = try SymmetricEigendecomposition(checked: Matrix(uncheckedRows: r, columns: r, elements: gram),
                                                  name: "the sketch's Gram matrix")
        var coefficients = [Double](repeating: 0, count: k * r)
        var values = [Double](repeating: 0, count: k)
        eig.eigenvectorRows.elements.withUnsafeBufferPointer { u in
            for i in 0..<k {
                let source = r - 1 - i
                let lambda = max(eig.values[source], .leastNormalMagnitude)
                values[i] = f * eig.values[source]
                for j in 0..<r { coefficients[i * r + j] = u[source * r + j] / lambda.squareRoot() }
            }
        }
        var vectors = Matrix(rows: d, columns: k)
        storage.values.withUnsafeBufferPointer { s in
            vectors.elements.withUnsafeMutableBufferPointer { v in
                // V (D × k) = Bᵀ Cᵀ, C the k × r coefficients.
                sgn_cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, blasInt(d), blasInt(k), blasInt(r), 1,
                                s.baseAddress, blasInt(d), coefficients, blasInt(r), 0, v.baseAddress, blasInt(k))
            }
        }
        return SketchedEigenpairs(top: TopEigenpairs(values: values, unnormalisedColumns: vectors), errorBound: f * shrinkage)
    }
}

/// The top eigenpairs of a sketched noise covariance Ĉ with the guaranteed bound (f/N) Δ:
/// λ_i(Ĉ) ≤ λ_i(C) ≤ λ_i(Ĉ) + `errorBound` for every i, and ‖C − Ĉ‖₂ ≤ `errorBound`.
public struct SketchedEigenpairs: Sendable {
    /// The k largest eigenpairs of Ĉ (eigenvalues descending, unit eigenvectors as the columns of
    /// a D × k matrix, signed as `TopEigenpairs` documents).
    public let top: TopEigenpairs
    /// (f/N) Δ.
    public let errorBound: Double
}
