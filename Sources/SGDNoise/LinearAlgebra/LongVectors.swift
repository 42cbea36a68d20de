import _SGDNoiseKernels

// Kernels on vectors of P doubles, P of any size (the matrix-free curvature algorithms, the noise
// operator's scaling): the library's own C kernels (`Sources/_SGDNoiseKernels/krylov_body.h`,
// AVX2 + FMA where the processor has it), never the BLAS. A level-1 or level-2 BLAS call on a
// vector of 10⁶ entries wakes OpenBLAS's thread pool, whose threads then spin for a while (about
// 0.1 s) after the call: in a Python process that pool is numpy's, and the spinning thread takes a
// core from the Hessian-vector product that runs next (JAX's or PyTorch's own threads). Measured
// on a JAX MLP of 10⁶ parameters on two cores: network_fluctuation 56 s with the BLAS calls, 41 s
// with these kernels (40 s with the BLAS calls but the pool limited to one thread). The block
// products of the noise operator stay GEMMs. The kernels split the columns into fixed ranges
// (`fusedKernelRanges`) run on the cores in parallel, so the order of every sum depends on the
// sizes alone; the 32-bit limit of the BLAS interface does not apply.

/// The column ranges the kernels split a vector of `count` entries into, run on the cores
/// in parallel: one range below 2¹⁷ entries, else eight (whole chunks of the kernels). The ranges,
/// and so the order of every sum, depend on `count` alone, never on the cores or the load.
func fusedKernelRanges(_ count: Int) -> [Range<Int>] {
    let chunk = Int(SGN_KRYLOV_CHUNK)
    guard count >= 1 << 17 else { return [0..<count] }
    let chunks = (count + chunk - 1) / chunk
    let parts = 8
    return (0..<parts).map { p in (chunks * p / parts * chunk)..<min(count, chunks * (p + 1) / parts * chunk) }
}

/// c ← A x for the `rows` contiguous rows of length `length` at `a`.
func projectRows(
    _ a: UnsafePointer<Double>, rows: Int, length: Int, _ x: UnsafePointer<Double>,
    into c: UnsafeMutablePointer<Double>, kernels: sgn_kernels = Kernels.active
) {
    projectRowsAndSquare(a, rows: rows, length: length, x, into: c, kernels: kernels)
}

/// c ← A x for the `rows` contiguous rows of length `length` at `a` (none: `a` and `c` may be
/// nil), and xᵀx, which the same pass gives.
@discardableResult
func projectRowsAndSquare(
    _ a: UnsafePointer<Double>?, rows: Int, length: Int, _ x: UnsafePointer<Double>,
    into c: UnsafeMutablePointer<Double>?, kernels: sgn_kernels = Kernels.active
) -> Double {
    let ranges = fusedKernelRanges(length)
    let stride = rows + 1  // per part: the projections, then xᵀx
    let partials = UnsafeMutablePointer<Double>.allocate(capacity: stride * ranges.count)
    defer { partials.deallocate() }
    let shared = UnsafeShared((kernels, a, x, partials))
    parallelWorkers(ranges.count) { part in
        let (kernels, a, x, partials) = shared.value
        let lo = ranges[part].lowerBound
        let out = partials + stride * part
        kernels.project_rows(ranges[part].count, x + lo, rows, a.map { $0 + lo }, length, out, out + rows)
    }
    return sumProjectionPartials(partials, parts: ranges.count, rows: rows, into: c)
}

/// The sums over the parallel parts of per-part results laid out as `rows` projections then one
/// sum of squares (stride rows + 1): the projections into c (nil when rows = 0), in part order;
/// returns the sum of squares.
private func sumProjectionPartials(
    _ partials: UnsafePointer<Double>, parts: Int, rows: Int, into c: UnsafeMutablePointer<Double>?
) -> Double {
    let stride = rows + 1
    var squares = 0.0
    for i in 0..<rows { c![i] = 0 }
    for part in 0..<parts {
        for i in 0..<rows { c![i] += partials[stride * part + i] }
        squares += partials[stride * part + rows]
    }
    return squares
}

/// x ← x − Aᵀc for the `rows` rows of length `length` at `a`.
func subtractRows(
    _ a: UnsafePointer<Double>, rows: Int, length: Int, coefficients c: UnsafePointer<Double>,
    from x: UnsafeMutablePointer<Double>
) {
    guard rows > 0 else { return }
    subtractRowsAndScale(x, rows: a, rowCount: rows, coefficients: c, scale: 1, count: length, into: x)
}

/// xᵀy over `count` entries.
func longDot(_ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, count: Int) -> Double {
    var c = 0.0
    projectRows(x, rows: 1, length: count, y, into: &c)
    return c
}

/// y ← y + a x over `count` entries.
func longAxpy(_ a: Double, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, count: Int) {
    var c = -a
    subtractRowsAndScale(y, rows: x, rowCount: 1, coefficients: &c, scale: 1, count: count, into: y)
}

/// x ← αx over `count` entries (each entry rounded once, as by any implementation).
func scaleInPlace(_ x: UnsafeMutablePointer<Double>, count: Int, by alpha: Double) {
    subtractRowsAndScale(x, rows: nil, rowCount: 0, coefficients: nil, scale: alpha, count: count, into: x)
}

/// ‖x‖₂ over `count` entries, without overflow or underflow: √(xᵀx) when xᵀx is finite and not
/// tiny, else m·√(Σ (x_i/m)²) with m = max|x_i| (two more passes, only then); NaN when an entry
/// is NaN, +∞ when one is infinite.
func longNorm(_ x: UnsafePointer<Double>, count: Int) -> Double {
    let square = projectRowsAndSquare(nil, rows: 0, length: count, x, into: nil)
    if square.isFinite && square >= 1e-250 { return square.squareRoot() }
    var largest = 0.0
    for i in 0..<count {
        let a = abs(x[i])
        if a.isNaN { return .nan }
        largest = max(largest, a)
    }
    guard largest > 0, largest.isFinite else { return largest }
    var sum = 0.0
    for i in 0..<count {
        let s = x[i] / largest
        sum += s * s
    }
    return largest * sum.squareRoot()
}

/// out_o = Σ_{s < from} a[o·from + s] r_s for o < outputs, with r_s the rows of length `length` at
/// `r` and out_o those at `out`; `out` may be `r` itself (each column chunk is formed in a
/// workspace before it is written).
func combineRows(
    _ r: UnsafePointer<Double>, from: Int, length: Int, outputs: Int, coefficients a: UnsafePointer<Double>,
    into out: UnsafeMutablePointer<Double>, kernels: sgn_kernels = Kernels.active
) {
    guard outputs > 0 else { return }
    let ranges = fusedKernelRanges(length)
    let tileSize = outputs * min(Int(SGN_KRYLOV_CHUNK), ranges.map(\.count).max()!)  // per range
    let tiles = UnsafeMutablePointer<Double>.allocate(capacity: tileSize * ranges.count)
    defer { tiles.deallocate() }
    let shared = UnsafeShared((kernels, r, a, out, tiles))
    parallelWorkers(ranges.count) { part in
        let (kernels, r, a, out, tiles) = shared.value
        let lo = ranges[part].lowerBound
        kernels.combine_rows(ranges[part].count, from, r + lo, length, outputs, a, out + lo, length,
                             tiles + part * tileSize)
    }
}

/// Makes the `count` contiguous rows of length `length` at `x` orthonormal by Cholesky QR:
/// G = X Xᵀ = L Lᵀ, X ← L⁻¹ X (one pass per row for the Gram matrix's rows, one recombination).
/// Meant for rows already nearly orthonormal (|G − I| small), where one such step leaves them
/// orthonormal to rounding; returns false, leaving the rows unchanged, when G is not safely positive
/// definite (a pivot below 1/4: the rows are far from orthonormal).
func orthonormaliseRows(_ x: UnsafeMutablePointer<Double>, count k: Int, length: Int) -> Bool {
    guard k > 0 else { return true }
    var g = [Double](repeating: 0, count: k * k)  // row i: x_rᵀ x_i for r ≤ i
    g.withUnsafeMutableBufferPointer { gp in
        for i in 0..<k { projectRows(x, rows: i + 1, length: length, x + i * length, into: gp.baseAddress! + i * k) }
    }
    // L (lower, row-major) with G = L Lᵀ.
    var l = [Double](repeating: 0, count: k * k)
    for i in 0..<k {
        for c in 0...i {
            var sum = g[i * k + c]
            for s in 0..<c { sum -= l[i * k + s] * l[c * k + s] }
            if c == i {
                guard sum.isFinite, sum > 0.25 else { return false }
                l[i * k + i] = sum.squareRoot()
            } else {
                l[i * k + c] = sum / l[c * k + c]
            }
        }
    }
    // M = L⁻¹ (lower), by forward substitution on the columns of I.
    var inverse = [Double](repeating: 0, count: k * k)
    for c in 0..<k {
        for i in c..<k {
            var sum = i == c ? 1.0 : 0.0
            for s in c..<i { sum -= l[i * k + s] * inverse[s * k + c] }
            inverse[i * k + c] = sum / l[i * k + i]
        }
    }
    inverse.withUnsafeBufferPointer {
        combineRows(x, from: k, length: length, outputs: k, coefficients: $0.baseAddress!, into: x)
    }
    return true
}

// MARK: - The Lanczos steps' fused kernels (one pass over each vector)

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
    return sumProjectionPartials(partials, parts: ranges.count, rows: rowCount, into: c)
}

/// out = (w − Σ_i c_i r_i) · scale over the `rows` contiguous rows at r, in one pass (out may be w).
func subtractRowsAndScale(
    _ w: UnsafePointer<Double>, rows r: UnsafePointer<Double>?, rowCount: Int, coefficients c: UnsafePointer<Double>?,
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

/// ‖Hv_j‖ of a Lanczos step from its Pythagorean parts, ‖Hv_j‖² = Σ couplings² + α² + ‖w‖² (w the
/// rest of Hv_j), or measured on `h` itself when that square leaves the double range (entries
/// beyond about 1e154 or below 1e-125; `h` holds the product divided by `scale`).
func lanczosProductNorm(couplingSquares: Double, alpha: Double, restSquare: Double,
                        _ h: UnsafePointer<Double>, count: Int, scale: Double = 1) -> Double {
    let pythagoras = (couplingSquares + alpha * alpha + restSquare).squareRoot()
    return pythagoras.isFinite && pythagoras >= 1e-125 ? pythagoras : scale * longNorm(h, count: count)
}
