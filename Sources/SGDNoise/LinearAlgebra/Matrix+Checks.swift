/// Input validation shared by every public entry point: shapes, finiteness and symmetry.
///
/// Symmetric inputs are checked, never silently symmetrised: a matrix is accepted as symmetric
/// when |a_ij − a_ji| ≤ `Matrix.symmetryTolerance` · max_kl |a_kl| for all i, j.
extension Matrix {
    /// The relative tolerance of the symmetry check (1e-10).
    public static let symmetryTolerance = 1e-10

    /// Throws unless the matrix is `n × n` (any `n ≥ 1` when `n` is nil) with finite entries.
    func requireSquareFinite(_ name: String, size n: Int? = nil) throws {
        guard rows == columns, rows >= 1 else {
            throw SGDNoiseError.invalidArgument("\(name) must be a non-empty square matrix, got \(rows) × \(columns)")
        }
        if let n, rows != n {
            throw SGDNoiseError.invalidArgument("\(name) must be \(n) × \(n), got \(rows) × \(columns)")
        }
        try requireFinite(name)
    }

    /// Throws unless every entry is finite.
    func requireFinite(_ name: String) throws {
        if let k = elements.firstIndex(where: { !$0.isFinite }) {
            throw SGDNoiseError.invalidArgument(
                "\(name) has a non-finite entry \(elements[k]) at (\(k / Swift.max(columns, 1)), \(k % Swift.max(columns, 1)))")
        }
    }

    /// Throws unless the matrix is square, finite and symmetric within `symmetryTolerance`.
    func requireSymmetric(_ name: String, size n: Int? = nil) throws {
        try requireSquareFinite(name, size: n)
        let scale = maxAbs
        let n = rows
        let tolerance = Matrix.symmetryTolerance * scale
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
