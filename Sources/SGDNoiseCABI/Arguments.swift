import SGDNoise

/// Validation of raw C arguments: pointers, sizes and the memory they imply. Every check throws a
/// message that names the argument, so nothing reaches Swift's traps.
enum Arguments {
    /// The largest dimension accepted for a D × D matrix (the LAPACK workspace of a D × D
    /// eigendecomposition must fit 32-bit indices).
    static let maxDimension = 40_000

    /// Throws unless `value ≥ 1`.
    static func size(_ value: Int, _ name: String, max limit: Int = Int(Int32.max)) throws(SGDNoiseError) {
        guard value >= 1 else {
            throw .invalidArgument("\(name) must be at least 1, got \(value)")
        }
        guard value <= limit else {
            throw .outOfMemory("\(name) = \(value) exceeds the supported maximum \(limit)")
        }
    }

    /// `rows * columns`, or an out-of-memory error when it overflows or exceeds what fits.
    static func count(_ rows: Int, _ columns: Int, _ name: String) throws(SGDNoiseError) -> Int {
        let (n, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow, n <= (1 << 40) else {
            throw .outOfMemory("\(name): \(rows) × \(columns) entries do not fit in memory")
        }
        return n
    }

    /// Throws unless the pointer is non-NULL.
    static func pointer<T>(_ p: UnsafePointer<T>?, _ name: String) throws(SGDNoiseError) -> UnsafePointer<T> {
        guard let p else { throw .invalidArgument("\(name) must not be NULL") }
        return p
    }

    /// Throws unless the pointer is non-NULL.
    static func output<T>(_ p: UnsafeMutablePointer<T>?, _ name: String) throws(SGDNoiseError) -> UnsafeMutablePointer<T> {
        guard let p else { throw .invalidArgument("\(name) must not be NULL") }
        return p
    }

    /// A copy of the d × d row-major matrix at `p` (checked for NULL and size; the core checks the
    /// entries).
    static func squareMatrix(_ p: UnsafePointer<Double>?, _ d: Int, _ name: String) throws(SGDNoiseError) -> Matrix {
        let p = try pointer(p, name)
        try size(d, "dimension", max: maxDimension)
        let n = try count(d, d, name)
        do {
            return try Matrix(rows: d, columns: d, elements: Array(UnsafeBufferPointer(start: p, count: n)))
        } catch {
            throw .invalidArgument("\(name): \(error)")
        }
    }

    /// Throws unless `value` is finite.
    static func finite(_ value: Double, _ name: String) throws(SGDNoiseError) {
        guard value.isFinite else { throw .invalidArgument("\(name) must be finite, got \(value)") }
    }

    /// The sampling mode from its C code.
    static func sampling(_ code: CInt) throws(SGDNoiseError) -> Sampling {
        switch sgdnoise_sampling(rawValue: code) {
        case .withReplacement: return .withReplacement
        case .withoutReplacement: return .withoutReplacement
        case nil: throw .invalidArgument("sampling must be SGDNOISE_SAMPLING_WITH_REPLACEMENT (0) or SGDNOISE_SAMPLING_WITHOUT_REPLACEMENT (1), got \(code)")
        }
    }

    /// The learning rate `lr · Λ` (Λ = I when `lrMatrix` is NULL).
    static func learningRate(_ lr: Double, _ lrMatrix: UnsafePointer<Double>?, _ d: Int) throws(SGDNoiseError) -> LearningRate {
        guard lr.isFinite, lr > 0 else {
            throw .invalidArgument("lr must be a finite positive number, got \(lr)")
        }
        guard lrMatrix != nil else { return .scalar(lr) }
        let m = try squareMatrix(lrMatrix, d, "lr_matrix")
        return .matrix(lr == 1 ? m : lr * m)
    }

    /// Copies `m` into the caller's d × d buffer.
    static func write(_ m: Matrix, to out: UnsafeMutablePointer<Double>) {
        m.elements.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: $0.count) }
    }
}

/// Converts any error of the core (all of type SGDNoiseError) into a typed throw.
func core<R>(_ body: () throws -> R) throws(SGDNoiseError) -> R {
    do {
        return try body()
    } catch let error as SGDNoiseError {
        throw error
    } catch {
        throw .numericalFailure("unexpected error: \(error)")
    }
}
