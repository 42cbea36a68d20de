/// The accumulator's state as portable bytes (`StateEncoding`, kind 1), so that shards computed in
/// other processes or on other machines can be shipped and merged exactly.
///
/// Payload (8-byte words, little-endian): D (UInt64), N (UInt64), the mean ḡ (D binary64), then
/// the upper triangle of the centred scatter S row by row, S_ij for i ≤ j (D(D+1)/2 binary64). The
/// state does not depend on the batch size or the sampling: those are chosen when C is asked for.
/// Importing restores the state bit for bit, so `merge` after a round trip gives exactly what
/// `merge` of the original gives.
extension NoiseAccumulator: Codable {
    /// The number of bytes of `serialized()`: 24 + 8 (2 + D + D(D+1)/2) + 8.
    public static func serializedSize(dimension d: Int) -> Int {
        StateEncoding.size(payloadWords: 2 + d + d * (d + 1) / 2)
    }

    /// The number of bytes of `serialized()` for this accumulator.
    public var serializedSize: Int { Self.serializedSize(dimension: dimension) }

    /// The state as bytes (see the type's documentation and `StateEncoding` for the layout).
    public func serialized() -> [UInt8] {
        let d = dimension
        return StateEncoding.encode(.noiseAccumulator, payloadWords: 2 + d + d * (d + 1) / 2) { w in
            w.append(d)
            w.append(count)
            w.append(mean)
            scatterUpper.elements.withUnsafeBufferPointer { s in
                for i in 0..<d { w.append(UnsafeBufferPointer(rebasing: s[(i * d + i)..<(i * d + d)])) }
            }
        }
    }

    /// Restores an accumulator from `serialized()` bytes.
    /// - Throws: `invalidArgument` for a buffer that is not an intact accumulator state: wrong
    ///   length, magic, format version, kind or checksum, a dimension outside 1...40000, NaN/Inf
    ///   entries, a negative diagonal of S, or a nonzero mean or scatter with N = 0.
    public init<C: Collection<UInt8>>(serialized bytes: C) throws {
        self = try StateEncoding.decode(bytes, as: .noiseAccumulator) { r in try Self(reading: &r) }
    }

    /// Restores an accumulator from `size` bytes at `bytes` (the C ABI's import): only the header
    /// is read before the size is known to be that of an intact state.
    public init(serialized bytes: UnsafeRawBufferPointer) throws {
        self = try StateEncoding.decode(bytes, as: .noiseAccumulator) { r in try Self(reading: &r) }
    }

    /// The payload's fields, validated.
    private init(reading r: inout StateReader) throws {
        let d = try r.count("dimension", in: 1...Self.maxDimension)
        let n = try r.count("count", in: 0...Int.max)
        guard r.remaining == 8 * (d + d * (d + 1) / 2) else {
            throw SGDNoiseError.invalidArgument("the state's payload does not have the size of an accumulator of dimension \(d): the buffer is corrupt")
        }
        try self.init(dimension: d)
        mean = try r.doubles(d, "mean")
        var upper = Matrix(rows: d, columns: d)
        try upper.elements.withUnsafeMutableBufferPointer { s in
            for i in 0..<d {
                try r.doubles(d - i, into: UnsafeMutableBufferPointer(rebasing: s[(i * d + i)..<(i * d + d)]), "scatter")
            }
        }
        guard !upper.diagonalEntries.contains(where: { $0 < 0 }) else {
            throw SGDNoiseError.invalidArgument("the state's scatter has a negative diagonal entry: the buffer is corrupt")
        }
        guard n > 0 || (mean.allSatisfy { $0 == 0 } && upper.elements.allSatisfy { $0 == 0 }) else {
            throw SGDNoiseError.invalidArgument("the state counts no gradient but holds a nonzero mean or scatter: the buffer is corrupt")
        }
        count = n
        scatterUpper = upper
    }

    /// Encodes the bytes of `serialized()` as one value.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(serialized())
    }

    /// Decodes the bytes of `serialized()`; a corrupt state is a `DecodingError.dataCorrupted`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let bytes = try container.decode([UInt8].self)
        do {
            try self.init(serialized: bytes)
        } catch let error as SGDNoiseError {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(error)")
        }
    }
}
