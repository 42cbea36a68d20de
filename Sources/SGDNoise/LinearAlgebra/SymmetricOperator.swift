/// A symmetric matrix given densely, or by its diagonal (a spectrum in its own eigenbasis), or by a
/// weighted spectrum (nodes with multiplicities, docs/theory.md §8).
///
/// Users with a Hessian or data spectrum of millions of entries pass `.diagonal`: then every
/// model of the library runs in O(D) and returns diagonals. `.dense` takes any symmetric matrix.
/// `.weightedSpectrum` is accepted where a trace over the spectrum is all a model needs (see the
/// case); elsewhere it is refused with `invalidArgument`.
public enum SymmetricOperator: Sendable, Equatable {
    /// A dense D × D symmetric matrix (checked symmetric to the relative tolerance
    /// `Matrix.symmetryTolerance`, 1e-10, where it is used). Models cost O(D³) with it.
    case dense(Matrix)
    /// The diagonal matrix diag(values): a spectrum, the D eigenvalues of a symmetric matrix in
    /// its own eigenbasis. Every model then costs O(D) and returns diagonals.
    case diagonal([Double])
    /// A spectrum whose node θ_l stands for ω_l directions (ω_l ≥ 0, real: e.g. the output of
    /// stochastic Lanczos quadrature, `StochasticLanczosQuadrature.spectrum`). Every trace over
    /// the spectrum is the weighted sum Σ_l ω_l f(θ_l), the dimension D is Σ_l ω_l, and the
    /// per-direction results are the values at the nodes, returned as a weighted spectrum with the
    /// same weights. Accepted by `labelNoise`, `highDimensional`, `criticalLearningRate` (label
    /// noise, high-dimensional, L2 with a per-node weight decay), `minimumFluctuation` (without
    /// weight decay) and, through their `weights`, `labelNoiseSweep` and `scalingLaw`; with integer
    /// weights each gives what the `.diagonal` spectrum with node l repeated ω_l times gives.
    /// `dimension` is the number of nodes.
    case weightedSpectrum(WeightedSpectrum)

    /// The dimension D (the number of nodes of a weighted spectrum, whose D is `totalWeight`).
    public var dimension: Int {
        switch self {
        case .dense(let m): return m.rows
        case .diagonal(let v): return v.count
        case .weightedSpectrum(let w): return w.nodes.count
        }
    }

    /// The multiplicities ω_l of a weighted spectrum (nil for the other cases, whose entries
    /// each count once).
    public var multiplicities: [Double]? {
        if case .weightedSpectrum(let w) = self { return w.weights }
        return nil
    }

    /// The entries of a spectrum (`.diagonal` or the nodes of `.weightedSpectrum`); nil for a
    /// dense matrix.
    var spectrumEntries: [Double]? {
        switch self {
        case .dense: return nil
        case .diagonal(let v): return v
        case .weightedSpectrum(let w): return w.nodes
        }
    }

    /// A spectrum with this operator's representation and multiplicities and the given entries
    /// (one per node): `.weightedSpectrum` with the same weights, `.diagonal` otherwise.
    func sameSpectrumLayout(_ values: [Double]) -> SymmetricOperator {
        if case .weightedSpectrum(let w) = self {
            return .weightedSpectrum(WeightedSpectrum(uncheckedNodes: values, weights: w.weights))
        }
        return .diagonal(values)
    }

    /// Whether this is the `.diagonal` representation.
    public var isDiagonal: Bool {
        if case .diagonal = self { return true }
        return false
    }

    /// Whether this is a spectrum (`.diagonal` or `.weightedSpectrum`).
    var isSpectrum: Bool { spectrumEntries != nil }

    /// The dense matrix (a diagonal one for `.diagonal`; for `.weightedSpectrum` the diagonal of
    /// its nodes, which drops the multiplicities: no model that accepts weights uses it).
    public var matrix: Matrix {
        switch self {
        case .dense(let m): return m
        case .diagonal(let v): return Matrix.diagonal(v)
        case .weightedSpectrum(let w): return Matrix.diagonal(w.nodes)
        }
    }

    /// The diagonal entries (the nodes of a weighted spectrum).
    public var diagonalEntries: [Double] {
        switch self {
        case .dense(let m): return m.diagonalEntries
        case .diagonal(let v): return v
        case .weightedSpectrum(let w): return w.nodes
        }
    }

    /// The trace (Σ_l ω_l θ_l for a weighted spectrum).
    public var trace: Double {
        if case .weightedSpectrum(let w) = self { return w.integral { $0 } }
        return diagonalEntries.reduce(0, +)
    }

    /// The eigenvalues: a spectrum's entries as given (the nodes of a weighted spectrum, without
    /// their multiplicities), or a matrix's in ascending order (LAPACK).
    /// - Throws: `notSymmetric` or `invalidArgument` for a matrix that is not finite and symmetric.
    public func eigenvalues() throws -> [Double] {
        switch self {
        case .diagonal(let v): return v
        case .weightedSpectrum(let w): return w.nodes
        case .dense(let m): return try m.symmetricEigenvalues(name: "A")
        }
    }

    /// Checks finiteness, symmetry and (when given) the dimension. A weighted spectrum is refused
    /// with `invalidArgument` unless `weighted` says the caller sums over its multiplicities.
    func validate(_ name: String, size n: Int? = nil, weighted: Bool = false) throws {
        switch self {
        case .dense(let m):
            try m.requireSymmetric(name, size: n)
        case .weightedSpectrum(let w):
            guard weighted else { throw Self.weightsRefused(name) }
            try SymmetricOperator.diagonal(w.nodes).validate(name, size: n)
            guard w.totalWeight > 0 else {
                throw SGDNoiseError.invalidArgument("\(name): the weights of a weighted spectrum must not all be zero")
            }
        case .diagonal(let v):
            guard !v.isEmpty else { throw SGDNoiseError.invalidArgument("\(name) must not be empty") }
            if let n, v.count != n {
                throw SGDNoiseError.invalidArgument("\(name) must have \(n) entries, got \(v.count)")
            }
            if let k = v.firstIndex(where: { !$0.isFinite }) {
                throw SGDNoiseError.invalidArgument("\(name) has a non-finite entry \(v[k]) at \(k)")
            }
        }
    }

    /// The error of a function that does not accept a weighted spectrum for `name`.
    static func weightsRefused(_ name: String) -> SGDNoiseError {
        .invalidArgument(
            "\(name): a weighted spectrum (nodes with multiplicities) is not accepted here; it is accepted by "
                + "label_noise, high_dimensional, critical_learning_rate, minimum_fluctuation and the sweeps")
    }

    /// Checks that this symmetric operator is positive semi-definite (eigenvalues ≥ −1e-12 of the
    /// largest in magnitude): a covariance. Costs one eigenvalue computation for a dense matrix.
    func requirePositiveSemidefinite(_ name: String) throws {
        try requireCovarianceEigenvalues(try spectrumEntries ?? matrix.symmetricEigenvalues(name: name), name)
    }

    /// A + B for operators of the same representation (a diagonal one is densified otherwise); a
    /// weighted spectrum plus a diagonal (entries per node) keeps the weights.
    static func + (a: SymmetricOperator, b: SymmetricOperator) -> SymmetricOperator {
        if let x = a.spectrumEntries, case .diagonal(let y) = b { return a.sameSpectrumLayout(zip(x, y).map { $0 + $1 }) }
        return .dense(a.matrix + b.matrix)
    }

    /// A · v.
    func apply(_ v: [Double]) -> [Double] {
        if let d = spectrumEntries { return zip(d, v).map { $0 * $1 } }
        return matrix.apply(v)
    }

    /// vᵀ A w.
    func bilinear(_ v: [Double], _ w: [Double]) -> Double {
        zip(v, apply(w)).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// Tr[A X] for a symmetric X of the same dimension (X dense or diagonal); Σ_l ω_l a_l x_l when
    /// either is a weighted spectrum (the other then a spectrum on the same nodes).
    func traceProduct(_ x: SymmetricOperator) -> Double {
        if let w = multiplicities ?? x.multiplicities {
            return (0..<w.count).reduce(0) { $0 + w[$1] * diagonalEntries[$1] * x.diagonalEntries[$1] }
        }
        if let a = spectrumEntries { return zip(a, x.diagonalEntries).reduce(0) { $0 + $1.0 * $1.1 } }
        if let b = x.spectrumEntries { return zip(diagonalEntries, b).reduce(0) { $0 + $1.0 * $1.1 } }
        return zip(matrix.elements, x.matrix.elements).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// A⁻¹ b for a symmetric positive-definite A (Cholesky), throwing `notPositiveDefinite`.
    func solve(_ b: [Double], name: String) throws -> [Double] {
        guard let d = spectrumEntries else { return try matrix.solvePositiveDefinite(b, name: name) }
        guard d.allSatisfy({ $0 > 0 }) else {
            throw SGDNoiseError.notPositiveDefinite("\(name) must be positive definite")
        }
        return zip(b, d).map { $0 / $1 }
    }
}

// MARK: - Compact forms for the simulator

extension SymmetricOperator {
    /// The symmetric `m`, rotated to Qᵀ m Q when `basis` holds the rows of Qᵀ, in its most
    /// compact exact form: `.diagonal` when the off-diagonal part vanishes (relative 1e-13; a
    /// multiple of the identity is a constant diagonal), `.dense` otherwise.
    static func compact(_ m: Matrix, rotatedBy basis: Matrix?) -> SymmetricOperator {
        let r = basis.map { Matrix.product(Matrix.product($0, m), $0, transposeB: true).symmetrized } ?? m
        let n = r.rows
        let scale = max(r.maxAbs, .leastNormalMagnitude)
        var offDiagonal = 0.0
        for i in 0..<n { for j in 0..<n where i != j { offDiagonal = max(offDiagonal, abs(r[i, j])) } }
        return offDiagonal <= 1e-13 * scale ? .diagonal(r.diagonalEntries) : .dense(r)
    }

    /// The entries an `UnsafeView` reads: the diagonal, or the row-major matrix.
    var storedEntries: [Double] { spectrumEntries ?? matrix.elements }

    /// A borrowed view of an operator's entries in memory its owner keeps alive (the simulator's
    /// `ChainArena`), applied in inner loops without reference counting.
    struct UnsafeView {
        let isDiagonal: Bool
        let entries: UnsafePointer<Double>

        /// y = A x for vectors of length `n`.
        @inline(__always)
        func apply<Vector: ChainVector>(_ x: Vector, into y: inout Vector, _ n: Int) {
            if isDiagonal {
                for i in 0..<n { y[i] = entries[i] * x[i] }
                return
            }
            for i in 0..<n {
                var s = 0.0
                let row = entries + i * n
                for j in 0..<n { s += row[j] * x[j] }
                y[i] = s
            }
        }
    }
}

/// Throws unless the eigenvalues are those of a covariance: every one ≥ −1e-12 of the largest in
/// magnitude (rounding of an exactly singular matrix is accepted).
func requireCovarianceEigenvalues(_ values: [Double], _ name: String) throws {
    let scale = values.reduce(0) { max($0, abs($1)) }
    if let lo = values.min(), lo < -1e-12 * scale {
        throw SGDNoiseError.invalidArgument(
            "\(name) must be positive semi-definite (a covariance), but it has the eigenvalue \(lo)")
    }
}
