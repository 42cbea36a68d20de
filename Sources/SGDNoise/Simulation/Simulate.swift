import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Monte-Carlo SGD on linear regression: the ground truth every prediction of the library is
/// checked against (docs/theory.md §1, §4, §4.1).
///
/// Runs `spec.chains` independent chains of SGD with momentum, each on its own xoshiro256**
/// stream (chain c uses the stream c jumps after the seed's), spread over the cores; the same
/// seed gives bit-identical results whatever the thread count. Online Gaussian data are
/// simulated in A's eigenbasis, where a sample costs D ziggurat normals. After the burn-in each
/// chain records w, the minibatch noise η = ĝ − ∇L(w) and the largest values of a thinned series
/// of |w − w*| for the Hill tail estimate; Σ's standard error comes from batch means (≥ 32
/// batches in all, over time and across chains).
///
/// - Parameter progress: called from the calling thread about every 0.1 s with (steps done,
///   steps in all); return `true` to cancel (the result then covers the steps completed).
/// - Throws: `invalidArgument`, `notSymmetric`, `notPositiveDefinite`, `outOfMemory` for a bad
///   spec. Divergence is reported in the result, not thrown.
public func simulate(_ spec: SimulationSpec, progress: ((Int, Int) -> Bool)? = nil) throws -> SimulationResult {
    let problem = try PreparedSimulation(spec)
    let part = runChains(problem: problem, spec: spec, chains: 0..<spec.chains, progress: progress)
    return estimate(problem: problem, spec: spec, records: part.records.compactMap { $0 }, cancelled: part.cancelled)
}

/// Runs chains `range` of the simulation `spec` describes (spec.chains in all), chain c on the
/// stream c jumps after the seed's, with the per-chain settings (batches, tail thinning) of the
/// whole run: the records are those the same chains have inside `simulate(spec)`.
func runChains(problem: PreparedSimulation, spec: SimulationSpec, chains range: Range<Int>,
               progress: ((Int, Int) -> Bool)?) -> SimulationChains {
    let batchesPerChain = max(1, min(spec.steps, 32 / spec.chains))
    let tailCap = max(1, (1 << 18) / spec.chains)
    let tailStride = max(1, spec.steps / tailCap)
    // Each chain keeps the largest of its ⌈steps / stride⌉ tail values that the Hill estimate of
    // all chains' values can read (k + 1 of at most chains × ⌈steps / stride⌉).
    let tailPerChain = (spec.steps - 1) / tailStride + 1
    let tailKept = min(tailPerChain, TailSamples.orderStatisticsRead(sampleCount: spec.chains * tailPerChain))
    let chain = SGDChain(problem: problem, burnIn: spec.burnIn, steps: spec.steps, batches: batchesPerChain,
                         tailStride: tailStride, tailKept: tailKept)
    let control = RunControl()
    let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    let workers = max(1, min(spec.threads ?? max(cores, 1), range.count))
    var records = [ChainRecord?](repeating: nil, count: range.count)
    let total = range.count * (spec.burnIn + spec.steps)
    var cancelled = false
    records.withUnsafeMutableBufferPointer { out in
        let shared = UnsafeShared(out.baseAddress!)
        let nextChain = NextIndex()
        let work: @Sendable (Int) -> Void = { _ in
            while true {
                let i = nextChain.take()
                if i >= range.count { return }
                if control.stop.load(ordering: .relaxed) && i > 0 { return }
                let c = range.lowerBound + i
                shared.value[i] = chain.run(rng: Xoshiro256StarStar(seed: spec.seed, stream: c), control: control)
            }
        }
        if let progress {
            let group = DispatchGroup()
            for k in 0..<workers { DispatchQueue.global().async(group: group) { work(k) } }
            while group.wait(timeout: .now() + .milliseconds(100)) == .timedOut {
                if progress(control.stepsDone.load(ordering: .relaxed), total) {
                    cancelled = true
                    control.stop.store(true, ordering: .relaxed)
                }
            }
            _ = progress(control.stepsDone.load(ordering: .relaxed), total)
        } else {
            parallelWorkers(workers, work)
        }
    }
    return SimulationChains(chains: range, spec: spec, records: records, cancelled: cancelled)
}

/// The records of chains `range` of the simulation `spec` describes, to be combined with the
/// other chains' records (`combineChains`) into exactly what `simulate(spec)` returns: how the
/// chains of one simulation run in several processes or on several machines (a Dask cluster),
/// bit for bit the same numbers as on one.
/// - Throws: as `simulate`, and `invalidArgument` for a range outside 0..<spec.chains.
public func simulateChains(_ spec: SimulationSpec, chains range: Range<Int>,
                           progress: ((Int, Int) -> Bool)? = nil) throws -> SimulationChains {
    guard range.lowerBound >= 0, range.upperBound <= spec.chains, !range.isEmpty else {
        throw SGDNoiseError.invalidArgument(
            "the chains to run (\(range.lowerBound)..<\(range.upperBound)) must be a nonempty part of 0..<\(spec.chains)")
    }
    return runChains(problem: try PreparedSimulation(spec), spec: spec, chains: range, progress: progress)
}

/// The result of the simulation `spec` from the records of all its chains, run in any number of
/// parts (`simulateChains`): the records are pooled in chain order, so the result is bit for bit
/// that of `simulate(spec)` (for a run that does not diverge: which chains of a diverging run
/// still start once one has diverged depends on timing, so `divergedAtStep` may differ).
/// - Throws: `invalidArgument` when a part belongs to another simulation (its fingerprint of the
///   spec differs), parts overlap, or chains are missing.
public func combineChains(_ spec: SimulationSpec, _ parts: [SimulationChains]) throws -> SimulationResult {
    let problem = try PreparedSimulation(spec)  // checks the spec before anything is sized by it
    let fingerprint = SimulationChains.fingerprint(spec)
    var records = [ChainRecord?](repeating: nil, count: spec.chains)
    var covered = [Bool](repeating: false, count: spec.chains)
    for part in parts {
        guard part.fingerprint == fingerprint, part.totalChains == spec.chains else {
            throw SGDNoiseError.invalidArgument("a part of the chains belongs to another simulation (other data, optimiser, steps or seed)")
        }
        for (i, c) in part.chains.enumerated() {
            guard !covered[c] else { throw SGDNoiseError.invalidArgument("chain \(c) is in two parts") }
            covered[c] = true
            records[c] = part.records[i]
        }
    }
    if let missing = covered.firstIndex(of: false) {
        throw SGDNoiseError.invalidArgument("chain \(missing) of \(spec.chains) is in no part: run every chain before combining")
    }
    return estimate(problem: problem, spec: spec, records: records.compactMap { $0 },
                    cancelled: parts.contains { $0.cancelled })
}

/// A shared counter handing out chain indices.
final class NextIndex: Sendable {
    private let value = Synchronization.Atomic<Int>(0)
    func take() -> Int { value.add(1, ordering: .relaxed).oldValue }
}

/// The estimates from the chains' records: Σ, the noise, the mean, their standard errors, the
/// losses and the Hill tail index (NaN everywhere when a chain diverged or too few steps ran).
private func estimate(problem: PreparedSimulation, spec: SimulationSpec, records: [ChainRecord], cancelled: Bool) -> SimulationResult {
    let d = problem.dimension
    let nanMatrix = Matrix(rows: d, columns: d, repeating: .nan)
    let divergedAt = records.compactMap(\.divergedAt).min()
    let count = records.reduce(0) { $0 + $1.count }
    if divergedAt != nil || count < 2 {
        return SimulationResult(
            mean: [Double](repeating: .nan, count: d), sigma: nanMatrix, sigmaStandardError: nanMatrix, noise: nanMatrix,
            trainLoss: .nan, testLoss: .nan, tailIndex: .nan, tailOrderStatistics: 0, tailUnreliable: true,
            diverged: divergedAt != nil, divergedAtStep: divergedAt, cancelled: cancelled, stepsCompleted: count)
    }
    let pooled = PooledRecords(records, dimension: d)
    // Back to the original basis.
    func original(_ m: Matrix) -> Matrix {
        guard let qt = problem.basis else { return m }
        return Matrix.product(Matrix.product(qt, m, transposeA: true), qt).symmetrized
    }
    let sigma = original(pooled.sigma)
    let noiseMatrix = original(pooled.noise)
    let meanShift = problem.basis.map { $0.transposed.apply(pooled.meanDeviation) } ?? pooled.meanDeviation
    let mean = zip(problem.wStar, meanShift).map { $0 + $1 }
    let stderr = batchStandardErrors(pooled.batchSigmas.map { original(Matrix(uncheckedRows: d, columns: d, elements: $0)) },
                                     dimension: d)
    let (trainLoss, testLoss) = losses(problem: problem, spec: spec, mean: mean, sigma: sigma)
    let (index, k) = TailSamples.hillIndex(largest: pooled.tailLargest.sorted(by: >), sampleCount: pooled.tailCount)
    return SimulationResult(
        mean: mean, sigma: sigma, sigmaStandardError: stderr, noise: noiseMatrix, trainLoss: trainLoss, testLoss: testLoss,
        tailIndex: index, tailOrderStatistics: k, tailUnreliable: !(index > 4), diverged: false, divergedAtStep: nil,
        cancelled: cancelled, stepsCompleted: count)
}

/// The chains' records summed in chain order (deterministic), in the working basis.
private struct PooledRecords {
    /// E[w − w*] over the recorded steps.
    let meanDeviation: [Double]
    /// Σ = E[e eᵀ] − E[e]E[e]ᵀ and the noise E[η ηᵀ].
    let sigma: Matrix
    let noise: Matrix
    /// The batch estimates of Σ of every chain.
    let batchSigmas: [[Double]]
    /// The largest values of the chains' thinned tail series |w − w*|, and the series' length.
    let tailLargest: [Double]
    let tailCount: Int

    init(_ records: [ChainRecord], dimension d: Int) {
        var sum = [Double](repeating: 0, count: d)
        var second = [Double](repeating: 0, count: d * d)
        var noise = [Double](repeating: 0, count: d * d)
        var noiseCount = 0, count = 0
        var batches: [[Double]] = []
        var tailLargest: [Double] = []
        var tailCount = 0
        for r in records {
            for i in 0..<d { sum[i] += r.sum[i] }
            for k in 0..<(d * d) {
                second[k] += r.second[k]
                noise[k] += r.noiseSecond[k]
            }
            noiseCount += r.noiseCount
            count += r.count
            batches += r.batchSigmas
            tailLargest += r.tailLargest
            tailCount += r.tailCount
        }
        let n = Double(count)
        let meanE = sum.map { $0 / n }
        var sigmaW = Matrix(rows: d, columns: d)
        var noiseW = Matrix(rows: d, columns: d)
        for i in 0..<d {
            for j in i..<d {
                let v = second[i * d + j] / n - meanE[i] * meanE[j]
                sigmaW[i, j] = v
                sigmaW[j, i] = v
                let c = noise[i * d + j] / Double(max(noiseCount, 1))
                noiseW[i, j] = c
                noiseW[j, i] = c
            }
        }
        meanDeviation = meanE
        sigma = sigmaW
        self.noise = noiseW
        batchSigmas = batches
        self.tailLargest = tailLargest
        self.tailCount = tailCount
    }
}

/// The standard error of each entry of Σ from the spread of its b batch estimates:
/// √(Var/b) with the unbiased variance (NaN for fewer than two batches).
private func batchStandardErrors(_ batches: [Matrix], dimension d: Int) -> Matrix {
    var stderr = Matrix(rows: d, columns: d, repeating: .nan)
    let b = batches.count
    guard b >= 2 else { return stderr }
    for k in 0..<(d * d) {
        var mean = 0.0
        for r in batches { mean += r.elements[k] }
        mean /= Double(b)
        var variance = 0.0
        for r in batches { variance += (r.elements[k] - mean) * (r.elements[k] - mean) }
        stderr.elements[k] = (variance / Double(b - 1) / Double(b)).squareRoot()
    }
    return stderr
}

/// E[L(w)] and E[½(w − u)ᵀA(w − u)] from the estimated mean and Σ (exact identities for quadratics).
func losses(problem: PreparedSimulation, spec: SimulationSpec, mean m: [Double], sigma: Matrix) -> (Double, Double) {
    let sig = SymmetricOperator.dense(sigma)
    var regulariser = 0.0
    if let g = spec.weightDecay {
        let gamma = SymmetricOperator.dense(g)
        regulariser = 0.5 * (gamma.bilinear(m, m) + gamma.traceProduct(sig))
    }
    switch spec.data {
    case .gaussian(let a, let teacher, let noiseVariance, let inputNoise):
        let u = teacher ?? [Double](repeating: 0, count: m.count)
        let aOp = SymmetricOperator.dense(a)
        let delta = zip(m, u).map { $0 - $1 }
        let test = 0.5 * (aOp.bilinear(delta, delta) + aOp.traceProduct(sig))
        var train = test + 0.5 * noiseVariance + regulariser
        if let b = inputNoise {
            let bOp = SymmetricOperator.dense(b)
            train += 0.5 * (bOp.bilinear(m, m) + bOp.traceProduct(sig))
        }
        return (train, test)
    case .dataset(let x, let y, _, let teacher):
        let n = Double(x.rows)
        let residual = zip(x.apply(m), y).map { $0 - $1 }
        let aHat = SymmetricOperator.dense((1 / n) * x.weightedGram(rowWeights: [Double](repeating: 1, count: x.rows)))
        let train = 0.5 * residual.reduce(0) { $0 + $1 * $1 } / n + 0.5 * aHat.traceProduct(sig) + regulariser
        guard let u = teacher, u.count == m.count else { return (train, .nan) }
        let delta = zip(m, u).map { $0 - $1 }
        return (train, 0.5 * (aHat.bilinear(delta, delta) + aHat.traceProduct(sig)))
    }
}
