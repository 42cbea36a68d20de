import SGDNoise
import Testing

/// The error budget for comparing solutions of linear systems.
///
/// A backward-stable solve of an n × n system with 1-norm condition number κ has a relative
/// forward error of order n·u·κ (Gaussian elimination with partial pivoting and a small growth
/// factor; the spectral solver is backward stable in the same sense). Two such solutions may differ
/// by the sum of their budgets; we allow 8·n·u·κ for each.
func solveBudget(size n: Int, condition kappa: Double) -> Double {
    8 * Double(n) * Ref.u * kappa
}

/// The case of an `SGDNoiseError`, without its payload.
enum ErrorKind: Equatable, CustomStringConvertible {
    case invalidArgument, notSymmetric, notPositiveDefinite, unstable, numericalFailure, outOfMemory, cancelled

    init(_ error: SGDNoiseError) {
        switch error {
        case .invalidArgument: self = .invalidArgument
        case .notSymmetric: self = .notSymmetric
        case .notPositiveDefinite: self = .notPositiveDefinite
        case .unstable: self = .unstable
        case .numericalFailure: self = .numericalFailure
        case .outOfMemory: self = .outOfMemory
        case .cancelled: self = .cancelled
        }
    }

    var description: String {
        switch self {
        case .invalidArgument: "invalidArgument"
        case .notSymmetric: "notSymmetric"
        case .notPositiveDefinite: "notPositiveDefinite"
        case .unstable: "unstable"
        case .numericalFailure: "numericalFailure"
        case .outOfMemory: "outOfMemory"
        case .cancelled: "cancelled"
        }
    }
}

/// The `SGDNoiseError` thrown by `body`, or nil (with an issue recorded) when it does not throw one.
func thrownError<R>(
    _ body: () throws -> R, sourceLocation: SourceLocation = #_sourceLocation
) -> SGDNoiseError? {
    do {
        let value = try body()
        Issue.record("expected an SGDNoiseError, but the call returned \(value)", sourceLocation: sourceLocation)
        return nil
    } catch let error as SGDNoiseError {
        return error
    } catch {
        Issue.record("expected an SGDNoiseError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Expects `body` to throw the error case `kind` with a message containing `substring`; returns the
/// error for further checks.
@discardableResult
func expectError<R>(
    _ kind: ErrorKind, mentioning substring: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> R
) -> SGDNoiseError? {
    guard let error = thrownError(body, sourceLocation: sourceLocation) else { return nil }
    #expect(
        ErrorKind(error) == kind,
        "expected \(kind), observed \(ErrorKind(error)): \(error.message)", sourceLocation: sourceLocation)
    #expect(
        error.message.contains(substring),
        "expected the message to mention \"\(substring)\", observed \"\(error.message)\"",
        sourceLocation: sourceLocation)
    return error
}

extension SGDNoiseError {
    /// The critical learning rate of an `unstable` error (nil otherwise or when unknown).
    var criticalLearningRateIfUnstable: Double? {
        if case .unstable(_, let critical) = self { return critical }
        return nil
    }
}

/// |observed − expected| / |expected|.
func relativeDifference(_ observed: Double, _ expected: Double) -> Double {
    abs(observed - expected) / abs(expected)
}
