import SGDNoise
import _SGDNoiseShims

// C section 1 -- Versions, status codes and errors.
// Every fallible function returns an sgdnoise_status; on failure it writes nothing to any output
// and leaves a message (and, for SGDNOISE_STATUS_UNSTABLE, the critical learning rate) for the
// calling thread.

/// The result of every fallible sgdnoise function (0 is success).
@c public enum sgdnoise_status: CInt {
    /// Success.
    case ok = 0
    /// An argument is out of range: a NULL pointer, a size < 1, NaN/Inf, a batch size or momentum
    /// out of range.
    case invalidArgument = 1
    /// A matrix that must be symmetric is not (relative tolerance 1e-10).
    case notSymmetric = 2
    /// A matrix that must be symmetric positive definite (a learning-rate matrix) is not.
    case notPositiveDefinite = 3
    /// No stationary distribution for these hyperparameters; see
    /// sgdnoise_last_error_critical_learning_rate().
    case unstable = 4
    /// LAPACK did not converge or a result came out non-finite.
    case numericalFailure = 5
    /// The problem does not fit in memory or in the 32-bit BLAS/LAPACK interface.
    case outOfMemory = 6
    /// A callback returned nonzero: the computation stopped cleanly, the outputs are untouched.
    case cancelled = 7
}

/// The library's version string, "MAJOR.MINOR.PATCH" (static storage; never NULL; do not free).
@c public func sgdnoise_version() -> UnsafePointer<CChar>? {
    UnsafeRawPointer(sgdnoiseVersionCString).assumingMemoryBound(to: CChar.self)
}

/// The library's version as MAJOR * 10000 + MINOR * 100 + PATCH, the value that
/// SGDNOISE_VERSION_NUMBER had when the library was built.
@c public func sgdnoise_version_number() -> UInt32 {
    UInt32(SGDNOISE_VERSION_MAJOR * 10000 + SGDNOISE_VERSION_MINOR * 100 + SGDNOISE_VERSION_PATCH)
}

/// 1 when this library can serve a program compiled against header version `header_version`
/// (pass SGDNOISE_VERSION_NUMBER, or use SGDNOISE_ABI_COMPATIBLE()): the same major version and a
/// minor version at least the header's; 0 otherwise. Call it once at start-up.
@c public func sgdnoise_abi_compatible(_ header_version: UInt32) -> CInt {
    let library = sgdnoise_version_number()
    // The patch level does not enter: 1.0.1 and 1.0.0 have the same interface.
    return library / 10000 == header_version / 10000 && library / 100 >= header_version / 100 ? 1 : 0
}

/// The message of the last failed call on the calling thread ("" if none): UTF-8, at most 1023
/// bytes (a longer message is cut at a character boundary). Thread-local storage owned by the
/// library, valid until the next failing call on this thread; never NULL; do not free.
@c public func sgdnoise_last_error_message() -> UnsafePointer<CChar>? {
    sgdnoise_shim_error_message()
}

/// The critical learning rate reported by the last failed call on the calling thread, or NaN when
/// it is unknown or the failure was not SGDNOISE_STATUS_UNSTABLE.
@c public func sgdnoise_last_error_critical_learning_rate() -> Double {
    sgdnoise_shim_error_critical_lr()
}

/// The version as a NUL-terminated static buffer.
nonisolated(unsafe) private let sgdnoiseVersionCString: UnsafeMutablePointer<UInt8> = {
    let bytes = Array(SGDNoiseVersion.string.utf8) + [0]
    let p = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes.count)
    p.initialize(from: bytes, count: bytes.count)
    return p
}()

/// Records `error` as the calling thread's last error and returns its status.
func record(_ error: SGDNoiseError) -> sgdnoise_status {
    let status: sgdnoise_status
    var critical = Double.nan
    switch error {
    case .invalidArgument: status = .invalidArgument
    case .notSymmetric: status = .notSymmetric
    case .notPositiveDefinite: status = .notPositiveDefinite
    case .unstable(_, let lr):
        status = .unstable
        critical = lr ?? .nan
    case .numericalFailure: status = .numericalFailure
    case .outOfMemory: status = .outOfMemory
    case .cancelled: status = .cancelled
    }
    error.message.withCString { sgdnoise_shim_set_error($0, critical) }
    return status
}

/// Runs `body`, turning every thrown error into a status and a thread-local message. Nothing
/// escapes to the C caller.
func guarded(_ body: () throws(SGDNoiseError) -> Void) -> sgdnoise_status {
    do {
        try body()
        return .ok
    } catch {
        return record(error)
    }
}
