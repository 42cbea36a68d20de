/// A quadratic model of docs/theory.md §4 written mode by mode in the eigenbasis of its Hessian,
/// as the exact moment recursion of §9 needs it.
///
/// With e = w − w* in the eigenbasis (coordinates Qᵀe), the per-sample gradient noise at e is
///
///     C(e) = β₁ diag(a) v vᵀ diag(a) + β₂ (vᵀ diag(a) v) diag(a) + C̄₀,   v = e + δ,
///
/// and a step with batch size S has noise C(e)/S. Label noise: h = a = eig A, δ = 0, C̄₀ = σ² diag(h).
/// Input noise: h = a = eig(A + B), C̄₀ = σ²_eff diag(h). L2: h = eig(A + Γ), a = eig A (in the same
/// basis), δ = Qᵀ(w* − u), C̄₀ = 0. High-dimensional: β₁ = −1, C̄₀ = max(0, σ²(1 − 1/α)) diag(h).
/// A given (H, C): β₁ = β₂ = 0, C̄₀ = S_ref QᵀCQ.
///
/// The losses are affine in the second moment M = E[eeᵀ] and the mean ē:
/// L_train = ½ Σ h_i M_ii + trainConstant, L_test = ½ Tr[T M] + qᵀē + testConstant.
struct TransientSystem {
    /// Qᵀ (nil: the operators were spectra, already in their eigenbasis).
    let basis: Matrix?
    /// Hessian eigenvalues h_i.
    let h: [Double]
    /// Coupling eigenvalues a_i (M of §4 in the same basis).
    let a: [Double]
    /// δ, the offset of the noise's argument (nil: zero).
    let delta: [Double]?
    /// C̄₀ in the eigenbasis: its diagonal, or the whole matrix (a given dense C).
    let baseNoise: SymmetricOperator
    let beta1: Double
    let beta2: Double
    /// The stationary mean w* (original coordinates; zeros where w is measured from the minimum).
    let wStar: [Double]
    var trainConstant: Double
    /// T of the test loss in the eigenbasis (diagonal, or dense when it does not commute with H).
    let testWeights: SymmetricOperator
    /// q of the test loss (nil: zero).
    let testLinear: [Double]?
    var testConstant: Double
    /// The model, for its stationary prediction and critical learning rate (nil: a given (H, C)).
    let model: Model?
    /// For a given (H, C): H, C and the batch size C belongs to.
    let quadratic: (hessian: Matrix, noise: Matrix, referenceBatchSize: Int)?
    /// For a finite dataset: the rows, residuals and sampling that make its noise (nil otherwise).
    var dataset: DatasetTransient?
    /// For a general minimum (§5): H₀ (round-off eigenvalues zeroed), L₀(w*), Γ, w* and the kind.
    var minimum: (hessian: SymmetricOperator, loss: Double, weightDecay: SymmetricOperator?, wStar: [Double]?,
                  kind: MinimumKind)? = nil

    var dimension: Int { h.count }
    var isDense: Bool { basis != nil }

    /// The eigenbasis of `hessian`, and the coupling's eigenvalues in it (which must commute).
    private static func eigenbasis(
        hessian: SymmetricOperator, coupling: SymmetricOperator?, name: String
    ) throws -> (basis: Matrix?, h: [Double], a: [Double]) {
        if case .diagonal(let h) = hessian {
            guard let coupling else { return (nil, h, h) }
            guard case .diagonal(let a) = coupling else {
                throw SGDNoiseError.invalidArgument("\(name): give both operators as spectra or both as matrices")
            }
            return (nil, h, a)
        }
        let model = QuadraticModel(
            hessian: .dense(hessian.matrix), coupling: coupling.map { .dense($0.matrix) },
            noise: MultiplicativeNoise(beta1: 1, beta2: 1, batchSize: 1), base: .scaledCoupling(0),
            learningRate: .scalar(1), momentum: 0)
        let e = try model.denseEigenbasis()
        guard e.nonCommutingCoupling == nil else {
            throw SGDNoiseError.invalidArgument(
                "\(name): the learning curve needs A to commute with the hessian (A + weight_decay); these do not")
        }
        return (e.eigen.eigenvectorRows, e.eigen.values, e.mPrime)
    }

    /// Checks A (a covariance), the second operator's size and the teacher u.
    private static func validateTeacher(a: SymmetricOperator, other: SymmetricOperator, otherName: String, u: [Double]) throws {
        try a.validate("A")
        try other.validate(otherName, size: a.dimension)
        try a.requirePositiveSemidefinite("A")
        guard u.count == a.dimension, u.allSatisfy({ $0.isFinite }) else {
            throw SGDNoiseError.invalidArgument("u must have \(a.dimension) finite entries, got \(u.count)")
        }
    }

    private static func rotate(_ v: [Double], _ basis: Matrix?) -> [Double] { basis?.apply(v) ?? v }

    /// T = QᵀXQ in the eigenbasis, compacted to a diagonal when it is one.
    private static func rotated(_ x: SymmetricOperator, _ basis: Matrix?) -> SymmetricOperator {
        guard let basis else { return x }
        return SymmetricOperator.compact(x.matrix, rotatedBy: basis)
    }

    /// The system of one of the models of §4 (damped Newton and natural gradient, whose learning
    /// rate is a matrix, are refused).
    init(model: Model) throws {
        self.model = model
        quadratic = nil
        dataset = nil
        switch model {
        case .labelNoise(let a, let noiseVariance):
            try a.validate("A")
            try a.requirePositiveSemidefinite("A")
            try Validation.nonNegative(noiseVariance, name: "noiseVariance")
            let e = try Self.eigenbasis(hessian: a, coupling: nil, name: "A")
            (basis, h, self.a, delta, beta1, beta2) = (e.basis, e.h, e.a, nil, 1, 1)
            baseNoise = .diagonal(e.h.map { noiseVariance * $0 })
            wStar = [Double](repeating: 0, count: e.h.count)
            trainConstant = 0.5 * noiseVariance
            testWeights = .diagonal(e.h)
            (testLinear, testConstant) = (nil, 0)
        case .inputNoise(let a, let b, let u, let noiseVariance):
            try Self.validateTeacher(a: a, other: b, otherName: "B", u: u)
            try b.requirePositiveSemidefinite("B")
            try Validation.nonNegative(noiseVariance, name: "noiseVariance")
            let k = a + b
            let w = try k.solve(a.apply(u), name: "A + B")
            let effective = max(0, noiseVariance + a.bilinear(u, u) - a.bilinear(u, w))  // σ²_eff of App. E.3
            let e = try Self.eigenbasis(hessian: k, coupling: nil, name: "A + B")
            (basis, h, self.a, delta, beta1, beta2) = (e.basis, e.h, e.a, nil, 1, 1)
            baseNoise = .diagonal(e.h.map { effective * $0 })
            wStar = w
            trainConstant = 0.5 * effective
            testWeights = Self.rotated(a, e.basis)
            let d = Self.rotate(zip(w, u).map { $0 - $1 }, e.basis)
            let q = testWeights.apply(d)
            testLinear = q
            testConstant = 0.5 * zip(q, d).reduce(0) { $0 + $1.0 * $1.1 }
        case .l2Regularized(let a, let u, let weightDecay):
            try Self.validateTeacher(a: a, other: weightDecay, otherName: "weight_decay", u: u)
            let w = try (a + weightDecay).solve(a.apply(u), name: "A + weight_decay")
            let e = try Self.eigenbasis(hessian: a + weightDecay, coupling: a, name: "A")
            (basis, h, self.a, beta1, beta2) = (e.basis, e.h, e.a, 1, 1)
            let d = Self.rotate(zip(w, u).map { $0 - $1 }, e.basis)
            delta = d
            baseNoise = .diagonal([Double](repeating: 0, count: e.h.count))
            wStar = w
            testWeights = .diagonal(e.a)
            testLinear = zip(e.a, d).map { $0 * $1 }
            testConstant = 0.5 * zip(e.a, d).reduce(0) { $0 + $1.0 * $1.1 * $1.1 }
            trainConstant = testConstant + 0.5 * weightDecay.bilinear(w, w)  // L(w*)
        case .highDimensional(let aHat, let alpha, let noiseVariance):
            try aHat.validate("A_hat")
            try aHat.requirePositiveSemidefinite("A_hat")
            guard alpha.isFinite, alpha > 0 else {
                throw SGDNoiseError.invalidArgument("alpha must be a finite positive number, got \(alpha)")
            }
            try Validation.nonNegative(noiseVariance, name: "noiseVariance")
            let floor = max(0, noiseVariance * (1 - 1 / alpha))
            let e = try Self.eigenbasis(hessian: aHat, coupling: nil, name: "A_hat")
            (basis, h, self.a, delta, beta1, beta2) = (e.basis, e.h, e.a, nil, -1, 1)
            baseNoise = .diagonal(e.h.map { floor * $0 })
            wStar = [Double](repeating: 0, count: e.h.count)
            trainConstant = 0.5 * floor
            testWeights = .diagonal(e.h)
            (testLinear, testConstant) = (nil, 0)
        case .dampedNewton, .naturalGradient:
            throw SGDNoiseError.invalidArgument(
                "the learning curve of the \(model.kind.rawValue) model (a matrix learning rate) is not implemented")
        }
    }

    /// The system of a given quadratic: Hessian H, constant noise C measured at batch size S_ref
    /// (the noise of a step with batch size S_t is (S_ref/S_t) C). Losses are ½Tr[HM] (the excess
    /// over the minimum) for both the train and the test loss; w is measured from the minimum.
    init(hessian: SymmetricOperator, noise: SymmetricOperator, referenceBatchSize: Int) throws {
        try hessian.validate("hessian")
        let n = hessian.dimension
        try noise.validate("noise", size: n)
        try Validation.batchSize(referenceBatchSize, name: "referenceBatchSize")
        model = nil
        quadratic = (hessian.matrix, noise.matrix, referenceBatchSize)
        dataset = nil
        let e = try Self.eigenbasis(hessian: hessian, coupling: nil, name: "hessian")
        (basis, h, a, delta, beta1, beta2) = (e.basis, e.h, e.a, nil, 0, 0)
        let s = Double(referenceBatchSize)
        var rotatedNoise = hessian.isDiagonal ? noise : Self.rotated(noise, e.basis)
        if hessian.isDiagonal, case .dense = noise {
            throw SGDNoiseError.invalidArgument("noise: give a diagonal noise with a spectrum hessian, or both as matrices")
        }
        rotatedNoise = rotatedNoise.spectrumEntries.map { .diagonal($0.map { s * $0 }) } ?? .dense(s * rotatedNoise.matrix)
        baseNoise = rotatedNoise
        wStar = [Double](repeating: 0, count: n)
        trainConstant = 0
        testWeights = .diagonal(e.h)
        (testLinear, testConstant) = (nil, 0)
    }

    /// The system of SGD near a general minimum (docs/theory.md §5), as `minimumFluctuation` models
    /// it: at a regularised or non-interpolating minimum a given (H, C) with H = H₀ + Γ and the
    /// constant noise C = `minimumNoise`(batch size 1)/S_t; at an interpolating one (L₀ = 0, no Γ) the
    /// multiplicative noise (1/S_t)(Tr[H₀M]H₀ − H₀MH₀), the high-dimensional engine with Â = H₀, α = 1,
    /// σ² = 0. w is measured from w*; both losses are L_Γ(w*) + ½Tr[HM_t].
    init(minimumHessian rawHessian: SymmetricOperator, loss: Double, weightDecay: SymmetricOperator?, wStar: [Double]?,
         flatTolerance: Double?) throws {
        try rawHessian.validate("hessian")
        try Validation.nonNegative(loss, name: "loss")
        let tolerance = try Validation.flatTolerance(flatTolerance, dimension: rawHessian.dimension)
        let (h0, _) = try rawHessian.zeroingSmallEigenvalues(relativeTolerance: tolerance)
        let gamma = weightDecay.flatMap { $0.isZero ? nil : $0 }
        if let gamma { try gamma.validate("weight_decay", size: h0.dimension) }
        if gamma == nil && loss == 0 {
            self = try TransientSystem(model: .highDimensional(aHat: h0, alpha: 1, noiseVariance: 0))
            minimum = (h0, loss, nil, wStar, .interpolating)
            return
        }
        let (kind, c1) = try minimumNoise(hessian: h0, loss: loss, batchSize: 1, weightDecay: gamma, wStar: wStar,
                                          flatTolerance: tolerance)
        var h = gamma.map { h0 + $0 } ?? h0
        if case .dense = c1, case .diagonal = h { h = .dense(h.matrix) }
        self = try TransientSystem(hessian: h, noise: c1, referenceBatchSize: 1)
        var constant = loss
        if let gamma, let wStar { constant += 0.5 * gamma.bilinear(wStar, wStar) }
        (trainConstant, testConstant) = (constant, constant)
        minimum = (h0, loss, gamma, wStar, kind)
    }

    /// e₀ = Qᵀ(w₀ − w*) for a start w₀ (nil: w₀ = 0).
    func initialError(_ w0: [Double]?) throws -> [Double] {
        let d = dimension
        let w = w0 ?? [Double](repeating: 0, count: d)
        guard w.count == d, w.allSatisfy(\.isFinite) else {
            throw SGDNoiseError.invalidArgument("w0 must have \(d) finite entries, got \(w.count)")
        }
        return Self.rotate(zip(w, wStar).map { $0 - $1 }, basis)
    }

    /// Σ₀ for the recursion: QᵀΣ₀Q row-major (dense systems), or the diagonal of Σ₀ (spectra,
    /// whose recursion of the diagonal closes by itself); nil for a point start.
    /// - Throws: `invalidArgument` unless Σ₀ is D × D (or D entries), finite, symmetric and PSD.
    func startSecondMoment(_ sigma0: SymmetricOperator?) throws -> [Double]? {
        guard let sigma0 else { return nil }
        try Validation.covariance(sigma0, size: dimension, name: "startCovariance")
        guard let basis else { return sigma0.diagonalEntries }
        return Matrix.product(Matrix.product(basis, sigma0.matrix), basis, transposeB: true).symmetrized.elements
    }

    /// The stationary (train, test) losses for constant hyperparameters (nil: unstable).
    func stationaryLosses(learningRate: Double, batchSize: Int, momentum: Double) -> (train: Double, test: Double)? {
        guard learningRate > 0 else { return nil }
        if let minimum {
            guard let f = try? minimumFluctuation(
                hessian: minimum.hessian, loss: minimum.loss, learningRate: .scalar(learningRate), batchSize: batchSize,
                weightDecay: minimum.weightDecay, wStar: minimum.wStar, momentum: momentum)
            else { return nil }
            let h = minimum.weightDecay.map { minimum.hessian + $0 } ?? minimum.hessian
            let loss = trainConstant + 0.5 * h.traceProduct(f.sigma)
            return (loss, loss)
        }
        if let dataset {
            let o = dataset.original
            guard let p = try? finiteDataset(
                x: o.x, y: o.y, learningRate: .scalar(learningRate), batchSize: batchSize, sampling: dataset.sampling,
                weightDecay: o.weightDecay, momentum: momentum, u: o.u, populationCovariance: o.populationCovariance)
            else { return nil }
            return (p.prediction.trainLoss, p.prediction.testLoss)
        }
        if let model {
            guard let p = try? model.predict(learningRate: .scalar(learningRate), batchSize: batchSize, momentum: momentum)
            else { return nil }
            return (p.trainLoss, p.testLoss)
        }
        guard let (hessian, noise, s0) = quadratic,
              let f = try? stationaryCovariance(
                  hessian: hessian, noise: (Double(s0) / Double(batchSize)) * noise, learningRate: .scalar(learningRate),
                  momentum: momentum)
        else { return nil }
        let loss = 0.5 * SymmetricOperator.dense(hessian).traceProduct(.dense(f.sigma))
        return (loss, loss)
    }

    /// λ*(S, μ): the model's critical learning rate, or 2(1+μ)/h_max for a given (H, C).
    func criticalLearningRate(batchSize: Int, momentum: Double) -> Double? {
        if let minimum, minimum.kind != .regularized {
            // minimumFluctuation's edge: that of the multiplicative noise (Tr[H₀Σ]H₀ − H₀ΣH₀)/S.
            return try? Model.highDimensional(aHat: minimum.hessian, alpha: 1, noiseVariance: 0)
                .criticalLearningRate(batchSize: batchSize, momentum: momentum)
        }
        if let model { return try? model.criticalLearningRate(batchSize: batchSize, momentum: momentum) }
        if let dataset {
            let o = dataset.original
            return try? criticalLearningRateDataset(
                x: o.x, batchSize: batchSize, sampling: dataset.sampling, weightDecay: o.weightDecay, momentum: momentum)
        }
        let top = h.max() ?? 0
        return top > 0 ? 2 * (1 + momentum) / top : .infinity
    }
}
