import Foundation

extension Schedule {
    /// The shape of a real-valued hyperparameter over the updates t = 1…T (a learning rate or a
    /// momentum), evaluated by `Schedule(steps:learningRate:batchSize:momentum:)`.
    ///
    /// With k = t − 1 the 0-based index of the update:
    /// - `constant(v)`: v.
    /// - `values(v)`: v[k] (exactly T entries).
    /// - `stepDecay(initial: v₀, factor: γ, every: n)`: v₀ γ^⌊k/n⌋ (PyTorch's `StepLR` counted in
    ///   updates): updates 1…n use v₀, updates n+1…2n use v₀γ, …
    /// - `milestones(initial: v₀, factor: γ, at: [m₁, m₂, …])`: v₀ γ^#{j : m_j ≤ k}, i.e. the value
    ///   is multiplied by γ after update m_j (PyTorch's `MultiStepLR` counted in updates).
    /// - `exponential(initial: v₀, factor: γ)`: v₀ γ^k.
    /// - `cosine(initial: v₀, final: v₁)`: v₁ + ½(v₀ − v₁)(1 + cos(πk/T)) (PyTorch's
    ///   `CosineAnnealingLR` with T_max = T).
    /// - `warmup(steps: W, then: shape)`: v·(k+1)/W for k < W, with v the first value of `shape`
    ///   (a linear ramp from v/W to v), then `shape` over the remaining T − W updates.
    public indirect enum Shape: Sendable, Equatable {
        /// The same value at every update.
        case constant(Double)
        /// One value per update (exactly `steps` of them).
        case values([Double])
        /// Multiplied by `factor` every `every` updates.
        case stepDecay(initial: Double, factor: Double, every: Int)
        /// Multiplied by `factor` after each update listed in `at`.
        case milestones(initial: Double, factor: Double, at: [Int])
        /// Multiplied by `factor` at every update.
        case exponential(initial: Double, factor: Double)
        /// A half cosine from `initial` towards `final` over the updates.
        case cosine(initial: Double, final: Double)
        /// A linear warm-up over `steps` updates to the first value of `then`, followed by `then`.
        case warmup(steps: Int, then: Shape)

        /// The values of the first `steps` updates.
        /// - Throws: `invalidArgument` (naming `name`) for a bad parameter or a wrong length.
        func values(steps t: Int, name: String) throws(SGDNoiseError) -> [Double] {
            switch self {
            case .constant(let v):
                return [Double](repeating: v, count: t)
            case .values(let v):
                guard v.count == t else { throw .invalidArgument("\(name) must have \(t) per-step values, got \(v.count)") }
                return v
            case .stepDecay(let v0, let factor, let every):
                guard every >= 1 else { throw .invalidArgument("\(name): a step decay needs every ≥ 1, got \(every)") }
                try Self.requireFactor(factor, name)
                return (0..<t).map { v0 * Foundation.pow(factor, Double($0 / every)) }
            case .milestones(let v0, let factor, let at):
                try Self.requireFactor(factor, name)
                guard zip(at, at.dropFirst()).allSatisfy({ $0 < $1 }), at.allSatisfy({ $0 >= 1 }) else {
                    throw .invalidArgument("\(name): milestones must be increasing update numbers ≥ 1, got \(at)")
                }
                var out = [Double](repeating: v0, count: t)
                var value = v0
                var next = 0
                for k in 0..<t {
                    while next < at.count, at[next] <= k {
                        value *= factor
                        next += 1
                    }
                    out[k] = value
                }
                return out
            case .exponential(let v0, let factor):
                try Self.requireFactor(factor, name)
                return (0..<t).map { v0 * Foundation.pow(factor, Double($0)) }
            case .cosine(let v0, let v1):
                return (0..<t).map { v1 + 0.5 * (v0 - v1) * (1 + Foundation.cos(Double.pi * Double($0) / Double(t))) }
            case .warmup(let w, let then):
                guard w >= 1 else { throw .invalidArgument("\(name): a warm-up needs steps ≥ 1, got \(w)") }
                guard w < t else { throw .invalidArgument("\(name): the warm-up (\(w) steps) must be shorter than the schedule (\(t) steps)") }
                let rest = try then.values(steps: t - w, name: name)
                let peak = rest[0]
                return (0..<w).map { peak * Double($0 + 1) / Double(w) } + rest
            }
        }

        private static func requireFactor(_ factor: Double, _ name: String) throws(SGDNoiseError) {
            guard factor.isFinite, factor >= 0 else {
                throw .invalidArgument("\(name): the factor must be finite and non-negative, got \(factor)")
            }
        }
    }

    /// The shape of the batch size S_t over the updates t = 1…T (k = t − 1):
    /// - `constant(S)`: S.
    /// - `values(s)`: s[k] (exactly T entries).
    /// - `ramp(initial: S₀, factor: f, at: [m₁, m₂, …])`: S₀ f^#{j : m_j ≤ k}: the batch size is
    ///   multiplied by the integer f after each update m_j (a batch-size ramp, the counterpart of
    ///   a learning-rate step decay by 1/f).
    /// - `rampEvery(initial: S₀, factor: f, every: n)`: S₀ f^⌊k/n⌋.
    public enum BatchSizeShape: Sendable, Equatable {
        /// The same batch size at every update.
        case constant(Int)
        /// One batch size per update (exactly `steps` of them).
        case values([Int])
        /// Multiplied by `factor` after each update listed in `at`.
        case ramp(initial: Int, factor: Int, at: [Int])
        /// Multiplied by `factor` every `every` updates.
        case rampEvery(initial: Int, factor: Int, every: Int)

        /// The batch sizes of the first `steps` updates.
        /// - Throws: `invalidArgument` for a bad parameter, a wrong length or an overflowing ramp.
        func values(steps t: Int) throws(SGDNoiseError) -> [Int] {
            switch self {
            case .constant(let s):
                return [Int](repeating: s, count: t)
            case .values(let s):
                guard s.count == t else { throw .invalidArgument("batchSize must have \(t) per-step values, got \(s.count)") }
                return s
            case .ramp(let s0, let factor, let at):
                guard factor >= 1 else { throw .invalidArgument("batchSize: a ramp's factor must be at least 1, got \(factor)") }
                guard zip(at, at.dropFirst()).allSatisfy({ $0 < $1 }), at.allSatisfy({ $0 >= 1 }) else {
                    throw .invalidArgument("batchSize: milestones must be increasing update numbers ≥ 1, got \(at)")
                }
                var out = [Int](repeating: s0, count: t)
                var value = s0
                var next = 0
                for k in 0..<t {
                    while next < at.count, at[next] <= k {
                        value = try Self.multiply(value, factor)
                        next += 1
                    }
                    out[k] = value
                }
                return out
            case .rampEvery(let s0, let factor, let every):
                guard factor >= 1 else { throw .invalidArgument("batchSize: a ramp's factor must be at least 1, got \(factor)") }
                guard every >= 1 else { throw .invalidArgument("batchSize: a ramp needs every ≥ 1, got \(every)") }
                var out = [Int](repeating: s0, count: t)
                var value = s0
                for k in 0..<t {
                    if k > 0, k % every == 0 { value = try Self.multiply(value, factor) }
                    out[k] = value
                }
                return out
            }
        }

        private static func multiply(_ s: Int, _ f: Int) throws(SGDNoiseError) -> Int {
            let (p, overflow) = s.multipliedReportingOverflow(by: f)
            guard !overflow, p <= Int(Int32.max) else { throw .invalidArgument("batchSize: the ramp overflows (\(s) × \(f))") }
            return p
        }
    }
}
