import SGDNoise
import Synchronization
import _SGDNoiseShims

/// What the C interface does alike for its two mergeable objects, the noise accumulator and the
/// noise sketch: update with chunks of rows, merge, read the mean, export and import the state.
protocol MergeableState: Sendable {
    /// The object's name in messages ("accumulator", "sketch").
    static var noun: String { get }
    var dimension: Int { get }
    var isEmpty: Bool { get }
    var mean: [Double] { get }
    var serializedSize: Int { get }
    mutating func update<T: GradientScalar>(_ chunk: UnsafeBufferPointer<T>, rows n: Int) throws
    mutating func merge(_ other: Self) throws
    /// The serialized state (a sketch folds its buffered rows first, in place).
    mutating func export() throws -> [UInt8]
    init(serialized bytes: UnsafeRawBufferPointer) throws
}

extension NoiseAccumulator: MergeableState {
    static var noun: String { "accumulator" }
    func export() -> [UInt8] { serialized() }
}

extension NoiseSketch: MergeableState {
    static var noun: String { "sketch" }
    mutating func export() throws -> [UInt8] {
        try flush()
        return try serialized()
    }
}

/// The state behind a handle of a mergeable object: a value behind a lock, so that concurrent
/// calls on one handle are serialised (calls on different handles never contend).
final class StateHandle<State: MergeableState>: Sendable {
    let state: Mutex<State>

    init(_ value: State) {
        state = Mutex(value)
    }

    /// A snapshot of the state (copy-on-write: no copy of its storage unless the original changes later).
    var snapshot: State { state.withLock { $0 } }

    /// The live handle `p` of this kind (argument `name`).
    static func from(_ p: OpaquePointer?, _ name: String = State.noun) throws(SGDNoiseError) -> StateHandle {
        try Handles.object(p, as: StateHandle.self, name)
    }

    /// Writes one integer property of the state behind the handle `p` into `out` (argument
    /// `outName`): the scalar queries of the C interface.
    static func query(_ p: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?, _ outName: String,
                      _ value: (borrowing State) -> Int) -> sgdnoise_status {
        guarded { () throws(SGDNoiseError) in
            let h = try from(p)
            let out = try Arguments.output(out, outName)
            out.pointee = h.state.withLock { value($0) }
        }
    }

    /// Adds the n rows of the n x d row-major `chunk` to the state behind `p`.
    static func update<T: GradientScalar>(_ p: OpaquePointer?, _ n: Int, _ chunk: UnsafePointer<T>?) -> sgdnoise_status {
        guarded { () throws(SGDNoiseError) in
            let h = try from(p)
            let chunk = try Arguments.pointer(chunk, "chunk")
            try Arguments.size(n, "n")
            try h.state.withLock { (state: inout State) throws(SGDNoiseError) in
                let count = try Arguments.count(n, state.dimension, "chunk")
                let buffer = UnsafeBufferPointer(start: chunk, count: count)
                try core { try state.update(buffer, rows: n) }
            }
        }
    }

    /// Merges the state behind `other` into the one behind `p` (`other` unchanged).
    static func merge(_ p: OpaquePointer?, _ other: OpaquePointer?) -> sgdnoise_status {
        guarded { () throws(SGDNoiseError) in
            let h = try from(p)
            let o = try from(other, "other").snapshot  // lock `other` alone, then `h`: no lock-order deadlock
            try h.state.withLock { (state: inout State) throws(SGDNoiseError) in
                try core { try state.merge(o) }
            }
        }
    }

    /// The mean gradient into `out` (d doubles); fails when empty.
    static func mean(_ p: OpaquePointer?, _ out: UnsafeMutablePointer<Double>?) -> sgdnoise_status {
        guarded { () throws(SGDNoiseError) in
            let h = try from(p)
            let out = try Arguments.output(out, "out_mean")
            let mean: [Double]? = h.state.withLock { $0.isEmpty ? nil : $0.mean }
            guard let mean else { throw .invalidArgument("the \(State.noun) is empty: update it with at least one gradient first") }
            Arguments.write(mean, to: out)
        }
    }

    /// Writes the serialized state into `out` (exactly `serializedSize` bytes).
    static func export(_ p: OpaquePointer?, _ out: UnsafeMutablePointer<UInt8>?) -> sgdnoise_status {
        guarded { () throws(SGDNoiseError) in
            let h = try from(p)
            let out = try Arguments.output(out, "out")
            let bytes = try h.state.withLock { (state: inout State) throws(SGDNoiseError) in try core { try state.export() } }
            bytes.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: $0.count) }
        }
    }

    /// A new handle from `size` serialized bytes at `state`.
    static func restore(_ size: Int, _ state: UnsafePointer<UInt8>?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                        _ outName: String) -> sgdnoise_status {
        guarded { () throws(SGDNoiseError) in
            let out = try Arguments.output(out, outName)
            let state = try Arguments.pointer(state, "state")
            try Arguments.size(size, "size", max: Int.max)
            let value = try core { try State(serialized: UnsafeRawBufferPointer(start: state, count: size)) }
            Handles.give(StateHandle(value), to: out)
        }
    }
}
