import SGDNoise
import Synchronization
import _SGDNoiseShims

// C section 8 -- The streaming noise accumulator (a typed handle, sgdnoise_accumulator).
// Threads: calls on one accumulator may come from several threads at once (they are serialised).

/// The state behind an sgdnoise accumulator handle: a `NoiseAccumulator` behind a lock, so that
/// concurrent calls on one handle are serialised (calls on different handles never contend).
final class AccumulatorHandle: Sendable {
    let state: Mutex<NoiseAccumulator>

    init(_ accumulator: NoiseAccumulator) {
        state = Mutex(accumulator)
    }

    /// A snapshot of the state (copy-on-write: no D x D copy unless the original changes later).
    var snapshot: NoiseAccumulator { state.withLock { $0 } }
}

private func accumulatorHandle(_ p: OpaquePointer?, _ name: String = "accumulator") throws(SGDNoiseError) -> AccumulatorHandle {
    try Handles.object(p, as: AccumulatorHandle.self, name)
}

/// Creates an empty streaming accumulator of d-dimensional per-sample gradients (1 <= d <= 40000;
/// memory d*d doubles, whatever the number of gradients). It keeps the count N, the mean g and the
/// centred scatter S = sum_i (g_i - g)(g_i - g)^T, updated chunk by chunk with the pairwise formula
/// of Chan, Golub and LeVeque, so that sgdnoise_accumulator_covariance equals the one-shot
/// sgdnoise_noise_covariance of all rows seen, up to rounding. *out_accumulator receives a handle
/// to free with sgdnoise_accumulator_free.
@c public func sgdnoise_accumulator_create(
    _ d: Int, _ out_accumulator: UnsafeMutablePointer<OpaquePointer?>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_accumulator, "out_accumulator")
        try Arguments.size(d, "d", max: Arguments.maxDimension)
        let state = try core { try NoiseAccumulator(dimension: d) }
        Handles.give(AccumulatorHandle(state), to: out)
    }
}

/// Adds the n rows of the n x d row-major chunk (d the accumulator's dimension, n >= 1): with
/// delta = mean(chunk) - g, N' = N + n, g' = g + (n/N') delta,
/// S' = S + S_chunk + (N n / N') delta delta^T. A chunk with NaN/Inf (or entries so large that S
/// would overflow) is rejected and the accumulator is left unchanged.
@c public func sgdnoise_accumulator_update(
    _ accumulator: OpaquePointer?, _ n: Int, _ chunk: UnsafePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try updateC(accumulator, n, chunk) }
}

/// As sgdnoise_accumulator_update, for a float32 chunk (widened to double block by block; all sums
/// in double precision).
@c public func sgdnoise_accumulator_update_f32(
    _ accumulator: OpaquePointer?, _ n: Int, _ chunk: UnsafePointer<Float>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in try updateC(accumulator, n, chunk) }
}

private func updateC<T: GradientScalar>(_ p: OpaquePointer?, _ n: Int, _ chunk: UnsafePointer<T>?) throws(SGDNoiseError) {
    let h = try accumulatorHandle(p)
    let chunk = try Arguments.pointer(chunk, "chunk")
    try Arguments.size(n, "n")
    try h.state.withLock { (state: inout NoiseAccumulator) throws(SGDNoiseError) in
        let count = try Arguments.count(n, state.dimension, "chunk")
        let buffer = UnsafeBufferPointer(start: chunk, count: count)
        try core { try state.update(buffer, rows: n) }
    }
}

/// Adds everything `other` accumulated into `accumulator` (same dimension): afterwards it describes
/// the union of both sets of gradients, exactly as if all rows had been passed to one accumulator.
/// `other` is not changed; passing the same handle twice counts its gradients twice.
@c public func sgdnoise_accumulator_merge(
    _ accumulator: OpaquePointer?, _ other: OpaquePointer?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try accumulatorHandle(accumulator)
        let o = try accumulatorHandle(other, "other").snapshot  // lock `other` alone, then `h`: no lock-order deadlock
        try h.state.withLock { (state: inout NoiseAccumulator) throws(SGDNoiseError) in
            try core { try state.merge(o) }
        }
    }
}

/// The number of gradients accumulated so far (*out_count).
@c public func sgdnoise_accumulator_count(_ accumulator: OpaquePointer?, _ out_count: UnsafeMutablePointer<Int>?) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try accumulatorHandle(accumulator)
        let out = try Arguments.output(out_count, "out_count")
        out.pointee = h.state.withLock { $0.count }
    }
}

/// The dimension d the accumulator was created with (*out_d).
@c public func sgdnoise_accumulator_dimension(_ accumulator: OpaquePointer?, _ out_d: UnsafeMutablePointer<Int>?) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try accumulatorHandle(accumulator)
        let out = try Arguments.output(out_d, "out_d")
        out.pointee = h.state.withLock { $0.dimension }
    }
}

/// The mean gradient g (out: d doubles). Fails when the accumulator is empty.
@c public func sgdnoise_accumulator_mean(_ accumulator: OpaquePointer?, _ out_mean: UnsafeMutablePointer<Double>?) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try accumulatorHandle(accumulator)
        let out = try Arguments.output(out_mean, "out_mean")
        let mean: [Double]? = h.state.withLock { $0.isEmpty ? nil : $0.mean }
        guard let mean else { throw .invalidArgument("the accumulator is empty: update it with at least one gradient first") }
        Arguments.write(mean, to: out)
    }
}

/// The noise covariance C = (f/N) S of the accumulated gradients [Prop 1], f = 1/S with
/// replacement, (N-S)/(S(N-1)) without: the same numbers as sgdnoise_noise_covariance on all the
/// rows, up to rounding. `sampling` is an sgdnoise_sampling, `kind` an sgdnoise_noise_kind; out
/// receives d*d, d or 1 doubles. Fails when the accumulator is empty.
@c public func sgdnoise_accumulator_covariance(
    _ accumulator: OpaquePointer?, _ batch_size: Int, _ sampling: CInt, _ kind: CInt, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try accumulatorHandle(accumulator)
        let out = try Arguments.output(out, "out")
        let count = h.snapshot.count  // empty: the core says so below
        let mode = count > 0 ? try Arguments.noiseSampling(sampling, sampleCount: count, batchSize: batch_size)
                             : try Arguments.noiseSampling(sampling)
        guard let kind = sgdnoise_noise_kind(rawValue: kind) else {
            throw .invalidArgument("kind must be SGDNOISE_NOISE_KIND_FULL (0), _DIAGONAL (1) or _TRACE (2), got \(kind)")
        }
        let state = h.snapshot
        switch kind {
        case .full:
            Arguments.write(try core { try state.covariance(batchSize: batch_size, sampling: mode) }, to: out)
        case .diagonal:
            Arguments.write(try core { try state.covarianceDiagonal(batchSize: batch_size, sampling: mode) }, to: out)
        case .trace:
            out.pointee = try core { try state.covarianceTrace(batchSize: batch_size, sampling: mode) }
        }
    }
}

/// The gradient noise scales of the accumulated gradients (see sgdnoise_noise_scale): out_scales
/// (set its .size first) receives them; hessian (d x d symmetric) may be NULL, and
/// then the Hessian fields are NaN. Fails when the accumulator is empty.
@c public func sgdnoise_accumulator_noise_scale(
    _ accumulator: OpaquePointer?, _ hessian: UnsafePointer<Double>?, _ out_scales: UnsafeMutablePointer<sgdnoise_noise_scales>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try accumulatorHandle(accumulator)
        let out = try Arguments.noiseScales(out_scales)
        let state = h.snapshot
        let hess = try hessian.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in
            try Arguments.squareMatrix(p, state.dimension, "hessian")
        }
        out.write(sgdnoise_noise_scales(try core { try state.noiseScale(hessian: hess) }))
    }
}

/// Frees an accumulator handle. NULL, an already freed handle and a handle of another kind are
/// ignored (never a crash). The handle must not be used afterwards (a later call with it is
/// INVALID_ARGUMENT while its address is not reused).
@c public func sgdnoise_accumulator_free(_ accumulator: OpaquePointer?) {
    Handles.free(accumulator, as: AccumulatorHandle.self)
}
