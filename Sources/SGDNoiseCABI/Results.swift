import SGDNoise
import _SGDNoiseShims

/// Size-prefixed result structs (the zstd/Vulkan pattern): every result struct of the header
/// begins with `size_t size`, which the caller sets to `sizeof` the struct it was compiled with.
/// The library writes the fields that lie within that size and nothing beyond it, so a program
/// built against an older, smaller struct keeps working when a later 1.x version appends fields,
/// and a newer, larger struct's extra fields are left as the caller set them.
enum Results {
    /// Checks the caller's `.size` of the struct at `out` (at least the size field itself) and
    /// returns it.
    static func callerSize<S>(_ out: UnsafeMutablePointer<S>, _ name: String, _ typeName: String) throws(SGDNoiseError) -> Int {
        let size = UnsafeRawPointer(out).load(as: Int.self)
        guard size >= MemoryLayout<Int>.size, size <= (1 << 20) else {
            throw .invalidArgument("\(name)->size must be set to sizeof(\(typeName)) (\(MemoryLayout<S>.size) in this version), got \(size)")
        }
        return size
    }

    /// Writes `value` into the caller's struct: every field that lies wholly within the smaller of
    /// the caller's size and the library's, and nothing else (a size that cuts a field leaves that
    /// field alone). The caller's size field is left as it was.
    static func write<S: SizePrefixedResult>(_ value: S, to out: UnsafeMutablePointer<S>, callerSize: Int) {
        var value = value
        let limit = min(callerSize, MemoryLayout<S>.size)
        let start = MemoryLayout<Int>.size
        let end = S.fieldEnds.last(where: { $0 <= limit }) ?? start
        guard end > start else { return }
        withUnsafeBytes(of: &value) { source in
            UnsafeMutableRawPointer(out).advanced(by: start)
                .copyMemory(from: source.baseAddress!.advanced(by: start), byteCount: end - start)
        }
    }
}

/// A result struct of the header: `size_t size` first, then its fields, whose end offsets (in
/// declaration order, ascending) bound what a caller's `.size` lets the library write.
protocol SizePrefixedResult {
    static var fieldEnds: [Int] { get }
}

/// The end offset of the field at `field`.
private func end<S, V>(_ field: KeyPath<S, V>) -> Int {
    MemoryLayout<S>.offset(of: field)! + MemoryLayout<V>.size
}

extension sgdnoise_prediction: SizePrefixedResult {
    static let fieldEnds = [end(\Self.train_loss), end(\Self.test_loss), end(\Self.kappa),
                            end(\Self.critical_learning_rate), end(\Self.coupling_trace),
                            end(\Self.flat_direction_noise)]
}

extension sgdnoise_dataset_info: SizePrefixedResult {
    static let fieldEnds = [end(\Self.iterations), end(\Self.residual), end(\Self.spectral_radius)]
}

extension sgdnoise_fluctuation_info: SizePrefixedResult {
    static let fieldEnds = [end(\Self.flat_directions), end(\Self.flat_direction_noise), end(\Self.flat_tolerance)]
}

extension sgdnoise_noise_scales: SizePrefixedResult {
    static let fieldEnds = [end(\Self.b_simple), end(\Self.b_noise), end(\Self.trace_sigma), end(\Self.grad_sq_norm),
                            end(\Self.trace_hessian_sigma), end(\Self.grad_hessian_grad)]
}

extension sgdnoise_comparison: SizePrefixedResult {
    static let fieldEnds = [end(\Self.rel_frobenius), end(\Self.cosine), end(\Self.trace_ratio), end(\Self.overlap)]
}

extension sgdnoise_simulation_summary: SizePrefixedResult {
    static let fieldEnds = [end(\Self.train_loss), end(\Self.test_loss), end(\Self.tail_index),
                            end(\Self.tail_order_statistics), end(\Self.tail_unreliable), end(\Self.diverged),
                            end(\Self.diverged_at_step), end(\Self.cancelled), end(\Self.steps_completed)]
}

extension sgdnoise_prediction {
    /// The scalars of a prediction, the critical learning rate scaled into the caller's units.
    init(_ p: Prediction, criticalLearningRateScale scale: Double = 1) {
        self.init(
            size: MemoryLayout<sgdnoise_prediction>.size, train_loss: p.trainLoss, test_loss: p.testLoss,
            kappa: p.kappa ?? .nan, critical_learning_rate: p.criticalLearningRate.map { $0 * scale } ?? .nan,
            coupling_trace: p.couplingTrace, flat_direction_noise: p.flatDirectionNoise)
    }
}

extension sgdnoise_noise_scales {
    init(_ s: GradientNoiseScale) {
        self.init(
            size: MemoryLayout<sgdnoise_noise_scales>.size, b_simple: s.bSimple, b_noise: s.bNoise ?? .nan,
            trace_sigma: s.traceSigma, grad_sq_norm: s.gradSquaredNorm,
            trace_hessian_sigma: s.traceHessianSigma ?? .nan, grad_hessian_grad: s.gradHessianGrad ?? .nan)
    }
}

/// An optional result struct of the caller: NULL (not wanted) or a pointer whose `.size` was checked.
struct ResultSlot<S: SizePrefixedResult> {
    let pointer: UnsafeMutablePointer<S>
    let size: Int

    /// nil for NULL; throws when the caller's size is not set.
    init?(_ p: UnsafeMutablePointer<S>?, _ name: String, _ typeName: String) throws(SGDNoiseError) {
        guard let p else { return nil }
        pointer = p
        size = try Results.callerSize(p, name, typeName)
    }

    /// Writes the fields both versions know.
    func write(_ value: S) {
        Results.write(value, to: pointer, callerSize: size)
    }
}

extension sgdnoise_network_summary: SizePrefixedResult {
    static let fieldEnds = [end(\Self.excess_loss), end(\Self.excess_loss_stderr), end(\Self.top_trace_sigma),
                            end(\Self.critical_learning_rate_additive), end(\Self.critical_learning_rate_multiplicative),
                            end(\Self.critical_learning_rate_multiplicative_stderr), end(\Self.hessian_products),
                            end(\Self.noise_products), end(\Self.max_residual),
                            end(\Self.top_converged), end(\Self.bottom_converged), end(\Self.top_relaxation_steps),
                            end(\Self.slowest_relaxation_steps), end(\Self.flat_directions),
                            end(\Self.flat_diffusion_per_step), end(\Self.bottom_noise_trace)]
}

extension sgdnoise_drift_summary: SizePrefixedResult {
    static let fieldEnds = [end(\Self.excess_loss_covered), end(\Self.converged), end(\Self.hessian_products),
                            end(\Self.curvature_gradient_products)]
}

extension sgdnoise_eigen_info: SizePrefixedResult {
    static let fieldEnds = [end(\Self.converged), end(\Self.products), end(\Self.restarts)]
}

extension sgdnoise_spectral_density_info: SizePrefixedResult {
    static let fieldEnds = [end(\Self.nodes), end(\Self.trace), end(\Self.trace_stderr), end(\Self.products)]
}

extension sgdnoise_curve_summary: SizePrefixedResult {
    static let fieldEnds = [end(\Self.moment_time), end(\Self.mean_time), end(\Self.stationary_train_loss),
                            end(\Self.stationary_test_loss), end(\Self.settled_at), end(\Self.unstable_from)]
}

extension sgdnoise_scheduled_run_summary: SizePrefixedResult {
    static let fieldEnds = [end(\Self.chains_used), end(\Self.diverged)]
}
