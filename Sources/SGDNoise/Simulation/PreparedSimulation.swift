/// A simulation spec validated and moved into its working basis: the eigenbasis of A for online
/// Gaussian data (where the input coordinates are independent, so a sample costs D normals), the
/// standard basis for a dataset.
struct PreparedSimulation: Sendable {
    enum Source: Sendable {
        /// √a_i, the teacher in the working basis, σ, and B^{1/2} in the working basis (or nil).
        case gaussian(sqrtA: [Double], teacher: [Double], labelNoise: Double, inputNoiseRoot: SymmetricOperator?)
        case dataset(x: Matrix, y: [Double], sampling: Sampling)
    }

    let dimension: Int
    let source: Source
    /// Qᵀ: working coordinates are Qᵀw (nil: the standard basis).
    let basis: Matrix?
    let learningRate: SymmetricOperator
    /// Γ (nil when there is none or it is zero).
    let weightDecay: SymmetricOperator?
    /// K with ∇L(w) = K(w − w*), in the working basis.
    let curvature: SymmetricOperator
    /// w* in original coordinates, and in the working basis.
    let wStar: [Double]
    let wStarWorking: [Double]
    let batchSize: Int
    let momentum: Double

    /// The data part of a prepared simulation (what depends on `SimulationData`).
    private struct PreparedData {
        let dimension: Int
        let source: Source
        let basis: Matrix?
        /// Γ as given (validated), in original coordinates.
        let weightDecay: Matrix?
        let wStar: [Double]
        let curvature: SymmetricOperator
    }

    init(_ spec: SimulationSpec) throws {
        try Self.validateRun(spec)
        let data: PreparedData
        switch spec.data {
        case .gaussian(let a, let teacher, let noiseVariance, let inputNoise):
            data = try Self.prepareGaussian(a: a, teacher: teacher, noiseVariance: noiseVariance, inputNoise: inputNoise,
                                            weightDecay: spec.weightDecay)
        case .dataset(let x, let y, let sampling, _):
            data = try Self.prepareDataset(x: x, y: y, sampling: sampling, batchSize: spec.batchSize,
                                           weightDecay: spec.weightDecay)
        }
        dimension = data.dimension
        source = data.source
        basis = data.basis
        curvature = data.curvature
        wStar = data.wStar
        batchSize = spec.batchSize
        momentum = spec.momentum
        weightDecay = data.weightDecay.map { SymmetricOperator.compact($0, rotatedBy: data.basis) }.flatMap { $0.isZero ? nil : $0 }
        learningRate = try Self.workingLearningRate(spec.learningRate, dimension: data.dimension, basis: data.basis)
        wStarWorking = data.basis?.apply(data.wStar) ?? data.wStar
        try Self.requireMemory(dimension: data.dimension, chains: spec.chains)
    }

    /// Checks the optimiser and the run's sizes: batch size, momentum, steps, burn-in, chains,
    /// threads, and that chains × (burn_in + steps) fits a 64-bit step count.
    private static func validateRun(_ spec: SimulationSpec) throws {
        try Validation.batchSize(spec.batchSize)
        try Validation.momentum(spec.momentum)
        guard spec.steps >= 1 else { throw SGDNoiseError.invalidArgument("steps must be at least 1, got \(spec.steps)") }
        guard spec.burnIn >= 0 else { throw SGDNoiseError.invalidArgument("burn_in must be non-negative, got \(spec.burnIn)") }
        guard spec.chains >= 1 else { throw SGDNoiseError.invalidArgument("chains must be at least 1, got \(spec.chains)") }
        if let t = spec.threads, t < 1 { throw SGDNoiseError.invalidArgument("threads must be at least 1, got \(t)") }
        // Step counters are Ints: chains × (burn_in + steps) must not overflow (it would trap).
        let (perChain, overflowSum) = spec.burnIn.addingReportingOverflow(spec.steps)
        let (_, overflowProduct) = perChain.multipliedReportingOverflow(by: spec.chains)
        guard !overflowSum, !overflowProduct else {
            throw SGDNoiseError.invalidArgument(
                "chains × (burn_in + steps) = \(spec.chains) × (\(spec.burnIn) + \(spec.steps)) overflows a 64-bit step count")
        }
    }

    /// Online Gaussian data in A's eigenbasis: √a, the rotated teacher and B^{1/2}, and
    /// w* = K⁻¹Au with K = A + B + Γ.
    private static func prepareGaussian(
        a: Matrix, teacher: [Double]?, noiseVariance: Double, inputNoise: Matrix?, weightDecay: Matrix?
    ) throws -> PreparedData {
        try a.requireSymmetric("A")
        let d = a.rows
        try Validation.nonNegative(noiseVariance, name: "noiseVariance")
        if let inputNoise { try inputNoise.requireSymmetric("input_noise", size: d) }
        let u = teacher ?? [Double](repeating: 0, count: d)
        guard u.count == d, u.allSatisfy({ $0.isFinite }) else {
            throw SGDNoiseError.invalidArgument("u must have \(d) finite entries, got \(u.count)")
        }
        let gamma = try validatedWeightDecay(weightDecay, d)
        let eigen = try SymmetricEigendecomposition(checked: a, name: "A")
        try requireCovarianceEigenvalues(eigen.values, "A")
        let qt = eigen.eigenvectorRows
        var root: SymmetricOperator? = nil
        if let b = inputNoise {
            let be = try SymmetricEigendecomposition(checked: b, name: "input_noise")
            try requireCovarianceEigenvalues(be.values, "input_noise")
            root = SymmetricOperator.compact(be.reconstruct { max($0, 0).squareRoot() }, rotatedBy: qt)
        }
        var k = a
        if let b = inputNoise { k = k + b }
        if let gamma { k = k + gamma }
        let wStar = try k.solvePositiveDefinite(a.apply(u), name: "the curvature A + B + weight_decay")
        return PreparedData(
            dimension: d,
            source: .gaussian(sqrtA: eigen.values.map { max($0, 0).squareRoot() }, teacher: qt.apply(u),
                              labelNoise: noiseVariance.squareRoot(), inputNoiseRoot: root),
            basis: qt, weightDecay: gamma, wStar: wStar, curvature: SymmetricOperator.compact(k, rotatedBy: qt))
    }

    /// A finite dataset in the standard basis: w* = K⁻¹Xᵀy/N with K = XᵀX/N + Γ.
    private static func prepareDataset(
        x: Matrix, y: [Double], sampling: Sampling, batchSize: Int, weightDecay: Matrix?
    ) throws -> PreparedData {
        try x.requireFinite("X")
        guard x.rows >= 1, x.columns >= 1 else { throw SGDNoiseError.invalidArgument("X must be non-empty, got \(x.rows) × \(x.columns)") }
        let d = x.columns
        guard y.count == x.rows, y.allSatisfy({ $0.isFinite }) else {
            throw SGDNoiseError.invalidArgument("y must have \(x.rows) finite entries, got \(y.count)")
        }
        try Validation.batchSize(batchSize, sampleCount: x.rows, sampling: sampling)
        let gamma = try validatedWeightDecay(weightDecay, d)
        var k = (1 / Double(x.rows)) * x.weightedGram(rowWeights: [Double](repeating: 1, count: x.rows))
        if let gamma { k = k + gamma }
        let xty = x.transposed.apply(y).map { $0 / Double(x.rows) }
        let wStar = try k.solvePositiveDefinite(xty, name: "the curvature XᵀX/N + weight_decay")
        return PreparedData(
            dimension: d, source: .dataset(x: x, y: y, sampling: sampling), basis: nil, weightDecay: gamma,
            wStar: wStar, curvature: SymmetricOperator.compact(k, rotatedBy: nil))
    }

    /// Λ in the working basis (a scalar λ is the constant diagonal λ).
    private static func workingLearningRate(_ lr: LearningRate, dimension d: Int, basis: Matrix?) throws -> SymmetricOperator {
        if case .scalar(let l) = lr {
            guard l.isFinite, l > 0 else { throw SGDNoiseError.invalidArgument("lr must be a finite positive number, got \(l)") }
            return .diagonal([Double](repeating: l, count: d))
        }
        _ = try LearningRateTransform(lr, dimension: d)  // validates SPD
        return SymmetricOperator.compact(lr.matrix(dimension: d), rotatedBy: basis)
    }

    /// Throws `outOfMemory` when the accumulators would not fit: those of the running chains plus
    /// the record every chain keeps until the end (its sums, second moments and batch estimates:
    /// about 3D² + D doubles).
    private static func requireMemory(dimension d: Int, chains: Int) throws {
        let working = Double(d) * Double(d) * 8 * Double(3 + min(chains, 64))
        let records = Double(chains) * ((3 * Double(d) * Double(d) + Double(d)) * 8 + 512)
        let bytes = working + records
        guard bytes < 8e9 else {
            throw SGDNoiseError.outOfMemory("simulation: D = \(d) with \(chains) chains needs about \(bytes / 1e9) GB of accumulators")
        }
    }

    private static func validatedWeightDecay(_ g: Matrix?, _ d: Int) throws -> Matrix? {
        guard let g else { return nil }
        try g.requireSymmetric("weight_decay", size: d)
        return g
    }
}
