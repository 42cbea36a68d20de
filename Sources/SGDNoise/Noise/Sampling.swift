/// How a minibatch of S indices is drawn from the N training samples [Def 2]: one type for the
/// closed forms (the noise covariance C and the predictions built on it) and for the simulator.
public enum Sampling: Sendable, Equatable {
    /// S independent uniform indices (repeats allowed).
    case withReplacement
    /// S distinct indices, drawn independently at every step (requires 1 ≤ S ≤ N).
    case withoutReplacement
    /// Epoch shuffling, what practitioners do: the indices run through a fresh random
    /// permutation of 0..<N each epoch, S at a time (a batch may straddle two epochs). The
    /// batches of one epoch are dependent, so no noise covariance describes it: `noiseFactor`
    /// throws; `simulate(_:)` runs it and `finiteDataset(sampling: .epochShuffling)` predicts it
    /// (docs/theory.md §4.2).
    case epochShuffling

    /// The factor f with C = f · (M2 − ḡḡᵀ) [Prop 1]:
    /// 1/S with replacement, (N − S) / (S (N − 1)) without (0 at S = N, including N = 1).
    /// - Throws: `invalidArgument` when S < 1, N < 1, S > N without replacement, or for
    ///   `.epochShuffling` (no closed form; the covariance of one batch that does not straddle
    ///   two epochs is the `.withoutReplacement` one).
    public func noiseFactor(sampleCount n: Int, batchSize s: Int) throws -> Double {
        try Validation.batchSize(s, sampleCount: n, sampling: self)
        switch self {
        case .withReplacement:
            return 1 / Double(s)
        case .withoutReplacement:
            if s == n { return 0 }
            return Double(n - s) / (Double(s) * Double(n - 1))
        case .epochShuffling:
            throw SGDNoiseError.invalidArgument(
                "sampling: epoch shuffling has no closed-form noise covariance (the batches of an epoch are dependent); "
                    + "simulate it, or use without replacement for the covariance of a single batch")
        }
    }
}
