/// The portable byte format of sgdnoise's mergeable states (the noise accumulator and the noise
/// sketch), so that a state computed in one process can be shipped to another (a Dask worker, a
/// torch.distributed rank, a file) and merged there.
///
/// Layout, every integer and float little-endian, all fields 8-byte aligned:
///
///     offset  size  field
///          0     8  magic "SGDNSTAT"
///          8     4  format version (UInt32, currently 1)
///         12     4  kind (UInt32: 1 noise accumulator, 2 noise sketch)
///         16     8  payload length L in bytes (UInt64, a multiple of 8)
///         24     L  payload (the kind's own fields: integers as UInt64/Int64, reals as IEEE 754 binary64)
///     24 + L     8  checksum: XXH64 (seed 0) of bytes [0, 24 + L)
///
/// A reader rejects, as `invalidArgument`, a buffer of the wrong length, another magic, a newer
/// format version, another kind, a checksum that does not match, and payload fields that no state
/// of that kind can hold (checked by each kind's own decoder). The format is independent of the
/// host's word size and byte order.
public enum StateEncoding {
    /// The format version this library writes (and the newest it reads).
    public static let version: UInt32 = 1
    /// The first eight bytes of every state.
    static let magic: [UInt8] = Array("SGDNSTAT".utf8)
    /// Bytes before the payload.
    static let headerSize = 24

    /// What a state holds.
    public enum Kind: UInt32, Sendable {
        /// A `NoiseAccumulator` (count, mean, centred scatter).
        case noiseAccumulator = 1
        /// A `NoiseSketch` (Frequent Directions rows, count, mean, shrinkage, trace).
        case noiseSketch = 2
        /// The records of some of a simulation's chains (`SimulationChains`).
        case simulationChains = 3

        var name: String {
            switch self {
            case .noiseAccumulator: "a noise accumulator"
            case .noiseSketch: "a noise sketch"
            case .simulationChains: "the records of simulation chains"
            }
        }

        /// The largest state of this kind (a claimed size beyond it is rejected before anything
        /// past the header is read): an accumulator of the largest dimension; 2⁴³ bytes for a sketch.
        var maxSize: Int {
            switch self {
            case .noiseAccumulator: NoiseAccumulator.serializedSize(dimension: NoiseAccumulator.maxDimension)
            case .noiseSketch, .simulationChains: 1 << 43
            }
        }
    }

    /// The total size in bytes of a state whose payload holds `words` 8-byte words.
    static func size(payloadWords words: Int) -> Int { headerSize + 8 * words + 8 }

    /// A state of `kind` whose payload is exactly `words` 8-byte words, written by `body`.
    static func encode(_ kind: Kind, payloadWords words: Int, _ body: (inout StateWriter) -> Void) -> [UInt8] {
        var w = StateWriter(capacity: size(payloadWords: words))
        w.bytes.append(contentsOf: magic)
        w.append(version)
        w.append(kind.rawValue)
        w.append(UInt64(8 * words))
        body(&w)
        precondition(w.bytes.count == headerSize + 8 * words, "state payload size mismatch")
        w.append(XXH64.hash(w.bytes))
        return w.bytes
    }

    /// Checks the envelope of `buffer` (length, magic, version, kind, then the checksum) and runs
    /// `body` with a reader positioned at the start of the payload. Only the 24 header bytes are
    /// read before the length in the header is found to match `buffer.count`.
    static func decode<R>(_ buffer: UnsafeRawBufferPointer, as kind: Kind, _ body: (inout StateReader) throws -> R) throws -> R {
        let n = buffer.count
        guard n >= headerSize + 8 else {
            throw SGDNoiseError.invalidArgument(
                "the buffer holds \(n) bytes, too few for a serialized sgdnoise state (at least \(headerSize + 8))")
        }
        guard n <= kind.maxSize else {
            throw SGDNoiseError.invalidArgument("the buffer's size (\(n) bytes) exceeds that of any state of \(kind.name) (\(kind.maxSize))")
        }
        guard buffer.prefix(8).elementsEqual(magic) else {
            throw SGDNoiseError.invalidArgument("the buffer is not a serialized sgdnoise state (wrong magic bytes)")
        }
        var r = StateReader(buffer, position: 8, end: headerSize)
        let formatVersion = r.uint32()
        guard formatVersion >= 1, formatVersion <= version else {
            throw SGDNoiseError.invalidArgument(
                "the state has format version \(formatVersion); this library reads versions 1 to \(version)")
        }
        let rawKind = r.uint32()
        guard rawKind == kind.rawValue else {
            let found = Kind(rawValue: rawKind)?.name ?? "an unknown kind (\(rawKind))"
            throw SGDNoiseError.invalidArgument("the state holds \(found), not \(kind.name)")
        }
        let length = r.uint64()
        guard length % 8 == 0, length == UInt64(n - headerSize - 8) else {
            throw SGDNoiseError.invalidArgument(
                "the state's payload length (\(length) bytes) does not match the buffer (\(n) bytes): truncated or corrupt")
        }
        let stored = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self))
        guard stored == XXH64.hash(UnsafeRawBufferPointer(rebasing: buffer[..<(n - 8)])) else {
            throw SGDNoiseError.invalidArgument("the state's checksum does not match its contents: the buffer is corrupt")
        }
        var payload = StateReader(buffer, position: headerSize, end: n - 8)
        let result = try body(&payload)
        try payload.requireEnd()
        return result
    }

    /// `decode` of any collection of bytes (contiguous storage is read in place).
    static func decode<C: Collection<UInt8>, R>(_ bytes: C, as kind: Kind, _ body: (inout StateReader) throws -> R) throws -> R {
        if let result = try bytes.withContiguousStorageIfAvailable({ try decode(UnsafeRawBufferPointer($0), as: kind, body) }) {
            return result
        }
        return try Array(bytes).withUnsafeBytes { try decode($0, as: kind, body) }
    }
}

/// Appends little-endian fields to a byte buffer.
struct StateWriter {
    var bytes: [UInt8]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func append(_ x: UInt32) {
        withUnsafeBytes(of: x.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ x: UInt64) {
        withUnsafeBytes(of: x.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ x: Int) { append(UInt64(bitPattern: Int64(x))) }

    mutating func append(_ x: Double) { append(x.bitPattern) }

    /// Appends `values` as binary64, in order.
    mutating func append(_ values: UnsafeBufferPointer<Double>) {
        #if _endian(little)
        bytes.append(contentsOf: UnsafeRawBufferPointer(values))
        #else
        for x in values { append(x) }
        #endif
    }

    mutating func append(_ values: [Double]) {
        values.withUnsafeBufferPointer { append($0) }
    }
}

/// Reads little-endian fields from a byte buffer (valid only inside `StateEncoding.decode`);
/// reading past `end` is a corrupt-state error.
struct StateReader {
    let buffer: UnsafeRawBufferPointer
    var position: Int
    let end: Int

    init(_ buffer: UnsafeRawBufferPointer, position: Int, end: Int) {
        self.buffer = buffer
        self.position = position
        self.end = end
    }

    /// Payload bytes not read yet.
    var remaining: Int { end - position }

    private func word<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func uint32() -> UInt32 {
        defer { position += 4 }
        return word(UInt32.self, at: position)
    }

    mutating func uint64() -> UInt64 {
        defer { position += 8 }
        return word(UInt64.self, at: position)
    }

    /// A UInt64 field read after checking that the payload holds it.
    mutating func word(_ what: String) throws -> UInt64 {
        try require(8, what)
        return uint64()
    }

    /// A UInt64 field that must fit an `Int` in `range`, else a corrupt-state error naming `what`.
    mutating func count(_ what: String, in range: ClosedRange<Int>) throws -> Int {
        try require(8, what)
        let raw = uint64()
        guard raw <= UInt64(Int.max), range.contains(Int(raw)) else {
            throw SGDNoiseError.invalidArgument("the state's \(what) (\(raw)) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(raw)
    }

    /// `n` binary64 values into `out`, each required finite (a corrupt-state error naming `what`).
    mutating func doubles(_ n: Int, into out: UnsafeMutableBufferPointer<Double>, _ what: String) throws {
        try require(8 * n, what)
        #if _endian(little)
        UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(out)[..<(8 * n)])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[position..<(position + 8 * n)]))
        #else
        for i in 0..<n { out[i] = Double(bitPattern: word(UInt64.self, at: position + 8 * i)) }
        #endif
        position += 8 * n
        guard !out.prefix(n).contains(where: { !$0.isFinite }) else {
            throw SGDNoiseError.invalidArgument("the state's \(what) holds NaN or infinite values: the buffer is corrupt")
        }
    }

    mutating func doubles(_ n: Int, _ what: String) throws -> [Double] {
        var out = [Double](repeating: 0, count: n)
        try out.withUnsafeMutableBufferPointer { try doubles(n, into: $0, what) }
        return out
    }

    private func require(_ bytes: Int, _ what: String) throws {
        guard bytes >= 0, end - position >= bytes else {
            throw SGDNoiseError.invalidArgument("the state's payload is too short for its \(what): the buffer is corrupt")
        }
    }

    /// Throws unless the whole payload has been read.
    func requireEnd() throws {
        guard position == end else {
            throw SGDNoiseError.invalidArgument("the state's payload has \(end - position) bytes more than its fields: the buffer is corrupt")
        }
    }
}

/// XXH64 (Yann Collet's xxHash, 64-bit variant), the checksum of serialized states: fast (several
/// GB/s), and reproducible by any reader with a standard xxHash library.
enum XXH64 {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always) static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }

    @inline(__always) static func mergeRound(_ acc: UInt64, _ value: UInt64) -> UInt64 {
        (acc ^ round(0, value)) &* p1 &+ p4
    }

    static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }

    static func hash(_ buffer: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let n = buffer.count
        @inline(__always) func u64(_ i: Int) -> UInt64 { UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: i, as: UInt64.self)) }
        @inline(__always) func u32(_ i: Int) -> UInt64 { UInt64(UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: i, as: UInt32.self))) }
        var i = 0
        var h: UInt64
        if n >= 32 {
            var v1 = seed &+ p1 &+ p2, v2 = seed &+ p2, v3 = seed, v4 = seed &- p1
            while i + 32 <= n {
                v1 = round(v1, u64(i))
                v2 = round(v2, u64(i + 8))
                v3 = round(v3, u64(i + 16))
                v4 = round(v4, u64(i + 24))
                i += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = mergeRound(h, v1)
            h = mergeRound(h, v2)
            h = mergeRound(h, v3)
            h = mergeRound(h, v4)
        } else {
            h = seed &+ p5
        }
        h &+= UInt64(n)
        while i + 8 <= n {
            h ^= round(0, u64(i))
            h = rotl(h, 27) &* p1 &+ p4
            i += 8
        }
        if i + 4 <= n {
            h ^= u32(i) &* p1
            h = rotl(h, 23) &* p2 &+ p3
            i += 4
        }
        while i < n {
            h ^= UInt64(buffer[i]) &* p5
            h = rotl(h, 11) &* p1
            i += 1
        }
        h ^= h >> 33
        h &*= p2
        h ^= h >> 29
        h &*= p3
        h ^= h >> 32
        return h
    }
}
