import SGDNoise
import _SGDNoiseShims

// C section 5
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Marshalling of raw C arguments: pointers, sizes and the memory they imply, enum codes, and the
/// hyperparameters through the core's `Validation` rules with the C spelling of their names.
/// Every check throws a message that names the argument, so nothing reaches Swift's traps; no rule
/// about values lives here (the core owns them).
enum Arguments {
    /// The largest dimension accepted for a D × D matrix (the core's limit).
    static let maxDimension = Validation.maxDenseDimension

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

    /// Throws `outOfMemory` unless `doubles` numbers fit in the machine's physical memory (what
    /// `name` would allocate).
    static func fits(doubles: Double, _ name: String) throws(SGDNoiseError) {
        let bytes = doubles * 8
        if let memory = physicalMemory, bytes > memory {
            throw .outOfMemory(
                "\(name) needs about \((bytes / 1e8).rounded() / 10) GB, more than this machine's \((memory / 1e8).rounded() / 10) GB")
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
        try Validation.finite(value, name: name)
    }

    /// The sampling mode from its C code (an sgdnoise_sampling). Epoch shuffling is a way to
    /// simulate, not a noise formula: only the functions that say so accept it.
    static func sampling(_ code: CInt, allowEpochShuffling: Bool = false) throws(SGDNoiseError) -> sgdnoise_sampling {
        guard let mode = sgdnoise_sampling(rawValue: code), mode != .epochShuffling || allowEpochShuffling else {
            throw .invalidArgument(
                "sampling must be SGDNOISE_SAMPLING_WITH_REPLACEMENT (0) or SGDNOISE_SAMPLING_WITHOUT_REPLACEMENT (1)"
                    + (allowEpochShuffling ? " or SGDNOISE_SAMPLING_EPOCH_SHUFFLING (2)" : "") + ", got \(code)")
        }
        return mode
    }

    /// The noise-formula sampling mode (with or without replacement) from its C code.
    static func noiseSampling(_ code: CInt) throws(SGDNoiseError) -> Sampling {
        try sampling(code) == .withReplacement ? .withReplacement : .withoutReplacement
    }

    /// Any sampling mode, epoch shuffling included, from its C code.
    static func anySampling(_ code: CInt) throws(SGDNoiseError) -> Sampling {
        switch try sampling(code, allowEpochShuffling: true) {
        case .withReplacement: return .withReplacement
        case .withoutReplacement: return .withoutReplacement
        case .epochShuffling: return .epochShuffling
        }
    }

    /// The sampling factor f of [Prop 1] for n samples, with the batch size checked under its C name.
    static func noiseFactor(_ code: CInt, sampleCount n: Int, batchSize: Int) throws(SGDNoiseError) -> Double {
        let mode = try noiseSampling(code, sampleCount: n, batchSize: batchSize)
        return try core { try mode.noiseFactor(sampleCount: n, batchSize: batchSize) }
    }

    /// The noise-formula sampling mode, with the batch size checked under its C name.
    static func noiseSampling(_ code: CInt, sampleCount n: Int, batchSize: Int) throws(SGDNoiseError) -> Sampling {
        let mode = try noiseSampling(code)
        try Validation.batchSize(batchSize, sampleCount: n, sampling: mode, name: "batch_size")
        return mode
    }

    /// The hyperparameters every SGD function takes, checked by the core's rules under their C names.
    static func hyperparameters(lr: Double, batchSize: Int, momentum: Double) throws(SGDNoiseError) {
        try Validation.learningRate(lr, name: "lr")
        try Validation.batchSize(batchSize, name: "batch_size")
        try Validation.momentum(momentum, name: "momentum")
    }

    /// The learning rate `lr · Λ` (Λ = I when `lrMatrix` is NULL).
    static func learningRate(_ lr: Double, _ lrMatrix: UnsafePointer<Double>?, _ d: Int) throws(SGDNoiseError) -> LearningRate {
        try Validation.learningRate(lr, name: "lr")
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
/// the C caller, whose learning rate is the scalar `lr` in front of `lr_matrix`, that is lr · c
/// (a structured conversion of the error's value, see `SGDNoiseError.criticalLearningRate(inUnitsOf:)`).
func inCallerUnits<R>(lr: Double, lrMatrix: UnsafePointer<Double>?, _ body: () throws -> R) throws(SGDNoiseError) -> R {
    do {
        return try body()
    } catch {
        throw inCallerUnits(error, lrMatrix: lrMatrix, lr: lr)
    }
}

/// An error of a core computation whose learning rate is `lr · lr_matrix`, in the C caller's
/// units (what `inCallerUnits(lr:lrMatrix:_:)` throws; for a call made outside a closure).
func inCallerUnits(_ error: any Error, lrMatrix: UnsafePointer<Double>?, lr: Double) -> SGDNoiseError {
    guard let error = error as? SGDNoiseError else { return .numericalFailure("unexpected error: \(error)") }
    return lrMatrix == nil ? error : error.criticalLearningRate(inUnitsOf: lr)
}

/// The factor that converts a critical learning rate of the core into the C caller's units.
func callerScale(lr: Double, lrMatrix: UnsafePointer<Double>?) -> Double {
    lrMatrix == nil ? 1 : lr
}

/// Runs a core computation, passing on its error (every error of the core is an SGDNoiseError).
func core<R>(_ body: () throws -> R) throws(SGDNoiseError) -> R {
    do {
        return try body()
    } catch let error as SGDNoiseError {
        throw error
    } catch {
        throw .numericalFailure("unexpected error: \(error)")
    }
}

/// How a symmetric matrix argument is laid out.
@c public enum sgdnoise_layout: CInt {
    /// d x d row-major entries; matrix results are d x d.
    case dense = 0
    /// d diagonal entries (a spectrum in its eigenbasis); matrix results are their d diagonals.
    case diagonal = 1
    /// A weighted spectrum (docs/theory.md section 8), e.g. from sgdnoise_spectral_density: the
    /// first operand holds 2d doubles, d nodes then their d weights (finite, >= 0, not all 0);
    /// node l stands for weight_l directions in every trace, and D = sum of the weights. The other
    /// operands of the call (lr_matrix, weight_decay) hold d entries, one per node; matrix results
    /// are the d per-node values. Accepted only by sgdnoise_label_noise, sgdnoise_high_dimensional,
    /// sgdnoise_critical_learning_rate, sgdnoise_smallest_stable_batch_size and
    /// sgdnoise_minimum_fluctuation (without weight decay); the weighted sweeps are
    /// sgdnoise_label_noise_sweep_weighted and sgdnoise_scaling_law_weighted.
    case weightedSpectrum = 2
}

extension Arguments {
    /// The relative flat tolerance of a d x d curvature: 0 selects the library's default 16 d eps.
    static func flatTolerance(_ tol: Double, _ d: Int) throws(SGDNoiseError) -> Double {
        try Validation.flatTolerance(tol == 0 ? nil : tol, dimension: d, name: "flat_tolerance")
    }

    /// The layout from its C code; SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM only where `weighted` says the
    /// function sums over a weighted spectrum's multiplicities.
    static func layout(_ code: CInt, weighted: Bool = false) throws(SGDNoiseError) -> sgdnoise_layout {
        guard let layout = sgdnoise_layout(rawValue: code), layout != .weightedSpectrum || weighted else {
            throw .invalidArgument(
                "layout must be SGDNOISE_LAYOUT_DENSE (0) or SGDNOISE_LAYOUT_DIAGONAL (1)"
                    + (weighted ? " or SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM (2)" : "") + ", got \(code)"
                    + (code == sgdnoise_layout.weightedSpectrum.rawValue
                        ? " (a weighted spectrum is accepted only by the functions whose models need nothing but traces over it)" : ""))
        }
        return layout
    }

    /// A symmetric operator: d x d entries (dense), d entries (diagonal), or 2d entries, nodes
    /// then weights (weighted spectrum).
    static func symmetric(_ p: UnsafePointer<Double>?, _ layout: sgdnoise_layout, _ d: Int, _ name: String) throws(SGDNoiseError) -> SymmetricOperator {
        switch layout {
        case .dense: return .dense(try squareMatrix(p, d, name))
        case .diagonal: return .diagonal(try vector(p, d, name))
        case .weightedSpectrum:
            try size(d, "dimension", max: 1 << 35)
            let entries = try vector(p, 2 * d, name)
            do {
                return .weightedSpectrum(try WeightedSpectrum(nodes: Array(entries[..<d]), weights: Array(entries[d...])))
            } catch {
                throw .invalidArgument("\(name): \(error)")
            }
        }
    }

    /// An operand that follows the first one's layout (weight_decay, sigma): d x d entries
    /// (dense), or d entries, one per node (diagonal and weighted spectrum; the weights are the
    /// first operand's).
    static func companion(_ p: UnsafePointer<Double>?, _ layout: sgdnoise_layout, _ d: Int, _ name: String) throws(SGDNoiseError) -> SymmetricOperator {
        try symmetric(p, layout == .weightedSpectrum ? .diagonal : layout, d, name)
    }

    /// A copy of the n entries at `p`.
    static func vector(_ p: UnsafePointer<Double>?, _ n: Int, _ name: String) throws(SGDNoiseError) -> [Double] {
        let p = try pointer(p, name)
        try size(n, "dimension", max: 1 << 36)
        return Array(UnsafeBufferPointer(start: p, count: n))
    }

    /// `lr · lr_matrix` in the given layout (scalar when lr_matrix is NULL).
    static func learningRate(_ lr: Double, _ lrMatrix: UnsafePointer<Double>?, _ layout: sgdnoise_layout, _ d: Int) throws(SGDNoiseError) -> LearningRate {
        try Validation.learningRate(lr, name: "lr")
        guard lrMatrix != nil else { return .scalar(lr) }
        switch layout {
        case .dense: return try learningRate(lr, lrMatrix, d)
        case .diagonal, .weightedSpectrum: return .diagonal(try vector(lrMatrix, d, "lr_matrix").map { lr * $0 })
        }
    }

    /// Copies a dense or diagonal result into the caller's buffer.
    static func write(_ op: SymmetricOperator, to out: UnsafeMutablePointer<Double>) {
        switch op {
        case .dense(let m): write(m, to: out)
        case .diagonal(let v): write(v, to: out)
        case .weightedSpectrum(let w): write(w.nodes, to: out)
        }
    }

    static func write(_ v: [Double], to out: UnsafeMutablePointer<Double>) {
        v.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// Writes a prediction into the optional output buffers.
    /// `lr`/`lrMatrix`: the caller's learning rate, to report the critical one in its units
    /// (see `inCallerUnits`).
    static func write(_ p: Prediction, sigma: UnsafeMutablePointer<Double>?, noise: UnsafeMutablePointer<Double>?,
                      mean: UnsafeMutablePointer<Double>?, scalars: ResultSlot<sgdnoise_prediction>?,
                      lr: Double = 1, lrMatrix: UnsafePointer<Double>? = nil) {
        if let sigma { write(p.sigma, to: sigma) }
        if let noise { write(p.noise, to: noise) }
        if let mean { write(p.mean, to: mean) }
        scalars?.write(sgdnoise_prediction(p, criticalLearningRateScale: callerScale(lr: lr, lrMatrix: lrMatrix)))
    }

    /// The caller's noise-scales struct (required).
    static func noiseScales(_ p: UnsafeMutablePointer<sgdnoise_noise_scales>?) throws(SGDNoiseError) -> ResultSlot<sgdnoise_noise_scales> {
        guard let slot = try ResultSlot(p, "out_scales", "sgdnoise_noise_scales") else {
            throw .invalidArgument("out_scales must not be NULL")
        }
        return slot
    }

    /// The caller's optional prediction struct.
    static func prediction(_ p: UnsafeMutablePointer<sgdnoise_prediction>?) throws(SGDNoiseError) -> ResultSlot<sgdnoise_prediction>? {
        try ResultSlot(p, "out_prediction", "sgdnoise_prediction")
    }
}
