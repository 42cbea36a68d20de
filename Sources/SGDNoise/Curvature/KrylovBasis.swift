import _SGDNoiseBLAS
import _SGDNoiseKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An orthonormal Krylov basis v_0, v_1, … of vectors of length P, stored as the rows of one
/// contiguous block (row r at `storage + r·P`), with the kernels the Lanczos algorithms share:
/// orthogonalisation, recombination, random start vectors.
///
/// Memory is O(P · capacity) and is the only large allocation of the curvature algorithms; it is
/// taken with `malloc`/`realloc` so that a block too large for the machine throws
/// `SGDNoiseError.outOfMemory` instead of stopping the process. Every BLAS call is made on pieces
/// or shapes that fit the 32-bit interface, so P may exceed 2³¹.
final class KrylovBasis {
    /// P, the length of each vector.
    let dimension: Int
    /// The number of rows the block holds.
    private(set) var capacity: Int
    /// The rows, row-major.
    private(set) var storage: UnsafeMutablePointer<Double>

    /// A block of `capacity` vectors of length `dimension`.
    /// - Throws: `outOfMemory` when P · capacity doubles cannot be allocated.
    init(dimension: Int, capacity: Int) throws {
        precondition(dimension >= 1 && capacity >= 1)
        self.dimension = dimension
        self.capacity = capacity
        storage = try KrylovBasis.allocate(rows: capacity, dimension: dimension, reusing: nil)
    }

    deinit { free(storage) }

    private static func allocate(rows: Int, dimension: Int, reusing old: UnsafeMutablePointer<Double>?) throws
        -> UnsafeMutablePointer<Double>
    {
        let (count, overflow) = rows.multipliedReportingOverflow(by: dimension)
        let (bytes, overflow2) = count.multipliedReportingOverflow(by: MemoryLayout<Double>.stride)
        guard !overflow, !overflow2,
              let raw = realloc(old.map { UnsafeMutableRawPointer($0) }, bytes)
        else {
            throw SGDNoiseError.outOfMemory(
                "a Krylov basis of \(rows) vectors of dimension \(dimension) (\(Double(rows) * Double(dimension) * 8 / 1e9) GB) cannot be allocated")
        }
        return raw.bindMemory(to: Double.self, capacity: count)
    }

    /// Grows the block to hold at least `rows` vectors (keeping the existing ones).
    /// - Throws: `outOfMemory`.
    func reserve(_ rows: Int) throws {
        guard rows > capacity else { return }
        let grown = max(rows, min(2 * capacity, rows + 64))
        storage = try KrylovBasis.allocate(rows: grown, dimension: dimension, reusing: storage)
        capacity = grown
    }

    /// Row r.
    @inline(__always)
    func vector(_ r: Int) -> UnsafeMutablePointer<Double> {
        storage + r * dimension
    }

    /// Copies row `source` onto row `destination`.
    func copy(_ source: Int, to destination: Int) {
        guard source != destination else { return }
        vector(destination).update(from: vector(source), count: dimension)
    }

    /// Orthogonalises w (length P) against the first `count` rows and against the `extraCount`
    /// rows at `extra` (orthonormal, e.g. deflated eigenvectors) by classical Gram–Schmidt with
    /// reorthogonalisation (DGKS: from pass `minimumPasses` on, a pass is repeated while the last
    /// one removed more than 1 − 1/√2 of the norm; at most four passes). Two passes (CGS2) by
    /// default; one suffices when w is already nearly orthogonal (the Lanczos steps subtract their
    /// known couplings first, so a single pass only removes rounding and is then accepted).
    /// Returns ‖w‖ before and after, and whether w lies numerically in the span (it vanished, or
    /// the last pass still cancelled): then what is left is rounding, not a direction. Writes the
    /// coefficients Vᵀw against the basis rows into `coefficients` (at least `count` entries).
    /// `normBefore`, when known, saves the first pass over w. With `minimumPasses: 1` a block whose
    /// projections are all below 1e-13 ‖w‖ is not subtracted (w is orthogonal to it to that level).
    @discardableResult
    func orthogonalise(
        _ w: UnsafeMutablePointer<Double>, against count: Int,
        extra: UnsafePointer<Double>? = nil, extraCount: Int = 0,
        coefficients: UnsafeMutablePointer<Double>? = nil, normBefore: Double? = nil, minimumPasses: Int = 2
    ) -> (before: Double, after: Double, inSpan: Bool) {
        let p = dimension
        let before = normBefore ?? longNorm(w, count: p)
        if let coefficients { coefficients.initialize(repeating: 0, count: count) }
        guard count + extraCount > 0 else { return (before, before, before == 0) }
        var c = [Double](repeating: 0, count: max(count, extraCount))
        var norm = before
        var inSpan = true
        // A single-pass call (w already nearly orthogonal) leaves a block alone when its
        // projections are all below `negligible` · ‖w‖: the subtraction would change w by less than
        // that, and the basis stays orthogonal to that level (the Lanczos relation stays exact,
        // since what is not subtracted is not recorded either).
        let negligible = minimumPasses == 1 ? 1e-13 * before : -1.0
        for pass in 0..<4 {
            let changed = c.withUnsafeMutableBufferPointer { cb -> Bool in
                let cp = cb.baseAddress!
                var changed = false
                if count > 0 {
                    projectRows(storage, rows: count, length: p, w, into: cp)
                    if pass > 0 || (0..<count).contains(where: { abs(cp[$0]) > negligible }) {
                        subtractRows(storage, rows: count, length: p, coefficients: cp, from: w)
                        if let coefficients { for i in 0..<count { coefficients[i] += cp[i] } }
                        changed = true
                    }
                }
                if let extra, extraCount > 0 {
                    projectRows(extra, rows: extraCount, length: p, w, into: cp)
                    if pass > 0 || (0..<extraCount).contains(where: { abs(cp[$0]) > negligible }) {
                        subtractRows(extra, rows: extraCount, length: p, coefficients: cp, from: w)
                        changed = true
                    }
                }
                return changed
            }
            if !changed && norm > 0 {
                inSpan = false
                break
            }
            let previous = norm
            norm = longNorm(w, count: p)
            if norm == 0 { break }
            // `minimumPasses` always; a further pass only when the last one still cancelled.
            if pass + 1 >= minimumPasses && norm > 0.7071 * previous {
                inSpan = false
                break
            }
        }
        return (before, norm, inSpan)
    }

    /// Writes `outputs` new vectors, out_i = Σ_r coefficients[i · from + r] · row_r over the first
    /// `from` rows, to `out` (row i at `out + i·P`). `out` may be `storage` itself (the rows are
    /// replaced column block by column block, each block computed before it is written).
    ///
    /// Rows longer than `directLimit` (the 32-bit BLAS limit; a parameter for the tests) are
    /// gathered block by block into a contiguous buffer first.
    func combine(
        coefficients: [Double], outputs: Int, from: Int, into out: UnsafeMutablePointer<Double>,
        directLimit: Int = blasMaxDimension
    ) {
        precondition(coefficients.count >= outputs * from)
        let p = dimension
        guard outputs > 0 else { return }
        guard from > 0 else {
            for i in 0..<outputs { (out + i * p).initialize(repeating: 0, count: p) }
            return
        }
        let direct = p <= directLimit
        // Column blocks of up to 2²¹ output entries (16 MB of workspace): few large GEMMs. (With
        // 4096-column blocks a restart of a P = 10⁶ basis made 245 small GEMM calls, whose
        // thread-pool hand-offs cost 30–70 times the arithmetic on a loaded 2-core machine.)
        let block = min(p, max(4096, (1 << 21) / max(outputs, direct ? 1 : from)))
        var tmp = [Double](repeating: 0, count: outputs * block)
        var gathered = direct ? [] : [Double](repeating: 0, count: from * block)
        coefficients.withUnsafeBufferPointer { cf in
            tmp.withUnsafeMutableBufferPointer { t in
                gathered.withUnsafeMutableBufferPointer { g in
                    var start = 0
                    while start < p {
                        let len = min(block, p - start)
                        let source: UnsafePointer<Double>
                        let lda: Int
                        if direct {
                            source = UnsafePointer(storage + start)
                            lda = p
                        } else {
                            for r in 0..<from {
                                (g.baseAddress! + r * len).update(from: storage + r * p + start, count: len)
                            }
                            source = UnsafePointer(g.baseAddress!)
                            lda = len
                        }
                        sgn_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                                        blasInt(outputs), blasInt(len), blasInt(from), 1,
                                        cf.baseAddress, blasInt(from), source, blasInt(lda),
                                        0, t.baseAddress, blasInt(len))
                        for i in 0..<outputs {
                            (out + i * p + start).update(from: t.baseAddress! + i * len, count: len)
                        }
                        start += len
                    }
                }
            }
        }
    }
}

// MARK: - Kernels on vectors of any length

/// The longest piece handed to one level-1 BLAS call.
let vectorPiece = 1 << 30

/// xᵀy over `count` entries (in pieces of at most `piece`, a parameter for the tests).
func longDot(_ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, count: Int, piece: Int = vectorPiece) -> Double {
    var sum = 0.0
    var start = 0
    while start < count {
        let len = min(piece, count - start)
        sum += sgn_cblas_ddot(blasInt(len), x + start, 1, y + start, 1)
        start += len
    }
    return sum
}

/// y ← y + a x over `count` entries (in pieces of at most `piece`).
func longAxpy(
    _ a: Double, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, count: Int, piece: Int = vectorPiece
) {
    var start = 0
    while start < count {
        let len = min(piece, count - start)
        sgn_cblas_daxpy(blasInt(len), a, x + start, 1, y + start, 1)
        start += len
    }
}

/// ‖x‖₂ over `count` entries, without overflow: √(xᵀx) when xᵀx is finite and not tiny, else
/// `dnrm2` per piece of at most `piece`, pieces combined scaled.
func longNorm(_ x: UnsafePointer<Double>, count: Int, piece: Int = vectorPiece) -> Double {
    // √(xᵀx) by the (faster) dot product when its square neither overflows nor underflows.
    let square = longDot(x, x, count: count, piece: piece)
    if square.isFinite && square >= 1e-250 { return square.squareRoot() }
    if count <= piece { return sgn_cblas_dnrm2(blasInt(count), x, 1) }
    var norms: [Double] = []
    var start = 0
    while start < count {
        let len = min(piece, count - start)
        norms.append(sgn_cblas_dnrm2(blasInt(len), x + start, 1))
        start += len
    }
    let largest = norms.max() ?? 0
    guard largest > 0 else { return 0 }
    return largest * norms.reduce(0) { $0 + ($1 / largest) * ($1 / largest) }.squareRoot()
}

/// c ← A x for the `rows` contiguous rows of length `length` at `a`: one GEMV, or a dot product
/// per row when the rows are longer than `directLimit` (the 32-bit BLAS limit).
func projectRows(
    _ a: UnsafePointer<Double>, rows: Int, length: Int, _ x: UnsafePointer<Double>,
    into c: UnsafeMutablePointer<Double>, directLimit: Int = blasMaxDimension, piece: Int = vectorPiece
) {
    guard rows > 0 else { return }
    if length <= directLimit {
        sgn_cblas_dgemv(CblasRowMajor, CblasNoTrans, blasInt(rows), blasInt(length), 1,
                        a, blasInt(length), x, 1, 0, c, 1)
    } else {
        for r in 0..<rows { c[r] = longDot(a + r * length, x, count: length, piece: piece) }
    }
}

/// x ← x − Aᵀ c for the `rows` contiguous rows of length `length` at `a`: one GEMV, or an AXPY
/// per row when the rows are longer than `directLimit`.
func subtractRows(
    _ a: UnsafePointer<Double>, rows: Int, length: Int, coefficients c: UnsafePointer<Double>,
    from x: UnsafeMutablePointer<Double>, directLimit: Int = blasMaxDimension, piece: Int = vectorPiece
) {
    guard rows > 0 else { return }
    if length <= directLimit {
        sgn_cblas_dgemv(CblasRowMajor, CblasTrans, blasInt(rows), blasInt(length), -1,
                        a, blasInt(length), c, 1, 1, x, 1)
    } else {
        for r in 0..<rows { longAxpy(-c[r], a + r * length, x, count: length, piece: piece) }
    }
}

// MARK: - The Lanczos steps' fused kernels (one pass over each vector; C, `krylov_body.h`)

/// The column ranges the fused kernels split a vector of `count` entries into, run on the cores
/// in parallel: one range below 2¹⁷ entries, else eight (whole chunks of the kernels). The ranges,
/// and so the order of every sum, depend on `count` alone, never on the cores or the load.
func fusedKernelRanges(_ count: Int) -> [Range<Int>] {
    let chunk = Int(SGN_KRYLOV_CHUNK)
    guard count >= 1 << 17 else { return [0..<count] }
    let chunks = (count + chunk - 1) / chunk
    let parts = 8
    return (0..<parts).map { p in (chunks * p / parts * chunk)..<min(count, chunks * (p + 1) / parts * chunk) }
}

/// (h·h, v·h, v·u) in one pass over h, v and u (v·u = 0 without u).
func lanczosDots(
    _ h: UnsafePointer<Double>, _ v: UnsafePointer<Double>, _ u: UnsafePointer<Double>?, count: Int,
    kernels: sgn_kernels = Kernels.active
) -> (hh: Double, vh: Double, vu: Double) {
    let ranges = fusedKernelRanges(count)
    let partials = UnsafeMutablePointer<Double>.allocate(capacity: 3 * ranges.count)
    defer { partials.deallocate() }
    let shared = UnsafeShared((kernels, h, v, u, partials))
    parallelWorkers(ranges.count) { part in
        let (kernels, h, v, u, partials) = shared.value
        let lo = ranges[part].lowerBound
        kernels.lanczos_dots(ranges[part].count, h + lo, v + lo, u.map { $0 + lo }, partials + 3 * part)
    }
    var sums = (0.0, 0.0, 0.0)
    for part in ranges.indices {
        sums.0 += partials[3 * part]
        sums.1 += partials[3 * part + 1]
        sums.2 += partials[3 * part + 2]
    }
    return sums
}

/// w = h − Σ_s a_s x_s and the projections c_i = r_iᵀw on the `rows` contiguous rows at r (each
/// of `count` entries), in one pass; returns wᵀw. `w` overlaps none of the inputs; `c` holds at
/// least `rows` entries.
func combineAndProject(
    _ h: UnsafePointer<Double>, minus terms: [(coefficient: Double, vector: UnsafePointer<Double>)],
    rows r: UnsafePointer<Double>?, rowCount: Int, count: Int, into w: UnsafeMutablePointer<Double>,
    projections c: UnsafeMutablePointer<Double>, kernels: sgn_kernels = Kernels.active
) -> Double {
    let ranges = fusedKernelRanges(count)
    let stride = rowCount + 1  // per part: the projections, then wᵀw
    let partials = UnsafeMutablePointer<Double>.allocate(capacity: stride * ranges.count)
    defer { partials.deallocate() }
    let a = terms.map(\.coefficient)
    a.withUnsafeBufferPointer { ap in
        let shared = UnsafeShared((kernels, h, terms.map(\.vector), ap.baseAddress, r, w, partials))
        parallelWorkers(ranges.count) { part in
            let (kernels, h, x, a, r, w, partials) = shared.value
            let lo = ranges[part].lowerBound
            let shifted: [UnsafePointer<Double>?] = x.map { $0 + lo }
            let out = partials + stride * part
            shifted.withUnsafeBufferPointer { xp in
                kernels.combine_project(ranges[part].count, h + lo, x.count, xp.baseAddress, a, rowCount,
                                        r.map { $0 + lo }, count, w + lo, out, out + rowCount)
            }
        }
    }
    var ww = 0.0
    for i in 0..<rowCount { c[i] = 0 }
    for part in ranges.indices {
        for i in 0..<rowCount { c[i] += partials[stride * part + i] }
        ww += partials[stride * part + rowCount]
    }
    return ww
}

/// out = (w − Σ_i c_i r_i) · scale over the `rows` contiguous rows at r, in one pass (out may be w).
func subtractRowsAndScale(
    _ w: UnsafePointer<Double>, rows r: UnsafePointer<Double>?, rowCount: Int, coefficients c: UnsafePointer<Double>,
    scale: Double, count: Int, into out: UnsafeMutablePointer<Double>, kernels: sgn_kernels = Kernels.active
) {
    let ranges = fusedKernelRanges(count)
    let shared = UnsafeShared((kernels, w, r, c, out))
    parallelWorkers(ranges.count) { part in
        let (kernels, w, r, c, out) = shared.value
        let lo = ranges[part].lowerBound
        kernels.subtract_scale(ranges[part].count, w + lo, rowCount, r.map { $0 + lo }, count, c, scale, out + lo)
    }
}

extension Xoshiro256StarStar {
    /// Fills `count` entries with independent standard normal variates.
    mutating func fillGaussian(_ x: UnsafeMutablePointer<Double>, count: Int) {
        let tables = Ziggurat.shared
        for i in 0..<count { x[i] = normal(tables) }
    }

    /// Fills `count` entries with independent Rademacher signs ±1 (one 64-bit draw per 64 signs).
    mutating func fillRademacher(_ x: UnsafeMutablePointer<Double>, count: Int) {
        var i = 0
        while i < count {
            var bits = next()
            let len = min(64, count - i)
            for j in 0..<len {
                x[i + j] = (bits & 1) == 0 ? 1 : -1
                bits >>= 1
            }
            i += len
        }
    }
}

extension KrylovBasis {
    /// Writes into row `row` a random unit vector orthogonal to the rows before it and to the
    /// `extraCount` rows at `extra`: a Gaussian vector, orthogonalised and normalised. Returns false
    /// when three draws all lie numerically in the span (norm after orthogonalisation below 1e-10
    /// of the draw's), i.e. the rows already span the whole space.
    func randomOrthogonalVector(
        into row: Int, rng: inout Xoshiro256StarStar,
        extra: UnsafePointer<Double>? = nil, extraCount: Int = 0
    ) -> Bool {
        let x = vector(row)
        for _ in 0..<3 {
            rng.fillGaussian(x, count: dimension)
            let (before, after, inSpan) = orthogonalise(x, against: row, extra: extra, extraCount: extraCount)
            if !inSpan && after > 1e-10 * before {
                scaleInPlace(x, count: dimension, by: 1 / after)
                return true
            }
        }
        return false
    }
}

// MARK: - The plain Lanczos recurrence (no restart)

/// The Lanczos recurrence from the unit vector in row 0 of `basis`, each new vector projected off
/// the deflated rows but not reorthogonalised against the basis:
///
///     β_{j+1} v_{j+1} = H v_j − α_j v_j − β_j v_{j−1},   α_j = v_jᵀ H v_j,
///
/// so that H V_j = V_j T_j + β_{j+1} v_{j+1} e_jᵀ with T_j = tridiag(β, α, β). Used by the
/// quadrature and the matrix function, which need T_j and never restart: in floating point the
/// basis loses orthogonality as Ritz values converge, but Gauss quadrature and the Lanczos
/// approximation of a smooth g(H)v stay accurate without reorthogonalisation (Greenbaum 1989;
/// Musco, Musco & Sidford 2018), which costs j passes over P-vectors per step — the library's own
/// largest cost next to the products. (The tests hold both to 1e-10 against dense references.)
/// It stops at an invariant subspace: the new vector vanishes in rounding,
/// β ≤ `stopBelow` · ‖H v_j‖, or j reaches the dimension the deflated rows leave.
struct LanczosRecurrence {
    let hessian: HessianOperator
    let basis: KrylovBasis
    /// The product's workspace.
    let work: KrylovBasis
    /// Rows the vectors are kept orthogonal to (deflated eigenvectors), or nil.
    let deflated: KrylovBasis?
    /// The relative β at which the space counts as invariant: ε for g(H)v, whose error is first
    /// order in a neglected β, √ε for a quadrature, whose error is second order (O(β²) in
    /// e_1ᵀ g(T) e_1).
    let stopBelow: Double
    let deflatedCount: Int
    /// The dimension of the space the recurrence lives in: P minus the deflated rows.
    let space: Int
    /// α_0 … α_{j−1}.
    var alpha: [Double] = []
    /// β_1 … β_{j−1} (β_i couples v_{i−1} and v_i).
    var beta: [Double] = []
    /// Whether the Krylov space is invariant (no further vector exists).
    var invariant = false
    var normEstimate = 0.0
    var products = 0

    /// j, the number of vectors whose product has been taken.
    var count: Int { alpha.count }

    init(
        hessian: HessianOperator, basis: KrylovBasis, deflated: KrylovBasis?, deflatedCount: Int,
        stopBelow: Double
    ) throws {
        self.hessian = hessian
        self.stopBelow = stopBelow
        self.basis = basis
        self.deflated = deflated
        self.deflatedCount = deflatedCount
        self.space = hessian.dimension - deflatedCount
        work = try KrylovBasis(dimension: hessian.dimension, capacity: 1)
    }

    /// v_j, the vector whose product the next step takes.
    var current: UnsafePointer<Double> { UnsafePointer(basis.vector(count)) }

    /// Takes the product of v_j (or uses `given`, H v_j computed by the caller with
    /// `apply(…, checked: false)`, e.g. in a block with other recurrences' vectors:
    /// `runInLockstep`), checks it, appends α_j and, unless the space is invariant, β_{j+1} and
    /// v_{j+1} (growing the basis).
    ///
    /// The three-term recurrence (β_j known, α_j = v_jᵀHv_j − β_j v_jᵀv_{j−1}), then the projection
    /// off the deflated rows (without it, rounding along them would grow like a Chebyshev
    /// polynomial of their distance from the rest of the spectrum), in three passes over the
    /// vectors: `lanczosDots` (‖Hv_j‖², which checks the product, and the two dot products),
    /// `combineAndProject` (w = Hv_j − β_j v_{j−1} − α_j v_j written to row j + 1, its projections
    /// c on the deflated rows and ‖w‖²), `subtractRowsAndScale` (v_{j+1} = (w − Qᵀc)/β_{j+1} in
    /// place, β_{j+1}² = ‖w‖² − ‖c‖², exact for orthonormal rows; projections below 1e-13 ‖w‖ are
    /// not subtracted, and a projection removing more than half of ‖w‖², or magnitudes near the
    /// ends of the double range, go the general DGKS route of `orthogonalise`).
    mutating func step(product given: UnsafePointer<Double>? = nil) throws {
        precondition(!invariant)
        let j = count
        let p = basis.dimension
        try basis.reserve(j + 2)
        let v = basis.vector(j)
        let h: UnsafePointer<Double>
        if let given {
            h = given
        } else {
            try hessian.apply(count: 1, v, into: work.vector(0), checked: false)
            h = UnsafePointer(work.vector(0))
        }
        products += 1
        let known = j > 0 ? beta[j - 1] : 0
        let previous = j > 0 ? UnsafePointer(basis.vector(j - 1)) : nil
        let dots = lanczosDots(h, v, previous, count: p)
        if !dots.hh.isFinite { try hessian.requireFinite(h) }
        let a = dots.vh - known * dots.vu
        var terms: [(coefficient: Double, vector: UnsafePointer<Double>)] = [(a, UnsafePointer(v))]
        if let previous { terms.insert((known, previous), at: 0) }
        let next = basis.vector(j + 1)
        let q = deflatedCount
        let rows = deflated.map { UnsafePointer($0.storage) }
        var c = [Double](repeating: 0, count: q)
        let localSquare = c.withUnsafeMutableBufferPointer {
            combineAndProject(h, minus: terms, rows: rows, rowCount: q, count: p, into: next,
                              projections: $0.baseAddress!)
        }
        let cSquare = c.reduce(0) { $0 + $1 * $1 }
        let before = (known * known + a * a + localSquare).squareRoot()  // ‖H v_j‖ (Pythagoras)
        normEstimate = max(normEstimate, before)
        let usual = dots.hh.isFinite && dots.hh >= 1e-250 && localSquare >= 1e-250
        let negligible = usual && c.allSatisfy { abs($0) <= 1e-13 * localSquare.squareRoot() }
        var after: Double
        var inSpan = false
        if negligible {
            after = localSquare.squareRoot()
        } else if usual && localSquare - cSquare > 0.5 * localSquare {
            after = (localSquare - cSquare).squareRoot()
        } else {
            // The general route from w = Hv_j − β_j v_{j−1} − α_j v_j, every norm measured.
            next.update(from: h, count: p)
            for term in terms { longAxpy(-term.coefficient, term.vector, next, count: p) }
            let local = longNorm(next, count: p)
            (_, after, inSpan) = basis.orthogonalise(next, against: 0, extra: rows, extraCount: q, normBefore: local,
                                                     minimumPasses: 1)
            c = []  // already subtracted
        }
        alpha.append(a)
        if j + 1 >= space || inSpan || after <= stopBelow * before {
            invariant = true
            return
        }
        beta.append(after)
        if negligible || c.isEmpty {
            scaleInPlace(next, count: p, by: 1 / after)
        } else {
            c.withUnsafeBufferPointer {
                subtractRowsAndScale(next, rows: rows, rowCount: q, coefficients: $0.baseAddress!, scale: 1 / after,
                                     count: p, into: next)
            }
        }
    }

    /// The eigendecomposition of T_j (LAPACK `dstev`): ascending Ritz values θ_l and the
    /// eigenvectors, column l of the column-major j × j `vectors` (entry i at l·j + i).
    func tridiagonalEigen() throws -> (values: [Double], vectors: [Double]) {
        let n = count
        var d = alpha
        var e = Array(beta.prefix(max(n - 1, 0)))
        if e.isEmpty { e = [0] }
        var z = [Double](repeating: 0, count: n * n)
        let info = d.withUnsafeMutableBufferPointer { pd in
            e.withUnsafeMutableBufferPointer { pe in
                z.withUnsafeMutableBufferPointer { pz in
                    sgn_LAPACKE_dstev(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "V")), blasInt(n),
                                      pd.baseAddress, pe.baseAddress, pz.baseAddress, blasInt(n))
                }
            }
        }
        guard info == 0 else {
            throw SGDNoiseError.numericalFailure("the tridiagonal eigensolver dstev failed (info = \(info))")
        }
        return (d, z)
    }
}
