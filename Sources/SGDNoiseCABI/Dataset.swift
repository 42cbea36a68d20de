import SGDNoise
import _SGDNoiseShims

// C section 6 -- The exact solution on a finite dataset (docs/theory.md section 4.1).


/// Exact stationary fluctuation of SGD on linear regression over a finite dataset (docs/theory.md
/// section 4.1): X (n x d row-major), y (n); sampling an sgdnoise_sampling (with or without
/// replacement, or epoch shuffling: docs/theory.md section 4.2, for a scalar lr (lr_matrix NULL)
/// and batch_size <= n, where out_sigma and out_mean are the covariance and mean of w at a random
/// step, the mean offset from w*); weight_decay d x d or NULL; learning rate lr * I or lr * lr_matrix; u (teacher,
/// may be NULL) and A (population covariance, may be NULL: X^T X/n) define the test loss. Outputs
/// as for the models (out_sigma, out_noise d*d, out_mean d = w*, out_prediction) plus out_info;
/// any output may be NULL. The prediction's kappa is NaN (the model defines none) and its
/// critical_learning_rate NaN (sgdnoise_critical_learning_rate_dataset computes it, at the cost
/// of a bisection). Unstable: the error carries lr*.
@c public func sgdnoise_finite_dataset(
    _ n: Int, _ d: Int, _ x: UnsafePointer<Double>?, _ y: UnsafePointer<Double>?, _ sampling: CInt,
    _ weight_decay: UnsafePointer<Double>?, _ lr: Double, _ lr_matrix: UnsafePointer<Double>?, _ batch_size: Int,
    _ momentum: Double, _ u: UnsafePointer<Double>?, _ a: UnsafePointer<Double>?,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_noise: UnsafeMutablePointer<Double>?,
    _ out_mean: UnsafeMutablePointer<Double>?, _ out_prediction: UnsafeMutablePointer<sgdnoise_prediction>?,
    _ out_info: UnsafeMutablePointer<sgdnoise_dataset_info>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try Arguments.size(n, "n")
        try Arguments.size(d, "d", max: Arguments.maxDimension)
        let xs = try Arguments.vector(x, try Arguments.count(n, d, "X"), "X")
        let ys = try Arguments.vector(y, n, "y")
        let mode = try Arguments.anySampling(sampling)
        try Arguments.hyperparameters(lr: lr, batchSize: batch_size, momentum: momentum)
        try Validation.batchSize(batch_size, sampleCount: n, sampling: mode, name: "batch_size")
        let prediction = try Arguments.prediction(out_prediction)
        let info = try ResultSlot(out_info, "out_info", "sgdnoise_dataset_info")
        let gamma = try weight_decay.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.squareMatrix(p, d, "weight_decay") }
        let rate = try Arguments.learningRate(lr, lr_matrix, d)
        let teacher = try u.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.vector(p, d, "u") }
        let population = try a.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.squareMatrix(p, d, "A") }
        let matrix = try core { try Matrix(rows: n, columns: d, elements: xs) }
        let result = try inCallerUnits(lr: lr, lrMatrix: lr_matrix) {
            try finiteDataset(x: matrix, y: ys, learningRate: rate, batchSize: batch_size, sampling: mode,
                              weightDecay: gamma, momentum: momentum, u: teacher, populationCovariance: population)
        }
        Arguments.write(result.prediction, sigma: out_sigma, noise: out_noise, mean: out_mean, scalars: prediction,
                        lr: lr, lrMatrix: lr_matrix)
        info?.write(sgdnoise_dataset_info(
            size: MemoryLayout<sgdnoise_dataset_info>.size, iterations: Int64(result.iterations),
            residual: result.residual, spectral_radius: result.spectralRadius))
    }
}

/// The critical learning rate of SGD on the dataset X (n x d): the largest lr with stable second
/// moments (spectral radius of the second-moment map below one, bracketed to 1e-9 relative by
/// false position), for the learning rate lr * lr_matrix direction when lr_matrix is not NULL
/// (then *out is the critical value of lr).
@c public func sgdnoise_critical_learning_rate_dataset(
    _ n: Int, _ d: Int, _ x: UnsafePointer<Double>?, _ sampling: CInt, _ weight_decay: UnsafePointer<Double>?,
    _ lr_matrix: UnsafePointer<Double>?, _ batch_size: Int, _ momentum: Double, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out, "out")
        try Arguments.size(n, "n")
        try Arguments.size(d, "d", max: Arguments.maxDimension)
        let xs = try Arguments.vector(x, try Arguments.count(n, d, "X"), "X")
        let mode = try Arguments.noiseSampling(sampling, sampleCount: n, batchSize: batch_size)
        try Validation.momentum(momentum, name: "momentum")
        let gamma = try weight_decay.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.squareMatrix(p, d, "weight_decay") }
        let rate = try Arguments.learningRate(1, lr_matrix, d)
        let matrix = try core { try Matrix(rows: n, columns: d, elements: xs) }
        out.pointee = try core {
            try criticalLearningRateDataset(x: matrix, batchSize: batch_size, sampling: mode, weightDecay: gamma,
                                            momentum: momentum, learningRate: rate)
        }
    }
}
