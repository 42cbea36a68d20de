import SGDNoise

// C section 7 -- Noise and fluctuation near a general minimum (docs/theory.md section 5).

/// The kind of minimum [Cor 2].
@c public enum sgdnoise_minimum_kind: CInt {
    /// Weight decay present: C = (2 L0/S) H0 - (1/S) G w* w*^T G.
    case regularized = 0
    /// No weight decay, L0 > 0: C = (2 L0/S) H0.
    case nonInterpolating = 1
    /// No weight decay, L0 = 0: C = (1/S)(Tr[H0 Sigma] I - H0 Sigma) H0.
    case interpolating = 2
}

private func kindCode(_ k: MinimumKind) -> CInt {
    switch k {
    case .regularized: return sgdnoise_minimum_kind.regularized.rawValue
    case .nonInterpolating: return sgdnoise_minimum_kind.nonInterpolating.rawValue
    case .interpolating: return sgdnoise_minimum_kind.interpolating.rawValue
    }
}

/// SGD noise near a minimum of any model with MSE loss [Thm 5, Cor 2]: hessian H0 (layout), loss
/// L0 >= 0, weight_decay (same layout, may be NULL), w_star (d, needed with weight decay), sigma
/// (same layout, needed when L0 = 0 without weight decay). out_noise: d*d doubles (dense) or the d
/// diagonal entries of C (diagonal layout; INVALID_ARGUMENT when C is not diagonal there, which
/// happens with weight decay when G w* has more than one nonzero entry; nothing is dropped);
/// out_kind (may be NULL): an sgdnoise_minimum_kind. flat_tolerance: eigenvalues h of H0 with
/// |h| <= flat_tolerance * max|h| are round-off, taken as zero (0: the default 16 d eps). A C that
/// is not a covariance (an eigenvalue below -flat_tolerance * its largest |eigenvalue|: Thm 5
/// does not hold at this minimum, e.g. H0 indefinite with weight decay) is INVALID_ARGUMENT.
@c public func sgdnoise_minimum_noise(
    _ layout: CInt, _ d: Int, _ hessian: UnsafePointer<Double>?, _ loss: Double, _ batch_size: Int,
    _ weight_decay: UnsafePointer<Double>?, _ w_star: UnsafePointer<Double>?, _ sigma: UnsafePointer<Double>?,
    _ flat_tolerance: Double, _ out_noise: UnsafeMutablePointer<Double>?, _ out_kind: UnsafeMutablePointer<CInt>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_noise, "out_noise")
        let layout = try Arguments.layout(layout)
        let h = try Arguments.symmetric(hessian, layout, d, "hessian")
        let g = try weight_decay.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.companion(p, layout, d, "weight_decay") }
        let w = try w_star.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.vector(p, d, "w_star") }
        let s = try sigma.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.companion(p, layout, d, "sigma") }
        try Validation.batchSize(batch_size, name: "batch_size")
        try Validation.nonNegative(loss, name: "loss")
        let tolerance = try Arguments.flatTolerance(flat_tolerance, d)
        let result = try core {
            try minimumNoise(hessian: h, loss: loss, batchSize: batch_size, weightDecay: g, wStar: w, sigma: s,
                             flatTolerance: tolerance)
        }
        if layout == .diagonal {
            guard case .diagonal(let c) = result.noise else {
                throw .invalidArgument(
                    "the noise is not diagonal in this basis (the weight-decay term (G w*)(G w*)^T/S has off-diagonal entries): "
                        + "pass the dense layout SGDNOISE_LAYOUT_DENSE to receive all d*d entries")
            }
            Arguments.write(c, to: out)
        } else {
            Arguments.write(result.noise.matrix, to: out)
        }
        out_kind?.pointee = kindCode(result.kind)
    }
}

/// The matching stationary fluctuation [Cor 3]: Theorem 1 with H = H0 + weight_decay and the noise
/// of sgdnoise_minimum_noise (zero on the range of H0 at an interpolating minimum when stable);
/// hessian may be a weighted spectrum (SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM, without weight decay;
/// out_sigma then holds the d per-node values);
/// learning rate lr * I or lr * lr_matrix; flat_tolerance as for sgdnoise_minimum_noise (0: the
/// default 16 d eps, the same as sgdnoise_stationary_fluctuation's). out_sigma: d*d or d doubles;
/// out_kind and out_critical (the critical learning rate, NaN if unknown) may be NULL.
@c public func sgdnoise_minimum_fluctuation(
    _ layout: CInt, _ d: Int, _ hessian: UnsafePointer<Double>?, _ loss: Double, _ lr: Double,
    _ lr_matrix: UnsafePointer<Double>?, _ batch_size: Int, _ weight_decay: UnsafePointer<Double>?,
    _ w_star: UnsafePointer<Double>?, _ momentum: Double, _ flat_tolerance: Double, _ out_sigma: UnsafeMutablePointer<Double>?,
    _ out_kind: UnsafeMutablePointer<CInt>?, _ out_critical: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_sigma, "out_sigma")
        let layout = try Arguments.layout(layout, weighted: true)
        let h = try Arguments.symmetric(hessian, layout, d, "hessian")
        let g = try weight_decay.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.companion(p, layout, d, "weight_decay") }
        let w = try w_star.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.vector(p, d, "w_star") }
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        try Validation.nonNegative(loss, name: "loss")
        let rate = try Arguments.learningRate(lr, lr_matrix, layout, d)
        let tolerance = try Arguments.flatTolerance(flat_tolerance, h.directionCount)
        let result = try inCallerUnits(lr: lr, lrMatrix: lr_matrix) {
            try minimumFluctuation(hessian: h, loss: loss, learningRate: rate, batchSize: batch_size,
                                   weightDecay: g, wStar: w, momentum: momentum, flatTolerance: tolerance)
        }
        if layout == .dense {
            Arguments.write(result.sigma.matrix, to: out)
        } else {
            Arguments.write(result.sigma.diagonalEntries, to: out)
        }
        out_kind?.pointee = kindCode(result.kind)
        out_critical?.pointee = result.criticalLearningRate.map { callerScale(lr: lr, lrMatrix: lr_matrix) * $0 } ?? .nan
    }
}
