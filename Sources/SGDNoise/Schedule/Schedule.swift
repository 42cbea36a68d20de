/// The hyperparameters of SGD step by step: a learning rate λ_t, a batch size S_t and a momentum
/// μ_t for each update t = 1…T (docs/theory.md §9).
///
/// Entry k of each array is the value used by update k + 1, i.e. by
///
///     ĝ_{k+1} = (1/S_{k+1}) Σ_{i∈B_{k+1}} ∇ℓ_i(w_k),  m_{k+1} = μ_{k+1} m_k + ĝ_{k+1},  w_{k+1} = w_k − λ_{k+1} m_{k+1}
///
/// (docs/conventions.md: PyTorch's momentum convention, batch-mean gradients). The three arrays
/// have the same length `steps`: that is also the C representation (three arrays of length
/// `steps`). Build one from scalars, from per-step arrays, or from the usual shapes
/// (`Schedule.Shape`, `Schedule.BatchSizeShape`: step decay, milestones, exponential, cosine,
/// linear warm-up, batch-size ramps).
///
/// Mathematical properties: λ_t = 0 is allowed (the update leaves w and the momentum-free moments
/// unchanged; with momentum the buffer still decays); every λ_t is finite and ≥ 0, every S_t ≥ 1,
/// every μ_t ∈ [0, 1).
public struct Schedule: Sendable, Equatable {
    /// λ_t, t = 1…T: each finite and ≥ 0.
    public let learningRates: [Double]
    /// S_t, t = 1…T: each ≥ 1.
    public let batchSizes: [Int]
    /// μ_t, t = 1…T: each in [0, 1).
    public let momenta: [Double]

    /// The number of updates T.
    public var steps: Int { learningRates.count }

    /// A schedule from its three per-step arrays (all of length T ≥ 1).
    /// - Throws: `invalidArgument` naming the argument (`learningRate`, `batchSize`, `momentum`)
    ///   and the first bad step, or when the lengths differ or are zero.
    public init(learningRates: [Double], batchSizes: [Int], momenta: [Double]) throws(SGDNoiseError) {
        let t = learningRates.count
        guard t >= 1 else { throw .invalidArgument("a schedule needs at least one step, got 0 learning rates") }
        guard batchSizes.count == t, momenta.count == t else {
            throw .invalidArgument(
                "a schedule's arrays must have the same length: \(t) learning rates, \(batchSizes.count) batch sizes, \(momenta.count) momenta")
        }
        if let k = learningRates.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
            throw .invalidArgument("learningRate must be finite and non-negative at every step, got \(learningRates[k]) at step \(k)")
        }
        if let k = batchSizes.firstIndex(where: { $0 < 1 }) {
            throw .invalidArgument("batchSize must be at least 1 at every step, got \(batchSizes[k]) at step \(k)")
        }
        if let k = momenta.firstIndex(where: { !($0.isFinite && $0 >= 0 && $0 < 1) }) {
            throw .invalidArgument("momentum must lie in [0, 1) at every step, got \(momenta[k]) at step \(k)")
        }
        self.learningRates = learningRates
        self.batchSizes = batchSizes
        self.momenta = momenta
    }

    /// A schedule of `steps` updates whose three hyperparameters follow the given shapes.
    ///
    /// - Parameters:
    ///   - steps: T ≥ 1.
    ///   - learningRate: the shape of λ_t (e.g. `.stepDecay(initial: 0.1, factor: 0.1, every: 1000)`).
    ///   - batchSize: the shape of S_t (default: constant 1).
    ///   - momentum: the shape of μ_t (default: constant 0).
    /// - Throws: `invalidArgument` for a bad shape or a value out of range at some step.
    public init(
        steps: Int, learningRate: Shape, batchSize: BatchSizeShape = .constant(1), momentum: Shape = .constant(0)
    ) throws(SGDNoiseError) {
        guard steps >= 1 else { throw .invalidArgument("steps must be at least 1, got \(steps)") }
        try self.init(
            learningRates: learningRate.values(steps: steps, name: "learningRate"),
            batchSizes: batchSize.values(steps: steps),
            momenta: momentum.values(steps: steps, name: "momentum"))
    }

    /// The constant schedule λ_t = λ, S_t = S, μ_t = μ for T = `steps` updates.
    /// - Throws: `invalidArgument` for λ < 0, S < 1, μ ∉ [0, 1) or steps < 1.
    public static func constant(learningRate: Double, batchSize: Int, momentum: Double = 0, steps: Int) throws(SGDNoiseError) -> Schedule {
        try Schedule(steps: steps, learningRate: .constant(learningRate), batchSize: .constant(batchSize),
                     momentum: .constant(momentum))
    }

    /// The hyperparameters of update t (1-based): (λ_t, S_t, μ_t).
    public func hyperparameters(atStep t: Int) -> (learningRate: Double, batchSize: Int, momentum: Double) {
        (learningRates[t - 1], batchSizes[t - 1], momenta[t - 1])
    }

    /// The last update t at which some hyperparameter differs from that of update t − 1 (1 when
    /// the schedule is constant): from here on the hyperparameters are those of the last update.
    public var lastChange: Int {
        var k = steps - 1
        while k > 0, learningRates[k - 1] == learningRates[k], batchSizes[k - 1] == batchSizes[k],
              momenta[k - 1] == momenta[k] {
            k -= 1
        }
        return k + 1
    }
}
