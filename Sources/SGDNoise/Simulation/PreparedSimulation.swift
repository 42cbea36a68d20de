/// A simulation spec validated and moved into its working basis: the eigenbasis of A for online
/// Gaussian data (where the input coordinates are independent, so a sample costs D normals), the
/// standard basis for a dataset.
struct PreparedSimulation: Sendable {
    enum Source: Sendable {
        /// √a_i, the teacher in the working basis, σ, and B^{1/2} in the working basis (or nil).
        case gaussian(sqrtA: [Double], teacher: [Double], labelNoise: Double, inputNoiseRoot: WorkingOperator?)
        case dataset(x: Matrix, y: [Double], sampling: BatchSampling)
    }

    let dimension: Int
    let source: Source
    /// Qᵀ: working coordinates are Qᵀw (nil: the standard basis).
    let basis: Matrix?
    let learningRate: WorkingOperator
    let weightDecay: WorkingOperator
    /// K with ∇L(w) = K(w − w*), in the working basis.
    let curvature: WorkingOperator
    /// w* in original coordinates, and in the working basis.
    let wStar: [Double]
    let wStarWorking: [Double]
    let batchSize: Int
    let momentum: Double

    init(_ spec: SimulationSpec) throws {
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
        batchSize = spec.batchSize
        momentum = spec.momentum
        let d: Int
        let gamma: Matrix?
        switch spec.data {
        case .gaussian(let a, let teacher, let noiseVariance, let inputNoise):
            try a.requireSymmetric("A")
            d = a.rows
            try Validation.nonNegative(noiseVariance, name: "noiseVariance")
            if let inputNoise { try inputNoise.requireSymmetric("input_noise", size: d) }
            let u = teacher ?? [Double](repeating: 0, count: d)
            guard u.count == d, u.allSatisfy({ $0.isFinite }) else {
                throw SGDNoiseError.invalidArgument("u must have \(d) finite entries, got \(u.count)")
            }
            gamma = try Self.weightDecay(spec.weightDecay, d)
            let eigen = try SymmetricEigendecomposition(checked: a, name: "A")
            try requireCovarianceEigenvalues(eigen.values, "A")
            let qt = eigen.eigenvectorRows
            basis = qt
            var root: WorkingOperator? = nil
            if let b = inputNoise {
                let be = try SymmetricEigendecomposition(checked: b, name: "input_noise")
                try requireCovarianceEigenvalues(be.values, "input_noise")
                root = WorkingOperator.rotated(be.reconstruct { max($0, 0).squareRoot() }, basis: qt)
            }
            source = .gaussian(
                sqrtA: eigen.values.map { max($0, 0).squareRoot() }, teacher: qt.apply(u),
                labelNoise: noiseVariance.squareRoot(), inputNoiseRoot: root)
            var k = a
            if let b = inputNoise { k = k + b }
            if let gamma { k = k + gamma }
            wStar = try k.solvePositiveDefinite(a.apply(u), name: "the curvature A + B + weight_decay")
            curvature = WorkingOperator.rotated(k, basis: qt)
        case .dataset(let x, let y, let sampling, _):
            try x.requireFinite("X")
            guard x.rows >= 1, x.columns >= 1 else { throw SGDNoiseError.invalidArgument("X must be non-empty, got \(x.rows) × \(x.columns)") }
            d = x.columns
            guard y.count == x.rows, y.allSatisfy({ $0.isFinite }) else {
                throw SGDNoiseError.invalidArgument("y must have \(x.rows) finite entries, got \(y.count)")
            }
            if sampling == .withoutReplacement, spec.batchSize > x.rows {
                throw SGDNoiseError.invalidArgument("batch_size \(spec.batchSize) exceeds the \(x.rows) samples; sampling without replacement needs batch_size ≤ N")
            }
            gamma = try Self.weightDecay(spec.weightDecay, d)
            basis = nil
            source = .dataset(x: x, y: y, sampling: sampling)
            var k = (1 / Double(x.rows)) * x.weightedGram(rowWeights: [Double](repeating: 1, count: x.rows))
            if let gamma { k = k + gamma }
            let xty = x.transposed.apply(y).map { $0 / Double(x.rows) }
            wStar = try k.solvePositiveDefinite(xty, name: "the curvature XᵀX/N + weight_decay")
            curvature = WorkingOperator.rotated(k, basis: nil)
        }
        dimension = d
        let workingBasis = basis
        weightDecay = gamma.map { WorkingOperator.rotated($0, basis: workingBasis) } ?? .zero
        switch spec.learningRate {
        case .scalar(let l):
            guard l.isFinite, l > 0 else { throw SGDNoiseError.invalidArgument("lr must be a finite positive number, got \(l)") }
            learningRate = .scalar(l)
        default:
            _ = try LearningRateTransform(spec.learningRate, dimension: d)  // validates SPD
            learningRate = WorkingOperator.rotated(spec.learningRate.matrix(dimension: d), basis: workingBasis)
        }
        wStarWorking = workingBasis?.apply(wStar) ?? wStar
        // Working accumulators of the running chains, plus the record every chain keeps until the
        // end (its sums, second moments and batch estimates: about 3D² + D doubles).
        let working = Double(d) * Double(d) * 8 * Double(3 + min(spec.chains, 64))
        let records = Double(spec.chains) * ((3 * Double(d) * Double(d) + Double(d)) * 8 + 512)
        let bytes = working + records
        guard bytes < 8e9 else {
            throw SGDNoiseError.outOfMemory("simulation: D = \(d) with \(spec.chains) chains needs about \(bytes / 1e9) GB of accumulators")
        }
    }

    private static func weightDecay(_ g: Matrix?, _ d: Int) throws -> Matrix? {
        guard let g else { return nil }
        try g.requireSymmetric("weight_decay", size: d)
        return g
    }
}
