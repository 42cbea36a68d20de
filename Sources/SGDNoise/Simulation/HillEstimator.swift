#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The Hill estimator of the tail index α of positive samples (P(X > x) ~ x^{−α}):
/// α̂ = k / Σ_{i<k} log(X_(i) / X_(k)) over the k largest order statistics X_(0) ≥ X_(1) ≥ …,
/// with k = ⌊√n⌋ (at least 10). Returns (NaN, 0) for fewer than 100 positive samples.
public func hillTailIndex(_ samples: [Double]) -> (index: Double, orderStatistics: Int) {
    let positive = samples.filter { $0 > 0 && $0.isFinite }.sorted(by: >)
    let n = positive.count
    guard n >= 100 else { return (.nan, 0) }
    let k = max(10, Int(Double(n).squareRoot()))
    let threshold = positive[k]
    var sum = 0.0
    for i in 0..<k { sum += log(positive[i] / threshold) }
    guard sum > 0 else { return (.infinity, k) }
    return (Double(k) / sum, k)
}
