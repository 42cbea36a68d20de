/// The smallest batch size S at which label-noise SGD with learning rate λ has a stationary
/// distribution: the smallest S with λ < λ*(S) (docs/theory.md §6). λ*(S) grows with S towards the
/// gradient-descent edge 2(1 + μ)/a_max, so S is found by doubling and bisection.
///
/// - Throws: `unstable` (with the gradient-descent edge as the critical learning rate) when λ is
///   at or past that edge, where no batch size is stable; `invalidArgument` for a bad value.
public func smallestStableBatchSize(a: SymmetricOperator, learningRate: Double, momentum: Double = 0) throws -> Int {
    try Validation.learningRate(learningRate)
    func stable(_ s: Int) throws -> Bool { learningRate < (try criticalLearningRate(a: a, batchSize: s, momentum: momentum)) }
    if try stable(1) { return 1 }
    var unstable = 1, candidate = 2
    while !(try stable(candidate)) {
        guard candidate < 1 << 52 else {
            let edge = 2 * (1 + momentum) / (try a.eigenvalues().max() ?? 0)
            throw SGDNoiseError.unstable(
                "lr = \(learningRate) is unstable at every batch size: it is at or past the gradient-descent edge \(edge)",
                criticalLearningRate: edge)
        }
        unstable = candidate
        candidate *= 2
    }
    while candidate - unstable > 1 {
        let mid = unstable + (candidate - unstable) / 2
        if try stable(mid) { candidate = mid } else { unstable = mid }
    }
    return candidate
}
