/// A discrete approximation of the spectral measure of H: nodes θ_l with weights ω_l such that
///
///     Σ_l ω_l φ(θ_l) ≈ Tr φ(H) = Σ_i φ(h_i)
///
/// for smooth φ (the h_i are the P eigenvalues of H). The weights are non-negative and sum to P
/// (exactly, up to rounding, without deflation; in expectation with it).
///
/// As `SymmetricOperator.weightedSpectrum` it stands in for a spectrum in the O(D) models of
/// docs/theory.md §4 and §6: node θ_l counts ω_l times in every trace (docs/theory.md §8).
public struct WeightedSpectrum: Sendable, Equatable {
    /// The nodes θ_l (Ritz values; deflated eigenvalues first when there are any).
    public let nodes: [Double]
    /// The weights ω_l ≥ 0, one per node.
    public let weights: [Double]

    /// A spectrum from its nodes and weights (finite, weights non-negative, equal counts).
    /// - Throws: `invalidArgument` otherwise.
    public init(nodes: [Double], weights: [Double]) throws {
        guard nodes.count == weights.count else {
            throw SGDNoiseError.invalidArgument("nodes (\(nodes.count)) and weights (\(weights.count)) must have equal counts")
        }
        if let i = nodes.firstIndex(where: { !$0.isFinite }) {
            throw SGDNoiseError.invalidArgument("nodes has a non-finite entry \(nodes[i]) at \(i)")
        }
        if let i = weights.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
            throw SGDNoiseError.invalidArgument("weights must be finite and non-negative, got \(weights[i]) at \(i)")
        }
        self.nodes = nodes
        self.weights = weights
    }

    init(uncheckedNodes nodes: [Double], weights: [Double]) {
        self.nodes = nodes
        self.weights = weights
    }

    /// Σ_l ω_l, which estimates P.
    public var totalWeight: Double { weights.reduce(0, +) }

    /// Σ_l ω_l φ(θ_l), the estimate of Tr φ(H).
    public func integral(of phi: (Double) -> Double) -> Double {
        zip(nodes, weights).reduce(0) { $0 + $1.1 * phi($1.0) }
    }
}

extension SymmetricOperator {
    /// A spectrum: `.diagonal(values)` without weights, `.weightedSpectrum` with them.
    /// - Throws: `invalidArgument` when the weights are not finite and non-negative, one per value.
    public static func spectrum(_ values: [Double], weights: [Double]?) throws -> SymmetricOperator {
        guard let weights else { return .diagonal(values) }
        return .weightedSpectrum(try WeightedSpectrum(nodes: values, weights: weights))
    }
}

extension SymmetricOperator {
    /// The number of directions D: `dimension`, or Σ_l ω_l rounded up for a weighted spectrum (what
    /// the default flat tolerance 16·D·ε counts).
    public var directionCount: Int {
        guard let w = multiplicities else { return dimension }
        return Int(min(w.reduce(0, +).rounded(.up), Double(Int.max / 2)))
    }

    /// Throws `invalidArgument` when this is a weighted spectrum and the learning rate a matrix: a
    /// node stands for several directions, so only a scalar or one entry per node has a meaning.
    func requireNodewise(_ learningRate: LearningRate) throws {
        guard multiplicities != nil, case .matrix = learningRate else { return }
        throw SGDNoiseError.invalidArgument(
            "lr: with a weighted spectrum the learning rate must be a scalar or a diagonal (one entry per node), not a matrix")
    }
}
