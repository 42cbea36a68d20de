/// The gradient noise scales of McCandlish, Kaplan, Amodei et al. (2018), the batch size at which
/// the minibatch noise and the signal of the gradient are of equal size:
///
///     B_simple = Tr Σ₁ / |G|²,        B_noise = Tr(H Σ₁) / (Gᵀ H G),
///
/// with G = ḡ the mean gradient and Σ₁ = M2 − ḡḡᵀ the per-sample covariance, i.e. the noise
/// covariance [Prop 1] at batch size 1 with replacement (population convention: divide by N).
/// B_noise is the critical batch size of a quadratic model with Hessian H: the step that most
/// decreases the loss improves it by ε_opt(B) = ε_max / (1 + B_noise / B) (see
/// `criticalBatchView`); B_simple is B_noise with H replaced by the identity.
///
/// Reference: S. McCandlish, J. Kaplan, D. Amodei and the OpenAI Dota Team, "An Empirical Model of
/// Large-Batch Training", arXiv:1812.06162 (2018), Eqs. 2.7–2.9 and Appendix A.1.
public struct GradientNoiseScale: Sendable, Equatable {
    /// Tr Σ₁, the total per-sample gradient-noise power.
    public let traceSigma: Double
    /// |G|², the squared norm of the mean gradient.
    public let gradSquaredNorm: Double
    /// Tr(H Σ₁), when a Hessian was given.
    public let traceHessianSigma: Double?
    /// Gᵀ H G, when a Hessian was given.
    public let gradHessianGrad: Double?

    /// Noise-scale ingredients computed elsewhere (for instance with Hessian-vector products).
    public init(traceSigma: Double, gradSquaredNorm: Double, traceHessianSigma: Double? = nil, gradHessianGrad: Double? = nil) {
        self.traceSigma = traceSigma
        self.gradSquaredNorm = gradSquaredNorm
        self.traceHessianSigma = traceHessianSigma
        self.gradHessianGrad = gradHessianGrad
    }

    /// B_simple = Tr Σ₁ / |G|² (+∞ when G = 0 and Σ₁ ≠ 0; NaN when both vanish).
    public var bSimple: Double { traceSigma / gradSquaredNorm }

    /// B_noise = Tr(HΣ₁) / (GᵀHG), when a Hessian was given. Meaningful when H is positive
    /// semi-definite along G (GᵀHG > 0); otherwise it is the plain ratio, of whatever sign.
    public var bNoise: Double? {
        guard let t = traceHessianSigma, let g = gradHessianGrad else { return nil }
        return t / g
    }
}

/// The noise scales of the N × D row-major per-sample gradients `gradients` (`Double` or `Float`).
///
/// Without a Hessian: O(N D), from the mean and the diagonal of the centred scatter. With a dense
/// Hessian H (D × D symmetric): Tr(HΣ₁) = (1/N) Σ_jk H_jk S_jk with S the centred scatter (one SYRK,
/// O(N D²)), and GᵀHG by one matrix-vector product.
/// - Throws: `invalidArgument` (sizes, NaN/Inf), `notSymmetric` (H).
@_specialize(where T == Double)
@_specialize(where T == Float)
public func gradientNoiseScale<T: GradientScalar>(
    gradients: UnsafeBufferPointer<T>, rows n: Int, columns d: Int, hessian: Matrix? = nil
) throws -> GradientNoiseScale {
    if let hessian { try hessian.requireSymmetric("hessian", size: d) }
    let moments = try GradientMoments(gradients: gradients, rows: n, columns: d, full: hessian != nil)
    return noiseScaleFromMoments(count: n, mean: moments.mean, scatterDiagonal: moments.scatterDiagonal,
                                 scatter: moments.scatter, hessian: hessian)
}

/// The noise scales of the N × D matrix `gradients`.
public func gradientNoiseScale(gradients: Matrix, hessian: Matrix? = nil) throws -> GradientNoiseScale {
    try gradients.elements.withUnsafeBufferPointer {
        try gradientNoiseScale(gradients: $0, rows: gradients.rows, columns: gradients.columns, hessian: hessian)
    }
}

extension NoiseAccumulator {
    /// The noise scales of the accumulated gradients (Σ₁ = S/N, G = ḡ), optionally with a dense
    /// Hessian (D × D symmetric).
    /// - Throws: `invalidArgument` when empty, `notSymmetric` (H).
    public func noiseScale(hessian: Matrix? = nil) throws -> GradientNoiseScale {
        guard count >= 1 else {
            throw SGDNoiseError.invalidArgument("the accumulator is empty: update it with at least one gradient first")
        }
        if let hessian { try hessian.requireSymmetric("hessian", size: dimension) }
        return noiseScaleFromMoments(count: count, mean: mean, scatterDiagonal: scatterDiagonal,
                                      scatter: hessian == nil ? nil : scatter, hessian: hessian)
    }
}

/// The noise scales from the moments of N gradients (the scatter is needed only with a Hessian).
func noiseScaleFromMoments(count n: Int, mean: [Double], scatterDiagonal: [Double], scatter: Matrix?, hessian: Matrix?) -> GradientNoiseScale {
    let inv = 1 / Double(n)
    let traceSigma = scatterDiagonal.reduce(0, +) * inv
    let gradSq = mean.reduce(0) { $0 + $1 * $1 }
    guard let hessian, let scatter else {
        return GradientNoiseScale(traceSigma: traceSigma, gradSquaredNorm: gradSq)
    }
    var hs = 0.0
    for k in hessian.elements.indices { hs += hessian.elements[k] * scatter.elements[k] }
    let hg = hessian.apply(mean)
    let ghg = zip(mean, hg).reduce(0) { $0 + $1.0 * $1.1 }
    return GradientNoiseScale(traceSigma: traceSigma, gradSquaredNorm: gradSq, traceHessianSigma: hs * inv, gradHessianGrad: ghg)
}

/// The fraction of the best possible per-step improvement that SGD with batch size B achieves,
/// ε_opt(B) / ε_max = 1 / (1 + B_noise / B) [McCandlish et al. 2018, Eq. 2.7]: about B / B_noise
/// for B ≪ B_noise (steps are noise-dominated, doubling B doubles progress) and close to 1 for
/// B ≫ B_noise (extra data per step is wasted).
/// - Parameters:
///   - bNoise: the noise scale, finite and ≥ 0.
///   - batchSizes: the batch sizes B, each finite and > 0 (need not be integers).
/// - Throws: `invalidArgument` for values out of range.
public func criticalBatchView(bNoise: Double, batchSizes: [Double]) throws -> [Double] {
    guard bNoise.isFinite, bNoise >= 0 else {
        throw SGDNoiseError.invalidArgument("b_noise must be finite and >= 0, got \(bNoise)")
    }
    if let k = batchSizes.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
        throw SGDNoiseError.invalidArgument("batch_sizes must be finite and > 0, got \(batchSizes[k]) at \(k)")
    }
    return batchSizes.map { 1 / (1 + bNoise / $0) }
}

/// The unbiased two-batch estimates of |G|² and Tr Σ₁ [McCandlish et al. 2018, Appendix A.1], from
/// squared norms of minibatch-mean gradients measured at two batch sizes B_small < B_big (batches
/// drawn independently, with replacement or from a stream, so that E|G_B|² = |G|² + Tr Σ₁ / B):
///
///     |G|²  ≈ (B_big |G_big|² − B_small |G_small|²) / (B_big − B_small),
///     Tr Σ₁ ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big),
///     B_simple ≈ Tr Σ₁ / |G|².
///
/// Each of the two estimates is unbiased, but their ratio is not (E[X/Y] ≠ E[X]/E[Y]); as McCandlish
/// et al. recommend, repeated measurements are averaged first — the means of `smallBatchSquaredNorms`
/// and of `bigBatchSquaredNorms` enter the formulas — and only the averaged numerator and
/// denominator are divided. With few measurements the |G|² estimate can come out ≤ 0, and
/// B_simple with it negative or infinite; that is reported, not hidden.
///
/// - Parameters:
///   - smallBatchSquaredNorms: |G_small|² of one or more batches of size B_small (finite, ≥ 0).
///   - bigBatchSquaredNorms: |G_big|² of one or more batches of size B_big (finite, ≥ 0); the two
///     arrays may have different lengths.
///   - smallBatch: B_small ≥ 1.
///   - bigBatch: B_big > B_small.
/// - Returns: the estimates as a `GradientNoiseScale` (no Hessian terms).
/// - Throws: `invalidArgument` for empty arrays, values or batch sizes out of range.
public func twoBatchNoiseScale(
    smallBatchSquaredNorms small: [Double], bigBatchSquaredNorms big: [Double], smallBatch: Int, bigBatch: Int
) throws -> GradientNoiseScale {
    guard !small.isEmpty, !big.isEmpty else {
        throw SGDNoiseError.invalidArgument("small_sq_norm and big_sq_norm must each hold at least one measurement")
    }
    for (name, values) in [("small_sq_norm", small), ("big_sq_norm", big)] {
        if let k = values.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
            throw SGDNoiseError.invalidArgument("\(name) must be finite and >= 0, got \(values[k]) at \(k)")
        }
    }
    guard smallBatch >= 1 else {
        throw SGDNoiseError.invalidArgument("small_batch must be at least 1, got \(smallBatch)")
    }
    guard bigBatch > smallBatch else {
        throw SGDNoiseError.invalidArgument("big_batch must exceed small_batch = \(smallBatch), got \(bigBatch)")
    }
    let meanSmall = small.reduce(0, +) / Double(small.count)
    let meanBig = big.reduce(0, +) / Double(big.count)
    let bs = Double(smallBatch), bb = Double(bigBatch)
    let gradSq = (bb * meanBig - bs * meanSmall) / (bb - bs)
    // 1/B_small − 1/B_big = (B_big − B_small) / (B_small B_big), without the rounding of the difference.
    let traceSigma = (meanSmall - meanBig) * (bs * bb / (bb - bs))
    return GradientNoiseScale(traceSigma: traceSigma, gradSquaredNorm: gradSq)
}
