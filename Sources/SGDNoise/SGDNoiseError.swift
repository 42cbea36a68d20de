/// The ways a computation of sgdnoise can fail.
///
/// Every public throwing function of the library throws only this type. The C ABI maps each case
/// to one status code of `sgdnoise_status`, and the Python package to one exception class. The
/// data a caller may act on travel as values, never inside the message: the critical learning
/// rate of ``unstable(_:criticalLearningRate:)`` is ``criticalLearningRate``.
public enum SGDNoiseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An argument is out of its documented range (a size, a batch size, a momentum, a NaN…).
    case invalidArgument(String)
    /// A matrix that must be symmetric is not, within the library's relative tolerance.
    case notSymmetric(String)
    /// A matrix that must be symmetric positive definite (a learning-rate matrix) is not.
    case notPositiveDefinite(String)
    /// No stationary distribution exists for these hyperparameters: the fluctuation diverges.
    /// The string says why; `criticalLearningRate` is the largest stable learning rate (scalar, or
    /// the largest stable scale of a learning-rate matrix) when it is known. ``message`` appends it.
    case unstable(String, criticalLearningRate: Double?)
    /// LAPACK failed to converge, or a result came out non-finite.
    case numericalFailure(String)
    /// The problem is larger than this machine can hold.
    case outOfMemory(String)
    /// A callback of the caller (a Hessian-vector or noise product) asked to stop, or failed:
    /// the computation stopped cleanly and returned nothing.
    case cancelled(String)

    /// The human-readable message, naming the argument and what was wrong (for `unstable`, the
    /// reason followed by the critical learning rate when it is known).
    public var message: String {
        switch self {
        case .unstable(let reason, let critical?):
            return "\(reason); the critical learning rate is \(critical)"
        case .invalidArgument(let m), .notSymmetric(let m), .notPositiveDefinite(let m),
            .unstable(let m, nil), .numericalFailure(let m), .outOfMemory(let m), .cancelled(let m):
            return m
        }
    }

    /// The critical learning rate carried by an `unstable` error (nil otherwise or when unknown).
    public var criticalLearningRate: Double? {
        if case .unstable(_, let critical) = self { return critical }
        return nil
    }

    /// The same error with its critical learning rate expressed in units `scale` times larger:
    /// a caller whose learning rate is `lr · Λ` and who passed the matrix `lr · Λ` gets the
    /// largest stable multiple c of `lr · Λ`; in units of `lr` that is `lr · c`. Other errors are
    /// returned unchanged.
    public func criticalLearningRate(inUnitsOf scale: Double) -> SGDNoiseError {
        guard case .unstable(let reason, let critical?) = self else { return self }
        return .unstable(reason, criticalLearningRate: critical * scale)
    }

    /// The same text as `message` (the `CustomStringConvertible` conformance).
    public var description: String { message }
}
