import SGDNoise

/// The state behind an sgdnoise simulation handle.
final class SimulationHandle {
    var data: SimulationData
    var weightDecay: Matrix? = nil
    var learningRate: LearningRate = .scalar(0.1)
    var batchSize = 1
    var momentum = 0.0
    var result: SimulationResult? = nil
    let dimension: Int

    init(data: SimulationData, dimension: Int) {
        self.data = data
        self.dimension = dimension
    }
}

/// Indices into the `out_scalars` array of sgdnoise_simulation_result.
@c public enum sgdnoise_simulation_field: CInt {
    /// E[L(w)] (regulariser included).
    case trainLoss = 0
    /// E[(w-u)^T A (w-u)]/2 (NaN for a dataset without teacher).
    case testLoss = 1
    /// Hill estimate of the tail index of |w - w*|.
    case tailIndex = 2
    /// The number of order statistics the Hill estimate used.
    case tailOrderStatistics = 3
    /// 1 when the tail index is <= 4 (sample variances unreliable), else 0.
    case tailUnreliable = 4
    /// 1 when a chain diverged (estimates are NaN), else 0.
    case diverged = 5
    /// The step at which the first chain diverged (-1 if none).
    case divergedAtStep = 6
    /// 1 when the progress callback cancelled the run, else 0.
    case cancelled = 7
    /// Recorded steps summed over chains.
    case stepsCompleted = 8
    /// The number of entries of out_scalars.
    case count = 9
}

private func handle(_ p: UnsafeMutableRawPointer?) throws(SGDNoiseError) -> SimulationHandle {
    guard let p else { throw .invalidArgument("simulation must not be NULL") }
    return Unmanaged<SimulationHandle>.fromOpaque(p).takeUnretainedValue()
}

private func store(_ h: SimulationHandle, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
    out.pointee = Unmanaged.passRetained(h).toOpaque()
}

/// Creates a simulation of online linear regression: x ~ N(0, A) (d x d), labels u^T x + noise
/// of variance noise_var (u may be NULL: zero teacher), inputs seen with N(0, input_noise) noise
/// (may be NULL). *out_simulation receives a handle to free with sgdnoise_simulation_free.
@c public func sgdnoise_simulation_create_gaussian(
    _ d: Int, _ a: UnsafePointer<Double>?, _ u: UnsafePointer<Double>?, _ noise_var: Double,
    _ input_noise: UnsafePointer<Double>?, _ out_simulation: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_simulation, "out_simulation")
        let aMatrix = try Arguments.squareMatrix(a, d, "A")
        let teacher = try u.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.vector(p, d, "u") }
        let b = try input_noise.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.squareMatrix(p, d, "input_noise") }
        try Arguments.finite(noise_var, "noise_var")
        store(SimulationHandle(data: .gaussian(a: aMatrix, teacher: teacher, noiseVariance: noise_var, inputNoise: b), dimension: d), out)
    }
}

/// Creates a simulation on a finite dataset: X (n x d row-major), y (n), minibatches drawn by
/// `sampling` (0 with replacement, 1 without, 2 epoch shuffling); u (may be NULL) defines the test
/// loss. *out_simulation receives a handle to free with sgdnoise_simulation_free.
@c public func sgdnoise_simulation_create_dataset(
    _ n: Int, _ d: Int, _ x: UnsafePointer<Double>?, _ y: UnsafePointer<Double>?, _ sampling: CInt,
    _ u: UnsafePointer<Double>?, _ out_simulation: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_simulation, "out_simulation")
        try Arguments.size(n, "n")
        try Arguments.size(d, "d", max: Arguments.maxDimension)
        let xs = try Arguments.vector(x, try Arguments.count(n, d, "X"), "X")
        let ys = try Arguments.vector(y, n, "y")
        let teacher = try u.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.vector(p, d, "u") }
        let mode: BatchSampling
        switch sampling {
        case 0: mode = .withReplacement
        case 1: mode = .withoutReplacement
        case 2: mode = .epochShuffling
        default: throw .invalidArgument("sampling must be 0 (with replacement), 1 (without) or 2 (epoch shuffling), got \(sampling)")
        }
        let matrix = try core { try Matrix(rows: n, columns: d, elements: xs) }
        store(SimulationHandle(data: .dataset(x: matrix, y: ys, sampling: mode, teacher: teacher), dimension: d), out)
    }
}

/// Sets the optimiser: weight decay (d x d, may be NULL), learning rate lr * I or
/// lr * lr_matrix (d x d SPD, may be NULL), batch size and momentum.
@c public func sgdnoise_simulation_set_optimizer(
    _ simulation: UnsafeMutableRawPointer?, _ weight_decay: UnsafePointer<Double>?, _ lr: Double,
    _ lr_matrix: UnsafePointer<Double>?, _ batch_size: Int, _ momentum: Double
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        let d = h.dimension
        let gamma = try weight_decay.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.squareMatrix(p, d, "weight_decay") }
        let rate = try Arguments.learningRate(lr, lr_matrix, d)
        try Arguments.size(batch_size, "batch_size")
        // Checked here, not only when the run starts, so that the error names the call that set it.
        guard momentum.isFinite, momentum >= 0, momentum < 1 else {
            throw .invalidArgument("momentum must lie in [0, 1), got \(momentum)")
        }
        h.weightDecay = gamma
        h.learningRate = rate
        h.batchSize = batch_size
        h.momentum = momentum
    }
}

/// Progress callback: called about every 0.1 s from the thread that called
/// sgdnoise_simulation_run with (context, steps done, steps in all); return nonzero to cancel.
public typealias sgdnoise_progress_callback = @convention(c) (UnsafeMutableRawPointer?, Int, Int) -> CInt

/// Runs `chains` independent chains of `burn_in` + `steps` SGD steps from `seed` on `threads`
/// threads (0: all cores; results do not depend on it). progress may be NULL. Divergence and
/// cancellation are reported by sgdnoise_simulation_result, not as errors.
@c public func sgdnoise_simulation_run(
    _ simulation: UnsafeMutableRawPointer?, _ steps: Int, _ burn_in: Int, _ chains: Int, _ seed: UInt64,
    _ threads: Int, _ progress: sgdnoise_progress_callback?, _ context: UnsafeMutableRawPointer?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        guard threads >= 0 else { throw .invalidArgument("threads must be >= 0, got \(threads)") }
        let spec = SimulationSpec(
            data: h.data, weightDecay: h.weightDecay, learningRate: h.learningRate, batchSize: h.batchSize,
            momentum: h.momentum, steps: steps, burnIn: burn_in, chains: chains, seed: seed,
            threads: threads == 0 ? nil : threads)
        let callback: ((Int, Int) -> Bool)? = progress.map { fn in { done, total in fn(context, done, total) != 0 } }
        h.result = try core { try simulate(spec, progress: callback) }
    }
}

/// Copies the last run's estimates (d, d*d, d*d, d*d doubles and SGDNOISE_SIMULATION_FIELD_COUNT
/// scalars; every pointer may be NULL). Fails when the simulation has not run.
@c public func sgdnoise_simulation_result(
    _ simulation: UnsafeMutableRawPointer?, _ out_mean: UnsafeMutablePointer<Double>?,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_sigma_stderr: UnsafeMutablePointer<Double>?,
    _ out_noise: UnsafeMutablePointer<Double>?, _ out_scalars: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        guard let r = h.result else { throw .invalidArgument("simulation has not run: call sgdnoise_simulation_run first") }
        if let out_mean { Arguments.write(r.mean, to: out_mean) }
        if let out_sigma { Arguments.write(r.sigma, to: out_sigma) }
        if let out_sigma_stderr { Arguments.write(r.sigmaStandardError, to: out_sigma_stderr) }
        if let out_noise { Arguments.write(r.noise, to: out_noise) }
        if let s = out_scalars {
            s[0] = r.trainLoss
            s[1] = r.testLoss
            s[2] = r.tailIndex
            s[3] = Double(r.tailOrderStatistics)
            s[4] = r.tailUnreliable ? 1 : 0
            s[5] = r.diverged ? 1 : 0
            s[6] = Double(r.divergedAtStep ?? -1)
            s[7] = r.cancelled ? 1 : 0
            s[8] = Double(r.stepsCompleted)
        }
    }
}

/// Frees a simulation handle (NULL is ignored). The handle must not be used afterwards.
@c public func sgdnoise_simulation_free(_ simulation: UnsafeMutableRawPointer?) {
    guard let simulation else { return }
    Unmanaged<SimulationHandle>.fromOpaque(simulation).release()
}
