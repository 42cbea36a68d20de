/// SplitMix64 (Steele, Lea & Flood 2014): expands a 64-bit seed into the state of another generator.
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256** (Blackman & Vigna 2018): a fast 64-bit generator with period 2²⁵⁶ − 1 and a jump
/// function that advances it by 2¹²⁸ steps, so that chain c of a simulation uses the stream that
/// starts c jumps after the seed's — independent streams, the same numbers on any thread count.
public struct Xoshiro256StarStar: RandomNumberGenerator, Sendable {
    var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// The generator seeded through SplitMix64 (never all-zero).
    public init(seed: UInt64) {
        var sm = SplitMix64(state: seed)
        s0 = sm.next()
        s1 = sm.next()
        s2 = sm.next()
        s3 = sm.next()
    }

    /// The `stream`-th independent stream of `seed`: `stream` jumps of 2¹²⁸ steps.
    public init(seed: UInt64, stream: Int) {
        self.init(seed: seed)
        for _ in 0..<stream { jump() }
    }

    /// The next 64 random bits, rotl(5·s₁, 7)·9 (mod 2⁶⁴); the state then advances one step.
    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inline(__always)
    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Advances the state by 2¹²⁸ calls of `next()`.
    public mutating func jump() {
        let table: [UInt64] = [0x180E_C6D3_3CFD_0ABA, 0xD5A6_1266_F0C9_392C, 0xA958_2618_E03F_C9AA, 0x39AB_DC45_29B1_661C]
        var t0: UInt64 = 0, t1: UInt64 = 0, t2: UInt64 = 0, t3: UInt64 = 0
        for word in table {
            for b in 0..<64 {
                if word & (UInt64(1) << UInt64(b)) != 0 {
                    t0 ^= s0
                    t1 ^= s1
                    t2 ^= s2
                    t3 ^= s3
                }
                _ = next()
            }
        }
        s0 = t0
        s1 = t1
        s2 = t2
        s3 = t3
    }

    /// A uniform double in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func uniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A uniform double in (0, 1] (safe for log).
    @inline(__always)
    mutating func uniformPositive() -> Double {
        (Double(next() >> 11) + 1) * 0x1.0p-53
    }

    /// A uniform integer in [0, n) without bias (Lemire 2019).
    @inline(__always)
    public mutating func index(below n: Int) -> Int {
        let bound = UInt64(n)
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
        }
        return Int(product.high)
    }
}
