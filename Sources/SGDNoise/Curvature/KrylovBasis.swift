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
    /// The pool the block came from and goes back to (`KrylovBasisPool.current` at creation).
    private let pool: KrylovBasisPool?

    init(dimension: Int, capacity: Int) throws {
        precondition(dimension >= 1 && capacity >= 1)
        self.dimension = dimension
        pool = KrylovBasisPool.current
        if let (block, rows) = pool?.take(rows: capacity, dimension: dimension) {
            self.capacity = rows
            storage = block
        } else {
            self.capacity = capacity
            storage = try KrylovBasis.allocate(rows: capacity, dimension: dimension, reusing: nil)
        }
    }

    deinit {
        if let pool {
            pool.give(storage, rows: capacity, dimension: dimension)
        } else {
            free(storage)
        }
    }

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
        adviseHugePages(raw, bytes: bytes)
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
    /// replaced column chunk by column chunk, each chunk computed before it is written).
    func combine(coefficients: [Double], outputs: Int, from: Int, into out: UnsafeMutablePointer<Double>) {
        precondition(coefficients.count >= outputs * from)
        let p = dimension
        guard outputs > 0 else { return }
        guard from > 0 else {
            for i in 0..<outputs { (out + i * p).initialize(repeating: 0, count: p) }
            return
        }
        coefficients.withUnsafeBufferPointer { cf in
            combineRows(storage, from: from, length: p, outputs: outputs, coefficients: cf.baseAddress!, into: out)
        }
    }
}

/// Freed Krylov blocks kept for reuse within one computation. A computation that creates and drops
/// many bases in turn (`networkFluctuation`: two eigenpair runs, then a basis per probe) runs inside
/// `KrylovBasisPool.$current.withValue(pool)`; its bases then take their memory from the pool and
/// give it back, so that the memory is zeroed by the kernel once instead of once per basis (at
/// P = 10⁶ a basis of 20 rows is 160 MB, and its first touch cost more than its Lanczos steps'
/// arithmetic). Everything goes back to the system when the pool is released or drained. One
/// thread at a time.
final class KrylovBasisPool: @unchecked Sendable {
    @TaskLocal static var current: KrylovBasisPool?

    private var blocks: [(storage: UnsafeMutablePointer<Double>, rows: Int, dimension: Int)] = []

    init() {}

    /// The smallest free block of `dimension` with at least `rows` rows and at most
    /// max(2 rows, rows + 4) (a one-row workspace does not take a whole basis), or nil.
    func take(rows: Int, dimension: Int) -> (UnsafeMutablePointer<Double>, Int)? {
        let fitting = blocks.indices.filter {
            blocks[$0].dimension == dimension && blocks[$0].rows >= rows && blocks[$0].rows <= max(2 * rows, rows + 4)
        }
        guard let best = fitting.min(by: { blocks[$0].rows < blocks[$1].rows }) else { return nil }
        let block = blocks.remove(at: best)
        return (block.storage, block.rows)
    }

    func give(_ storage: UnsafeMutablePointer<Double>, rows: Int, dimension: Int) {
        blocks.append((storage, rows, dimension))
    }

    /// Returns every free block to the system (before a step that needs memory of its own, such as
    /// a noise product, so that the pool does not add to its peak).
    func drain() {
        for block in blocks { free(block.storage) }
        blocks = []
    }

    deinit { drain() }
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
    /// θ_i of the deflated rows (H q_i ≈ θ_i q_i).
    let deflatedValues: [Double]
    /// The dimension of the space the recurrence lives in: P minus the deflated rows.
    let space: Int
    /// d_j = Qᵀṽ_j for each stored row ṽ_j: the Lanczos vector is v_j = ṽ_j − Q d_j (the projection
    /// off the deflated rows is applied lazily, see `step`); all zero without deflation.
    var deflatedParts: [[Double]] = []
    /// α_0 … α_{j−1}.
    var alpha: [Double] = []
    /// β_1 … β_{j−1} (β_i couples v_{i−1} and v_i).
    var beta: [Double] = []
    /// Whether the Krylov space is invariant (no further vector exists).
    var invariant = false
    var products = 0

    /// j, the number of vectors whose product has been taken.
    var count: Int { alpha.count }

    init(
        hessian: HessianOperator, basis: KrylovBasis, deflated: KrylovBasis?, deflatedCount: Int,
        deflatedValues: [Double], stopBelow: Double
    ) throws {
        precondition(deflatedValues.count == deflatedCount)
        self.hessian = hessian
        self.stopBelow = stopBelow
        self.basis = basis
        self.deflated = deflated
        self.deflatedCount = deflatedCount
        self.deflatedValues = deflatedValues
        // The start vector (row 0) is orthogonal to the deflated rows (the callers project it).
        deflatedParts = [[Double](repeating: 0, count: deflatedCount)]
        self.space = hessian.dimension - deflatedCount
        work = try KrylovBasis(dimension: hessian.dimension, capacity: 1)
    }

    /// ṽ_j, the vector whose product the next step takes (v_j plus its part Q d_j along the
    /// deflated rows, of the order of their residuals).
    var current: UnsafePointer<Double> { UnsafePointer(basis.vector(count)) }

    /// Takes the product of ṽ_j (or uses `given`, H ṽ_j computed by the caller with
    /// `apply(…, checked: false)`, e.g. in a block with other recurrences' vectors:
    /// `runInLockstep`), checks it, appends α_j and, unless the space is invariant, β_{j+1} and
    /// ṽ_{j+1} (growing the basis).
    ///
    /// The three-term recurrence (β_j known, α_j = v_jᵀHv_j − β_j v_jᵀv_{j−1}) with the projection
    /// off the deflated rows Q (without it, rounding along them would grow like a Chebyshev
    /// polynomial of their distance from the rest of the spectrum). The projection is applied
    /// **lazily**: the stored row is ṽ_{j+1} = w/β_{j+1} with w = Hv_j − α_j v_j − β_j v_{j−1}, and
    /// its part d_{j+1} = Qᵀw/β_{j+1} along Q is kept, so that v_{j+1} = ṽ_{j+1} − Q d_{j+1}. The
    /// next product is taken of ṽ_{j+1}; since H Q = QΘ + R (R the deflated pairs' residuals),
    /// H v_{j+1} = H ṽ_{j+1} − QΘd_{j+1} − R d_{j+1}, and the last term, O(‖R‖²/β), is dropped (it
    /// is below the O(‖R‖) at which approximate eigenvectors deflate in any case). The correction
    /// QΘd_{j+1} joins the subtraction of the next step, which reads Q once for both it and the new
    /// projections: three passes — `lanczosDots` (‖Hṽ_j‖², which checks the product, ṽ_jᵀHṽ_j,
    /// ṽ_jᵀṽ_{j−1}; the d's turn them into v's), `combineAndProject` (w = Hṽ_j − β_jṽ_{j−1} −
    /// α_jṽ_j − Q(Θd_j − α_jd_j − β_jd_{j−1}) written to row j + 1, its projections c = Qᵀw and
    /// ‖w‖²), and the scaling by 1/β_{j+1}, β_{j+1}² = ‖w‖² − ‖c‖² (exact for orthonormal rows).
    /// Projections below 1e-13 ‖w‖ are dropped; a projection removing more than half of ‖w‖², or
    /// magnitudes near the ends of the double range, go the general DGKS route of `orthogonalise`,
    /// which projects w off Q explicitly (d_{j+1} = 0).
    mutating func step(product given: UnsafePointer<Double>? = nil) throws {
        precondition(!invariant)
        let j = count
        let p = basis.dimension
        try basis.reserve(j + 2)
        let v = basis.vector(j)
        // h = H ṽ_j / s: the operator's scale s (λ of λH) is applied in the coefficients below.
        let h: UnsafePointer<Double>
        if let given {
            h = given
        } else {
            try hessian.apply(count: 1, v, into: work.vector(0), checked: false, scaled: false)
            h = UnsafePointer(work.vector(0))
        }
        let s = hessian.outputScale
        products += 1
        let q = deflatedCount
        let known = j > 0 ? beta[j - 1] : 0
        let previous = j > 0 ? UnsafePointer(basis.vector(j - 1)) : nil
        let d = deflatedParts[j]
        let dPrevious = j > 0 ? deflatedParts[j - 1] : [Double](repeating: 0, count: q)
        let dots = lanczosDots(h, v, previous, count: p)
        if !dots.hh.isFinite { try hessian.requireFinite(h) }
        // v_jᵀHv_j = ṽ_jᵀHṽ_j − d_jᵀΘd_j and v_jᵀv_{j−1} = ṽ_jᵀṽ_{j−1} − d_jᵀd_{j−1} (to O(‖R‖²)).
        var dThetaD = 0.0, dDPrevious = 0.0
        for i in 0..<q {
            dThetaD += d[i] * deflatedValues[i] * d[i]
            dDPrevious += d[i] * dPrevious[i]
        }
        let a = (s * dots.vh - dThetaD) - known * (dots.vu - dDPrevious)
        var terms: [(coefficient: Double, vector: UnsafePointer<Double>)] = [(a, UnsafePointer(v))]
        if let previous { terms.insert((known, previous), at: 0) }
        let rows = deflated.map { UnsafePointer($0.storage) }
        if let rows {
            for i in 0..<q {
                let e = deflatedValues[i] * d[i] - a * d[i] - known * dPrevious[i]
                if e != 0 { terms.append((e, rows + i * p)) }
            }
        }
        // The pass works on w/s (h as given, the coefficients divided by s); its results are scaled back.
        let next = basis.vector(j + 1)
        var c = [Double](repeating: 0, count: q)
        let localSquare = s * s * c.withUnsafeMutableBufferPointer {
            combineAndProject(h, minus: terms.map { ($0.coefficient / s, $0.vector) }, rows: rows, rowCount: q,
                              count: p, into: next, projections: $0.baseAddress!)
        }
        c = c.map { s * $0 }
        let cSquare = c.reduce(0) { $0 + $1 * $1 }
        let before = lanczosProductNorm(couplingSquares: known * known, alpha: a, restSquare: localSquare, h, count: p,
                                        scale: s)
        let usual = dots.hh.isFinite && s * s * dots.hh >= 1e-250 && localSquare >= 1e-250
        let negligible = usual && c.allSatisfy { abs($0) <= 1e-13 * localSquare.squareRoot() }
        var after: Double
        var inSpan = false
        var stored = s  // next holds the new vector times stored / ‖·‖ before the final scaling
        if negligible {
            after = localSquare.squareRoot()
            c = [Double](repeating: 0, count: q)
        } else if usual && localSquare - cSquare > 0.5 * localSquare {
            after = (localSquare - cSquare).squareRoot()
        } else {
            // The general route from w, every norm measured, projected off Q explicitly.
            next.update(from: h, count: p)
            if s != 1 { scaleInPlace(next, count: p, by: s) }
            stored = 1
            for term in terms { longAxpy(-term.coefficient, term.vector, next, count: p) }
            let local = longNorm(next, count: p)
            (_, after, inSpan) = basis.orthogonalise(next, against: 0, extra: rows, extraCount: q, normBefore: local,
                                                     minimumPasses: 1)
            c = [Double](repeating: 0, count: q)
        }
        alpha.append(a)
        if j + 1 >= space || inSpan || after <= stopBelow * before {
            invariant = true
            return
        }
        beta.append(after)
        scaleInPlace(next, count: p, by: stored / after)
        deflatedParts.append(c.map { $0 / after })
    }

    /// out_o = Σ_s y[o·from + s] v_s for o < outputs over the first `from` Lanczos vectors (the
    /// stored rows combined, then their parts along the deflated rows subtracted).
    func combine(coefficients y: [Double], outputs: Int, from: Int, into out: UnsafeMutablePointer<Double>) {
        basis.combine(coefficients: y, outputs: outputs, from: from, into: out)
        guard let deflated, deflatedCount > 0 else { return }
        let p = basis.dimension
        for o in 0..<outputs {
            var along = [Double](repeating: 0, count: deflatedCount)
            for s in 0..<from {
                for i in 0..<deflatedCount { along[i] += y[o * from + s] * deflatedParts[s][i] }
            }
            if along.contains(where: { $0 != 0 }) {
                subtractRows(deflated.storage, rows: deflatedCount, length: p, coefficients: along, from: out + o * p)
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

/// Asks the kernel (Linux) to back the 2 MiB-aligned interior of a large block with transparent
/// huge pages: the first touch of a fresh Krylov basis then takes one page fault per 2 MiB instead
/// of one per 4 KiB (at P = 10⁶ a basis row is 8 MB: 2048 faults, about 2 ms). Advice only: the
/// memory and its contents are unchanged, and a kernel without it ignores the call.
func adviseHugePages(_ raw: UnsafeMutableRawPointer, bytes: Int) {
    #if os(Linux)
    let huge = 1 << 21
    guard bytes >= 2 * huge else { return }
    let start = (Int(bitPattern: raw) + huge - 1) & ~(huge - 1)
    let end = (Int(bitPattern: raw) + bytes) & ~(huge - 1)
    guard end > start, let aligned = UnsafeMutableRawPointer(bitPattern: start) else { return }
    _ = madvise(aligned, end - start, MADV_HUGEPAGE)
    #endif
}
