import SGDNoise
import Testing

/// Epoch shuffling on a finite dataset (docs/theory.md §4.2) against exact enumeration of every
/// permutation sequence of one period (P = N/gcd(N, S) steps), with the reference's own dense
/// arithmetic (`Ref`): over a period e ↦ Φe + ψ, whose stationary mean and second moment solve a
/// D + D² linear system; the phases follow from the partial products.
@Suite("Epoch shuffling")
struct EpochShufflingTests {
    /// Phase-averaged (E[w] − w*, Cov w) of epoch-shuffled SGD, by enumeration.
    /// With momentum μ the state is (e, b), b the buffer: b ← μb + g, e ← e − λb.
    static func enumerated(x: Matrix, y: [Double], gamma: Matrix, lr: Double, batchSize s: Int,
                           momentum mu: Double = 0) -> ([Double], Matrix) {
        let n = x.rows, d = x.columns, dim = 2 * x.columns
        let k = Ref.add(Ref.scale(1 / Double(n), Ref.mul(Ref.transpose(x), x)), gamma)
        let xty = (0..<d).map { j in (0..<n).reduce(0.0) { $0 + x[$1, j] * y[$1] } / Double(n) }
        let wStar = Ref.solve(k, xty)
        func gradientParts(_ i: Int) -> (Matrix, [Double]) {  // A_i, z_i: ∇ℓ_i(w* + e) = A_i e + z_i
            let row = (0..<d).map { x[i, $0] }
            let r = zip(row, wStar).reduce(0.0) { $0 + $1.0 * $1.1 } - y[i]
            let a = Ref.add(Ref.matrix((0..<d).map { p in (0..<d).map { q in row[p] * row[q] } }), gamma)
            let gw = Ref.mul(gamma, Ref.matrix(wStar.map { [$0] }))
            return (a, (0..<d).map { row[$0] * r + gw[$0, 0] })
        }
        let parts = (0..<n).map(gradientParts)
        var g = n, b = s
        while b != 0 { (g, b) = (b, g % b) }
        let period = n / g, epochs = period * s / n
        var permutations: [[Int]] = [[]]
        for _ in 0..<n { permutations = permutations.flatMap { p in (0..<n).filter { !p.contains($0) }.map { p + [$0] } } }
        // Φ_t, ψ_t for every sequence and phase t = 0…P.
        var phis: [[Matrix]] = [], psis: [[[Double]]] = []
        var sequence = [Int](repeating: 0, count: epochs)
        while true {
            let stream = sequence.flatMap { permutations[$0] }
            var phi = Ref.identity(dim), psi = [Double](repeating: 0, count: dim)
            var ph = [phi], ps = [psi]
            for t in 0..<period {
                let batch = stream[(t * s)..<((t + 1) * s)]
                var ab = Ref.zeros(d, d), zb = [Double](repeating: 0, count: d)
                for i in batch {
                    ab = Ref.add(ab, Ref.scale(1 / Double(s), parts[i].0))
                    for p in 0..<d { zb[p] += parts[i].1[p] / Double(s) }
                }
                // b' = μb + A_B e + z_B, e' = e − λb'.
                let step = Ref.blocks(Ref.sub(Ref.identity(d), Ref.scale(lr, ab)), Ref.scale(-lr * mu, Ref.identity(d)),
                                      ab, Ref.scale(mu, Ref.identity(d)))
                phi = Ref.mul(step, phi)
                let sp = Ref.mul(step, Ref.matrix(psi.map { [$0] }))
                psi = (0..<dim).map { sp[$0, 0] + ($0 < d ? -lr * zb[$0] : zb[$0 - d]) }
                ph.append(phi)
                ps.append(psi)
            }
            phis.append(ph)
            psis.append(ps)
            var j = 0
            while j < epochs && sequence[j] == permutations.count - 1 { sequence[j] = 0; j += 1 }
            if j == epochs { break }
            sequence[j] += 1
        }
        let count = Double(phis.count)
        // Stationary m₀ = E[Φ]m₀ + E[ψ] and M₀ = E[Φ M₀ Φᵀ] + E[Φ m₀ ψᵀ + ψ m₀ᵀ Φᵀ + ψψᵀ].
        var meanPhi = Ref.zeros(dim, dim), meanPsi = [Double](repeating: 0, count: dim), kron = Ref.zeros(dim * dim, dim * dim)
        for (ph, ps) in zip(phis, psis) {
            meanPhi = Ref.add(meanPhi, Ref.scale(1 / count, ph[period]))
            for p in 0..<dim { meanPsi[p] += ps[period][p] / count }
            kron = Ref.add(kron, Ref.scale(1 / count, Ref.kron(ph[period], ph[period])))
        }
        let m0 = Ref.solve(Ref.sub(Ref.identity(dim), meanPhi), meanPsi)
        var rhs = [Double](repeating: 0, count: dim * dim)
        for (ph, ps) in zip(phis, psis) {
            let pm = Ref.mul(ph[period], Ref.matrix(m0.map { [$0] }))
            for p in 0..<dim { for q in 0..<dim {
                rhs[p * dim + q] += (pm[p, 0] * ps[period][q] + ps[period][p] * pm[q, 0] + ps[period][p] * ps[period][q]) / count
            } }
        }
        let big = Ref.solve(Ref.sub(Ref.identity(dim * dim), kron), rhs)
        let cov0 = Ref.matrix((0..<dim).map { p in (0..<dim).map { q in big[p * dim + q] - m0[p] * m0[q] } })
        var mBar = [Double](repeating: 0, count: dim), second = Ref.zeros(dim, dim)
        let weight = 1 / (count * Double(period))
        for (ph, ps) in zip(phis, psis) {
            for t in 0..<period {
                let pm = Ref.mul(ph[t], Ref.matrix(m0.map { [$0] }))
                let mt = (0..<dim).map { pm[$0, 0] + ps[t][$0] }
                for p in 0..<dim { mBar[p] += weight * mt[p] }
                let spread = Ref.mul(ph[t], cov0, Ref.transpose(ph[t]))
                second = Ref.add(second, Ref.scale(weight, Ref.add(spread, Ref.matrix(mt.map { a in mt.map { a * $0 } }))))
            }
        }
        mBar = Array(mBar.prefix(d))
        let sigma = Ref.matrix((0..<d).map { p in (0..<d).map { q in second[p, q] - mBar[p] * mBar[q] } })
        return (mBar, sigma)
    }

    @Test("A constant per-sample Hessian leaves only additive noise: exact against enumeration, straddling batches included",
          arguments: [(4, 2, 0.0), (5, 2, 0.0), (3, 2, 0.0), (4, 3, 0.0), (4, 2, 0.9), (3, 2, 0.5)])
    func additiveNoiseIsExact(n: Int, s: Int, mu: Double) throws {
        var rng = SeededGenerator(seed: UInt64(100 + 10 * n + s))
        let signs = (0..<n).map { _ in Bool.random(using: &rng) ? 1.0 : -1.0 }
        let x = try Matrix(rows: n, columns: 2, elements: signs.flatMap { [$0, 0.5 * $0] })  // x_i = ±v
        let y = rng.uniformArray(n, -1, 1)
        let gamma = try Matrix(rows: 2, columns: 2, elements: [0.3, 0.1, 0.1, 0.2])
        let lr = 0.4
        let (offset, sigma) = Self.enumerated(x: x, y: y, gamma: gamma, lr: lr, batchSize: s, momentum: mu)
        let fresh = try finiteDataset(x: x, y: y, learningRate: .scalar(lr), batchSize: s, sampling: .withoutReplacement,
                                      weightDecay: gamma, momentum: mu)
        let p = try finiteDataset(x: x, y: y, learningRate: .scalar(lr), batchSize: s, sampling: .epochShuffling,
                                  weightDecay: gamma, momentum: mu)
        guard case .dense(let got) = p.prediction.sigma, case .dense(let freshSigma) = fresh.prediction.sigma else {
            Issue.record("expected dense results"); return
        }
        #expect(Ref.relativeError(got, sigma) < 1e-10, "Σ \(got.elements) against enumerated \(sigma.elements)")
        // The control: fresh sampling is not this answer.
        #expect(Ref.relativeError(freshSigma, sigma) > 0.05)
        for j in 0..<2 {
            #expect(abs(p.prediction.mean[j] - fresh.prediction.mean[j] - offset[j]) <= 1e-12 * abs(fresh.prediction.mean[j]))
        }
    }

    @Test("With multiplicative noise the relative error of Σ and of the mean offset halves with λ")
    func errorIsFirstOrder() throws {
        var rng = SeededGenerator(seed: 7)
        let x = rng.gaussianMatrix(4, 2)
        let y = rng.uniformArray(4, -1, 1)
        var errors: [(Double, Double)] = []
        for lr in [0.04, 0.02, 0.01] {
            let (offset, sigma) = Self.enumerated(x: x, y: y, gamma: Ref.zeros(2, 2), lr: lr, batchSize: 2)
            let p = try finiteDataset(x: x, y: y, learningRate: .scalar(lr), batchSize: 2, sampling: .epochShuffling)
            let wStar = try finiteDataset(x: x, y: y, learningRate: .scalar(lr), batchSize: 2).prediction.mean
            guard case .dense(let got) = p.prediction.sigma else { Issue.record("expected a dense Σ"); return }
            let predicted = zip(p.prediction.mean, wStar).map { $0 - $1 }
            let meanError = zip(predicted, offset).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
                / offset.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
            errors.append((Ref.relativeError(got, sigma), meanError))
        }
        #expect(errors[0].0 < 0.05 && errors[0].1 < 0.05, "\(errors)")
        for i in 1..<errors.count {
            #expect(errors[i].0 < 0.6 * errors[i - 1].0 && errors[i].1 < 0.6 * errors[i - 1].1, "\(errors)")
        }
    }

    @Test("S = N is gradient descent (Σ = 0, E w = w*); matrix rates and S > N are refused")
    func limitsAndRefusals() throws {
        var rng = SeededGenerator(seed: 9)
        let x = rng.gaussianMatrix(5, 2)
        let y = rng.uniformArray(5, -1, 1)
        let p = try finiteDataset(x: x, y: y, learningRate: .scalar(0.1), batchSize: 5, sampling: .epochShuffling)
        let fresh = try finiteDataset(x: x, y: y, learningRate: .scalar(0.1), batchSize: 5)
        guard case .dense(let sigma) = p.prediction.sigma else { Issue.record("expected a dense Σ"); return }
        // Rounding only, judged against the with-replacement Σ (the problem's scale).
        guard case .dense(let scale) = fresh.prediction.sigma else { Issue.record("expected a dense Σ"); return }
        let bound = 1e-14 * scale.elements.map(abs).max()!
        #expect(sigma.elements.allSatisfy { abs($0) <= bound }, "\(sigma.elements)")
        #expect(zip(p.prediction.mean, fresh.prediction.mean).allSatisfy { abs($0 - $1) < 1e-14 })
        #expect(throws: SGDNoiseError.self) {
            try finiteDataset(x: x, y: y, learningRate: .diagonal([0.1, 0.2]), batchSize: 2, sampling: .epochShuffling)
        }
        #expect(throws: SGDNoiseError.self) {
            try finiteDataset(x: x, y: y, learningRate: .scalar(0.1), batchSize: 6, sampling: .epochShuffling)
        }
        #expect(throws: SGDNoiseError.self) {
            try criticalLearningRateDataset(x: x, batchSize: 2, sampling: .epochShuffling)
        }
    }
}
