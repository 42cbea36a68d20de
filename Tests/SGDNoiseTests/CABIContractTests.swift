import Foundation
import SGDNoise
@testable import SGDNoiseCABI
import Testing
import _SGDNoiseShims

/// The promises of the 1.0 C interface that let a program built against it keep working with every
/// later 1.x library: the version number and the run-time ABI check; typed handles that refuse a
/// handle of the wrong kind, a freed or foreign pointer and NULL; size-prefixed result structs
/// filled up to the caller's size and not one byte further; the enum values each function accepts;
/// and error messages cut at a UTF-8 character boundary. (examples/c/abi_1_0.c checks the same
/// promises from a C program compiled against the header.)
@Suite("C ABI 1.0 contract")
struct CABIContractTests {
    static func lastMessage() -> String { String(cString: sgdnoise_last_error_message()!) }

    static let a2: [Double] = [1, 0, 0, 0.5]
    static let hessian2: [Double] = [2, 0.5, 0.5, 1]
    static let noise2: [Double] = [0.1, 0.02, 0.02, 0.1]
    /// Six rows of dimension 2: per-sample gradients, or the inputs of a dataset.
    static let rows: [Double] = [1, 2, 0, 1, 3, 1, 2, 2, 1, 0, 1, 3]
    static let labels: [Double] = [1, 0.5, 2, 1.5, 0, 1]

    static func summaryStruct(size: Int = MemoryLayout<sgdnoise_simulation_summary>.size) -> sgdnoise_simulation_summary {
        var summary = sgdnoise_simulation_summary()
        summary.size = size
        return summary
    }

    /// A live simulation of the 2-d Gaussian problem (not run).
    static func makeSimulation() throws -> OpaquePointer {
        var handle: OpaquePointer? = nil
        let status = a2.withUnsafeBufferPointer { sgdnoise_simulation_create_gaussian(2, $0.baseAddress, nil, 1, nil, &handle) }
        #expect(status == .ok, "sgdnoise_simulation_create_gaussian: \(lastMessage())")
        return try #require(handle)
    }

    /// A live accumulator of dimension 2 holding the six `rows`.
    static func makeAccumulator() throws -> OpaquePointer {
        var handle: OpaquePointer? = nil
        #expect(sgdnoise_accumulator_create(2, &handle) == .ok, "sgdnoise_accumulator_create: \(lastMessage())")
        let h = try #require(handle)
        let status = rows.withUnsafeBufferPointer { sgdnoise_accumulator_update(h, 6, $0.baseAddress) }
        #expect(status == .ok, "sgdnoise_accumulator_update: \(lastMessage())")
        return h
    }

    // MARK: Versions

    static var major: UInt32 { UInt32(SGDNOISE_VERSION_MAJOR) }
    static var minor: UInt32 { UInt32(SGDNOISE_VERSION_MINOR) }
    static var patch: UInt32 { UInt32(SGDNOISE_VERSION_PATCH) }
    /// SGDNOISE_VERSION_NUMBER (a macro Swift cannot import), from its definition.
    static var headerVersion: UInt32 { major * 10000 + minor * 100 + patch }

    @Test("The version number and string match the header's macros; the ABI check accepts 1.0 and refuses other majors and later minors")
    func versions() throws {
        #expect(Self.major == 1 && Self.minor == 0, "header version \(Self.major).\(Self.minor): these tests are written against 1.0")
        #expect(sgdnoise_version_number() == Self.headerVersion,
                "sgdnoise_version_number() = \(sgdnoise_version_number()), SGDNOISE_VERSION_NUMBER = \(Self.headerVersion)")
        let text = String(cString: try #require(sgdnoise_version()))
        #expect(text == "\(Self.major).\(Self.minor).\(Self.patch)" && text == SGDNoiseVersion.string,
                "sgdnoise_version() = \(text), macros \(Self.major).\(Self.minor).\(Self.patch), Swift \(SGDNoiseVersion.string)")
        #expect(sgdnoise_abi_compatible(Self.headerVersion) == 1, "SGDNOISE_ABI_COMPATIBLE() is 0")
        let refused: [(String, UInt32)] = [
            ("next major, (major+1)*10000", (Self.major + 1) * 10000),
            ("next major, same minor and patch", (Self.major + 1) * 10000 + Self.minor * 100 + Self.patch),
            ("later minor", Self.major * 10000 + (Self.minor + 1) * 100),
            ("much later minor", Self.major * 10000 + 99 * 100),
            ("previous major, 0.99.99", (Self.major - 1) * 10000 + 9999),
            ("0", 0),
            ("UInt32.max", .max),
        ]
        for (label, version) in refused {
            #expect(sgdnoise_abi_compatible(version) == 0, "\(label) (\(version)): expected 0, observed \(sgdnoise_abi_compatible(version))")
        }
        // The header documents compatibility by major and minor version only ("a program built
        // against MAJOR.MINOR runs with any library MAJOR.MINOR' with MINOR' >= MINOR"), so a header
        // that is newer by its patch level alone should be served; sgdnoise_abi_compatible compares
        // the patch level too and refuses it.
        #expect(sgdnoise_abi_compatible(Self.headerVersion + 1) == 1)  // a later patch level: same interface
    }

    // MARK: Handles

    typealias HandleCall = (name: String, run: () -> (status: sgdnoise_status, untouched: Bool))

    /// Every function that takes a simulation handle, called with `h`; `untouched` says whether
    /// the outputs kept their initial values.
    static func simulationCalls(_ h: OpaquePointer?) -> [HandleCall] {
        [
            ("sgdnoise_simulation_set_optimizer", { (sgdnoise_simulation_set_optimizer(h, nil, 0.5, nil, 10, 0), true) }),
            ("sgdnoise_simulation_run", { (sgdnoise_simulation_run(h, 10, 0, 1, 1, 1, nil, nil), true) }),
            ("sgdnoise_simulation_result", {
                var mean: [Double] = [-1, -1]
                var summary = summaryStruct()
                let status = mean.withUnsafeMutableBufferPointer { sgdnoise_simulation_result(h, $0.baseAddress, nil, nil, nil, &summary) }
                return (status, mean == [-1, -1] && summary.train_loss == 0 && summary.steps_completed == 0)
            }),
        ]
    }

    /// Every function that takes an accumulator handle, with `h` in the handle's place (and, for
    /// merge, once in each place next to the live accumulator `live`).
    static func accumulatorCalls(_ h: OpaquePointer?, live: OpaquePointer) -> [HandleCall] {
        let row: [Double] = [1, 2], rowF: [Float] = [1, 2]
        return [
            ("sgdnoise_accumulator_update", { (row.withUnsafeBufferPointer { sgdnoise_accumulator_update(h, 1, $0.baseAddress) }, true) }),
            ("sgdnoise_accumulator_update_f32", { (rowF.withUnsafeBufferPointer { sgdnoise_accumulator_update_f32(h, 1, $0.baseAddress) }, true) }),
            ("sgdnoise_accumulator_merge (accumulator)", { (sgdnoise_accumulator_merge(h, live), true) }),
            ("sgdnoise_accumulator_merge (other)", { (sgdnoise_accumulator_merge(live, h), true) }),
            ("sgdnoise_accumulator_count", {
                var count = -7
                let status = sgdnoise_accumulator_count(h, &count)
                return (status, count == -7)
            }),
            ("sgdnoise_accumulator_dimension", {
                var d = -7
                let status = sgdnoise_accumulator_dimension(h, &d)
                return (status, d == -7)
            }),
            ("sgdnoise_accumulator_mean", {
                var mean: [Double] = [-1, -1]
                let status = mean.withUnsafeMutableBufferPointer { sgdnoise_accumulator_mean(h, $0.baseAddress) }
                return (status, mean == [-1, -1])
            }),
            ("sgdnoise_accumulator_covariance", {
                var out = [Double](repeating: -1, count: 4)
                let status = out.withUnsafeMutableBufferPointer { sgdnoise_accumulator_covariance(h, 2, 0, 0, $0.baseAddress) }
                return (status, out.allSatisfy { $0 == -1 })
            }),
            ("sgdnoise_accumulator_noise_scale", {
                var scales = sgdnoise_noise_scales()
                scales.size = MemoryLayout<sgdnoise_noise_scales>.size
                let status = sgdnoise_accumulator_noise_scale(h, nil, &scales)
                return (status, scales.b_simple == 0 && scales.trace_sigma == 0)
            }),
        ]
    }

    /// Runs each call, expecting INVALID_ARGUMENT, a message mentioning `mentions` and untouched outputs.
    static func expectRefused(_ calls: [HandleCall], _ label: String, mentions: String) {
        for call in calls {
            let (status, untouched) = call.run()
            let message = lastMessage()
            #expect(status == .invalidArgument, "\(label), \(call.name): expected invalidArgument, observed \(status) (\"\(message)\")")
            #expect(message.contains(mentions), "\(label), \(call.name): expected the message to mention \"\(mentions)\", observed \"\(message)\"")
            #expect(untouched, "\(label), \(call.name): an output was written")
        }
    }

    @Test("A handle of the wrong kind, a freed, foreign or interior pointer and NULL are INVALID_ARGUMENT, never a crash")
    func wrongHandles() throws {
        let simulation = try Self.makeSimulation(), accumulator = try Self.makeAccumulator()
        defer {
            sgdnoise_simulation_free(simulation)
            sgdnoise_accumulator_free(accumulator)
        }
        let spare = try Self.makeAccumulator()
        defer { sgdnoise_accumulator_free(spare) }

        // The wrong kind, both ways.
        Self.expectRefused(Self.simulationCalls(accumulator), "accumulator as simulation",
                           mentions: "is a handle of sgdnoise_accumulator, not of sgdnoise_simulation")
        Self.expectRefused(Self.accumulatorCalls(simulation, live: spare), "simulation as accumulator",
                           mentions: "is a handle of sgdnoise_simulation, not of sgdnoise_accumulator")

        // Memory the library never gave out: on the heap, on the stack, and inside a live handle.
        let heap = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
        defer { heap.deallocate() }
        heap.initializeMemory(as: UInt8.self, repeating: 0, count: 256)
        let interior = OpaquePointer(UnsafeMutableRawPointer(simulation).advanced(by: 8))
        for (label, pointer) in [("heap pointer", OpaquePointer(heap)), ("pointer 8 bytes into a live simulation", interior)] {
            Self.expectRefused(Self.simulationCalls(pointer), "\(label) as simulation", mentions: "not a live sgdnoise_simulation handle")
            Self.expectRefused(Self.accumulatorCalls(pointer, live: spare), "\(label) as accumulator",
                               mentions: "not a live sgdnoise_accumulator handle")
        }
        var stack = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        withUnsafeMutablePointer(to: &stack) { p in
            Self.expectRefused(Self.simulationCalls(OpaquePointer(p)), "stack pointer as simulation", mentions: "not a live sgdnoise_simulation handle")
            Self.expectRefused(Self.accumulatorCalls(OpaquePointer(p), live: spare), "stack pointer as accumulator",
                               mentions: "not a live sgdnoise_accumulator handle")
            sgdnoise_simulation_free(OpaquePointer(p))
            sgdnoise_accumulator_free(OpaquePointer(p))
        }
        #expect(stack == (0, 0, 0, 0, 0, 0), "the stack variable was written: \(stack)")
        sgdnoise_simulation_free(OpaquePointer(heap))
        sgdnoise_accumulator_free(OpaquePointer(heap))
        #expect(UnsafeRawBufferPointer(start: heap, count: 256).allSatisfy { $0 == 0 }, "freeing a foreign pointer wrote to it")

        // NULL.
        Self.expectRefused(Self.simulationCalls(nil), "NULL simulation", mentions: "must not be NULL")
        Self.expectRefused(Self.accumulatorCalls(nil, live: spare), "NULL accumulator", mentions: "must not be NULL")
        sgdnoise_simulation_free(nil)
        sgdnoise_accumulator_free(nil)

        // Freeing through the wrong kind (and an interior pointer) is ignored: both handles stay live.
        sgdnoise_simulation_free(accumulator)
        sgdnoise_accumulator_free(simulation)
        sgdnoise_simulation_free(interior)
        var count = 0
        #expect(sgdnoise_accumulator_count(accumulator, &count) == .ok && count == 6,
                "the accumulator after sgdnoise_simulation_free on it: \(Self.lastMessage()), count \(count)")
        #expect(sgdnoise_simulation_set_optimizer(simulation, nil, 0.5, nil, 10, 0) == .ok,
                "the simulation after sgdnoise_accumulator_free on it: \(Self.lastMessage())")
        // The refused merges left the live accumulator as it was.
        #expect(sgdnoise_accumulator_count(spare, &count) == .ok && count == 6, "the refused calls changed the live accumulator: count \(count)")
        var run = Self.summaryStruct()
        #expect(sgdnoise_simulation_run(simulation, 200, 20, 1, 3, 1, nil, nil) == .ok, "run: \(Self.lastMessage())")
        #expect(sgdnoise_simulation_result(simulation, nil, nil, nil, nil, &run) == .ok && run.steps_completed == 200,
                "result after the refused calls: \(Self.lastMessage()), steps \(run.steps_completed)")
    }

    /// Limit (documented in Handles.swift): once freed, an address may be given to a new handle of
    /// the same kind, which a stale pointer would then reach. Nothing is created between the frees
    /// and the calls here; a handle created meanwhile by a test on another thread could in principle
    /// take the address (glibc keeps freed blocks in the freeing thread's cache first).
    @Test("A freed handle is INVALID_ARGUMENT; freeing twice (or through the other kind) is harmless")
    func freedHandles() throws {
        let live = try Self.makeAccumulator()
        defer { sgdnoise_accumulator_free(live) }
        let simulation = try Self.makeSimulation(), accumulator = try Self.makeAccumulator()
        sgdnoise_simulation_free(simulation)
        sgdnoise_accumulator_free(accumulator)
        Self.expectRefused(Self.simulationCalls(simulation), "freed simulation", mentions: "not a live sgdnoise_simulation handle")
        Self.expectRefused(Self.accumulatorCalls(accumulator, live: live), "freed accumulator", mentions: "not a live sgdnoise_accumulator handle")
        sgdnoise_simulation_free(simulation)
        sgdnoise_accumulator_free(accumulator)
        sgdnoise_accumulator_free(simulation)
        sgdnoise_simulation_free(accumulator)
        Self.expectRefused(Self.simulationCalls(simulation), "twice-freed simulation", mentions: "not a live sgdnoise_simulation handle")
        // The library works on afterwards.
        var count = 0
        #expect(sgdnoise_accumulator_count(live, &count) == .ok && count == 6, "live accumulator: \(Self.lastMessage())")
        let fresh = try Self.makeSimulation()
        sgdnoise_simulation_free(fresh)
    }

    // MARK: Size-prefixed result structs

    /// A 256-byte buffer of sentinel bytes (aligned for every result struct) in which a struct of
    /// any claimed size is passed.
    final class SentinelBuffer {
        static let sentinel: UInt8 = 0xA5
        let count = 256
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)

        deinit { raw.deallocate() }

        /// Fills the buffer with the sentinel and sets the size field to `size`.
        func reset(size: Int) {
            raw.initializeMemory(as: UInt8.self, repeating: Self.sentinel, count: count)
            raw.storeBytes(of: size, as: Int.self)
        }

        func pointer<S>(_: S.Type) -> UnsafeMutablePointer<S> { raw.bindMemory(to: S.self, capacity: 1) }
        var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: raw, count: count)) }
        var sizeField: Int { raw.load(as: Int.self) }
    }

    /// A result struct of the 1.0 header and a call that fills it.
    struct ResultStruct<S> {
        let name: String
        /// Each 1.0 field after `size`: its name, offset and byte count.
        let fields: [(name: String, offset: Int, count: Int)]
        /// Whether NULL is refused (true) or means "not wanted" (false).
        let required: Bool
        let call: (UnsafeMutablePointer<S>?) -> sgdnoise_status
    }

    static func field<S, V>(_ name: String, _ path: KeyPath<S, V>) -> (name: String, offset: Int, count: Int) {
        (name, MemoryLayout<S>.offset(of: path)!, MemoryLayout<V>.size)
    }

    /// Checks every size a caller may pass: the full 1.0 size; every field boundary and a size
    /// inside each field (an older, smaller struct: filled up to that size and not one byte
    /// further, its fields equal to the full struct's); a larger, newer size (its extra bytes
    /// untouched); sizes below the size field and garbage (refused, nothing written); NULL.
    static func checkSizes<S>(_ r: ResultStruct<S>) {
        let full = MemoryLayout<S>.size
        let buffer = SentinelBuffer()
        buffer.reset(size: full)
        let status = r.call(buffer.pointer(S.self))
        #expect(status == .ok, "\(r.name), full size \(full): \(status): \(lastMessage())")
        guard status == .ok else { return }
        let reference = buffer.bytes
        #expect(buffer.sizeField == full, "\(r.name): .size changed from \(full) to \(buffer.sizeField)")
        for f in r.fields {
            #expect(reference[f.offset..<(f.offset + f.count)].contains { $0 != SentinelBuffer.sentinel },
                    "\(r.name): field \(f.name) was not written at the full size")
        }
        #expect(reference[full...].allSatisfy { $0 == SentinelBuffer.sentinel }, "\(r.name): bytes written past the full size \(full)")

        // Older, smaller structs: at every field boundary, and 4 bytes into each field.
        var sizes = Set([MemoryLayout<Int>.size])
        for f in r.fields {
            sizes.insert(f.offset + f.count)
            sizes.insert(f.offset + min(4, f.count - 1))
        }
        for size in sizes.sorted() where size <= full {
            buffer.reset(size: size)
            let s = r.call(buffer.pointer(S.self))
            let bytes = buffer.bytes
            #expect(s == .ok, "\(r.name), .size = \(size): \(s): \(lastMessage())")
            #expect(buffer.sizeField == size, "\(r.name), .size = \(size): .size changed to \(buffer.sizeField)")
            let past = bytes[size...].enumerated().filter { $0.element != SentinelBuffer.sentinel }.map { $0.offset + size }
            #expect(past.isEmpty, "\(r.name), .size = \(size): bytes written past the caller's size at offsets \(past)")
            for f in r.fields where f.offset + f.count <= size {
                #expect(bytes[f.offset..<(f.offset + f.count)] == reference[f.offset..<(f.offset + f.count)],
                        "\(r.name), .size = \(size): field \(f.name) differs from the full struct's")
            }
        }

        // A newer, larger struct: the 1.0 fields filled, the caller's extra bytes untouched.
        let larger = full + 64
        buffer.reset(size: larger)
        let s = r.call(buffer.pointer(S.self))
        let bytes = buffer.bytes
        #expect(s == .ok && buffer.sizeField == larger, "\(r.name), .size = \(larger): \(s), .size now \(buffer.sizeField)")
        for f in r.fields {
            #expect(bytes[f.offset..<(f.offset + f.count)] == reference[f.offset..<(f.offset + f.count)],
                    "\(r.name), .size = \(larger): field \(f.name) differs from the full struct's")
        }
        #expect(bytes[full...].allSatisfy { $0 == SentinelBuffer.sentinel }, "\(r.name), .size = \(larger): the fields unknown to 1.0 were written")

        // Sizes that cannot be a struct of this family: refused with a message, nothing written.
        for size in [0, 1, MemoryLayout<Int>.size - 1, 1 << 21, -1] {
            buffer.reset(size: size)
            let s = r.call(buffer.pointer(S.self))
            let message = lastMessage()
            #expect(s == .invalidArgument, "\(r.name), .size = \(size): expected invalidArgument, observed \(s)")
            #expect(message.contains("->size must be set to sizeof("), "\(r.name), .size = \(size): message \"\(message)\"")
            #expect(buffer.bytes[MemoryLayout<Int>.size...].allSatisfy { $0 == SentinelBuffer.sentinel },
                    "\(r.name), .size = \(size): the struct was written")
        }

        // NULL.
        let n = r.call(nil)
        #expect(n == (r.required ? .invalidArgument : .ok), "\(r.name), NULL: observed \(n) (\(lastMessage()))")
    }

    @Test("Every result struct: an older, smaller size is filled only up to its size; a newer, larger one keeps its extra fields")
    func resultStructSizes() throws {
        Self.checkSizes(ResultStruct<sgdnoise_prediction>(
            name: "sgdnoise_prediction (sgdnoise_label_noise)",
            fields: [
                Self.field("train_loss", \sgdnoise_prediction.train_loss), Self.field("test_loss", \sgdnoise_prediction.test_loss),
                Self.field("kappa", \sgdnoise_prediction.kappa),
                Self.field("critical_learning_rate", \sgdnoise_prediction.critical_learning_rate),
                Self.field("coupling_trace", \sgdnoise_prediction.coupling_trace),
                Self.field("flat_direction_noise", \sgdnoise_prediction.flat_direction_noise),
            ],
            required: false,
            call: { p in Self.a2.withUnsafeBufferPointer { sgdnoise_label_noise(0, 2, $0.baseAddress, 1, 0.5, nil, 10, 0, nil, nil, p) } }))

        Self.checkSizes(ResultStruct<sgdnoise_dataset_info>(
            name: "sgdnoise_dataset_info (sgdnoise_finite_dataset)",
            fields: [
                Self.field("iterations", \sgdnoise_dataset_info.iterations), Self.field("residual", \sgdnoise_dataset_info.residual),
                Self.field("spectral_radius", \sgdnoise_dataset_info.spectral_radius),
            ],
            required: false,
            call: { p in
                Self.rows.withUnsafeBufferPointer { x in
                    Self.labels.withUnsafeBufferPointer { y in
                        sgdnoise_finite_dataset(6, 2, x.baseAddress, y.baseAddress, 0, nil, 0.05, nil, 2, 0, nil, nil, nil, nil, nil, nil, p)
                    }
                }
            }))

        Self.checkSizes(ResultStruct<sgdnoise_fluctuation_info>(
            name: "sgdnoise_fluctuation_info (sgdnoise_stationary_fluctuation)",
            fields: [
                Self.field("flat_directions", \sgdnoise_fluctuation_info.flat_directions),
                Self.field("flat_direction_noise", \sgdnoise_fluctuation_info.flat_direction_noise),
                Self.field("flat_tolerance", \sgdnoise_fluctuation_info.flat_tolerance),
            ],
            required: false,
            call: { p in
                var sigma = [Double](repeating: 0, count: 4)
                return Self.hessian2.withUnsafeBufferPointer { h in
                    Self.noise2.withUnsafeBufferPointer { c in
                        sigma.withUnsafeMutableBufferPointer { sgdnoise_stationary_fluctuation(2, h.baseAddress, c.baseAddress, 0.5, nil, 0, 0, $0.baseAddress, nil, p) }
                    }
                }
            }))

        Self.checkSizes(ResultStruct<sgdnoise_noise_scales>(
            name: "sgdnoise_noise_scales (sgdnoise_noise_scale)",
            fields: [
                Self.field("b_simple", \sgdnoise_noise_scales.b_simple), Self.field("b_noise", \sgdnoise_noise_scales.b_noise),
                Self.field("trace_sigma", \sgdnoise_noise_scales.trace_sigma),
                Self.field("grad_sq_norm", \sgdnoise_noise_scales.grad_sq_norm),
                Self.field("trace_hessian_sigma", \sgdnoise_noise_scales.trace_hessian_sigma),
                Self.field("grad_hessian_grad", \sgdnoise_noise_scales.grad_hessian_grad),
            ],
            required: true,
            call: { p in
                Self.rows.withUnsafeBufferPointer { g in
                    Self.hessian2.withUnsafeBufferPointer { sgdnoise_noise_scale(6, 2, g.baseAddress, $0.baseAddress, p) }
                }
            }))

        Self.checkSizes(ResultStruct<sgdnoise_comparison>(
            name: "sgdnoise_comparison (sgdnoise_compare)",
            fields: [
                Self.field("rel_frobenius", \sgdnoise_comparison.rel_frobenius), Self.field("cosine", \sgdnoise_comparison.cosine),
                Self.field("trace_ratio", \sgdnoise_comparison.trace_ratio), Self.field("overlap", \sgdnoise_comparison.overlap),
            ],
            required: true,
            call: { p in
                Self.hessian2.withUnsafeBufferPointer { q in Self.a2.withUnsafeBufferPointer { sgdnoise_compare(2, $0.baseAddress, q.baseAddress, 1, p) } }
            }))

        let simulation = try Self.makeSimulation()
        defer { sgdnoise_simulation_free(simulation) }
        #expect(sgdnoise_simulation_set_optimizer(simulation, nil, 0.5, nil, 10, 0) == .ok, "\(Self.lastMessage())")
        #expect(sgdnoise_simulation_run(simulation, 2000, 100, 2, 11, 1, nil, nil) == .ok, "\(Self.lastMessage())")
        Self.checkSizes(ResultStruct<sgdnoise_simulation_summary>(
            name: "sgdnoise_simulation_summary (sgdnoise_simulation_result)",
            fields: [
                Self.field("train_loss", \sgdnoise_simulation_summary.train_loss),
                Self.field("test_loss", \sgdnoise_simulation_summary.test_loss),
                Self.field("tail_index", \sgdnoise_simulation_summary.tail_index),
                Self.field("tail_order_statistics", \sgdnoise_simulation_summary.tail_order_statistics),
                Self.field("tail_unreliable", \sgdnoise_simulation_summary.tail_unreliable),
                Self.field("diverged", \sgdnoise_simulation_summary.diverged),
                Self.field("diverged_at_step", \sgdnoise_simulation_summary.diverged_at_step),
                Self.field("cancelled", \sgdnoise_simulation_summary.cancelled),
                Self.field("steps_completed", \sgdnoise_simulation_summary.steps_completed),
            ],
            required: false,
            call: { p in sgdnoise_simulation_result(simulation, nil, nil, nil, nil, p) }))
    }

    @Test("A struct created in Swift with size = MemoryLayout<T>.size gets the same values as the Swift API")
    func structValues() throws {
        var prediction = sgdnoise_prediction()
        prediction.size = MemoryLayout<sgdnoise_prediction>.size
        let status = Self.a2.withUnsafeBufferPointer { sgdnoise_label_noise(0, 2, $0.baseAddress, 1, 0.5, nil, 10, 0, nil, nil, &prediction) }
        #expect(status == .ok, "\(Self.lastMessage())")
        let swift = try labelNoise(
            a: .dense(try Matrix(rows: 2, columns: 2, elements: Self.a2)), noiseVariance: 1, learningRate: .scalar(0.5), batchSize: 10,
            momentum: 0)
        #expect(prediction.size == MemoryLayout<sgdnoise_prediction>.size)
        #expect(prediction.train_loss == swift.trainLoss && prediction.test_loss == swift.testLoss,
                "C \(prediction.train_loss), \(prediction.test_loss); Swift \(swift.trainLoss), \(swift.testLoss)")
        #expect(prediction.kappa == swift.kappa && prediction.critical_learning_rate == swift.criticalLearningRate,
                "C kappa \(prediction.kappa), lr* \(prediction.critical_learning_rate); Swift \(String(describing: swift.kappa)), \(String(describing: swift.criticalLearningRate))")
        #expect(prediction.coupling_trace == swift.couplingTrace && prediction.flat_direction_noise == swift.flatDirectionNoise)
    }

    // MARK: Enum values

    @Test("SGDNOISE_SAMPLING_EPOCH_SHUFFLING is accepted by sgdnoise_simulation_create_dataset and sgdnoise_finite_dataset, and refused by every noise formula")
    func epochShuffling() throws {
        let code = sgdnoise_sampling.epochShuffling.rawValue
        #expect(code == 2)
        var simulation: OpaquePointer? = nil
        let created = Self.rows.withUnsafeBufferPointer { x in
            Self.labels.withUnsafeBufferPointer { y in sgdnoise_simulation_create_dataset(6, 2, x.baseAddress, y.baseAddress, code, nil, &simulation) }
        }
        #expect(created == .ok, "sgdnoise_simulation_create_dataset(epoch shuffling): \(created): \(Self.lastMessage())")
        let sim = try #require(simulation)
        defer { sgdnoise_simulation_free(sim) }
        #expect(sgdnoise_simulation_set_optimizer(sim, nil, 0.05, nil, 2, 0) == .ok, "\(Self.lastMessage())")
        #expect(sgdnoise_simulation_run(sim, 300, 30, 2, 5, 1, nil, nil) == .ok, "\(Self.lastMessage())")
        var summary = Self.summaryStruct()
        var sigma = [Double](repeating: .nan, count: 4)
        let result = sigma.withUnsafeMutableBufferPointer { sgdnoise_simulation_result(sim, nil, $0.baseAddress, nil, nil, &summary) }
        #expect(result == .ok && summary.steps_completed == 600 && summary.diverged == 0 && sigma.allSatisfy(\.isFinite),
                "epoch-shuffled run: \(result), steps \(summary.steps_completed), diverged \(summary.diverged), Sigma \(sigma)")
        // Values outside the enum are refused by the simulation too.
        for bad: CInt in [3, -1] {
            var h: OpaquePointer? = nil
            let s = Self.rows.withUnsafeBufferPointer { x in
                Self.labels.withUnsafeBufferPointer { y in sgdnoise_simulation_create_dataset(6, 2, x.baseAddress, y.baseAddress, bad, nil, &h) }
            }
            #expect(s == .invalidArgument && h == nil && Self.lastMessage().contains("sampling"), "create_dataset, sampling \(bad): \(s), \(Self.lastMessage())")
        }

        // The finite dataset predicts epoch shuffling (docs/theory.md section 4.2).
        var epochSigma = [Double](repeating: .nan, count: 4)
        let predicted = Self.rows.withUnsafeBufferPointer { x in
            Self.labels.withUnsafeBufferPointer { y in
                epochSigma.withUnsafeMutableBufferPointer {
                    sgdnoise_finite_dataset(6, 2, x.baseAddress, y.baseAddress, code, nil, 0.05, nil, 2, 0, nil, nil, $0.baseAddress, nil, nil, nil, nil)
                }
            }
        }
        #expect(predicted == .ok && epochSigma.allSatisfy(\.isFinite) && epochSigma[0] > 0,
                "sgdnoise_finite_dataset(epoch shuffling): \(predicted), \(Self.lastMessage()), Sigma \(epochSigma)")

        let accumulator = try Self.makeAccumulator()
        defer { sgdnoise_accumulator_free(accumulator) }
        let floats = Self.rows.map { Float($0) }
        let v: [Double] = [1, 0]
        var out = [Double](repeating: -1, count: 4)
        var scalar = -1.0
        let calls: [(String, () -> sgdnoise_status)] = [
            ("sgdnoise_noise_covariance", { Self.rows.withUnsafeBufferPointer { g in out.withUnsafeMutableBufferPointer { sgdnoise_noise_covariance(6, 2, g.baseAddress, 2, code, 0, $0.baseAddress) } } }),
            ("sgdnoise_noise_covariance_f32", { floats.withUnsafeBufferPointer { g in out.withUnsafeMutableBufferPointer { sgdnoise_noise_covariance_f32(6, 2, g.baseAddress, 2, code, 0, $0.baseAddress) } } }),
            ("sgdnoise_noise_factor", { sgdnoise_noise_factor(6, 2, code, &scalar) }),
            ("sgdnoise_noise_top_eigen", { Self.rows.withUnsafeBufferPointer { g in out.withUnsafeMutableBufferPointer { sgdnoise_noise_top_eigen(6, 2, g.baseAddress, 2, code, 1, $0.baseAddress, nil) } } }),
            ("sgdnoise_noise_operator_apply", {
                Self.rows.withUnsafeBufferPointer { g in v.withUnsafeBufferPointer { vp in out.withUnsafeMutableBufferPointer { sgdnoise_noise_operator_apply(6, 2, g.baseAddress, nil, 2, code, 1, vp.baseAddress, $0.baseAddress) } } }
            }),
            ("sgdnoise_noise_operator_diagonal", { Self.rows.withUnsafeBufferPointer { g in out.withUnsafeMutableBufferPointer { sgdnoise_noise_operator_diagonal(6, 2, g.baseAddress, nil, 2, code, $0.baseAddress) } } }),
            ("sgdnoise_noise_operator_restrict", {
                Self.rows.withUnsafeBufferPointer { g in v.withUnsafeBufferPointer { q in out.withUnsafeMutableBufferPointer { sgdnoise_noise_operator_restrict(6, 2, g.baseAddress, nil, 2, code, 1, q.baseAddress, $0.baseAddress) } } }
            }),
            ("sgdnoise_accumulator_covariance", { out.withUnsafeMutableBufferPointer { sgdnoise_accumulator_covariance(accumulator, 2, code, 0, $0.baseAddress) } }),
            ("sgdnoise_critical_learning_rate_dataset", { Self.rows.withUnsafeBufferPointer { sgdnoise_critical_learning_rate_dataset(6, 2, $0.baseAddress, code, nil, nil, 2, 0, &scalar) } }),
        ]
        for (name, call) in calls {
            let status = call()
            let message = Self.lastMessage()
            #expect(status == .invalidArgument, "\(name) with epoch shuffling: expected invalidArgument, observed \(status) (\"\(message)\")")
            #expect(message.contains("sampling"), "\(name): expected the message to name sampling, observed \"\(message)\"")
            #expect(out.allSatisfy { $0 == -1 } && scalar == -1, "\(name): an output was written")
        }
    }

    // MARK: Error messages

    /// The calling thread's last message as bytes.
    static func lastMessageBytes() -> [UInt8] {
        let p = sgdnoise_last_error_message()!
        return Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(p), count: strlen(p)))
    }

    /// The longest prefix of `message` that ends on a character (Unicode scalar) boundary and has
    /// at most 1023 UTF-8 bytes.
    static func expectedCut(_ message: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for scalar in message.unicodeScalars {
            let encoded = Array(String(scalar).utf8)
            if bytes.count + encoded.count > 1023 { break }
            bytes += encoded
        }
        return bytes
    }

    /// Messages whose 1023-byte cut falls at every position inside 2-, 3- and 4-byte characters,
    /// and ASCII messages just below, at and above the limit.
    static let longMessages: [String] = {
        var list: [String] = []
        for character in ["é", "€", "😀"] {
            for prefix in 0..<4 {
                list.append(String(repeating: "x", count: prefix) + String(repeating: character, count: 1100 / character.utf8.count + 10))
            }
        }
        list += [1022, 1023, 1024, 5000].map { String(repeating: "a", count: $0) }
        list.append(String(repeating: "a", count: 1021) + "é")  // 1023 bytes exactly: kept whole
        list.append(String(repeating: "a", count: 1022) + "é")  // 1024 bytes: the é goes
        return list
    }()

    static func checkStored(_ message: String, _ label: String) {
        let stored = lastMessageBytes()
        let original = Array(message.utf8)
        #expect(stored.count <= 1023, "\(label): \(stored.count) bytes stored")
        #expect(String(validating: stored, as: UTF8.self) != nil, "\(label): the stored message is not valid UTF-8 (ends \(stored.suffix(4)))")
        #expect(original.starts(with: stored), "\(label): the stored message is not a prefix of the original")
        let expected = expectedCut(message)
        #expect(stored.count == expected.count,
                "\(label): expected the cut at \(expected.count) bytes (the last character boundary at or below 1023), observed \(stored.count)")
    }

    @Test("A long error message is cut at a UTF-8 character boundary, at most 1023 bytes, through the library's error path")
    func longMessagesThroughRecord() {
        // No argument of the C interface is echoed at length (numbers only), so the longest real
        // messages stay far below 1023 bytes; the library's own error path (record, as every C
        // function uses it) is driven here with long multibyte messages instead.
        for (k, message) in Self.longMessages.enumerated() {
            let status = record(.invalidArgument(message))
            #expect(status == .invalidArgument)
            Self.checkStored(message, "message \(k) (\(message.utf8.count) bytes, ends \"\(message.suffix(1))\")")
            #expect(sgdnoise_last_error_critical_learning_rate().isNaN)
        }
        let unstable = String(repeating: "ü", count: 700)
        #expect(record(.unstable(unstable, criticalLearningRate: 0.25)) == .unstable)
        Self.checkStored(SGDNoiseError.unstable(unstable, criticalLearningRate: 0.25).message, "unstable")
        #expect(sgdnoise_last_error_critical_learning_rate() == 0.25, "the critical rate survives a cut message")
    }

    @Test("sgdnoise_shim_set_error stores a valid UTF-8 prefix of at most 1023 bytes")
    func longMessagesThroughShim() {
        for (k, message) in Self.longMessages.enumerated() {
            message.withCString { sgdnoise_shim_set_error($0, .nan) }
            Self.checkStored(message, "shim, message \(k) (\(message.utf8.count) bytes)")
        }
        sgdnoise_shim_set_error(nil, 1.5)
        #expect(Self.lastMessage() == "" && sgdnoise_last_error_critical_learning_rate() == 1.5, "a NULL message is stored as \"\"")
    }

    @Test("A real failure's message with multibyte characters comes back whole and valid")
    func multibyteMessage() throws {
        let simulation = try Self.makeSimulation()
        defer { sgdnoise_simulation_free(simulation) }
        #expect(sgdnoise_simulation_run(simulation, Int.max, 1, 1, 0, 0, nil, nil) == .invalidArgument)
        let bytes = Self.lastMessageBytes()
        let message = try #require(String(validating: bytes, as: UTF8.self), "not valid UTF-8: \(bytes)")
        #expect(message.contains("×") && message.contains("overflows"), "observed \"\(message)\"")
    }
}
