import SGDNoise
import Testing

/// An independent check of the definition of the noise: draw minibatches, and compare the empirical
/// covariance of η = ĝ − ḡ (ĝ the minibatch mean gradient, ḡ the full one) with the library's C.
@Suite("Noise covariance: Monte Carlo over minibatches")
struct NoiseMonteCarloTests {
    /// R minibatch draws of S indices out of N (with or without replacement). Since E[η] = 0 exactly
    /// (for both samplings the minibatch mean is unbiased), the estimate of C_ab is the mean of
    /// η_a η_b, and its standard error is the sample standard deviation of η_a η_b over √R.
    /// Every entry must be within 5 standard errors of the library's C. With R = 10⁵ the relative
    /// standard error of the diagonal is about 0.5%; the two candidate factors 1/S and
    /// (N−S)/(S(N−1)) differ by 37% here (N = 20, S = 8), so swapping them would be off by dozens of
    /// standard errors: the test checks that too, so that it cannot pass for lack of power.
    @Test("Empirical minibatch covariance agrees with C within 5 standard errors", arguments: [Sampling.withReplacement, .withoutReplacement])
    func monteCarlo(sampling: Sampling) throws {
        let n = 20, d = 3, s = 8, draws = 100_000
        let g = NoiseDefinition.randomGradients(samples: n, dimension: d, seed: 21)
        let c = try noiseCovariance(gradients: Ref.matrix(g), batchSize: s, sampling: sampling)

        var fullMean = [Double](repeating: 0, count: d)
        for row in g { for j in 0..<d { fullMean[j] += row[j] / Double(n) } }

        var rng = SeededGenerator(seed: sampling == .withReplacement ? 31 : 32)
        var sum = [Double](repeating: 0, count: d * d)
        var sumSquares = [Double](repeating: 0, count: d * d)
        var indices = Array(0..<n)
        var eta = [Double](repeating: 0, count: d)
        for _ in 0..<draws {
            for j in 0..<d { eta[j] = 0 }
            for k in 0..<s {
                let i: Int
                switch sampling {
                case .withReplacement:
                    i = rng.index(n)
                case .withoutReplacement, .epochShuffling:
                    // Partial Fisher–Yates: the first S entries become a uniform S-subset.
                    let r = k + rng.index(n - k)
                    indices.swapAt(k, r)
                    i = indices[k]
                }
                for j in 0..<d { eta[j] += g[i][j] }
            }
            for j in 0..<d { eta[j] = eta[j] / Double(s) - fullMean[j] }
            for a in 0..<d {
                for b in 0..<d {
                    let p = eta[a] * eta[b]
                    sum[a * d + b] += p
                    sumSquares[a * d + b] += p * p
                }
            }
        }

        let alternative = sampling == .withReplacement
            ? NoiseDefinition.factor(samples: n, batchSize: s, sampling: .withoutReplacement)
            : NoiseDefinition.factor(samples: n, batchSize: s, sampling: .withReplacement)
        let own = NoiseDefinition.factor(samples: n, batchSize: s, sampling: sampling)
        for a in 0..<d {
            for b in 0..<d {
                let r = Double(draws)
                let estimate = sum[a * d + b] / r
                let variance = (sumSquares[a * d + b] / r - estimate * estimate) * r / (r - 1)
                let standardError = (variance / r).squareRoot()
                let z = (estimate - c[a, b]) / standardError
                #expect(
                    abs(z) < 5,
                    "\(sampling) C[\(a), \(b)]: expected \(c[a, b]), observed Monte Carlo \(estimate) ± \(standardError), z = \(z)")
                if a == b {
                    // Power: C computed with the other sampling's factor would fail by a wide margin.
                    let wrong = c[a, b] * alternative / own
                    let zWrong = (estimate - wrong) / standardError
                    #expect(abs(zWrong) > 20, "\(sampling) C[\(a), \(a)]: the wrong factor is only \(zWrong) standard errors off")
                }
            }
        }
    }
}
