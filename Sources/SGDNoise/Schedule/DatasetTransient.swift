import Foundation

/// The finite dataset of docs/theory.md §4.1 as a transient system (§9): the exact minibatch noise
/// at every step of a schedule, written in the eigenbasis of K = Â + Γ.
///
/// With e = w − w*, the gradient of a minibatch B of S_t rows is K e + ξ_B, where
/// ξ_B = mean_{i∈B}[(x_ix_iᵀ − Â)e + z_i] has conditional mean zero, and conditional covariance f_t
/// times the covariance over one uniform row. Averaged over e (second moment M, mean ē):
///
///     C_t = f_t [F(M) − ÂMÂ + R + J(ē) + J(ē)ᵀ],   J(v) = (1/N) Σ_i x_i (x_iᵀv) z_iᵀ,
///
/// f_t = 1/S_t with replacement, (N − S_t)/(S_t(N − 1)) without. J vanishes at the stationary mean
/// ē = 0, not in a transient from w₀ ≠ w*. Every product is O(ND²) (ÂMÂ: O(D³)).
struct DatasetTransient {
    /// The rows x_i in the eigenbasis (N × D: X Q).
    let x: Matrix
    /// Â in the eigenbasis.
    let aHat: Matrix
    /// The rows z_i in the eigenbasis (N × D: Z Q).
    let z: Matrix
    /// R in the eigenbasis.
    let r: Matrix
    let sampling: Sampling
    /// The dataset as given, for the stationary prediction and the critical learning rate.
    let original: (x: Matrix, y: [Double], weightDecay: Matrix?, u: [Double]?, populationCovariance: Matrix?)

    /// f_t for batch size S (checked when the system was built: S ≤ N without replacement).
    func factor(batchSize s: Int) -> Double {
        (try? sampling.noiseFactor(sampleCount: x.rows, batchSize: s)) ?? .nan
    }

    /// C_t for the second moment `m` (D × D, the eigenbasis), the mean `mean` and batch size S.
    func noise(secondMoment m: Matrix, mean: [Double], batchSize s: Int) -> Matrix {
        let f = factor(batchSize: s)
        var c = FiniteDatasetProblem.multiplicativeNoise(x: x, aHat: aHat, m, factor: f) + f * r
        if mean.contains(where: { $0 != 0 }) {
            // J(ē) = Xᵀ diag(X ē/N) Z.
            let n = x.rows, d = x.columns
            let weights = x.apply(mean).map { $0 / Double(n) }
            var scaled = z
            for i in 0..<n { for j in 0..<d { scaled[i, j] *= weights[i] } }
            let j = Matrix.product(x, scaled, transposeA: true)
            c = c + f * (j + j.transposed)
        }
        return c
    }

    /// The system with no additive noise (R = 0, z = 0): the homogeneous second-moment map.
    var homogeneous: DatasetTransient {
        DatasetTransient(x: x, aHat: aHat, z: Matrix(rows: z.rows, columns: z.columns),
                         r: Matrix(rows: r.rows, columns: r.columns), sampling: sampling, original: original)
    }
}

extension TransientSystem {
    /// The system of SGD on the dataset X (N × D), y (docs/theory.md §4.1, §9): H = K = XᵀX/N + Γ
    /// (nonsingular), w* = K⁻¹Xᵀy/N; L_train = E[L_Γ(w)] = ½Tr[KM] + ½ mean r_i² + ½w*ᵀΓw*; L_test =
    /// ½E[(w − u)ᵀA(w − u)] with A = `populationCovariance` (default Â), NaN without `u`.
    init(x: Matrix, y: [Double], sampling: Sampling, weightDecay: Matrix?, u: [Double]?,
         populationCovariance: Matrix?, batchSizes: [Int]) throws {
        let problem = try FiniteDatasetProblem(x: x, weightDecay: weightDecay, batchSize: 1, sampling: sampling, momentum: 0)
        let n = x.rows, d = x.columns
        for s in Set(batchSizes).sorted() { _ = try sampling.noiseFactor(sampleCount: n, batchSize: s) }
        let eigen = try SymmetricEigendecomposition(checked: problem.curvature.symmetrized, name: "XᵀX/N + weight_decay")
        if let hMin = eigen.values.first, let hMax = eigen.values.last,
           hMin <= Validation.defaultFlatTolerance(dimension: d) * abs(hMax) {
            throw SGDNoiseError.notPositiveDefinite(
                "XᵀX/N + weight_decay is singular or indefinite (relative smallest eigenvalue \(hMin / abs(hMax))): w* is not unique. "
                    + "Restrict X to its row space (drop redundant columns) or add a weight decay")
        }
        let (w, residuals, zRows, rMatrix) = try problem.minimum(y: y)
        if let u, !(u.count == d && u.allSatisfy({ $0.isFinite })) {
            throw SGDNoiseError.invalidArgument("u must have \(d) finite entries, got \(u.count)")
        }
        if let a = populationCovariance { try a.requireSymmetric("A", size: d) }
        let qt = eigen.eigenvectorRows
        func rotated(_ m: Matrix) -> Matrix { Matrix.product(Matrix.product(qt, m), qt, transposeB: true).symmetrized }
        dataset = DatasetTransient(
            x: Matrix.product(x, qt, transposeB: true), aHat: rotated(problem.aHat),
            z: Matrix.product(zRows, qt, transposeB: true), r: rotated(rMatrix), sampling: sampling,
            original: (x, y, weightDecay, u, populationCovariance))
        (basis, h, a, delta, beta1, beta2) = (qt, eigen.values, [Double](repeating: 0, count: d), nil, 0, 0)
        baseNoise = .dense(Matrix(rows: d, columns: d))
        wStar = w
        model = nil
        quadratic = nil
        var train = 0.5 * residuals.reduce(0) { $0 + $1 * $1 } / Double(n)
        if let g = weightDecay { train += 0.5 * SymmetricOperator.dense(g).bilinear(w, w) }
        trainConstant = train
        if let u {
            let aOp = SymmetricOperator.dense(populationCovariance ?? problem.aHat)
            testWeights = SymmetricOperator.compact(aOp.matrix, rotatedBy: qt)
            let delta = qt.apply(zip(w, u).map { $0 - $1 })
            let q = testWeights.apply(delta)
            testLinear = q
            testConstant = 0.5 * zip(q, delta).reduce(0) { $0 + $1.0 * $1.1 }
        } else {
            testWeights = .diagonal([Double](repeating: 0, count: d))
            (testLinear, testConstant) = (nil, .nan)
        }
    }
}

/// The exact learning curve of SGD on linear regression over a finite dataset (docs/theory.md
/// §4.1, §9), trained with a schedule; with or without replacement.
///
/// With e = w − w*, K = Â + Γ, Â = XᵀX/N, r_i = x_iᵀw* − y_i, z_i = x_i r_i − mean_i(x_i r_i) and
/// f_t = 1/S_t (with replacement) or (N − S_t)/(S_t(N − 1)) (without), the mean ē_t = E[e_t] follows
/// gradient descent on K (heavy ball with momentum) and, without momentum, the second moment
/// M_t = E[e_te_tᵀ] (not centred) follows
///
///     M_{t+1} = (I − λ_tK) M_t (I − λ_tK) + λ_t² C_t,
///     C_t = f_t [F(M_t) − ÂM_tÂ + R + J(ē_t) + J(ē_t)ᵀ],
///     F(M) = (1/N) Σ_i (x_iᵀMx_i) x_ix_iᵀ,  R = (1/N) Σ_i z_iz_iᵀ,  J(v) = (1/N) Σ_i x_i(x_iᵀv)z_iᵀ;
///
/// with momentum, the (e, m) block recursion of `MomentRecursion` with this C_t. A constant
/// schedule converges to `finiteDataset(...)`'s Σ.
///
/// - Parameters:
///   - x, y, sampling, weightDecay, u, populationCovariance: as in `finiteDataset` (sampling: with
///     or without replacement; epoch shuffling is refused); every S_t ≤ N without replacement.
///   - startCovariance: Σ₀, the covariance of the start (nil: w₀ is a point), so M₀ = Σ₀ + e₀e₀ᵀ.
///   - Others: as in `learningCurve(model:schedule:record:w0:startCovariance:tolerance:includeSigma:includeMean:)`.
///     `trainLoss` is E[L_Γ(w_t)], `testLoss` ½E[(w_t − u)ᵀA(w_t − u)] (NaN without u); Σ_t is dense.
///     `Relaxation.modeTimes` are those of each mode's noise-free map; `momentTime` is that of the
///     whole second-moment map, by power iteration.
/// - Complexity: one D × D eigendecomposition, then O(ND² + D³) per step; memory O(ND + D²).
public func learningCurve(
    x: Matrix, y: [Double], sampling: Sampling = .withReplacement, weightDecay: Matrix? = nil, u: [Double]? = nil,
    populationCovariance: Matrix? = nil, schedule: Schedule, record: [Int]? = nil, w0: [Double]? = nil,
    startCovariance: SymmetricOperator? = nil, tolerance: Double = 0.01, includeSigma: Bool = true,
    includeMean: Bool = true
) throws -> LearningCurve {
    try runLearningCurve(
        system: TransientSystem(x: x, y: y, sampling: sampling, weightDecay: weightDecay, u: u,
                                populationCovariance: populationCovariance, batchSizes: schedule.batchSizes),
        schedule: schedule, record: record, w0: w0, startCovariance: startCovariance, tolerance: tolerance,
        includeSigma: includeSigma, includeMean: includeMean)
}

/// The spectral radius of a finite dataset's whole second-moment map (the homogeneous part of the
/// (e, m) recursion: R = 0, ē = 0) at fixed (λ, S, μ), by power iteration from Σ₀ = I: ρ is read
/// as the geometric mean growth over the second half of the iterations (which also averages a
/// complex dominant pair). The iterations are capped at 2000 and at about 2·10⁸ flops.
func datasetMomentRate(_ system: TransientSystem, learningRate lr: Double, batchSize: Int, momentum mu: Double) -> Double {
    guard let dataset = system.dataset else { return .nan }
    var homogeneous = system
    homogeneous.dataset = dataset.homogeneous
    let d = system.dimension, n = dataset.x.rows
    var identity = [Double](repeating: 0, count: d * d)
    for i in 0..<d { identity[i * d + i] = 1 }
    var recursion = MomentRecursion(system: homogeneous, initialError: [Double](repeating: 0, count: d),
                                    startCovariance: identity, tracksMomentum: mu != 0)
    let perStep = Double(n) * Double(d) * Double(d) + Double(d) * Double(d) * Double(d)
    let iterations = max(100, min(2000, Int(2e8 / perStep)))
    var logGrowth = 0.0
    for k in 1...iterations {
        recursion.step(learningRate: lr, batchSize: batchSize, momentum: mu)
        let norm = recursion.normalizeSecondMoments()
        guard norm.isFinite else { return .infinity }
        guard norm > 0 else { return 0 }
        if k > iterations / 2 { logGrowth += Foundation.log(norm) }
    }
    return Foundation.exp(logGrowth / Double(iterations - iterations / 2))
}
