/// The data a simulated SGD run sees (docs/theory.md §1, §4, §4.1).
public enum SimulationData: Sendable {
    /// Online linear regression (N → ∞): fresh x ~ N(0, A) every sample, labels
    /// y = uᵀx + ε with Var ε = `noiseVariance`; with `inputNoise` B the model sees x + ξ,
    /// ξ ~ N(0, B). `u` (the teacher) defaults to zero.
    case gaussian(a: Matrix, u: [Double]?, noiseVariance: Double, inputNoise: Matrix?)
    /// A finite dataset: rows of `x` (N × D) with labels `y`, minibatches drawn by `sampling`.
    /// `u` (the teacher, optional) defines the test loss ½(w − u)ᵀÂ(w − u), Â = XᵀX/N.
    case dataset(x: Matrix, y: [Double], sampling: Sampling, u: [Double]?)
}

/// A Monte-Carlo SGD experiment: SGD with momentum on linear regression, exactly as in
/// docs/theory.md §1 (ĝ_t the minibatch-mean gradient of ½(wᵀx − y)² plus Γw; m_t = μm_{t−1} + ĝ_t;
/// w_t = w_{t−1} − Λm_t), started at the stationary mean w*.
public struct SimulationSpec: Sendable {
    /// The data SGD trains on: online Gaussian linear regression (N → ∞) or a finite dataset. Its
    /// dimension D fixes the size of every matrix below.
    public var data: SimulationData
    /// Γ, the L2 weight decay (nil: none).
    public var weightDecay: Matrix?
    /// The learning rate: a scalar λ > 0 (Λ = λI), a positive diagonal, or a D × D symmetric
    /// positive-definite matrix Λ [Def 2]. Past the critical learning rate λ* (docs/theory.md §6)
    /// there is no stationary law; a chain that blows up is reported in the result (`diverged`),
    /// not thrown.
    public var learningRate: LearningRate
    /// The batch size S ≥ 1 (and S ≤ N for a dataset sampled without replacement): ĝ_t is the mean
    /// of S per-sample gradients.
    public var batchSize: Int
    /// The momentum μ ∈ [0, 1) of m_t = μm_{t−1} + ĝ_t (0: plain SGD).
    public var momentum: Double
    /// Steps recorded per chain, after the burn-in.
    public var steps: Int
    /// Steps discarded per chain first (default: steps / 10).
    public var burnIn: Int
    /// Independent chains, spread over the cores.
    public var chains: Int
    /// The seed: chain c draws from the xoshiro256** stream c jumps after it, so one seed gives
    /// bit-identical results on any machine and thread count.
    public var seed: UInt64
    /// Worker threads (nil: the machine's cores). Results do not depend on it.
    public var threads: Int?

    /// A run of `chains` chains of `steps` recorded steps each, after `burnIn` discarded ones (nil:
    /// steps / 10). Nothing is checked here: `simulate(_:progress:)` checks every field (S ≥ 1,
    /// μ ∈ [0, 1), steps ≥ 1, burnIn ≥ 0, chains ≥ 1, threads ≥ 1, the shapes against D).
    public init(
        data: SimulationData, weightDecay: Matrix? = nil, learningRate: LearningRate, batchSize: Int,
        momentum: Double = 0, steps: Int, burnIn: Int? = nil, chains: Int = 1, seed: UInt64 = 0, threads: Int? = nil
    ) {
        self.data = data
        self.weightDecay = weightDecay
        self.learningRate = learningRate
        self.batchSize = batchSize
        self.momentum = momentum
        self.steps = steps
        self.burnIn = burnIn ?? steps / 10
        self.chains = chains
        self.seed = seed
        self.threads = threads
    }
}

/// What a simulation measured.
public struct SimulationResult: Sendable {
    /// The stationary mean of w.
    public let mean: [Double]
    /// Σ, the covariance of w around its mean.
    public let sigma: Matrix
    /// The standard error of each entry of Σ, from batch means over time and across chains
    /// (honest for autocorrelated samples when batches are much longer than the correlation time).
    public let sigmaStandardError: Matrix
    /// The measured gradient-noise covariance E[(ĝ − ∇L(w))(ĝ − ∇L(w))ᵀ].
    public let noise: Matrix
    /// E[L(w)], the training objective (regulariser included).
    public let trainLoss: Double
    /// E[½(w − u)ᵀA(w − u)] (A = Â for a dataset; NaN for a dataset without teacher).
    public let testLoss: Double
    /// Hill estimate of the tail index of |w − w*| (NaN when too few samples).
    public let tailIndex: Double
    /// The number of upper order statistics the Hill estimate used.
    public let tailOrderStatistics: Int
    /// True when the tail index is ≤ 4: the fourth moment may not exist, so the sample
    /// variance converges slowly and `sigmaStandardError` is not trustworthy.
    public let tailUnreliable: Bool
    /// True when an iterate became non-finite or exploded (‖w − w*‖ > 1e30); estimates are NaN.
    public let diverged: Bool
    /// The first step (after burn-in counting from 0 at the start) at which a chain diverged.
    public let divergedAtStep: Int?
    /// True when the progress callback asked to stop; estimates use the steps completed.
    public let cancelled: Bool
    /// Recorded steps summed over chains.
    public let stepsCompleted: Int
}

extension SimulationData {
    /// D: the number of parameters (A's order, or X's columns).
    var featureDimension: Int {
        switch self {
        case .gaussian(let a, _, _, _): a.rows
        case .dataset(let x, _, _, _): x.columns
        }
    }
}
