import Foundation
@testable import SGDNoise
import Testing

/// The portable state format (`StateEncoding`) and the accumulator's export/import: the checksum
/// against vectors from the reference xxHash implementation (the `xxhash` PyPI package, which binds
/// Yann Collet's C library), bit-exact round trips, merges of imported shards, and every corruption
/// a reader must refuse.
@Suite("State encoding")
struct StateEncodingTests {
    /// XXH64 of the bytes (31 i + 7) mod 256, i < n, with seeds 0 and 42, computed by
    /// `xxhash.xxh64` 3.x: every tail path (1-, 4- and 8-byte steps, the 32-byte stripes).
    static let vectors: [(n: Int, seed0: UInt64, seed42: UInt64)] = [
        (0, 0xef46_db37_51d8_e999, 0x98b1_582b_0977_e704), (1, 0xa96c_7f0c_e858_bbb7, 0xda6d_a760_43d2_a83e),
        (3, 0x56e6_9576_32a4_87f9, 0x9fd3_c340_1f12_24c4), (4, 0xc60d_15b1_e3ff_8f04, 0xe2c1_55d0_2e15_0d37),
        (5, 0x8088_1585_8624_dd4e, 0x7b71_6a99_febc_1dee), (7, 0xafbe_fc3d_6c6f_9a8e, 0xaa84_e24b_79ff_e86b),
        (8, 0x3da5_c7aa_2696_83e0, 0x19ec_ec10_c565_2168), (9, 0x4b17_a9ba_9e21_5c09, 0x86dd_f140_d350_5b88),
        (12, 0x8fe8_ab1c_1fd0_666e, 0x173d_6d28_fb7b_2880), (15, 0xae2a_37eb_9357_caa7, 0xbea2_c06d_0abe_0c80),
        (31, 0x4a74_f3a1_a39a_d4a1, 0xbb09_3c69_46ef_4856), (32, 0x8d57_d6a4_671c_c43d, 0x790f_db02_6db4_0f9b),
        (33, 0x62c9_fd21_ed85_7664, 0xc033_05a3_e364_a332), (63, 0x5c32_0a0d_2707_057f, 0xc680_1410_0403_40a0),
        (64, 0x7bba_bbc4_5729_d17e, 0x5921_509e_9733_3862), (100, 0xefa0_ad2d_3e70_c151, 0x90c5_4d51_a572_aa5b),
        (1000, 0x9959_4f48_2804_3d35, 0xebbb_0064_7031_1ebc),
    ]

    @Test("XXH64 matches the reference implementation on every tail length")
    func checksumVectors() {
        for v in Self.vectors {
            let bytes = (0..<v.n).map { UInt8(truncatingIfNeeded: 31 * $0 + 7) }
            #expect(XXH64.hash(bytes) == v.seed0, "n = \(v.n), seed 0")
            #expect(XXH64.hash(bytes, seed: 42) == v.seed42, "n = \(v.n), seed 42")
        }
    }

    static func accumulator(rows n: Int, dimension d: Int, seed: UInt64, offset: Double = 0) throws -> NoiseAccumulator {
        let g = NoiseDefinition.randomGradients(samples: n, dimension: d, seed: seed).flatMap { $0 }.map { $0 + offset }
        var acc = try NoiseAccumulator(dimension: d)
        try g.withUnsafeBufferPointer { try acc.update($0, rows: n) }
        return acc
    }

    @Test("A round trip restores the state bit for bit; merges of imported shards equal merges of the originals")
    func roundTrip() throws {
        for d in [1, 2, 7, 33] {
            let acc = try Self.accumulator(rows: 50, dimension: d, seed: UInt64(d), offset: 3)
            let bytes = acc.serialized()
            #expect(bytes.count == acc.serializedSize)
            #expect(bytes.count == 32 + 8 * (2 + d + d * (d + 1) / 2))
            let back = try NoiseAccumulator(serialized: bytes)
            #expect(back.count == acc.count && back.mean == acc.mean && back.scatter == acc.scatter)
            #expect(back.serialized() == bytes)
            // The empty state too.
            let empty = try NoiseAccumulator(dimension: d)
            #expect(try NoiseAccumulator(serialized: empty.serialized()).isEmpty)
            // Shards: merging imported copies is bit-identical to merging the originals.
            let shard = try Self.accumulator(rows: 17, dimension: d, seed: UInt64(100 + d), offset: -1)
            var direct = acc, imported = try NoiseAccumulator(serialized: bytes)
            try direct.merge(shard)
            try imported.merge(try NoiseAccumulator(serialized: shard.serialized()))
            #expect(imported.serialized() == direct.serialized())
        }
    }

    @Test("Codable carries the same bytes")
    func codable() throws {
        let acc = try Self.accumulator(rows: 20, dimension: 3, seed: 9)
        let data = try JSONEncoder().encode(acc)
        let back = try JSONDecoder().decode(NoiseAccumulator.self, from: data)
        #expect(back.serialized() == acc.serialized())
        var bytes = acc.serialized()
        bytes[40] ^= 1
        let corrupt = try JSONEncoder().encode(bytes)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(NoiseAccumulator.self, from: corrupt) }
    }

    /// Rewrites the checksum of a modified state, so that only the content checks can refuse it.
    static func resealed(_ bytes: [UInt8]) -> [UInt8] {
        var b = bytes
        let sum = XXH64.hash(Array(b[..<(b.count - 8)]))
        withUnsafeBytes(of: sum.littleEndian) { b.replaceSubrange((b.count - 8)..., with: $0) }
        return b
    }

    static func withWord(_ bytes: [UInt8], at offset: Int, _ value: UInt64) -> [UInt8] {
        var b = bytes
        withUnsafeBytes(of: value.littleEndian) { b.replaceSubrange(offset..<(offset + 8), with: $0) }
        return resealed(b)
    }

    @Test("Corrupt, truncated, foreign and impossible states are refused")
    func corruption() throws {
        let d = 4
        let bytes = try Self.accumulator(rows: 30, dimension: d, seed: 5).serialized()
        func refused(_ b: [UInt8], _ mentioning: String, sourceLocation: SourceLocation = #_sourceLocation) {
            expectError(.invalidArgument, mentioning: mentioning, sourceLocation: sourceLocation) {
                try NoiseAccumulator(serialized: b)
            }
        }
        // Every single-bit flip, anywhere, is caught (by the magic, the header or the checksum).
        for i in 0..<bytes.count {
            for bit in [0, 5] {
                var b = bytes
                b[i] ^= UInt8(1 << bit)
                #expect(throws: SGDNoiseError.self) { try NoiseAccumulator(serialized: b) }
            }
        }
        refused(Array(bytes.dropLast()), "does not match the buffer")
        refused(bytes + [0, 0, 0, 0, 0, 0, 0, 0], "does not match the buffer")
        refused(Array(bytes.prefix(31)), "too few")
        refused([UInt8](repeating: 0, count: 64), "magic")
        refused(Array("not a state at all, just text of some length".utf8), "magic")
        // Fields a checksum alone would let through.
        var newer = bytes
        newer[8] = 2
        refused(Self.resealed(newer), "format version 2")
        var sketch = bytes
        sketch[12] = 2
        refused(Self.resealed(sketch), "holds a noise sketch")
        sketch[12] = 9
        refused(Self.resealed(sketch), "unknown kind")
        refused(Self.withWord(bytes, at: 24, 0), "dimension")  // D = 0
        refused(Self.withWord(bytes, at: 24, 5), "dimension 5")  // D does not fit the payload
        refused(Self.withWord(bytes, at: 32, UInt64.max), "count")
        refused(Self.withWord(bytes, at: 40, Double.nan.bitPattern), "NaN")
        refused(Self.withWord(bytes, at: 40 + 8 * d, (-1.0).bitPattern), "negative diagonal")
        // N = 0 with a nonzero mean: no accumulator holds that.
        refused(Self.withWord(bytes, at: 32, 0), "counts no gradient")
    }
}
