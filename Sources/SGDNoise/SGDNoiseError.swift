/// The ways a computation of sgdnoise can fail.
///
/// Every public throwing function of the library throws only this type. The C ABI maps each case
/// to one status code of `sgdnoise_status`, and the Python package to one exception class.
public enum SGDNoiseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An argument is out of its documented range (a size, a batch size, a momentum, a NaN…).
    case invalidArgument(String)
    /// A matrix that must be symmetric is not, within the library's relative tolerance.
    case notSymmetric(String)
    /// A matrix that must be symmetric positive definite (a learning-rate matrix) is not.
    case notPositiveDefinite(String)
    /// No stationary distribution exists for these hyperparameters: the fluctuation diverges.
    /// `criticalLearningRate` is the largest stable learning rate (scalar, or the largest stable
    /// scale of a learning-rate matrix) when it is known.
    case unstable(String, criticalLearningRate: Double?)
    /// LAPACK failed to converge, or a result came out non-finite.
    case numericalFailure(String)
    /// The problem is larger than this machine can hold.
    case outOfMemory(String)

    /// The human-readable message, naming the argument and what was wrong.
    public var message: String {
        switch self {
        case .invalidArgument(let m), .notSymmetric(let m), .notPositiveDefinite(let m),
            .unstable(let m, _), .numericalFailure(let m), .outOfMemory(let m):
            return m
        }
    }

    public var description: String { message }
}
