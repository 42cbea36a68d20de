import SGDNoise
import _SGDNoiseShims

// C section 12 -- Learning curves under schedules (docs/theory.md section 9).
// Shared conventions: a schedule is three arrays of count >= 1 entries, one per update t = 1..count
// (lrs[k], batch_sizes[k], momenta[k] are lr, S and mu of update k + 1: each lr finite and >= 0,
// S >= 1, mu in [0, 1)); at_steps lists points >= 1 recorded steps, strictly increasing in
// 0..count (0 is the start w0); w0 holds d doubles (NULL: w0 = 0). Per recorded step the outputs
// receive (each may be NULL): out_train_loss, out_test_loss and out_trace (points doubles: E[L(w_t)],
// E[(w_t - u)^T A (w_t - u)]/2 and Tr Sigma_t), out_mean (points rows of d: E[w_t]), out_sigma
// (points rows of d: the diagonal of Sigma_t = cov(w_t)); out_mode_times (d doubles) receives
// -1/ln rho of each mode's second-moment map for the last hyperparameters (+inf when it does not
// relax), in the order of the spectrum (ascending eigenvalues of the Hessian for a dense model).
// An unstable schedule is not an error (see sgdnoise_curve_summary.unstable_from); second moments
// that overflow are NUMERICAL_FAILURE.

/// The exact learning curve of SGD on a linear-regression model (an sgdnoise_model: label noise
/// with A and noise_var; input noise with A, B, u and noise_var; L2 with A, u and weight_decay;
/// high-dimensional with A = A_hat, alpha and noise_var; the arguments a model does not read may
/// be NULL, but noise_var and alpha must be finite) trained with the schedule of count updates,
/// recorded at the points steps of at_steps (docs/theory.md section 9). w (w0, out_mean) is
/// measured from the minimum for label noise and the high-dimensional model, in the original
/// coordinates otherwise. tolerance > 0 is the relative band of out_summary->settled_at.
@c public func sgdnoise_learning_curve(
    _ model: CInt, _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ b: UnsafePointer<Double>?,
    _ u: UnsafePointer<Double>?, _ weight_decay: UnsafePointer<Double>?, _ noise_var: Double, _ alpha: Double,
    _ count: Int, _ lrs: UnsafePointer<Double>?, _ batch_sizes: UnsafePointer<Int>?, _ momenta: UnsafePointer<Double>?,
    _ points: Int, _ at_steps: UnsafePointer<Int>?, _ w0: UnsafePointer<Double>?, _ tolerance: Double,
    _ out_train_loss: UnsafeMutablePointer<Double>?, _ out_test_loss: UnsafeMutablePointer<Double>?,
    _ out_trace: UnsafeMutablePointer<Double>?, _ out_mean: UnsafeMutablePointer<Double>?,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_mode_times: UnsafeMutablePointer<Double>?,
    _ out_summary: UnsafeMutablePointer<sgdnoise_curve_summary>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try modelCurve(
            model, layout, d, a, b, u, weight_decay, noise_var, alpha, count, lrs, batch_sizes, momenta, points, at_steps,
            w0, nil, tolerance, CurveOutputs(trainLoss: out_train_loss, testLoss: out_test_loss, trace: out_trace,
                                             mean: out_mean, sigma: out_sigma, denseSigma: false,
                                             modeTimes: out_mode_times, summary: out_summary))
    }
}

/// sgdnoise_learning_curve from a random start: w0 (NULL: 0) is the start's mean and sigma0 its
/// covariance (symmetric positive semi-definite, in the layout of A; NULL: a point start), so the
/// second moment starts at sigma0 + e0 e0^T. out_sigma receives the whole Sigma_t: points blocks of
/// d*d doubles in the dense layout, points rows of d diagonals in the diagonal layout (where only
/// the diagonal of sigma0 enters). The other arguments and outputs as in sgdnoise_learning_curve.
@c public func sgdnoise_learning_curve_from_distribution(
    _ model: CInt, _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ b: UnsafePointer<Double>?,
    _ u: UnsafePointer<Double>?, _ weight_decay: UnsafePointer<Double>?, _ noise_var: Double, _ alpha: Double,
    _ count: Int, _ lrs: UnsafePointer<Double>?, _ batch_sizes: UnsafePointer<Int>?, _ momenta: UnsafePointer<Double>?,
    _ points: Int, _ at_steps: UnsafePointer<Int>?, _ w0: UnsafePointer<Double>?, _ sigma0: UnsafePointer<Double>?,
    _ tolerance: Double, _ out_train_loss: UnsafeMutablePointer<Double>?, _ out_test_loss: UnsafeMutablePointer<Double>?,
    _ out_trace: UnsafeMutablePointer<Double>?, _ out_mean: UnsafeMutablePointer<Double>?,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_mode_times: UnsafeMutablePointer<Double>?,
    _ out_summary: UnsafeMutablePointer<sgdnoise_curve_summary>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try modelCurve(
            model, layout, d, a, b, u, weight_decay, noise_var, alpha, count, lrs, batch_sizes, momenta, points, at_steps,
            w0, sigma0, tolerance, CurveOutputs(trainLoss: out_train_loss, testLoss: out_test_loss, trace: out_trace,
                                                mean: out_mean, sigma: out_sigma, denseSigma: true,
                                                modeTimes: out_mode_times, summary: out_summary))
    }
}

/// The body of sgdnoise_learning_curve and sgdnoise_learning_curve_from_distribution.
private func modelCurve(
    _ model: CInt, _ layout: CInt, _ d: Int, _ a: UnsafePointer<Double>?, _ b: UnsafePointer<Double>?,
    _ u: UnsafePointer<Double>?, _ weight_decay: UnsafePointer<Double>?, _ noise_var: Double, _ alpha: Double,
    _ count: Int, _ lrs: UnsafePointer<Double>?, _ batch_sizes: UnsafePointer<Int>?, _ momenta: UnsafePointer<Double>?,
    _ points: Int, _ at_steps: UnsafePointer<Int>?, _ w0: UnsafePointer<Double>?, _ sigma0: UnsafePointer<Double>?,
    _ tolerance: Double, _ outputs: @autoclosure () throws(SGDNoiseError) -> CurveOutputs
) throws(SGDNoiseError) {
    try Arguments.finite(noise_var, "noise_var")  // read by some models only, but always a number
    try Arguments.finite(alpha, "alpha")
    guard let kind = sgdnoise_model(rawValue: model) else {
        throw .invalidArgument("model must be an sgdnoise_model (0, 1, 2 or 3), got \(model)")
    }
    let layout = try Arguments.layout(layout)
    let aOp = try Arguments.symmetric(a, layout, d, "A")
    let m: Model
    switch kind {
    case .labelNoise:
        m = .labelNoise(a: aOp, noiseVariance: try Validation.nonNegative(noise_var, name: "noise_var"))
    case .inputNoise:
        let bOp = try Arguments.companion(b, layout, d, "B")
        m = .inputNoise(a: aOp, b: bOp, u: try Arguments.vector(u, d, "u"),
                        noiseVariance: try Validation.nonNegative(noise_var, name: "noise_var"))
    case .l2Regularized:
        let gOp = try Arguments.companion(weight_decay, layout, d, "weight_decay")
        m = .l2Regularized(a: aOp, u: try Arguments.vector(u, d, "u"), weightDecay: gOp)
    case .highDimensional:
        m = .highDimensional(aHat: aOp, alpha: alpha, noiseVariance: try Validation.nonNegative(noise_var, name: "noise_var"))
    }
    let request = try CurveRequest(d: d, count: count, lrs: lrs, batchSizes: batch_sizes, momenta: momenta,
                                   points: points, atSteps: at_steps, w0: w0)
    let start = try Arguments.startCovariance(sigma0.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in
        try Arguments.companion(p, layout, d, "sigma0") }, d)
    try Arguments.finite(tolerance, "tolerance")
    let outputs = try outputs()
    let curve = try core {
        try learningCurve(model: m, schedule: request.schedule, record: request.record, w0: request.w0,
                          startCovariance: start, tolerance: tolerance, includeSigma: outputs.wantsSigma,
                          includeMean: outputs.wantsMean)
    }
    try outputs.write(curve)
}

/// The exact learning curve of SGD on the quadratic loss e^T H e/2 with a constant noise
/// covariance (docs/theory.md sections 3 and 9): hessian H and noise C (layout: d*d entries, or d
/// diagonals in one basis), C measured at the batch size reference_batch_size >= 1 (a step with
/// batch size S has noise (reference_batch_size/S) C; d x d doubles are kept in either layout, so d
/// is bounded as for a dense matrix). w is measured from the minimum; both losses
/// are Tr[H M_t]/2. The schedule, at_steps, w0, tolerance and the outputs as in
/// sgdnoise_learning_curve.
@c public func sgdnoise_quadratic_learning_curve(
    _ layout: CInt, _ d: Int, _ hessian: UnsafePointer<Double>?, _ noise: UnsafePointer<Double>?,
    _ reference_batch_size: Int, _ count: Int, _ lrs: UnsafePointer<Double>?, _ batch_sizes: UnsafePointer<Int>?,
    _ momenta: UnsafePointer<Double>?, _ points: Int, _ at_steps: UnsafePointer<Int>?, _ w0: UnsafePointer<Double>?,
    _ tolerance: Double, _ out_train_loss: UnsafeMutablePointer<Double>?, _ out_test_loss: UnsafeMutablePointer<Double>?,
    _ out_trace: UnsafeMutablePointer<Double>?, _ out_mean: UnsafeMutablePointer<Double>?,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_mode_times: UnsafeMutablePointer<Double>?,
    _ out_summary: UnsafeMutablePointer<sgdnoise_curve_summary>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try quadraticCurve(
            layout, d, hessian, noise, reference_batch_size, count, lrs, batch_sizes, momenta, points, at_steps, w0, nil,
            tolerance, CurveOutputs(trainLoss: out_train_loss, testLoss: out_test_loss, trace: out_trace, mean: out_mean,
                                    sigma: out_sigma, denseSigma: false, modeTimes: out_mode_times, summary: out_summary))
    }
}

/// sgdnoise_quadratic_learning_curve from a random start: w0 (NULL: 0) is the start's mean and
/// sigma0 its covariance (in the layout of hessian; NULL: a point start); out_sigma receives the
/// whole Sigma_t as in sgdnoise_learning_curve_from_distribution. The other arguments and outputs
/// as in sgdnoise_quadratic_learning_curve.
@c public func sgdnoise_quadratic_learning_curve_from_distribution(
    _ layout: CInt, _ d: Int, _ hessian: UnsafePointer<Double>?, _ noise: UnsafePointer<Double>?,
    _ reference_batch_size: Int, _ count: Int, _ lrs: UnsafePointer<Double>?, _ batch_sizes: UnsafePointer<Int>?,
    _ momenta: UnsafePointer<Double>?, _ points: Int, _ at_steps: UnsafePointer<Int>?, _ w0: UnsafePointer<Double>?,
    _ sigma0: UnsafePointer<Double>?, _ tolerance: Double, _ out_train_loss: UnsafeMutablePointer<Double>?,
    _ out_test_loss: UnsafeMutablePointer<Double>?, _ out_trace: UnsafeMutablePointer<Double>?,
    _ out_mean: UnsafeMutablePointer<Double>?, _ out_sigma: UnsafeMutablePointer<Double>?,
    _ out_mode_times: UnsafeMutablePointer<Double>?, _ out_summary: UnsafeMutablePointer<sgdnoise_curve_summary>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try quadraticCurve(
            layout, d, hessian, noise, reference_batch_size, count, lrs, batch_sizes, momenta, points, at_steps, w0, sigma0,
            tolerance, CurveOutputs(trainLoss: out_train_loss, testLoss: out_test_loss, trace: out_trace, mean: out_mean,
                                    sigma: out_sigma, denseSigma: true, modeTimes: out_mode_times, summary: out_summary))
    }
}

/// The body of sgdnoise_quadratic_learning_curve and its _from_distribution form.
private func quadraticCurve(
    _ layout: CInt, _ d: Int, _ hessian: UnsafePointer<Double>?, _ noise: UnsafePointer<Double>?,
    _ reference_batch_size: Int, _ count: Int, _ lrs: UnsafePointer<Double>?, _ batch_sizes: UnsafePointer<Int>?,
    _ momenta: UnsafePointer<Double>?, _ points: Int, _ at_steps: UnsafePointer<Int>?, _ w0: UnsafePointer<Double>?,
    _ sigma0: UnsafePointer<Double>?, _ tolerance: Double, _ outputs: @autoclosure () throws(SGDNoiseError) -> CurveOutputs
) throws(SGDNoiseError) {
    let layout = try Arguments.layout(layout)
    // The core keeps H and C as d x d matrices (for the stationary losses) in both layouts.
    try Arguments.size(d, "dimension", max: Arguments.maxDimension)
    try Arguments.denseFits(d, "hessian")
    let h = try Arguments.symmetric(hessian, layout, d, "hessian")
    let c = try Arguments.companion(noise, layout, d, "noise")
    try Validation.batchSize(reference_batch_size, name: "reference_batch_size")
    let request = try CurveRequest(d: d, count: count, lrs: lrs, batchSizes: batch_sizes, momenta: momenta,
                                   points: points, atSteps: at_steps, w0: w0)
    let start = try Arguments.startCovariance(sigma0.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in
        try Arguments.companion(p, layout, d, "sigma0") }, d)
    try Arguments.finite(tolerance, "tolerance")
    let outputs = try outputs()
    let curve = try core {
        try learningCurve(hessian: h, noise: c, referenceBatchSize: reference_batch_size, schedule: request.schedule,
                          record: request.record, w0: request.w0, startCovariance: start, tolerance: tolerance,
                          includeSigma: outputs.wantsSigma, includeMean: outputs.wantsMean)
    }
    try outputs.write(curve)
}

/// The exact learning curve of SGD on linear regression over a finite dataset (docs/theory.md
/// sections 4.1 and 9): X (n x d row-major), y (n), sampling SGDNOISE_SAMPLING_WITH_REPLACEMENT or
/// _WITHOUT_REPLACEMENT (every batch size <= n), weight_decay d x d or NULL, u (teacher, may be
/// NULL) and A (population covariance, may be NULL: X^T X/n) as in sgdnoise_finite_dataset; the
/// schedule, at_steps, w0 (NULL: 0), sigma0 (d x d, NULL: a point start) and tolerance as in
/// sgdnoise_learning_curve_from_distribution. out_train_loss receives E[L(w_t)] (regulariser
/// included), out_test_loss E[(w_t - u)^T A (w_t - u)]/2 (NaN when u is NULL), out_sigma points
/// blocks of d*d doubles (the whole Sigma_t); out_mode_times each mode's noise-free relaxation
/// time (modes of X^T X/n + weight_decay, ascending), out_summary->moment_time that of the whole
/// second-moment map (by power iteration). The stationary losses and unstable_from use the
/// dataset's stationary solution and critical learning rate (a bisection per distinct batch size
/// and momentum).
@c public func sgdnoise_dataset_learning_curve(
    _ n: Int, _ d: Int, _ x: UnsafePointer<Double>?, _ y: UnsafePointer<Double>?, _ sampling: CInt,
    _ weight_decay: UnsafePointer<Double>?, _ u: UnsafePointer<Double>?, _ a: UnsafePointer<Double>?,
    _ count: Int, _ lrs: UnsafePointer<Double>?, _ batch_sizes: UnsafePointer<Int>?, _ momenta: UnsafePointer<Double>?,
    _ points: Int, _ at_steps: UnsafePointer<Int>?, _ w0: UnsafePointer<Double>?, _ sigma0: UnsafePointer<Double>?,
    _ tolerance: Double, _ out_train_loss: UnsafeMutablePointer<Double>?, _ out_test_loss: UnsafeMutablePointer<Double>?,
    _ out_trace: UnsafeMutablePointer<Double>?, _ out_mean: UnsafeMutablePointer<Double>?,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_mode_times: UnsafeMutablePointer<Double>?,
    _ out_summary: UnsafeMutablePointer<sgdnoise_curve_summary>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        try Arguments.size(n, "n")
        try Arguments.size(d, "d", max: Arguments.maxDimension)
        try Arguments.denseFits(d, "sigma0")
        let xs = try Arguments.vector(x, try Arguments.count(n, d, "X"), "X")
        let ys = try Arguments.vector(y, n, "y")
        let mode = try Arguments.noiseSampling(sampling)
        let gamma = try weight_decay.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.squareMatrix(p, d, "weight_decay") }
        let teacher = try u.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.vector(p, d, "u") }
        let population = try a.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.squareMatrix(p, d, "A") }
        let request = try CurveRequest(d: d, count: count, lrs: lrs, batchSizes: batch_sizes, momenta: momenta,
                                       points: points, atSteps: at_steps, w0: w0)
        if let k = request.schedule.batchSizes.firstIndex(where: { mode == .withoutReplacement && $0 > n }) {
            throw .invalidArgument(
                "batch_sizes: without replacement every batch size must be at most n = \(n), got \(request.schedule.batchSizes[k]) at step \(k)")
        }
        let start = try Arguments.startCovariance(sigma0.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in
            SymmetricOperator.dense(try Arguments.squareMatrix(p, d, "sigma0")) }, d)
        try Arguments.finite(tolerance, "tolerance")
        let outputs = try CurveOutputs(trainLoss: out_train_loss, testLoss: out_test_loss, trace: out_trace, mean: out_mean,
                                       sigma: out_sigma, denseSigma: true, modeTimes: out_mode_times, summary: out_summary,
                                       testLossDefined: teacher != nil)
        let matrix = try core { try Matrix(rows: n, columns: d, elements: xs) }
        let curve = try core {
            try learningCurve(x: matrix, y: ys, sampling: mode, weightDecay: gamma, u: teacher, populationCovariance: population,
                              schedule: request.schedule, record: request.record, w0: request.w0,
                              startCovariance: start, tolerance: tolerance,
                              includeSigma: outputs.wantsSigma, includeMean: outputs.wantsMean)
        }
        try outputs.write(curve)
    }
}

/// The learning curve of SGD near a general minimum (docs/theory.md sections 5 and 9), with the
/// noise of sgdnoise_minimum_fluctuation: hessian H0 (layout), loss L0(w*) >= 0, weight_decay
/// (layout, may be NULL: none) and w_star (d, required with a weight decay), flat_tolerance as for
/// sgdnoise_minimum_noise (0: the default). At a regularised or non-interpolating minimum the noise
/// of a step with batch size S is the constant (2 L0 H0 - G w* w*^T G)/S, at an interpolating one
/// (Tr[H0 M] H0 - H0 M H0)/S. w (w0, out_mean) is measured from w*; both losses are
/// L(w*) + Tr[H M_t]/2 with H = H0 + weight_decay. The schedule, at_steps, w0, sigma0, tolerance and
/// the outputs as in sgdnoise_quadratic_learning_curve_from_distribution.
@c public func sgdnoise_minimum_learning_curve(
    _ layout: CInt, _ d: Int, _ hessian: UnsafePointer<Double>?, _ loss: Double, _ weight_decay: UnsafePointer<Double>?,
    _ w_star: UnsafePointer<Double>?, _ flat_tolerance: Double, _ count: Int, _ lrs: UnsafePointer<Double>?,
    _ batch_sizes: UnsafePointer<Int>?, _ momenta: UnsafePointer<Double>?, _ points: Int, _ at_steps: UnsafePointer<Int>?,
    _ w0: UnsafePointer<Double>?, _ sigma0: UnsafePointer<Double>?, _ tolerance: Double,
    _ out_train_loss: UnsafeMutablePointer<Double>?, _ out_test_loss: UnsafeMutablePointer<Double>?,
    _ out_trace: UnsafeMutablePointer<Double>?, _ out_mean: UnsafeMutablePointer<Double>?,
    _ out_sigma: UnsafeMutablePointer<Double>?, _ out_mode_times: UnsafeMutablePointer<Double>?,
    _ out_summary: UnsafeMutablePointer<sgdnoise_curve_summary>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let layout = try Arguments.layout(layout)
        try Arguments.size(d, "dimension", max: Arguments.maxDimension)
        try Arguments.denseFits(d, "hessian")
        let h = try Arguments.symmetric(hessian, layout, d, "hessian")
        try Validation.nonNegative(loss, name: "loss")
        let g = try weight_decay.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.companion(p, layout, d, "weight_decay") }
        let w = try w_star.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.vector(p, d, "w_star") }
        let flat = try Arguments.flatTolerance(flat_tolerance, d)
        let request = try CurveRequest(d: d, count: count, lrs: lrs, batchSizes: batch_sizes, momenta: momenta,
                                       points: points, atSteps: at_steps, w0: w0)
        let start = try Arguments.startCovariance(sigma0.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in
            try Arguments.companion(p, layout, d, "sigma0") }, d)
        try Arguments.finite(tolerance, "tolerance")
        let outputs = try CurveOutputs(trainLoss: out_train_loss, testLoss: out_test_loss, trace: out_trace, mean: out_mean,
                                       sigma: out_sigma, denseSigma: true, modeTimes: out_mode_times, summary: out_summary)
        let curve = try core {
            try learningCurve(hessian: h, loss: loss, weightDecay: g, wStar: w, flatTolerance: flat,
                              schedule: request.schedule, record: request.record, w0: request.w0, startCovariance: start,
                              tolerance: tolerance, includeSigma: outputs.wantsSigma, includeMean: outputs.wantsMean)
        }
        try outputs.write(curve)
    }
}

extension Arguments {
    /// sigma0, the covariance of a random start (nil stays nil), checked under its C name.
    static func startCovariance(_ sigma0: SymmetricOperator?, _ d: Int) throws(SGDNoiseError) -> SymmetricOperator? {
        guard let sigma0 else { return nil }
        try core { try Validation.covariance(sigma0, size: d, name: "sigma0") }
        return sigma0
    }
}

/// The schedule, recorded steps and start of a learning-curve (or scheduled simulation) call, read
/// from C.
struct CurveRequest {
    let schedule: Schedule
    let record: [Int]
    let w0: [Double]?

    init(d: Int, count: Int, lrs: UnsafePointer<Double>?, batchSizes: UnsafePointer<Int>?,
         momenta: UnsafePointer<Double>?, points: Int, atSteps: UnsafePointer<Int>?, w0: UnsafePointer<Double>?
    ) throws(SGDNoiseError) {
        try Arguments.size(count, "count", max: 1 << 36)
        try Arguments.size(points, "points", max: 1 << 36)
        let l = try Arguments.vector(lrs, count, "lrs")
        let s = Array(UnsafeBufferPointer(start: try Arguments.pointer(batchSizes, "batch_sizes"), count: count))
        let mu = try Arguments.vector(momenta, count, "momenta")
        record = Array(UnsafeBufferPointer(start: try Arguments.pointer(atSteps, "at_steps"), count: points))
        self.w0 = try w0.map { (p: UnsafePointer<Double>) throws(SGDNoiseError) in try Arguments.vector(p, d, "w0") }
        do {
            schedule = try Schedule(learningRates: l, batchSizes: s, momenta: mu)
        } catch {
            throw .invalidArgument("schedule (lrs, batch_sizes, momenta): \(error.message)")
        }
        _ = try Arguments.count(points, d, "out_mean")
    }
}

/// The caller's output buffers of a learning-curve call.
private struct CurveOutputs {
    let trainLoss, testLoss, trace, mean, sigma, modeTimes: UnsafeMutablePointer<Double>?
    let summary: ResultSlot<sgdnoise_curve_summary>?
    /// Whether `sigma` receives the whole Σ_t of a dense system (else its diagonal).
    let denseSigma: Bool
    /// Whether the test loss is a number (false: a dataset without a teacher, NaN by definition).
    let testLossDefined: Bool

    init(trainLoss: UnsafeMutablePointer<Double>?, testLoss: UnsafeMutablePointer<Double>?,
         trace: UnsafeMutablePointer<Double>?, mean: UnsafeMutablePointer<Double>?, sigma: UnsafeMutablePointer<Double>?,
         denseSigma: Bool, modeTimes: UnsafeMutablePointer<Double>?, summary: UnsafeMutablePointer<sgdnoise_curve_summary>?,
         testLossDefined: Bool = true) throws(SGDNoiseError) {
        self.trainLoss = trainLoss
        self.testLoss = testLoss
        self.trace = trace
        self.mean = mean
        self.sigma = sigma
        self.denseSigma = denseSigma
        self.modeTimes = modeTimes
        self.summary = try ResultSlot(summary, "out_summary", "sgdnoise_curve_summary")
        self.testLossDefined = testLossDefined
    }

    var wantsSigma: Bool { sigma != nil }
    var wantsMean: Bool { mean != nil }

    /// Writes the curve (nothing when some recorded moment overflowed to NaN).
    func write(_ c: LearningCurve) throws(SGDNoiseError) {
        let sigmaRows = c.sigma.map { (s: SymmetricOperator) -> [Double] in
            if denseSigma, case .dense(let m) = s { return m.elements }
            return s.diagonalEntries
        }
        let scalars = c.trainLoss + (testLossDefined ? c.testLoss : []) + c.trace + c.relaxation.modeTimes
        if scalars.contains(where: \.isNaN) || c.mean.contains(where: { $0.contains(where: \.isNaN) })
            || sigmaRows.contains(where: { $0.contains(where: \.isNaN) }) {
            let from = c.unstableFrom.map { " (the schedule is unstable from update \($0))" } ?? ""
            throw .numericalFailure("the second moments overflowed\(from)")
        }
        if let trainLoss { Arguments.write(c.trainLoss, to: trainLoss) }
        if let testLoss { Arguments.write(c.testLoss, to: testLoss) }
        if let trace { Arguments.write(c.trace, to: trace) }
        if let mean { Arguments.write(c.mean.flatMap { $0 }, to: mean) }
        if let sigma { Arguments.write(sigmaRows.flatMap { $0 }, to: sigma) }
        if let modeTimes { Arguments.write(c.relaxation.modeTimes, to: modeTimes) }
        let r = c.relaxation
        summary?.write(sgdnoise_curve_summary(
            size: MemoryLayout<sgdnoise_curve_summary>.size, moment_time: r.momentTime, mean_time: r.meanTime,
            stationary_train_loss: r.stationaryTrainLoss ?? .nan, stationary_test_loss: r.stationaryTestLoss ?? .nan,
            settled_at: Int64(r.settledAt ?? -1), unstable_from: Int64(c.unstableFrom ?? -1)))
    }
}
