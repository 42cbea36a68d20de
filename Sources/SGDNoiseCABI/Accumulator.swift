import SGDNoise
import Synchronization
import _SGDNoiseShims

// C section 8 -- The streaming noise accumulator (a typed handle, sgdnoise_accumulator).
// Threads: calls on one accumulator may come from several threads at once (they are serialised).

/// The state behind an sgdnoise accumulator handle (concurrent calls on one handle are serialised).
typealias AccumulatorHandle = StateHandle<NoiseAccumulator>

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
    AccumulatorHandle.update(accumulator, n, chunk)
}

/// As sgdnoise_accumulator_update, for a float32 chunk (widened to double block by block; all sums
/// in double precision).
@c public func sgdnoise_accumulator_update_f32(
    _ accumulator: OpaquePointer?, _ n: Int, _ chunk: UnsafePointer<Float>?
) -> sgdnoise_status {
    AccumulatorHandle.update(accumulator, n, chunk)
}

/// Adds everything `other` accumulated into `accumulator` (same dimension): afterwards it describes
/// the union of both sets of gradients, exactly as if all rows had been passed to one accumulator.
/// `other` is not changed; passing the same handle twice counts its gradients twice.
@c public func sgdnoise_accumulator_merge(
    _ accumulator: OpaquePointer?, _ other: OpaquePointer?
) -> sgdnoise_status {
    AccumulatorHandle.merge(accumulator, other)
}

/// The number of gradients accumulated so far (*out_count).
@c public func sgdnoise_accumulator_count(_ accumulator: OpaquePointer?, _ out_count: UnsafeMutablePointer<Int>?) -> sgdnoise_status {
    AccumulatorHandle.query(accumulator, out_count, "out_count") { $0.count }
}

/// The dimension d the accumulator was created with (*out_d).
@c public func sgdnoise_accumulator_dimension(_ accumulator: OpaquePointer?, _ out_d: UnsafeMutablePointer<Int>?) -> sgdnoise_status {
    AccumulatorHandle.query(accumulator, out_d, "out_d") { $0.dimension }
}

/// The mean gradient g (out: d doubles). Fails when the accumulator is empty.
@c public func sgdnoise_accumulator_mean(_ accumulator: OpaquePointer?, _ out_mean: UnsafeMutablePointer<Double>?) -> sgdnoise_status {
    AccumulatorHandle.mean(accumulator, out_mean)
}

/// The noise covariance C = (f/N) S of the accumulated gradients [Prop 1], f = 1/S with
/// replacement, (N-S)/(S(N-1)) without: the same numbers as sgdnoise_noise_covariance on all the
/// rows, up to rounding. `sampling` is an sgdnoise_sampling, `kind` an sgdnoise_noise_kind; out
/// receives d*d, d or 1 doubles. Fails when the accumulator is empty.
@c public func sgdnoise_accumulator_covariance(
    _ accumulator: OpaquePointer?, _ batch_size: Int, _ sampling: CInt, _ kind: CInt, _ out: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try AccumulatorHandle.from(accumulator)
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
        let h = try AccumulatorHandle.from(accumulator)
        let out = try Arguments.noiseScales(out_scales)
        let state = h.snapshot
        let hess = try hessian.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in
            try Arguments.squareMatrix(p, state.dimension, "hessian")
        }
        out.write(sgdnoise_noise_scales(try core { try state.noiseScale(hessian: hess) }))
    }
}

/// The size in bytes of the accumulator's serialized state (*out_size): 32 + 8 (2 + d + d(d+1)/2),
/// fixed by the dimension (independent of the count), the size sgdnoise_accumulator_export writes.
@c public func sgdnoise_accumulator_state_size(_ accumulator: OpaquePointer?, _ out_size: UnsafeMutablePointer<Int>?) -> sgdnoise_status {
    AccumulatorHandle.query(accumulator, out_size, "out_size") { $0.serializedSize }
}

/// Writes the accumulator's state (count N, mean g, centred scatter S; nothing about batch size or
/// sampling) into out, exactly sgdnoise_accumulator_state_size bytes: the portable sgdnoise state
/// format (little-endian; magic "SGDNSTAT", format version, kind 1, payload length, payload, and an
/// XXH64 checksum of everything before it; docs/state_format.md). A state imported anywhere
/// (another process, machine or architecture) and merged gives the same result as merging the
/// accumulator itself.
@c public func sgdnoise_accumulator_export(_ accumulator: OpaquePointer?, _ out: UnsafeMutablePointer<UInt8>?) -> sgdnoise_status {
    AccumulatorHandle.export(accumulator, out)
}

/// Creates an accumulator from size bytes written by sgdnoise_accumulator_export (of this or any
/// other process). A buffer that is not an intact accumulator state (wrong size, magic, format
/// version or kind, a checksum that does not match, impossible contents) is INVALID_ARGUMENT; only
/// its first 24 bytes are read before its size is found to match the one its header records.
/// *out_accumulator receives a handle to free with sgdnoise_accumulator_free.
@c public func sgdnoise_accumulator_import(
    _ size: Int, _ state: UnsafePointer<UInt8>?, _ out_accumulator: UnsafeMutablePointer<OpaquePointer?>?
) -> sgdnoise_status {
    AccumulatorHandle.restore(size, state, out_accumulator, "out_accumulator")
}

/// Frees an accumulator handle. NULL, an already freed handle and a handle of another kind are
/// ignored (never a crash). The handle must not be used afterwards (a later call with it is
/// INVALID_ARGUMENT while its address is not reused).
@c public func sgdnoise_accumulator_free(_ accumulator: OpaquePointer?) {
    Handles.free(accumulator, as: AccumulatorHandle.self)
}
