/// A linear-regression model of docs/theory.md §4 with its own arguments: the one dispatch from a
/// model to its closed forms, which every face (Swift, the C layer, the command line) calls.
///
/// The optimiser (learning rate, batch size, momentum) is given to `predict`; the critical
/// learning rate needs only the batch size and momentum.
public enum Model: Sendable {
    /// Label noise [Lemma 1, Thm 2, Thm 3]: input covariance A, label-noise variance σ².
    case labelNoise(a: SymmetricOperator, noiseVariance: Double)
    /// Input noise [App. E.3]: the model sees x + ξ, ξ ~ N(0, B); labels from the clean x with
    /// teacher u and label-noise variance σ².
    case inputNoise(a: SymmetricOperator, b: SymmetricOperator, u: [Double], noiseVariance: Double)
    /// L2 regularisation [Prop 3, Thm 4]: teacher u, weight decay Γ (any sign with A + Γ ≻ 0),
    /// no label noise.
    case l2Regularized(a: SymmetricOperator, u: [Double], weightDecay: SymmetricOperator)
    /// High-dimensional regression [Prop 4, Thm 6]: the empirical covariance Â, α = N/D.
    case highDimensional(aHat: SymmetricOperator, alpha: Double, noiseVariance: Double)
    /// Damped Newton [Sec 6.4]: label noise with the learning rate λA⁻¹ (λ scalar).
    case dampedNewton(a: SymmetricOperator, noiseVariance: Double)
    /// Natural gradient [Sec 6.4]: the learning rate (λ/S)C⁻¹ (λ scalar), no label noise.
    case naturalGradient(a: SymmetricOperator)

    /// The models, without their arguments. Each raw value is the model's snake_case name (that of
    /// its Python function), which messages use.
    public enum Kind: String, CaseIterable, Sendable {
        /// Label noise [Lemma 1, Thm 2, Thm 3].
        case labelNoise = "label_noise"
        /// Input noise [App. E.3].
        case inputNoise = "input_noise"
        /// L2 regularisation [Prop 3, Thm 4].
        case l2Regularized = "l2_regularized"
        /// High-dimensional regression [Prop 4, Thm 6].
        case highDimensional = "high_dimensional"
        /// Damped Newton, Λ = λA⁻¹ [Sec 6.4].
        case dampedNewton = "damped_newton"
        /// Natural gradient, Λ = (λ/S)C⁻¹ [Sec 6.4].
        case naturalGradient = "natural_gradient"

        /// The paper's results the model implements.
        public var reference: String {
            switch self {
            case .labelNoise: return "Lemma 1, Thm 2, Thm 3"
            case .inputNoise: return "App. E.3"
            case .l2Regularized: return "Prop 3, Thm 4"
            case .highDimensional: return "Prop 4, Thm 6"
            case .dampedNewton, .naturalGradient: return "Sec 6.4"
            }
        }

        /// The arguments the model takes besides A and the optimiser.
        public var arguments: [Argument] {
            switch self {
            case .labelNoise, .dampedNewton: return [.noiseVariance]
            case .inputNoise: return [.inputNoise, .u, .noiseVariance]
            case .l2Regularized: return [.u, .weightDecay]
            case .highDimensional: return [.alpha, .noiseVariance]
            case .naturalGradient: return []
            }
        }

        /// Whether the learning rate must be a scalar λ (the model builds its own matrix from it).
        public var needsScalarLearningRate: Bool { self == .dampedNewton || self == .naturalGradient }
    }

    /// An argument of a model besides A and the optimiser.
    public enum Argument: String, CaseIterable, Sendable {
        /// σ², the label-noise variance.
        case noiseVariance = "noise_var"
        /// u, the teacher.
        case u
        /// Γ, the weight decay.
        case weightDecay = "weight_decay"
        /// B, the input-noise covariance.
        case inputNoise = "input_noise"
        /// α = N/D.
        case alpha
    }

    /// Which model this is.
    public var kind: Kind {
        switch self {
        case .labelNoise: return .labelNoise
        case .inputNoise: return .inputNoise
        case .l2Regularized: return .l2Regularized
        case .highDimensional: return .highDimensional
        case .dampedNewton: return .dampedNewton
        case .naturalGradient: return .naturalGradient
        }
    }

    /// A (Â for the high-dimensional model).
    public var a: SymmetricOperator {
        switch self {
        case .labelNoise(let a, _), .inputNoise(let a, _, _, _), .l2Regularized(let a, _, _), .dampedNewton(let a, _),
             .naturalGradient(let a):
            return a
        case .highDimensional(let aHat, _, _):
            return aHat
        }
    }

    /// The exact stationary prediction for SGD with this learning rate, batch size and momentum.
    ///
    /// - Throws: `unstable` past the critical learning rate (with λ*), `invalidArgument` for a
    ///   bad value (a matrix learning rate for damped Newton or natural gradient included), and
    ///   what the model's function throws.
    public func predict(learningRate: LearningRate, batchSize: Int, momentum: Double = 0) throws -> Prediction {
        switch self {
        case .labelNoise(let a, let noiseVariance):
            return try SGDNoise.labelNoise(a: a, noiseVariance: noiseVariance, learningRate: learningRate,
                                           batchSize: batchSize, momentum: momentum)
        case .inputNoise(let a, let b, let u, let noiseVariance):
            return try SGDNoise.inputNoise(a: a, b: b, u: u, learningRate: learningRate, batchSize: batchSize,
                                           noiseVariance: noiseVariance, momentum: momentum)
        case .l2Regularized(let a, let u, let weightDecay):
            return try SGDNoise.l2Regularized(a: a, u: u, weightDecay: weightDecay, learningRate: learningRate,
                                              batchSize: batchSize, momentum: momentum)
        case .highDimensional(let aHat, let alpha, let noiseVariance):
            return try SGDNoise.highDimensional(aHat: aHat, alpha: alpha, noiseVariance: noiseVariance,
                                                learningRate: learningRate, batchSize: batchSize, momentum: momentum)
        case .dampedNewton(let a, let noiseVariance):
            return try SGDNoise.dampedNewton(a: a, noiseVariance: noiseVariance, learningRate: try scalar(learningRate),
                                             batchSize: batchSize, momentum: momentum)
        case .naturalGradient(let a):
            return try SGDNoise.naturalGradient(a: a, learningRate: try scalar(learningRate), batchSize: batchSize,
                                                momentum: momentum)
        }
    }

    /// The critical learning rate λ*: the largest scalar λ with a stationary distribution (docs/theory.md
    /// §6). Input noise has label noise's λ* with A → A + B; natural gradient has none (+∞).
    public func criticalLearningRate(batchSize: Int, momentum: Double = 0) throws -> Double {
        switch self {
        case .labelNoise(let a, _):
            return try SGDNoise.criticalLearningRate(a: a, batchSize: batchSize, momentum: momentum)
        case .inputNoise(let a, let b, _, _):
            try a.validate("A")
            try b.validate("B", size: a.dimension)
            return try SGDNoise.criticalLearningRate(a: a + b, batchSize: batchSize, momentum: momentum)
        case .l2Regularized(let a, _, let weightDecay):
            return try criticalLearningRateL2(a: a, weightDecay: weightDecay, batchSize: batchSize, momentum: momentum)
        case .highDimensional(let aHat, _, _):
            return try criticalLearningRateHighDimensional(aHat: aHat, batchSize: batchSize, momentum: momentum)
        case .dampedNewton(let a, _):
            return try criticalLearningRateDampedNewton(a: a, batchSize: batchSize, momentum: momentum)
        case .naturalGradient(let a):
            try a.validate("A")
            try Validation.batchSize(batchSize)
            try Validation.momentum(momentum)
            return .infinity
        }
    }

    private func scalar(_ learningRate: LearningRate) throws -> Double {
        guard case .scalar(let l) = learningRate else {
            throw SGDNoiseError.invalidArgument("lr must be a scalar for the \(kind.rawValue) model, which builds its own learning-rate matrix")
        }
        return l
    }
}
