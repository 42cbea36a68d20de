import SGDNoise

/// Stationary fluctuation of SGD [Thm 1]: solves
/// (1-mu)(LHS + SHL) - c1 LHSHL + c2 (LHLHS + SHLHL) = LCL for S (all d x d row-major), with
/// L = lr * I when lr_matrix is NULL, else lr * lr_matrix (symmetric positive definite).
/// Returns SGDNOISE_STATUS_UNSTABLE, with the critical learning rate, when lr*eig(H) leaves
/// (0, 2(1+momentum)). Flat directions of H get zero fluctuation. out_sigma: d*d doubles.
@c public func sgdnoise_stationary_covariance(
    _ d: Int, _ hessian: UnsafePointer<Double>?, _ noise: UnsafePointer<Double>?,
    _ lr: Double, _ lr_matrix: UnsafePointer<Double>?, _ momentum: Double,
    _ out_sigma: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_sigma, "out_sigma")
        // Checked here so that the message names the C argument `d`.
        try Arguments.size(d, "d", max: Arguments.maxDimension)
        let h = try Arguments.squareMatrix(hessian, d, "hessian")
        let c = try Arguments.squareMatrix(noise, d, "noise")
        let rate = try Arguments.learningRate(lr, lr_matrix, d)
        try Arguments.finite(momentum, "momentum")
        let result = try inCallerUnits(lr: lr, lrMatrix: lr_matrix) {
            try stationaryCovariance(hessian: h, noise: c, learningRate: rate, momentum: momentum)
        }
        Arguments.write(result.sigma, to: out)
    }
}
