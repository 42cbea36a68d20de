import SGDNoise

/// The minibatch noise covariance by its definition [Prop 1], with explicit loops.
enum NoiseDefinition {
    /// f = 1/S with replacement, (N − S)/(S(N − 1)) without (0 when S = N, including N = 1).
    static func factor(samples n: Int, batchSize s: Int, sampling: Sampling) -> Double {
        switch sampling {
        case .withReplacement: return 1 / Double(s)
        case .withoutReplacement: return s == n ? 0 : Double(n - s) / (Double(s) * Double(n - 1))
        case .epochShuffling: preconditionFailure("epoch shuffling has no closed-form factor")
        }
    }

    /// C = f (M2 − ḡḡᵀ), M2 = (1/N) Σ g_i g_iᵀ, ḡ = (1/N) Σ g_i, and an entrywise bound on the
    /// rounding of the comparison: the uncentred sums err by at most γ_{N+2}(P_jk + |ḡ_j||ḡ_k|),
    /// P_jk = (1/N) Σ |g_ij g_ik|, and a centred evaluation by γ_{N+2} (1/N) Σ |c_ij c_ik|
    /// (c_i = g_i − ḡ); the bound is f times twice their sum, plus f·u·|M2 − ḡḡᵀ| for the final
    /// scaling.
    static func covariance(_ g: [[Double]], batchSize s: Int, sampling: Sampling) -> (c: Matrix, bound: Matrix) {
        let n = g.count, d = g[0].count
        let f = factor(samples: n, batchSize: s, sampling: sampling)
        var mean = [Double](repeating: 0, count: d)
        for row in g { for j in 0..<d { mean[j] += row[j] } }
        for j in 0..<d { mean[j] /= Double(n) }
        var m2 = Ref.zeros(d, d), absM2 = Ref.zeros(d, d), absCentred = Ref.zeros(d, d)
        for row in g {
            for j in 0..<d {
                for k in 0..<d {
                    m2[j, k] += row[j] * row[k]
                    absM2[j, k] += abs(row[j] * row[k])
                    absCentred[j, k] += abs((row[j] - mean[j]) * (row[k] - mean[k]))
                }
            }
        }
        var c = Ref.zeros(d, d), bound = Ref.zeros(d, d)
        let gamma = Ref.gamma(n + 2)
        for j in 0..<d {
            for k in 0..<d {
                let moment = m2[j, k] / Double(n) - mean[j] * mean[k]
                c[j, k] = f * moment
                let rounding = gamma * (absM2[j, k] / Double(n) + abs(mean[j] * mean[k]) + absCentred[j, k] / Double(n))
                bound[j, k] = f * (2 * rounding + Ref.u * abs(moment))
            }
        }
        return (c, bound)
    }

    /// Gaussian per-sample gradients g_i = m + A z_i with a random mean m (entries in [−2, 2]) and a
    /// random mixing A, so that the covariance has sizeable off-diagonal entries.
    static func randomGradients(samples n: Int, dimension d: Int, seed: UInt64) -> [[Double]] {
        var rng = SeededGenerator(seed: seed)
        let mean = rng.uniformArray(d, -2, 2)
        let mixing = rng.gaussianMatrix(d, d)
        return (0..<n).map { _ in
            let z = (0..<d).map { _ in rng.normal() }
            return (0..<d).map { j in mean[j] + (0..<d).reduce(0) { $0 + mixing[j, $1] * z[$1] } }
        }
    }

    /// The largest violation max(|observed − expected| − bound) over the entries, with the entry.
    static func worstEntry(observed: [Double], expected: [Double], bound: [Double]) -> (excess: Double, index: Int, error: Double) {
        var worst = (excess: -Double.infinity, index: 0, error: 0.0)
        for k in expected.indices {
            let e = abs(observed[k] - expected[k])
            if e - bound[k] > worst.excess { worst = (e - bound[k], k, e) }
        }
        return worst
    }
}
