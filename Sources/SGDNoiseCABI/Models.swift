import SGDNoise
import _SGDNoiseShims

// C section 5 -- Closed forms of linear regression (docs/theory.md section 4).
// Shared conventions: `layout` is an sgdnoise_layout; A (and B, weight_decay, lr_matrix) hold d*d
// entries (dense) or d (diagonal); the learning rate is lr * I, or lr * lr_matrix when lr_matrix
// is not NULL; out_sigma and out_noise receive d*d (dense) or d (diagonal) doubles, out_mean d,
// out_prediction the scalars (set its .size first); every output pointer may be NULL.

/// Label noise [Lemma 1, Thm 2, Thm 3]: Sigma, noise C, losses, kappa_mu and lr* for linear
/// regression with input covariance A, label-noise variance noise_var, batch size S, momentum.
@c public func sgdnoise_label_noise(
    _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ noise_var: Double,
    _ lr: Double, _ lr_matrix: UnsafePointer<Double>?, _ batch_size: Int, _ momentum: Double,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_noise: UnsafeMutablePointer<Double>?,
    _ out_prediction: UnsafeMutablePointer<sgdnoise_prediction>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        try Validation.nonNegative(noise_var, name: "noise_var")
        let layout = try Arguments.layout(layout, weighted: true)
        let aOp = try Arguments.symmetric(a, layout, d, "A")
        let rate = try Arguments.learningRate(lr, lr_matrix, layout, d)
        let p = try inCallerUnits(lr: lr, lrMatrix: lr_matrix) { try labelNoise(a: aOp, noiseVariance: noise_var, learningRate: rate, batchSize: batch_size, momentum: momentum) }
        Arguments.write(p, sigma: out_sigma, noise: out_noise, mean: nil, scalars: try Arguments.prediction(out_prediction), lr: lr, lrMatrix: lr_matrix)
    }
}

/// Input noise [App. E.3]: inputs x + xi with xi ~ N(0, B), labels from the clean x = teacher u
/// (d entries) plus label noise noise_var. out_mean receives w* = (A+B)^{-1} A u.
@c public func sgdnoise_input_noise(
    _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ b: UnsafePointer<Double>?,
    _ u: UnsafePointer<Double>?, _ noise_var: Double, _ lr: Double, _ lr_matrix: UnsafePointer<Double>?,
    _ batch_size: Int, _ momentum: Double, _ out_sigma: UnsafeMutablePointer<Double>?,
    _ out_noise: UnsafeMutablePointer<Double>?, _ out_mean: UnsafeMutablePointer<Double>?,
    _ out_prediction: UnsafeMutablePointer<sgdnoise_prediction>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        try Validation.nonNegative(noise_var, name: "noise_var")
        let layout = try Arguments.layout(layout)
        let aOp = try Arguments.symmetric(a, layout, d, "A")
        let bOp = try Arguments.companion(b, layout, d, "B")
        let uVec = try Arguments.vector(u, d, "u")
        let rate = try Arguments.learningRate(lr, lr_matrix, layout, d)
        let p = try inCallerUnits(lr: lr, lrMatrix: lr_matrix) {
            try inputNoise(a: aOp, b: bOp, u: uVec, learningRate: rate, batchSize: batch_size,
                           noiseVariance: noise_var, momentum: momentum)
        }
        Arguments.write(p, sigma: out_sigma, noise: out_noise, mean: out_mean, scalars: try Arguments.prediction(out_prediction), lr: lr, lrMatrix: lr_matrix)
    }
}

/// L2 regularisation [Prop 3, Thm 4]: loss (w-u)^T A (w-u)/2 + w^T G w/2 with G = weight_decay
/// (d*d or d entries; any sign with A + G positive definite), no label noise. out_mean is w*.
@c public func sgdnoise_l2_regularized(
    _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ u: UnsafePointer<Double>?,
    _ weight_decay: UnsafePointer<Double>?, _ lr: Double, _ lr_matrix: UnsafePointer<Double>?,
    _ batch_size: Int, _ momentum: Double, _ out_sigma: UnsafeMutablePointer<Double>?,
    _ out_noise: UnsafeMutablePointer<Double>?, _ out_mean: UnsafeMutablePointer<Double>?,
    _ out_prediction: UnsafeMutablePointer<sgdnoise_prediction>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        let layout = try Arguments.layout(layout)
        let aOp = try Arguments.symmetric(a, layout, d, "A")
        let gOp = try Arguments.companion(weight_decay, layout, d, "weight_decay")
        let uVec = try Arguments.vector(u, d, "u")
        let rate = try Arguments.learningRate(lr, lr_matrix, layout, d)
        let p = try inCallerUnits(lr: lr, lrMatrix: lr_matrix) {
            try l2Regularized(a: aOp, u: uVec, weightDecay: gOp, learningRate: rate, batchSize: batch_size, momentum: momentum)
        }
        Arguments.write(p, sigma: out_sigma, noise: out_noise, mean: out_mean, scalars: try Arguments.prediction(out_prediction), lr: lr, lrMatrix: lr_matrix)
    }
}

/// High-dimensional regression [Prop 4, Thm 6]: empirical covariance A_hat, alpha = N/D > 0.
@c public func sgdnoise_high_dimensional(
    _ layout: CInt, _ d: Int, _ a_hat: UnsafePointer<Double>?, _ alpha: Double, _ noise_var: Double,
    _ lr: Double, _ lr_matrix: UnsafePointer<Double>?, _ batch_size: Int, _ momentum: Double,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_noise: UnsafeMutablePointer<Double>?,
    _ out_prediction: UnsafeMutablePointer<sgdnoise_prediction>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        try Validation.nonNegative(noise_var, name: "noise_var")
        let layout = try Arguments.layout(layout, weighted: true)
        let aOp = try Arguments.symmetric(a_hat, layout, d, "A_hat")
        let rate = try Arguments.learningRate(lr, lr_matrix, layout, d)
        let p = try inCallerUnits(lr: lr, lrMatrix: lr_matrix) {
            try highDimensional(aHat: aOp, alpha: alpha, noiseVariance: noise_var, learningRate: rate,
                                batchSize: batch_size, momentum: momentum)
        }
        Arguments.write(p, sigma: out_sigma, noise: out_noise, mean: nil, scalars: try Arguments.prediction(out_prediction), lr: lr, lrMatrix: lr_matrix)
    }
}

/// Damped Newton [Sec 6.4]: label noise with learning rate lr * A^{-1};
/// Sigma = lr noise_var / (g S - lr D) A^{-1}.
@c public func sgdnoise_damped_newton(
    _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ noise_var: Double, _ lr: Double,
    _ batch_size: Int, _ momentum: Double, _ out_sigma: UnsafeMutablePointer<Double>?,
    _ out_noise: UnsafeMutablePointer<Double>?, _ out_prediction: UnsafeMutablePointer<sgdnoise_prediction>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        try Validation.nonNegative(noise_var, name: "noise_var")
        let aOp = try Arguments.symmetric(a, try Arguments.layout(layout), d, "A")
        let p = try core { try dampedNewton(a: aOp, noiseVariance: noise_var, learningRate: lr, batchSize: batch_size, momentum: momentum) }
        Arguments.write(p, sigma: out_sigma, noise: out_noise, mean: nil, scalars: try Arguments.prediction(out_prediction))
    }
}

/// Natural gradient [Sec 6.4] without label noise, learning rate (lr/S) C^{-1}:
/// Sigma = (lr/2)(1/((1+D)(1+mu)) + 1/((1-mu)S)) A^{-1}.
@c public func sgdnoise_natural_gradient(
    _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ lr: Double, _ batch_size: Int,
    _ momentum: Double, _ out_sigma: UnsafeMutablePointer<Double>?,
    _ out_noise: UnsafeMutablePointer<Double>?, _ out_prediction: UnsafeMutablePointer<sgdnoise_prediction>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        let aOp = try Arguments.symmetric(a, try Arguments.layout(layout), d, "A")
        let p = try core { try naturalGradient(a: aOp, learningRate: lr, batchSize: batch_size, momentum: momentum) }
        Arguments.write(p, sigma: out_sigma, noise: out_noise, mean: nil, scalars: try Arguments.prediction(out_prediction))
    }
}

/// Baseline: continuous time with Hessian-shaped noise [Eq. 7], Sigma = noise_var/(2S(1-mu)) L.
@c public func sgdnoise_continuous_time(
    _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ noise_var: Double, _ lr: Double,
    _ lr_matrix: UnsafePointer<Double>?, _ batch_size: Int, _ momentum: Double,
    _ out_sigma: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_sigma, "out_sigma")
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        try Validation.nonNegative(noise_var, name: "noise_var")
        let layout = try Arguments.layout(layout)
        let aOp = try Arguments.symmetric(a, layout, d, "A")
        let rate = try Arguments.learningRate(lr, lr_matrix, layout, d)
        Arguments.write(try inCallerUnits(lr: lr, lrMatrix: lr_matrix) { try continuousTime(a: aOp, noiseVariance: noise_var, learningRate: rate, batchSize: batch_size, momentum: momentum) }, to: out)
    }
}

/// Baseline: discrete time with Hessian-shaped noise C = (noise_var/S) A;
/// Sigma = (lr noise_var/S)(2I - lr A)^{-1} for scalar lr and mu = 0.
@c public func sgdnoise_discrete_hessian(
    _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ noise_var: Double, _ lr: Double,
    _ lr_matrix: UnsafePointer<Double>?, _ batch_size: Int, _ momentum: Double,
    _ out_sigma: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_sigma, "out_sigma")
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        try Validation.nonNegative(noise_var, name: "noise_var")
        let layout = try Arguments.layout(layout)
        let aOp = try Arguments.symmetric(a, layout, d, "A")
        let rate = try Arguments.learningRate(lr, lr_matrix, layout, d)
        Arguments.write(try inCallerUnits(lr: lr, lrMatrix: lr_matrix) { try discreteHessian(a: aOp, noiseVariance: noise_var, learningRate: rate, batchSize: batch_size, momentum: momentum) }, to: out)
    }
}
