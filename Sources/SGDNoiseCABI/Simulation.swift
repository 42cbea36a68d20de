import SGDNoise
import _SGDNoiseShims

// C section 9 -- Monte-Carlo SGD (a typed handle, sgdnoise_simulation).
// Threads: a simulation handle must not be used by two threads at once; distinct handles are
// independent. sgdnoise_simulation_run uses the library's own worker threads.

/// The state behind an sgdnoise simulation handle.
final class SimulationHandle {
    var data: SimulationData
    var weightDecay: Matrix? = nil
    var learningRate: LearningRate = .scalar(0.1)
    var batchSize = 1
    var momentum = 0.0
    var result: SimulationResult? = nil
    /// The chains of the last sgdnoise_simulation_run_chains (to export), and the parts added for
    /// sgdnoise_simulation_combine.
    var ownChains: SimulationChains? = nil
    var addedChains: [SimulationChains] = []
    let dimension: Int

    /// The simulation of this handle's data and optimiser with the given run settings (the C
    /// names of the batch-size rule for datasets).
    func spec(steps: Int, burnIn: Int, chains: Int, seed: UInt64, threads: Int) throws(SGDNoiseError) -> SimulationSpec {
        guard threads >= 0 else { throw .invalidArgument("threads must be >= 0, got \(threads)") }
        if case .dataset(let x, _, let sampling, _) = data {  // the core's rule, under the C name
            try Validation.batchSize(batchSize, sampleCount: x.rows, sampling: sampling, name: "batch_size")
        }
        return SimulationSpec(
            data: data, weightDecay: weightDecay, learningRate: learningRate, batchSize: batchSize,
            momentum: momentum, steps: steps, burnIn: burnIn, chains: chains, seed: seed,
            threads: threads == 0 ? nil : threads)
    }

    init(data: SimulationData, dimension: Int) {
        self.data = data
        self.dimension = dimension
    }
}

private func handle(_ p: OpaquePointer?) throws(SGDNoiseError) -> SimulationHandle {
    try Handles.object(p, as: SimulationHandle.self, "simulation")
}

private func store(_ h: SimulationHandle, _ out: UnsafeMutablePointer<OpaquePointer?>) {
    Handles.give(h, to: out)
}

/// Creates a simulation of online linear regression: x ~ N(0, A) (d x d), labels u^T x + noise
/// of variance noise_var (u may be NULL: zero teacher), inputs seen with N(0, input_noise) noise
/// (may be NULL). *out_simulation receives a handle to free with sgdnoise_simulation_free.
@c public func sgdnoise_simulation_create_gaussian(
    _ d: Int, _ a: UnsafePointer<Double>?, _ u: UnsafePointer<Double>?, _ noise_var: Double,
    _ input_noise: UnsafePointer<Double>?, _ out_simulation: UnsafeMutablePointer<OpaquePointer?>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_simulation, "out_simulation")
        let aMatrix = try Arguments.squareMatrix(a, d, "A")
        let teacher = try u.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.vector(p, d, "u") }
        let b = try input_noise.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.squareMatrix(p, d, "input_noise") }
        try Arguments.finite(noise_var, "noise_var")
        store(SimulationHandle(data: .gaussian(a: aMatrix, u: teacher, noiseVariance: noise_var, inputNoise: b), dimension: d), out)
    }
}

/// Creates a simulation on a finite dataset: X (n x d row-major), y (n), minibatches drawn by
/// `sampling`, an sgdnoise_sampling (SGDNOISE_SAMPLING_EPOCH_SHUFFLING included); u (may be NULL)
/// defines the test loss. *out_simulation receives a handle to free with sgdnoise_simulation_free.
@c public func sgdnoise_simulation_create_dataset(
    _ n: Int, _ d: Int, _ x: UnsafePointer<Double>?, _ y: UnsafePointer<Double>?, _ sampling: CInt,
    _ u: UnsafePointer<Double>?, _ out_simulation: UnsafeMutablePointer<OpaquePointer?>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_simulation, "out_simulation")
        try Arguments.size(n, "n")
        try Arguments.size(d, "d", max: Arguments.maxDimension)
        let xs = try Arguments.vector(x, try Arguments.count(n, d, "X"), "X")
        let ys = try Arguments.vector(y, n, "y")
        let teacher = try u.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.vector(p, d, "u") }
        let mode = try Arguments.anySampling(sampling)
        let matrix = try core { try Matrix(rows: n, columns: d, elements: xs) }
        store(SimulationHandle(data: .dataset(x: matrix, y: ys, sampling: mode, u: teacher), dimension: d), out)
    }
}

/// Sets the optimiser: weight decay (d x d, may be NULL), learning rate lr * I or
/// lr * lr_matrix (d x d SPD, may be NULL), batch size and momentum.
@c public func sgdnoise_simulation_set_optimizer(
    _ simulation: OpaquePointer?, _ weight_decay: UnsafePointer<Double>?, _ lr: Double,
    _ lr_matrix: UnsafePointer<Double>?, _ batch_size: Int, _ momentum: Double
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        let d = h.dimension
        let gamma = try weight_decay.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.squareMatrix(p, d, "weight_decay") }
        let rate = try Arguments.learningRate(lr, lr_matrix, d)
        // Checked here, not only when the run starts, so that the error names the call that set it.
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        h.weightDecay = gamma
        h.learningRate = rate
        h.batchSize = batch_size
        h.momentum = momentum
    }
}

/// Runs `chains` independent chains of `burn_in` + `steps` SGD steps from `seed` on `threads`
/// threads (0: all cores; results do not depend on it: each chain has its own random stream).
/// progress (may be NULL) is called as its typedef documents, with `context`. Divergence and
/// cancellation are reported by sgdnoise_simulation_result, not as errors.
@c public func sgdnoise_simulation_run(
    _ simulation: OpaquePointer?, _ steps: Int, _ burn_in: Int, _ chains: Int, _ seed: UInt64,
    _ threads: Int, _ progress: sgdnoise_progress_callback?, _ context: UnsafeMutableRawPointer?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        let spec = try h.spec(steps: steps, burnIn: burn_in, chains: chains, seed: seed, threads: threads)
        h.result = try core { try simulate(spec, progress: progressClosure(progress, context)) }
    }
}

private func progressClosure(_ progress: sgdnoise_progress_callback?, _ context: UnsafeMutableRawPointer?) -> ((Int, Int) -> Bool)? {
    progress.map { fn in { done, total in fn(context, done, total) != 0 } }
}

/// Runs chains first_chain .. first_chain + chain_count - 1 (first_chain (0: the first)) of the
/// simulation sgdnoise_simulation_run would make with the same steps, burn_in, chains and seed,
/// each chain on the random stream it has there, and keeps their records for
/// sgdnoise_simulation_export_chains: how the chains of one simulation run in several processes
/// or on several machines. threads, progress and context as in sgdnoise_simulation_run. The
/// handle's last result is untouched.
@c public func sgdnoise_simulation_run_chains(
    _ simulation: OpaquePointer?, _ steps: Int, _ burn_in: Int, _ chains: Int, _ seed: UInt64,
    _ first_chain: Int, _ chain_count: Int, _ threads: Int,
    _ progress: sgdnoise_progress_callback?, _ context: UnsafeMutableRawPointer?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        let spec = try h.spec(steps: steps, burnIn: burn_in, chains: chains, seed: seed, threads: threads)
        guard first_chain >= 0, chain_count >= 1, first_chain < chains, chain_count <= chains - first_chain else {
            throw .invalidArgument("first_chain = \(first_chain) and chain_count = \(chain_count) must pick chains within 0..\(chains - 1)")
        }
        let range = first_chain..<(first_chain + chain_count)
        h.ownChains = try core { try simulateChains(spec, chains: range, progress: progressClosure(progress, context)) }
    }
}

/// The size in bytes of the records sgdnoise_simulation_export_chains writes (*out_size). Fails
/// when sgdnoise_simulation_run_chains has not run.
@c public func sgdnoise_simulation_chains_size(_ simulation: OpaquePointer?, _ out_size: UnsafeMutablePointer<Int>?) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        let out = try Arguments.output(out_size, "out_size")
        out.pointee = try ownChains(h).serialized().count
    }
}

/// Writes the records of the last sgdnoise_simulation_run_chains into out, which holds capacity
/// bytes (at least sgdnoise_simulation_chains_size; else INVALID_ARGUMENT and nothing written):
/// the portable sgdnoise state format (kind 3, docs/state_format.md), with a fingerprint of the
/// simulation (data, optimiser, steps, burn_in, chains, seed) that sgdnoise_simulation_combine
/// checks.
@c public func sgdnoise_simulation_export_chains(
    _ simulation: OpaquePointer?, _ capacity: Int, _ out: UnsafeMutablePointer<UInt8>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        let out = try Arguments.output(out, "out")
        let bytes = try ownChains(h).serialized()
        guard capacity >= bytes.count else {
            throw .invalidArgument("capacity = \(capacity) bytes is less than the \(bytes.count) the records take (sgdnoise_simulation_chains_size)")
        }
        bytes.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: $0.count) }
    }
}

private func ownChains(_ h: SimulationHandle) throws(SGDNoiseError) -> SimulationChains {
    guard let part = h.ownChains else {
        throw .invalidArgument("no chains have run on this simulation: call sgdnoise_simulation_run_chains first")
    }
    return part
}

/// Adds the records of some chains (size bytes written by sgdnoise_simulation_export_chains, in
/// this or another process) to those sgdnoise_simulation_combine will pool. A buffer that is not
/// intact records of simulation chains is INVALID_ARGUMENT (as for every state import).
@c public func sgdnoise_simulation_add_chains(
    _ simulation: OpaquePointer?, _ size: Int, _ state: UnsafePointer<UInt8>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        let state = try Arguments.pointer(state, "state")
        try Arguments.size(size, "size", max: Int.max)
        let part = try core { try SimulationChains(serialized: UnsafeRawBufferPointer(start: state, count: size)) }
        h.addedChains.append(part)
    }
}

/// Pools the records added by sgdnoise_simulation_add_chains, which must cover every chain of the
/// simulation sgdnoise_simulation_run would make with these steps, burn_in, chains and seed (and
/// this handle's data and optimiser: each part's fingerprint is checked), in chain order: the
/// result, read by sgdnoise_simulation_result, is bit for bit that of sgdnoise_simulation_run
/// (for a run that does not diverge; a diverging run is reported as diverged either way, at a
/// step that may differ). The added parts are consumed, also when the call fails.
@c public func sgdnoise_simulation_combine(
    _ simulation: OpaquePointer?, _ steps: Int, _ burn_in: Int, _ chains: Int, _ seed: UInt64
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        let parts = h.addedChains
        h.addedChains = []
        let spec = try h.spec(steps: steps, burnIn: burn_in, chains: chains, seed: seed, threads: 0)
        h.result = try core { try combineChains(spec, parts) }
    }
}

/// Copies the last run's estimates: the mean (d doubles), Sigma, its standard errors and the
/// measured noise (d*d each) and the summary (set its .size first); every pointer may be NULL. Fails when the simulation has not run.
@c public func sgdnoise_simulation_result(
    _ simulation: OpaquePointer?, _ out_mean: UnsafeMutablePointer<Double>?,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_sigma_stderr: UnsafeMutablePointer<Double>?,
    _ out_noise: UnsafeMutablePointer<Double>?, _ out_summary: UnsafeMutablePointer<sgdnoise_simulation_summary>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        let summary = try ResultSlot(out_summary, "out_summary", "sgdnoise_simulation_summary")
        guard let r = h.result else { throw .invalidArgument("simulation has not run: call sgdnoise_simulation_run first") }
        if let out_mean { Arguments.write(r.mean, to: out_mean) }
        if let out_sigma { Arguments.write(r.sigma, to: out_sigma) }
        if let out_sigma_stderr { Arguments.write(r.sigmaStandardError, to: out_sigma_stderr) }
        if let out_noise { Arguments.write(r.noise, to: out_noise) }
        summary?.write(sgdnoise_simulation_summary(
            size: MemoryLayout<sgdnoise_simulation_summary>.size, train_loss: r.trainLoss, test_loss: r.testLoss,
            tail_index: r.tailIndex, tail_order_statistics: Int64(r.tailOrderStatistics),
            tail_unreliable: r.tailUnreliable ? 1 : 0, diverged: r.diverged ? 1 : 0,
            diverged_at_step: Int64(r.divergedAtStep ?? -1), cancelled: r.cancelled ? 1 : 0,
            steps_completed: Int64(r.stepsCompleted)))
    }
}

/// Runs chains >= 2 independent chains of SGD from w0 (d doubles; NULL: the data's w*) following a
/// schedule of count updates (lrs, batch_sizes, momenta as in sgdnoise_learning_curve: update t
/// uses lrs[t-1], batch_sizes[t-1], momenta[t-1]; of the optimizer only the weight decay is used)
/// and reads every chain at the points steps of at_steps (strictly increasing in 0..count), on
/// threads threads (0: all cores; results do not depend on it). The outputs (each may be NULL)
/// receive per recorded step the average over the chains that did not diverge and the standard
/// error of that mean: out_mean, out_mean_stderr (points rows of d), out_sigma, out_sigma_stderr
/// (points blocks of d*d: cov(w_t) across chains), out_trace, out_trace_stderr (Tr cov(w_t)),
/// out_train_loss, out_train_loss_stderr (E[L(w_t)]: points doubles each). out_summary (set its
/// .size first; may be NULL) says whether a chain diverged. The handle's last run is untouched.
@c public func sgdnoise_simulation_run_schedule(
    _ simulation: OpaquePointer?, _ count: Int, _ lrs: UnsafePointer<Double>?, _ batch_sizes: UnsafePointer<Int>?,
    _ momenta: UnsafePointer<Double>?, _ points: Int, _ at_steps: UnsafePointer<Int>?, _ w0: UnsafePointer<Double>?,
    _ chains: Int, _ seed: UInt64, _ threads: Int, _ out_mean: UnsafeMutablePointer<Double>?,
    _ out_mean_stderr: UnsafeMutablePointer<Double>?, _ out_sigma: UnsafeMutablePointer<Double>?,
    _ out_sigma_stderr: UnsafeMutablePointer<Double>?, _ out_trace: UnsafeMutablePointer<Double>?,
    _ out_trace_stderr: UnsafeMutablePointer<Double>?, _ out_train_loss: UnsafeMutablePointer<Double>?,
    _ out_train_loss_stderr: UnsafeMutablePointer<Double>?,
    _ out_summary: UnsafeMutablePointer<sgdnoise_scheduled_run_summary>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try handle(simulation)
        let d = h.dimension
        let summary = try ResultSlot(out_summary, "out_summary", "sgdnoise_scheduled_run_summary")
        guard threads >= 0 else { throw .invalidArgument("threads must be >= 0, got \(threads)") }
        guard chains >= 2 else { throw .invalidArgument("chains must be at least 2 (a covariance across chains), got \(chains)") }
        let request = try CurveRequest(d: d, count: count, lrs: lrs, batchSizes: batch_sizes, momenta: momenta,
                                       points: points, atSteps: at_steps, w0: w0)
        // Every chain's w at every recorded step is kept until the averages are taken.
        let kept = try Arguments.count(chains, try Arguments.count(points, d, "out_mean"), "chains x points x d")
        if let memory = Arguments.physicalMemory, Double(kept) * 8 > memory / 2 {
            throw .outOfMemory("\(chains) chains x \(points) recorded steps x d = \(d) do not fit in memory")
        }
        let spec = SimulationSpec(
            data: h.data, weightDecay: h.weightDecay, learningRate: .scalar(1), batchSize: 1, momentum: 0, steps: 1,
            burnIn: 0, chains: chains, seed: seed, threads: threads == 0 ? nil : threads)
        let r = try core { try simulate(spec, schedule: request.schedule, record: request.record, w0: request.w0) }
        if let out_mean { Arguments.write(r.mean.flatMap { $0 }, to: out_mean) }
        if let out_mean_stderr { Arguments.write(r.meanStandardError.flatMap { $0 }, to: out_mean_stderr) }
        if let out_sigma { Arguments.write(r.sigma.flatMap(\.elements), to: out_sigma) }
        if let out_sigma_stderr { Arguments.write(r.sigmaStandardError.flatMap(\.elements), to: out_sigma_stderr) }
        if let out_trace { Arguments.write(r.trace, to: out_trace) }
        if let out_trace_stderr { Arguments.write(r.traceStandardError, to: out_trace_stderr) }
        if let out_train_loss { Arguments.write(r.trainLoss, to: out_train_loss) }
        if let out_train_loss_stderr { Arguments.write(r.trainLossStandardError, to: out_train_loss_stderr) }
        summary?.write(sgdnoise_scheduled_run_summary(
            size: MemoryLayout<sgdnoise_scheduled_run_summary>.size, chains_used: Int64(r.chains),
            diverged: r.diverged ? 1 : 0))
    }
}

/// Frees a simulation handle. NULL, an already freed handle and a handle of another kind are
/// ignored (never a crash). The handle must not be used afterwards.
@c public func sgdnoise_simulation_free(_ simulation: OpaquePointer?) {
    Handles.free(simulation, as: SimulationHandle.self)
}
