import SGDNoise
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// The physical memory of the machine in bytes (nil when unknown).
    static let physicalMemory: Double? = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        return pages > 0 && pageSize > 0 ? Double(pages) * Double(pageSize) : nil
    }()

    /// How many d × d matrices of doubles a dense computation keeps at once, at most (copies of
    /// the inputs, eigenvectors, LAPACK workspace, results; the stationary solver peaks at about 7).
    static let denseWorkingSet = 8.0

    /// Throws `outOfMemory` unless a dense d × d computation fits in the machine's physical memory:
    /// beyond it the process would be killed by the system instead of getting a status.
    static func denseFits(_ d: Int, _ name: String) throws(SGDNoiseError) {
        let bytes = denseWorkingSet * Double(d) * Double(d) * 8
        if let memory = physicalMemory, bytes > memory {
            throw .outOfMemory(
                "\(name): a dense \(d) × \(d) computation needs about \((bytes / 1e8).rounded() / 10) GB, more than this machine's \((memory / 1e8).rounded() / 10) GB (dense problems up to d = \(Int((memory / (denseWorkingSet * 8)).squareRoot())) fit; pass a spectrum in the diagonal layout for larger ones)")
        }
    }

    /// A copy of the d × d row-major matrix at `p` (checked for NULL, size and memory; the core
    /// checks the entries).
    static func squareMatrix(_ p: UnsafePointer<Double>?, _ d: Int, _ name: String) throws(SGDNoiseError) -> Matrix {
        let p = try pointer(p, name)
        try size(d, "dimension", max: maxDimension)
        try denseFits(d, name)
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

/// Runs a core computation whose learning rate is `lr · lr_matrix`. The core reports a critical
/// learning rate for a matrix as the largest stable multiple c of the matrix it was given; for
/// the C caller, whose learning rate is the scalar `lr` in front of `lr_matrix`, that is lr · c.
func inCallerUnits<R>(lr: Double, lrMatrix: UnsafePointer<Double>?, _ body: () throws -> R) throws(SGDNoiseError) -> R {
    do {
        return try core(body)
    } catch .unstable(let message, let scale?) where lrMatrix != nil {
        let critical = lr * scale
        let cause = message.split(separator: ";").first.map(String.init) ?? "unstable"
        throw .unstable("\(cause); for this lr_matrix the critical learning rate is \(critical)", criticalLearningRate: critical)
    }
}

/// Converts any error of the core (all of type SGDNoiseError) into a typed throw, and a matrix
/// result with a NaN or an infinity into a numerical failure (see `requireFiniteResult`).
func core<R>(_ body: () throws -> R) throws(SGDNoiseError) -> R {
    let result: R
    do {
        result = try body()
    } catch let error as SGDNoiseError {
        throw error
    } catch {
        throw .numericalFailure("unexpected error: \(error)")
    }
    try requireFiniteResult(result)
    return result
}

/// Throws `numericalFailure` when a matrix result (Σ, C, w* of a prediction; a stationary Σ; a
/// baseline's Σ) holds a NaN or an infinity: inputs near the limits of double precision (entries
/// of 1e300, say) overflow, and the C contract is SGDNOISE_STATUS_NUMERICAL_FAILURE ("a result
/// came out non-finite"), never a silent NaN in the caller's buffer. Scalars documented to be NaN
/// or +inf (kappa, an unknown critical learning rate, the loss where unstable) are not checked.
func requireFiniteResult<R>(_ result: R) throws(SGDNoiseError) {
    func finite(_ op: SymmetricOperator) -> Bool {
        switch op {
        case .dense(let m): return m.isFinite
        case .diagonal(let v): return v.allSatisfy { $0.isFinite }
        }
    }
    func finite(_ p: Prediction) -> Bool {
        finite(p.sigma) && finite(p.noise) && p.mean.allSatisfy { $0.isFinite }
    }
    let ok: Bool
    switch result {
    case let p as Prediction: ok = finite(p)
    case let p as FiniteDatasetPrediction: ok = finite(p.prediction)
    case let s as StationaryFluctuation: ok = s.sigma.isFinite
    case let op as SymmetricOperator: ok = finite(op)
    default: ok = true  // inputs wrapped by `core` (a Matrix of X, say) are validated by the core
    }
    guard ok else {
        throw .numericalFailure("the result came out non-finite: the inputs' scale overflows double precision")
    }
}

/// How a symmetric matrix argument is laid out.
@c public enum sgdnoise_layout: CInt {
    /// d x d row-major entries; matrix results are d x d.
    case dense = 0
    /// d diagonal entries (a spectrum in its eigenbasis); matrix results are their d diagonals.
    case diagonal = 1
}

/// Indices into the `out_scalars` array of the model functions.
@c public enum sgdnoise_prediction_field: CInt {
    /// E[L(w)] at stationarity.
    case trainLoss = 0
    /// E[(w-u)^T A (w-u)]/2 at stationarity.
    case testLoss = 1
    /// The paper's kappa for this model (NaN where it defines none).
    case kappa = 2
    /// The critical learning rate (NaN where unknown).
    case criticalLearningRate = 3
    /// Tr[M Sigma], the trace that couples the noise to the fluctuation.
    case couplingTrace = 4
    /// Noise power entering flat directions of the Hessian (0 when none).
    case flatDirectionNoise = 5
    /// The number of entries of out_scalars.
    case count = 6
}

extension Arguments {
    static func layout(_ code: CInt) throws(SGDNoiseError) -> sgdnoise_layout {
        guard let layout = sgdnoise_layout(rawValue: code) else {
            throw .invalidArgument("layout must be SGDNOISE_LAYOUT_DENSE (0) or SGDNOISE_LAYOUT_DIAGONAL (1), got \(code)")
        }
        return layout
    }

    /// A symmetric operator: d x d entries (dense) or d entries (diagonal).
    static func symmetric(_ p: UnsafePointer<Double>?, _ layout: sgdnoise_layout, _ d: Int, _ name: String) throws(SGDNoiseError) -> SymmetricOperator {
        switch layout {
        case .dense: return .dense(try squareMatrix(p, d, name))
        case .diagonal: return .diagonal(try vector(p, d, name))
        }
    }

    /// A copy of the n entries at `p`.
    static func vector(_ p: UnsafePointer<Double>?, _ n: Int, _ name: String) throws(SGDNoiseError) -> [Double] {
        let p = try pointer(p, name)
        try size(n, "dimension", max: 1 << 36)
        return Array(UnsafeBufferPointer(start: p, count: n))
    }

    /// `lr · lr_matrix` in the given layout (scalar when lr_matrix is NULL).
    static func learningRate(_ lr: Double, _ lrMatrix: UnsafePointer<Double>?, _ layout: sgdnoise_layout, _ d: Int) throws(SGDNoiseError) -> LearningRate {
        guard lr.isFinite, lr > 0 else { throw .invalidArgument("lr must be a finite positive number, got \(lr)") }
        guard lrMatrix != nil else { return .scalar(lr) }
        switch layout {
        case .dense: return try learningRate(lr, lrMatrix, d)
        case .diagonal: return .diagonal(try vector(lrMatrix, d, "lr_matrix").map { lr * $0 })
        }
    }

    /// Copies a dense or diagonal result into the caller's buffer.
    static func write(_ op: SymmetricOperator, to out: UnsafeMutablePointer<Double>) {
        switch op {
        case .dense(let m): write(m, to: out)
        case .diagonal(let v): write(v, to: out)
        }
    }

    static func write(_ v: [Double], to out: UnsafeMutablePointer<Double>) {
        v.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// Writes a prediction into the optional output buffers.
    /// `lr`/`lrMatrix`: the caller's learning rate, to report the critical one in its units
    /// (see `inCallerUnits`).
    static func write(_ p: Prediction, sigma: UnsafeMutablePointer<Double>?, noise: UnsafeMutablePointer<Double>?,
                      mean: UnsafeMutablePointer<Double>?, scalars: UnsafeMutablePointer<Double>?,
                      lr: Double = 1, lrMatrix: UnsafePointer<Double>? = nil) {
        if let sigma { write(p.sigma, to: sigma) }
        if let noise { write(p.noise, to: noise) }
        if let mean { write(p.mean, to: mean) }
        if let scalars {
            scalars[Int(sgdnoise_prediction_field.trainLoss.rawValue)] = p.trainLoss
            scalars[Int(sgdnoise_prediction_field.testLoss.rawValue)] = p.testLoss
            scalars[Int(sgdnoise_prediction_field.kappa.rawValue)] = p.kappa ?? .nan
            scalars[Int(sgdnoise_prediction_field.criticalLearningRate.rawValue)] =
                p.criticalLearningRate.map { lrMatrix == nil ? $0 : lr * $0 } ?? .nan
            scalars[Int(sgdnoise_prediction_field.couplingTrace.rawValue)] = p.couplingTrace
            scalars[Int(sgdnoise_prediction_field.flatDirectionNoise.rawValue)] = p.flatDirectionNoise
        }
    }
}
