/// How a minibatch of S indices is drawn from the N training samples [Def 2].
public enum Sampling: Sendable, Equatable {
    /// S independent uniform indices (repeats allowed).
    case withReplacement
    /// S distinct indices (requires 1 ≤ S ≤ N).
    case withoutReplacement

    /// The factor f with C = f · (M2 − ḡḡᵀ) [Prop 1]:
    /// 1/S with replacement, (N − S) / (S (N − 1)) without (0 at S = N, including N = 1).
    /// - Throws: `invalidArgument` when S < 1, N < 1, or S > N without replacement.
    public func noiseFactor(sampleCount n: Int, batchSize s: Int) throws -> Double {
        try Validation.batchSize(s, sampleCount: n, sampling: self)
        switch self {
        case .withReplacement:
            return 1 / Double(s)
        case .withoutReplacement:
            if s == n { return 0 }
            return Double(n - s) / (Double(s) * Double(n - 1))
        }
    }
}
