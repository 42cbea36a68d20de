/// A dense real matrix of `Double`, stored row-major and contiguous.
///
/// The value type the whole library computes with. Element (i, j) is `elements[i * columns + j]`,
/// the layout of a C-contiguous numpy array, so data cross the C boundary without copies or
/// transposes. Dense operations go through BLAS and LAPACK (see `Matrix+BLAS.swift` and
/// `SymmetricEigendecomposition.swift`).
public struct Matrix: Equatable, Sendable {
    /// The number of rows.
    public let rows: Int
    /// The number of columns.
    public let columns: Int
    /// The entries, row after row (`rows * columns` of them).
    public var elements: [Double]

    /// A `rows × columns` matrix filled with `value`.
    public init(rows: Int, columns: Int, repeating value: Double = 0) {
        precondition(rows >= 0 && columns >= 0, "Matrix sizes must be non-negative")
        self.rows = rows
        self.columns = columns
        self.elements = [Double](repeating: value, count: rows * columns)
    }

    /// A `rows × columns` matrix with the given row-major entries.
    /// - Throws: `SGDNoiseError.invalidArgument` when `elements.count != rows * columns`.
    public init(rows: Int, columns: Int, elements: [Double]) throws {
        guard rows >= 0, columns >= 0, elements.count == rows * columns else {
            throw SGDNoiseError.invalidArgument(
                "matrix: \(elements.count) entries do not fill \(rows) × \(columns)")
        }
        self.rows = rows
        self.columns = columns
        self.elements = elements
    }

    /// A matrix from its rows (all of the same length).
    /// - Throws: `SGDNoiseError.invalidArgument` for ragged rows.
    public init(_ rowArrays: [[Double]]) throws {
        let columns = rowArrays.first?.count ?? 0
        guard rowArrays.allSatisfy({ $0.count == columns }) else {
            throw SGDNoiseError.invalidArgument("matrix: rows have different lengths")
        }
        self.rows = rowArrays.count
        self.columns = columns
        self.elements = rowArrays.flatMap { $0 }
    }

    /// Internal unchecked initialiser for results the library computes itself.
    init(uncheckedRows rows: Int, columns: Int, elements: [Double]) {
        self.rows = rows
        self.columns = columns
        self.elements = elements
    }

    /// A `rows × columns` matrix whose every entry `fill` writes (a BLAS result with β = 0): no
    /// zero fill first.
    init(uninitializedRows rows: Int, columns: Int, fill: (UnsafeMutableBufferPointer<Double>) -> Void) {
        self.rows = rows
        self.columns = columns
        self.elements = [Double](unsafeUninitializedCapacity: rows * columns) { buffer, count in
            fill(buffer)
            count = rows * columns
        }
    }

    /// The `n × n` identity.
    public static func identity(_ n: Int) -> Matrix {
        diagonal([Double](repeating: 1, count: n))
    }

    /// The square matrix with `values` on its diagonal.
    public static func diagonal(_ values: [Double]) -> Matrix {
        var m = Matrix(rows: values.count, columns: values.count)
        for (i, v) in values.enumerated() { m.elements[i * values.count + i] = v }
        return m
    }

    /// Entry (i, j).
    public subscript(i: Int, j: Int) -> Double {
        get { elements[i * columns + j] }
        set { elements[i * columns + j] = newValue }
    }

    /// Whether the matrix is square.
    public var isSquare: Bool { rows == columns }

    /// The diagonal entries.
    public var diagonalEntries: [Double] {
        (0..<min(rows, columns)).map { elements[$0 * columns + $0] }
    }

    /// The sum of the diagonal entries.
    public var trace: Double { diagonalEntries.reduce(0, +) }

    /// The transpose.
    public var transposed: Matrix {
        var t = Matrix(rows: columns, columns: rows)
        for i in 0..<rows {
            for j in 0..<columns { t.elements[j * rows + i] = elements[i * columns + j] }
        }
        return t
    }

    /// The Frobenius norm √(Σ a_ij²).
    public var frobeniusNorm: Double {
        elements.reduce(0) { $0 + $1 * $1 }.squareRoot()
    }

    /// The largest absolute entry (0 for an empty matrix).
    public var maxAbs: Double {
        elements.reduce(0) { Swift.max($0, abs($1)) }
    }

    /// Whether every entry is finite (no NaN, no ±∞).
    public var isFinite: Bool { elements.allSatisfy { $0.isFinite } }

    /// The entrywise sum a + b. The shapes must agree (a precondition: a mismatch traps).
    public static func + (a: Matrix, b: Matrix) -> Matrix {
        precondition(a.rows == b.rows && a.columns == b.columns, "shape mismatch")
        var c = a
        for k in c.elements.indices { c.elements[k] += b.elements[k] }
        return c
    }

    /// The entrywise difference a − b. The shapes must agree (a precondition: a mismatch traps).
    public static func - (a: Matrix, b: Matrix) -> Matrix {
        precondition(a.rows == b.rows && a.columns == b.columns, "shape mismatch")
        var c = a
        for k in c.elements.indices { c.elements[k] -= b.elements[k] }
        return c
    }

    /// The scalar multiple s·a: every entry of `a` times `s`.
    public static func * (s: Double, a: Matrix) -> Matrix {
        Matrix(uncheckedRows: a.rows, columns: a.columns, elements: a.elements.map { s * $0 })
    }
}
