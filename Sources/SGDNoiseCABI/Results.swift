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

    /// Writes `value` into the caller's struct: the bytes after the size field, up to the smaller
    /// of the caller's size and the library's. The caller's size field is left as it was.
    static func write<S>(_ value: S, to out: UnsafeMutablePointer<S>, callerSize: Int) {
        var value = value
        let end = min(callerSize, MemoryLayout<S>.size)
        let start = MemoryLayout<Int>.size
        guard end > start else { return }
        withUnsafeBytes(of: &value) { source in
            UnsafeMutableRawPointer(out).advanced(by: start)
                .copyMemory(from: source.baseAddress!.advanced(by: start), byteCount: end - start)
        }
    }
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
struct ResultSlot<S> {
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
