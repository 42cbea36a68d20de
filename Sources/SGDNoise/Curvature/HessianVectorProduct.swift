import _SGDNoiseBLAS

/// The Hessian H (P × P, symmetric) of a model known only through its product v ↦ H v.
///
/// For a network of P parameters (P up to 10⁹) H is never formed: the caller supplies the
/// Hessian-vector product (automatic differentiation, finite differences of gradients, …) and the
/// curvature algorithms of this directory (`lanczosEigenpairs`, `StochasticLanczosQuadrature`,
/// `krylovMatrixFunction`) use nothing else. Every product goes through `apply`, which
///
/// - counts it: `productCount` is the number of times the product closure was called (a call that
///   throws is counted too), and every algorithm reports the products it used;
/// - checks its output: a NaN or an infinity in H v throws `SGDNoiseError.numericalFailure`;
/// - propagates any error the closure throws, unchanged (a caller cancels a long computation by
///   throwing its own error from the closure).
///
/// The operator is a reference type so that copies share one counter. It is not thread-safe: one
/// algorithm at a time uses it, and the algorithms call the closure sequentially.
public final class HessianOperator {
    /// The product out ← H v: the closure reads `dimension` entries of v and must write all
    /// `dimension` entries of out (the two buffers never overlap). H must be symmetric; the
    /// algorithms assume it and do not check it.
    public typealias Product = (_ v: UnsafeBufferPointer<Double>, _ out: UnsafeMutableBufferPointer<Double>) throws -> Void

    /// P, the number of parameters (the length of v and of H v).
    public let dimension: Int
    /// The number of products H v computed so far (calls of the closure, including calls that
    /// threw).
    public private(set) var productCount: Int = 0

    private let product: Product

    /// The operator of a Hessian-vector product.
    /// - Parameters:
    ///   - dimension: P ≥ 1.
    ///   - product: out ← H v for a symmetric H (see `Product`).
    /// - Throws: `invalidArgument` when P < 1.
    public init(dimension: Int, product: @escaping Product) throws {
        guard dimension >= 1 else {
            throw SGDNoiseError.invalidArgument("dimension must be at least 1, got \(dimension)")
        }
        self.dimension = dimension
        self.product = product
    }

    /// The operator of a dense symmetric matrix: H v = `hessian` · v (`cblas_dgemv`), for tests and
    /// for models small enough to hold H.
    /// - Throws: `invalidArgument` (empty, not square, non-finite), `notSymmetric` (beyond
    ///   `Matrix.symmetryTolerance`).
    public convenience init(_ hessian: Matrix) throws {
        try hessian.requireSymmetric("hessian")
        let n = hessian.rows
        try self.init(dimension: n) { v, out in
            hessian.elements.withUnsafeBufferPointer { a in
                sgn_cblas_dgemv(CblasRowMajor, CblasNoTrans, blasInt(n), blasInt(n), 1,
                                a.baseAddress, blasInt(n), v.baseAddress, 1, 0, out.baseAddress, 1)
            }
        }
    }

    /// The preconditioned Hessian H̃ of docs/theory.md §3 as an operator over `hessian`:
    ///
    ///     H̃ v = D^{1/2} H (D^{1/2} v)   for a diagonal learning rate Λ = D = diag(d), every d_i > 0,
    ///     H̃ v = λ H v                    for a scalar learning rate Λ = λI.
    ///
    /// The eigenvalues of H̃ are those of ΛH, the quantities of the stability condition and of the
    /// stationary fluctuation. Each product of H̃ is one product of `hessian` (which counts it too)
    /// plus O(P) work.
    /// - Throws: `invalidArgument` (a dense matrix learning rate, which has no matrix-free square
    ///   root here; a wrong number of entries; a non-finite or non-positive scalar),
    ///   `notPositiveDefinite` (a diagonal entry ≤ 0).
    public convenience init(preconditioning hessian: HessianOperator, learningRate: LearningRate) throws {
        let n = hessian.dimension
        switch learningRate {
        case .scalar(let lambda):
            try Validation.learningRate(lambda)
            try self.init(dimension: n) { v, out in
                try hessian.apply(v.baseAddress!, into: out.baseAddress!)
                scaleInPlace(out.baseAddress!, count: n, by: lambda)
            }
        case .diagonal(let d):
            guard d.count == n else {
                throw SGDNoiseError.invalidArgument("learningRate must have \(n) diagonal entries, got \(d.count)")
            }
            if let i = d.firstIndex(where: { !$0.isFinite }) {
                throw SGDNoiseError.invalidArgument("learningRate has a non-finite diagonal entry \(d[i]) at \(i)")
            }
            if let i = d.firstIndex(where: { $0 <= 0 }) {
                throw SGDNoiseError.notPositiveDefinite(
                    "learningRate: every diagonal entry must be positive, got \(d[i]) at \(i)")
            }
            let root = d.map { $0.squareRoot() }
            var scratch = [Double](repeating: 0, count: n)
            try self.init(dimension: n) { v, out in
                try root.withUnsafeBufferPointer { r in
                    try scratch.withUnsafeMutableBufferPointer { s in
                        for i in 0..<n { s[i] = r[i] * v[i] }
                        try hessian.apply(UnsafePointer(s.baseAddress!), into: out.baseAddress!)
                        for i in 0..<n { out[i] *= r[i] }
                    }
                }
            }
        case .matrix:
            throw SGDNoiseError.invalidArgument(
                "learningRate: a dense matrix learning rate has no matrix-free square root; pass .scalar or .diagonal")
        }
    }

    /// out ← H v for `dimension` entries at each pointer (not overlapping), counted and checked.
    /// - Throws: `numericalFailure` when H v has a NaN or an infinity; whatever the closure throws.
    func apply(_ v: UnsafePointer<Double>, into out: UnsafeMutablePointer<Double>) throws {
        productCount += 1
        try product(UnsafeBufferPointer(start: v, count: dimension),
                    UnsafeMutableBufferPointer(start: out, count: dimension))
        for i in 0..<dimension where !out[i].isFinite {
            throw SGDNoiseError.numericalFailure(
                "the Hessian-vector product returned NaN/Inf (entry \(i) is \(out[i]), product \(productCount))")
        }
    }

    /// H v for a vector of `dimension` entries, counted and checked like every product.
    /// - Throws: `invalidArgument` (wrong length, non-finite entries), `numericalFailure` (NaN/Inf
    ///   in H v), or whatever the product closure throws.
    public func apply(_ v: [Double]) throws -> [Double] {
        guard v.count == dimension else {
            throw SGDNoiseError.invalidArgument("v must have \(dimension) entries, got \(v.count)")
        }
        if let i = v.firstIndex(where: { !$0.isFinite }) {
            throw SGDNoiseError.invalidArgument("v has a non-finite entry \(v[i]) at \(i)")
        }
        var out = [Double](repeating: 0, count: dimension)
        try v.withUnsafeBufferPointer { x in
            try out.withUnsafeMutableBufferPointer { y in try apply(x.baseAddress!, into: y.baseAddress!) }
        }
        return out
    }
}
