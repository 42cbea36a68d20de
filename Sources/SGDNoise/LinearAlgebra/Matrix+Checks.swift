/// Input validation shared by every public entry point: shapes, finiteness and symmetry.
///
/// Symmetric inputs are checked, never silently symmetrised: a matrix is accepted as symmetric
/// when |a_ij − a_ji| ≤ `Matrix.symmetryTolerance` · max_kl |a_kl| for all i, j.
extension Matrix {
    /// The relative tolerance of the symmetry check (1e-10).
    public static let symmetryTolerance = 1e-10

    /// Throws unless the matrix is `n × n` (any `n ≥ 1` when `n` is nil) with finite entries.
    func requireSquareFinite(_ name: String, size n: Int? = nil) throws {
        try requireSquare(name, size: n)
        try requireFinite(name)
    }

    /// Throws unless the matrix is `n × n` (any `n ≥ 1` when `n` is nil).
    func requireSquare(_ name: String, size n: Int?) throws {
        guard rows == columns, rows >= 1 else {
            throw SGDNoiseError.invalidArgument("\(name) must be a non-empty square matrix, got \(rows) × \(columns)")
        }
        if let n, rows != n {
            throw SGDNoiseError.invalidArgument("\(name) must be \(n) × \(n), got \(rows) × \(columns)")
        }
    }

    /// Throws unless every entry is finite.
    func requireFinite(_ name: String) throws {
        if let k = elements.firstIndex(where: { !$0.isFinite }) {
            throw SGDNoiseError.invalidArgument(
                "\(name) has a non-finite entry \(elements[k]) at (\(k / Swift.max(columns, 1)), \(k % Swift.max(columns, 1)))")
        }
    }

    /// Throws unless the matrix is square, finite and symmetric within `symmetryTolerance`.
    ///
    /// One pass by tiles reads every pair (a_ij, a_ji) once for the three checks; the passes that
    /// name the first offending entry run only when a check fails.
    func requireSymmetric(_ name: String, size n: Int? = nil) throws {
        try requireSquare(name, size: n)
        let n = rows
        let (scale, zero, asymmetry) = symmetryScan()
        if zero != 0 { try requireFinite(name) }  // NaN: some entry is not finite, and this throws
        let tolerance = Matrix.symmetryTolerance * scale
        guard asymmetry > tolerance else { return }
        // By 64 × 64 tiles, so that the transposed reads stay in cache.
        var bad: (Int, Int)? = nil
        elements.withUnsafeBufferPointer { a in
            let tile = 64
            for ib in stride(from: 0, to: n, by: tile) where bad == nil {
                for jb in stride(from: ib, to: n, by: tile) where bad == nil {
                    for i in ib..<min(ib + tile, n) {
                        for j in max(jb, i + 1)..<max(min(jb + tile, n), max(jb, i + 1))
                        where abs(a[i * n + j] - a[j * n + i]) > tolerance {
                            bad = (i, j)
                            break
                        }
                        if bad != nil { break }
                    }
                }
            }
        }
        if let (i, j) = bad {
            throw SGDNoiseError.notSymmetric(
                "\(name) is not symmetric: entry (\(i), \(j)) = \(elements[i * n + j]) but (\(j), \(i)) = \(elements[j * n + i])")
        }
    }

    /// For a square matrix, in one pass: max |a_ij|; Σ a_ij · 0, which is 0 unless an entry is NaN
    /// or ±∞; and max over i < j of |a_ij − a_ji| (meaningful when every entry is finite).
    ///
    /// By 64 × 64 tiles: the tile below the diagonal is copied transposed into a buffer, so that
    /// both sides of each pair are read in rows, four lanes at a time.
    func symmetryScan() -> (scale: Double, zero: Double, asymmetry: Double) {
        typealias Lanes = SIMD4<Double>
        let n = rows
        let tile = 64
        // The state lives inside the closure and is passed to `pair` (no captured variable to box
        // and check for exclusive access: a 2 × 2 scan is a few dozen instructions). One pair
        // (x, y) = (a_ij, a_ji) into (scale, zero, asymmetry):
        @inline(__always) func pair(_ x: Double, _ y: Double, _ s: inout (Double, Double, Double)) {
            s.0 = Swift.max(s.0, abs(x), abs(y))
            s.1 += x * 0 + y * 0
            s.2 = Swift.max(s.2, abs(x - y))
        }
        return elements.withUnsafeBufferPointer { pa -> (Double, Double, Double) in
            let a = pa.baseAddress!
            var state = (0.0, 0.0, 0.0)  // (scale, zero, asymmetry)
            var (vScale, vZero, vAsymmetry) = (Lanes(), Lanes(), Lanes())
            // The transposed-tile buffer exists only when there are off-diagonal tiles (n > 64),
            // and is never read before it is written, so it is left uninitialised.
            let t = n > tile ? UnsafeMutablePointer<Double>.allocate(capacity: tile * tile) : nil
            defer { t?.deallocate() }
            for ib in stride(from: 0, to: n, by: tile) {
                let iEnd = Swift.min(ib + tile, n)
                for i in ib..<iEnd {  // the diagonal tile: pairs one by one, and the diagonal
                    state.0 = Swift.max(state.0, abs(a[i * n + i]))
                    state.1 += a[i * n + i] * 0
                    for j in (i + 1)..<iEnd { pair(a[i * n + j], a[j * n + i], &state) }
                }
                guard let t else { continue }
                for jb in stride(from: ib + tile, to: n, by: tile) {
                    let jEnd = Swift.min(jb + tile, n), width = jEnd - jb
                    for j in jb..<jEnd {
                        for i in ib..<iEnd { t[(i - ib) * tile + (j - jb)] = a[j * n + i] }
                    }
                    for i in ib..<iEnd {
                        let (x, y) = (a + i * n + jb, t + (i - ib) * tile)
                        var k = 0
                        while k + 4 <= width {
                            let vx = UnsafeRawPointer(x + k).loadUnaligned(as: Lanes.self)
                            let vy = UnsafeRawPointer(y + k).loadUnaligned(as: Lanes.self)
                            let ax = vx.replacing(with: -vx, where: vx .< 0)
                            let ay = vy.replacing(with: -vy, where: vy .< 0)
                            let d = vx - vy
                            let ad = d.replacing(with: -d, where: d .< 0)
                            vScale.replace(with: ax, where: ax .> vScale)
                            vScale.replace(with: ay, where: ay .> vScale)
                            vAsymmetry.replace(with: ad, where: ad .> vAsymmetry)
                            vZero += vx * 0 + vy * 0
                            k += 4
                        }
                        while k < width {
                            pair(x[k], y[k], &state)
                            k += 1
                        }
                    }
                }
            }
            return (Swift.max(state.0, vScale.max()), state.1 + vZero.sum(), Swift.max(state.2, vAsymmetry.max()))
        }
    }

    /// The symmetric part (A + Aᵀ)/2 — for results the library computes, never for inputs.
    var symmetrized: Matrix {
        var s = self
        let n = rows
        for i in 0..<n {
            for j in (i + 1)..<n {
                let v = 0.5 * (elements[i * n + j] + elements[j * n + i])
                s.elements[i * n + j] = v
                s.elements[j * n + i] = v
            }
        }
        return s
    }

    /// A + Aᵀ in place (square A).
    mutating func addTransposeInPlace() {
        let n = rows
        elements.withUnsafeMutableBufferPointer { a in
            forEachUpperPairByTiles(n) { i, j in
                let v = a[i * n + j] + a[j * n + i]
                a[i * n + j] = v
                a[j * n + i] = v
            }
            for i in 0..<n { a[i * n + i] *= 2 }
        }
    }

    /// Copies the upper triangle into the lower one (after a BLAS call that wrote only one).
    mutating func fillLowerFromUpper() {
        let n = rows
        elements.withUnsafeMutableBufferPointer { a in
            forEachUpperPairByTiles(n) { i, j in a[j * n + i] = a[i * n + j] }
        }
    }
}

/// Calls `body(i, j)` for every i < j below n, by 64 × 64 tiles, so that the transposed accesses
/// (j, i) of a row-major n × n matrix stay in cache.
@inline(__always)
func forEachUpperPairByTiles(_ n: Int, _ body: (Int, Int) -> Void) {
    let tile = 64
    for ib in stride(from: 0, to: n, by: tile) {
        for jb in stride(from: ib, to: n, by: tile) {
            for i in ib..<min(ib + tile, n) {
                for j in max(jb, i + 1)..<max(min(jb + tile, n), max(jb, i + 1)) { body(i, j) }
            }
        }
    }
}

/// Throws unless `value` is finite.
func requireFinite(_ value: Double, _ name: String) throws {
    guard value.isFinite else {
        throw SGDNoiseError.invalidArgument("\(name) must be finite, got \(value)")
    }
}
