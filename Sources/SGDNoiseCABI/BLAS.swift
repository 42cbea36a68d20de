import SGDNoise
import _SGDNoiseBLAS
import _SGDNoiseShims

// C section 14 -- The BLAS and LAPACK the library calls.
// By default the OpenBLAS and LAPACKE it is linked with. A process that already runs another
// OpenBLAS (numpy's, in Python) can route the library's calls to it: one thread pool then serves
// both, where two pools would each keep their threads spinning after a call and slow down
// whichever library is called next. The Python package does this at import.

/// Routes every BLAS and LAPACK call of the library to the OpenBLAS in the shared object `library`,
/// built with 64-bit integers (ILP64), whose symbols are the CBLAS or LAPACKE names between
/// `symbol_prefix` and `symbol_suffix` (numpy >= 2.0's bundled OpenBLAS: "scipy_" and "64_", as in
/// scipy_cblas_dgemm64_; NULL is ""). A library the process has already loaded is shared, not
/// loaded a second time. `library` NULL routes back to the
/// linked OpenBLAS. INVALID_ARGUMENT, with the routing unchanged, when the library cannot be loaded
/// or lacks one of the routines (cblas_daxpy, ddot, dnrm2, dscal, dgemv, dsyr, dgemm, dsyrk, dtrmm;
/// LAPACKE_dposv, dstev, dsyevd, dsyevr). Results agree with the linked BLAS's to rounding. Calls
/// already running finish on the BLAS they started with; a library routed to is never unloaded.
@c public func sgdnoise_use_blas_ilp64(
    _ library: UnsafePointer<CChar>?, _ symbol_prefix: UnsafePointer<CChar>?, _ symbol_suffix: UnsafePointer<CChar>?
) -> sgdnoise_status {
    var message = [CChar](repeating: 0, count: 512)
    guard sgn_blas_route_ilp64(library, symbol_prefix, symbol_suffix, &message, message.count) == 0 else {
        return record(.invalidArgument("sgdnoise_use_blas_ilp64: " + message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }))
    }
    return .ok
}

/// The path of the library given to the last successful sgdnoise_use_blas_ilp64, or "" while the
/// library calls the OpenBLAS it is linked with (static storage; never NULL; do not free).
@c public func sgdnoise_blas_library() -> UnsafePointer<CChar>? {
    sgn_blas_routed_library()
}
