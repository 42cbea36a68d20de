import _SGDNoiseBLAS

/// The Hessian H (P × P, symmetric) of a model known only through its product v ↦ H v.
///
/// For a network of P parameters (P up to 10⁹) H is never formed: the caller supplies the
/// Hessian-vector product (automatic differentiation, finite differences of gradients, …) and the
/// curvature algorithms of this directory (`lanczosEigenpairs`, `StochasticLanczosQuadrature`,
/// `krylovMatrixFunction`) use nothing else. The product comes in one of two forms: one vector at
/// a time (`Product`), or a block of up to `blockSize` vectors at once (`BlockProduct`, e.g.
/// `jax.vmap` of an HVP, which costs far less than as many separate calls). Either form serves
/// both kinds of request: a single-vector operator answers a block by looping over its vectors, a
/// block operator answers a single vector as a block of one. The probe loops (stochastic Lanczos
/// quadrature, the Hutchinson probes of `networkFluctuation`) advance `blockSize` probes in
/// lockstep, one block product per step (docs/theory.md §8). Every product goes through `apply`,
/// which
///
/// - counts it: `productCount` is the number of vectors multiplied (a block of b vectors counts
///   b; a call that throws is counted too), `callCount` the number of closure calls, and every
///   algorithm reports the products it used;
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

    /// The block product out ← V Hᵀ = (H v_1, …, H v_b) for b = `count` vectors (1 ≤ b ≤ `blockSize`)
    /// stored row-major: v_r at `v[r·P ..< (r+1)·P]`, H v_r to be written at the same place of
    /// `out` (b · P entries each, never overlapping). Row r of out must equal the single product of
    /// row r.
    public typealias BlockProduct = (_ count: Int, _ v: UnsafeBufferPointer<Double>,
                                     _ out: UnsafeMutableBufferPointer<Double>) throws -> Void

    private enum Form {
        case single(Product)
        case block(BlockProduct)
    }

    /// P, the number of parameters (the length of v and of H v).
    public let dimension: Int
    /// The most vectors one call of the closure takes: 1 for a single-vector operator, the
    /// caller's bound for a block operator. The probe algorithms advance this many probes in
    /// lockstep, holding their Krylov bases at once (memory O(blockSize · steps · P)).
    public let blockSize: Int
    /// The number of vectors multiplied so far (a block call of b vectors counts b; calls that
    /// threw count too).
    public private(set) var productCount: Int = 0
    /// The number of calls of the closure so far (equal to `productCount` for a single-vector
    /// operator).
    public private(set) var callCount: Int = 0

    private let form: Form

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
        self.blockSize = 1
        self.form = .single(product)
    }

    /// The operator of a block Hessian-vector product (see `BlockProduct`).
    /// - Parameters:
    ///   - dimension: P ≥ 1.
    ///   - blockSize: b ≥ 1, the most vectors per call.
    ///   - blockProduct: out ← H v_r for the `count` ≤ b rows of V.
    /// - Throws: `invalidArgument` when P < 1 or b < 1.
    public init(dimension: Int, blockSize: Int, blockProduct: @escaping BlockProduct) throws {
        guard dimension >= 1 else {
            throw SGDNoiseError.invalidArgument("dimension must be at least 1, got \(dimension)")
        }
        guard blockSize >= 1 else {
            throw SGDNoiseError.invalidArgument("blockSize must be at least 1, got \(blockSize)")
        }
        self.dimension = dimension
        self.blockSize = blockSize
        self.form = .block(blockProduct)
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
    /// plus O(P) work; H̃'s check of its output covers `hessian`'s (a positive finite scaling keeps
    /// every NaN and infinity), which is not checked twice.
    /// - Throws: `invalidArgument` (a dense matrix learning rate, which has no matrix-free square
    ///   root here; a wrong number of entries; a non-finite or non-positive scalar),
    ///   `notPositiveDefinite` (a diagonal entry ≤ 0).
    public convenience init(preconditioning hessian: HessianOperator, learningRate: LearningRate) throws {
        let n = hessian.dimension
        let b = hessian.blockSize
        // One block form for both kinds of operator (`hessian` loops when it has a single form):
        // H̃ takes the block size of H, and row r of a block is exactly the product of row r alone.
        switch learningRate {
        case .scalar(let lambda):
            try Validation.learningRate(lambda)
            let scaling = ScalingSwitch()
            try self.init(dimension: n, blockSize: b) { count, v, out in
                try hessian.apply(count: count, v.baseAddress!, into: out.baseAddress!, checked: false)
                if scaling.on { scaleInPlace(out.baseAddress!, count: count * n, by: lambda) }
            }
            outputScale = lambda
            self.scaling = scaling
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
            let scratch = try KrylovBasis(dimension: n, capacity: 1)  // grown to the largest block seen
            try self.init(dimension: n, blockSize: b) { count, v, out in
                try scratch.reserve(count)
                let s = scratch.storage
                root.withUnsafeBufferPointer { r in
                    for row in 0..<count {
                        for i in 0..<n { s[row * n + i] = r[i] * v[row * n + i] }
                    }
                }
                try hessian.apply(count: count, UnsafePointer(s), into: out.baseAddress!, checked: false)
                root.withUnsafeBufferPointer { r in
                    for row in 0..<count {
                        for i in 0..<n { out[row * n + i] *= r[i] }
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
        try apply(count: 1, v, into: out)
    }

    /// out_r ← H v_r for `count` vectors stored row-major at v (rows of `dimension` entries; v and
    /// out not overlapping): calls of at most `blockSize` vectors for a block operator, one call per
    /// vector for a single-vector one; each vector counted, each output checked.
    ///
    /// `checked: false` leaves the check to the caller, who must make it before using a row: a
    /// Lanczos step reads every row in a pass that sums its squares anyway, and calls
    /// `requireFinite` on the row when that sum is not finite (an entry NaN or ±∞, or squares
    /// overflowing), which throws the same error as the check here would have.
    /// - Throws: `numericalFailure` when an H v_r has a NaN or an infinity; whatever the closure throws.
    ///
    /// `scaled: false` leaves out the factor `outputScale` (λ of λH, 1 for other operators): the
    /// rows are H v_r / `outputScale`, and the caller multiplies (a Lanczos step folds it into its
    /// coefficients, which saves a pass over each product).
    func apply(count: Int, _ v: UnsafePointer<Double>, into out: UnsafeMutablePointer<Double>, checked: Bool = true,
               scaled: Bool = true) throws
    {
        if !scaled, let scaling {
            scaling.on = false
            defer { scaling.on = true }
            return try apply(count: count, v, into: out, checked: checked)
        }
        let p = dimension
        uncheckedCall = nil
        var start = 0
        while start < count {
            let b: Int
            switch form {
            case .single(let product):
                b = 1
                productCount += 1
                callCount += 1
                try product(UnsafeBufferPointer(start: v + start * p, count: p),
                            UnsafeMutableBufferPointer(start: out + start * p, count: p))
            case .block(let product):
                b = min(blockSize, count - start)
                productCount += b
                callCount += 1
                try product(b, UnsafeBufferPointer(start: v + start * p, count: b * p),
                            UnsafeMutableBufferPointer(start: out + start * p, count: b * p))
            }
            if checked {
                for row in start..<(start + b) {
                    try requireFinite(out + row * p, vector: row, product: productCount - b + 1 + (row - start))
                }
            }
            start += b
        }
        if !checked { uncheckedCall = (UnsafePointer(out), count, productCount - count + 1) }
    }

    /// λ for the operator λH of `init(preconditioning:learningRate: .scalar(λ))`, which
    /// `apply(…, scaled: false)` leaves out; 1 for every other operator.
    private(set) var outputScale = 1.0
    /// Turns the factor `outputScale` off for one `apply(…, scaled: false)`.
    private var scaling: ScalingSwitch?

    /// The output of the last `apply(…, checked: false)`: where its rows start, how many, and the
    /// number of the product of its first row (for the error message).
    private var uncheckedCall: (out: UnsafePointer<Double>, count: Int, firstProduct: Int)?

    /// The check that `apply(…, checked: false)` left to its caller, for one row of its output.
    /// - Throws: `numericalFailure` when the row has a NaN or an infinity.
    func requireFinite(_ row: UnsafePointer<Double>) throws {
        guard let call = uncheckedCall, row >= call.out, row < call.out + call.count * dimension else {
            try requireFinite(row, vector: 0, product: productCount)
            return
        }
        let r = (row - call.out) / dimension
        try requireFinite(row, vector: r, product: call.firstProduct + r)
    }

    /// Throws `numericalFailure` naming the first NaN/Inf entry of the row (vector `vector` of its
    /// call, product number `product`).
    private func requireFinite(_ row: UnsafePointer<Double>, vector: Int, product: Int) throws {
        for i in 0..<dimension where !row[i].isFinite {
            throw SGDNoiseError.numericalFailure(
                "the Hessian-vector product returned NaN/Inf (entry \(i) of vector \(vector) is \(row[i]), "
                    + "product \(product))")
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

    /// H v_r for the rows v_r of `vectors` (b × P), as the rows of the result: blocks of at most
    /// `blockSize` rows per call, counted and checked like every product.
    /// - Throws: `invalidArgument` (not P columns, no rows, non-finite entries), `numericalFailure`
    ///   (NaN/Inf in a product), or whatever the product closure throws.
    public func apply(block vectors: Matrix) throws -> Matrix {
        guard vectors.columns == dimension, vectors.rows >= 1 else {
            throw SGDNoiseError.invalidArgument(
                "the block must have rows of \(dimension) entries, got \(vectors.rows) × \(vectors.columns)")
        }
        if let i = vectors.elements.firstIndex(where: { !$0.isFinite }) {
            throw SGDNoiseError.invalidArgument("the block has a non-finite entry \(vectors.elements[i]) at \(i)")
        }
        var out = [Double](repeating: 0, count: vectors.elements.count)
        try vectors.elements.withUnsafeBufferPointer { x in
            try out.withUnsafeMutableBufferPointer { y in
                try apply(count: vectors.rows, x.baseAddress!, into: y.baseAddress!)
            }
        }
        return try Matrix(rows: vectors.rows, columns: dimension, elements: out)
    }
}

/// Whether the λ-scaling of a preconditioned operator's product is on (off during an
/// `apply(…, scaled: false)`).
final class ScalingSwitch: @unchecked Sendable {
    var on = true
}
