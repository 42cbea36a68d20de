import SGDNoise

// C section 10 -- Critical learning rates, sweeps, scaling laws and tails (docs/theory.md section 6).

/// Which model a critical learning rate or a learning curve refers to.
@c public enum sgdnoise_model: CInt {
    /// Label (and input) noise [Thm 2]; for input noise pass A + B.
    case labelNoise = 0
    /// High-dimensional regression [Thm 6].
    case highDimensional = 1
    /// L2 regularisation [Thm 4] (needs weight_decay).
    case l2Regularized = 2
    /// Input noise [App. E.3] (needs B and u). Accepted only by sgdnoise_learning_curve.
    case inputNoise = 3
}

/// The critical learning rate lr* of `model` (an sgdnoise_model) for batch size S and momentum:
/// the largest lr with a stationary distribution (docs/theory.md section 6), to full precision.
/// weight_decay (same layout as A; d entries, one per node, for a weighted spectrum) is read only
/// for SGDNOISE_MODEL_L2_REGULARIZED.
@c public func sgdnoise_critical_learning_rate(
    _ model: CInt, _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?,
    _ weight_decay: UnsafePointer<Double>?, _ batch_size: Int, _ momentum: Double,
    _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out, "out")
        guard let kind = sgdnoise_model(rawValue: model) else {
            throw .invalidArgument("model must be an sgdnoise_model (0, 1 or 2 here), got \(model)")
        }
        let layout = try Arguments.layout(layout, weighted: true)
        let aOp = try Arguments.symmetric(a, layout, d, "A")
        let model: Model
        switch kind {
        case .labelNoise:
            model = .labelNoise(a: aOp, noiseVariance: 0)
        case .highDimensional:
            model = .highDimensional(aHat: aOp, alpha: 1, noiseVariance: 0)
        case .l2Regularized:
            let gOp = try Arguments.companion(weight_decay, layout, d, "weight_decay")
            model = .l2Regularized(a: aOp, u: [Double](repeating: 0, count: d), weightDecay: gOp)
        case .inputNoise:
            throw .invalidArgument("model: SGDNOISE_MODEL_INPUT_NOISE is not accepted here (pass A + B with SGDNOISE_MODEL_LABEL_NOISE)")
        }
        out.pointee = try core { try model.criticalLearningRate(batchSize: batch_size, momentum: momentum) }
    }
}

/// The smallest batch size S at which label-noise SGD with learning rate lr (scalar) and momentum
/// has a stationary distribution: the smallest S with lr < lr*(S) (docs/theory.md section 6).
/// UNSTABLE (with the gradient-descent edge 2(1+momentum)/a_max as the critical learning rate)
/// when no batch size is stable.
@c public func sgdnoise_smallest_stable_batch_size(
    _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ lr: Double, _ momentum: Double,
    _ out: UnsafeMutablePointer<Int>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out, "out")
        let aOp = try Arguments.symmetric(a, try Arguments.layout(layout, weighted: true), d, "A")
        try Validation.learningRate(lr, name: "lr")
        try Validation.momentum(momentum, name: "momentum")
        out.pointee = try core { try smallestStableBatchSize(a: aOp, learningRate: lr, momentum: momentum) }
    }
}

/// Label-noise sweep on a spectrum of n eigenvalues: for each of `points` (lr, batch_size,
/// momentum) triples, kappa_mu, L_train, L_test (+inf where unstable) and lr*; O(n) per point,
/// all cores. Every output array holds `points` doubles and may be NULL.
@c public func sgdnoise_label_noise_sweep(
    _ n: Int, _ spectrum: UnsafePointer<Double>?, _ noise_var: Double, _ points: Int,
    _ lrs: UnsafePointer<Double>?, _ batch_sizes: UnsafePointer<Int>?, _ momenta: UnsafePointer<Double>?,
    _ out_kappa: UnsafeMutablePointer<Double>?, _ out_train_loss: UnsafeMutablePointer<Double>?,
    _ out_test_loss: UnsafeMutablePointer<Double>?, _ out_critical: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try labelNoiseSweep(n, spectrum, nil, noise_var, points, lrs, batch_sizes, momenta, out_kappa, out_train_loss,
                            out_test_loss, out_critical)
    }
}

/// sgdnoise_label_noise_sweep on a weighted spectrum (docs/theory.md section 8): n nodes and their
/// n weights (finite, >= 0, not all 0; e.g. from sgdnoise_spectral_density), node l standing for
/// weights[l] eigenvalues in every sum.
@c public func sgdnoise_label_noise_sweep_weighted(
    _ n: Int, _ nodes: UnsafePointer<Double>?, _ weights: UnsafePointer<Double>?, _ noise_var: Double, _ points: Int,
    _ lrs: UnsafePointer<Double>?, _ batch_sizes: UnsafePointer<Int>?, _ momenta: UnsafePointer<Double>?,
    _ out_kappa: UnsafeMutablePointer<Double>?, _ out_train_loss: UnsafeMutablePointer<Double>?,
    _ out_test_loss: UnsafeMutablePointer<Double>?, _ out_critical: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try labelNoiseSweep(n, nodes, try Arguments.vector(weights, n, "weights"), noise_var, points, lrs, batch_sizes,
                            momenta, out_kappa, out_train_loss, out_test_loss, out_critical)
    }
}

/// The C glue of both label-noise sweeps (`weights` nil: one per eigenvalue).
private func labelNoiseSweep(
    _ n: Int, _ spectrum: UnsafePointer<Double>?, _ weights: [Double]?, _ noise_var: Double, _ points: Int,
    _ lrs: UnsafePointer<Double>?, _ batch_sizes: UnsafePointer<Int>?, _ momenta: UnsafePointer<Double>?,
    _ out_kappa: UnsafeMutablePointer<Double>?, _ out_train_loss: UnsafeMutablePointer<Double>?,
    _ out_test_loss: UnsafeMutablePointer<Double>?, _ out_critical: UnsafeMutablePointer<Double>?
) throws(SGDNoiseError) {
    let a = try Arguments.vector(spectrum, n, weights == nil ? "spectrum" : "nodes")
    try Arguments.size(points, "points")
    let l = try Arguments.vector(lrs, points, "lr")
    let s = Array(UnsafeBufferPointer(start: try Arguments.pointer(batch_sizes, "batch_size"), count: points))
    let mu = try Arguments.vector(momenta, points, "momentum")
    let result = try core {
        try labelNoiseSweep(spectrum: a, weights: weights, noiseVariance: noise_var, learningRates: l, batchSizes: s,
                            momenta: mu)
    }
    for (k, r) in result.enumerated() {
        out_kappa?[k] = r.kappa
        out_train_loss?[k] = r.trainLoss
        out_test_loss?[k] = r.testLoss
        out_critical?[k] = r.criticalLearningRate
    }
}

/// The lr-S scaling law along lr = ratio * S [Sec 6.5]: for each of `count` batch sizes, Tr Sigma
/// of the exact label-noise theory (+inf where unstable) and of the lr/S law (continuous time).
@c public func sgdnoise_scaling_law(
    _ n: Int, _ spectrum: UnsafePointer<Double>?, _ noise_var: Double, _ ratio: Double,
    _ count: Int, _ batch_sizes: UnsafePointer<Int>?, _ momentum: Double,
    _ out_trace_sigma: UnsafeMutablePointer<Double>?, _ out_trace_sigma_law: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try scalingLaw(n, spectrum, nil, noise_var, ratio, count, batch_sizes, momentum, out_trace_sigma,
                       out_trace_sigma_law)
    }
}

/// sgdnoise_scaling_law on a weighted spectrum (docs/theory.md section 8): n nodes and their n
/// weights (as sgdnoise_label_noise_sweep_weighted); Tr Sigma = sum_l weight_l Sigma_l and
/// D = sum_l weight_l.
@c public func sgdnoise_scaling_law_weighted(
    _ n: Int, _ nodes: UnsafePointer<Double>?, _ weights: UnsafePointer<Double>?, _ noise_var: Double, _ ratio: Double,
    _ count: Int, _ batch_sizes: UnsafePointer<Int>?, _ momentum: Double,
    _ out_trace_sigma: UnsafeMutablePointer<Double>?, _ out_trace_sigma_law: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try scalingLaw(n, nodes, try Arguments.vector(weights, n, "weights"), noise_var, ratio, count, batch_sizes,
                       momentum, out_trace_sigma, out_trace_sigma_law)
    }
}

/// The C glue of both scaling laws (`weights` nil: one per eigenvalue).
private func scalingLaw(
    _ n: Int, _ spectrum: UnsafePointer<Double>?, _ weights: [Double]?, _ noise_var: Double, _ ratio: Double,
    _ count: Int, _ batch_sizes: UnsafePointer<Int>?, _ momentum: Double,
    _ out_trace_sigma: UnsafeMutablePointer<Double>?, _ out_trace_sigma_law: UnsafeMutablePointer<Double>?
) throws(SGDNoiseError) {
    let a = try Arguments.vector(spectrum, n, weights == nil ? "spectrum" : "nodes")
    try Arguments.size(count, "count")
    let s = Array(UnsafeBufferPointer(start: try Arguments.pointer(batch_sizes, "batch_sizes"), count: count))
    let exact = try Arguments.output(out_trace_sigma, "out_trace_sigma")
    let law = try Arguments.output(out_trace_sigma_law, "out_trace_sigma_law")
    let result = try core {
        try scalingLaw(spectrum: a, weights: weights, noiseVariance: noise_var, ratio: ratio, batchSizes: s,
                       momentum: momentum)
    }
    for (k, r) in result.enumerated() {
        exact[k] = r.traceSigma
        law[k] = r.traceSigmaScalingLaw
    }
}

/// How tail_index computes the index.
@c public enum sgdnoise_tail_method: CInt {
    /// The paper's beta = 2S/(a lr) - S [Sec 6.6].
    case paper = 0
    /// The exact index of the Kesten recursion: E|1 - (lr/S) a chi2_S|^k = 1.
    case kesten = 1
    /// The continuous-time limit 2S/(a lr) + 1.
    case continuousTime = 2
}

/// Tail index of the 1-d stationary distribution (curvature a, lr, batch size S), by `method`
/// (an sgdnoise_tail_method); +inf when it exceeds 1e4.
@c public func sgdnoise_tail_index(
    _ a: Double, _ lr: Double, _ batch_size: Int, _ method: CInt, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out, "out")
        let m: TailIndexMethod
        switch sgdnoise_tail_method(rawValue: method) {
        case .paper: m = .paper
        case .kesten: m = .kesten
        case .continuousTime: m = .continuousTime
        case nil: throw .invalidArgument("method must be an sgdnoise_tail_method (0, 1 or 2), got \(method)")
        }
        out.pointee = try core { try tailIndex(a: a, learningRate: lr, batchSize: batch_size, method: m) }
    }
}

/// The optimal scalar weight decay gamma* = argmin L_test(gamma) of L2-regularised regression
/// [Thm 4, Cor 1] (negative values allowed) and L_test(gamma*), for scalar lr.
@c public func sgdnoise_optimal_weight_decay(
    _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ u: UnsafePointer<Double>?, _ lr: Double,
    _ batch_size: Int, _ momentum: Double, _ out_gamma: UnsafeMutablePointer<Double>?,
    _ out_test_loss: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let gamma = try Arguments.output(out_gamma, "out_gamma")
        let loss = try Arguments.output(out_test_loss, "out_test_loss")
        let aOp = try Arguments.symmetric(a, try Arguments.layout(layout), d, "A")
        let uVec = try Arguments.vector(u, d, "u")
        let r = try core { try optimalWeightDecay(a: aOp, u: uVec, learningRate: lr, batchSize: batch_size, momentum: momentum) }
        gamma.pointee = r.weightDecay
        loss.pointee = r.testLoss
    }
}

/// The interval [lower, upper] of scalar weight decays gamma (Gamma = gamma I, negative allowed)
/// for which L2-regularised SGD has a stationary distribution [Thm 4], computed exactly; L_test is
/// finite exactly inside it. Both outputs are NaN (status OK) when no gamma is stable at this lr.
@c public func sgdnoise_stable_weight_decay_interval(
    _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ u: UnsafePointer<Double>?, _ lr: Double,
    _ batch_size: Int, _ momentum: Double, _ out_lower: UnsafeMutablePointer<Double>?,
    _ out_upper: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let lower = try Arguments.output(out_lower, "out_lower")
        let upper = try Arguments.output(out_upper, "out_upper")
        let aOp = try Arguments.symmetric(a, try Arguments.layout(layout), d, "A")
        let uVec = try Arguments.vector(u, d, "u")
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        let r = try core {
            try stableWeightDecayInterval(a: aOp, u: uVec, learningRate: lr, batchSize: batch_size, momentum: momentum)
        }
        lower.pointee = r?.lower ?? .nan
        upper.pointee = r?.upper ?? .nan
    }
}

/// L_test(gamma) of L2-regularised regression for `count` scalar weight decays (+inf where
/// unstable), after one eigendecomposition of A. out: `count` doubles.
@c public func sgdnoise_l2_test_loss_curve(
    _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ u: UnsafePointer<Double>?, _ lr: Double,
    _ batch_size: Int, _ momentum: Double, _ count: Int, _ weight_decays: UnsafePointer<Double>?,
    _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out, "out")
        let aOp = try Arguments.symmetric(a, try Arguments.layout(layout), d, "A")
        let uVec = try Arguments.vector(u, d, "u")
        let gammas = try Arguments.vector(weight_decays, count, "weight_decays")
        let r = try core { try l2TestLossCurve(a: aOp, u: uVec, learningRate: lr, batchSize: batch_size, momentum: momentum, weightDecays: gammas) }
        Arguments.write(r, to: out)
    }
}
