/// The sketch's state as portable bytes (`StateEncoding`, kind 2; docs/state_format.md), so that
/// sketches computed in other processes or on other machines can be shipped and merged.
///
/// Payload (8-byte words, little-endian): D, ℓ, N, r (the number of nonzero rows) as UInt64; Δ and
/// Tr S as binary64; the mean ḡ (D); the squared norms of B's rows (ℓ, zero past r); B's rows
/// (ℓ × D row by row, zero past r). Rows still in the buffer are folded first, so the state has
/// no buffer and its size, 32 + 8 (6 + D + ℓ + ℓD) bytes, depends only on D and ℓ.
extension NoiseSketch {
    /// The number of bytes of `serialized()`.
    public static func serializedSize(dimension d: Int, rows l: Int) -> Int {
        StateEncoding.size(payloadWords: 6 + d + l + l * d)
    }

    /// The number of bytes of `serialized()` for this sketch.
    public var serializedSize: Int { Self.serializedSize(dimension: dimension, rows: rows) }

    /// The state as bytes (buffered rows folded first, on a copy).
    public func serialized() throws -> [UInt8] {
        var s = self
        try s.flush()
        return s.flushedSerialized()
    }

    /// `serialized()` of a sketch whose buffer is empty.
    func flushedSerialized() -> [UInt8] {
        let d = dimension, l = rows
        return StateEncoding.encode(.noiseSketch, payloadWords: 6 + d + l + l * d) { w in
            w.append(d)
            w.append(l)
            w.append(count)
            w.append(used)
            w.append(shrinkage)
            w.append(foldedTrace)
            w.append(foldedMean)
            w.append(squares + [Double](repeating: 0, count: l - used))
            storage.values.withUnsafeBufferPointer { s in
                w.append(UnsafeBufferPointer(rebasing: s[0..<(used * d)]))
            }
            w.append([Double](repeating: 0, count: (l - used) * d))
        }
    }

    /// Restores a sketch from `serialized()` bytes.
    /// - Throws: `invalidArgument` for a buffer that is not an intact sketch state: wrong length,
    ///   magic, format version, kind or checksum, or contents no sketch holds (D < 1, ℓ outside
    ///   1...4096, r > ℓ, NaN/Inf, negative Δ, Tr S or squared norms, nonzero rows past r, a
    ///   nonzero state with N = 0).
    public init<C: Collection<UInt8>>(serialized bytes: C) throws {
        self = try StateEncoding.decode(bytes, as: .noiseSketch) { r in try Self(reading: &r) }
    }

    /// Restores a sketch from raw bytes (the C ABI's import): only the header is read before the
    /// size is known to be that of an intact state.
    public init(serialized bytes: UnsafeRawBufferPointer) throws {
        self = try StateEncoding.decode(bytes, as: .noiseSketch) { r in try Self(reading: &r) }
    }

    private init(reading r: inout StateReader) throws {
        let d = try r.count("dimension", in: 1...Int.max)
        let l = try r.count("number of rows", in: 1...Self.maxRows)
        let n = try r.count("count", in: 0...Int.max)
        let live = try r.count("number of nonzero rows", in: 0...l)
        let (words, overflow) = l.multipliedReportingOverflow(by: d)
        guard !overflow, r.remaining / 8 == 2 + d + l + words, r.remaining % 8 == 0 else {
            throw SGDNoiseError.invalidArgument(
                "the state's payload does not have the size of a sketch of dimension \(d) with \(l) rows: the buffer is corrupt")
        }
        try self.init(dimension: d, rows: l)
        let scalars = try r.doubles(2, "shrinkage and trace")
        guard scalars[0] >= 0, scalars[1] >= 0 else {
            throw SGDNoiseError.invalidArgument("the state's shrinkage or trace is negative: the buffer is corrupt")
        }
        let mean = try r.doubles(d, "mean")
        let norms = try r.doubles(l, "row norms")
        guard norms.prefix(live).allSatisfy({ $0 > 0 }), norms.dropFirst(live).allSatisfy({ $0 == 0 }) else {
            throw SGDNoiseError.invalidArgument("the state's row norms do not match its number of nonzero rows: the buffer is corrupt")
        }
        try storage.values.withUnsafeMutableBufferPointer { s in
            try r.doubles(l * d, into: UnsafeMutableBufferPointer(rebasing: s[0..<(l * d)]), "rows")
            guard s[(live * d)..<(l * d)].allSatisfy({ $0 == 0 }) else {
                throw SGDNoiseError.invalidArgument("the state has nonzero rows past its number of nonzero rows: the buffer is corrupt")
            }
        }
        guard n > 0 || (live == 0 && scalars.allSatisfy { $0 == 0 } && mean.allSatisfy { $0 == 0 }) else {
            throw SGDNoiseError.invalidArgument("the state counts no gradient but holds a nonzero sketch: the buffer is corrupt")
        }
        count = n
        folded = n
        used = live
        shrinkage = scalars[0]
        foldedTrace = scalars[1]
        foldedMean = mean
        squares = Array(norms.prefix(live))
    }
}
