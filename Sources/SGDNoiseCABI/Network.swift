import SGDNoise
import _SGDNoiseShims

// C section 11 -- Real networks: matrix-free curvature and fluctuation (docs/theory.md section 8)

/// Which end of the spectrum sgdnoise_hessian_eigen computes.
@c public enum sgdnoise_spectrum_end: CInt {
    /// The k algebraically largest eigenpairs, in descending order.
    case largest = 0
    /// The k algebraically smallest, in ascending order (negative curvature first).
    case smallest = 1
    /// Both: the k largest (descending), then the k smallest (ascending); outputs hold 2k.
    case both = 2
    /// LARGEST without the verification cycle, as ARPACK: fewer products (no search for a missed
    /// copy of a repeated eigenvalue; residuals from the Lanczos relation, not recomputed).
    case largest_unverified = 3
    /// SMALLEST without the verification cycle (as LARGEST_UNVERIFIED).
    case smallest_unverified = 4
    /// BOTH without the verification cycle (as LARGEST_UNVERIFIED).
    case both_unverified = 5
}

/// A C callback as the core's product closure: a nonzero return stops with CANCELLED.
func product(
    _ callback: sgdnoise_matvec_callback?, _ context: UnsafeMutableRawPointer?, _ d: Int, _ name: String
) throws(SGDNoiseError) -> HessianOperator.Product {
    guard let callback else { throw .invalidArgument("\(name) must not be NULL") }
    return { v, out in
        let code = callback(context, d, v.baseAddress, out.baseAddress)
        guard code == 0 else {
            throw SGDNoiseError.cancelled("the \(name) callback returned \(code): stopped")
        }
    }
}

/// A C block callback as the core's block product: a nonzero return stops with CANCELLED.
private func blockProduct(
    _ callback: sgdnoise_block_matvec_callback?, _ context: UnsafeMutableRawPointer?, _ d: Int, _ name: String
) throws(SGDNoiseError) -> HessianOperator.BlockProduct {
    guard let callback else { throw .invalidArgument("\(name) must not be NULL") }
    return { count, v, out in
        let code = callback(context, d, count, v.baseAddress, out.baseAddress)
        guard code == 0 else {
            throw SGDNoiseError.cancelled("the \(name) callback returned \(code): stopped")
        }
    }
}

/// The k largest and/or smallest eigenpairs of the symmetric operator of `hessian` (dimension d)
/// by restarted Lanczos, reorthogonalised fully below d = 16384 and partially from there on (docs/theory.md section 8); `which` is an
/// sgdnoise_spectrum_end: the three ends verified (a verification cycle searches for missed copies
/// of repeated eigenvalues, then every residual is recomputed with one more product) or, the
/// *_UNVERIFIED codes, ARPACK's contract in fewer products. Residual
/// tolerance: |H q - theta q| <= tolerance * max|theta| (0: the default 1e-10); max_products (0:
/// the library's default budget) bounds the products. out_values: k doubles (2k for SGDNOISE_SPECTRUM_END_BOTH);
/// out_vectors (may be NULL): as many rows of d doubles, the orthonormal eigenvectors;
/// out_residuals (may be NULL): |H q - theta q| per pair. Not converged within the budget: status
/// OK with out_info->converged = 0 and the residuals reached.
@c public func sgdnoise_hessian_eigen(
    _ d: Int, _ hessian: sgdnoise_matvec_callback?, _ context: UnsafeMutableRawPointer?, _ k: Int, _ which: CInt,
    _ tolerance: Double, _ max_products: Int, _ seed: UInt64, _ out_values: UnsafeMutablePointer<Double>?,
    _ out_vectors: UnsafeMutablePointer<Double>?, _ out_residuals: UnsafeMutablePointer<Double>?,
    _ out_info: UnsafeMutablePointer<sgdnoise_eigen_info>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let values = try Arguments.output(out_values, "out_values")
        try Arguments.size(d, "d", max: 1 << 40)
        guard let end = sgdnoise_spectrum_end(rawValue: which) else {
            throw .invalidArgument("which must be an sgdnoise_spectrum_end (0 to 5), got \(which)")
        }
        let tol = tolerance == 0 ? 1e-10 : tolerance
        guard max_products >= 0 else { throw .invalidArgument("max_products must be >= 0, got \(max_products)") }
        let infoSize = try out_info.map { (p: UnsafeMutablePointer<sgdnoise_eigen_info>) throws(SGDNoiseError) in
            try Results.callerSize(p, "out_info", "sgdnoise_eigen_info")
        }
        let operator_ = try core { try HessianOperator(dimension: d, product: try product(hessian, context, d, "hessian")) }
        let spectrumEnd: SpectrumEnd = [.largest, .smallest, .both][Int(end.rawValue) % 3]
        let r = try core {
            try lanczosEigenpairs(operator_, count: k, which: spectrumEnd, tolerance: tol,
                                  maxProducts: max_products == 0 ? nil : max_products, seed: seed,
                                  verify: end.rawValue < 3)
        }
        Arguments.write(r.eigenvalues, to: values)
        if let out_vectors { Arguments.write(r.eigenvectorRows.elements, to: out_vectors) }
        if let out_residuals { Arguments.write(r.residuals, to: out_residuals) }
        if let out_info, let infoSize {
            Results.write(sgdnoise_eigen_info(size: 0, converged: r.converged ? 1 : 0, products: Int64(r.productCount),
                                              restarts: Int64(r.restarts)), to: out_info, callerSize: infoSize)
        }
    }
}

/// The stationary fluctuation of SGD at a minimum of a network, matrix-free (docs/theory.md
/// section 8): `hessian` gives H v, `noise` gives C v (C the minibatch noise covariance at the
/// minimum), learning rate lr * I or diag(lr_diagonal) (d positive entries; lr is then ignored
/// and the critical learning rates are multiples of that diagonal), momentum in [0, 1).
/// k >= 1 eigenpairs at each end (2k < d); probes >= 2 Rademacher probes; steps >= 1 Lanczos
/// steps per probe; batch_size (0: not given) is S for the multiplicative critical learning rate;
/// tolerance of the eigenpairs (0: 1e-8); seed of every random vector. Outputs (each may be NULL
/// except out_summary): out_top_values (k, m_i of Ht = L^{1/2} H L^{1/2} descending),
/// out_top_vectors (k rows of d), out_bottom_values (k, ascending: negative = negative curvature),
/// out_fluctuation_block (k x k: X_ij = (Q^T Ct Q)_ij / d_ij, the exact block of
/// L^{-1/2} Sigma L^{-1/2} on the top-k eigenvectors; for lr * I the block of Sigma is lr * X).
/// UNSTABLE (with the additive critical learning rate) when m_1 >= 2(1+momentum).
@c public func sgdnoise_network_fluctuation(
    _ d: Int, _ hessian: sgdnoise_matvec_callback?, _ hessian_context: UnsafeMutableRawPointer?,
    _ noise: sgdnoise_matvec_callback?, _ noise_context: UnsafeMutableRawPointer?,
    _ lr: Double, _ lr_diagonal: UnsafePointer<Double>?, _ momentum: Double, _ k: Int, _ probes: Int, _ steps: Int,
    _ batch_size: Int, _ tolerance: Double, _ seed: UInt64,
    _ out_top_values: UnsafeMutablePointer<Double>?, _ out_top_vectors: UnsafeMutablePointer<Double>?,
    _ out_bottom_values: UnsafeMutablePointer<Double>?, _ out_fluctuation_block: UnsafeMutablePointer<Double>?,
    _ out_summary: UnsafeMutablePointer<sgdnoise_network_summary>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try fluctuation(
            d, { () throws(SGDNoiseError) in
                let h = try product(hessian, hessian_context, d, "hessian")
                let c = try product(noise, noise_context, d, "noise")
                return try core { (try HessianOperator(dimension: d, product: h), try HessianOperator(dimension: d, product: c)) }
            }, lr, lr_diagonal, momentum, k, probes, steps, batch_size, tolerance, seed, out_top_values,
            out_top_vectors, out_bottom_values, out_fluctuation_block, out_summary)
    }
}

/// sgdnoise_network_fluctuation with block products (docs/theory.md section 8): `hessian` and
/// `noise` take up to block_size >= 1 vectors per call (sgdnoise_block_matvec_callback), the other
/// arguments and every output as there, the results equal to those of single products (to
/// rounding: the same when each row of a block product has the bits of the single product). The
/// Hutchinson and quadrature probes advance block_size at a time in lockstep, one block product per
/// step for those still running; the noise products of the top-k block, the bottom directions and
/// each group of probes come as blocks; the eigenpairs take blocks of one. Memory
/// O((k + block_size * steps) * d) doubles; the summary's products count vectors.
@c public func sgdnoise_network_fluctuation_block(
    _ d: Int, _ hessian: sgdnoise_block_matvec_callback?, _ hessian_context: UnsafeMutableRawPointer?,
    _ noise: sgdnoise_block_matvec_callback?, _ noise_context: UnsafeMutableRawPointer?, _ block_size: Int,
    _ lr: Double, _ lr_diagonal: UnsafePointer<Double>?, _ momentum: Double, _ k: Int, _ probes: Int, _ steps: Int,
    _ batch_size: Int, _ tolerance: Double, _ seed: UInt64,
    _ out_top_values: UnsafeMutablePointer<Double>?, _ out_top_vectors: UnsafeMutablePointer<Double>?,
    _ out_bottom_values: UnsafeMutablePointer<Double>?, _ out_fluctuation_block: UnsafeMutablePointer<Double>?,
    _ out_summary: UnsafeMutablePointer<sgdnoise_network_summary>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try fluctuation(
            d, { () throws(SGDNoiseError) in
                let h = try blockProduct(hessian, hessian_context, d, "hessian")
                let c = try blockProduct(noise, noise_context, d, "noise")
                guard block_size >= 1 else { throw .invalidArgument("block_size must be >= 1, got \(block_size)") }
                let b = min(block_size, max(probes, k, 1))  // no block is larger than this
                return try core {
                    (try HessianOperator(dimension: d, blockSize: b, blockProduct: h),
                     try HessianOperator(dimension: d, blockSize: b, blockProduct: c))
                }
            }, lr, lr_diagonal, momentum, k, probes, steps, batch_size, tolerance, seed, out_top_values,
            out_top_vectors, out_bottom_values, out_fluctuation_block, out_summary)
    }
}

/// The body of sgdnoise_network_fluctuation and its block form: the arguments checked, the two
/// operators made by `operators` (after the checks of the arguments before them), the results written.
private func fluctuation(
    _ d: Int, _ operators: () throws(SGDNoiseError) -> (HessianOperator, HessianOperator),
    _ lr: Double, _ lr_diagonal: UnsafePointer<Double>?, _ momentum: Double, _ k: Int, _ probes: Int, _ steps: Int,
    _ batch_size: Int, _ tolerance: Double, _ seed: UInt64,
    _ out_top_values: UnsafeMutablePointer<Double>?, _ out_top_vectors: UnsafeMutablePointer<Double>?,
    _ out_bottom_values: UnsafeMutablePointer<Double>?, _ out_fluctuation_block: UnsafeMutablePointer<Double>?,
    _ out_summary: UnsafeMutablePointer<sgdnoise_network_summary>?
) throws(SGDNoiseError) {
    let summary = try Arguments.output(out_summary, "out_summary")
    let summarySize = try Results.callerSize(summary, "out_summary", "sgdnoise_network_summary")
    try Arguments.size(d, "d", max: 1 << 40)
    let rate: LearningRate
    if let lr_diagonal {
        rate = .diagonal(try Arguments.vector(lr_diagonal, d, "lr_diagonal"))
    } else {
        try Validation.learningRate(lr, name: "lr")
        rate = .scalar(lr)
    }
    try Validation.momentum(momentum, name: "momentum")
    guard batch_size >= 0 else { throw .invalidArgument("batch_size must be >= 0 (0: not given), got \(batch_size)") }
    let tol = tolerance == 0 ? 1e-8 : tolerance
    let (h, c) = try operators()
    let r = try core {  // the core reports critical learning rates in the caller's units already
        try networkFluctuation(hessian: h, noiseOperator: c, learningRate: rate, momentum: momentum, k: k,
                               probes: probes, steps: steps, batchSize: batch_size == 0 ? nil : batch_size,
                               tolerance: tol, seed: seed)
    }
    if let out_top_values { Arguments.write(r.topEigenvalues, to: out_top_values) }
    if let out_top_vectors { Arguments.write(r.topEigenvectorRows.elements, to: out_top_vectors) }
    if let out_bottom_values { Arguments.write(r.bottomEigenvalues, to: out_bottom_values) }
    if let out_fluctuation_block { Arguments.write(r.fluctuationBlock.elements, to: out_fluctuation_block) }
    let m = r.criticalLearningRateMultiplicative
    Results.write(sgdnoise_network_summary(
        size: 0, excess_loss: r.excessLoss.value, excess_loss_stderr: r.excessLoss.standardError,
        top_trace_sigma: r.topTraceSigma, critical_learning_rate_additive: r.criticalLearningRateAdditive,
        critical_learning_rate_multiplicative: m?.value ?? .nan,
        critical_learning_rate_multiplicative_stderr: m?.standardError ?? .nan,
        hessian_products: Int64(r.hessianProducts), noise_products: Int64(r.noiseProducts),
        max_residual: r.topResiduals.max() ?? 0, top_converged: r.topConverged ? 1 : 0,
        bottom_converged: r.bottomConverged ? 1 : 0, top_relaxation_steps: r.topRelaxationSteps,
        slowest_relaxation_steps: r.slowestRelaxationSteps, flat_directions: Int64(r.flatCount),
        flat_diffusion_per_step: r.flatDiffusionPerStep,
        bottom_noise_trace: r.bottomNoise.reduce(0, +)), to: summary, callerSize: summarySize)
}

/// The mean displacement E[w_t - w*] of SGD driven by its own fluctuation, at second order
/// (docs/theory.md section 8, "Drift"): the mean follows the gradient of L + 1/2 Tr[H(w) Sigma]
/// with Sigma held fixed, a constant force 1/2 g with g = grad_w Tr[H(w) Sigma] at w*; stiff
/// directions settle at the offset -1/2 H^{-1} g, flat ones drift by lr/(2(1-momentum)) g per step.
/// `hessian` gives H v at w*; `curvature_gradient` (same callback type, not linear) gives
/// out = grad_w (v^T H(w) v) at w*, the third derivative contracted twice with v. Sigma is given on
/// k eigenvectors of H: `eigenvalues` (k, h_i), `eigenvectors` (k rows of d, orthonormal),
/// `sigma_block` (k x k, Q^T Sigma Q; e.g. lr times the fluctuation block of
/// sgdnoise_network_fluctuation, or the whole dense Sigma in H's eigenbasis with k = d). lr > 0,
/// momentum in [0, 1); at_steps: `points` step counts t >= 0; krylov_steps (0: 60) bounds the
/// Hessian-vector products for the part of g outside the eigenvectors. Outputs (each may be NULL
/// except out_summary): out_gradient (d: g), out_displacements (points rows of d: E[w_t - w*]),
/// out_eigenvector_displacements (points rows of k: Q E[w_t - w*]), out_offsets (k: the stationary
/// offset -1/2 q_i^T g / h_i; NaN where h_i <= 0).
@c public func sgdnoise_mean_drift(
    _ d: Int, _ hessian: sgdnoise_matvec_callback?, _ hessian_context: UnsafeMutableRawPointer?,
    _ curvature_gradient: sgdnoise_matvec_callback?, _ curvature_gradient_context: UnsafeMutableRawPointer?,
    _ k: Int, _ eigenvalues: UnsafePointer<Double>?, _ eigenvectors: UnsafePointer<Double>?,
    _ sigma_block: UnsafePointer<Double>?, _ lr: Double, _ momentum: Double, _ points: Int,
    _ at_steps: UnsafePointer<Int>?, _ krylov_steps: Int, _ out_gradient: UnsafeMutablePointer<Double>?,
    _ out_displacements: UnsafeMutablePointer<Double>?, _ out_eigenvector_displacements: UnsafeMutablePointer<Double>?,
    _ out_offsets: UnsafeMutablePointer<Double>?, _ out_summary: UnsafeMutablePointer<sgdnoise_drift_summary>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let summary = try Arguments.output(out_summary, "out_summary")
        let summarySize = try Results.callerSize(summary, "out_summary", "sgdnoise_drift_summary")
        try Arguments.size(d, "d", max: 1 << 40)
        try Arguments.size(k, "k", max: d)
        try Arguments.size(points, "points")
        let values = try Arguments.vector(eigenvalues, k, "eigenvalues")
        let rowEntries = try Arguments.vector(eigenvectors, try Arguments.count(k, d, "eigenvectors"), "eigenvectors")
        let blockEntries = try Arguments.vector(sigma_block, try Arguments.count(k, k, "sigma_block"), "sigma_block")
        let rows = try core { try Matrix(rows: k, columns: d, elements: rowEntries) }
        let block = try core { try Matrix(rows: k, columns: k, elements: blockEntries) }
        let steps = Array(UnsafeBufferPointer(start: try Arguments.pointer(at_steps, "at_steps"), count: points))
        guard krylov_steps >= 0 else { throw .invalidArgument("krylov_steps must be >= 0 (0: the default), got \(krylov_steps)") }
        let h = try core { try HessianOperator(dimension: d, product: try product(hessian, hessian_context, d, "hessian")) }
        let g = try product(curvature_gradient, curvature_gradient_context, d, "curvature_gradient")
        let r = try core {
            try meanDrift(hessian: h, curvatureGradient: g, eigenvalues: values, eigenvectorRows: rows, sigmaBlock: block,
                          learningRate: lr, momentum: momentum, steps: steps,
                          krylovSteps: krylov_steps == 0 ? 60 : krylov_steps)
        }
        if let out_gradient { Arguments.write(r.curvatureGradient, to: out_gradient) }
        if let out_displacements { Arguments.write(r.displacements.elements, to: out_displacements) }
        if let out_eigenvector_displacements {
            Arguments.write(r.eigenvectorDisplacements.elements, to: out_eigenvector_displacements)
        }
        if let out_offsets { Arguments.write(r.stationaryOffsets, to: out_offsets) }
        Results.write(sgdnoise_drift_summary(
            size: 0, excess_loss_covered: r.excessLossCovered, converged: r.converged ? 1 : 0,
            hessian_products: Int64(r.hessianProducts), curvature_gradient_products: Int64(r.curvatureGradientProducts)),
            to: summary, callerSize: summarySize)
    }
}

/// The steps in which the mean of SGD with momentum relaxes by a factor e along a direction of
/// curvature `curvature` = lr * h (docs/theory.md section 8): -1/ln(rho), rho the spectral radius
/// of the mean recursion's map [[momentum, x], [-momentum, 1 - x]]; INFINITY for a flat, negative
/// or unstable direction. Second moments relax twice as fast. momentum in [0, 1).
@c public func sgdnoise_relaxation_steps(
    _ curvature: Double, _ momentum: Double, _ out_steps: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_steps, "out_steps")
        guard curvature.isFinite else { throw .invalidArgument("curvature must be finite, got \(curvature)") }
        try Validation.momentum(momentum, name: "momentum")
        out.pointee = relaxationSteps(curvature: curvature, momentum: momentum)
    }
}
