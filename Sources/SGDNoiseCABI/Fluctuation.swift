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
    sgdnoise_stationary_fluctuation(d, hessian, noise, lr, lr_matrix, momentum, out_sigma, nil, nil)
}

/// Indices into the `out_info` array of sgdnoise_stationary_fluctuation.
@c public enum sgdnoise_fluctuation_field: CInt {
    /// The number of flat directions (zero eigenvalues of L^{1/2} H L^{1/2}), where Sigma is 0.
    case flatDirections = 0
    /// The noise power entering them (positive: the parameters random-walk there), in the units
    /// of L^{1/2} C L^{1/2}.
    case flatDirectionNoise = 1
    /// The number of entries of out_info.
    case count = 2
}

/// As sgdnoise_stationary_covariance, and also reports what theory.md section 3 asks of a singular
/// H: out_eigenvalues (d doubles, may be NULL) receives the eigenvalues m of
/// L^{1/2} H L^{1/2} (ascending; stable iff 0 < m < 2(1+momentum) off the flat ones) and out_info
/// (SGDNOISE_FLUCTUATION_FIELD_COUNT doubles, may be NULL) the flat directions and their noise.
@c public func sgdnoise_stationary_fluctuation(
    _ d: Int, _ hessian: UnsafePointer<Double>?, _ noise: UnsafePointer<Double>?,
    _ lr: Double, _ lr_matrix: UnsafePointer<Double>?, _ momentum: Double,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_eigenvalues: UnsafeMutablePointer<Double>?,
    _ out_info: UnsafeMutablePointer<Double>?
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
        if let out_eigenvalues { Arguments.write(result.preconditionedHessianEigenvalues, to: out_eigenvalues) }
        if let info = out_info {
            info[Int(sgdnoise_fluctuation_field.flatDirections.rawValue)] = Double(result.flatDirections)
            info[Int(sgdnoise_fluctuation_field.flatDirectionNoise.rawValue)] = result.flatDirectionNoise
        }
    }
}
