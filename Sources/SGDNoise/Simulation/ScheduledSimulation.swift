#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What Monte-Carlo SGD measured at the recorded steps of a schedule, across independent chains
/// (docs/theory.md §9): ensemble estimates of the transient moments, each with the standard
/// error of a mean of independent chains.
public struct ScheduledSimulationResult: Sendable {
    /// The recorded steps t (0: the start).
    public let steps: [Int]
    /// E[w_t] (the chains' average) at each recorded step.
    public let mean: [[Double]]
    /// The standard error of each entry of `mean`.
    public let meanStandardError: [[Double]]
    /// Σ_t = cov(w_t) across chains (divisor n − 1).
    public let sigma: [Matrix]
    /// The standard error of each entry of Σ_t (sd of (w_i − w̄_i)(w_j − w̄_j) over chains / √n).
    public let sigmaStandardError: [Matrix]
    /// Tr Σ_t and its standard error.
    public let trace: [Double]
    /// The standard error of `trace`.
    public let traceStandardError: [Double]
    /// E[L(w_t)] (the training objective at each chain's w_t, averaged) and its standard error.
    public let trainLoss: [Double]
    /// The standard error of `trainLoss`.
    public let trainLossStandardError: [Double]
    /// E[½(w_t − u)ᵀA(w_t − u)] and its standard error (NaN for a dataset without teacher).
    public let testLoss: [Double]
    /// The standard error of `testLoss`.
    public let testLossStandardError: [Double]
    /// The number of chains.
    public let chains: Int
    /// True when some chain's iterate became non-finite or exploded (‖w − w*‖ > 1e30); the
    /// estimates then cover the chains that did not.
    public let diverged: Bool
}

/// Monte-Carlo SGD following a schedule: `spec.chains` independent chains from w₀ (m₀ = 0), each
/// running updates t = 1…T with
///
///     ĝ_t = (1/S_t) Σ_{i∈B_t} ∇ℓ_i(w_{t−1}) + Γw_{t−1},  m_t = μ_t m_{t−1} + ĝ_t,  w_t = w_{t−1} − λ_t Λ m_t,
///
/// where Λ = `spec.learningRate` (pass `.scalar(1)` for the schedule's λ_t itself, or a matrix for
/// λ_tΛ). `spec.batchSize`, `spec.momentum`, `spec.steps` and `spec.burnIn` are not used (the
/// schedule gives them); data, weight decay, chains, seed and threads are. The state of every
/// chain is read at the recorded steps; the estimates are averages over chains, so their standard
/// errors are those of means of independent samples. The checks against `learningCurve` use it
/// (docs/theory.md §9).
///
/// - Parameters:
///   - record: increasing steps in 0…T (nil: T only).
///   - w0: the start (nil: w* of the data, as `simulate` starts).
/// - Throws: what `simulate` throws for a bad spec; `invalidArgument` for a bad record, w₀, or a
///   batch size above N for a dataset sampled without replacement.
public func simulate(
    _ spec: SimulationSpec, schedule: Schedule, record: [Int]? = nil, w0: [Double]? = nil
) throws -> ScheduledSimulationResult {
    var checked = spec
    (checked.batchSize, checked.momentum, checked.steps, checked.burnIn) = (1, 0, 1, 0)
    if case .dataset(let x, _, let sampling, _) = spec.data {
        for s in Set(schedule.batchSizes) { try Validation.batchSize(s, sampleCount: x.rows, sampling: sampling) }
    }
    let problem = try PreparedSimulation(checked)
    let d = problem.dimension
    let steps = try recordedSteps(record ?? [schedule.steps], steps: schedule.steps)
    let start = w0 ?? problem.wStar
    guard start.count == d, start.allSatisfy(\.isFinite) else {
        throw SGDNoiseError.invalidArgument("w0 must have \(d) finite entries, got \(start.count)")
    }
    let startWorking = problem.basis?.apply(start) ?? start
    let chain = SGDChain(problem: problem, burnIn: 0, steps: 1, batches: 1, tailStride: 1, tailKept: 1)
    let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    let workers = max(1, min(spec.threads ?? max(cores, 1), spec.chains))
    // Chain c's stream is c jumps after the seed's: made one jump apart here (O(chains) jumps in
    // all rather than O(chains²)).
    var streams = [Xoshiro256StarStar]()
    streams.reserveCapacity(spec.chains)
    var stream = Xoshiro256StarStar(seed: spec.seed)
    for _ in 0..<spec.chains {
        streams.append(stream)
        stream.jump()
    }
    let generators = streams
    // Each chain's w at each recorded step (working basis), or nil when it diverged.
    var states = [[Double]?](repeating: nil, count: spec.chains)
    states.withUnsafeMutableBufferPointer { out in
        let shared = UnsafeShared(out.baseAddress!)
        let nextChain = NextIndex()
        parallelWorkers(workers) { _ in
            while true {
                let c = nextChain.take()
                if c >= spec.chains { return }
                let loop = ScheduledLoop(
                    problem: problem, schedule: schedule, record: steps, start: startWorking,
                    rng: generators[c])
                shared.value[c] = chain.withGradient(loop)
            }
        }
    }
    return scheduledEstimates(problem: problem, spec: checked, steps: steps, states: states)
}

/// One chain of a scheduled simulation: w at each recorded step, flattened (nil on divergence).
private struct ScheduledLoop: SGDChain.Body {
    let problem: PreparedSimulation
    let schedule: Schedule
    let record: [Int]
    let start: [Double]
    let rng: Xoshiro256StarStar

    func run<Gradient: MinibatchGradient, Dimension: ChainDimension>(
        _ source: Gradient, dimension: Dimension, arena: ChainArena
    ) -> [Double]? where Gradient.Vector == Dimension.Vector {
        var gradient = source
        var random = rng
        var state = ChainState(problem: problem, dimension: dimension, arena: arena)
        let d = dimension.count
        for i in 0..<d { state.w[i] = start[i] }
        var out = [Double]()
        out.reserveCapacity(record.count * d)
        var next = 0
        if record[0] == 0 {
            out.append(contentsOf: start)
            next = 1
        }
        var t = 0
        while next < record.count {
            t += 1
            let (lr, s, mu) = schedule.hyperparameters(atStep: t)
            gradient.batchSize = s
            state.clearGradient()
            gradient.accumulate(at: state.w, into: &state.g, random: &random)
            state.finishGradient(scale: 1 / Double(s))
            let norm2 = state.momentumStep(momentum: mu, scale: lr)
            if !(norm2 < 1e60) { return nil }
            if record[next] == t {
                for i in 0..<d { out.append(state.w[i]) }
                next += 1
            }
        }
        return out
    }
}

/// Averages over the chains that did not diverge, with standard errors of means.
private func scheduledEstimates(
    problem: PreparedSimulation, spec: SimulationSpec, steps: [Int], states: [[Double]?]
) -> ScheduledSimulationResult {
    let d = problem.dimension
    let alive = states.compactMap { $0 }
    let n = Double(alive.count)
    func meanAndError(_ values: [Double]) -> (Double, Double) {
        let m = values.reduce(0, +) / Double(values.count)
        let v = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(max(values.count - 1, 1))
        return (m, (v / Double(values.count)).squareRoot())
    }
    var result = (mean: [[Double]](), meanSE: [[Double]](), sigma: [Matrix](), sigmaSE: [Matrix](),
                  trace: [Double](), traceSE: [Double](), train: [Double](), trainSE: [Double](),
                  test: [Double](), testSE: [Double]())
    let zero = Matrix(rows: d, columns: d)
    for k in steps.indices {
        let ws: [[Double]] = alive.map { s in
            let working = Array(s[(k * d)..<((k + 1) * d)])
            return problem.basis.map { $0.transposed.apply(working) } ?? working
        }
        let columns = (0..<d).map { i in meanAndError(ws.map { $0[i] }) }
        let mean = columns.map(\.0)
        var sigma = Matrix(rows: d, columns: d), sigmaSE = Matrix(rows: d, columns: d)
        for i in 0..<d {
            for j in 0..<d {
                let (m, e) = meanAndError(ws.map { ($0[i] - mean[i]) * ($0[j] - mean[j]) })
                sigma[i, j] = m * n / (n - 1)
                sigmaSE[i, j] = e
            }
        }
        let (trace, traceSE) = meanAndError(ws.map { w in (0..<d).reduce(0) { $0 + (w[$1] - mean[$1]) * (w[$1] - mean[$1]) } })
        let perChain = ws.map { losses(problem: problem, spec: spec, mean: $0, sigma: zero) }
        let train = meanAndError(perChain.map(\.0)), test = meanAndError(perChain.map(\.1))
        result.mean.append(mean)
        result.meanSE.append(columns.map(\.1))
        result.sigma.append(sigma)
        result.sigmaSE.append(sigmaSE)
        result.trace.append(trace * n / (n - 1))
        result.traceSE.append(traceSE)
        result.train.append(train.0)
        result.trainSE.append(train.1)
        result.test.append(test.0)
        result.testSE.append(test.1)
    }
    return ScheduledSimulationResult(
        steps: steps, mean: result.mean, meanStandardError: result.meanSE, sigma: result.sigma,
        sigmaStandardError: result.sigmaSE, trace: result.trace, traceStandardError: result.traceSE,
        trainLoss: result.train, trainLossStandardError: result.trainSE, testLoss: result.test,
        testLossStandardError: result.testSE, chains: alive.count, diverged: alive.count < states.count)
}
