import SGDNoise

// C section 2 -- Minibatch noise from per-sample gradients (docs/theory.md section 2).

/// How minibatches are drawn.
@c public enum sgdnoise_sampling: CInt {
    /// S independent uniform indices.
    case withReplacement = 0
    /// S distinct indices (1 <= S <= N), drawn afresh at every step.
    case withoutReplacement = 1
    /// The indices run through a fresh random permutation of the N samples each epoch, S at a
    /// time (what data loaders do). Accepted only by sgdnoise_simulation_create_dataset: no
    /// closed form exists for it (docs/theory.md section 9).
    case epochShuffling = 2
}

/// What part of the noise covariance to compute.
@c public enum sgdnoise_noise_kind: CInt {
    /// The D x D matrix (output: D*D doubles).
    case full = 0
    /// Its diagonal (output: D doubles).
    case diagonal = 1
    /// Its trace (output: 1 double).
    case trace = 2
}

/// Minibatch noise covariance C = f (M2 - g g^T) from n x d row-major per-sample gradients
/// [Prop 1]; f = 1/S with replacement, (N-S)/(S(N-1)) without. `sampling` is an
/// sgdnoise_sampling, `kind` an sgdnoise_noise_kind; `out` receives d*d, d or 1 doubles.
@c public func sgdnoise_noise_covariance(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Double>?, _ batch_size: Int,
    _ sampling: CInt, _ kind: CInt, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try noiseCovarianceC(n, d, grads, batch_size, sampling, kind, out) }
}

/// As sgdnoise_noise_covariance, for float32 gradients (accumulated in double precision).
@c public func sgdnoise_noise_covariance_f32(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<Float>?, _ batch_size: Int,
    _ sampling: CInt, _ kind: CInt, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try noiseCovarianceC(n, d, grads, batch_size, sampling, kind, out) }
}

private func noiseCovarianceC<T: GradientScalar>(
    _ n: Int, _ d: Int, _ grads: UnsafePointer<T>?, _ batchSize: Int,
    _ samplingCode: CInt, _ kindCode: CInt, _ out: UnsafeMutablePointer<Double>?
) throws(SGDNoiseError) {
    let grads = try Arguments.pointer(grads, "grads")
    let out = try Arguments.output(out, "out")
    try Arguments.size(n, "n")
    try Arguments.size(d, "d", max: Arguments.maxDimension)
    let sampling = try Arguments.noiseSampling(samplingCode, sampleCount: n, batchSize: batchSize)
    guard let kind = sgdnoise_noise_kind(rawValue: kindCode) else {
        throw .invalidArgument("kind must be SGDNOISE_NOISE_KIND_FULL (0), _DIAGONAL (1) or _TRACE (2), got \(kindCode)")
    }
    let buffer = UnsafeBufferPointer(start: grads, count: try Arguments.count(n, d, "grads"))
    switch kind {
    case .full:
        _ = try Arguments.count(d, d, "out")
        let c = try core { try noiseCovariance(gradients: buffer, rows: n, columns: d, batchSize: batchSize, sampling: sampling) }
        Arguments.write(c, to: out)
    case .diagonal, .trace:
        let diag = try core {
            try noiseCovarianceDiagonal(gradients: buffer, rows: n, columns: d, batchSize: batchSize, sampling: sampling)
        }
        if kind == .trace {
            out.pointee = diag.reduce(0, +)
        } else {
            diag.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: d) }
        }
    }
}
