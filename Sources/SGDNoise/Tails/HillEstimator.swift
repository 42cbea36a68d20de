#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Samples of a heavy-tailed positive law (P(X > x) ~ x^{−α}), sorted largest first: what the
/// Hill estimator of α, the Hill plot and the empirical survival function read (docs/theory.md §6).
///
/// The simulator's tail index, `sgdnoise-cli reproduce fig2` and any caller with samples of its
/// own use this one implementation.
public struct TailSamples: Sendable {
    /// The positive finite samples, in descending order (non-positive and non-finite ones are
    /// dropped).
    public let descending: [Double]

    /// Sorts the positive finite `samples`.
    public init(_ samples: [Double]) {
        descending = samples.filter { $0 > 0 && $0.isFinite }.sorted(by: >)
    }

    /// The number n of samples kept.
    public var count: Int { descending.count }

    /// The Hill estimate α̂ = k / Σ_{i<k} log(X_(i) / X_(k)) over the k largest order statistics
    /// X_(0) ≥ X_(1) ≥ …: NaN unless 2 ≤ k < n, +∞ when the k largest all equal X_(k).
    public func hillIndex(orderStatistics k: Int) -> Double {
        Self.hillIndex(descending, orderStatistics: k)
    }

    /// The Hill estimate with k = ⌊√n⌋ (at least 10) order statistics, the simulator's choice;
    /// (NaN, 0) for fewer than 100 samples.
    public func hillIndex() -> (index: Double, orderStatistics: Int) {
        Self.hillIndex(largest: descending, sampleCount: descending.count)
    }

    /// k + 1 for the k of `hillIndex()` on n samples: how many of the largest samples it reads.
    static func orderStatisticsRead(sampleCount n: Int) -> Int {
        max(10, Int(Double(n).squareRoot())) + 1
    }

    /// `hillIndex()` of n positive finite samples from their largest ones only: `largest` holds
    /// the min(n, `orderStatisticsRead(sampleCount: n)`) largest in descending order (or more).
    /// The same number, bit for bit, as from all n sorted.
    static func hillIndex(largest: [Double], sampleCount n: Int) -> (index: Double, orderStatistics: Int) {
        guard n >= 100 else { return (.nan, 0) }
        let k = max(10, Int(Double(n).squareRoot()))
        return (k < n ? hillIndex(largest, orderStatistics: k) : .nan, k)
    }

    /// α̂ = k / Σ_{i<k} log(X_(i) / X_(k)) over `descending` (NaN unless 2 ≤ k < its count).
    private static func hillIndex(_ descending: [Double], orderStatistics k: Int) -> Double {
        guard k >= 2, k < descending.count else { return .nan }
        let threshold = descending[k]
        var sum = 0.0
        for i in 0..<k { sum += log(descending[i] / threshold) }
        guard sum > 0 else { return .infinity }
        return Double(k) / sum
    }

    /// The Hill plot: the estimate at up to `points` distinct k, log-spaced from `smallest` to
    /// `largest` (rounded; those ≥ n are left out). A plateau in k is the index; a drift means the
    /// power law has not set in.
    public func hillPlot(smallest: Int, largest: Int, points: Int) -> [(orderStatistics: Int, index: Double)] {
        guard smallest >= 1, largest >= smallest, points >= 1 else { return [] }
        var out: [(orderStatistics: Int, index: Double)] = []
        let ratio = Double(largest) / Double(smallest)
        for i in 0..<points {
            let exponent = points == 1 ? 0 : Double(i) / Double(points - 1)
            let k = Int((Double(smallest) * pow(ratio, exponent)).rounded())
            if k <= (out.last?.orderStatistics ?? 0) || k >= descending.count { continue }
            out.append((k, hillIndex(orderStatistics: k)))
        }
        return out
    }

    /// P(X > x): the fraction of the samples above `x`.
    public func survival(at x: Double) -> Double {
        guard !descending.isEmpty else { return .nan }
        var lo = 0, hi = descending.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if descending[mid] > x { lo = mid + 1 } else { hi = mid }
        }
        return Double(lo) / Double(descending.count)
    }

    /// The survival function at `points` x log-spaced from the median to the largest sample,
    /// where a power law shows as a straight line on log-log axes (empty for fewer than 11
    /// samples).
    public func survivalCurve(points: Int) -> [(x: Double, survival: Double)] {
        let n = descending.count
        guard n > 10, points >= 2 else { return [] }
        let lower = descending[n / 2], upper = descending[0]
        return (0..<points).map { i in
            let x = lower * pow(upper / lower, Double(i) / Double(points - 1))
            return (x, survival(at: x))
        }
    }
}

/// The Hill estimator of the tail index α of positive samples (P(X > x) ~ x^{−α}) with
/// k = ⌊√n⌋ order statistics (at least 10): `TailSamples(samples).hillIndex()`. Returns
/// (NaN, 0) for fewer than 100 positive samples.
public func hillTailIndex(_ samples: [Double]) -> (index: Double, orderStatistics: Int) {
    TailSamples(samples).hillIndex()
}
