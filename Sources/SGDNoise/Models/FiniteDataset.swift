/// The exact fluctuation of SGD on linear regression over a finite dataset, with diagnostics of
/// the iterative solve.
public struct FiniteDatasetPrediction: Sendable {
    /// Σ, C, w*, the losses (`kappa` is nil; `criticalLearningRate` is nil unless computed).
    public let prediction: Prediction
    /// Fixed-point iterations used (1 for D ≤ 8: the step that checks the direct solve).
    public let iterations: Int
    /// The final relative fixed-point step ‖X_{k+1} − X_k‖_F/‖X‖_F.
    public let residual: Double
    /// ρ of the second-moment map when it was computed (NaN when positivity certified stability).
    public let spectralRadius: Double
}

/// The second-moment problem of docs/theory.md §4.1 on a dataset, at a given learning rate.
struct FiniteDatasetProblem {
    let x: Matrix
    let aHat: Matrix
    let curvature: Matrix
    let factor: Double
    let momentum: Double
    let sampling: Sampling
    let batchSize: Int
    /// γ when the weight decay is γI (0 without one), nil for any other Γ.
    let scalarDecay: Double?

    init(x: Matrix, weightDecay: Matrix?, batchSize: Int, sampling: Sampling, momentum: Double) throws {
        try x.requireFinite("X")
        guard x.rows >= 1, x.columns >= 1 else { throw SGDNoiseError.invalidArgument("X must be non-empty, got \(x.rows) × \(x.columns)") }
        try Validation.momentum(momentum)
        self.x = x
        if sampling == .epochShuffling {
            // One batch of an epoch is marginally a draw without replacement; EpochShuffling
            // supplies what the epoch's dependence adds.
            guard batchSize <= x.rows else {
                throw SGDNoiseError.invalidArgument(
                    "batchSize \(batchSize) exceeds the \(x.rows) samples; the epoch-shuffling prediction needs batchSize ≤ N")
            }
        }
        factor = try (sampling == .epochShuffling ? .withoutReplacement : sampling)
            .noiseFactor(sampleCount: x.rows, batchSize: batchSize)
        self.sampling = sampling
        self.batchSize = batchSize
        aHat = x.weightedGram(rowWeights: [Double](repeating: 1 / Double(x.rows), count: x.rows))
        if let g = weightDecay {
            try g.requireSymmetric("weight_decay", size: x.columns)
            curvature = aHat + g
            scalarDecay = g == g[0, 0] * Matrix.identity(x.columns) ? g[0, 0] : nil
        } else {
            curvature = aHat
            scalarDecay = 0
        }
        self.momentum = momentum
    }

    /// f[F(Σ) − ÂΣÂ], F(Σ) = (1/N) Σ_i (x_iᵀΣx_i) x_i x_iᵀ, times `scale`: O(ND² + D³).
    func multiplicativeNoise(_ sigma: Matrix, scale: Double = 1) -> Matrix {
        Self.multiplicativeNoise(x: x, aHat: aHat, sigma, factor: factor * scale)
    }

    /// f[F(M) − ÂMÂ] for the rows x_i of `x` (Â = XᵀX/N, in whatever basis `x` is written),
    /// symmetrized: the part of a minibatch's gradient covariance that the second moment M of
    /// e = w − w* drives (docs/theory.md §4.1, §9). O(ND² + D³): by BLAS, or by plain loops up to
    /// N·D² = `loopWork`.
    static func multiplicativeNoise(x: Matrix, aHat: Matrix, _ sigma: Matrix, factor: Double) -> Matrix {
        x.rows * x.columns * x.columns <= loopWork
            ? multiplicativeNoiseByLoops(x: x, aHat: aHat, sigma, factor: factor)
            : multiplicativeNoiseByBLAS(x: x, aHat: aHat, sigma, factor: factor)
    }

    /// `multiplicativeNoise` with BLAS: diag(X M Xᵀ) first, then Xᵀ diag(f·…/N) X and fÂMÂ,
    /// subtracted symmetrized in F's storage.
    static func multiplicativeNoiseByBLAS(x: Matrix, aHat: Matrix, _ sigma: Matrix, factor: Double) -> Matrix {
        let n = x.rows, d = x.columns
        let xs = Matrix.product(x, sigma)
        var q = [Double](repeating: 0, count: n)
        xs.elements.withUnsafeBufferPointer { a in
            x.elements.withUnsafeBufferPointer { b in
                for i in 0..<n {
                    var s = 0.0
                    for j in 0..<d { s += a[i * d + j] * b[i * d + j] }
                    q[i] = s * factor / Double(n)
                }
            }
        }
        var f = x.weightedGram(rowWeights: q)
        let asa = Matrix.product(aHat, Matrix.product(sigma, aHat), scale: factor)
        // F − fÂΣÂ, symmetrized, in F's storage.
        f.elements.withUnsafeMutableBufferPointer { fv in
            asa.elements.withUnsafeBufferPointer { av in
                for i in 0..<d {
                    fv[i * d + i] -= av[i * d + i]
                    for j in (i + 1)..<d {
                        let v = 0.5 * ((fv[i * d + j] - av[i * d + j]) + (fv[j * d + i] - av[j * d + i]))
                        fv[i * d + j] = v
                        fv[j * d + i] = v
                    }
                }
            }
        }
        return f
    }

    /// The largest N·D² whose map is evaluated by `multiplicativeNoiseByLoops`: there the loops'
    /// O(ND² + D³) flops cost less than the BLAS route's temporaries and call setup (at N = 8,
    /// D = 2 that route took ~8k instructions a map, the loops ~1.5k); far beyond, BLAS wins (with
    /// the loops at every D ≤ 8, a call at N = 10⁵, D = 8 took 0.32 s against 0.16 s).
    static let loopWork = 256

    /// `multiplicativeNoise` by loops, one pass over the rows and no temporary on the heap: q_i =
    /// (f/N) x_iᵀMx_i and the upper triangle of F = Σ_i q_i x_i x_iᵀ accumulated row by row in the
    /// result, then fÂMÂ through T = MÂ on the stack, subtracted symmetrized.
    static func multiplicativeNoiseByLoops(x: Matrix, aHat: Matrix, _ m: Matrix, factor: Double) -> Matrix {
        let n = x.rows, d = x.columns
        let weight = factor / Double(n)
        return Matrix(uninitializedRows: d, columns: d) { out in
            x.elements.withUnsafeBufferPointer { xv in
                m.elements.withUnsafeBufferPointer { mv in
                    aHat.elements.withUnsafeBufferPointer { av in
                        out.initialize(repeating: 0)
                        for i in 0..<n {
                            let row = i * d
                            var q = 0.0
                            for j in 0..<d {
                                var s = 0.0
                                for k in 0..<d { s += mv[j * d + k] * xv[row + k] }
                                q += xv[row + j] * s
                            }
                            q *= weight
                            for j in 0..<d {
                                let a = q * xv[row + j]
                                for k in j..<d { out[j * d + k] += a * xv[row + k] }
                            }
                        }
                        withUnsafeTemporaryAllocation(of: Double.self, capacity: d * d) { t in
                            for j in 0..<d {
                                for k in 0..<d {
                                    var s = 0.0
                                    for l in 0..<d { s += mv[j * d + l] * av[l * d + k] }
                                    t[j * d + k] = s
                                }
                            }
                            for j in 0..<d {
                                for k in j..<d {
                                    var a = 0.0, b = 0.0
                                    for l in 0..<d {
                                        a += av[j * d + l] * t[l * d + k]
                                        b += av[k * d + l] * t[l * d + j]
                                    }
                                    let v = out[j * d + k] - 0.5 * factor * (a + b)
                                    out[j * d + k] = v
                                    out[k * d + j] = v
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The minimum of the (regularised) empirical loss and what the noise needs of it:
    /// w* = K⁻¹Xᵀy/N, the residuals r_i = x_iᵀw* − y_i, the centred rows z_i = x_i r_i − mean_i(x_i r_i)
    /// (N × D) and R = (1/N) Σ z_i z_iᵀ.
    func minimum(y: [Double]) throws -> (wStar: [Double], residuals: [Double], z: Matrix, r: Matrix) {
        let n = x.rows, d = x.columns
        guard y.count == n, y.allSatisfy({ $0.isFinite }) else {
            throw SGDNoiseError.invalidArgument("y must have \(n) finite entries (one per row of X), got \(y.count)")
        }
        // Xᵀy/N accumulated row by row (no transposed copy of X)
        var xty = [Double](repeating: 0, count: d)
        x.elements.withUnsafeBufferPointer { xv in
            for i in 0..<n { for j in 0..<d { xty[j] += xv[i * d + j] * y[i] } }
        }
        for j in 0..<d { xty[j] /= Double(n) }
        let wStar = try curvature.solvePositiveDefinite(xty, name: "XᵀX/N + weight_decay")
        var residuals = x.apply(wStar)
        for i in 0..<n { residuals[i] -= y[i] }
        var z = x
        for i in 0..<n { for j in 0..<d { z[i, j] *= residuals[i] } }
        let moments = try z.elements.withUnsafeBufferPointer { try GradientMoments(gradients: $0, rows: n, columns: d, full: true) }
        let mean = moments.mean
        for i in 0..<n { for j in 0..<d { z[i, j] -= mean[j] } }
        return (wStar, residuals, z, (1 / Double(n)) * moments.scatter!)
    }

    /// The fixed-point solver at learning rate `lr` (nil when the deterministic part is unstable).
    func solver(_ lr: LearningRate) throws -> (IterativeStationarySolver, LearningRateTransform) {
        let transform = try LearningRateTransform(lr, dimension: x.columns)
        let spectral = try SpectralStationarySolver(preconditionedHessian: transform.conjugate(curvature), momentum: momentum)
        // P N(P X P) P; for a scalar λ (P = √λ I) that is λ² N(X), one scale of the map's factor.
        let map: (Matrix) -> Matrix = transform.root == nil
            ? { [lambda = transform.scalar] xt in self.multiplicativeNoise(xt, scale: lambda * lambda) }
            : { xt in transform.conjugate(self.multiplicativeNoise(transform.conjugate(xt))) }
        return (IterativeStationarySolver(spectral: spectral, noiseMap: map), transform)
    }

    /// ρ of the second-moment map at `scale` × `lr` (∞ when the deterministic part is unstable).
    /// The power iteration starts from `start` and leaves its dominant direction there: a
    /// bisection's next, nearby map starts close to its own (the direction of X = Λ^{-1/2}ΣΛ^{-1/2}
    /// does not depend on the scale).
    func spectralRadius(_ lr: LearningRate, scale: Double, start: inout Matrix) throws -> Double {
        let scaled: LearningRate
        switch lr {
        case .scalar(let l): scaled = .scalar(l * scale)
        case .matrix(let m): scaled = .matrix(scale * m)
        case .diagonal(let v): scaled = .diagonal(v.map { $0 * scale })
        }
        let (solver, _) = try self.solver(scaled)
        let m = solver.spectral.m
        if let mMax = m.last, mMax >= solver.spectral.stabilityEdge { return .infinity }
        if let mMin = m.first, mMin < -1e-12 * abs(m.last ?? 1) { return .infinity }
        let (radius, vector) = solver.dominant(start: start, iterations: 2000)
        start = vector
        return radius
    }

    /// The largest c with ρ(c · lr) < 1, bracketed to 1e-9 relative.
    ///
    /// For a scalar learning rate and Γ = γI the bisection runs on the range of X, of dimension
    /// r = rank X ≤ min(N, D): a direction orthogonal to every row feels only γ, decoupled from the
    /// rest (its error contracts by 1 − λγ, with momentum stable below λγ = 2(1+μ)), so
    /// λ* = min(λ*_range, 2(1+μ)/γ) exactly, at O(N r²) instead of O(N D²) per product.
    func criticalScale(_ lr: LearningRate) throws -> Double {
        if case .scalar(let l) = lr, let gamma = scalarDecay, let range = try rangeProblem() {
            let edge = gamma > 0 ? 2 * (1 + momentum) / (l * gamma) : Double.infinity
            if let range { return min(try range.criticalScale(lr), edge) }
            if gamma > 0 { return edge }
            // X = 0 and no weight decay: no curvature at all, refused below
        }
        let (solver, _) = try self.solver(lr)
        guard let mMax = solver.spectral.m.last, mMax > 0 else {
            throw SGDNoiseError.invalidArgument("the curvature XᵀX/N + weight_decay must have a positive eigenvalue")
        }
        // Root of g(c) = ρ(c) − 1 bracketed by [lo, hi] (g(0) = −1; g ≥ 0 or ∞ at the deterministic
        // edge): false position with the Illinois modification (the end kept twice in a row has its
        // g halved), which shrinks the bracket from both sides superlinearly; bisection while the
        // upper g is infinite. Ends when the bracket is within 1e-9 relative.
        var lo = 0.0, gLo = -1.0
        var hi = solver.spectral.stabilityEdge / mMax, gHi = Double.infinity
        var start = Matrix.identity(x.columns)
        var kept = 0  // +1: lo kept last step(s), −1: hi kept
        for _ in 0..<200 where hi - lo > 1e-9 * hi {
            var c = 0.5 * (lo + hi)
            if gHi.isFinite {
                let secant = lo - gLo * (hi - lo) / (gHi - gLo)
                if secant > lo && secant < hi { c = secant }
            }
            let g = try spectralRadius(lr, scale: c, start: &start) - 1
            if g < 0 {
                lo = c; gLo = g
                if kept == -1, gHi.isFinite { gHi *= 0.5 }
                kept = -1
            } else {
                hi = c; gHi = g
                if kept == 1 { gLo *= 0.5 }
                kept = 1
            }
        }
        return 0.5 * (lo + hi)
    }
}

extension FiniteDatasetProblem {
    /// The same problem on the range of X (rows x_iᵀV_r, Γ = γI_r) when X is rank-deficient or wider
    /// than tall: `.some(nil)` when X = 0, `nil` when the range is all of ℝᴰ (nothing to reduce) or Γ
    /// is not scalar. The range is that of the smaller Gram matrix (XXᵀ when N < D: X V_r = U_r S_r),
    /// cut at eigenvalues ≤ 1e3 · max(N, D) · ε times the largest — the rounding level of a Gram
    /// matrix's eigenvalues, far below any curvature that moves λ*.
    func rangeProblem() throws -> FiniteDatasetProblem?? {
        guard let gamma = scalarDecay else { return nil }
        let n = x.rows, d = x.columns
        let wide = n < d
        let gram = wide ? Matrix.product(x, x, transposeB: true) : Matrix.product(x, x, transposeA: true)
        let eigen = try SymmetricEigendecomposition(checked: gram.symmetrized, name: "the Gram matrix of X")
        let largest = eigen.values.last ?? 0
        let cut = 1e3 * Double(max(n, d)) * Double.ulpOfOne * largest
        let kept = eigen.values.indices.filter { eigen.values[$0] > cut }
        if kept.isEmpty { return .some(nil) }
        if !wide && kept.count == d { return nil }
        // the reduced rows: U_r S_r (wide) or X V_r (tall), one column per kept eigenvalue
        let r = kept.count
        var reduced = Matrix(rows: n, columns: r)
        if wide {
            for i in 0..<n { for (c, k) in kept.enumerated() { reduced[i, c] = eigen.eigenvectorRows[k, i] * eigen.values[k].squareRoot() } }
        } else {
            var basis = Matrix(rows: r, columns: d)
            for (c, k) in kept.enumerated() { for j in 0..<d { basis[c, j] = eigen.eigenvectorRows[k, j] } }
            reduced = Matrix.product(x, basis, transposeB: true)
        }
        return try FiniteDatasetProblem(x: reduced, weightDecay: gamma > 0 ? gamma * Matrix.identity(r) : nil,
                                        batchSize: batchSize, sampling: sampling, momentum: momentum)
    }
}

/// The exact stationary fluctuation of SGD on linear regression over a finite dataset
/// (docs/theory.md §4.1, an extension of the paper's Lemma 1 — no Gaussian or N → ∞ assumption).
///
/// With Â = XᵀX/N, K = Â + Γ, w* = K⁻¹Xᵀy/N, residuals r_i = x_iᵀw* − y_i and
/// z_i = x_i r_i − mean_i(x_i r_i), the second moments of e = w − w* close exactly:
///
///     (1−μ)(ΛKΣ + ΣKΛ) − c₁ΛKΣKΛ + c₂(ΛKΛKΣ + ΣKΛKΛ) = Λ f [F(Σ) − ÂΣÂ + R] Λ,
///     F(Σ) = (1/N) Σ_i (x_iᵀΣx_i) x_i x_iᵀ,  R = (1/N) Σ_i z_i z_iᵀ,
///
/// f = 1/S with replacement, (N − S)/(S(N − 1)) without. Solved as a fixed point preconditioned by
/// the exact spectral solve of Theorem 1 and accelerated by Anderson mixing, O(ND² + D³) per
/// iteration through BLAS, to a relative step ≤ 1e-13 (for D ≤ 8: one LU solve of the D(D+1)/2
/// unknowns, checked by one step of the iteration). Stability is certified by positivity of the
/// solution (or the map's spectral radius); when unstable, the error carries the dataset's critical
/// learning rate, found by bisection on the spectral radius (for a matrix learning rate Λ: the
/// largest stable multiple of Λ).
///
/// Epoch shuffling (`sampling: .epochShuffling`, docs/theory.md §4.2): the covariance of the
/// epoch-correlated additive noise is exact, the mean is offset from w* (to second order in the
/// noise), the multiplicative noise is treated as fresh, and Σ and the mean are those of w at a
/// random step. Scalar λ, any momentum, S ≤ N. Its relative error is O(λ): on
/// real data it was within 0.2–4.3 % of simulated SGD for λ ≤ 0.3 λ*(S) (0.4–5.7 % with μ = 0.9).
///
/// - Parameters:
///   - x: X, N × D; `y`: N labels.
///   - learningRate, batchSize, sampling, momentum: SGD's hyperparameters.
///   - weightDecay: Γ (nil for none).
///   - u: the teacher, to report `testLoss` = ½E[(w − u)ᵀA(w − u)] with A = `populationCovariance` (default Â);
///     without it `testLoss` is NaN.
/// - Returns: Σ, the noise C = f[F(Σ) − ÂΣÂ + R], mean w*, L_train = E[L_Γ(w)] and diagnostics.
public func finiteDataset(
    x: Matrix, y: [Double], learningRate: LearningRate, batchSize: Int, sampling: Sampling = .withReplacement,
    weightDecay: Matrix? = nil, momentum: Double = 0, u: [Double]? = nil, populationCovariance: Matrix? = nil
) throws -> FiniteDatasetPrediction {
    let problem = try FiniteDatasetProblem(x: x, weightDecay: weightDecay, batchSize: batchSize, sampling: sampling, momentum: momentum)
    let d = x.columns
    guard y.count == x.rows, y.allSatisfy({ $0.isFinite }) else {
        throw SGDNoiseError.invalidArgument("y must have \(x.rows) finite entries (one per row of X), got \(y.count)")
    }
    // w* = K⁻¹Xᵀy/N is unique only when K = XᵀX/N + Γ is nonsingular: a Cholesky factorisation
    // of a singular K may succeed on round-off and return an arbitrary w*, so the spectrum decides.
    let (solver, transform) = try problem.solver(learningRate)
    if let mMin = solver.spectral.m.first, let mMax = solver.spectral.m.last,
       mMin <= Validation.defaultFlatTolerance(dimension: d) * abs(mMax) {
        throw SGDNoiseError.notPositiveDefinite(
            "XᵀX/N + weight_decay is singular or indefinite (relative smallest eigenvalue \(mMin / abs(mMax))): w* is not unique. "
                + "Restrict X to its row space (drop redundant columns) or add a weight decay")
    }
    let (wStar, residuals, z, r) = try problem.minimum(y: y)
    let n = x.rows
    if let u, !(u.count == d && u.allSatisfy({ $0.isFinite })) {
        throw SGDNoiseError.invalidArgument("u must have \(d) finite entries, got \(u.count)")
    }
    if let a = populationCovariance { try a.requireSymmetric("A", size: d) }
    let lrScale: Double
    if case .scalar(let l) = learningRate { lrScale = l } else { lrScale = 1 }
    func unstable() -> SGDNoiseError {
        // Under epoch shuffling no critical learning rate has been established (§4.2).
        let critical = sampling == .epochShuffling ? nil : (try? problem.criticalScale(learningRate)).map { $0 * lrScale }
        return .unstable(
            "unstable: the second moments of SGD diverge on this dataset at this learning rate",
            criticalLearningRate: critical)
    }
    do {
        try solver.spectral.requireStable(lrScale: lrScale)
    } catch SGDNoiseError.unstable(_, _) {
        throw unstable()
    }
    // Fresh sampling: the source is f R and E[w] = w*. Epoch shuffling (§4.2): the covariance of
    // the epoch-correlated additive noise and the offset of the mean, exact; the multiplicative
    // noise of their second moment is the source of the rest, Σ_W.
    var base = problem.factor * r
    var offset = [Double](repeating: 0, count: d)
    var known: Matrix? = nil
    if problem.sampling == .epochShuffling {
        guard case .scalar(let l) = learningRate else {
            throw SGDNoiseError.invalidArgument("the epoch-shuffling prediction supports a scalar learning rate only")
        }
        let epoch = EpochShuffling(x: x, z: z, r: r, eigen: solver.spectral.eigen, learningRate: l, batchSize: batchSize,
                                   momentum: momentum)
        let fixed = (epoch.additiveCovariance + epoch.meanSecondMoment).symmetrized
        base = problem.multiplicativeNoise(fixed)
        offset = epoch.meanOffset
        known = fixed
    }
    let report = try solver.solve(base: transform.conjugate(base), certificate: .positivity, unstable: unstable)
    // M = E[ee^T] averaged over the phases; Σ = M − m̄m̄ᵀ is the covariance of w at a random step.
    var moment = transform.conjugate(report.x)
    if let known { moment = (moment + known).symmetrized }
    var sigma = moment
    for i in 0..<d { for j in 0..<d { sigma[i, j] -= offset[i] * offset[j] } }
    let mean = zip(wStar, offset).map { $0 + $1 }
    let noise = (problem.multiplicativeNoise(moment) + problem.factor * r).symmetrized
    let k = SymmetricOperator.dense(problem.curvature)
    let second = SymmetricOperator.dense(moment)
    var trainLoss = 0.5 * residuals.reduce(0) { $0 + $1 * $1 } / Double(n) + 0.5 * k.traceProduct(second)
    if let g = weightDecay { trainLoss += 0.5 * SymmetricOperator.dense(g).bilinear(wStar, wStar) }
    var testLoss = Double.nan
    if let u {
        guard u.count == d, u.allSatisfy({ $0.isFinite }) else {
            throw SGDNoiseError.invalidArgument("u must have \(d) finite entries, got \(u.count)")
        }
        let a = populationCovariance ?? problem.aHat
        try a.requireSymmetric("A", size: d)
        let delta = zip(wStar, u).map { $0 - $1 }
        let aOp = SymmetricOperator.dense(a)
        testLoss = 0.5 * (aOp.bilinear(delta, delta) + 2 * aOp.bilinear(delta, offset) + aOp.traceProduct(second))
    }
    let prediction = try Prediction(
        sigma: .dense(sigma), noise: .dense(noise), mean: mean, trainLoss: trainLoss, testLoss: testLoss, kappa: nil,
        criticalLearningRate: nil, couplingTrace: problem.aHat.traceProduct(moment), flatDirectionNoise: 0).checkedFinite()
    return FiniteDatasetPrediction(prediction: prediction, iterations: report.iterations, residual: report.residual,
                                   spectralRadius: report.spectralRadius)
}

/// The critical learning rate of SGD on a finite dataset (docs/theory.md §4.1): the largest λ whose
/// second-moment map has spectral radius below one, bracketed to 1e-9 relative (for a matrix
/// learning rate Λ: the largest stable multiple of Λ). Independent of the labels.
public func criticalLearningRateDataset(
    x: Matrix, batchSize: Int, sampling: Sampling = .withReplacement, weightDecay: Matrix? = nil, momentum: Double = 0,
    learningRate: LearningRate = .scalar(1)
) throws -> Double {
    guard sampling != .epochShuffling else {
        throw SGDNoiseError.invalidArgument(
            "sampling: no critical learning rate is established for epoch shuffling (docs/theory.md §4.2); "
                + "without replacement gives that of a single batch")
    }
    let problem = try FiniteDatasetProblem(x: x, weightDecay: weightDecay, batchSize: batchSize, sampling: sampling, momentum: momentum)
    let scale = try problem.criticalScale(learningRate)
    if case .scalar(let l) = learningRate { return scale * l }
    return scale
}
