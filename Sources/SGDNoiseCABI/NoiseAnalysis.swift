@_spi(CABI) import SGDNoise
import _SGDNoiseShims

// C section 3 -- The noise toolkit: gradient noise scales, comparison metrics, top eigenpairs and
// the matrix-free noise operator (docs/theory.md section 2).

/// The n x d gradients at `grads` as a buffer (pointer and sizes checked; entries are not).
private func gradients<T>(_ n: Int, _ d: Int, _ grads: UnsafePointer<T>?) throws(SGDNoiseError) -> UnsafeBufferPointer<T> {
    let p = try Arguments.pointer(grads, "grads")
    try Arguments.size(n, "n")
    try Arguments.size(d, "d")
    return UnsafeBufferPointer(start: p, count: try Arguments.count(n, d, "grads"))
}

// MARK: Gradient noise scale

/// The gradient noise scales of McCandlish et al. (2018) from n x d row-major per-sample gradients:
/// B_simple = Tr(Sigma_1)/|G|^2 and, when `hessian` (d x d symmetric, may be NULL) is given,
/// B_noise = Tr(H Sigma_1)/(G^T H G), with G the mean gradient and Sigma_1 = M2 - G G^T the
/// per-sample covariance (batch size 1, with replacement; population convention). out_scales
/// (set its .size first) receives them; the Hessian fields are NaN without a Hessian.
/// Cost O(n d) without a Hessian, O(n d^2) with one.
@c public func sgdnoise_noise_scale(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Double>?, _ hessian: UnsafePointer<Double>?,
    _ out_scales: UnsafeMutablePointer<sgdnoise_noise_scales>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try noiseScaleC(n, d, grads, hessian, out_scales) }
}

/// As sgdnoise_noise_scale, for float32 gradients (accumulated in double precision).
@c public func sgdnoise_noise_scale_f32(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Float>?, _ hessian: UnsafePointer<Double>?,
    _ out_scales: UnsafeMutablePointer<sgdnoise_noise_scales>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try noiseScaleC(n, d, grads, hessian, out_scales) }
}

private func noiseScaleC<T: GradientScalar>(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<T>?, _ hessian: UnsafePointer<Double>?,
    _ out: UnsafeMutablePointer<sgdnoise_noise_scales>?
) throws(SGDNoiseError) {
    let g = try gradients(n, d, grads)
    let out = try Arguments.noiseScales(out)
    let h = try hessian.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.squareMatrix(p, d, "hessian") }
    out.write(sgdnoise_noise_scales(try core { try gradientNoiseScale(gradients: g, rows: n, columns: d, hessian: h) }))
}

/// The unbiased two-batch estimates of McCandlish et al. (2018, App. A.1) from squared norms of
/// minibatch-mean gradients: n_small measurements at batch size small_batch and n_big at big_batch
/// (1 <= small_batch < big_batch; the counts may differ). The measurements are averaged first, then
/// |G|^2 = (B_big |G_big|^2 - B_small |G_small|^2)/(B_big - B_small),
/// Tr(Sigma_1) = (|G_small|^2 - |G_big|^2)/(1/B_small - 1/B_big), B_simple = Tr(Sigma_1)/|G|^2
/// (each estimate is unbiased, their ratio is not). out_scales receives
/// the estimates (the Hessian fields NaN; set its .size first).
@c public func sgdnoise_two_batch_noise_scale(
    _ n_small: Int, _ small_sq_norms: UnsafePointer<Double>?, _ n_big: Int, _ big_sq_norms: UnsafePointer<Double>?,
    _ small_batch: Int, _ big_batch: Int, _ out_scales: UnsafeMutablePointer<sgdnoise_noise_scales>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.noiseScales(out_scales)
        let small = try Arguments.vector(small_sq_norms, n_small, "small_sq_norms")
        let big = try Arguments.vector(big_sq_norms, n_big, "big_sq_norms")
        let result = try core {
            try twoBatchNoiseScale(smallBatchSquaredNorms: small, bigBatchSquaredNorms: big,
                                   smallBatch: small_batch, bigBatch: big_batch)
        }
        out.write(sgdnoise_noise_scales(result))
    }
}

/// For each of `count` batch sizes B (> 0), the fraction of the best per-step improvement SGD
/// achieves, eps_opt(B)/eps_max = 1/(1 + b_noise/B) (McCandlish et al. 2018, Eq. 2.7); b_noise >= 0.
/// out receives count doubles.
@c public func sgdnoise_critical_batch_view(
    _ b_noise: Double, _ count: Int, _ batch_sizes: UnsafePointer<Double>?, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out, "out")
        let sizes = try Arguments.vector(batch_sizes, count, "batch_sizes")
        Arguments.write(try core { try criticalBatchView(bNoise: b_noise, batchSizes: sizes) }, to: out)
    }
}

// MARK: Comparison

/// Compares a covariance estimate P with a reference Q (both d x d): relative Frobenius error
/// ||P - Q||_F/||Q||_F, cosine <P,Q>_F/(||P||_F ||Q||_F), trace ratio Tr P/Tr Q and, when k >= 1,
/// the overlap ||U_P^T U_Q||_F^2/k of the top-k eigenspaces (then P and Q must be symmetric and
/// k <= d; k = 0 skips it and writes NaN). Q must not be zero. out_comparison (set its .size
/// first) receives the four numbers.
@c public func sgdnoise_compare(
    _ d: Int, _ p: UnsafePointer<Double>?, _ q: UnsafePointer<Double>?, _ k: Int,
    _ out_comparison: UnsafeMutablePointer<sgdnoise_comparison>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        guard let out = try ResultSlot(out_comparison, "out_comparison", "sgdnoise_comparison") else {
            throw .invalidArgument("out_comparison must not be NULL")
        }
        let pm = try Arguments.squareMatrix(p, d, "P")
        let qm = try Arguments.squareMatrix(q, d, "Q")
        guard k >= 0 else { throw .invalidArgument("k must be >= 0 (0: no subspace overlap), got \(k)") }
        let r = try core { try compareCovariances(pm, qm, topK: k == 0 ? nil : k) }
        out.write(sgdnoise_comparison(
            size: MemoryLayout<sgdnoise_comparison>.size, rel_frobenius: r.relativeFrobenius, cosine: r.cosine,
            trace_ratio: r.traceRatio, overlap: r.subspaceOverlap ?? .nan))
    }
}

// MARK: Top eigenpairs

/// The k largest eigenpairs of the noise covariance C = (f/N) G_c^T G_c [Prop 1] of n x d row-major
/// per-sample gradients (G_c centred). When n <= d they come from the n x n Gram matrix G_c G_c^T
/// (same nonzero spectrum times f/N; eigenvectors mapped back through G_c^T and normalised), so no
/// d x d matrix is formed; otherwise from C itself. out_values receives the k eigenvalues in
/// descending order; out_vectors (may be NULL) d x k row-major, column j the unit eigenvector of
/// eigenvalue j, signed so that its largest-magnitude entry is positive.
/// 1 <= k <= min(n - 1, d) and k must not exceed the numerical rank of C (eigenvalues at or below
/// max(n, d) * eps * lambda_max count as zero); min(n, d) <= 40000.
@c public func sgdnoise_noise_top_eigen(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Double>?, _ batch_size: Int, _ sampling: CInt, _ k: Int,
    _ out_values: UnsafeMutablePointer<Double>?, _ out_vectors: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try topEigenC(n, d, grads, batch_size, sampling, k, out_values, out_vectors) }
}

/// As sgdnoise_noise_top_eigen, for float32 gradients (accumulated in double precision).
@c public func sgdnoise_noise_top_eigen_f32(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Float>?, _ batch_size: Int, _ sampling: CInt, _ k: Int,
    _ out_values: UnsafeMutablePointer<Double>?, _ out_vectors: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try topEigenC(n, d, grads, batch_size, sampling, k, out_values, out_vectors) }
}

private func topEigenC<T: GradientScalar>(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<T>?, _ batchSize: Int, _ samplingCode: CInt, _ k: Int,
    _ outValues: UnsafeMutablePointer<Double>?, _ outVectors: UnsafeMutablePointer<Double>?
) throws(SGDNoiseError) {
    let g = try gradients(n, d, grads)
    let values = try Arguments.output(outValues, "out_values")
    let sampling = try Arguments.noiseSampling(samplingCode, sampleCount: n, batchSize: batchSize)
    let pairs = try core {
        try noiseTopEigenpairs(gradients: g, rows: n, columns: d, batchSize: batchSize, sampling: sampling, count: k)
    }
    Arguments.write(pairs.values, to: values)
    if let outVectors { Arguments.write(pairs.vectors, to: outVectors) }
}

// MARK: Matrix-free noise operator

/// The mean gradient g = (1/n) sum_i g_i of n x d row-major gradients (out_mean: d doubles),
/// accumulated in double precision; fails on NaN/Inf. Pass it to the sgdnoise_noise_operator_*
/// functions to avoid recomputing it on every call.
@c public func sgdnoise_gradient_mean(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Double>?, _ out_mean: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try meanC(n, d, grads, out_mean) }
}

/// As sgdnoise_gradient_mean, for float32 gradients.
@c public func sgdnoise_gradient_mean_f32(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Float>?, _ out_mean: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try meanC(n, d, grads, out_mean) }
}

private func meanC<T: GradientScalar>(_ n: Int, _ d: Int, _ grads: UnsafePointer<T>?, _ out: UnsafeMutablePointer<Double>?) throws(SGDNoiseError) {
    let g = try gradients(n, d, grads)
    let out = try Arguments.output(out, "out_mean")
    Arguments.write(try core { try NoiseOperator<T>.mean(gradients: g, rows: n, columns: d) }, to: out)
}

/// The sampling factor f of [Prop 1] for n samples and batch size batch_size: 1/S with
/// replacement, (n-S)/(S(n-1)) without (0 at S = n). *out_factor receives it.
@c public func sgdnoise_noise_factor(
    _ n: Int, _ batch_size: Int, _ sampling: CInt, _ out_factor: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_factor, "out_factor")
        out.pointee = try Arguments.noiseFactor(sampling, sampleCount: n, batchSize: batch_size)
    }
}

/// The mean to use: the caller's (d doubles, checked finite by the core) or computed from G.
private func operatorMean<T: GradientScalar>(
    _ g: UnsafeBufferPointer<T>, _ n: Int, _ d: Int, _ mean: UnsafePointer<Double>?
) throws(SGDNoiseError) -> [Double] {
    if let mean {
        return Array(UnsafeBufferPointer(start: mean, count: d))
    }
    return try core { try NoiseOperator<T>.mean(gradients: g, rows: n, columns: d) }
}

/// Matrix-free product with the noise covariance: out = C V = (f/N) G_c^T (G_c V) for the d x m
/// row-major block V (m vectors as columns; m = 1 for a vector), without any d x d matrix or copy
/// of G: each product reads G twice, in tiles widened to double on the fly, with every product and
/// sum in double precision and the mean subtracted tile by tile (float32 gradients are never
/// rounded further; v is not rounded to float). `mean` is the gradient mean from sgdnoise_gradient_mean, or
/// NULL to compute it here (one more pass). NaN/Inf in G gives SGDNOISE_STATUS_INVALID_ARGUMENT
/// (detected on the result, so a given mean costs no extra pass), an overflow
/// SGDNOISE_STATUS_NUMERICAL_FAILURE; out is untouched on failure. out receives d x m doubles.
@c public func sgdnoise_noise_operator_apply(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Double>?, _ mean: UnsafePointer<Double>?, _ batch_size: Int,
    _ sampling: CInt, _ m: Int, _ v: UnsafePointer<Double>?, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try applyC(n, d, grads, mean, batch_size, sampling, m, v, out) }
}

/// As sgdnoise_noise_operator_apply, for float32 gradients (read as float32, products and sums in
/// double precision; v and out stay double).
@c public func sgdnoise_noise_operator_apply_f32(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Float>?, _ mean: UnsafePointer<Double>?, _ batch_size: Int,
    _ sampling: CInt, _ m: Int, _ v: UnsafePointer<Double>?, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try applyC(n, d, grads, mean, batch_size, sampling, m, v, out) }
}

private func applyC<T: GradientScalar>(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<T>?, _ mean: UnsafePointer<Double>?, _ batchSize: Int,
    _ samplingCode: CInt, _ m: Int, _ v: UnsafePointer<Double>?, _ out: UnsafeMutablePointer<Double>?
) throws(SGDNoiseError) {
    let g = try gradients(n, d, grads)
    let v = try Arguments.pointer(v, "v")
    let out = try Arguments.output(out, "out")
    try Arguments.size(m, "m")
    let entries = try Arguments.count(d, m, "v")
    let f = try Arguments.noiseFactor(samplingCode, sampleCount: n, batchSize: batchSize)
    let mu = try operatorMean(g, n, d, mean)
    do {  // the core writes `out` only when the result is finite, and classifies a failure
        let result = UnsafeMutableBufferPointer(start: out, count: entries)
        try core {
            try mu.withUnsafeBufferPointer { mb in
                try NoiseOperator<T>.apply(
                    gradients: g, rows: n, columns: d, mean: mb, factor: f,
                    vectors: UnsafeBufferPointer(start: v, count: entries), count: m, into: result)
            }
        }
    }
}

/// The diagonal of the noise covariance, out_j = (f/N) sum_i (g_ij - g_j)^2 (d doubles), in one pass
/// over the n x d row-major gradients, with no limit on d (the trace is the sum of the entries).
/// `mean` as in sgdnoise_noise_operator_apply.
@c public func sgdnoise_noise_operator_diagonal(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Double>?, _ mean: UnsafePointer<Double>?, _ batch_size: Int,
    _ sampling: CInt, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try diagonalC(n, d, grads, mean, batch_size, sampling, out) }
}

/// As sgdnoise_noise_operator_diagonal, for float32 gradients (double accumulation).
@c public func sgdnoise_noise_operator_diagonal_f32(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Float>?, _ mean: UnsafePointer<Double>?, _ batch_size: Int,
    _ sampling: CInt, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try diagonalC(n, d, grads, mean, batch_size, sampling, out) }
}

private func diagonalC<T: GradientScalar>(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<T>?, _ mean: UnsafePointer<Double>?, _ batchSize: Int,
    _ samplingCode: CInt, _ out: UnsafeMutablePointer<Double>?
) throws(SGDNoiseError) {
    let g = try gradients(n, d, grads)
    let out = try Arguments.output(out, "out")
    let f = try Arguments.noiseFactor(samplingCode, sampleCount: n, batchSize: batchSize)
    let mu = try operatorMean(g, n, d, mean)
    do {  // the core writes `out` only when the result is finite, and classifies a failure
        let result = UnsafeMutableBufferPointer(start: out, count: d)
        try core {
            try mu.withUnsafeBufferPointer { mb in
                try NoiseOperator<T>.diagonal(gradients: g, rows: n, columns: d, mean: mb, factor: f, into: result)
            }
        }
    }
}

/// The restriction (compression) Q^T C Q = (f/N)(G_c Q)^T (G_c Q) of the noise covariance to the
/// span of the k columns of the d x k row-major Q (orthonormal columns for a compression; any Q is
/// accepted), in one pass over G and without any d x d matrix. `mean` as in
/// sgdnoise_noise_operator_apply. out receives k x k doubles (symmetric).
@c public func sgdnoise_noise_operator_restrict(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Double>?, _ mean: UnsafePointer<Double>?, _ batch_size: Int,
    _ sampling: CInt, _ k: Int, _ q: UnsafePointer<Double>?, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try restrictC(n, d, grads, mean, batch_size, sampling, k, q, out) }
}

/// As sgdnoise_noise_operator_restrict, for float32 gradients (double accumulation).
@c public func sgdnoise_noise_operator_restrict_f32(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Float>?, _ mean: UnsafePointer<Double>?, _ batch_size: Int,
    _ sampling: CInt, _ k: Int, _ q: UnsafePointer<Double>?, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try restrictC(n, d, grads, mean, batch_size, sampling, k, q, out) }
}

private func restrictC<T: GradientScalar>(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<T>?, _ mean: UnsafePointer<Double>?, _ batchSize: Int,
    _ samplingCode: CInt, _ k: Int, _ q: UnsafePointer<Double>?, _ out: UnsafeMutablePointer<Double>?
) throws(SGDNoiseError) {
    let g = try gradients(n, d, grads)
    let q = try Arguments.pointer(q, "Q")
    let out = try Arguments.output(out, "out")
    try Arguments.size(k, "k", max: Arguments.maxDimension)
    let entries = try Arguments.count(d, k, "Q")
    let f = try Arguments.noiseFactor(samplingCode, sampleCount: n, batchSize: batchSize)
    let mu = try operatorMean(g, n, d, mean)
    do {  // the core writes `out` only when the result is finite, and classifies a failure
        let result = UnsafeMutableBufferPointer(start: out, count: try Arguments.count(k, k, "out"))
        try core {
            try mu.withUnsafeBufferPointer { mb in
                try NoiseOperator<T>.restrict(
                    gradients: g, rows: n, columns: d, mean: mb, factor: f,
                    basis: UnsafeBufferPointer(start: q, count: entries), count: k, into: result)
            }
        }
    }
}

