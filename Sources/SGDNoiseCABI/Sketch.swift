import SGDNoise
import Synchronization
import _SGDNoiseShims

// C section 13 -- The Frequent Directions sketch of the noise (a typed handle, sgdnoise_sketch).
// Threads: calls on one sketch may come from several threads at once (they are serialised).

/// The state behind an sgdnoise sketch handle (concurrent calls on one handle are serialised).
typealias SketchHandle = StateHandle<NoiseSketch>

/// Creates an empty Frequent Directions sketch of d-dimensional per-sample gradients with `rows`
/// rows (1 <= rows <= 4096; memory about (3.5 rows + 2) d doubles, whatever the number of gradients).
/// It keeps l = rows orthogonal rows B, the count N, the mean g and the exact trace of the centred
/// scatter S, with the guarantee 0 <= S - B^T B <= Delta I (Delta, the total shrinkage, is known
/// exactly and Delta <= ||S - S_k||_* / (rows + 1 - k) for every k <= rows, S_k the best rank-k
/// part of S). *out_sketch receives a handle to free with sgdnoise_sketch_free.
@c public func sgdnoise_sketch_create(
    _ d: Int, _ rows: Int, _ out_sketch: UnsafeMutablePointer<OpaquePointer?>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let out = try Arguments.output(out_sketch, "out_sketch")
        try Arguments.size(d, "d", max: Int.max)
        try Arguments.size(rows, "rows", max: NoiseSketch.maxRows)
        let stackRows = Double(rows) * 3.5 + 2
        try Arguments.fits(doubles: stackRows * Double(d), "a sketch of \(rows) rows of dimension \(d)")
        let sketch = try core { try NoiseSketch(dimension: d, rows: rows) }
        Handles.give(SketchHandle(sketch), to: out)
    }
}

/// Adds the n rows of the n x d row-major chunk (d the sketch's dimension, n >= 1). Rows are
/// buffered and folded into the sketch in batches of ceil(1.5 rows) (each fold: one SYRK, two
/// GEMMs and the eigendecomposition of a symmetric matrix of order at most 2.5 rows + 2). A chunk with NaN/Inf (or entries so
/// large that their squares overflow) is rejected and the sketch is left unchanged.
@c public func sgdnoise_sketch_update(
    _ sketch: OpaquePointer?, _ n: Int, _ chunk: UnsafePointer<Double>?
) -> sgdnoise_status {
    SketchHandle.update(sketch, n, chunk)
}

/// As sgdnoise_sketch_update, for a float32 chunk (widened to double; all arithmetic in double).
@c public func sgdnoise_sketch_update_f32(
    _ sketch: OpaquePointer?, _ n: Int, _ chunk: UnsafePointer<Float>?
) -> sgdnoise_status {
    SketchHandle.update(sketch, n, chunk)
}

/// Adds everything `other` sketched into `sketch` (same dimension and rows): afterwards it sketches
/// the union of both sets of gradients, with Delta = Delta_sketch + Delta_other + the fold's own
/// shrinkage (the guarantee still holds). `other` is not changed.
@c public func sgdnoise_sketch_merge(_ sketch: OpaquePointer?, _ other: OpaquePointer?) -> sgdnoise_status {
    SketchHandle.merge(sketch, other)
}

/// The number of gradients sketched so far (*out_count).
@c public func sgdnoise_sketch_count(_ sketch: OpaquePointer?, _ out_count: UnsafeMutablePointer<Int>?) -> sgdnoise_status {
    SketchHandle.query(sketch, out_count, "out_count") { $0.count }
}

/// The dimension d the sketch was created with (*out_d).
@c public func sgdnoise_sketch_dimension(_ sketch: OpaquePointer?, _ out_d: UnsafeMutablePointer<Int>?) -> sgdnoise_status {
    SketchHandle.query(sketch, out_d, "out_d") { $0.dimension }
}

/// The number of rows the sketch was created with (*out_rows).
@c public func sgdnoise_sketch_rows(_ sketch: OpaquePointer?, _ out_rows: UnsafeMutablePointer<Int>?) -> sgdnoise_status {
    SketchHandle.query(sketch, out_rows, "out_rows") { $0.rows }
}

/// The mean gradient g of every row sketched (out: d doubles). Fails when the sketch is empty.
@c public func sgdnoise_sketch_mean(_ sketch: OpaquePointer?, _ out_mean: UnsafeMutablePointer<Double>?) -> sgdnoise_status {
    SketchHandle.mean(sketch, out_mean)
}

/// The k largest eigenpairs of the sketched noise covariance C^ = (f/N) B^T B [Prop 1], f = 1/S
/// with replacement, (N-S)/(S(N-1)) without, and the guaranteed bound (f/N) Delta: for every i,
/// lambda_i(C^) <= lambda_i(C) <= lambda_i(C^) + *out_error_bound, and ||C - C^||_2 <= *out_error_bound
/// (C the exact noise covariance of all rows). out_values receives the k eigenvalues in descending
/// order; out_vectors (may be NULL) d x k row-major, column j the unit eigenvector of eigenvalue j,
/// signed so that its largest-magnitude entry is positive; out_trace (may be NULL) the exact trace
/// of C (the sketch keeps Tr S exactly). Rows still buffered are folded first. k (0: only the bound
/// and the trace) must not exceed the number of nonzero rows the sketch holds (at most rows).
/// Fails when the sketch is empty.
@c public func sgdnoise_sketch_top_eigen(
    _ sketch: OpaquePointer?, _ k: Int, _ batch_size: Int, _ sampling: CInt,
    _ out_values: UnsafeMutablePointer<Double>?, _ out_vectors: UnsafeMutablePointer<Double>?,
    _ out_error_bound: UnsafeMutablePointer<Double>?, _ out_trace: UnsafeMutablePointer<Double>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let h = try SketchHandle.from(sketch)
        let values = try Arguments.output(out_values, "out_values")
        let bound = try Arguments.output(out_error_bound, "out_error_bound")
        guard k >= 0 else { throw .invalidArgument("k must not be negative, got \(k)") }
        let count = h.snapshot.count  // empty: the core says so below
        let mode = count > 0 ? try Arguments.noiseSampling(sampling, sampleCount: count, batchSize: batch_size)
                             : try Arguments.noiseSampling(sampling)
        let (top, trace) = try h.state.withLock { (state: inout NoiseSketch) throws(SGDNoiseError) in
            try core {
                try state.flush()
                return (try state.topEigen(k, batchSize: batch_size, sampling: mode),
                        try state.covarianceTrace(batchSize: batch_size, sampling: mode))
            }
        }
        Arguments.write(top.top.values, to: values)
        if let out_vectors { Arguments.write(top.top.vectors, to: out_vectors) }
        bound.pointee = top.errorBound
        out_trace?.pointee = trace
    }
}

/// The size in bytes of the sketch's serialized state (*out_size): 32 + 8 (6 + d + rows + rows d),
/// fixed by the dimension and the rows, the size sgdnoise_sketch_export writes.
@c public func sgdnoise_sketch_state_size(_ sketch: OpaquePointer?, _ out_size: UnsafeMutablePointer<Int>?) -> sgdnoise_status {
    SketchHandle.query(sketch, out_size, "out_size") { $0.serializedSize }
}

/// Writes the sketch's state (rows still buffered are folded first) into out, exactly
/// sgdnoise_sketch_state_size bytes, in the portable sgdnoise state format (kind 2;
/// docs/state_format.md). A state imported anywhere and merged gives the same result as merging
/// the sketch itself.
@c public func sgdnoise_sketch_export(_ sketch: OpaquePointer?, _ out: UnsafeMutablePointer<UInt8>?) -> sgdnoise_status {
    SketchHandle.export(sketch, out)
}

/// Creates a sketch from size bytes written by sgdnoise_sketch_export (of this or any other
/// process). A buffer that is not an intact sketch state (wrong size, magic, format version or
/// kind, a checksum that does not match, impossible contents) is INVALID_ARGUMENT; only its first
/// 24 bytes are read before its size is found to match the one its header records.
/// *out_sketch receives a handle to free with sgdnoise_sketch_free.
@c public func sgdnoise_sketch_import(
    _ size: Int, _ state: UnsafePointer<UInt8>?, _ out_sketch: UnsafeMutablePointer<OpaquePointer?>?
) -> sgdnoise_status {
    SketchHandle.restore(size, state, out_sketch, "out_sketch")
}

/// Frees a sketch handle. NULL, an already freed handle and a handle of another kind are ignored
/// (never a crash). The handle must not be used afterwards.
@c public func sgdnoise_sketch_free(_ sketch: OpaquePointer?) {
    Handles.free(sketch, as: SketchHandle.self)
}
