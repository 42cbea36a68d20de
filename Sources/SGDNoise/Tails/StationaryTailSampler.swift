/// Samples |w| from the stationary law of one-dimensional SGD on Gaussian linear regression with
/// label noise and teacher 0 (docs/theory.md §6): the law whose tail index `tailIndex(...)` predicts.
///
/// The minibatch gradient is exactly w·aχ²_S/S − (σ/S)√(aχ²_S)·z, so each step is the Kesten
/// recursion
///
///     w′ = (1 − (λa/S)χ²_S) w + (λσ/S)√(aχ²_S) z,
///
/// with χ²_S and z drawn by the simulator's generators (xoshiro256**, ziggurat normals,
/// Marsaglia–Tsang gamma). Much cheaper per step than `simulate(_:)` in one dimension, so it
/// reaches the far tail; chain c uses the c-th stream of `seed`, chains run on all cores, and the
/// result does not depend on the thread count.
///
/// - Parameters:
///   - a: the curvature a > 0; `learningRate`: λ > 0; `batchSize`: S ≥ 1;
///     `noiseVariance`: σ² ≥ 0.
///   - steps: recorded steps per chain; `burnIn`: steps discarded first (default `steps / 10`);
///     `chains`: independent chains started at w = 0; `thin`: keep every `thin`-th step.
/// - Returns: `chains × (steps / thin)` samples of |w|, chain after chain. Past the stability
///   edge (E log|1 − (λa/S)χ²_S| ≥ 0) they grow without bound.
/// - Throws: `invalidArgument` for a bad value, `outOfMemory` beyond 10⁹ samples.
public func sampleStationaryTail(
    a: Double, learningRate: Double, batchSize: Int, noiseVariance: Double,
    steps: Int, burnIn: Int? = nil, chains: Int, thin: Int = 1, seed: UInt64
) throws -> [Double] {
    guard a.isFinite, a > 0 else { throw SGDNoiseError.invalidArgument("a must be a finite positive number, got \(a)") }
    try Validation.learningRate(learningRate)
    try Validation.batchSize(batchSize)
    try Validation.nonNegative(noiseVariance, name: "noiseVariance")
    guard steps >= 1 else { throw SGDNoiseError.invalidArgument("steps must be at least 1, got \(steps)") }
    guard chains >= 1 else { throw SGDNoiseError.invalidArgument("chains must be at least 1, got \(chains)") }
    guard thin >= 1 else { throw SGDNoiseError.invalidArgument("thin must be at least 1, got \(thin)") }
    let burn = burnIn ?? steps / 10
    guard burn >= 0 else { throw SGDNoiseError.invalidArgument("burn_in must be non-negative, got \(burn)") }
    let perChain = steps / thin
    guard Double(perChain) * Double(chains) <= 1e9, burn <= Int.max - steps else {
        throw SGDNoiseError.outOfMemory("\(chains) chains × \(perChain) samples exceed the 10⁹ samples supported")
    }
    var samples = [Double](repeating: 0, count: perChain * chains)
    let s = Double(batchSize)
    let shrink = learningRate * a / s, kick = learningRate * noiseVariance.squareRoot() / s
    let tables = Ziggurat.shared
    samples.withUnsafeMutableBufferPointer { out in
        let shared = UnsafeShared(out.baseAddress)
        parallelWorkers(chains) { c in
            guard let base = shared.value else { return }
            var random = Xoshiro256StarStar(seed: seed, stream: c)
            var w = 0.0
            var written = 0
            for t in 0..<(burn + steps) {
                let chi2 = random.chiSquare(batchSize, tables)
                w = (1 - shrink * chi2) * w + kick * (a * chi2).squareRoot() * random.normal(tables)
                if t >= burn && (t - burn) % thin == 0 && written < perChain {
                    base[c * perChain + written] = abs(w)
                    written += 1
                }
            }
        }
    }
    return samples
}
