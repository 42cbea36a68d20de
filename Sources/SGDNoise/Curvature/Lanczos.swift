/// Which end of the Hessian's spectrum a Lanczos run resolves.
public enum SpectrumEnd: Sendable, Equatable {
    /// The k algebraically largest eigenvalues θ_1 ≥ … ≥ θ_k (the sharpest directions).
    case largest
    /// The k algebraically smallest eigenvalues θ_1 ≤ … ≤ θ_k (the most negative curvature).
    case smallest
    /// Both: the k largest and the k smallest.
    case both
}

/// Extreme eigenpairs H q_i ≈ θ_i q_i of a matrix-free Hessian, with their honest residuals.
///
/// Layout (the convention of `SymmetricEigendecomposition`): `eigenvalues[i]` belongs to row i of
/// `eigenvectorRows` (k × P, unit rows). For `.largest` the eigenvalues are descending, for
/// `.smallest` ascending; for `.both` the k largest (descending) come first, then the k smallest
/// (ascending): see `largestRange` and `smallestRange`. Each eigenvector is signed so that its
/// entry of largest magnitude (the first such on a tie) is positive.
public struct LanczosEigenpairs: Sendable {
    /// The end of the spectrum that was asked for.
    public let which: SpectrumEnd
    /// The Ritz values θ_i = q_iᵀ H q_i (Rayleigh quotients of the returned vectors).
    public let eigenvalues: [Double]
    /// Qᵀ: row i is the unit Ritz vector q_i of `eigenvalues[i]`.
    public let eigenvectorRows: Matrix
    /// ‖H q_i − θ_i q_i‖₂. Verified runs compute it with one more product per vector after the
    /// iteration; unverified ones (`verify: false`, as ARPACK) take it from the Lanczos relation,
    /// |β_j y_{j−1,i}|, which holds to rounding, and report at least that rounding level
    /// (8 ε √j max|θ|).
    public let residuals: [Double]
    /// Whether every residual is at most `residualBound`.
    public let converged: Bool
    /// The relative tolerance asked for.
    public let tolerance: Double
    /// The absolute bound the residuals are held to: `tolerance` · max|θ| over the Ritz values of
    /// the last Krylov subspace (an estimate of ‖H‖₂ from below).
    public let residualBound: Double
    /// The Hessian-vector products used, including the k final residual products of a verified
    /// run.
    public let productCount: Int
    /// The number of thick restarts performed.
    public let restarts: Int

    /// Q (P × k): column i is the eigenvector of `eigenvalues[i]`.
    public var eigenvectors: Matrix { eigenvectorRows.transposed }

    /// The positions of the largest eigenvalues in `eigenvalues` (empty for `.smallest`).
    public var largestRange: Range<Int> {
        switch which {
        case .largest: return 0..<eigenvalues.count
        case .smallest: return 0..<0
        case .both: return 0..<(eigenvalues.count / 2)
        }
    }

    /// The positions of the smallest eigenvalues in `eigenvalues` (empty for `.largest`).
    public var smallestRange: Range<Int> {
        switch which {
        case .largest: return eigenvalues.count..<eigenvalues.count
        case .smallest: return 0..<eigenvalues.count
        case .both: return (eigenvalues.count / 2)..<eigenvalues.count
        }
    }
}

/// The k algebraically largest and/or smallest eigenpairs of a symmetric Hessian given only by its
/// product v ↦ H v, by the thick-restart Lanczos method with full reorthogonalisation
/// (Wu & Simon 2000; for symmetric H equivalent to Krylov–Schur and to ARPACK's implicit restart).
///
/// **Cycle.** An orthonormal basis V_j = [v_0 … v_{j−1}] (v_0 a seeded Gaussian vector) is extended
/// by the Lanczos recurrence
///
///     H v_j = Σ_{i≤j} T_ij v_i + β_{j+1} v_{j+1},   T_j = V_jᵀ H V_j,
///
/// each new vector orthogonalised against the whole basis (classical Gram–Schmidt, repeated while it
/// cancels), up to m vectors.
///
/// **Partial reorthogonalisation** (P ≥ 16384). Those two passes over the whole basis are the
/// method's largest cost at large P, and most steps do not need them: the loss of orthogonality is
/// estimated from T alone (`OrthogonalityEstimate`: Simon's recurrence, carried through the
/// restarts, with the noise level ν of the products measured on the run's first steps), and a step
/// is reorthogonalised only when some estimated |v_{j+1}ᵀv_i| would exceed
/// max(min(√ν, tolerance/8), 16ν) — together with the step after it. The returned eigenvectors are
/// made orthonormal at the end (Cholesky QR). On the float32 products of a JAX MLP (P ≈ 10⁶,
/// ν ≈ 10⁻⁸, tolerance 10⁻⁴) about 70 % of the steps skip the passes. The Ritz pairs (θ_i, V_j y_i) of T_j = Y Θ Yᵀ have the residuals
/// ‖H V_j y_i − θ_i V_j y_i‖ = |β_j| |y_{j−1,i}|.
///
/// **Thick restart.** Unless the wanted pairs have converged when the basis is full, it is
/// replaced by [the l Ritz vectors nearest the wanted end(s), v_m] with l = w + ⌊3(m − w)/5⌋
/// (w wanted pairs; for `.both` the extra vectors are split between the ends). T becomes diag(θ)
/// bordered by the couplings β_m y_{m−1,i}, and the recurrence continues from v_m. (Keeping half of
/// the spare subspace needed up to three times fewer products than ARPACK's rule
/// w + min(converged, (m − w)/2) on the clustered and uniform spectra of the tests, and about as
/// many on decaying ones; three fifths, 3% fewer than half over all the P = 500 cases of the
/// tests, and 58–62 instead of 57–65 over four seeds on the decaying spectrum where ARPACK
/// takes 64.)
///
/// **Convergence.** The test |β_j y_{j−1,i}| ≤ tolerance · max_l |θ_l| is made after every product
/// once the basis holds more than w vectors (at the end of each cycle only once an invariant
/// subspace has been met). When it passes, one **verification cycle** follows: the basis shrinks to
/// the w converged Ritz vectors, uncoupled (their relations then err by their residuals, within the
/// tolerance), and grows again from a random vector orthogonal to them, to m vectors. A single
/// start vector has one direction in each eigenspace, so further copies of a repeated eigenvalue
/// (or any eigenvalue it missed) lie in that complement and surface among the new Ritz values. The
/// run ends when the test passes at the end of the cycle with the same wanted Ritz values; when a
/// new one has entered and converged, it is verified in turn; otherwise the run restarts as usual.
/// Then the Ritz vectors q_i are formed, each is multiplied by H once more, θ_i is replaced by the
/// Rayleigh quotient q_iᵀHq_i and the residual ‖Hq_i − θ_iq_i‖ computed explicitly: `residuals` are
/// never an estimate, and `converged` is decided on them.
///
/// - An invariant subspace (the new vector vanishes in rounding, e.g. H with few distinct
///   eigenvalues) continues the basis with a random unit vector orthogonal to it (coupling 0).
/// - P ≤ m (small problems): the basis is grown to span R^P (P products, fewer than a verification
///   cycle would add); T is then H in that basis and the eigenpairs are exact to rounding.
/// - Not converged within `maxProducts`: the current Ritz pairs are returned with
///   `converged == false` and their honest residuals. So is a tolerance below what rounding allows
///   (of the order of ε√P), where the Lanczos estimates fall below it but the true residuals
///   cannot.
///
/// Cost: the products of the iteration, about m − w for the verification cycle, and w for the
/// residuals (the last two not with `verify: false`). For the 10 largest eigenpairs of a 500 × 500 Hessian with a decaying spectrum at
/// tolerance 1e-8, about 80 products in all, where scipy's `eigsh` (ARPACK) takes about 64 without
/// verification or explicit residuals (see CurvatureTests).
///
/// Memory: (m + 2) vectors of P doubles, plus w for the result.
///
/// - Parameters:
///   - hessian: the operator (its `productCount` advances by `productCount` of the result).
///   - k: the number of eigenpairs at each wanted end, 1 ≤ k and k < P (2k < P for `.both`).
///   - which: `.largest`, `.smallest` or `.both`.
///   - tolerance: relative residual tolerance in (0, 1), default 1e-10.
///   - maxSubspace: m, the largest basis; default max(2w + 1, 20) with w = k (2k for `.both`), capped
///     at P; it must exceed w.
///   - maxProducts: the budget of products, default max(1000, 100 m) + w; at least m + w.
///   - seed: the seed of the random start vector (and of any random continuation): equal seeds give
///     equal results.
///   - verify: run the verification cycle and compute the residuals explicitly (default). `false`
///     is ARPACK's contract and cost: the run ends when the Lanczos estimates converge, the Ritz
///     values and the relation's residuals are returned, and a second copy of a repeated
///     eigenvalue that the start vector missed is not searched for (about m − w + w fewer
///     products: 58–62 over four seeds on the 500 × 500 decaying spectrum of the tests, where ARPACK
///     takes 64).
/// - Throws: `invalidArgument` (k, tolerance, maxSubspace or maxProducts out of range),
///   `numericalFailure` (NaN/Inf from the product, or the small eigensolver failing),
///   `outOfMemory` (the basis does not fit), or whatever the product closure throws.
public func lanczosEigenpairs(
    _ hessian: HessianOperator, count k: Int, which: SpectrumEnd = .largest,
    tolerance: Double = 1e-10, maxSubspace: Int? = nil, maxProducts: Int? = nil, seed: UInt64 = 0,
    verify: Bool = true
) throws -> LanczosEigenpairs {
    try thickRestartEigenpairs(hessian, count: k, which: which, tolerance: tolerance, maxSubspace: maxSubspace,
                               maxProducts: maxProducts, seed: seed, verify: verify, partialReorthogonalisation: nil)
}

/// `lanczosEigenpairs` with the choice of reorthogonalisation made by the caller (nil: partial from
/// `ThickRestartLanczos.partialDimension` on, full below), for the tests of both routes.
func thickRestartEigenpairs(
    _ hessian: HessianOperator, count k: Int, which: SpectrumEnd, tolerance: Double, maxSubspace: Int?,
    maxProducts: Int?, seed: UInt64, verify: Bool, partialReorthogonalisation: Bool?
) throws -> LanczosEigenpairs {
    let p = hessian.dimension
    guard k >= 1 else { throw SGDNoiseError.invalidArgument("k must be at least 1, got \(k)") }
    guard k < p else {  // before any arithmetic on k, which may be as large as Int.max
        throw SGDNoiseError.invalidArgument(
            "k = \(k) must be less than the dimension P = \(p) (use SymmetricEigendecomposition for the whole spectrum)")
    }
    let high = which == .smallest ? 0 : k
    let low = which == .largest ? 0 : k
    let wanted = high + low
    guard wanted < p else {
        let what = which == .both ? "2k = \(wanted)" : "k = \(k)"
        throw SGDNoiseError.invalidArgument(
            "\(what) must be less than the dimension P = \(p) (use SymmetricEigendecomposition for the whole spectrum)")
    }
    guard tolerance.isFinite, tolerance > 0, tolerance < 1 else {
        throw SGDNoiseError.invalidArgument("tolerance must lie in (0, 1), got \(tolerance)")
    }
    let m = min(maxSubspace ?? max(2 * wanted + 1, 20), p)
    guard m > wanted else {
        throw SGDNoiseError.invalidArgument(
            "maxSubspace must exceed the \(wanted) wanted eigenpairs, got \(maxSubspace.map(String.init) ?? "nil")")
    }
    let budget = maxProducts ?? (max(1000, 100 * m) + wanted)
    guard budget >= m + wanted else {
        throw SGDNoiseError.invalidArgument(
            "maxProducts must be at least maxSubspace + the wanted eigenpairs = \(m + wanted), got \(budget)")
    }
    var solver = try ThickRestartLanczos(
        hessian: hessian, subspace: m, high: high, low: low, tolerance: tolerance, seed: seed,
        partial: partialReorthogonalisation ?? (p >= ThickRestartLanczos.partialDimension))
    return try solver.run(budget: budget, which: which, verify: verify)
}

/// The state of one thick-restart Lanczos run (see `lanczosEigenpairs`).
struct ThickRestartLanczos {
    let hessian: HessianOperator
    let p: Int
    /// m, the largest basis.
    let m: Int
    let high: Int
    let low: Int
    let tolerance: Double
    /// Rows 0…m: basis vectors; row m + 1: the product's workspace.
    let basis: KrylovBasis
    /// T (m × m, row-major): the projection of H on the basis.
    var t: [Double]
    /// The number of basis vectors whose product has been taken (T_j is j × j).
    var j = 0
    /// β of the last step: the coupling of row j (the next vector) to T_j.
    var coupling = 0.0
    /// Whether an invariant subspace has been met (convergence is then only tested at cycle ends).
    var brokeDown = false
    /// Whether the basis spans the whole space (the Ritz pairs are exact).
    var exhausted = false
    var products = 0
    var restarts = 0
    var rng: Xoshiro256StarStar
    /// The estimate of the basis's loss of orthogonality (partial reorthogonalisation), or nil when
    /// every step is reorthogonalised against the whole basis.
    var orthogonality: OrthogonalityEstimate?
    /// Steps still to be reorthogonalised whatever the estimate says: the run's first steps (they
    /// measure the noise level ν), the step after a reorthogonalised one (Simon: the vector before
    /// it was not reset, and enters the next recurrence), the first step after a restart (its arrow
    /// reads the kept rows anyway).
    var fullSteps = ThickRestartLanczos.calibrationSteps
    /// The steps whose reorthogonalisation was skipped (for the tests and the benchmarks).
    var skippedReorthogonalisations = 0

    /// From this dimension on, the Lanczos vectors are reorthogonalised only when the estimate says
    /// so: below it a pass over the basis costs less than keeping the estimate is worth, and the
    /// small problems (P ≤ m spans R^P) keep their exactly orthogonal basis.
    static let partialDimension = 1 << 14
    /// The steps at the start of a run that measure ν.
    static let calibrationSteps = 4

    var wanted: Int { high + low }

    /// The loss of orthogonality above which a step is reorthogonalised: √ν (Simon's
    /// semi-orthogonality, which keeps T's eigenvalues those of an orthonormal basis to the
    /// product's own precision), at most tolerance/8 (the components a reorthogonalisation
    /// discards, about this level times β, stay well inside the residual bound), at least 16 ν.
    var orthogonalityLimit: Double {
        let noise = orthogonality?.noise ?? 0
        return max(min(noise.squareRoot(), tolerance / 8), 16 * noise)
    }

    init(hessian: HessianOperator, subspace m: Int, high: Int, low: Int, tolerance: Double, seed: UInt64,
         partial: Bool) throws {
        self.hessian = hessian
        orthogonality = partial ? OrthogonalityEstimate(size: m + 1) : nil
        p = hessian.dimension
        self.m = m
        self.high = high
        self.low = low
        self.tolerance = tolerance
        basis = try KrylovBasis(dimension: p, capacity: m + 2)
        t = [Double](repeating: 0, count: m * m)
        rng = Xoshiro256StarStar(seed: seed)
        // The start vector: Gaussian (a continuous law has a nonzero component along every
        // eigenvector almost surely, which Rademacher signs need not have).
        if !basis.randomOrthogonalVector(into: 0, rng: &rng) {
            throw SGDNoiseError.numericalFailure("Lanczos: the random start vector is zero")
        }
    }

    /// The Ritz decomposition of T_j and the quantities the convergence test needs.
    struct Ritz {
        /// Ascending Ritz values and Yᵀ (row i = y_i, j entries).
        let eigen: SymmetricEigendecomposition
        /// |coupling · y_{j−1,i}| for each Ritz value.
        let estimates: [Double]
        /// max|θ|.
        let scale: Double
        /// The wanted indices into `eigen.values`: the largest descending, then the smallest ascending.
        let wanted: [Int]

        var bound: Double
        var convergedCount: Int { wanted.filter { estimates[$0] <= bound }.count }
        var isConverged: Bool { convergedCount == wanted.count }
    }

    func ritz(tolerance: Double) throws -> Ritz {
        var tj = Matrix(rows: j, columns: j)
        for r in 0..<j {
            for c in 0..<j { tj.elements[r * j + c] = t[r * m + c] }
        }
        let eigen = try SymmetricEigendecomposition(checked: tj, name: "the Lanczos matrix T")
        let rows = eigen.eigenvectorRows.elements
        let estimates = (0..<j).map { abs(coupling * rows[$0 * j + j - 1]) }
        let scale = eigen.spectralRadius
        let wanted = Array((j - high..<j).reversed()) + Array(0..<low)
        return Ritz(eigen: eigen, estimates: estimates, scale: scale, wanted: wanted, bound: tolerance * scale)
    }

    /// One Lanczos step: the product of row j, its orthogonalisation, T's column j and row j + 1.
    ///
    /// The couplings T already holds (β to v_{j−1}; after a restart, the border to every kept Ritz
    /// vector) and α_j = v_jᵀ H v_j are subtracted first; then one pass of full
    /// reorthogonalisation, which only removes rounding and so is usually the last (DGKS). Fused
    /// into three passes over the vectors (`lanczosDots`, `combineAndProject`,
    /// `subtractRowsAndScale`): ‖Hv_j‖² and α_j; w = Hv_j − known − α_j v_j written to row j + 1
    /// with its projections on the basis and ‖w‖²; then v_{j+1} = (w − V c)/β in place, with
    /// β² = ‖w‖² − ‖c‖² (exact for orthonormal V; the pass removes at most half of ‖w‖², else the
    /// general DGKS loop takes over). The first pass also checks the product: its sum of squares is
    /// finite unless an entry is NaN/Inf (or the squares overflow, when the general route runs).
    ///
    /// With partial reorthogonalisation (`orthogonality`), the estimate of row j + 1 of VᵀV is
    /// formed first, with β from Pythagoras (‖Hv_j‖² − α_j² − Σ couplings²); while it stays within
    /// `orthogonalityLimit` the projections and the subtraction are skipped, and a step costs
    /// three passes over a few vectors instead of two more over the whole basis.
    mutating func step() throws {
        let h = basis.vector(m + 1)
        let v = basis.vector(j)
        // h = H v_j / s: the operator's scale s (λ of λH) is applied in the coefficients below.
        try hessian.apply(count: 1, v, into: h, checked: false, scaled: false)
        let s = hessian.outputScale
        products += 1
        // The couplings of v_j to the rows before it (column j of T above the diagonal).
        let couplings = (0..<j).map { t[$0 * m + j] }
        let known = couplings.indices.filter { couplings[$0] != 0 }
            .map { (coefficient: couplings[$0], vector: UnsafePointer(basis.vector($0))) }
        let knownSquares = couplings.reduce(0) { $0 + $1 * $1 }
        let raw = lanczosDots(h, v, nil, count: p)
        if !raw.hh.isFinite { try hessian.requireFinite(h) }
        let dots = (hh: s * s * raw.hh, vh: s * raw.vh)
        let a = dots.vh
        let next = basis.vector(j + 1)
        // The estimate of ω_{j+1,k}·β_{j+1} (the commutator column), and whether it allows the
        // reorthogonalisation to be skipped.
        let forced = fullSteps > 0
        if forced { fullSteps -= 1 }
        let pythagoras = dots.hh - a * a - knownSquares
        let commutator: [Double]? = orthogonality.flatMap { estimate in
            guard !forced, dots.hh.isFinite, dots.hh >= 1e-250, pythagoras > 0.01 * dots.hh else { return nil }
            return estimate.commutatorColumn(t: t, stride: m, column: couplings + [a], j: j)
        }
        let productNorm = dots.hh.squareRoot()
        let skip = commutator.map { column in
            orthogonality!.predictedRow(commutator: column, productNorm: productNorm, beta: pythagoras.squareRoot())
                .allSatisfy { abs($0) <= orthogonalityLimit }
        } ?? false
        // The pass works on w/s (h as given, the coefficients divided by s); its results are scaled back.
        var c = [Double](repeating: 0, count: j + 1)
        let localSquare = s * s * c.withUnsafeMutableBufferPointer {
            combineAndProject(h, minus: (known + [(a, UnsafePointer(v))]).map { ($0.coefficient / s, $0.vector) },
                              rows: skip ? nil : basis.storage, rowCount: skip ? 0 : j + 1, count: p, into: next,
                              projections: $0.baseAddress!)
        }
        // Pythagoras assumed orthonormal rows: a w much shorter than it said is cancellation, where
        // the skipped projections are taken after all.
        var projected = !skip
        if skip && !(localSquare >= 0.5 * pythagoras && localSquare >= 1e-250) {
            c.withUnsafeMutableBufferPointer {
                projectRows(basis.storage, rows: j + 1, length: p, next, into: $0.baseAddress!)
            }
            projected = true
        }
        c = c.map { s * $0 }
        var stored = s  // next holds the new vector times stored / ‖·‖ before the final scaling
        let cSquare = c.reduce(0) { $0 + $1 * $1 }
        var after: Double
        var inSpan = false
        var normalised = false
        var subtracted = true  // whether the new vector was reorthogonalised (its row of Ω reset)
        var reorthogonalised = 0.0  // what the reorthogonalisation subtracted along v_j
        let before = lanczosProductNorm(couplingSquares: knownSquares, alpha: a, restSquare: localSquare, h, count: p,
                                        scale: s)
        let usual = dots.hh.isFinite && dots.hh >= 1e-250 && localSquare >= 1e-250
        if !projected || (usual && c.allSatisfy({ abs($0) <= 1e-13 * localSquare.squareRoot() })) {
            after = localSquare.squareRoot()  // orthogonal to rounding, or within the limit: nothing to subtract
            subtracted = false
        } else if usual && localSquare - cSquare > 0.5 * localSquare {
            after = (localSquare - cSquare).squareRoot()
            reorthogonalised = c[j]
            if j + 1 < p && after > Double.ulpOfOne * before {
                c.map { $0 / s }.withUnsafeBufferPointer {
                    subtractRowsAndScale(next, rows: basis.storage, rowCount: j + 1, coefficients: $0.baseAddress!,
                                         scale: s / after, count: p, into: next)
                }
                normalised = true
            }
        } else {
            // Cancellation, or magnitudes near the ends of the double range: the general DGKS loop
            // (it starts over from w and measures every norm, scaled where squares over/underflow).
            c = [Double](repeating: 0, count: j + 1)
            next.update(from: h, count: p)
            if s != 1 { scaleInPlace(next, count: p, by: s) }
            stored = 1
            subtractRows(basis.storage, rows: j + 1, length: p, coefficients: couplings + [a], from: next)
            let local = longNorm(next, count: p)
            let result = c.withUnsafeMutableBufferPointer {
                basis.orthogonalise(next, against: j + 1, coefficients: $0.baseAddress!, normBefore: local,
                                    minimumPasses: 1)
            }
            after = result.after
            inSpan = result.inSpan
            reorthogonalised = c[j]
        }
        t[j * m + j] = a + reorthogonalised
        var beta = after
        var continued = false  // v_{j+1} is a random vector orthogonal to the basis
        if j + 1 == p {
            // The basis spans R^P: no residual is left.
            exhausted = true
            beta = 0
        } else if inSpan || after <= Double.ulpOfOne * before {
            // An invariant subspace, to rounding: continue with a random vector orthogonal to the
            // basis (coupling 0; the relation loses at most ε‖Hv‖).
            brokeDown = true
            beta = 0
            if !basis.randomOrthogonalVector(into: j + 1, rng: &rng) { exhausted = true }
            continued = true
        } else {
            // Nearly invariant (β ≤ √ε ‖Hv‖): the new direction is mostly rounding, a restart in
            // effect; the coupling is kept, so the relation stays exact.
            if after <= Double.ulpOfOne.squareRoot() * before { brokeDown = true }
            if !normalised { scaleInPlace(next, count: p, by: stored / beta) }
        }
        if j + 1 < m {
            t[(j + 1) * m + j] = beta
            t[j * m + j + 1] = beta
        }
        coupling = beta
        if orthogonality != nil {
            recordOrthogonality(row: j + 1, skipped: !projected, measured: c, wNorm: localSquare.squareRoot(),
                                productNorm: productNorm, commutator: commutator, subtracted: subtracted || continued,
                                forced: forced)
        }
        j += 1
    }

    /// Updates the estimate with row `row` (= j + 1) of this step: the prediction with the actual
    /// β when the reorthogonalisation was skipped; after a full pass, the measured loss (the
    /// projections c on the basis of w, whose norm is `wNorm`) calibrates ν — on the run's first
    /// steps directly, later by the factor it exceeded the estimate — and the row is reset when w was
    /// reorthogonalised. A reorthogonalisation the estimate asked for is followed by another.
    private mutating func recordOrthogonality(
        row: Int, skipped: Bool, measured c: [Double], wNorm: Double, productNorm: Double,
        commutator: [Double]?, subtracted: Bool, forced: Bool
    ) {
        guard var estimate = orthogonality, row < estimate.size else { return }
        defer { orthogonality = estimate }
        if skipped {
            estimate.setRow(row, estimate.predictedRow(commutator: commutator!, productNorm: productNorm,
                                                       beta: wNorm))
            skippedReorthogonalisations += 1
            return
        }
        let largest = c.reduce(0) { max($0, abs($1)) }
        if products <= ThickRestartLanczos.calibrationSteps, productNorm > 0 {
            estimate.observeNoise(largest / productNorm)
        } else if let commutator, wNorm > 0 {
            let predicted = estimate.predictedRow(commutator: commutator, productNorm: productNorm, beta: wNorm)
                .reduce(0) { max($0, abs($1)) }
            if largest / wNorm > 2 * predicted, predicted > 0 { estimate.underestimated(by: largest / wNorm / predicted) }
        }
        if subtracted {
            estimate.resetRow(row)
            if !forced { fullSteps = max(fullSteps, 1) }
        } else if wNorm > 0 {
            estimate.setRow(row, c.map { $0 / wNorm })
        }
    }

    /// Replaces the basis by `kept` Ritz vectors (indices into `r`), followed by the vector in row
    /// `next` (when given) coupled to each Ritz vector y_i by `border` · y_{j−1,i}: T becomes
    /// diag(θ), bordered.
    mutating func compress(_ r: Ritz, keeping kept: [Int], border: Double, next: Int?) {
        let l = kept.count
        let y = r.eigen.eigenvectorRows.elements  // row i = y_i (j entries)
        var coefficients = [Double](repeating: 0, count: l * j)
        for (row, index) in kept.enumerated() {
            for c in 0..<j { coefficients[row * j + c] = y[index * j + c] }
        }
        basis.combine(coefficients: coefficients, outputs: l, from: j, into: basis.storage)
        if let next { basis.copy(next, to: l) }
        if orthogonality != nil {
            // Ω' = Zᵀ Ω Z over the kept combinations (and the residual vector); the first step
            // after the restart reads the kept rows for its arrow anyway, and is reorthogonalised.
            var z = kept.map { index in Array(y[(index * j)..<(index * j + j)]) }
            if let next { z.append([Double](repeating: 0, count: next) + [1]) }
            orthogonality!.compress(z)
            fullSteps = max(fullSteps, 1)
        }
        for e in t.indices { t[e] = 0 }
        for (row, index) in kept.enumerated() {
            t[row * m + row] = r.eigen.values[index]
            let b = border * y[index * j + j - 1]
            t[l * m + row] = b
            t[row * m + l] = b
        }
        j = l
    }

    /// The thick restart at the end of a cycle: keeps the l = wanted + ⌊3(m − wanted)/5⌋ Ritz
    /// vectors nearest the wanted ends and the residual vector.
    mutating func restart(_ r: Ritz) {
        let l = min(wanted + 3 * (m - wanted) / 5, m - 1)
        let extra = l - wanted
        var extraHigh = high == 0 ? 0 : (low == 0 ? extra : (extra + 1) / 2)
        if high > 0 && low > 0 {
            // Both ends: the spare vectors go to the ends in proportion to their unconverged pairs.
            let open = r.wanted.map { r.estimates[$0] > r.bound }
            let openHigh = open[0..<high].filter { $0 }.count
            let openLow = open[high...].filter { $0 }.count
            if openHigh + openLow > 0 {
                extraHigh = (extra * openHigh + (openHigh + openLow) / 2) / (openHigh + openLow)
            }
        }
        let extraLow = extra - extraHigh
        let kept = Array((j - high - extraHigh)..<j) + Array(0..<(low + extraLow))
        compress(r, keeping: kept, border: coupling, next: j)
        restarts += 1
    }

    /// The verification cycle: keeps only the converged wanted Ritz vectors, uncoupled (each
    /// relation then errs by its residual, within the tolerance), and continues from a random
    /// vector orthogonal to them. A copy of a repeated eigenvalue, or any eigenvalue the single
    /// start vector missed, lives in their complement and surfaces among the new Ritz values.
    mutating func lockWanted(_ r: Ritz) {
        compress(r, keeping: r.wanted, border: 0, next: nil)
        if !basis.randomOrthogonalVector(into: wanted, rng: &rng) { exhausted = true }
        let row = wanted
        orthogonality?.resetRow(row)
        coupling = 0
        restarts += 1
    }

    mutating func run(budget: Int, which: SpectrumEnd, verify: Bool) throws -> LanczosEigenpairs {
        // The explicit residuals of a verified run take one product per wanted pair.
        let iterationBudget = verify ? budget - wanted : budget
        // The wanted Ritz values when the basis was last shrunk to them (nil outside verification).
        var locked: [Double]? = nil
        // m = P: the basis will span R^P, where the Ritz pairs are exact; that costs fewer products
        // than a verification cycle, so the test waits for it.
        let full = m == p
        while true {
            try step()
            let atCycleEnd = j == m || exhausted
            let outOfBudget = products >= iterationBudget
            let everyStep = !(brokeDown || locked != nil || full)
            guard j > wanted, atCycleEnd || outOfBudget || everyStep else { continue }
            let r = try ritz(tolerance: tolerance)
            let values = r.wanted.map { r.eigen.values[$0] }
            // The verification cycle confirmed the locked pairs: none of its Ritz values entered.
            let confirmed = locked.map { old in zip(old, values).allSatisfy { abs($0 - $1) <= r.bound } } ?? false
            if exhausted || outOfBudget || (r.isConverged && (confirmed || !verify)) {
                return try finish(r, which: which, explicit: verify)
            }
            if r.isConverged {
                // Converged (first time, or with a new pair from the verification cycle): verify.
                lockWanted(r)
                locked = values
                if exhausted { return try finish(try ritz(tolerance: tolerance), which: which, explicit: verify) }
            } else if atCycleEnd {
                restart(r)
                locked = nil
            }
        }
    }

    /// The level below which the residuals of the Lanczos relation H V_j = V_j T_j + β v_j e_jᵀ
    /// mean nothing: the relation holds only to the rounding of the products and of the
    /// reorthogonalisation, about ε ‖H‖ per step, so 8 ε √j max|θ| is reported as the least
    /// residual of an unverified run (and a tolerance below it never converges).
    func relationRounding(scale: Double) -> Double {
        8 * Double.ulpOfOne * Double(max(j, 1)).squareRoot() * scale
    }

    /// Forms the wanted Ritz vectors and packs the result. `explicit`: one product of each for its
    /// Rayleigh quotient and residual; otherwise the Ritz values and the residuals of the Lanczos
    /// relation, |β_j y_{j−1,i}|, held to at least its rounding level `relationRounding`.
    mutating func finish(_ r: Ritz, which: SpectrumEnd, explicit: Bool) throws -> LanczosEigenpairs {
        let count = r.wanted.count
        let y = r.eigen.eigenvectorRows.elements
        var coefficients = [Double](repeating: 0, count: count * j)
        for (row, index) in r.wanted.enumerated() {
            for c in 0..<j { coefficients[row * j + c] = y[index * j + c] }
        }
        var vectors = Matrix(rows: count, columns: p)
        var values = [Double](repeating: 0, count: count)
        var residuals = [Double](repeating: 0, count: count)
        let hx = basis.vector(0)  // the basis is no longer needed
        try vectors.elements.withUnsafeMutableBufferPointer { out in
            let x0 = out.baseAddress!
            basis.combine(coefficients: coefficients, outputs: count, from: j, into: x0)
            // With partial reorthogonalisation the basis is orthogonal only to `orthogonalityLimit`,
            // and so are the Ritz vectors: they are made orthonormal (Cholesky QR, one Gram matrix
            // and one recombination; the vectors move by about that limit).
            let orthonormal = orthogonality != nil && orthonormaliseRows(x0, count: count, length: p)
            for i in 0..<count {
                let x = x0 + i * p
                if !orthonormal {
                    let norm = longNorm(x, count: p)
                    if norm > 0 { scaleInPlace(x, count: p, by: 1 / norm) }
                }
                guard explicit else {
                    values[i] = r.eigen.values[r.wanted[i]]
                    residuals[i] = max(r.estimates[r.wanted[i]], relationRounding(scale: r.scale))
                    continue
                }
                try hessian.apply(x, into: hx)
                products += 1
                let theta = longDot(x, hx, count: p)
                longAxpy(-theta, x, hx, count: p)
                values[i] = theta
                residuals[i] = longNorm(hx, count: p)
            }
        }
        let scale = max(r.scale, values.reduce(0) { max($0, abs($1)) })
        let bound = tolerance * scale
        // Rayleigh quotients can swap nearly equal neighbours: restore the order within each end.
        var order = Array(0..<count)
        order[0..<high].sort { values[$0] > values[$1] }
        order[high..<count].sort { values[$0] < values[$1] }
        // Rows permuted in place (new row i = old row order[i]), cycle by cycle through a spare
        // basis row, then signed so that the entry of largest magnitude is positive.
        let spare = basis.vector(m + 1)
        vectors.elements.withUnsafeMutableBufferPointer { out in
            let x0 = out.baseAddress!
            var placed = [Bool](repeating: false, count: count)
            for start in 0..<count where !placed[start] {
                spare.update(from: x0 + start * p, count: p)
                var to = start
                while true {
                    placed[to] = true
                    let from = order[to]
                    if from == start {
                        (x0 + to * p).update(from: spare, count: p)
                        break
                    }
                    (x0 + to * p).update(from: x0 + from * p, count: p)
                    to = from
                }
            }
            for i in 0..<count {
                let x = x0 + i * p
                var pivot = 0
                var largest = -1.0
                for c in 0..<p where abs(x[c]) > largest {
                    largest = abs(x[c])
                    pivot = c
                }
                if x[pivot] < 0 { scaleInPlace(x, count: p, by: -1) }
            }
        }
        let sortedResiduals = order.map { residuals[$0] }
        return LanczosEigenpairs(
            which: which, eigenvalues: order.map { values[$0] }, eigenvectorRows: vectors,
            residuals: sortedResiduals, converged: sortedResiduals.allSatisfy { $0 <= bound },
            tolerance: tolerance, residualBound: bound, productCount: products, restarts: restarts)
    }
}

