import SGDNoise
import _SGDNoiseShims

// C section 4 -- The stationary fluctuation for a given Hessian and noise (docs/theory.md section 3).

/// Stationary fluctuation Sigma of SGD with momentum [Thm 1]: with H the Hessian (hessian), C the
/// noise covariance (noise) and L the learning-rate matrix (L = lr * I when lr_matrix is NULL,
/// else lr * lr_matrix, symmetric positive definite), Sigma solves
///   (1-mu)(L H Sigma + Sigma H L) - c1 L H Sigma H L + c2 (L H L H Sigma + Sigma H L H L) = L C L,
///   c1 = (1+mu^2)/(1-mu^2), c2 = mu/(1-mu^2), mu = momentum,
/// all matrices d x d row-major. Returns SGDNOISE_STATUS_UNSTABLE, with the critical learning rate,
/// when an eigenvalue of L^{1/2} H L^{1/2} leaves (0, 2(1+mu)). Flat directions of H (see
/// sgdnoise_stationary_fluctuation) get zero fluctuation. out_sigma: d*d doubles.
@c public func sgdnoise_stationary_covariance(
    _ d: Int, _ hessian: UnsafePointer<Double>?, _ noise: UnsafePointer<Double>?,
    _ lr: Double, _ lr_matrix: UnsafePointer<Double>?, _ momentum: Double,
    _ out_sigma: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    sgdnoise_stationary_fluctuation(d, hessian, noise, lr, lr_matrix, momentum, 0, out_sigma, nil, nil)
}

/// As sgdnoise_stationary_covariance, and also reports what docs/theory.md section 3 says of a
/// singular H. flat_tolerance: an eigenvalue m of L^{1/2} H L^{1/2} with |m| <= flat_tolerance *
/// max|m| is flat (Sigma is 0 there and the noise entering it is reported); 0 selects the default
/// 16 * d * DBL_EPSILON; a Hessian computed at a real minimum, whose round-off eigenvalues may be
/// slightly negative, needs a larger one (1e-9, say), else it is UNSTABLE (not a minimum).
/// out_eigenvalues (d doubles, may be NULL) receives the eigenvalues m (ascending; stable iff
/// 0 < m < 2(1+momentum) off the flat ones); out_info (may be NULL; set its .size) the flat
/// directions, their noise and the tolerance used.
@c public func sgdnoise_stationary_fluctuation(
    _ d: Int, _ hessian: UnsafePointer<Double>?, _ noise: UnsafePointer<Double>?,
    _ lr: Double, _ lr_matrix: UnsafePointer<Double>?, _ momentum: Double, _ flat_tolerance: Double,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_eigenvalues: UnsafeMutablePointer<Double>?,
    _ out_info: UnsafeMutablePointer<sgdnoise_fluctuation_info>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_sigma, "out_sigma")
        let info = try ResultSlot(out_info, "out_info", "sgdnoise_fluctuation_info")
        // Checked here so that the message names the C argument `d`.
        try Arguments.size(d, "d", max: Arguments.maxDimension)
        let tolerance = try Arguments.flatTolerance(flat_tolerance, d)
        let h = try Arguments.squareMatrix(hessian, d, "hessian")
        let c = try Arguments.squareMatrix(noise, d, "noise")
        let rate = try Arguments.learningRate(lr, lr_matrix, d)
        try Validation.momentum(momentum, name: "momentum")
        // h and c given up (not captured by a closure): the solver works in their storage.
        let result: StationaryFluctuation
        do {
            result = try stationaryCovariance(hessian: consume h, noise: consume c, learningRate: rate,
                                              momentum: momentum, flatTolerance: tolerance)
        } catch {
            throw inCallerUnits(error, lrMatrix: lr_matrix, lr: lr)
        }
        Arguments.write(result.sigma, to: out)
        if let out_eigenvalues { Arguments.write(result.preconditionedHessianEigenvalues, to: out_eigenvalues) }
        info?.write(sgdnoise_fluctuation_info(
            size: MemoryLayout<sgdnoise_fluctuation_info>.size, flat_directions: Int64(result.flatDirections),
            flat_direction_noise: result.flatDirectionNoise, flat_tolerance: result.flatTolerance))
    }
}
