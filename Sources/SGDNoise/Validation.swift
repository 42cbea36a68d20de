/// The rules every argument of the library obeys, in one place.
///
/// Each face (Swift, the C ABI, and through it Python) validates its arguments with these
/// functions and passes the argument's name as that face spells it: Swift callers read
/// `batchSize`, C and Python callers read `batch_size`. The core calls them too (with the Swift
/// names), so a rule cannot differ between faces.
public enum Validation {
    /// The largest dimension D of a dense D × D problem: the LAPACK workspace of a D × D
    /// eigendecomposition must fit the 32-bit indices of the BLAS/LAPACK interface.
    public static let maxDenseDimension = 40_000

    /// A batch size S ≥ 1.
    @discardableResult
    public static func batchSize(_ s: Int, name: String = "batchSize") throws(SGDNoiseError) -> Int {
        guard s >= 1 else { throw .invalidArgument("\(name) must be at least 1, got \(s)") }
        return s
    }

    /// A batch size S for minibatches drawn by `sampling` from N samples: S ≥ 1, and S ≤ N
    /// without replacement (S distinct indices; an epoch-shuffled batch may span two epochs).
    @discardableResult
    public static func batchSize(
        _ s: Int, sampleCount n: Int, sampling: Sampling, name: String = "batchSize"
    ) throws(SGDNoiseError) -> Int {
        guard n >= 1 else { throw .invalidArgument("the number of samples must be at least 1, got \(n)") }
        try batchSize(s, name: name)
        if sampling == .withoutReplacement, s > n {
            throw .invalidArgument("\(name) \(s) exceeds the \(n) samples; sampling without replacement needs \(name) ≤ N")
        }
        return s
    }

    /// A momentum μ ∈ [0, 1) (heavy ball: m ← μm + g, w ← w − λm).
    @discardableResult
    public static func momentum(_ mu: Double, name: String = "momentum") throws(SGDNoiseError) -> Double {
        guard mu.isFinite, mu >= 0, mu < 1 else { throw .invalidArgument("\(name) must lie in [0, 1), got \(mu)") }
        return mu
    }

    /// A scalar learning rate λ: finite and positive.
    @discardableResult
    public static func learningRate(_ lr: Double, name: String = "learningRate") throws(SGDNoiseError) -> Double {
        guard lr.isFinite, lr > 0 else { throw .invalidArgument("\(name) must be a finite positive number, got \(lr)") }
        return lr
    }

    /// A finite number.
    @discardableResult
    public static func finite(_ x: Double, name: String) throws(SGDNoiseError) -> Double {
        guard x.isFinite else { throw .invalidArgument("\(name) must be finite, got \(x)") }
        return x
    }

    /// A finite number ≥ 0 (a variance, a loss).
    @discardableResult
    public static func nonNegative(_ x: Double, name: String) throws(SGDNoiseError) -> Double {
        guard x.isFinite, x >= 0 else { throw .invalidArgument("\(name) must be finite and non-negative, got \(x)") }
        return x
    }

    /// The default relative flat tolerance for a D × D curvature, 16·D·ε: an eigenvalue m of the
    /// (preconditioned) Hessian with |m| ≤ 16·D·ε·max|m| lies below what a D × D symmetric
    /// eigensolver resolves, and its direction is treated as flat (docs/theory.md §3).
    public static func defaultFlatTolerance(dimension d: Int) -> Double {
        16 * Double(max(d, 1)) * Double.ulpOfOne
    }

    /// A covariance: a finite symmetric positive semi-definite operator of dimension `size` (a
    /// dense one costs one eigenvalue computation).
    public static func covariance(_ c: SymmetricOperator, size: Int, name: String) throws {
        try c.validate(name, size: size)
        try c.requirePositiveSemidefinite(name)
    }

    /// A relative flat tolerance in [0, 1) (nil: the default 16·D·ε). Round-off at a numerically
    /// computed minimum (a Hessian eigenvalue of −1e−11 next to 10) needs a larger one.
    public static func flatTolerance(
        _ tol: Double?, dimension d: Int, name: String = "flatTolerance"
    ) throws(SGDNoiseError) -> Double {
        guard let tol else { return defaultFlatTolerance(dimension: d) }
        guard tol.isFinite, tol >= 0, tol < 1 else { throw .invalidArgument("\(name) must lie in [0, 1), got \(tol)") }
        return tol
    }

    /// Throws `numericalFailure` unless `ok`: a result (Σ, C, w*) came out with a NaN or an
    /// infinity, which happens when the inputs' scale (entries near 1e300) overflows double
    /// precision. A result the library returns is finite except where documented.
    static func finiteResult(_ ok: Bool) throws(SGDNoiseError) {
        guard ok else {
            throw .numericalFailure("the result came out non-finite: the inputs' scale overflows double precision")
        }
    }
}

extension SymmetricOperator {
    /// Whether every stored entry is finite.
    var isFinite: Bool {
        switch self {
        case .dense(let m): return m.isFinite
        case .diagonal(let v): return v.allSatisfy(\.isFinite)
        case .weightedSpectrum(let w): return w.nodes.allSatisfy(\.isFinite)
        }
    }

    /// `self`, after checking that it is finite (`numericalFailure` otherwise).
    func checkedFinite() throws(SGDNoiseError) -> SymmetricOperator {
        try Validation.finiteResult(isFinite)
        return self
    }
}
